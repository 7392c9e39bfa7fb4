"""The fused C++ IoU / GIoU / DIoU / CIoU kernels against the pure-PyTorch reference path
(``mmdet_losses.functional.iou._plain_iou_family_loss``): values and gradients (pred and
target) on random and adversarial boxes in float32 and float64, gradcheck through the kernel,
and the cases where no kernel applies."""
import math

import pytest
import torch
from _helpers import (adversarial_pairs, assert_finite, graph_node_names, kernel_node,
                      random_pairs)

import mmdet_losses.functional as F
from mmdet_losses.boxes import BoxPair
from mmdet_losses.functional.iou import _plain_iou_family_loss
from mmdet_losses.ops.iou_kernels import fused_iou_loss, kernels_available
from mmdet_losses.reduction import weight_reduce_loss

pytestmark = pytest.mark.skipif(not kernels_available(),
                                reason='mmdet_losses.ops._iou is not built')

MODES = ('iou', 'giou', 'diou', 'ciou', 'iou_square', 'iou_log')
# (mode, iou_gate): CIoU with mmdet's gate and without one (torchvision's).
VARIANTS = [('iou', None), ('giou', None), ('diou', None), ('ciou', 0.5), ('ciou', None),
            ('iou_square', None), ('iou_log', None)]
DTYPES = (torch.float32, torch.float64)
# The eps each loss uses by default (IoULoss 1e-6, the others 1e-7).
EPS = {'iou': 1e-6, 'giou': 1e-7, 'diou': 1e-7, 'ciou': 1e-7, 'iou_square': 1e-6,
       'iou_log': 1e-6}


def plain_loss(pred, target, mode, eps, gate=None):
    """The pure-PyTorch reference: the geometry engineer's path for the four fused
    families, and IoULoss's 'square' and 'log' modes written from mmdet_losses.boxes."""
    if mode in ('iou_square', 'iou_log'):
        iou = BoxPair(pred, target).iou_clamped(eps).clamp(min=eps)
        return 1 - iou.square() if mode == 'iou_square' else -iou.log()
    return _plain_iou_family_loss(pred, target, mode, eps, gate)


def _tolerance(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)


def loss_and_grads(fn, pred, target, mode, eps, gate, weight=None, target_grad=True):
    pred = pred.detach().clone().requires_grad_(True)
    target = target.detach().clone().requires_grad_(target_grad)
    loss = fn(pred, target, mode, eps, gate)
    (loss.sum() if weight is None else (loss * weight).sum()).backward()
    return loss.detach(), pred.grad, target.grad


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('mode,gate', VARIANTS)
def test_random_boxes_match_plain_path(mode, gate, dtype):
    pred, target = random_pairs(500, dtype)
    weight = torch.rand(500, dtype=dtype, generator=torch.Generator().manual_seed(1))
    ours = loss_and_grads(fused_iou_loss, pred, target, mode, EPS[mode], gate, weight)
    ref = loss_and_grads(plain_loss, pred, target, mode, EPS[mode], gate, weight)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, **_tolerance(dtype))
    # the data exercises both sides of CIoU's gate and of every clamp
    iou = 1 - _plain_iou_family_loss(pred, target, 'iou', 1e-6)
    assert (iou > 0.5).sum() > 50 and (iou < 0.5).sum() > 50 and (iou < 2e-6).sum() > 5


@pytest.mark.parametrize('eps', [1e-3, 0.5])
@pytest.mark.parametrize('mode,gate', VARIANTS)
def test_other_eps_matches_plain_path(mode, gate, eps):
    pred, target = random_pairs(200, torch.float64, seed=3)
    pred, target = torch.cat((pred, adversarial_pairs(torch.float64)[0])), \
        torch.cat((target, adversarial_pairs(torch.float64)[1]))
    ours = loss_and_grads(fused_iou_loss, pred, target, mode, eps, gate)
    ref = loss_and_grads(plain_loss, pred, target, mode, eps, gate)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('mode,gate', VARIANTS)
def test_adversarial_boxes_finite_and_match_plain_path(mode, gate, dtype):
    pred, target = adversarial_pairs(dtype)
    ours = loss_and_grads(fused_iou_loss, pred, target, mode, EPS[mode], gate)
    ref = loss_and_grads(plain_loss, pred, target, mode, EPS[mode], gate)
    assert_finite(*ours)
    for o, r in zip(ours, ref):
        finite = torch.isfinite(r)
        assert finite.all(), 'the reference itself is expected to be finite here'
        # tiny and huge boxes: gradients of order 1/eps in float32; compare relatively
        torch.testing.assert_close(o, r, rtol=1e-4 if dtype == torch.float32 else 1e-9,
                                   atol=1e-5 if dtype == torch.float32 else 1e-11)


def test_hand_derived_values():
    """Two 2x2 boxes offset by (1, 1): inter 1, union 7, enclosing 3x3 (c^2 = 18),
    rho^2 = 2; same aspect ratio, so CIoU = DIoU."""
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    iou, giou = 1 / 7, 1 / 7 - (9 - 7) / 9
    diou = 1 / 7 - 2 / 18
    expected = {'iou': 1 - iou, 'giou': 1 - giou, 'diou': 1 - diou, 'ciou': 1 - diou,
                'iou_square': 1 - iou ** 2, 'iou_log': -math.log(iou)}
    for mode, value in expected.items():
        loss = fused_iou_loss(pred, target, mode, 1e-12, None)
        torch.testing.assert_close(loss, torch.tensor([value], dtype=torch.float64))
    # Identical boxes: every loss is 0 (up to eps) and so is every gradient.
    same = pred.clone().requires_grad_(True)
    for mode in MODES:
        loss = fused_iou_loss(same, pred, mode, 1e-7, None)
        (grad,) = torch.autograd.grad(loss.sum(), same)
        assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
        torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-6, rtol=0)


@pytest.mark.parametrize('mode,gate', [('iou', None), ('giou', None), ('diou', None),
                                       ('ciou', 0.5), ('iou_square', None), ('iou_log', None)])
def test_gradcheck_float64(mode, gate):
    """Analytic backward vs finite differences, pred and target, away from the kinks. For CIoU
    the pairs lie below the gate (alpha = 0): above it alpha is held constant by design (no
    gradient), which finite differences cannot reproduce; the alpha * v gradient is checked
    against autograd of the plain path in the tests above."""
    pred, target = random_pairs(40, torch.float64, seed=5)
    iou = 1 - _plain_iou_family_loss(pred, target, 'iou', 1e-6)
    if mode == 'ciou':
        keep = (iou < 0.45) & (iou > 0.05)
    else:
        keep = torch.ones_like(iou, dtype=torch.bool)
    # stay away from ties between coordinates (where the gradient is a subgradient)
    gap = (pred[:, None, :] - target[:, :, None]).abs().flatten(1).min(1).values
    keep &= gap > 1e-3
    pred, target = pred[keep][:6].requires_grad_(True), target[keep][:6].requires_grad_(True)
    assert pred.shape[0] == 6
    assert torch.autograd.gradcheck(
        lambda p, t: fused_iou_loss(p, t, mode, 1e-7, gate), (pred, target))


def test_ciou_gate_and_alpha_without_gradient():
    """Above the gate CIoU adds alpha * v with alpha a constant; below it, it is DIoU."""
    pred = torch.tensor([[0.0, 0.0, 4.0, 2.0], [0.0, 0.0, 4.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 4.0, 2.5], [0.0, 0.0, 4.0, 6.0]], dtype=torch.float64)
    ciou = fused_iou_loss(pred, target, 'ciou', 1e-9, 0.5)
    diou = fused_iou_loss(pred, target, 'diou', 1e-9, None)
    iou = torch.tensor([8 / 10, 8 / 24], dtype=torch.float64)
    angle = lambda w, h: torch.atan(torch.tensor(w / h, dtype=torch.float64))  # noqa: E731
    v = 4 / torch.pi ** 2 * (angle(4, 2.5) - angle(4, 2)) ** 2
    alpha = v / (1 - iou[0] + v)
    torch.testing.assert_close(ciou[0], diou[0] + alpha * v)
    torch.testing.assert_close(ciou[1], diou[1])  # IoU 1/3 < 0.5: no aspect term


def test_target_gradient_only_and_no_gradient():
    pred, target = random_pairs(50, torch.float64)
    for mode in MODES:
        t = target.clone().requires_grad_(True)
        fused_iou_loss(pred, t, mode, 1e-7, None).sum().backward()
        t_ref = target.clone().requires_grad_(True)
        plain_loss(pred, t_ref, mode, 1e-7, None).sum().backward()
        torch.testing.assert_close(t.grad, t_ref.grad)
        with torch.no_grad():
            loss = fused_iou_loss(pred, target, mode, 1e-7, None)
        assert not loss.requires_grad
        torch.testing.assert_close(loss, plain_loss(pred, target, mode, 1e-7))


def test_non_contiguous_and_empty_inputs():
    pred, target = random_pairs(30, torch.float32)
    wide = torch.zeros(30, 8)
    wide[:, ::2] = pred
    strided = wide[:, ::2].requires_grad_(False)
    assert not strided.is_contiguous()
    p = strided.clone().requires_grad_(True)
    torch.testing.assert_close(fused_iou_loss(strided, target, 'giou', 1e-7, None),
                               _plain_iou_family_loss(pred, target, 'giou', 1e-7))
    loss = fused_iou_loss(p, target, 'giou', 1e-7, None)
    loss.sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0

    empty = torch.zeros(0, 4, requires_grad=True)
    loss = fused_iou_loss(empty, torch.zeros(0, 4), 'ciou', 1e-7, 0.5)
    assert loss.shape == (0,) and loss.requires_grad
    loss.sum().backward()
    assert empty.grad.shape == (0, 4)


@pytest.mark.parametrize('case', ['half', 'int', 'mixed', 'mode', 'shape', 'meta'])
def test_returns_none_where_no_kernel_applies(case):
    pred, target = random_pairs(4, torch.float32)
    mode = 'giou'
    if case == 'half':
        pred, target = pred.half(), target.half()
    elif case == 'int':
        pred, target = pred.long(), target.long()
    elif case == 'mixed':
        target = target.double()
    elif case == 'mode':
        mode = 'siou'
    elif case == 'shape':
        pred, target = pred[None], target[None]
    else:
        pred, target = pred.to('meta'), target.to('meta')
    assert fused_iou_loss(pred, target, mode, 1e-7, None) is None


@pytest.mark.parametrize('name,mode', [('iou_loss', 'iou'), ('giou_loss', 'giou'),
                                       ('diou_loss', 'diou'), ('ciou_loss', 'ciou')])
def test_functional_forms_run_the_kernel(name, mode):
    """The registered functional runs the kernel (its graph holds the fused node) and gives
    the plain path's weighted mean."""
    pred, target = random_pairs(64, torch.float32, seed=7)
    weight = torch.rand(64)
    kwargs = dict(mode='linear') if name == 'iou_loss' else {}
    p = pred.clone().requires_grad_(True)
    loss = getattr(F, name)(p, target, weight, avg_factor=20.0, **kwargs)
    assert kernel_node('iou_loss') in graph_node_names(loss)
    eps = 1e-6 if name == 'iou_loss' else 1e-7
    gate = 0.5 if mode == 'ciou' else None
    ref = weight_reduce_loss(_plain_iou_family_loss(pred, target, mode, eps, gate), weight,
                             'mean', 20.0)
    torch.testing.assert_close(loss, ref)


# ----------------------------------------------------- the id tables (csrc/iou/ids.h)
# The registered loss of each fused variant: a new variant needs a row here too.
VARIANT_CLASSES = {'eiou': 'EIoULoss', 'siou': 'SIoULoss', 'wiou': 'WIoULoss',
                   'alpha_iou': 'AlphaIoULoss', 'mpdiou': 'MPDIoULoss',
                   'inner_iou': 'InnerIoULoss', 'focaler_iou': 'FocalerIoULoss',
                   'shape_iou': 'ShapeIoULoss', 'nwd': 'NWDLoss'}


def test_id_tables_come_from_the_extension_and_agree_with_the_plain_elements():
    import mmdet_losses
    from mmdet_losses.functional import iou as plain
    from mmdet_losses.ops import iou_kernels
    from mmdet_losses.registry import MODELS
    ids = iou_kernels._EXT.ids()
    assert iou_kernels.FUSED_MODES == ids['modes']
    assert iou_kernels.FUSED_VARIANTS == ids['variants']
    assert iou_kernels.FUSED_BASES == ids['bases']
    for table in ids.values():  # a name's id is its position: 0 .. n-1, no gap
        assert sorted(table.values()) == list(range(len(table)))
    # every id has its plain element, and every plain element its id
    assert set(iou_kernels.FUSED_VARIANTS) == set(plain._PLAIN_VARIANTS)
    assert set(iou_kernels.FUSED_BASES) == set(plain._BASE_LOSSES) == set(plain.COMPOSITE_BASES)
    assert list(iou_kernels.FUSED_BASES)[:len(plain.ALPHA_IOU_BASES)] == list(
        plain.ALPHA_IOU_BASES)
    assert set(iou_kernels.FUSED_MODES) == set(MODES) >= set(plain.FUSED_MODES)
    # and a registered loss class
    assert set(VARIANT_CLASSES) == set(iou_kernels.FUSED_VARIANTS)
    for name in VARIANT_CLASSES.values():
        assert MODELS.get(name) is getattr(mmdet_losses, name)


def test_regression_kinds_come_from_the_extension():
    from mmdet_losses.functional import regression
    from mmdet_losses.ops import regression_kernel
    if not regression_kernel.kernels_available():
        pytest.skip('mmdet_losses.ops._regression is not built')
    kinds = regression_kernel._EXT.ids()['kinds']
    assert regression_kernel.FUSED_KINDS == kinds
    assert sorted(kinds.values()) == list(range(len(kinds)))
    assert set(kinds) == {'l1', 'mse', 'smooth_l1', 'balanced_l1'}
    assert hasattr(regression, '_smooth_l1_elementwise')
    assert hasattr(regression, '_balanced_l1_elementwise')
