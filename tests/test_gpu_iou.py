"""The Triton kernels of the IoU family (mmdet_losses/ops/gpu/iou.py over gpu/dual.py), run by
Triton's interpreter on CPU tensors (the root conftest sets TRITON_INTERPRET=1), against the
plain PyTorch path (mmdet_losses.boxes, mmdet_losses.functional.iou): values and gradients
(pred and target) of every mode, variant and base in float64 and float32, on random and
adversarial boxes, with NaN/inf coordinates and non-finite or zero incoming gradients in the
same batch; empty input; the outputs' shapes and placeholders; the CUDA registration.

The interpreter's cost is per kernel call, not per box pair: each case is one forward and one
backward call on one batch that holds every kind of pair."""
import math
import warnings

import numpy as np
import pytest
import torch
from _helpers import adversarial_pairs, random_pairs

from mmdet_losses.boxes import BoxPair
from mmdet_losses.functional.iou import plain_variant_loss
from mmdet_losses.ops.iou_kernels import (FUSED_BASES, FUSED_MODES, FUSED_VARIANTS, _plain_iou,
                                          _plain_variant, kernels_available)

pytest.importorskip('triton')
pytestmark = pytest.mark.skipif(not kernels_available(),
                                reason='the kernel ids come from mmdet_losses.ops._iou')

from mmdet_losses.ops.gpu import iou as gpu_iou  # noqa: E402  (imports triton)

DTYPES = (torch.float64, torch.float32)
EPS = 1e-7
#: Each variant's parameters (the order of fused_variant_loss), chosen to take every branch
#: of the kernel's powers: an integer exponent (multiplications), 1/2 (a square root), any
#: other (exp/log); Focal-EIoU's detached weight, Shape-IoU's target weights.
VARIANT_PARAMS = {
    'eiou': [(0.5,)], 'siou': [(4.0,), (2.5,)], 'wiou': [()], 'alpha_iou': [(3.0,), (0.5,)],
    'mpdiou': [(40.0,)], 'inner_iou': [(0.75,), (1.3,)], 'focaler_iou': [(0.1, 0.8)],
    'shape_iou': [(0.0,), (1.5,)], 'nwd': [(12.8,)],
}
#: The bases each composite variant takes (Alpha-IoU: the first four).
VARIANT_BASES = {'alpha_iou': ('iou', 'giou', 'diou', 'ciou'),
                 'inner_iou': tuple(FUSED_BASES), 'focaler_iou': tuple(FUSED_BASES)}
#: (mode, gate): every mode without a gate, and CIoU with mmdet's.
MODE_CASES = [(mode, None) for mode in FUSED_MODES] + [('ciou', 0.5)]


def _variant_cases():
    """(variant, params, base) for every variant id, every base of a composite (its
    parameters alternating over the bases)."""
    cases = []
    for variant in FUSED_VARIANTS:
        params = VARIANT_PARAMS.get(variant, [None])  # None: a new id without parameters here
        bases = VARIANT_BASES.get(variant, ('iou',))
        for i, base in enumerate(bases):
            cases.extend([(variant, params[i % len(params)], base)] if len(bases) > 1 else
                         [(variant, p, base) for p in params])
    return cases


VARIANT_CASES = _variant_cases()


def tolerance(dtype):
    """The CPU kernels' tests' tolerances."""
    return dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)


# ------------------------------------------------------------------------ the batch
NONFINITE = [
    ([0, 0, math.nan, 2], [1, 1, 3, 3]),         # NaN in pred
    ([0, 0, 2, 2], [1, math.inf, 3, 3]),         # inf in target
    ([-math.inf, 0, 2, 2], [1, 1, 3, 3]),        # -inf in pred
    ([0, 0, 2, 2], [math.nan] * 4),              # all NaN target
]
EXTRA = [
    ([0, 0, 2, 2], [2, 0, 4, 2]),                # x2 of pred = x1 of target (a tie)
    ([0, 0, 2, 2], [0, 2, 2, 4]),                # touching along y
    ([0, 0, 2, 2], [0, 0, 2, 3]),                # three shared coordinates
    ([3, 3, 1, 1], [4, 4, 2, 2]),                # both inverted
    ([0, 0, 0, 0], [0, 0, 0, 0]),                # identical point boxes at the origin
    ([1e6, 2e6, 1e6 + 30, 2e6 + 10], [1e6 + 5, 2e6, 1e6 + 40, 2e6 + 12]),  # big coordinates
    ([0, 0, 1e-4, 3e-4], [1e-5, 0, 1.2e-4, 2e-4]),  # tiny boxes
]


def _batch(dtype):
    """(pred, target, grad, nonfinite rows, zero-gradient rows): random pairs (both sides of
    CIoU's gate and every clamp), the adversarial corpus of the CPU kernels' tests, ties,
    inverted, big and tiny boxes, NaN/inf coordinates; an incoming gradient with a 0 and an
    inf on finite pairs."""
    pred, target = random_pairs(40, dtype, seed=11)
    adv_pred, adv_target = adversarial_pairs(dtype)
    extra = torch.tensor(EXTRA + NONFINITE, dtype=dtype)
    pred = torch.cat((pred, adv_pred, extra[:, 0]))
    target = torch.cat((target, adv_target, extra[:, 1]))
    n = pred.shape[0]
    grad = torch.rand(n, dtype=dtype, generator=torch.Generator().manual_seed(2)) + 0.5
    nonfinite = torch.zeros(n, dtype=torch.bool)
    nonfinite[-len(NONFINITE):] = True
    grad[0] = 0.0  # a zero weight: a zero gradient
    grad[1] = math.inf  # an infinite weight: a NaN gradient (the plain path's marker)
    nan_grad = nonfinite.clone()
    nan_grad[1] = True
    return pred, target, grad, nonfinite, nan_grad


def _plain(fn, pred, target, grad):
    """The plain path's loss and gradients of sum(grad * loss)."""
    p = pred.clone().requires_grad_(True)
    t = target.clone().requires_grad_(True)
    loss = fn(p, t)
    gp, gt = torch.autograd.grad((loss * grad).sum(), (p, t))
    return loss.detach(), gp, gt


def _assert_matches(ours, ref, nonfinite, dtype):
    """Equal on finite rows (where the reference is finite: it must be), NaN on the others.
    A gradient's absolute tolerance scales with its row's largest component: where the
    derivatives are large (tiny boxes) a component that cancels to about 0 keeps the rounding
    of the large terms, which the kernel (the incoming gradient times the tangent) and autograd
    (the incoming gradient through each step) round differently."""
    finite = ~nonfinite
    assert torch.isfinite(ref[finite]).all(), 'the reference is expected finite there'
    ours_f, ref_f = ours[finite], ref[finite]
    tol = tolerance(dtype)
    scale = ref_f.abs().amax(-1, keepdim=True).clamp(min=1) if ref_f.dim() == 2 else 1.0
    torch.testing.assert_close(ours_f / scale, ref_f / scale, **tol)
    assert torch.isnan(ours[nonfinite]).all()


def _quiet():
    """The interpreter computes with numpy, which warns where a NaN/inf row overflows."""
    return np.errstate(all='ignore')


def _check_kernel(forward, backward, plain, dtype):
    pred, target, grad, nonfinite, nan_grad = _batch(dtype)
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        out = forward(pred, target)
        grad_pred, grad_target = backward(grad, pred, target, True)
    ref, ref_pred, ref_target = _plain(plain, pred, target, grad)
    loss = out[0] if isinstance(out, tuple) else out  # a variant: (loss, 1 - IoU or EMPTY)
    assert loss.dtype == dtype and loss.shape == (pred.shape[0],)
    _assert_matches(loss, ref, nonfinite, dtype)
    _assert_matches(grad_pred, ref_pred, nan_grad, dtype)
    _assert_matches(grad_target, ref_target, nan_grad, dtype)
    assert torch.count_nonzero(grad_pred[0]) == 0 and torch.count_nonzero(grad_target[0]) == 0
    assert grad_pred[~nan_grad].abs().sum() > 0 and grad_target[~nan_grad].abs().sum() > 0
    return out, ref, (pred, target, grad, grad_pred)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('mode,gate', MODE_CASES, ids=[f'{m}-{g}' for m, g in MODE_CASES])
def test_modes_match_the_plain_path(mode, gate, dtype):
    mode_id, has_gate, gate_value = FUSED_MODES[mode], gate is not None, gate or 0.0
    eps = 1e-6 if mode.startswith('iou') else EPS
    _, _, (pred, target, grad, grad_pred) = _check_kernel(
        lambda p, t: gpu_iou.iou_forward(p, t, mode_id, eps, gate_value, has_gate),
        lambda g, p, t, tg: gpu_iou.iou_backward(g, p, t, mode_id, eps, gate_value, has_gate,
                                                 tg),
        lambda p, t: _plain_iou(p, t, mode_id, eps, gate_value, has_gate), dtype)
    if mode == 'diou':  # without the target's gradient: an empty placeholder, the same pred's
        with _quiet():
            only_pred, placeholder = gpu_iou.iou_backward(grad, pred, target, mode_id, eps, 0.0,
                                                          False, False)
        assert placeholder.shape == (0,) and placeholder.dtype == dtype
        torch.testing.assert_close(only_pred, grad_pred, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('variant,params,base', VARIANT_CASES,
                         ids=[f'{v}-{p}-{b}' for v, p, b in VARIANT_CASES])
def test_variants_match_the_plain_path(variant, params, base, dtype):
    assert params is not None, f'give the new variant {variant!r} parameters in VARIANT_PARAMS'
    ids = (FUSED_VARIANTS[variant], FUSED_BASES[base], EPS, list(params))
    out, ref, (pred, target, grad, grad_pred) = _check_kernel(
        lambda p, t: gpu_iou.variant_forward(p, t, *ids),
        lambda g, p, t, tg: gpu_iou.variant_backward(g, p, t, *ids, tg),
        lambda p, t: _plain_variant(p, t, *ids), dtype)
    if variant == 'wiou':  # its second output: 1 - IoU, NaN where a coordinate is not finite
        _, l_iou = plain_variant_loss(BoxPair(pred, target), 'wiou', EPS)
        _assert_matches(out[1], l_iou, _batch(dtype)[3], dtype)
    else:
        assert out[1].shape == (0,) and out[1].dtype == dtype


def test_every_id_has_a_case():
    assert {v for v, _, _ in VARIANT_CASES} == set(FUSED_VARIANTS)
    assert {m for m, _ in MODE_CASES} == set(FUSED_MODES)
    for variant in ('inner_iou', 'focaler_iou'):
        assert {b for v, _, b in VARIANT_CASES if v == variant} == set(FUSED_BASES)
    # every compiled specialisation is a case here: the loss ids and bases
    specs = {(c['FAMILY'], c['LOSS'], c['BASE']) for _, _, c in gpu_iou.compile_specs()}
    assert {(loss, base) for family, loss, base in specs if family == 0} == {
        (i, 0) for i in FUSED_MODES.values()}
    assert {(loss, base) for family, loss, base in specs if family == 1} == {
        (FUSED_VARIANTS[v], FUSED_BASES[b] if v in VARIANT_BASES else 0)
        for v, _, b in VARIANT_CASES}


def test_hand_derived_values():
    """Two 2x2 boxes offset by (1, 1): inter 1, union 7, enclosing 3x3 (c^2 = 18), rho^2 = 2;
    NWD: W2 = rho^2, 1 - exp(-sqrt(2) / 5)."""
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    expected = {'iou': 1 - 1 / 7, 'giou': 1 - (1 / 7 - 2 / 9), 'diou': 1 - (1 / 7 - 2 / 18),
                'iou_log': math.log(7)}
    for mode, value in expected.items():
        loss = gpu_iou.iou_forward(pred, target, FUSED_MODES[mode], 1e-12, 0.0, False)
        assert float(loss) == pytest.approx(value, rel=1e-10), mode
    loss, _ = gpu_iou.variant_forward(pred, target, FUSED_VARIANTS['nwd'], 0, 1e-12, [5.0])
    assert float(loss) == pytest.approx(1 - math.exp(-math.sqrt(2) / 5), rel=1e-10)
    loss, l_iou = gpu_iou.variant_forward(pred, target, FUSED_VARIANTS['wiou'], 0, 1e-12, [])
    assert float(loss) == pytest.approx((1 - 1 / 7) * math.exp(2 / 18), rel=1e-10)
    assert float(l_iou) == pytest.approx(1 - 1 / 7, rel=1e-10)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_empty_input(dtype):
    empty = torch.zeros(0, 4, dtype=dtype)
    grad = torch.zeros(0, dtype=dtype)
    loss = gpu_iou.iou_forward(empty, empty, FUSED_MODES['ciou'], EPS, 0.5, True)
    assert loss.shape == (0,) and loss.dtype == dtype
    gp, gt = gpu_iou.iou_backward(grad, empty, empty, FUSED_MODES['ciou'], EPS, 0.5, True, True)
    assert gp.shape == (0, 4) and gt.shape == (0, 4) and gp.dtype == gt.dtype == dtype
    loss, l_iou = gpu_iou.variant_forward(empty, empty, FUSED_VARIANTS['wiou'], 0, EPS, [])
    assert loss.shape == l_iou.shape == (0,)
    gp, gt = gpu_iou.variant_backward(grad, empty, empty, FUSED_VARIANTS['inner_iou'],
                                      FUSED_BASES['ciou'], EPS, [0.75], False)
    assert gp.shape == (0, 4) and gt.shape == (0,)


def test_strided_inputs_and_a_broadcast_gradient():
    """Non-contiguous boxes are read as their contiguous copies; an expanded gradient (stride
    0, from a sum) in place."""
    pred, target = random_pairs(20, torch.float64, seed=4)
    wide = torch.zeros(20, 8, dtype=torch.float64)
    wide[:, ::2] = pred
    strided = wide[:, ::2]
    assert not strided.is_contiguous()
    mode = FUSED_MODES['giou']
    torch.testing.assert_close(gpu_iou.iou_forward(strided, target, mode, EPS, 0.0, False),
                               _plain_iou(pred, target, mode, EPS, 0.0, False))
    ones = torch.ones(1, dtype=torch.float64).expand(20)
    gp, _ = gpu_iou.iou_backward(ones, strided, target, mode, EPS, 0.0, False, False)
    p = pred.clone().requires_grad_(True)
    _plain_iou(p, target, mode, EPS, 0.0, False).sum().backward()
    torch.testing.assert_close(gp, p.grad)


def test_bad_arguments_are_named():
    boxes = torch.zeros(3, 4)
    with pytest.raises(ValueError, match='pred must be'):
        gpu_iou.iou_forward(torch.zeros(3, 5), torch.zeros(3, 5), 0, EPS, 0.0, False)
    with pytest.raises(TypeError, match='float32 or both float64'):
        gpu_iou.iou_forward(boxes, boxes.double(), 0, EPS, 0.0, False)
    with pytest.raises(ValueError, match='unknown mode'):
        gpu_iou.iou_forward(boxes, boxes, 99, EPS, 0.0, False)
    with pytest.raises(ValueError, match='unknown variant'):
        gpu_iou.variant_forward(boxes, boxes, 99, 0, EPS, [])
    with pytest.raises(ValueError, match='base 4 is not one of'):
        gpu_iou.variant_forward(boxes, boxes, FUSED_VARIANTS['alpha_iou'], FUSED_BASES['siou'],
                                EPS, [3.0])
    with pytest.raises(ValueError, match='grad must be'):
        gpu_iou.iou_backward(torch.zeros(2), boxes, boxes, 0, EPS, 0.0, False, False)


@pytest.mark.parametrize('name', ['iou_loss', 'iou_loss_backward', 'iou_variant_loss',
                                  'iou_variant_loss_backward'])
def test_registered_as_the_cuda_implementation(name):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f'mmdet_losses::{name}', 'CUDA')
