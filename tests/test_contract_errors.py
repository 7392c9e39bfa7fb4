"""The argument contract (docs/contract.md, points 5 to 9 of issue #11): every numeric argument
refuses NaN, inf, complex and bool; avg_factor is a finite, real, non-negative number or scalar
tensor on the loss's device; complex tensors, a weight that is not a tensor and tensors on
different devices are refused before any kernel reads memory; targets outside their domain are
refused (on the CPU); and the errors that used to be opaque name their argument.

``meta`` tensors stand for "another device" (no GPU needed). Every error is checked for its
type and for naming its argument; the valid edge values are checked for their values.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import mmdet_losses as M
from mmdet_losses import functional as F
from mmdet_losses.reduction import AVG_FACTOR_EPS, check_avg_factor, weight_reduce_loss
from mmdet_losses.validation import check_int, check_number, check_numbers

import _zoo_inputs
import _stateful_inputs
import _custom_inputs

NAN, INF = float('nan'), float('inf')


# ------------------------------------------------------------------------- input builders
def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _boxes(n=3, seed=0):
    xy = torch.rand(n, 2, generator=_gen(seed)) * 10
    wh = 1 + torch.rand(n, 2, generator=_gen(seed + 100)) * 5
    return torch.cat((xy, xy + wh), 1)


def _logits(n=3, c=4):
    return torch.randn(n, c, generator=_gen())


LABELS6 = torch.tensor([0, 0, 1, 1, 2, 2])
_DENSE = lambda: (_logits(), torch.randn(3, 4, generator=_gen(1)))  # noqa: E731
_SOFT = lambda: (_logits(), torch.rand(3, 4, generator=_gen(1)))  # noqa: E731
_INDEX = lambda: (_logits(), torch.tensor([0, 1, 3]))  # noqa: E731
_BOXES = lambda: (_boxes(), _boxes(seed=1))  # noqa: E731
_EMBED = lambda: (torch.randn(6, 4, generator=_gen()), LABELS6)  # noqa: E731

#: registered loss name -> (constructor kwargs, () -> (pred, target)). Every registered loss
#: must have one (test_every_registered_loss_has_a_builder), so a new loss is covered.
BUILDERS = {
    'L1Loss': ({}, _DENSE), 'MSELoss': ({}, _DENSE), 'RMSELoss': ({}, _DENSE),
    'SmoothL1Loss': ({}, _DENSE), 'BalancedL1Loss': ({}, _DENSE),
    'CrossEntropyLoss': ({}, _INDEX), 'BinaryCrossEntropyLoss': ({}, _SOFT),
    'BalancedCrossEntropyLoss': ({}, _INDEX),
    'FocalLoss': ({}, lambda: (_logits(), torch.tensor([0, 1, 4]))),
    'SoftmaxFocalLoss': ({}, _INDEX), 'VarifocalLoss': ({}, _SOFT),
    'QualityFocalLoss': ({}, _SOFT),
    'DistributionFocalLoss': ({}, lambda: (_logits(3, 5), torch.tensor([0.5, 1.5, 3.9]))),
    'LogisticLoss': ({}, lambda: (_logits(), torch.tensor([[0, 1, 1, 0]] * 3))),
    'ExponentialLoss': ({}, lambda: (_logits(), torch.tensor([[0, 1, 1, 0]] * 3))),
    'HingeLoss': ({}, _INDEX), 'KLDivLoss': ({}, _DENSE), 'ZeroOneLoss': ({}, _INDEX),
    'TripletLoss': ({}, _EMBED), 'ContrastiveLoss': ({}, _EMBED),
    'CenterLoss': ({'num_classes': 3, 'feat_dim': 4}, _EMBED),
    'IoULoss': ({}, _BOXES), 'GIoULoss': ({}, _BOXES), 'DIoULoss': ({}, _BOXES),
    'CIoULoss': ({}, _BOXES), 'EIoULoss': ({}, _BOXES), 'SIoULoss': ({}, _BOXES),
    'WIoULoss': ({}, _BOXES), 'AlphaIoULoss': ({}, _BOXES),
    'MPDIoULoss': ({'img_size': (64, 48)}, _BOXES), 'InnerIoULoss': ({}, _BOXES),
    'FocalerIoULoss': ({}, _BOXES), 'ShapeIoULoss': ({}, _BOXES), 'NWDLoss': ({}, _BOXES),
    'ExtendedIoULoss': ({}, _BOXES), 'YOLOIoULoss': ({'return_iou': False}, _BOXES),
    'LabelSmoothLoss': ({'label_smooth_val': 0.1}, _INDEX), 'AsymmetricLoss': ({}, _SOFT),
    **_zoo_inputs.ERROR_BUILDERS,
    **_stateful_inputs.ERROR_BUILDERS,
    **_custom_inputs.ERROR_BUILDERS,
}
NAMES = sorted(BUILDERS)


def _build(name, **kwargs):
    ctor, inputs = BUILDERS[name]
    torch.manual_seed(0)  # CenterLoss draws its centres
    loss = getattr(M, name)(**ctor, **kwargs)
    pred, target = inputs()
    weight = torch.ones_like(loss(pred, target, reduction_override='none'), dtype=torch.float32)
    return loss, pred, target, weight


def _raises(exc, *words):
    """pytest.raises whose message must contain every one of ``words``."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *args):
            out = self.ctx.__exit__(*args)
            message = str(self.info.value)
            for word in words:
                assert word in message, f'{word!r} not in the message {message!r}'
            return out
    return _Check()


def test_every_registered_loss_has_a_builder():
    assert set(M.MODELS.module_dict) <= set(BUILDERS)


# ----------------------------------------------------------------- point 5: numeric arguments
@pytest.mark.parametrize('value', [NAN, INF, -INF])
def test_check_number_refuses_non_finite(value):
    with _raises(ValueError, 'gamma', str(value)):
        check_number('gamma', value)


@pytest.mark.parametrize('value', [1j, 1 + 0j, True, False, np.bool_(True), 'x', None, [1.0],
                                   torch.tensor(1.0)])
def test_check_number_refuses_non_real(value):
    with _raises(TypeError, 'gamma'):
        check_number('gamma', value)


@pytest.mark.parametrize('value,expected', [(0, 0.0), (2, 2.0), (0.25, 0.25),
                                            (np.float32(0.5), 0.5), (np.int64(3), 3.0),
                                            (np.float64(1e300), 1e300)])
def test_check_number_accepts_real_numbers(value, expected):
    out = check_number('gamma', value, low=0.0)
    assert type(out) is float and out == expected


def test_check_number_inf_only_where_allowed():
    assert check_number('p', INF, low=1.0, allow_inf=True) == INF
    with _raises(ValueError, 'p', 'nan'):
        check_number('p', NAN, low=1.0, allow_inf=True)


#: (loss class, constructor kwargs besides the bad one, the argument checked)
NUMERIC_ARGS = [
    ('L1Loss', {}, 'loss_weight'), ('SmoothL1Loss', {}, 'beta'),
    ('BalancedL1Loss', {}, 'alpha'), ('BalancedL1Loss', {}, 'gamma'),
    ('BalancedL1Loss', {}, 'beta'), ('CrossEntropyLoss', {}, 'label_smoothing'),
    ('BalancedCrossEntropyLoss', {}, 'beta'), ('FocalLoss', {}, 'gamma'),
    ('FocalLoss', {}, 'alpha'), ('SoftmaxFocalLoss', {}, 'gamma'),
    ('SoftmaxFocalLoss', {}, 'alpha'), ('VarifocalLoss', {}, 'alpha'),
    ('VarifocalLoss', {}, 'gamma'), ('QualityFocalLoss', {}, 'beta'),
    ('HingeLoss', {}, 'margin'), ('KLDivLoss', {}, 'temperature'),
    ('TripletLoss', {}, 'margin'), ('TripletLoss', {}, 'p'), ('ContrastiveLoss', {}, 'margin'),
    ('GIoULoss', {}, 'eps'), ('CIoULoss', {}, 'iou_gate'), ('EIoULoss', {}, 'gamma'),
    ('SIoULoss', {}, 'theta'), ('WIoULoss', {}, 'alpha'), ('WIoULoss', {}, 'delta'),
    ('WIoULoss', {}, 'momentum'), ('AlphaIoULoss', {}, 'alpha'),
    ('InnerIoULoss', {}, 'ratio'), ('FocalerIoULoss', {}, 'd'), ('FocalerIoULoss', {}, 'u'),
    ('ShapeIoULoss', {}, 'scale'), ('NWDLoss', {}, 'constant'),
    ('MPDIoULoss', {}, 'img_size'),
]


@pytest.mark.parametrize('name,kwargs,arg', NUMERIC_ARGS)
@pytest.mark.parametrize('bad', [NAN, INF, -INF])
def test_constructor_refuses_non_finite(name, kwargs, arg, bad):
    value = (bad, 10) if arg == 'img_size' else bad
    if arg == 'p' and bad == INF:  # documented: p = inf is the max-norm
        assert getattr(M, name)(**kwargs, p=bad).p == INF
        return
    with _raises(ValueError, arg, str(bad)):
        getattr(M, name)(**kwargs, **{arg: value})


@pytest.mark.parametrize('name,kwargs,arg', NUMERIC_ARGS)
@pytest.mark.parametrize('bad', [2j, True])
def test_constructor_refuses_complex_and_bool(name, kwargs, arg, bad):
    value = (bad, 10) if arg == 'img_size' else bad
    with _raises(TypeError, arg):
        getattr(M, name)(**kwargs, **{arg: value})


@pytest.mark.parametrize('call,arg', [
    (lambda v: F.focal_loss(_logits(), torch.tensor([0, 1, 4]), gamma=v), 'gamma'),
    (lambda v: F.smooth_l1_loss(torch.zeros(2), torch.ones(2), beta=v), 'beta'),
    (lambda v: F.ciou_loss(_boxes(), _boxes(seed=1), iou_gate=v), 'iou_gate'),
    (lambda v: F.mpdiou_loss(_boxes(), _boxes(seed=1), img_size=(v, 10)), 'img_size'),
    (lambda v: F.mpdiou_loss(_boxes(), _boxes(seed=1), img_size=v), 'img_size'),
    (lambda v: F.kl_div_loss(_logits(), _logits(), temperature=v), 'temperature'),
    (lambda v: F.triplet_margin_loss(_logits(), _logits(), _logits(), margin=v), 'margin'),
    (lambda v: F.cross_entropy_loss(_logits(), torch.tensor([0, 1, 3]), label_smoothing=v),
     'label_smoothing'),
    (lambda v: M.box_iou(_boxes(), _boxes(), eps=v), 'eps'),
    (lambda v: M.diou_nms(_boxes(), torch.rand(3), iou_threshold=v), 'iou_threshold'),
    (lambda v: M.diou_nms(_boxes(), torch.rand(3), 0.5, beta=v), 'beta'),
])
def test_functional_refuses_non_finite(call, arg):
    for bad in (NAN, INF):
        with _raises(ValueError, arg):
            call(bad)
    with _raises(TypeError, arg):
        call(1j)


@pytest.mark.parametrize('make', [
    lambda v: M.CrossEntropyLoss(class_weight=v),
    lambda v: M.BinaryCrossEntropyLoss(class_weight=v),
    lambda v: M.BinaryCrossEntropyLoss(pos_weight=v),
    lambda v: M.BalancedCrossEntropyLoss(class_counts=v),
    lambda v: M.SoftmaxFocalLoss(alpha=v),
])
def test_class_vectors_refuse_non_finite_values(make):
    with _raises(ValueError, '[1]', 'nan'):
        make([1.0, NAN, 1.0, 1.0])
    with _raises(ValueError, '[2]', 'inf'):
        make([1.0, 1.0, INF, 1.0])
    with _raises(TypeError, '[0]'):
        make([1j, 1.0, 1.0, 1.0])


def test_class_vector_tensor_refused_in_the_functional():
    with _raises(ValueError, 'class_weight', 'nan'):
        F.cross_entropy_loss(_logits(), torch.tensor([0, 1, 3]),
                             class_weight=torch.tensor([1.0, NAN, 1.0, 1.0]))
    with _raises(TypeError, 'pos_weight', 'complex'):
        F.binary_cross_entropy_loss(_logits(), torch.rand(3, 4),
                                    pos_weight=torch.ones(4, dtype=torch.complex64))
    check_numbers('class_weight', torch.ones(4, device='meta'))  # values not read: no error


def test_valid_edge_values_still_work():
    x, t = torch.tensor([0.5, 3.0]), torch.tensor([0.0, 1.0])
    # a numpy scalar loss_weight multiplies the loss
    assert torch.allclose(M.L1Loss(loss_weight=np.float32(2.0))(x, t), torch.tensor(2.5))
    # loss_weight 0 and negative are numbers like any other (mmdet accepts them)
    assert M.L1Loss(loss_weight=0)(x, t).item() == 0.0
    assert torch.allclose(M.L1Loss(loss_weight=-1)(x, t), torch.tensor(-1.25))
    # FocalLoss: gamma=0 and alpha<0 (no alpha term) is the plain BCE
    logits, dense = _logits(), torch.rand(3, 4, generator=_gen(2))
    assert torch.allclose(M.FocalLoss(gamma=0, alpha=-1)(logits, dense),
                          TF.binary_cross_entropy_with_logits(logits, dense), atol=1e-6)
    # label_smoothing=1 is uniform targets
    labels = torch.tensor([0, 1, 3])
    assert torch.allclose(M.CrossEntropyLoss(label_smoothing=1.0)(logits, labels),
                          -TF.log_softmax(logits, 1).mean(1).mean(), atol=1e-6)
    # p = inf is the Chebyshev distance
    emb = torch.randn(5, 3, generator=_gen(3))
    assert torch.allclose(F.pairwise_distances(emb, p=INF), torch.cdist(emb, emb, p=INF))
    # img_size as one numpy number: a square image
    a, b = _boxes(), _boxes(seed=1)
    assert torch.allclose(F.mpdiou_loss(a, b, img_size=np.float32(64)),
                          F.mpdiou_loss(a, b, img_size=(64, 64)))
    # momentum 0 and 1, iou_gate 0 and 1: the ends of their ranges
    M.WIoULoss(momentum=0.0), M.WIoULoss(momentum=1.0)
    M.CIoULoss(iou_gate=0.0), M.CIoULoss(iou_gate=1.0)


def test_ignore_index_is_an_integer():
    with _raises(TypeError, 'ignore_index', "'x'"):
        M.CrossEntropyLoss(ignore_index='x')
    with _raises(TypeError, 'ignore_index'):
        M.BinaryCrossEntropyLoss(ignore_index=True)
    with _raises(ValueError, 'ignore_index', '1.5'):
        M.SoftmaxFocalLoss(ignore_index=1.5)
    with _raises(ValueError, 'ignore_index', 'nan'):
        F.cross_entropy_loss(_logits(), torch.tensor([0, 1, 3]), ignore_index=NAN)
    assert check_int('ignore_index', 255.0) == 255
    assert check_int('ignore_index', np.int64(-1)) == -1
    # ignore_index given as an integral float still ignores its samples
    logits, labels = _logits(), torch.tensor([0, 255, 3])
    out = M.CrossEntropyLoss(ignore_index=255.0, reduction='none')(logits, labels)
    expected = -TF.log_softmax(logits, 1)[[0, 2], [0, 3]]
    assert out[1] == 0 and torch.allclose(out[[0, 2]], expected)


# ------------------------------------------------------------------------ point 6: avg_factor
@pytest.mark.parametrize('name', NAMES)
def test_avg_factor_checked_on_every_loss(name):
    loss, pred, target, weight = _build(name)
    with _raises(TypeError, 'avg_factor'):
        loss(pred, target, avg_factor=1j)
    for bad in (NAN, INF, -1.0, torch.tensor(NAN), torch.tensor(-INF)):
        with _raises(ValueError, 'avg_factor'):
            loss(pred, target, avg_factor=bad)
    with _raises(ValueError, 'avg_factor', 'meta', 'cpu'):
        loss(pred, target, avg_factor=torch.tensor(2.0, device='meta'))


@pytest.mark.parametrize('bad,exc,words', [
    (1j, TypeError, ['avg_factor', 'complex']),
    (True, TypeError, ['avg_factor']),
    ('2', TypeError, ['avg_factor']),
    (torch.tensor(2 + 0j), TypeError, ['avg_factor', 'complex']),
    (NAN, ValueError, ['avg_factor', 'nan']),
    (INF, ValueError, ['avg_factor', 'inf']),
    (-INF, ValueError, ['avg_factor', 'inf']),
    (-2, ValueError, ['avg_factor', '>= 0', '-2']),
    (torch.tensor(NAN), ValueError, ['avg_factor', 'nan']),
    (torch.tensor(INF), ValueError, ['avg_factor', 'inf']),
    (torch.tensor(-3.0, requires_grad=True), ValueError, ['avg_factor', '>= 0', '-3']),
    (torch.tensor([1.0, 2.0]), ValueError, ['avg_factor', 'scalar']),
    (torch.tensor(2.0, device='meta'), ValueError, ['avg_factor', 'meta', 'cpu']),
])
@pytest.mark.parametrize('reduction', ['mean', 'none'])
def test_avg_factor_contract(bad, exc, words, reduction):
    with _raises(exc, *words):
        weight_reduce_loss(torch.ones(3), reduction=reduction, avg_factor=bad)


def test_avg_factor_valid_values():
    loss = torch.tensor([1.0, 2.0, 3.0])
    for good in (4, 4.0, np.float32(4.0), torch.tensor(4), torch.tensor(4.0, dtype=torch.float64),
                 torch.tensor([4.0]), torch.tensor(4.0, requires_grad=True)):
        out = weight_reduce_loss(loss, avg_factor=good)
        assert torch.allclose(out, torch.tensor(6.0 / (4.0 + AVG_FACTOR_EPS)))
    # 0 is allowed: mmdet's eps keeps the division finite
    assert weight_reduce_loss(loss, avg_factor=0).item() == pytest.approx(6.0 / AVG_FACTOR_EPS)
    # a CPU scalar tensor is accepted with a loss on any device (as torch accepts it), and
    # its value is still checked
    meta_loss = torch.ones(3, device='meta')
    assert weight_reduce_loss(meta_loss, avg_factor=torch.tensor(2.0)).device.type == 'meta'
    with _raises(ValueError, 'avg_factor', '>= 0'):
        weight_reduce_loss(meta_loss, avg_factor=torch.tensor(-2.0))
    # a tensor on the loss's own device is accepted
    check_avg_factor(torch.tensor(2.0, device='meta'), torch.device('meta'))


def test_values_not_read_while_compiling():
    # avg_factor and the target domain are value checks: skipped while tracing (fullgraph
    # would fail on the host read), so the compiled call gives the eager value
    def fn(x, t, a):
        return weight_reduce_loss(F.binary_cross_entropy_loss(x, t, reduction='none'),
                                  avg_factor=a)
    compiled = torch.compile(fn, fullgraph=True, backend='eager')
    x, t = _logits(), torch.rand(3, 4, generator=_gen(4))
    expected = TF.binary_cross_entropy_with_logits(x, t, reduction='sum') / (
        2.0 + AVG_FACTOR_EPS)
    assert torch.allclose(compiled(x, t, torch.tensor(2.0)), expected)


# --------------------------------------------------------- point 7: tensors of the wrong kind
@pytest.mark.parametrize('name', NAMES)
def test_complex_and_list_tensors_refused(name):
    loss, pred, target, weight = _build(name)
    with _raises(TypeError, 'pred'):
        loss(pred.to(torch.complex64), target)
    with _raises(TypeError, 'target'):
        loss(pred, target.to(torch.complex64))
    with _raises(TypeError, 'weight'):
        loss(pred, target, weight=weight.to(torch.complex64))
    with _raises(TypeError, 'weight', 'list'):
        loss(pred, target, weight=weight.tolist())


@pytest.mark.parametrize('name', NAMES)
def test_device_mismatch_refused_naming_both_devices(name):
    loss, pred, target, weight = _build(name)
    with _raises(ValueError, 'target', 'meta', 'cpu'):
        loss(pred, target.to('meta'))
    with _raises(ValueError, 'weight', 'meta', 'cpu'):
        loss(pred, target, weight=weight.to('meta'))
    # the valid call with the same tensors works and weight 1 changes nothing
    assert torch.allclose(loss(pred, target, weight=weight), loss(pred, target))


def test_l1_complex_target_no_longer_drops_imaginary_part():
    with _raises(TypeError, 'target', 'complex'):
        M.L1Loss()(torch.ones(2), torch.full((2,), 5j))


def test_hinge_labels_on_meta_refused_before_reading_memory():
    with _raises(ValueError, 'target', 'meta', 'cpu'):
        M.HingeLoss()(_logits(), torch.tensor([0, 1, 3], device='meta'))


def test_functionals_check_devices():
    meta = torch.device('meta')
    with _raises(ValueError, 'meta', 'cpu'):
        F.quality_focal_loss(_logits(), (torch.tensor([0, 1, 4]),
                                         torch.rand(3, device=meta)))
    with _raises(ValueError, 'meta', 'cpu'):
        F.contrastive_loss(_logits(), _logits(), torch.tensor([1, 0, 1], device=meta))
    with _raises(ValueError, 'centers', 'meta', 'cpu'):
        F.center_loss(_logits(6, 4), LABELS6, centers=torch.zeros(3, 4, device=meta))
    with _raises(ValueError, 'negative', 'meta', 'cpu'):
        F.triplet_margin_loss(_logits(), _logits(), _logits().to(meta))
    with _raises(ValueError, 'y', 'meta', 'cpu'):
        F.pairwise_distances(_logits(), _logits().to(meta))
    with _raises(ValueError, 'label', 'meta', 'cpu'):
        F.mask_cross_entropy_loss(torch.zeros(2, 3, 2, 2), torch.ones(2, 2, 2),
                                  torch.tensor([0, 2], device=meta))
    with _raises(ValueError, 'boxes2', 'meta', 'cpu'):
        M.box_iou(_boxes(), _boxes().to(meta))
    with _raises(ValueError, 'scores', 'meta', 'cpu'):
        M.diou_nms(_boxes(), torch.rand(3, device=meta), 0.5)
    with _raises(ValueError, 'weight', 'meta', 'cpu'):
        weight_reduce_loss(torch.ones(3), torch.ones(3, device=meta))


def test_same_device_meta_still_runs():
    pred, target = torch.zeros(3, 4, device='meta'), torch.zeros(3, 4, device='meta')
    assert M.L1Loss()(pred, target, weight=torch.ones(3, 4, device='meta')).device.type == 'meta'
    boxes = torch.zeros(3, 4, device='meta')
    assert M.GIoULoss()(boxes, boxes, weight=torch.ones(3, device='meta')).device.type == 'meta'


# -------------------------------------------------------- point 8: targets outside their domain
def test_bce_integer_labels_given_as_dense_targets_refused():
    with _raises(ValueError, 'target', '0 or 1', '2'):
        M.BinaryCrossEntropyLoss()(torch.ones(3), torch.tensor([0, 2, 3]))


@pytest.mark.parametrize('bad', [1.5, -0.5])
def test_soft_targets_outside_unit_interval_refused(bad):
    logits = _logits()
    dense = torch.full((3, 4), 0.5)
    dense[1, 2] = bad
    with _raises(ValueError, 'target', '[0, 1]', str(bad)):
        M.FocalLoss()(logits, dense)
    with _raises(ValueError, 'target', '[0, 1]', str(bad)):
        M.VarifocalLoss()(logits, dense)
    with _raises(ValueError, 'target', '[0, 1]', str(bad)):
        M.QualityFocalLoss()(logits, dense)
    scores = torch.tensor([0.5, bad, 0.0])
    with _raises(ValueError, 'target[1] (scores)', str(bad)):
        M.QualityFocalLoss()(logits, (torch.tensor([0, 1, 4]), scores))
    with _raises(ValueError, 'target', str(bad)):
        M.BinaryCrossEntropyLoss()(logits, dense)


def test_bce_ignore_index_targets_are_ignored_not_refused():
    logits = _logits()
    dense = torch.rand(3, 4, generator=_gen(5))
    for ignore_index in (255, None):  # None means -100, as in mmdet
        target = dense.clone()
        target[0, 1] = target[2, 3] = -100 if ignore_index is None else ignore_index
        out = M.BinaryCrossEntropyLoss(ignore_index=ignore_index, reduction='none')(logits,
                                                                                   target)
        expected = TF.binary_cross_entropy_with_logits(logits, dense, reduction='none')
        expected[0, 1] = expected[2, 3] = 0
        assert torch.allclose(out, expected)
    # another negative value is outside the domain (mmdet would silently ignore it)
    target = dense.clone()
    target[0, 1] = -1.0
    with _raises(ValueError, 'target', 'ignore_index=-100', '-1'):
        M.BinaryCrossEntropyLoss()(logits, target)


def test_valid_targets_at_the_domain_edges():
    logits = _logits()
    hard = torch.tensor([[0, 1, 1, 0]] * 3)
    out = M.BinaryCrossEntropyLoss(reduction='none')(logits, hard)
    assert torch.allclose(out, TF.binary_cross_entropy_with_logits(logits, hard.float(),
                                                                    reduction='none'))
    soft = torch.tensor([[0.0, 1.0, 0.25, 1.0]] * 3)
    p = torch.sigmoid(logits)
    p_t = p * soft + (1 - p) * (1 - soft)
    alpha_t = 0.25 * soft + 0.75 * (1 - soft)
    bce = TF.binary_cross_entropy_with_logits(logits, soft, reduction='none')
    assert torch.allclose(M.FocalLoss(reduction='none')(logits, soft),
                          alpha_t * (1 - p_t) ** 2 * bce, atol=1e-6)
    assert torch.isfinite(M.VarifocalLoss()(logits, soft))
    assert torch.isfinite(M.QualityFocalLoss()(logits, (torch.tensor([0, 1, 4]),
                                                        torch.tensor([0.0, 1.0, 0.3]))))


def test_nan_targets_are_not_a_domain_error():
    # NaN in, NaN out (contract point 2), not a ValueError
    target = torch.tensor([[NAN, 0.5, 0.0, 1.0]] * 3)
    out = M.FocalLoss(reduction='none')(_logits(), target)
    assert torch.isnan(out[:, 0]).all() and torch.isfinite(out[:, 1:]).all()


def test_domain_not_checked_on_meta():
    # values of accelerator tensors are not read (no host sync): documented, not checked
    out = M.VarifocalLoss()(torch.zeros(3, 4, device='meta'),
                            torch.full((3, 4), 2.0, device='meta'))
    assert out.device.type == 'meta'


# --------------------------------------------------------------- point 9: no opaque messages
def test_cross_entropy_ignore_index_message():
    with _raises(TypeError, 'ignore_index', 'integer'):
        M.CrossEntropyLoss(ignore_index='x')


def test_box_iou_batch_dims_that_do_not_broadcast():
    with _raises(ValueError, 'boxes1', 'boxes2', 'broadcast', '(2, 3, 4)', '(3, 5, 4)'):
        M.box_iou(torch.rand(2, 3, 4), torch.rand(3, 5, 4))
    # batch dims that broadcast still work: (2, 3, 4) against (1, 5, 4) -> (2, 3, 5)
    a, b = torch.rand(2, 3, 4), torch.rand(1, 5, 4)
    a[..., 2:] += a[..., :2]
    b[..., 2:] += b[..., :2]
    out = M.box_iou(a, b)
    assert out.shape == (2, 3, 5)
    assert torch.allclose(out[1], M.box_iou(a[1], b[0]))


def test_bce_weight_of_the_wrong_shape():
    with _raises(ValueError, 'weight', '(2, 3, 2)', '(2, 3)'):
        M.BinaryCrossEntropyLoss()(torch.zeros(2, 3), torch.zeros(2, 3),
                                   weight=torch.ones(2, 3, 2))
    with _raises(ValueError, 'weight', '(2, 3, 2)'):
        M.BalancedCrossEntropyLoss(use_sigmoid=True)(torch.zeros(2, 3), torch.zeros(2, 3),
                                                     weight=torch.ones(2, 3, 2))


def test_diou_nms_complex_scores():
    with _raises(TypeError, 'scores', 'complex'):
        M.diou_nms(_boxes(), torch.rand(3) * 1j, 0.5)


@pytest.mark.parametrize('name', ['FocalLoss', 'SoftmaxFocalLoss', 'CrossEntropyLoss',
                                  'HingeLoss', 'QualityFocalLoss'])
def test_zero_classes(name):
    with _raises(ValueError, 'pred', 'C >= 1', '(3, 0)'):
        getattr(M, name)()(torch.rand(3, 0), torch.tensor([0, 0, 0]))


def test_focal_zero_classes_on_the_functional():
    with _raises(ValueError, 'pred', '(3, 0)'):
        F.focal_loss(torch.rand(3, 0), torch.tensor([0, 0, 0]))
    assert math.isfinite(F.focal_loss(torch.rand(3, 1), torch.tensor([0, 1, 1])).item())


def test_mask_cross_entropy_class_weight():
    pred, target, label = torch.zeros(2, 3, 2, 2), torch.ones(2, 2, 2), torch.tensor([0, 2])
    # one number weights every element: 2 * log 2 (logits 0, targets 1)
    out = F.mask_cross_entropy_loss(pred, target, label, class_weight=2.0)
    assert torch.allclose(out, torch.tensor([2 * math.log(2)]))
    with _raises(ValueError, 'class_weight[1]', 'nan'):
        F.mask_cross_entropy_loss(pred, target, label, class_weight=[1.0, NAN, 1.0])
