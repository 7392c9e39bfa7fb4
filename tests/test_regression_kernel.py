"""The fused regression kernel (mmdet_losses/ops/csrc/regression/) against the pure-PyTorch path
of mmdet_losses/functional/regression.py, which is the definition: values and gradients of
pred and target for every loss, parameter and reduction, kinks, determinism and the cases
where the kernel declines (returns None) so that the plain path runs."""
import math

import pytest
import torch

from mmdet_losses import functional as F
from mmdet_losses.functional import regression as regression_module
from mmdet_losses.ops import regression_kernel
from mmdet_losses.ops.regression_kernel import fused_regression_loss, kernels_available

pytestmark = pytest.mark.skipif(not kernels_available(),
                                reason='mmdet_losses.ops._regression is not built')

# (public function, kernel kind, params): every loss the kernel serves, several parameters
CASES = [
    (F.l1_loss, 'l1', {}),
    (F.mse_loss, 'mse', {}),
    (F.rmse_loss, 'mse', {}),
    (F.smooth_l1_loss, 'smooth_l1', dict(beta=1.0)),
    (F.smooth_l1_loss, 'smooth_l1', dict(beta=0.3)),
    (F.smooth_l1_loss, 'l1', dict(beta=0.0)),
    (F.balanced_l1_loss, 'balanced_l1', dict(alpha=0.5, gamma=1.5, beta=1.0)),
    (F.balanced_l1_loss, 'balanced_l1', dict(alpha=0.3, gamma=2.0, beta=0.6)),
]
IDS = [f'{fn.__name__}-{"-".join(f"{k}{v}" for k, v in params.items())}'
       for fn, _, params in CASES]
REDUCTIONS = [('none', None), ('mean', None), ('sum', None), ('mean', 3.0), ('none', 3.0),
              ('mean', 0.0)]


def plain(fn, *args, **kwargs):
    """``fn`` on the pure-PyTorch path: the kernel made to decline."""
    original = regression_module.fused_regression_loss
    regression_module.fused_regression_loss = lambda *a, **k: None
    try:
        return fn(*args, **kwargs)
    finally:
        regression_module.fused_regression_loss = original


def _data(shape=(7, 5), dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(*shape, generator=gen) * 1.5).to(dtype)
    target = (torch.randn(*shape, generator=gen) * 1.5).to(dtype)
    weight = torch.rand(*shape, generator=gen).to(dtype)
    # kinks: residuals exactly 0, and exactly +-beta for beta in (1.0, 0.3, 0.6)
    target.view(-1)[:7] = pred.view(-1)[:7]
    flat_p, flat_t = pred.view(-1), target.view(-1)
    for k, d in enumerate([1.0, -1.0, 0.3, -0.3, 0.6, -0.6], start=7):
        flat_t[k] = flat_p[k] - torch.tensor(d, dtype=dtype)
    return pred, target, weight


def _run(fn, pred, target, weight, reduction, avg_factor, params, through_kernel):
    p = pred.clone().requires_grad_(True)
    t = target.clone().requires_grad_(True)
    call = fn if through_kernel else (lambda *a, **k: plain(fn, *a, **k))
    out = call(p, t, weight, reduction=reduction, avg_factor=avg_factor, **params)
    grad_out = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape)
    out.backward(grad_out)
    return out.detach(), p.grad, t.grad


@pytest.mark.parametrize('fn,kind,params', CASES, ids=IDS)
@pytest.mark.parametrize('reduction,avg_factor', REDUCTIONS)
@pytest.mark.parametrize('use_weight', [False, True])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_kernel_matches_plain_path(fn, kind, params, reduction, avg_factor, use_weight, dtype):
    pred, target, weight = _data(dtype=dtype)
    weight = weight if use_weight else None
    # the kernel really serves these inputs
    assert fused_regression_loss(kind, pred, target, weight, reduction, avg_factor,
                                 **params) is not None
    fused = _run(fn, pred, target, weight, reduction, avg_factor, params, True)
    ref = _run(fn, pred, target, weight, reduction, avg_factor, params, False)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, want in zip(fused, ref):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, **tol)


def test_gradient_at_kinks_follows_autograd_conventions():
    # |d| has gradient 0 at d = 0; at |d| = beta the outer (linear) branch is taken
    pred = torch.tensor([0.0, 0.5, -0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    F.smooth_l1_loss(pred, target, reduction='sum', beta=0.5).backward()
    torch.testing.assert_close(pred.grad, torch.tensor([0.0, 1.0, -1.0, 1.0, 1.0],
                                                       dtype=torch.float64), rtol=0, atol=0)
    pred.grad = None
    F.balanced_l1_loss(pred, target, reduction='sum', beta=0.5).backward()
    torch.testing.assert_close(pred.grad, torch.tensor([0.0, 1.5, -1.5, 1.5, 1.5],
                                                       dtype=torch.float64), rtol=0, atol=0)


@pytest.mark.parametrize('fn,kind,params', CASES, ids=IDS)
@pytest.mark.parametrize('reduction,avg_factor', [('none', None), ('mean', None), ('sum', None),
                                                  ('mean', 2.5)])
def test_gradcheck_float64_through_the_kernel(fn, kind, params, reduction, avg_factor):
    gen = torch.Generator().manual_seed(3)
    pred = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    # residuals away from the kinks 0 and +-beta, inside and outside beta
    target = pred + torch.tensor([[0.17, -1.9], [2.6, -0.45], [0.05, -3.1]], dtype=torch.float64)
    weight = torch.rand(3, 2, generator=gen, dtype=torch.float64)
    assert fused_regression_loss(kind, pred, target, weight, reduction, avg_factor,
                                 **params) is not None
    assert torch.autograd.gradcheck(
        lambda p, t: fn(p, t, weight, reduction=reduction, avg_factor=avg_factor, **params),
        (pred.clone().requires_grad_(True), target.clone().requires_grad_(True)))


@pytest.mark.parametrize('fn,kind,params', CASES, ids=IDS)
def test_deterministic(fn, kind, params):
    # large enough for several blocks and both threads: the sum must not depend on scheduling
    pred, target, weight = _data(shape=(20011, 4))
    runs = [_run(fn, pred, target, weight, 'mean', 123.0, params, True) for _ in range(3)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = _run(fn, pred, target, weight, 'mean', 123.0, params, True)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(runs[0], single):
        assert torch.equal(a, b)


def test_large_sum_is_accurate():
    # partial sums in double: the float32 result is the correctly rounded sum
    pred, target, weight = _data(shape=(50000, 4), seed=5)
    fused = F.l1_loss(pred, target, weight, reduction='sum')
    exact = ((pred.double() - target.double()).abs().float() * weight).double().sum()
    torch.testing.assert_close(fused, exact.float(), rtol=1e-7, atol=0)


@pytest.mark.parametrize('fn,kind,params', CASES, ids=IDS)
@pytest.mark.parametrize('reduction,avg_factor', [('none', None), ('mean', None), ('sum', None),
                                                  ('mean', 4.0)])
def test_empty_input(fn, kind, params, reduction, avg_factor):
    pred = torch.zeros(0, 4, requires_grad=True)
    target = torch.zeros(0, 4)
    assert fused_regression_loss(kind, pred, target, None, reduction, avg_factor,
                                 **params) is not None
    out = fn(pred, target, torch.zeros(0, 4), reduction=reduction, avg_factor=avg_factor,
             **params)
    assert out.requires_grad
    if reduction == 'none':
        assert out.shape == (0, 4)
    else:
        assert out.shape == () and float(out.detach()) == 0.0
    out.sum().backward()
    assert pred.grad is not None and pred.grad.shape == (0, 4)


def test_expanded_gradient_of_none_reduction():
    # 'none' loss summed afterwards: the kernel reads the expanded gradient as one value
    pred, target, weight = _data()
    p = pred.clone().requires_grad_(True)
    (F.smooth_l1_loss(p, target, weight, reduction='none', beta=0.3).sum() * 2.0).backward()
    q = pred.clone().requires_grad_(True)
    (plain(F.smooth_l1_loss, q, target, weight, reduction='none', beta=0.3).sum()
     * 2.0).backward()
    torch.testing.assert_close(p.grad, q.grad)


def test_tensor_avg_factor_and_target_only_gradient():
    pred, target, weight = _data(dtype=torch.float64)
    avg = torch.tensor(6.0, dtype=torch.float64, requires_grad=True)
    t = target.clone().requires_grad_(True)
    out = F.balanced_l1_loss(pred, t, weight, avg_factor=avg)
    out.backward()
    avg_ref = avg.detach().clone().requires_grad_(True)
    t_ref = target.clone().requires_grad_(True)
    ref = plain(F.balanced_l1_loss, pred, t_ref, weight, avg_factor=avg_ref)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(t.grad, t_ref.grad)
    torch.testing.assert_close(avg.grad, avg_ref.grad)


def test_non_contiguous_inputs():
    pred, target, weight = _data(shape=(6, 8))
    args = (pred.t(), target.t(), weight.t())
    torch.testing.assert_close(F.mse_loss(*args, reduction='none'),
                               plain(F.mse_loss, *args, reduction='none'))


def _declines(**overrides):
    pred, target, weight = _data()
    kwargs = dict(kind='l1', pred=pred, target=target, weight=weight, reduction='mean',
                  avg_factor=None)
    kwargs.update(overrides)
    return fused_regression_loss(**kwargs) is None


@pytest.mark.parametrize('overrides', [
    dict(kind='huber'),
    dict(pred=torch.zeros(7, 5, dtype=torch.float16), target=torch.zeros(7, 5,
                                                                         dtype=torch.float16)),
    dict(pred=torch.zeros(7, 5, dtype=torch.bfloat16), target=torch.zeros(7, 5,
                                                                          dtype=torch.bfloat16)),
    dict(target=torch.zeros(7, 5, dtype=torch.float64)),
    dict(target=torch.zeros(7, 4)),
    dict(weight=torch.ones(7, 1)),
    dict(weight=torch.ones(5)),
    dict(weight=torch.ones(7, 5, requires_grad=True)),
    dict(weight=torch.ones(7, 5, device='meta')),
    dict(pred=torch.zeros(7, 5, device='meta'), target=torch.zeros(7, 5, device='meta'),
         weight=None),
    dict(reduction='sum', avg_factor=2.0),
], ids=['kind', 'float16', 'bfloat16', 'dtypes', 'shapes', 'weight-broadcast-column',
        'weight-broadcast-row', 'weight-requires-grad', 'weight-device', 'pred-device',
        'sum-with-avg-factor'])
def test_declines_where_no_kernel_applies(overrides):
    assert _declines(**overrides)


def test_declines_without_extension(monkeypatch):
    monkeypatch.setattr(regression_kernel, '_EXT', None)
    assert _declines()


def test_fallbacks_still_give_the_reference():
    pred, target, weight = _data()
    # a broadcast weight and a weight that requires grad take the plain path
    column = weight[:, :1]
    torch.testing.assert_close(F.l1_loss(pred, target, column, reduction='sum'),
                               ((pred - target).abs() * column).sum())
    w = weight.clone().requires_grad_(True)
    F.mse_loss(pred, target, w).backward()
    torch.testing.assert_close(w.grad, (pred - target).square() / pred.numel())


@pytest.mark.parametrize('call,error,match', [
    (lambda p, t: F.l1_loss(p, t, reduction='sum', avg_factor=2.0), ValueError,
     r"reduction must be 'mean' or 'none' when avg_factor is given, got 'sum'"),
    (lambda p, t: F.l1_loss(p, t, avg_factor=-1.0), ValueError,
     r'avg_factor must be >= 0, got -1.0'),
    (lambda p, t: F.l1_loss(p, t, avg_factor='2'), TypeError,
     r'avg_factor must be a number or a scalar tensor, got str'),
    (lambda p, t: F.l1_loss(p, t, reduction='avg'), ValueError,
     r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"),
    (lambda p, t: F.l1_loss(p, t, torch.ones(3)), ValueError,
     r'weight must broadcast to the loss shape \(7, 5\), got \(3,\)'),
])
def test_errors_are_those_of_the_reduction(call, error, match):
    pred, target, _ = _data()
    with pytest.raises(error, match=match):
        call(pred, target)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('alpha,gamma,beta', [(0.5, 1.5, 1.0), (0.1, 2.0, 0.5), (2.0, 0.1, 3.0)])
def test_balanced_l1_log1p_over_all_magnitudes(dtype, alpha, gamma, beta):
    # the kernel's own log1p: residuals from subnormal to beta (b x / beta from ~0 to b, up to
    # ~5e8 for alpha=0.1, gamma=2), against torch.log1p on the plain path. The formula
    # subtracts terms of size ~alpha x (value) and ~alpha (gradient), so both paths agree to a
    # few ulp of those terms, not of the (much smaller) result.
    exponents = torch.linspace(-40 if dtype == torch.float32 else -300, 0, 4001,
                               dtype=torch.float64)
    x = (10.0 ** exponents * beta).to(dtype)
    x = torch.cat([x, -x, torch.tensor([0.0, beta], dtype=dtype)])
    params = dict(alpha=alpha, gamma=gamma, beta=beta)
    fused = _run(F.balanced_l1_loss, x, torch.zeros_like(x), None, 'none', None, params, True)
    ref = _run(F.balanced_l1_loss, x, torch.zeros_like(x), None, 'none', None, params, False)
    b = math.exp(gamma / alpha) - 1
    ax = x.double().abs()
    value_scale = alpha / b * (b * ax + 1) * torch.log1p(b * ax / beta) + alpha * ax
    grad_scale = alpha * torch.log1p(b * ax / beta) + 2 * alpha + gamma
    eps = torch.finfo(dtype).eps
    subnormal_ulp = torch.finfo(dtype).tiny * eps
    for got, want, scale in zip(fused, ref, (value_scale, grad_scale, grad_scale)):
        error = (got.double() - want.double()).abs()
        # near 0 the loss is alpha/b times a subnormal log1p: its last bit, magnified
        bound = 8 * eps * (want.double().abs() + scale) + 4 * (1 + alpha / b) * subnormal_ulp
        assert torch.all(error <= bound), (error / bound).max()


NONFINITE_CASES = [
    (F.l1_loss, {}), (F.mse_loss, {}), (F.rmse_loss, {}), (F.smooth_l1_loss, dict(beta=0.5)),
    (F.smooth_l1_loss, dict(beta=0.0)), (F.balanced_l1_loss, {}),
]


@pytest.mark.parametrize('fn,params', NONFINITE_CASES,
                         ids=[f'{fn.__name__}-{params}' for fn, params in NONFINITE_CASES])
@pytest.mark.parametrize('where', ['pred', 'target', 'weight'])
@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
def test_non_finite_inputs_give_non_finite_loss_and_gradient(fn, params, where, reduction):
    """The contract (issue #11, point 2): a NaN or infinite value in pred, target or weight
    gives a non-finite loss for that element and a non-finite gradient (pred's and target's),
    on the kernel as on the plain path; the other elements are untouched. (Before, the
    SmoothL1/BalancedL1 kernel gave the finite slope at an infinite residual and 0 at a NaN
    one, where the plain path gives NaN.)"""
    pred, target, weight = _data(shape=(4, 6), seed=3)
    bad_values = [float('nan'), float('inf'), -float('inf')]
    hostile = {'pred': pred, 'target': target, 'weight': weight}[where]
    bad = torch.zeros(pred.shape, dtype=torch.bool)
    for k, value in enumerate(bad_values):
        hostile.view(-1)[3 + 5 * k] = value
        bad.view(-1)[3 + 5 * k] = True
    results = {}
    for through_kernel in (True, False):
        results[through_kernel] = _run(fn, pred, target, weight, reduction, None, params,
                                       through_kernel)
    loss, grad_pred, grad_target = results[True]
    ref_loss, ref_pred, ref_target = results[False]
    for got in (grad_pred, grad_target):
        assert not torch.isfinite(got[bad]).any(), got[bad]
    if reduction == 'none' and fn is not F.rmse_loss:
        assert not torch.isfinite(loss[bad]).any(), loss[bad]
    else:
        assert not torch.isfinite(loss).all()
    # the same on the plain path, and the same values everywhere else
    ok = ~bad
    for got, want in ((grad_pred, ref_pred), (grad_target, ref_target)):
        assert torch.equal(torch.isfinite(got), torch.isfinite(want))
        torch.testing.assert_close(got[ok], want[ok], rtol=1e-5, atol=1e-6, equal_nan=True)
    torch.testing.assert_close(torch.isfinite(loss), torch.isfinite(ref_loss))
    if reduction == 'none':
        torch.testing.assert_close(loss[ok], ref_loss[ok], rtol=1e-5, atol=1e-6)
