"""The fused focal-loss kernel (mmdet_losses.ops._focal) against the pure-PyTorch path it
replaces on CPU: values and gradients, float32 and float64, weights, avg_factor, reductions,
gammas (the integer fast paths and the general power), saturated logits."""
import pytest
import torch

from mmdet_losses import functional as F
from mmdet_losses.ops import focal_kernel

pytestmark = pytest.mark.skipif(not focal_kernel.available(),
                                reason='the focal kernel is not built')


def _inputs(dtype, n=37, c=11, seed=0, saturate=False):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, c, generator=gen, dtype=torch.float64) * 4
    if saturate:
        pred[::3] = 100.0 * torch.sign(pred[::3])
        pred[1::7, :3] = torch.tensor([-30.0, 88.5, -104.0], dtype=torch.float64)
    labels = torch.randint(0, c + 1, (n,), generator=gen)
    labels[:3] = torch.tensor([c, 0, c - 1])
    per_anchor = torch.rand(n, generator=gen, dtype=torch.float64)
    per_element = torch.rand(n, c, generator=gen, dtype=torch.float64)
    return pred.to(dtype), labels, per_anchor.to(dtype), per_element.to(dtype)


def _both_paths(monkeypatch, pred, labels, weight, **kwargs):
    """(kernel value, kernel grad), (torch value, torch grad) for one call of focal_loss."""
    results = []
    for use_kernel in (True, False):
        with monkeypatch.context() as patch:
            if not use_kernel:
                patch.setattr(focal_kernel, '_ext', None)
            leaf = pred.clone().requires_grad_(True)
            out = F.focal_loss(leaf, labels, weight, **kwargs)
            grad_out = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
            out.backward(grad_out)
            results.append((out.detach(), leaf.grad))
    return results


def _tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10,
                                                                            atol=1e-12)


def test_kernel_is_what_runs_on_cpu(monkeypatch):
    calls = []
    original = focal_kernel.sigmoid_focal_loss_index_op
    monkeypatch.setattr(focal_kernel, 'sigmoid_focal_loss_index_op',
                        lambda *a: calls.append(1) or original(*a))
    pred, labels, _, _ = _inputs(torch.float32)
    F.focal_loss(pred, labels)
    assert calls == [1]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('gamma', [0.0, 1.0, 2.0, 3.0, 0.5, 1.7])
@pytest.mark.parametrize('alpha', [0.25, -1.0])
def test_kernel_matches_torch_path(monkeypatch, dtype, gamma, alpha):
    pred, labels, _, _ = _inputs(dtype, seed=int(gamma * 10))
    for reduction in ('none', 'mean', 'sum'):
        (v_k, g_k), (v_t, g_t) = _both_paths(monkeypatch, pred, labels, None,
                                             reduction=reduction, gamma=gamma, alpha=alpha)
        torch.testing.assert_close(v_k, v_t, **_tolerance(dtype))
        torch.testing.assert_close(g_k, g_t, **_tolerance(dtype))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('weight_kind', ['anchor', 'anchor_2d', 'element', 'flat'])
@pytest.mark.parametrize('reduction,avg_factor', [('none', None), ('sum', None),
                                                  ('mean', None), ('mean', 13.0),
                                                  ('none', 13.0)])
def test_kernel_matches_torch_path_with_weights(monkeypatch, dtype, weight_kind, reduction,
                                                avg_factor):
    pred, labels, per_anchor, per_element = _inputs(dtype, seed=5)
    weight = {'anchor': per_anchor, 'anchor_2d': per_anchor[:, None], 'element': per_element,
              'flat': per_element.reshape(-1)}[weight_kind]
    (v_k, g_k), (v_t, g_t) = _both_paths(monkeypatch, pred, labels, weight, reduction=reduction,
                                         avg_factor=avg_factor, gamma=2.0, alpha=0.25)
    torch.testing.assert_close(v_k, v_t, **_tolerance(dtype))
    torch.testing.assert_close(g_k, g_t, **_tolerance(dtype))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('gamma', [0.0, 0.25, 2.0, 1.5])
def test_kernel_matches_torch_path_at_saturated_logits(monkeypatch, dtype, gamma):
    pred, labels, per_anchor, _ = _inputs(dtype, saturate=True, seed=2)
    for reduction in ('none', 'sum'):
        (v_k, g_k), (v_t, g_t) = _both_paths(monkeypatch, pred, labels, per_anchor,
                                             reduction=reduction, gamma=gamma, alpha=0.25)
        assert torch.isfinite(v_k).all() and torch.isfinite(g_k).all()
        # float32 exp(-100) underflows differently in the two paths: absolute tolerance
        torch.testing.assert_close(v_k, v_t, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g_k, g_t, rtol=1e-5, atol=1e-6)


def test_kernel_gradcheck_float64():
    pred, labels, per_anchor, per_element = _inputs(torch.float64, n=4, c=3, seed=7)
    for weight, reduction in ((None, 'mean'), (per_anchor, 'sum'), (per_element, 'none')):
        for gamma in (2.0, 0.5):
            assert torch.autograd.gradcheck(
                lambda p: F.focal_loss(p, labels, weight, reduction, gamma=gamma),
                (pred.clone().requires_grad_(True),))


def test_kernel_empty_and_all_background(monkeypatch):
    empty = torch.zeros(0, 5, requires_grad=True)
    out = F.focal_loss(empty, torch.zeros(0, dtype=torch.long))
    out.backward()
    assert float(out.detach()) == 0.0 and empty.grad.shape == (0, 5)
    pred, _, _, _ = _inputs(torch.float32)
    background = torch.full((pred.shape[0],), pred.shape[1])
    (v_k, g_k), (v_t, g_t) = _both_paths(monkeypatch, pred, background, None, reduction='sum')
    torch.testing.assert_close(v_k, v_t)
    torch.testing.assert_close(g_k, g_t)


def test_weight_with_gradient_takes_the_torch_path():
    pred, labels, per_anchor, _ = _inputs(torch.float64, n=5, c=3)
    weight = per_anchor.clone().requires_grad_(True)
    F.focal_loss(pred, labels, weight, 'sum').backward()
    expect = F.focal_loss(pred, labels, reduction='none').sum(1)
    torch.testing.assert_close(weight.grad, expect)


@pytest.mark.parametrize('reduction', ['sum', 'none'])
def test_second_backward_recomputes_the_same_gradient(reduction):
    # the first backward hands over the gradient computed by the forward; a second one
    # (retain_graph) recomputes it from the saved logits and labels
    pred, labels, per_anchor, _ = _inputs(torch.float64)
    leaf = pred.clone().requires_grad_(True)
    out = F.focal_loss(leaf, labels, per_anchor, reduction, gamma=1.5)
    grad_out = torch.rand_like(out)
    out.backward(grad_out, retain_graph=True)
    first = leaf.grad.clone()
    leaf.grad = None
    out.backward(grad_out)
    torch.testing.assert_close(leaf.grad, first, rtol=1e-12, atol=1e-14)


def test_forward_without_gradient_gives_the_same_values():
    pred, labels, _, per_element = _inputs(torch.float32)
    for reduction in ('none', 'mean'):
        with_grad = F.focal_loss(pred.clone().requires_grad_(True), labels, per_element,
                                 reduction)
        with torch.no_grad():
            without = F.focal_loss(pred, labels, per_element, reduction)
        torch.testing.assert_close(with_grad.detach(), without, rtol=0, atol=0)
