"""The fused C++ kernels under hostile input (issue #11, points 2 and 10), against the contract
and against their plain PyTorch paths:

* NaN and +-inf in every coordinate position of pred and target, for every IoU-family loss
  and every base of the composite ones: that pair's loss and every component of its gradient
  (pred's and target's) are NaN on the kernel, and the other pairs of the batch (the same
  SIMD packs) are untouched, equal to the plain path;
* kernel == plain, values and gradients, at every magnitude of the boxes (the adversarial
  corpus scaled by 1e-30 ... 1e30, float32 and float64), wherever the plain path is finite
  (where the plain path itself underflows or overflows, the kernel stays finite);
* the regression kernel with NaN/inf in pred, target and weight, every kind and reduction;
* the focal kernel with NaN/inf logits and NaN/inf weights, against its plain path.

DIoU-NMS's rule for non-finite boxes and scores is tested in tests/test_nms.py."""
import math

import pytest
import torch
from _helpers import adversarial_pairs, random_pairs

import mmdet_losses.functional as F
from mmdet_losses.boxes import BoxPair
from mmdet_losses.functional.iou import _plain_family_element, plain_variant_loss
from mmdet_losses.ops import focal_kernel, regression_kernel
from mmdet_losses.ops.iou_kernels import (FUSED_MODES, FUSED_VARIANTS, fused_iou_loss,
                                          fused_variant_loss, kernels_available)

NAN, INF = float('nan'), float('inf')
DTYPES = (torch.float32, torch.float64)
EPS = 1e-7
BASES_ALPHA = ('iou', 'giou', 'diou', 'ciou')
BASES_COMPOSITE = ('iou', 'giou', 'diou', 'ciou', 'siou', 'eiou')

# (id, kind, name, params(scale), base): IoU, GIoU, DIoU, CIoU (IoULoss's three modes, CIoU
# with and without its gate) and every variant with every base. MPDIoU's image diagonal and
# NWD's constant are lengths: they scale with the boxes.
CONFIGS = (
    [(f'{mode}', 'family', mode, lambda s: None, None) for mode in FUSED_MODES if mode != 'ciou']
    + [('ciou-gate0.5', 'family', 'ciou', lambda s: 0.5, None),
       ('ciou-nogate', 'family', 'ciou', lambda s: None, None),
       ('eiou', 'variant', 'eiou', lambda s: (0.0,), None),
       ('focal-eiou', 'variant', 'eiou', lambda s: (0.5,), None),
       ('siou', 'variant', 'siou', lambda s: (4.0,), None),
       ('wiou', 'variant', 'wiou', lambda s: (), None),
       ('mpdiou', 'variant', 'mpdiou', lambda s: ((640.0 ** 2 + 480.0 ** 2) * s * s,), None),
       ('shape_iou', 'variant', 'shape_iou', lambda s: (0.0,), None),
       ('shape_iou-scale', 'variant', 'shape_iou', lambda s: (0.5,), None),
       ('nwd', 'variant', 'nwd', lambda s: (12.8 * s,), None)]
    + [(f'alpha_iou-{b}', 'variant', 'alpha_iou', lambda s: (3.0,), b) for b in BASES_ALPHA]
    + [(f'inner_iou-{b}', 'variant', 'inner_iou', lambda s: (0.75,), b) for b in BASES_COMPOSITE]
    + [(f'focaler_iou-{b}', 'variant', 'focaler_iou', lambda s: (0.0, 0.95), b)
       for b in BASES_COMPOSITE]
)
IDS = [c[0] for c in CONFIGS]

pytestmark = pytest.mark.skipif(not kernels_available(),
                                reason='mmdet_losses.ops._iou is not built')


def test_every_fused_loss_has_a_config():
    family = {c[2] for c in CONFIGS if c[1] == 'family'}
    variants = {c[2] for c in CONFIGS if c[1] == 'variant'}
    assert family == set(FUSED_MODES) and variants == set(FUSED_VARIANTS)
    for variant, bases in (('alpha_iou', BASES_ALPHA), ('inner_iou', BASES_COMPOSITE),
                           ('focaler_iou', BASES_COMPOSITE)):
        assert {c[4] for c in CONFIGS if c[2] == variant} == set(bases)


def _functions(config, scale=1.0):
    """(kernel, plain): each maps (pred, target) (N, 4) to the per-pair loss (N,)."""
    _, kind, name, params, base = config
    p = params(scale)
    if kind == 'family':
        def kernel(a, b):
            return fused_iou_loss(a, b, name, EPS, p)

        def plain(a, b):
            return _plain_family_element(BoxPair(a, b), name, EPS, p)
    else:
        def kernel(a, b):
            out = fused_variant_loss(a, b, name, EPS, p, base or 'iou')
            return out[0] if name == 'wiou' else out

        def plain(a, b):
            out = plain_variant_loss(BoxPair(a, b), name, EPS, p, base)
            return out[0] if name == 'wiou' else out
    return kernel, plain


def _run(fn, pred, target, weight):
    """Loss (N,) and the gradients of sum(weight * loss) in pred and target."""
    pred = pred.detach().clone().requires_grad_(True)
    target = target.detach().clone().requires_grad_(True)
    loss = fn(pred, target)
    (loss * weight).sum().backward()
    return loss.detach(), pred.grad, target.grad


def _hostile_batch(dtype):
    """48 box pairs: the odd ones have one bad coordinate each, every (NaN, +inf, -inf) in every
    position of pred and target once; the even ones are valid, so that every SIMD pack of the
    kernel mixes valid and hostile pairs."""
    pred, target = random_pairs(48, dtype, seed=5)
    bad = []
    for k, (value, who, j) in enumerate((v, w, j) for v in (NAN, INF, -INF)
                                        for w in ('pred', 'target') for j in range(4)):
        i = 2 * k + 1
        (pred if who == 'pred' else target)[i, j] = value
        bad.append(i)
    mask = torch.zeros(48, dtype=torch.bool)
    mask[bad] = True
    return pred, target, mask


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('config', CONFIGS, ids=IDS)
def test_nonfinite_coordinate_gives_nan_loss_and_gradient(config, dtype):
    kernel, plain = _functions(config)
    pred, target, bad = _hostile_batch(dtype)
    weight = torch.rand(48, generator=torch.Generator().manual_seed(1), dtype=dtype) + 0.5
    loss, gp, gt = _run(kernel, pred, target, weight)
    assert torch.isnan(loss[bad]).all(), loss[bad]
    assert torch.isnan(gp[bad]).all() and torch.isnan(gt[bad]).all()
    # identically on the plain path (BoxPair.nonfinite)
    ploss, pgp, pgt = _run(plain, pred, target, weight)
    assert torch.isnan(ploss[bad]).all(), ploss[bad]
    assert torch.isnan(pgp[bad]).all() and torch.isnan(pgt[bad]).all()
    # the valid pairs of the same packs: finite and equal to the plain path
    ok = ~bad
    ploss, pgp, pgt = _run(plain, pred[ok], target[ok], weight[ok])
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(loss[ok], ploss, **tol)
    torch.testing.assert_close(gp[ok], pgp, **tol)
    torch.testing.assert_close(gt[ok], pgt, **tol)
    # a zero upstream gradient does not hide the NaN either (it is not multiplied by it)
    _, gp0, gt0 = _run(kernel, pred, target, torch.zeros_like(weight))
    assert torch.isnan(gp0[bad]).all() and torch.isnan(gt0[bad]).all()
    assert (gp0[ok] == 0).all() and (gt0[ok] == 0).all()


def test_issue_examples_are_nan():
    """The issue's examples: GIoU gave -3999998 and Inner-IoU -2.25e7 for a NaN box."""
    pred, target = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[NAN, 0, 3, 2]])
    from mmdet_losses import CIoULoss, GIoULoss, InnerIoULoss, IoULoss
    for loss in (GIoULoss(reduction='none'), InnerIoULoss(reduction='none'),
                 IoULoss(reduction='none'), CIoULoss(reduction='none')):
        assert torch.isnan(loss(pred, target)).all(), type(loss).__name__


def test_wiou_one_minus_iou_is_nan_for_a_nonfinite_pair():
    pred, target, bad = _hostile_batch(torch.float32)
    _, l_iou = fused_variant_loss(pred, target, 'wiou', EPS, ())
    assert torch.isnan(l_iou[bad]).all() and torch.isfinite(l_iou[~bad]).all()


# ------------------------------------------------------------------------ magnitudes
SCALES = (1e-30, 1e-24, 1e-12, 1.0, 1e6, 1e12, 1e18, 1e30)


def _scaled_corpus(dtype, scale):
    pred, target = adversarial_pairs(torch.float64)
    rp, rt = random_pairs(40, torch.float64, seed=9)
    pred, target = torch.cat((pred, rp)), torch.cat((target, rt))
    return (pred * scale).to(dtype), (target * scale).to(dtype)


def _close(a, b, rtol, atol):
    return (a - b).abs() <= atol + rtol * b.abs()


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('config', CONFIGS, ids=IDS)
def test_kernel_equals_plain_at_every_magnitude(config, dtype):
    """The adversarial corpus and random pairs scaled by 1e-30 ... 1e30. Where the plain path
    gives a pair a finite loss and a finite gradient (all 8 components), the kernel gives the
    same, values and gradients times the scale (dimensionless: d loss / d (x / scale)), to
    rtol 1e-5 in float32; or, where the plain path's float32 itself underflows or overflows
    (CIoU's angle gradient through atan2's backward, whose w^2 + h^2 flushes to 0 below about
    1e-19 and overflows above about 1e19), a value at least as close as the plain path's to
    the plain path's float64 value on the same inputs. Where the plain loss is not finite (an
    area or squared distance that overflows float32 beyond about 1e19, in both paths alike),
    the kernel's is not finite either. float64 covers the whole range without overflow."""
    rtol, atol = (1e-5, 1e-5) if dtype == torch.float32 else (1e-9, 1e-9)
    for scale in SCALES:
        kernel, plain = _functions(config, scale)
        pred, target = _scaled_corpus(dtype, scale)
        weight = torch.ones(pred.shape[0], dtype=dtype)
        k = _run(kernel, pred, target, weight)
        p = _run(plain, pred, target, weight)
        r = _run(plain, pred.double(), target.double(), weight.double())
        where = f'scale {scale:g}'
        assert torch.equal(torch.isfinite(k[0]), torch.isfinite(p[0])), where
        finite = (torch.isfinite(p[0]) & torch.isfinite(p[1]).all(1)
                  & torch.isfinite(p[2]).all(1))
        if dtype == torch.float64 or scale == 1.0:
            assert finite.all(), where
        # float32 at the edges of its range: 1 / c^2, areas and angle derivatives are
        # subnormal or overflow on both paths, and the dimensionless gradients (of order 0.01
        # to 1) keep only a few bits there
        grad_tol = 1e-3 if dtype == torch.float32 and not 1e-20 < scale < 1e15 else 10 * atol
        for name, got, same_dtype, f64, tol in (
                ('loss', k[0], p[0], r[0], atol),
                ('pred gradient', k[1] * scale, p[1] * scale, r[1] * scale, grad_tol),
                ('target gradient', k[2] * scale, p[2] * scale, r[2] * scale, grad_tol)):
            got, same_dtype, f64 = got[finite].double(), same_dtype[finite].double(), f64[finite]
            # equal to the plain path, or at least as close as it to the float64 value
            ok = _close(got, same_dtype, rtol, tol) | (
                (got - f64).abs() <= (same_dtype - f64).abs() + tol + rtol * f64.abs())
            assert ok.all(), (f'{name} at {where}: kernel {got[~ok].tolist()[:4]}, plain '
                              f'{same_dtype[~ok].tolist()[:4]}, float64 {f64[~ok].tolist()[:4]}')


def test_ciou_without_gate_at_1e_24_float32():
    """The issue's example: the kernel gave 1.0 (the angle term flushed to 0), the plain path
    and float64 1.0241."""
    from mmdet_losses import CIoULoss
    pred = torch.tensor([[0.0, 0.0, 1.0, 3.0]]) * 1e-24
    target = torch.tensor([[0.0, 0.0, 3.0, 1.0]]) * 1e-24
    loss = CIoULoss(iou_gate=None, reduction='none', eps=EPS)
    # IoU and the distance term are 0 at this size (eps dominates); v = 4/pi^2 (atan 3 - atan 1/3)^2
    v = 4 / math.pi ** 2 * (math.atan(3.0) - math.atan(1 / 3)) ** 2
    expected = 1 + v * v / (1 + v + EPS)
    assert loss(pred, target).item() == pytest.approx(expected, rel=1e-5)
    pred64 = torch.tensor([[0.0, 0.0, 1.0, 3.0]], dtype=torch.float64) * 1e-24
    target64 = torch.tensor([[0.0, 0.0, 3.0, 1.0]], dtype=torch.float64) * 1e-24
    assert loss(pred64, target64).item() == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------------------ focal
def _focal_data():
    """Logits (8, 5) with NaN, +inf and -inf, on labelled (positive) and unlabelled columns;
    labels in [0, 5] (5: background)."""
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(8, 5, generator=gen) * 3
    labels = torch.tensor([0, 1, 2, 5, 3, 4, 5, 2])
    for row, col, value in ((0, 0, NAN), (1, 1, INF), (2, 2, -INF), (3, 0, INF), (4, 1, NAN),
                            (5, 4, -INF)):
        logits[row, col] = value
    return logits, labels


@pytest.mark.parametrize('gamma', [2.0, 0.0, 1.5])
@pytest.mark.parametrize('weight_kind', [None, 'anchor', 'element'])
@pytest.mark.parametrize('reduction', ['none', 'sum'])
@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_focal_kernel_nonfinite_like_plain(gamma, weight_kind, reduction, dtype, monkeypatch):
    """NaN/inf logits and NaN/inf weights: the same non-finite elements, loss and gradient, on
    the kernel and on the plain path (before: +inf on a labelled column gave a finite loss on
    the kernel), and the same values elsewhere."""
    if not focal_kernel.available():
        pytest.skip('mmdet_losses.ops._focal is not built')
    logits, labels = _focal_data()
    logits = logits.to(dtype)
    weight = None
    if weight_kind == 'anchor':
        weight = torch.rand(8, dtype=dtype) + 0.5
        weight[6], weight[7] = NAN, INF
    elif weight_kind == 'element':
        weight = torch.rand(8, 5, dtype=dtype) + 0.5
        weight[6, 2], weight[7, 0] = NAN, INF
    assert focal_kernel.supports(logits, None if weight is None else weight.reshape(8, -1))

    def run():
        x = logits.clone().requires_grad_(True)
        loss = F.focal_loss(x, labels, weight, reduction=reduction, gamma=gamma)
        loss.backward(torch.ones_like(loss))
        return loss.detach(), x.grad

    k_loss, k_grad = run()
    monkeypatch.setattr(focal_kernel, '_ext', None)
    p_loss, p_grad = run()
    bad = ~torch.isfinite(logits)
    assert not torch.isfinite(k_grad[bad]).any()
    if reduction == 'none':
        assert not torch.isfinite(k_loss[bad]).any()
    assert torch.equal(torch.isfinite(k_loss), torch.isfinite(p_loss))
    assert torch.equal(torch.isfinite(k_grad), torch.isfinite(p_grad))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    finite = torch.isfinite(p_grad)
    torch.testing.assert_close(k_grad[finite], p_grad[finite], **tol)
    finite = torch.isfinite(p_loss)
    torch.testing.assert_close(k_loss[finite], p_loss[finite], **tol)


def test_regression_kernel_serves_the_nonfinite_cases():
    """The regression cases of tests/test_regression_kernel.py run through the kernel."""
    pred = torch.tensor([NAN, INF, 1.0])
    assert regression_kernel.fused_regression_loss('smooth_l1', pred, torch.zeros(3), None,
                                                   'none', None, beta=1.0) is not None
