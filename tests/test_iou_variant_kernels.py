"""The fused C++ kernels of EIoU, SIoU, Wise-IoU, Alpha-, MPD-, Inner-, Focaler-, Shape-IoU
and NWD against their plain PyTorch reference (``plain_variant_loss`` in
:mod:`mmdet_losses.functional.iou`): values and gradients (pred and target) on random and
adversarial boxes in float32 and float64, every base of the composite losses, gradcheck
through the kernel, and the cases where no kernel applies."""
import os
import subprocess
import sys

import pytest
import torch
from _helpers import (adversarial_pairs, assert_finite, graph_node_names, kernel_node,
                      random_pairs)

import mmdet_losses.functional as F
from mmdet_losses.boxes import BoxPair
from mmdet_losses.functional.iou import plain_variant_loss
from mmdet_losses.ops import iou_kernels
from mmdet_losses.ops.iou_kernels import FUSED_VARIANTS, fused_variant_loss, kernels_available
from mmdet_losses.reduction import weight_reduce_loss

pytestmark = pytest.mark.skipif(not kernels_available(),
                                reason='mmdet_losses.ops._iou is not built')

DTYPES = (torch.float32, torch.float64)
COMPOSITE_BASES = ('iou', 'giou', 'diou', 'ciou', 'siou', 'eiou')
# (variant, params, base): every variant with its defaults and the parameters that take
# other branches (Focal-EIoU's detached weight, theta = 1, alpha < 1, Shape-IoU's target
# weights, ratios either side of 1, a focaler interval inside [0, 1]).
CASES = (
    [('eiou', (0.0,), None), ('eiou', (0.5,), None),
     ('siou', (4.0,), None), ('siou', (1.0,), None),
     ('wiou', (), None),
     ('mpdiou', (640.0 ** 2 + 480.0 ** 2,), None), ('mpdiou', (5.0,), None),
     ('shape_iou', (0.0,), None), ('shape_iou', (1.5,), None),
     ('nwd', (12.8,), None), ('nwd', (0.5,), None)]
    + [('alpha_iou', (alpha,), base) for base in ('iou', 'giou', 'diou', 'ciou')
       for alpha in (3.0, 0.5)]
    + [('inner_iou', (ratio,), base) for base in COMPOSITE_BASES for ratio in (0.75, 1.3)]
    + [('focaler_iou', (0.0, 0.95), base) for base in COMPOSITE_BASES]
    + [('focaler_iou', (0.2, 0.6), 'iou')]
)
IDS = [f'{v}-{",".join(f"{p:g}" for p in params)}-{base}' for v, params, base in CASES]
EPS = 1e-7


def fused(a, b, variant, params, base, eps=EPS):
    out = fused_variant_loss(a, b, variant, eps, params, base or 'iou')
    return out[0] if variant == 'wiou' else out


def plain(a, b, variant, params, base, eps=EPS):
    out = plain_variant_loss(BoxPair(a, b), variant, eps, params, base)
    return out[0] if variant == 'wiou' else out


def loss_and_grads(fn, pred, target, case, weight=None, target_grad=True, eps=EPS):
    pred = pred.detach().clone().requires_grad_(True)
    target = target.detach().clone().requires_grad_(target_grad)
    loss = fn(pred, target, *case, eps=eps)
    (loss.sum() if weight is None else (loss * weight).sum()).backward()
    return loss.detach(), pred.grad, target.grad


def tolerance(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)


def test_every_variant_has_a_case():
    assert {v for v, _, _ in CASES} == set(FUSED_VARIANTS)
    for variant in ('inner_iou', 'focaler_iou'):
        assert {b for v, _, b in CASES if v == variant} == set(COMPOSITE_BASES)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_random_boxes_match_plain_path(case, dtype):
    pred, target = random_pairs(400, dtype)
    weight = torch.rand(400, dtype=dtype, generator=torch.Generator().manual_seed(1))
    ours = loss_and_grads(fused, pred, target, case, weight)
    ref = loss_and_grads(plain, pred, target, case, weight)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, **tolerance(dtype))
    assert ours[1].abs().sum() > 0 and ours[2].abs().sum() > 0


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_adversarial_boxes_finite_and_match_plain_path(case, dtype):
    """Identical, zero-area, inverted, nested, same-centre, far, huge and tiny boxes: every
    value and gradient finite and equal to the reference's (itself finite)."""
    pred, target = adversarial_pairs(dtype)
    ours = loss_and_grads(fused, pred, target, case)
    ref = loss_and_grads(plain, pred, target, case)
    assert_finite(*ours)
    for o, r in zip(ours, ref):
        assert torch.isfinite(r).all(), 'the reference itself is expected to be finite here'
        torch.testing.assert_close(o, r, **tolerance(dtype))


# every variant that takes no base, and two composites on bases with many eps terms
OTHER_EPS_CASES = [c for c in CASES if c[2] is None] + [('alpha_iou', (0.5,), 'giou'),
                                                         ('inner_iou', (1.3,), 'ciou')]


@pytest.mark.parametrize('eps', [1e-3, 0.5])
@pytest.mark.parametrize('case', OTHER_EPS_CASES,
                         ids=[IDS[CASES.index(c)] for c in OTHER_EPS_CASES])
def test_other_eps_matches_plain_path(case, eps):
    pred, target = random_pairs(100, torch.float64, seed=3)
    adv_pred, adv_target = adversarial_pairs(torch.float64)
    pred, target = torch.cat((pred, adv_pred)), torch.cat((target, adv_target))
    ours = loss_and_grads(fused, pred, target, case, eps=eps)
    ref = loss_and_grads(plain, pred, target, case, eps=eps)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=1e-9, atol=1e-11)


def _has_detached_factor(variant, params, base):
    """Focal-EIoU's IoU^gamma, Wise-IoU's denominator, CIoU's alpha and Shape-IoU's target
    weights are held constant by design: finite differences cannot reproduce them (their
    gradients are checked against the plain path's autograd above)."""
    return ((variant == 'eiou' and params[0] > 0) or variant == 'wiou' or base == 'ciou'
            or (variant == 'shape_iou' and params[0] > 0))


@pytest.mark.parametrize('case', [c for c in CASES if not _has_detached_factor(*c)],
                         ids=[i for c, i in zip(CASES, IDS) if not _has_detached_factor(*c)])
def test_gradcheck_float64(case):
    """The dual-number gradient against finite differences, pred and target, away from the
    kinks (ties between coordinates, clamps reached)."""
    pred, target = random_pairs(60, torch.float64, seed=5)
    gap = (pred[:, None, :] - target[:, :, None]).abs().flatten(1).min(1).values
    iou = BoxPair(pred, target).iou(1e-9)
    keep = (gap > 1e-2) & (iou > 0.05)
    pred, target = pred[keep][:5].requires_grad_(True), target[keep][:5].requires_grad_(True)
    assert pred.shape[0] == 5
    assert torch.autograd.gradcheck(lambda p, t: fused(p, t, *case), (pred, target))


def test_hand_derived_values():
    """Two 2x2 boxes offset by (1, 0): IoU 1/3, enclosing 3x2 (c^2 = 13), rho^2 = 1, same
    shapes; Inner-IoU at ratio 1/2 gives inner boxes [0.5, 1.5] and [1.5, 2.5] (IoU 0)."""
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 0.0, 3.0, 2.0]], dtype=torch.float64)
    iou, eps = 1 / 3, 1e-12
    expected = {
        ('eiou', (0.0,), None): 1 - iou + 1 / 13,            # equal sides: no w/h term
        ('siou', (4.0,), None): 1 - iou + (1 - torch.exp(torch.tensor(-2 / 9)).item()) / 2,
        ('wiou', (), None): (1 - iou) * torch.exp(torch.tensor(1 / 13)).item(),
        ('alpha_iou', (3.0,), 'diou'): 1 - iou ** 3 + (1 / 13) ** 3,
        ('mpdiou', (20.0,), None): 1 - iou + (1 + 1) / 20,
        ('inner_iou', (0.5,), 'iou'): 1.0,
        ('focaler_iou', (0.0, 0.5), 'iou'): 1 - iou / 0.5,
        ('shape_iou', (0.0,), None): 1 - iou + 1 / 13,
        ('nwd', (5.0,), None): 1 - torch.exp(torch.tensor(-1 / 5)).item(),
    }
    for (variant, params, base), value in expected.items():
        loss = fused(pred, target, variant, params, base, eps=eps)
        torch.testing.assert_close(loss, torch.tensor([value], dtype=torch.float64),
                                   msg=variant)
    # identical boxes: every loss and every gradient is 0
    same = pred.clone().requires_grad_(True)
    for case in CASES:
        loss = fused(same, pred, *case)
        (grad,) = torch.autograd.grad(loss.sum(), same)
        assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6), case
        torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-6, rtol=0)


def test_wiou_returns_one_minus_iou_without_gradient():
    pred, target = random_pairs(50, torch.float32)
    pred.requires_grad_(True)
    loss, l_iou = fused_variant_loss(pred, target, 'wiou', EPS)
    assert loss.requires_grad and not l_iou.requires_grad
    torch.testing.assert_close(l_iou, 1 - BoxPair(pred, target).iou(EPS).detach())


def test_target_gradient_only_and_no_gradient():
    pred, target = random_pairs(50, torch.float64)
    for case in CASES:
        t = target.clone().requires_grad_(True)
        fused(pred, t, *case).sum().backward()
        t_ref = target.clone().requires_grad_(True)
        plain(pred, t_ref, *case).sum().backward()
        torch.testing.assert_close(t.grad, t_ref.grad, msg=str(case))
        with torch.no_grad():
            loss = fused(pred, target, *case)
        assert not loss.requires_grad
        torch.testing.assert_close(loss, plain(pred, target, *case))


def test_non_contiguous_and_empty_inputs():
    pred, target = random_pairs(30, torch.float32)
    wide = torch.zeros(30, 8)
    wide[:, ::2] = pred
    strided = wide[:, ::2]
    assert not strided.is_contiguous()
    torch.testing.assert_close(fused(strided, target, 'siou', (4.0,), None),
                               plain(pred, target, 'siou', (4.0,), None))
    empty = torch.zeros(0, 4, requires_grad=True)
    loss = fused(empty, torch.zeros(0, 4), 'inner_iou', (0.75,), 'ciou')
    assert loss.shape == (0,) and loss.requires_grad
    loss.sum().backward()
    assert empty.grad.shape == (0, 4)


@pytest.mark.parametrize('variant, base', [('giou', 'iou'), ('siou', 'wiou')])
def test_returns_none_for_another_variant_or_base(variant, base):
    pred, target = random_pairs(4, torch.float32)  # GIoU: fused by fused_iou_loss, not here
    assert fused_variant_loss(pred, target, variant, EPS, (4.0,), base) is None


def test_returns_none_where_no_kernel_applies():
    """The input conditions fused_iou_loss shares (tested in full in test_iou_kernels.py)."""
    pred, target = random_pairs(4, torch.float32)
    for p, t in ((pred.half(), target.half()), (pred, target.double()),
                 (pred[None], target[None]), (pred.to('meta'), target.to('meta'))):
        assert fused_variant_loss(p, t, 'siou', EPS, (4.0,)) is None


@pytest.mark.parametrize('name, kwargs, case', [
    ('eiou_loss', dict(gamma=0.5), ('eiou', (0.5,), None)),
    ('siou_loss', {}, ('siou', (4.0,), None)),
    ('wiou_loss', dict(version='v1'), ('wiou', (), None)),
    ('alpha_iou_loss', dict(base='ciou'), ('alpha_iou', (3.0,), 'ciou')),
    ('mpdiou_loss', dict(img_size=(64, 48)), ('mpdiou', (64.0 ** 2 + 48.0 ** 2,), None)),
    ('inner_iou_loss', dict(base='siou'), ('inner_iou', (0.75,), 'siou')),
    ('focaler_iou_loss', dict(base='eiou'), ('focaler_iou', (0.0, 0.95), 'eiou')),
    ('shape_iou_loss', dict(scale=0.5), ('shape_iou', (0.5,), None)),
    ('nwd_loss', {}, ('nwd', (12.8,), None)),
])
def test_functional_forms_run_the_kernel(name, kwargs, case):
    """The public functional runs the kernel (its graph holds the fused node) and gives the
    plain path's weighted mean."""
    pred, target = random_pairs(64, torch.float32, seed=7)
    weight = torch.rand(64)
    p = pred.clone().requires_grad_(True)
    loss = getattr(F, name)(p, target, weight, avg_factor=20.0, **kwargs)
    assert (kernel_node('iou_variant_loss')
            in graph_node_names(loss))
    ref = weight_reduce_loss(plain(pred, target, *case), weight, 'mean', 20.0)
    torch.testing.assert_close(loss, ref)


def test_wiou_v3_on_the_kernel_equals_plain_path(monkeypatch):
    """v2/v3 scale the kernel's v1 loss by the focusing factor of its detached 1 - IoU."""
    import mmdet_losses.functional.iou as iou_module
    pred, target = random_pairs(64, torch.float32, seed=8)
    results = []
    for patch in (False, True):
        if patch:
            monkeypatch.setattr(iou_module, 'fused_variant_loss', lambda *args: None)
        p = pred.clone().requires_grad_(True)
        mean = torch.tensor(0.6)
        loss = F.wiou_loss(p, target, running_mean=mean, training=True, version='v3')
        loss.backward()
        results.append((loss.detach(), p.grad, mean))
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref)


def test_generic_build_matches_plain_path():
    """The build for CPUs without AVX2, forced by MMDET_LOSSES_GENERIC=1 (every kernel's
    switch, csrc/common/cpu_features.h; tests/test_cpu_builds.py) in a fresh process: the
    comparisons with the plain path above, again."""
    if os.environ.get('MMDET_LOSSES_GENERIC') == '1':
        assert not iou_kernels._EXT.variants_use_avx2()
        return
    env = dict(os.environ, MMDET_LOSSES_GENERIC='1')
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-x', '-p', 'no:cacheprovider', __file__,
         '-k', 'random_boxes or adversarial or generic_build'],
        env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True, text=True, timeout=600)
    # 0: tests ran and passed (none collected would be 5)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
