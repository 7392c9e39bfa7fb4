"""Contract point 4 (issue #11): second derivatives are right on every registered loss, on the
fused-kernel path and on the plain path.

A fused kernel's backward gives its fast gradient only when no graph of the gradient is
asked; under ``create_graph=True`` it differentiates the plain PyTorch path instead
(:mod:`mmdet_losses.ops._double_backward`), so a gradient penalty or a meta-learning step sees
the true second-order term. Checked here for every loss of the registry (a loss added later
fails :func:`test_every_registered_loss_has_an_input_builder` until it gets a builder below):

- the gradient of ``loss + 100 |grad|^2`` (a gradient penalty, float64) against an
  independent reference: the first-order gradient ``g`` (no graph asked: the kernel's own
  backward on the kernel path) plus ``200 H g``, the Hessian-vector product taken by central
  finite differences of ``g``;
- ``torch.autograd.gradgradcheck`` on small float64 inputs;
- that the kernel path really runs its kernel, and that the gradient with a graph has the
  value of the kernel's first-order gradient.

ZeroOneLoss has no gradient by design (a detached value for logging) and is skipped.
"""
import math

import pytest
import torch
import torch.nn.functional as TF

import mmdet_losses
from mmdet_losses import MODELS
from mmdet_losses import functional as F
from mmdet_losses.ops import focal_kernel, iou_kernels, regression_kernel

from _helpers import graph_node_names, kernel_node
import _zoo_inputs
import _stateful_inputs
import _custom_inputs

#: Registered losses without a gradient, by design.
NO_GRADIENT = {'ZeroOneLoss'}
#: The autograd nodes of the fused kernels.
KERNEL_NODES = {kernel_node(op) for op in ('regression_loss', 'iou_loss', 'iou_variant_loss',
                                           'sigmoid_focal_loss_index')}
KERNELS_BUILT = (regression_kernel.kernels_available() and iou_kernels.kernels_available()
                 and focal_kernel.available())
PENALTY = 100.0


def _f64(*values):
    return torch.tensor(values, dtype=torch.float64)


# ----------------------------------------------------------------------------- inputs
# A builder returns (pred, extra positional args of forward). Values sit away from every kink
# (|residual| = beta, hinge at the margin, min/max ties of boxes, CIoU's gate, clamps), where
# the loss is twice differentiable and finite differences are accurate.
def _residuals():
    target = _f64(0.3, -1.2, 2.0, 0.7, -0.4, 1.1).reshape(2, 3)
    offset = _f64(0.45, -1.7, 2.6, -0.2, 0.8, -3.1).reshape(2, 3)  # both sides of beta = 1
    return target + offset, (target,)


def _weighted_residuals():
    pred, (target,) = _residuals()
    return pred, (target, _f64(0.5, 2.0, 1.0, 0.25, 1.5, 3.0).reshape(2, 3))


def _boxes():
    pred = _f64(0.0, 0.0, 2.0, 3.0, 1.0, 1.5, 4.0, 3.5, 2.0, 0.5, 3.2, 2.9).reshape(3, 4)
    target = _f64(0.5, 0.4, 2.6, 2.7, 0.7, 1.0, 3.3, 4.1, 2.4, 0.2, 3.9, 2.2).reshape(3, 4)
    return pred, (target,)


def _logits(n=4, c=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, generator=gen) * 1.5).double()


def _index_targets():  # label 3 of 3 classes is background
    return _logits(), (torch.tensor([0, 2, 3, 1]),)


def _dense_targets():
    return _logits(), (_f64(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0).reshape(4, 3),)


def _soft_targets():
    return _logits(), (_f64(0.7, 0, 0, 0, 0, 0.4, 0, 0, 0, 0, 0.9, 0).reshape(4, 3),)


def _quality_targets():
    return _logits(), ((torch.tensor([0, 2, 3, 1]), _f64(0.7, 0.4, 0.0, 0.9)),)


def _distribution():
    return _logits(3, 5), (_f64(0.4, 2.7, 3.2),)


def _binary_scores():
    # y f stays away from the hinge (margin 1) and from 0
    return _f64(0.3, -2.0, 1.6, -0.4, 2.5, -1.3), (torch.tensor([1, 0, 1, 0, 0, 1]),)


def _teacher():
    return _logits(3, 4), (_logits(3, 4, seed=1),)


def _embeddings():
    gen = torch.Generator().manual_seed(2)
    return torch.randn(6, 3, generator=gen).double(), (torch.tensor([0, 0, 1, 1, 2, 2]),)


def _features():
    gen = torch.Generator().manual_seed(3)
    return torch.randn(5, 2, generator=gen).double(), (torch.tensor([0, 1, 2, 1, 0]),)


def _center_loss(**kwargs):
    loss = mmdet_losses.CenterLoss(num_classes=3, feat_dim=2, **kwargs)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.5, -0.3], [-1.0, 0.8], [0.2, 1.4]]))
    return loss


#: Registered name -> cases (constructor kwargs, input builder, id). The module is built
#: with ``MODELS.build`` unless the case gives a factory (a callable) instead of kwargs.
CASES = {
    'L1Loss': [({}, _residuals, 'default')],
    'MSELoss': [({}, _residuals, 'default'), (dict(reduction='sum'), _residuals, 'sum')],
    # unweighted, |grad RMSE| is constant (1 / sqrt(n)): the weight makes the penalty bite
    'RMSELoss': [({}, _residuals, 'default'), ({}, _weighted_residuals, 'weighted')],
    'SmoothL1Loss': [({}, _residuals, 'default'), (dict(beta=0.5), _residuals, 'beta0.5'),
                     (dict(beta=0.0), _residuals, 'beta0')],
    'BalancedL1Loss': [({}, _residuals, 'default'),
                       (dict(alpha=0.3, gamma=2.0, beta=2.0), _residuals, 'beta2')],
    'CrossEntropyLoss': [({}, lambda: (_logits(), (torch.tensor([0, 2, 1, 1]),)), 'default'),
                         (dict(use_sigmoid=True), _dense_targets, 'sigmoid')],
    'BinaryCrossEntropyLoss': [({}, _dense_targets, 'dense'), ({}, _index_targets, 'index')],
    'BalancedCrossEntropyLoss': [({}, lambda: (_logits(), (torch.tensor([0, 2, 1, 1]),)),
                                  'batch')],
    'FocalLoss': [({}, _index_targets, 'index'), ({}, _dense_targets, 'dense'),
                  ({}, _soft_targets, 'soft'),
                  (dict(gamma=0.5, alpha=-1.0), _index_targets, 'gamma0.5')],
    'SoftmaxFocalLoss': [({}, lambda: (_logits(), (torch.tensor([0, 2, 1, 1]),)), 'default'),
                         (dict(gamma=0.5), lambda: (_logits(), (torch.tensor([0, 2, 1, 1]),)),
                          'gamma0.5')],
    'VarifocalLoss': [({}, _soft_targets, 'default')],
    'QualityFocalLoss': [({}, _quality_targets, 'pair'), ({}, _soft_targets, 'dense')],
    'DistributionFocalLoss': [({}, _distribution, 'default')],
    'LogisticLoss': [({}, _binary_scores, 'default')],
    'HingeLoss': [({}, _binary_scores, 'default'), (dict(squared=True), _binary_scores,
                                                     'squared')],
    'ExponentialLoss': [({}, _binary_scores, 'default')],
    'KLDivLoss': [(dict(temperature=2.0), _teacher, 'T2')],
    'TripletLoss': [({}, _embeddings, 'batch_hard'),
                    (dict(mining='batch_all', margin=2.0), _embeddings, 'batch_all')],
    'ContrastiveLoss': [(dict(margin=2.0), _embeddings, 'default')],
    'CenterLoss': [(_center_loss, _features, 'default')],
    'IoULoss': [({}, _boxes, 'log'), (dict(mode='linear'), _boxes, 'linear'),
                (dict(mode='square'), _boxes, 'square')],
    'GIoULoss': [({}, _boxes, 'default')],
    'DIoULoss': [({}, _boxes, 'default')],
    'CIoULoss': [({}, _boxes, 'gate'), (dict(iou_gate=None), _boxes, 'no_gate')],
    'EIoULoss': [({}, _boxes, 'default'), (dict(gamma=1.0), _boxes, 'focal')],
    'SIoULoss': [({}, _boxes, 'default'), (dict(neg_gamma=False), _boxes, 'mmdet_sign')],
    'WIoULoss': [({}, _boxes, 'v3'), (dict(version='v1'), _boxes, 'v1'),
                 (dict(version='v2'), _boxes, 'v2')],
    'AlphaIoULoss': [({}, _boxes, 'iou'), (dict(base='ciou'), _boxes, 'ciou'),
                     (dict(base='giou', alpha=2.0), _boxes, 'giou')],
    'MPDIoULoss': [(dict(img_size=(10, 8)), _boxes, 'default')],
    'InnerIoULoss': [({}, _boxes, 'iou'), (dict(base='siou', ratio=1.2), _boxes, 'siou')],
    'FocalerIoULoss': [({}, _boxes, 'iou'), (dict(base='eiou', d=0.1, u=0.9), _boxes, 'eiou')],
    'ShapeIoULoss': [({}, _boxes, 'default'), (dict(scale=0.5), _boxes, 'scale')],
    'NWDLoss': [(dict(constant=2.0), _boxes, 'default')],
    'ExtendedIoULoss': [({}, _boxes, 'default')],
    'YOLOIoULoss': [(dict(iou_mode='giou', bbox_format='xyxy', return_iou=False), _boxes,
                     'giou'),
                    (dict(iou_mode='siou', bbox_format='xyxy', return_iou=False), _boxes,
                     'siou')],
    'LabelSmoothLoss': [(dict(label_smooth_val=0.1),
                         lambda: (_logits(), (torch.tensor([0, 2, 1, 1]),)), 'original'),
                        (dict(label_smooth_val=0.1, mode='multi_label'), _dense_targets,
                         'multi_label')],
    'AsymmetricLoss': [({}, _dense_targets, 'default'),
                       (dict(gamma_pos=1.0), _soft_targets, 'soft')],
    **_zoo_inputs.DOUBLE_BACKWARD_CASES,
    **_stateful_inputs.DOUBLE_BACKWARD_CASES,
    **_custom_inputs.DOUBLE_BACKWARD_CASES,
}
#: The losses that run a fused kernel on the CPU (float64), except the cases of NOT_FUSED.
KERNEL_LOSSES = {'L1Loss', 'MSELoss', 'RMSELoss', 'SmoothL1Loss', 'BalancedL1Loss', 'FocalLoss',
                 'FocalCustomLoss',
                 'IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss',
                 'WIoULoss', 'AlphaIoULoss', 'MPDIoULoss', 'InnerIoULoss', 'FocalerIoULoss',
                 'ShapeIoULoss', 'NWDLoss'}
# (on the CPU the focal kernel takes class indices only)
NOT_FUSED = {('FocalLoss', 'dense'), ('FocalLoss', 'soft'), ('SIoULoss', 'mmdet_sign')}

REGISTERED = sorted(MODELS.module_dict)
PARAMS = [pytest.param(name, i, id=f'{name}-{case[2]}')
          for name in REGISTERED if name not in NO_GRADIENT
          for i, case in enumerate(CASES.get(name, [({}, None, 'missing')]))]


@pytest.fixture(params=['kernel', 'plain'])
def path(request, monkeypatch):
    """'kernel': the fused kernels where they apply; 'plain': every kernel disabled."""
    if request.param == 'kernel':
        if not KERNELS_BUILT:
            pytest.skip('the compiled kernels are not built')
    else:
        monkeypatch.setattr(regression_kernel, '_EXT', None)
        monkeypatch.setattr(iou_kernels, '_EXT', None)
        monkeypatch.setattr(focal_kernel, '_ext', None)
    return request.param


def _build(name, index):
    if name not in CASES:
        pytest.fail(f'{name} is registered but has no input builder in CASES of '
                    f'{__file__}: add one, so its second derivatives are checked')
    kwargs, builder, _ = CASES[name][index]
    module = kwargs() if callable(kwargs) else MODELS.build(dict(type=name, **kwargs))
    module = module.double().eval()  # eval: WIoU v3 uses (and keeps) its running mean
    pred, args = builder()
    return module, pred, args


def _first_order(loss_fn, pred):
    """The gradient with no graph asked (the fast path)."""
    x = pred.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(x), x)
    return grad


def _penalised_gradient(loss_fn, pred):
    """The gradient of ``loss + PENALTY |dloss/dpred|^2``, through double backward."""
    x = pred.detach().clone().requires_grad_(True)
    loss = loss_fn(x)
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    (loss + PENALTY * grad.pow(2).sum()).backward()
    return x.grad


def _penalised_reference(loss_fn, pred, step=1e-6):
    """``g + 2 PENALTY H g`` with ``g`` the first-order gradient and ``H g`` by central
    differences of ``g``: no second derivative of the code under test is used."""
    g = _first_order(loss_fn, pred)
    h = step / g.norm().clamp(min=1e-12)
    hg = (_first_order(loss_fn, pred + h * g) - _first_order(loss_fn, pred - h * g)) / (2 * h)
    return g + 2 * PENALTY * hg


# ------------------------------------------------ losses with a stop-gradient factor
# CIoU's alpha, Focal-EIoU's IoU^gamma, Wise-IoU's c2* and focusing factor carry no gradient by
# definition (the papers' and mmdet's). As in autograd and JAX, a stop-gradient is a constant
# at every order: the second derivative is that of the loss with the factor frozen at its
# current value. Finite differences of the first-order gradient would also move the factor,
# so the reference for these is the finite difference of an independent formula's gradient
# with the factor frozen at the base point (and gradgradcheck, which moves it, does not apply).
def _geometry(a, b):
    """IoU, rho^2, c^2, enclosing sides, sides and CIoU's v of overlapping xyxy boxes."""
    wa, ha, wb, hb = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    iw = torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])
    ih = torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])
    inter = iw * ih
    iou = inter / (wa * ha + wb * hb - inter)
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    rho2 = ((a[:, 0] + a[:, 2] - b[:, 0] - b[:, 2]) ** 2
            + (a[:, 1] + a[:, 3] - b[:, 1] - b[:, 3]) ** 2) / 4
    v = 4 / math.pi ** 2 * (torch.atan(wb / hb) - torch.atan(wa / ha)) ** 2
    return dict(iou=iou, rho2=rho2, c2=cw ** 2 + ch ** 2, cw=cw, ch=ch, dw=wa - wb, dh=ha - hb,
                v=v)


def _wiou_focus(l_iou, version, alpha=1.9, delta=3.0):
    beta = l_iou / 1.0  # eval mode: the running mean, 1 initially
    return beta.sqrt() if version == 'v2' else beta / (delta * alpha ** (beta - delta))


def _frozen_reference(name, case_id):
    """``loss(p, p0)``: the loss at p with its stop-gradient factor taken at p0."""
    def ciou(g, g0):
        alpha = g0['v'] / (1 - g0['iou'] + g0['v'])
        return 1 - g['iou'] + g['rho2'] / g['c2'] + alpha * g['v']

    def eiou(g, g0):
        return (1 - g['iou'] + g['rho2'] / g['c2'] + g['dw'] ** 2 / g['cw'] ** 2
                + g['dh'] ** 2 / g['ch'] ** 2) * g0['iou']

    def wiou(g, g0):
        loss = (1 - g['iou']) * torch.exp(g['rho2'] / g0['c2'])
        return loss if case_id == 'v1' else loss * _wiou_focus(1 - g0['iou'], case_id)

    element = {'CIoULoss': ciou, 'EIoULoss': eiou, 'WIoULoss': wiou}[name]
    target = _boxes()[1][0]

    def loss(p, p0):
        return element(_geometry(p, target), _geometry(p0, target)).mean()
    return loss


#: (name, case id) of the cases above whose factor depends on pred (with a gradient elsewhere).
STOP_GRADIENT = {('CIoULoss', 'no_gate'), ('EIoULoss', 'focal'), ('WIoULoss', 'v1'),
                 ('WIoULoss', 'v2'), ('WIoULoss', 'v3')}


def _case_id(name, index):
    return CASES[name][index][2] if name in CASES else None


def _frozen_penalised_reference(name, case_id, pred, step=1e-6):
    reference = _frozen_reference(name, case_id)
    p0 = pred.detach()

    def grad_at(p):
        x = p.detach().clone().requires_grad_(True)
        return torch.autograd.grad(reference(x, p0), x)[0]
    g = grad_at(p0)
    h = step / g.norm()
    hg = (grad_at(p0 + h * g) - grad_at(p0 - h * g)) / (2 * h)
    return g, g + 2 * PENALTY * hg


def test_every_registered_loss_has_an_input_builder():
    missing = [name for name in REGISTERED if name not in CASES and name not in NO_GRADIENT]
    assert not missing, f'add input builders to CASES for {missing}'


def test_zero_one_loss_has_no_gradient_to_differentiate():
    """The one loss skipped above: its value is detached by design, so there is no first
    derivative, let alone a second."""
    pred = _logits().requires_grad_(True)
    loss = mmdet_losses.ZeroOneLoss()(pred, torch.tensor([0, 2, 1, 1]))
    assert not loss.requires_grad
    expected = (pred.argmax(1) != torch.tensor([0, 2, 1, 1])).double().mean()
    assert float(loss) == float(expected)


@pytest.mark.parametrize('name, index', PARAMS)
def test_gradient_penalty_matches_finite_differences(name, index, path):
    module, pred, args = _build(name, index)

    def loss_fn(x):
        return module(x, *args)

    got = _penalised_gradient(loss_fn, pred)
    if (name, _case_id(name, index)) in STOP_GRADIENT:
        first, expected = _frozen_penalised_reference(name, _case_id(name, index), pred)
        # the independent formula is the loss: same first-order gradient
        torch.testing.assert_close(_first_order(loss_fn, pred), first, rtol=1e-5, atol=1e-7)
    else:
        expected = _penalised_reference(loss_fn, pred)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    if path == 'kernel':  # and the plain path's, to rounding
        with pytest.MonkeyPatch.context() as patch:
            for module_, attr in ((regression_kernel, '_EXT'), (iou_kernels, '_EXT'),
                                  (focal_kernel, '_ext')):
                patch.setattr(module_, attr, None)
            plain = _penalised_gradient(loss_fn, pred)
        torch.testing.assert_close(got, plain, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('name, index', PARAMS)
def test_gradgradcheck(name, index, path):
    if (name, _case_id(name, index)) in STOP_GRADIENT:
        pytest.skip('a stop-gradient factor: gradgradcheck moves it (see _frozen_reference)')
    module, pred, args = _build(name, index)
    x = pred.detach().clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda p: module(p, *args, reduction_override='none'),
                                        (x,), fast_mode=True)


@pytest.mark.parametrize('name, index', PARAMS)
def test_kernel_runs_and_graph_gradient_equals_first_order(name, index, path):
    """The kernel path really runs its kernel (else the tests above would check the plain
    path twice), and asking for a graph changes the gradient's value by rounding at most."""
    module, pred, args = _build(name, index)
    x = pred.detach().clone().requires_grad_(True)
    loss = module(x, *args)
    fused = bool(graph_node_names(loss) & KERNEL_NODES)
    assert fused == (path == 'kernel' and name in KERNEL_LOSSES
                     and (name, _case_id(name, index)) not in NOT_FUSED)
    (with_graph,) = torch.autograd.grad(loss, x, create_graph=True)
    assert with_graph.requires_grad
    torch.testing.assert_close(with_graph.detach(), _first_order(lambda p: module(p, *args), pred),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('name', ['MSELoss', 'GIoULoss', 'FocalLoss'])
def test_gradient_of_target_too(name, path):
    """The gradient of the target (the kernels write it too) is differentiable as well."""
    module, pred, args = _build(name, 0)
    if name == 'FocalLoss':  # the target gets no gradient: a second input is the weight
        weight = torch.rand(pred.shape, generator=torch.Generator().manual_seed(4)).double()
        inputs = (pred.detach().clone().requires_grad_(True), weight.requires_grad_(True))
        assert torch.autograd.gradgradcheck(lambda p, w: module(p, *args, weight=w), inputs,
                                            fast_mode=True)
        return
    inputs = (pred.detach().clone().requires_grad_(True),
              args[0].detach().clone().requires_grad_(True))
    assert torch.autograd.gradgradcheck(lambda p, t: module(p, t, reduction_override='none'),
                                        inputs, fast_mode=True)


def test_issue_repro_mse_gradient_penalty(path):
    """The issue's repro: for MSE over n = 16 elements, the gradient of
    ``loss + 100 |grad|^2`` is ``2 d / n (1 + 400 / n)``, 26 times the first-order gradient
    (the kernel path gave the first-order one: 1.49 against the plain path's 38.67)."""
    target = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64)
    pred = target + torch.linspace(0.5, 2.0, 16, dtype=torch.float64)
    pred.requires_grad_(True)
    loss = mmdet_losses.MSELoss()(pred, target)
    (grad,) = torch.autograd.grad(loss, pred, create_graph=True)
    (loss + 100 * grad.pow(2).sum()).backward()
    d, n = (pred - target).detach(), 16
    torch.testing.assert_close(pred.grad, 2 * d / n * (1 + 400 / n))
    assert float(pred.grad.sum()) == pytest.approx(26 * float((2 * d / n).sum()))


def test_create_graph_gradient_is_differentiable_in_float32(path):
    """float32 (the training dtype) takes the same route: the penalty's gradient is the
    plain path's, 26 times the first-order gradient for MSE over 16 elements."""
    pred = torch.linspace(-1.0, 2.0, 16).requires_grad_(True)
    loss = F.mse_loss(pred, torch.zeros(16))
    (grad,) = torch.autograd.grad(loss, pred, create_graph=True)
    (loss + 100 * grad.pow(2).sum()).backward()
    torch.testing.assert_close(pred.grad, 26 * 2 * pred.detach() / 16)


# ------------------------------------------------- the focal family's pure-PyTorch Functions
@pytest.mark.parametrize('gamma', [0.0, 0.5, 2.0])
def test_focal_double_backward_finite_at_saturated_logits(gamma, monkeypatch):
    """Logits whose ``1 - p_t`` underflows to 0: the analytic gradient is finite, and so is
    its derivative (a plain ``q.pow(gamma)`` would give ``0 * inf`` for gamma < 1)."""
    monkeypatch.setattr(focal_kernel, '_ext', None)
    pred = _f64(-800.0, 800.0, 3.0, -800.0, 800.0, -2.0).reshape(2, 3).requires_grad_(True)
    for target in (torch.tensor([1, 0]), _f64(0, 1, 0, 0, 1, 0).reshape(2, 3)):
        loss = F.focal_loss(pred, target, gamma=gamma, reduction='sum')
        (grad,) = torch.autograd.grad(loss, pred, create_graph=True)
        (hessian_diag,) = torch.autograd.grad(grad.sum(), pred)
        assert torch.isfinite(grad).all() and torch.isfinite(hessian_diag).all()
        # saturated and right: no gradient and no curvature
        assert grad[0, 1] == 0 and hessian_diag[0, 1] == 0
    logits = _f64(40.0, -40.0, 0.0, 1.0, 2.0, 3.0).reshape(2, 3).requires_grad_(True)
    loss = F.softmax_focal_loss(logits, torch.tensor([0, 2]), gamma=gamma, reduction='sum')
    (grad,) = torch.autograd.grad(loss, logits, create_graph=True)
    (hessian_diag,) = torch.autograd.grad(grad.sum(), logits)
    assert torch.isfinite(hessian_diag).all()


def test_hard_focal_term_graph_branch_equals_fast_branch():
    """_HardFocalTerm's backward has a fast in-place branch (no graph) and a differentiable
    one (graph asked): same gradient."""
    z = torch.linspace(-30, 30, 41, dtype=torch.float64).requires_grad_(True)
    from mmdet_losses.functional.cls_focal import _HardFocalTerm
    for gamma in (0.0, 0.5, 2.0):
        (fast,) = torch.autograd.grad(_HardFocalTerm.apply(z, gamma, 0.75).sum(), z)
        (graph,) = torch.autograd.grad(_HardFocalTerm.apply(z, gamma, 0.75).sum(), z,
                                       create_graph=True)
        torch.testing.assert_close(graph.detach(), fast, rtol=1e-12, atol=1e-300)
        expected = 0.75 * torch.sigmoid(z) ** gamma * (
            gamma * torch.sigmoid(-z) * TF.softplus(z) + torch.sigmoid(z))
        torch.testing.assert_close(fast, expected.detach())


@pytest.mark.parametrize('fn, target', [
    (F.focal_loss, torch.tensor([0, 2, 3, 1])),
    (F.focal_loss, _f64(0.7, 0, 0, 0, 0, 0.4, 0, 0, 0, 0, 0.9, 0).reshape(4, 3)),
    (F.softmax_focal_loss, torch.tensor([0, 2, 1, 1])),
    (F.varifocal_loss, _f64(0.7, 0, 0, 0, 0, 0.4, 0, 0, 0, 0, 0.9, 0).reshape(4, 3)),
], ids=['focal-index', 'focal-soft', 'softmax-focal', 'varifocal'])
def test_focal_functions_under_torch_func(fn, target, monkeypatch):
    """The focal family's Functions have the ``setup_context`` form that torch.func needs:
    ``torch.func.grad`` (and its Hessian, ``jacfwd`` free) equals autograd's, on the plain path
    (the fused focal kernel is not a torch.func citizen yet, issue #12)."""
    monkeypatch.setattr(focal_kernel, '_ext', None)
    pred = _logits()
    x = pred.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(fn(x, target), x)
    torch.testing.assert_close(torch.func.grad(lambda p: fn(p, target))(pred), expected)
    hessian = torch.func.jacrev(torch.func.grad(lambda p: fn(p, target)))(pred)
    row = torch.autograd.grad(torch.autograd.grad(fn(x, target), x, create_graph=True)[0][0, 0],
                              x)[0]
    torch.testing.assert_close(hessian[0, 0], row)
