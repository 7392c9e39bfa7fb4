"""Regression losses against mmdet's classes, torch.nn.functional and hand-derived values."""
import math

import pytest
import torch
import torch.nn.functional as TF
from _helpers import HALF_DTYPES, assert_finite, assert_zero_in_graph, double_leaf, mmdet_loss

import mmdet_losses
from mmdet_losses import functional as F

# (our class, our function, params, mmdet class name or None, torch reference or None)
CASES = [
    ('L1Loss', F.l1_loss, {}, 'L1Loss', lambda p, t: TF.l1_loss(p, t, reduction='none')),
    ('MSELoss', F.mse_loss, {}, 'MSELoss', lambda p, t: TF.mse_loss(p, t, reduction='none')),
    ('SmoothL1Loss', F.smooth_l1_loss, dict(beta=0.3), 'SmoothL1Loss',
     lambda p, t: TF.smooth_l1_loss(p, t, reduction='none', beta=0.3)),
    ('BalancedL1Loss', F.balanced_l1_loss, dict(alpha=0.5, gamma=1.5, beta=1.0),
     'BalancedL1Loss', None),
    ('RMSELoss', F.rmse_loss, {}, None, lambda p, t: (p - t).abs()),
]
IDS = [c[0] for c in CASES]


def _data(shape=(6, 4), seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(*shape, generator=gen) * 2
    target = torch.randn(*shape, generator=gen) * 2
    weight = torch.rand(*shape, generator=gen)
    return pred.to(dtype), target.to(dtype), weight.to(dtype)


@pytest.mark.parametrize('name,fn,params,mmdet_name,torch_ref',
                         [c for c in CASES if c[4]], ids=[c[0] for c in CASES if c[4]])
def test_elementwise_equals_torch_reference(name, fn, params, mmdet_name, torch_ref):
    pred, target, _ = _data()
    torch.testing.assert_close(fn(pred, target, reduction='none', **params),
                               torch_ref(pred, target))


@pytest.mark.parametrize('name,fn,params,mmdet_name,torch_ref',
                         [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
@pytest.mark.parametrize('use_weight', [False, True])
@pytest.mark.parametrize('avg_factor', [None, 5.0])
@pytest.mark.parametrize('reduction_override', [None, 'none', 'mean', 'sum'])
def test_module_matches_mmdet(name, fn, params, mmdet_name, torch_ref, use_weight, avg_factor,
                              reduction_override):
    pred, target, weight = _data()
    weight = weight if use_weight else None
    ours = getattr(mmdet_losses, name)(loss_weight=1.7, **params)
    ref = mmdet_loss(mmdet_name, loss_weight=1.7, **params)
    kwargs = dict(weight=weight, avg_factor=avg_factor, reduction_override=reduction_override)
    if avg_factor is not None and reduction_override == 'sum':
        with pytest.raises(ValueError):
            ours(pred, target, **kwargs)
        return
    torch.testing.assert_close(ours(pred, target, **kwargs), ref(pred, target, **kwargs))


@pytest.mark.parametrize('name,fn,params,mmdet_name,torch_ref', CASES, ids=IDS)
def test_module_is_loss_weight_times_functional(name, fn, params, mmdet_name, torch_ref):
    pred, target, weight = _data()
    module = getattr(mmdet_losses, name)(reduction='sum', loss_weight=2.5, **params)
    torch.testing.assert_close(module(pred, target, weight),
                               2.5 * fn(pred, target, weight, reduction='sum', **params))


@pytest.mark.parametrize('name,fn,params,mmdet_name,torch_ref', CASES, ids=IDS)
@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
def test_gradcheck_float64(name, fn, params, mmdet_name, torch_ref, reduction):
    pred, target, weight = _data((3, 2), seed=1, dtype=torch.float64)
    # keep residuals away from the kinks (|d| = 0 and |d| = beta) where the derivative jumps
    target = pred + torch.tensor([[0.7, -1.9], [2.6, -0.45], [1.3, -3.1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda p, t: fn(p, t, weight, reduction=reduction, **params),
        (double_leaf(pred), double_leaf(target)))


@pytest.mark.parametrize('name,fn,params,mmdet_name,torch_ref', CASES, ids=IDS)
@pytest.mark.parametrize('reduction', ['mean', 'sum'])
@pytest.mark.parametrize('avg_factor', [None, 4.0])
def test_empty_input_is_a_zero_in_the_graph(name, fn, params, mmdet_name, torch_ref, reduction,
                                            avg_factor):
    if reduction == 'sum' and avg_factor is not None:
        return
    pred = torch.zeros(0, 4, requires_grad=True)
    module = getattr(mmdet_losses, name)(reduction=reduction, **params)
    assert_zero_in_graph(module(pred, torch.zeros(0, 4), avg_factor=avg_factor), pred)


@pytest.mark.parametrize('name,fn,params,mmdet_name,torch_ref', CASES, ids=IDS)
def test_empty_input_none_reduction_keeps_shape(name, fn, params, mmdet_name, torch_ref):
    out = fn(torch.zeros(0, 4), torch.zeros(0, 4), reduction='none', **params)
    assert out.shape == (0, 4)


@pytest.mark.parametrize('name,fn,params,mmdet_name,torch_ref', CASES, ids=IDS)
@pytest.mark.parametrize('dtype', HALF_DTYPES)
def test_half_precision_computed_in_float32(name, fn, params, mmdet_name, torch_ref, dtype):
    pred, target, weight = _data(dtype=dtype)
    for reduction in ('none', 'mean', 'sum'):
        out = fn(pred, target, weight, reduction=reduction, **params)
        assert out.dtype == dtype
        ref = fn(pred.float(), target.float(), weight.float(), reduction=reduction, **params)
        torch.testing.assert_close(out, ref.to(dtype))
    leaf = pred.clone().requires_grad_(True)
    fn(leaf, target, weight, **params).backward()
    assert leaf.grad.dtype == dtype
    assert_finite(leaf.grad)


def test_smooth_l1_beta_zero_is_exactly_l1_with_finite_gradient():
    pred, target, weight = _data()
    pred[0] = target[0]  # zero residuals too
    leaf = pred.clone().requires_grad_(True)
    smooth = F.smooth_l1_loss(leaf, target, weight, beta=0.0)
    torch.testing.assert_close(smooth, F.l1_loss(pred, target, weight), rtol=0, atol=0)
    torch.testing.assert_close(F.smooth_l1_loss(pred, target, reduction='none', beta=0.0),
                               TF.l1_loss(pred, target, reduction='none'), rtol=0, atol=0)
    smooth.backward()
    assert_finite(leaf.grad)
    assert torch.all(leaf.grad[0] == 0)


@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
def test_rmse_zero_residual_has_finite_zero_gradient(reduction):
    target = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    leaf = target.clone().requires_grad_(True)
    out = F.rmse_loss(leaf, target, reduction=reduction)
    assert float(out.detach().sum()) == 0.0
    out.sum().backward()
    assert_finite(leaf.grad)
    assert torch.all(leaf.grad == 0)


def test_rmse_hand_values():
    pred = torch.zeros(2, 2)
    target = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert math.isclose(float(F.rmse_loss(pred, target, reduction='sum')), 5.0, rel_tol=1e-6)
    assert math.isclose(float(F.rmse_loss(pred, target)), 2.5, rel_tol=1e-6)  # sqrt(25 / 4)
    assert math.isclose(float(F.rmse_loss(pred, target, avg_factor=1.0)), 5.0, rel_tol=1e-6)
    torch.testing.assert_close(F.rmse_loss(pred, target, torch.full((2, 2), 4.0), 'none'),
                               torch.tensor([[6.0, 8.0], [0.0, 0.0]]))
    # d sqrt(mean d^2) / d pred = (pred - target) / (N * rmse)
    leaf = pred.clone().requires_grad_(True)
    F.rmse_loss(leaf, target).backward()
    torch.testing.assert_close(leaf.grad, -target / (4 * 2.5))


def test_balanced_l1_hand_values():
    alpha, gamma, beta = 0.5, 1.5, 1.0
    b = math.e ** (gamma / alpha) - 1

    def paper(x):  # Pang et al. 2019, eq. 8-9
        if x < beta:
            return alpha / b * (b * x + 1) * math.log(b * x / beta + 1) - alpha * x
        return gamma * x + gamma / b - alpha * beta

    xs = torch.tensor([0.0, 0.1, 0.5, 0.999, 1.0, 2.0, 7.5], dtype=torch.float64)
    out = F.balanced_l1_loss(xs, torch.zeros_like(xs), reduction='none')
    torch.testing.assert_close(out, torch.tensor([paper(float(x)) for x in xs],
                                                 dtype=torch.float64))
    # its gradient: alpha*log(b|x|/beta + 1) inside, gamma outside, continuous at beta
    leaf = xs.clone().requires_grad_(True)
    F.balanced_l1_loss(leaf, torch.zeros_like(xs), reduction='sum').backward()
    expect = [alpha * math.log(b * float(x) / beta + 1) if x < beta else gamma for x in xs]
    torch.testing.assert_close(leaf.grad, torch.tensor(expect, dtype=torch.float64))


def test_smooth_l1_hand_values():
    out = F.smooth_l1_loss(torch.tensor([0.0, 0.5, 1.0, 3.0]), torch.zeros(4), reduction='none')
    torch.testing.assert_close(out, torch.tensor([0.0, 0.125, 0.5, 2.5]))


def test_regression_any_shape():
    pred, target, weight = _data((2, 3, 5))
    assert F.l1_loss(pred, target, reduction='none').shape == (2, 3, 5)
    torch.testing.assert_close(F.mse_loss(pred, target, weight[:, :1], reduction='sum'),
                               ((pred - target) ** 2 * weight[:, :1]).sum())


@pytest.mark.parametrize('call,error,match', [
    (lambda: F.l1_loss(torch.zeros(3, 4), torch.zeros(3, 2)), ValueError,
     r'target must have the shape of pred \(3, 4\), got \(3, 2\)'),
    (lambda: F.mse_loss([1.0], torch.zeros(1)), TypeError,
     r'pred must be a torch.Tensor, got list'),
    (lambda: F.l1_loss(torch.zeros(3, dtype=torch.long), torch.zeros(3)), TypeError,
     r'pred must be a floating-point tensor, got dtype torch.int64'),
    (lambda: F.smooth_l1_loss(torch.zeros(3), torch.zeros(3), beta=-1.0), ValueError,
     r'beta must be in \[0.0, inf\], got -1.0'),
    (lambda: F.balanced_l1_loss(torch.zeros(3), torch.zeros(3), alpha=0.0), ValueError,
     r'alpha must be in \(0.0, inf\], got 0.0'),
    (lambda: mmdet_losses.L1Loss(reduction='avg'), ValueError,
     r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"),
    (lambda: mmdet_losses.L1Loss()(torch.zeros(2), torch.zeros(2), reduction_override='max'),
     ValueError, r"reduction_override must be one of .*, got 'max'"),
    (lambda: mmdet_losses.SmoothL1Loss(beta='1'), TypeError, r'beta must be a number, got str'),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
