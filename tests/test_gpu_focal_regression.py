"""The Triton kernels of the focal and regression losses (mmdet_losses/ops/gpu/focal.py and
regression.py), run by Triton's interpreter on CPU tensors (conftest.py sets TRITON_INTERPRET=1)
and called directly, against the plain PyTorch path they replace on CUDA: values and gradients
for every kind and target form, weights, reductions, float32 and float64, NaN/inf, empty input,
background labels, gamma/alpha variants; their registration as the operators' CUDA kernels; the
dispatch (which path runs for which device and dtype); and the CPU implementation of the
soft-target operator."""
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip('triton')
# numpy's warnings about NaN and inf in the interpreter's arithmetic, which the tests put there
pytestmark = pytest.mark.filterwarnings('ignore:invalid value encountered:RuntimeWarning',
                                        'ignore:overflow encountered:RuntimeWarning')

from mmdet_losses import functional as F  # noqa: E402
from mmdet_losses.functional import cls_focal  # noqa: E402
from mmdet_losses.ops import focal_kernel, gpu, regression_kernel  # noqa: E402
from mmdet_losses.ops.regression_kernel import FUSED_KINDS, _plain_regression  # noqa: E402

if os.environ.get('TRITON_INTERPRET') != '1':  # pragma: no cover - conftest sets it
    pytest.skip('the kernels run on CPU tensors only under TRITON_INTERPRET=1',
                allow_module_level=True)

from mmdet_losses.ops.gpu import focal as gpu_focal  # noqa: E402
from mmdet_losses.ops.gpu import regression as gpu_regression  # noqa: E402

NAN, INF = float('nan'), float('inf')
DTYPES = [torch.float32, torch.float64]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10,
                                                                            atol=1e-12)


# ------------------------------------------------------------------------------ regression
needs_kinds = pytest.mark.skipif(not FUSED_KINDS, reason='the kind ids come from the built '
                                 'extension mmdet_losses.ops._regression')
#: (kind name, beta, alpha, gamma): several parameters per kind
REGRESSION_PARAMS = {'l1': [(1.0, 0.5, 1.5)], 'mse': [(1.0, 0.5, 1.5)],
                     'smooth_l1': [(1.0, 0.5, 1.5), (0.3, 0.5, 1.5)],
                     'balanced_l1': [(1.0, 0.5, 1.5), (0.6, 0.3, 2.0)]}


def _regression_data(dtype, shape=(9, 4), seed=0, nonfinite=False):
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 1.5).to(dtype)
    target = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 1.5).to(dtype)
    weight = torch.rand(*shape, generator=gen, dtype=torch.float64).to(dtype)
    flat_p, flat_t = pred.view(-1), target.view(-1)
    flat_t[:3] = flat_p[:3]  # residual 0: the kink of |d|
    for k, d in enumerate([1.0, -1.0, 0.3, -0.3, 0.6, -0.6], start=3):  # |d| = beta
        flat_t[k] = flat_p[k] - d
    if nonfinite:
        flat_p[10], flat_t[13], flat_p[17] = NAN, INF, -INF
        weight.view(-1)[21] = NAN
    return pred, target, weight


def _plain_regression_grads(pred, target, weight, kind, params, grad):
    p = pred.clone().requires_grad_(True)
    t = target.clone().requires_grad_(True)
    _plain_regression(p, t, weight, kind, *params, False).backward(grad)
    return p.grad, t.grad


@needs_kinds
@pytest.mark.parametrize('name', sorted(REGRESSION_PARAMS))
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('use_weight', [False, True])
def test_regression_matches_plain_path(name, dtype, use_weight):
    kind = FUSED_KINDS[name]
    for params in REGRESSION_PARAMS[name]:
        for nonfinite in (False, True):
            pred, target, weight = _regression_data(dtype, nonfinite=nonfinite)
            weight = weight if use_weight else None
            for reduce in (False, True):
                got = gpu_regression.regression_forward(pred, target, weight, kind, *params,
                                                        reduce)
                want = _plain_regression(pred, target, weight, kind, *params, reduce)
                assert got.dtype == want.dtype and got.shape == want.shape
                torch.testing.assert_close(got, want, equal_nan=True, **_tol(dtype))
            # an element-wise incoming gradient, and one value (the gradient of a sum)
            grad = torch.linspace(-1, 2, pred.numel(), dtype=dtype).reshape(pred.shape)
            for scalar, incoming in ((False, grad), (True, torch.tensor(0.7, dtype=dtype))):
                want = _plain_regression_grads(pred, target, weight, kind, params,
                                               incoming.expand(pred.shape))
                for target_grad in (True, False):
                    grad_pred, grad_target = gpu_regression.regression_backward(
                        incoming, pred, target, weight, kind, *params, scalar, target_grad)
                    torch.testing.assert_close(grad_pred, want[0], equal_nan=True,
                                               **_tol(dtype))
                    if target_grad:
                        torch.testing.assert_close(grad_target, want[1], equal_nan=True,
                                                   **_tol(dtype))
                    else:
                        assert grad_target.shape == (0,)


@needs_kinds
def test_regression_nonfinite_gives_nan_loss_and_gradient():
    pred = torch.tensor([NAN, INF, -INF, 0.5, 3.0])
    target = torch.tensor([0.0, 0.0, 0.0, INF, 0.0])
    weight = torch.tensor([1.0, 1.0, 1.0, 1.0, NAN])
    for name, kind in FUSED_KINDS.items():
        loss = gpu_regression.regression_forward(pred, target, weight, kind, 1.0, 0.5, 1.5,
                                                 False)
        assert torch.isnan(loss).all(), (name, loss)
        grad_pred, grad_target = gpu_regression.regression_backward(
            torch.tensor(1.0), pred, target, weight, kind, 1.0, 0.5, 1.5, True, True)
        assert torch.isnan(grad_pred).all() and torch.isnan(grad_target).all(), name
        assert torch.isnan(gpu_regression.regression_forward(pred, target, None, kind, 1.0,
                                                             0.5, 1.5, True))


@needs_kinds
def test_regression_written_out_values():
    # independent of the plain path: the formulas by hand, at d = 0.5 and 3 with beta = 1
    pred = torch.tensor([0.5, -3.0], dtype=torch.float64)
    target = torch.zeros(2, dtype=torch.float64)
    b = math.exp(1.5 / 0.5) - 1
    expected = {
        'l1': [0.5, 3.0], 'mse': [0.25, 9.0], 'smooth_l1': [0.125, 2.5],
        'balanced_l1': [0.5 / b * (b * 0.5 + 1) * math.log(b * 0.5 + 1) - 0.25,
                        1.5 * 3 + 1.5 / b - 0.5]}
    for name, values in expected.items():
        loss = gpu_regression.regression_forward(pred, target, None, FUSED_KINDS[name], 1.0,
                                                 0.5, 1.5, False)
        torch.testing.assert_close(loss, torch.tensor(values, dtype=torch.float64))


@needs_kinds
def test_regression_reduced_sum_is_accumulated_in_double():
    # float32 elements summed in float64 per block: the correctly rounded sum of the float32
    # losses, whatever the number of blocks
    pred, target, weight = _regression_data(torch.float32, shape=(1500, 4), seed=4)
    got = gpu_regression.regression_forward(pred, target, weight, FUSED_KINDS['l1'], 1.0, 0.5,
                                            1.5, True)
    exact = ((pred - target).abs() * weight).double().sum().float()
    assert torch.equal(got, exact)
    again = gpu_regression.regression_forward(pred, target, weight, FUSED_KINDS['l1'], 1.0,
                                              0.5, 1.5, True)
    assert torch.equal(got, again)


@needs_kinds
def test_regression_empty_input():
    empty = torch.zeros(0, 4)
    for kind in FUSED_KINDS.values():
        total = gpu_regression.regression_forward(empty, empty, empty, kind, 1.0, 0.5, 1.5, True)
        assert total.shape == () and float(total) == 0.0
        assert gpu_regression.regression_forward(empty, empty, None, kind, 1.0, 0.5, 1.5,
                                                 False).shape == (0, 4)
        grad_pred, grad_target = gpu_regression.regression_backward(
            torch.tensor(1.0), empty, empty, None, kind, 1.0, 0.5, 1.5, True, True)
        assert grad_pred.shape == (0, 4) and grad_target.shape == (0, 4)


@needs_kinds
def test_regression_errors():
    pred = torch.zeros(3, 2)
    with pytest.raises(ValueError, match='kind must be one of'):
        gpu_regression.regression_forward(pred, pred, None, 99, 1.0, 0.5, 1.5, True)
    with pytest.raises(ValueError, match=r'grad must have one element with scalar_grad, got '
                                         r'shape \(3, 2\)'):
        gpu_regression.regression_backward(pred, pred, pred, None, FUSED_KINDS['l1'], 1.0, 0.5,
                                           1.5, True, False)


# ----------------------------------------------------------------------------------- focal
#: (gamma, alpha): the product fast paths, the general power, alpha < 0 (no alpha factor)
GAMMA_ALPHA = [(0.0, 0.25), (1.0, -1.0), (2.0, 0.25), (3.0, 0.25), (0.5, -1.0), (1.7, 0.25)]


def _focal_data(dtype, n=13, c=5, seed=0, nonfinite=False):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, c, generator=gen, dtype=torch.float64) * 4
    pred[1, :3] = torch.tensor([100.0, -100.0, -30.0], dtype=torch.float64)  # saturated
    labels = torch.randint(0, c + 1, (n,), generator=gen)
    labels[:4] = torch.tensor([c, 0, 1, c - 1])  # background (label C) and edge classes
    soft = torch.rand(n, c, generator=gen, dtype=torch.float64)
    soft[::3] = (soft[::3] > 0.5).to(torch.float64)  # one-hot rows among the soft ones
    soft[2, 0] = 1.0
    if nonfinite:
        pred[5, 0], pred[6, labels[6].clamp(max=c - 1)], pred[7, 2] = NAN, INF, -INF
        soft[8, 1] = NAN
    weights = {'none': None,
               'anchor': torch.rand(n, 1, generator=gen, dtype=torch.float64).to(dtype),
               'element': torch.rand(n, c, generator=gen, dtype=torch.float64).to(dtype)}
    if nonfinite:  # a NaN weight: NaN loss and gradient where it weighs
        weights['anchor'][9, 0] = NAN
        weights['element'][9, 3] = NAN
    return pred.to(dtype), labels, soft.to(dtype), weights


def _plain_and_grad(plain, pred, target, weight, gamma, alpha, grad):
    leaf = pred.clone().requires_grad_(True)
    loss = plain(leaf, target, weight, gamma, alpha, False)
    loss.backward(grad)
    return loss.detach(), leaf.grad


FOCAL_FORMS = {
    'index': (gpu_focal.focal_forward, gpu_focal.focal_backward,
              focal_kernel._plain_focal_index),
    'soft': (gpu_focal.focal_soft_forward, gpu_focal.focal_soft_backward,
             focal_kernel._plain_focal_soft)}


@pytest.mark.parametrize('form', sorted(FOCAL_FORMS))
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('weight_kind', ['none', 'anchor', 'element'])
@pytest.mark.parametrize('nonfinite', [False, True])
def test_focal_matches_plain_path(form, dtype, weight_kind, nonfinite):
    forward, backward, plain = FOCAL_FORMS[form]
    pred, labels, soft, weights = _focal_data(dtype, nonfinite=nonfinite)
    target = labels if form == 'index' else soft
    weight = weights[weight_kind]
    tol = _tol(dtype)
    grad = torch.linspace(0.5, 1.5, pred.numel(), dtype=dtype).reshape(pred.shape)
    for gamma, alpha in GAMMA_ALPHA:
        want, want_grad = _plain_and_grad(plain, pred, target, weight, gamma, alpha, grad)
        # element-wise, with the weighted gradient of the same pass
        loss, grad_buffer = forward(pred, target, weight, gamma, alpha, False, True)
        torch.testing.assert_close(loss, want, equal_nan=True, **tol)
        torch.testing.assert_close(grad_buffer * grad, want_grad, equal_nan=True, **tol)
        # the backward, for an element-wise and a scalar incoming gradient
        torch.testing.assert_close(backward(grad, pred, target, weight, gamma, alpha),
                                   want_grad, equal_nan=True, **tol)
        scalar = backward(torch.tensor(0.5, dtype=dtype), pred, target, weight, gamma, alpha)
        torch.testing.assert_close(scalar, grad_buffer * 0.5, equal_nan=True, **tol)
        # summed, with and without the gradient buffer
        for with_grad in (False, True):
            total, buffer = forward(pred, target, weight, gamma, alpha, True, with_grad)
            assert total.shape == () and total.dtype == dtype
            torch.testing.assert_close(total, want.sum(), equal_nan=True, **tol)
            assert buffer.shape == (pred.shape if with_grad else (0,))
        if nonfinite:
            rows = [5, 6, 7] + ([] if weight is None else [9])
            assert torch.isnan(loss[rows]).any(dim=1).all() and torch.isnan(total)
            assert torch.isnan(grad_buffer[rows]).any(dim=1).all()


@pytest.mark.parametrize('form', sorted(FOCAL_FORMS))
def test_focal_written_out_values(form):
    # independent of the plain path: -alpha_t (1 - p_t)^gamma log p_t by hand
    forward = FOCAL_FORMS[form][0]
    x = torch.tensor([[0.0, -2.0], [1.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 2]) if form == 'index' else torch.tensor([[1.0, 0.0], [0.0, 0.0]],
                                                                       dtype=torch.float64)
    p = torch.sigmoid(x)
    t = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = 0.25 * t + 0.75 * (1 - t)
    expected = -alpha_t * (1 - p_t) ** 2 * torch.log(p_t)
    loss, _ = forward(x, target, None, 2.0, 0.25, False, False)
    torch.testing.assert_close(loss, expected)


def test_focal_soft_iou_targets_and_nan_target():
    # IoU-aware scores in (0, 1) on the labelled class; a NaN target gives NaN value and grad
    pred, _, soft, _ = _focal_data(torch.float32, seed=3)
    soft[4, 2] = NAN
    loss, grad = gpu_focal.focal_soft_forward(pred, soft, None, 2.0, 0.25, False, True)
    assert torch.isnan(loss[4, 2]) and torch.isnan(grad[4, 2])
    assert torch.isfinite(loss[5:]).all() and torch.isfinite(grad[5:]).all()


@pytest.mark.parametrize('form', sorted(FOCAL_FORMS))
def test_focal_empty_and_all_background(form):
    forward, backward, plain = FOCAL_FORMS[form]
    empty = torch.zeros(0, 5)
    target = torch.zeros(0, dtype=torch.long) if form == 'index' else empty
    total, buffer = forward(empty, target, None, 2.0, 0.25, True, True)
    assert total.shape == () and float(total) == 0.0 and buffer.shape == (0, 5)
    assert forward(empty, target, None, 2.0, 0.25, False, False)[0].shape == (0, 5)
    assert backward(torch.tensor(1.0), empty, target, None, 2.0, 0.25).shape == (0, 5)
    pred, _, _, _ = _focal_data(torch.float64)
    background = (torch.full((pred.shape[0],), pred.shape[1]) if form == 'index'
                  else torch.zeros_like(pred))
    total, _ = forward(pred, background, None, 2.0, 0.25, True, False)
    torch.testing.assert_close(total, plain(pred, background, None, 2.0, 0.25, True))


def test_focal_layout_errors():
    pred = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r'weight must have shape \(4, 3\) or \(4, 1\), got '
                                         r'\(4, 2\)'):
        gpu_focal.focal_forward(pred, torch.zeros(4, dtype=torch.long), torch.ones(4, 2), 2.0,
                                0.25, True, False)
    with pytest.raises(ValueError, match=r'grad_output must be a scalar or of shape \(4, 3\)'):
        gpu_focal.focal_backward(torch.ones(3), pred, torch.zeros(4, dtype=torch.long), None,
                                 2.0, 0.25)


# -------------------------------------------------- soft-target operator: CPU implementation
def test_soft_operator_cpu_implementation_matches_the_triton_kernel():
    pred, _, soft, weights = _focal_data(torch.float64, seed=6, nonfinite=True)
    for weight in weights.values():
        for reduce_sum in (False, True):
            want = gpu_focal.focal_soft_forward(pred, soft, weight, 1.5, 0.25, reduce_sum, True)
            got = focal_kernel._focal_soft_forward(pred, soft, weight, 1.5, 0.25, reduce_sum,
                                                   True)
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b, equal_nan=True)
        grad = torch.rand_like(pred)
        torch.testing.assert_close(
            focal_kernel._focal_soft_backward(grad, pred, soft, weight, 1.5, 0.25),
            gpu_focal.focal_soft_backward(grad, pred, soft, weight, 1.5, 0.25), equal_nan=True)


def test_soft_operator_autograd_first_and_second_order():
    # the operator as registered (its CPU implementation unless the interpreter set-up
    # replaced it), with its autograd formula; the second order comes from the plain path
    pred, _, soft, weights = _focal_data(torch.float64, n=4, c=3, seed=7)
    weight = weights['anchor']
    op = focal_kernel.sigmoid_focal_loss_soft_op
    for reduce_sum in (True, False):
        def fn(x):
            return op(x, soft, weight, 0.5, 0.25, reduce_sum, x.requires_grad)[0]
        leaf = pred.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(fn, (leaf,))
        if reduce_sum:
            assert torch.autograd.gradgradcheck(fn, (leaf,))


# --------------------------------------------------------------- registration and dispatch
OPERATORS = ['regression_loss', 'regression_loss_backward', 'sigmoid_focal_loss_index',
             'sigmoid_focal_loss_index_backward', 'sigmoid_focal_loss_soft',
             'sigmoid_focal_loss_soft_backward']


@pytest.mark.parametrize('name', OPERATORS)
def test_cuda_kernels_are_registered(name):
    for key in ('CUDA', 'CPU'):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f'mmdet_losses::{name}', key)


def test_gpu_modules_compile_specs_cover_the_launched_kernels():
    names = {fn.fn.__name__ if hasattr(fn, 'fn') else fn.__name__
             for module in (gpu_focal, gpu_regression) for fn, _, _ in module.compile_specs()}
    assert names == {'_focal_index_kernel', '_focal_soft_kernel', '_regression_forward_kernel',
                     '_regression_backward_kernel'}
    if FUSED_KINDS:
        losses = {c['LOSS'] for _, _, c in gpu_regression.compile_specs()}
        assert losses == set(FUSED_KINDS)


def test_dispatch_by_device_and_dtype(monkeypatch):
    # a 'meta' device standing for CUDA: the kernels apply where gpu.applies says so
    monkeypatch.setattr(gpu, 'applies', lambda device: device.type == 'meta')
    meta = torch.empty(6, 4, device='meta')
    assert focal_kernel.supports(meta, None)
    assert focal_kernel.supports(meta, torch.empty(6, 1, device='meta'))
    assert not focal_kernel.supports(meta.half(), None)
    assert not focal_kernel.supports(torch.empty(6, 4, 2, device='meta'), None)
    assert focal_kernel.supports_soft(meta, meta, None)
    assert focal_kernel.supports_soft(meta, meta, torch.empty(6, 1, device='meta'))
    assert not focal_kernel.supports_soft(meta, meta, torch.empty(1, 4, device='meta'))
    assert not focal_kernel.supports_soft(meta, meta[:, :2], None)
    assert not focal_kernel.supports_soft(meta.bfloat16(), meta, None)
    assert not focal_kernel.supports_soft(meta, meta, torch.empty(6, 4, device='meta',
                                                                  requires_grad=True))
    # the CPU keeps the C++ kernel (index targets) and the plain path (soft targets)
    cpu = torch.zeros(6, 4)
    assert focal_kernel.supports(cpu, None) == focal_kernel.available()
    assert not focal_kernel.supports_soft(cpu, cpu, None)
    if FUSED_KINDS:
        assert regression_kernel._kernel_applies(meta, meta, meta)
        assert not regression_kernel._kernel_applies(meta.half(), meta.half(), None)
        assert not regression_kernel._kernel_applies(meta, meta, torch.empty(6, 1, device='meta'))
        assert not regression_kernel._kernel_applies(meta, cpu, None)
    monkeypatch.setattr(gpu, 'applies', lambda device: False)
    assert not focal_kernel.supports(meta, None) and not focal_kernel.supports_soft(meta, meta,
                                                                                    None)
    assert not regression_kernel._kernel_applies(meta, meta, None)


def test_soft_targets_on_cpu_take_the_plain_path(monkeypatch):
    if gpu.TRITON_ON_CPU:
        pytest.skip('the interpreter set-up sends CPU tensors to the operator')

    def refuse(*args):
        raise AssertionError('the soft-target operator ran on the CPU')
    monkeypatch.setattr(focal_kernel, 'sigmoid_focal_loss_soft_op', refuse)
    pred, _, soft, _ = _focal_data(torch.float32)
    F.focal_loss(pred, soft)


def test_soft_targets_through_the_operator_end_to_end():
    # the interpreter set-up in a fresh process: focal_loss with soft targets on CPU tensors
    # runs the Triton kernel through the operator (half precision upcast to float32 first),
    # against the plain path of this process
    pred, _, soft, weights = _focal_data(torch.float32, seed=9)
    weight = weights['element']
    script = textwrap.dedent('''
        import sys, torch
        from mmdet_losses import functional as F
        from mmdet_losses.ops import focal_kernel
        pred, soft, weight = torch.load(sys.argv[1])
        calls = []
        original = focal_kernel.sigmoid_focal_loss_soft_op
        focal_kernel.sigmoid_focal_loss_soft_op = lambda *a: calls.append(1) or original(*a)
        out = {}
        for reduction, dtype in (('mean', torch.float32), ('none', torch.float32),
                                 ('sum', torch.float16), ('none', torch.bfloat16)):
            leaf = pred.detach().to(dtype).requires_grad_(True)
            loss = F.focal_loss(leaf, soft, weight, reduction=reduction,
                                avg_factor=None if reduction == 'sum' else 7.0)
            loss.float().sum().backward()
            out[reduction, str(dtype)] = (loss.detach(), leaf.grad)
        assert calls == [1, 1, 1, 1], calls
        torch.save(out, sys.argv[2])
    ''')
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = os.path.join(tmp, 'in.pt'), os.path.join(tmp, 'out.pt')
        torch.save((pred, soft, weight), inputs)
        env = dict(os.environ, MMDET_LOSSES_TRITON_CPU='1', TRITON_INTERPRET='1')
        subprocess.run([sys.executable, '-c', script, inputs, outputs], check=True, env=env,
                       timeout=120)
        got = torch.load(outputs)
    assert len(got) == 4
    for (reduction, dtype), (loss, grad) in got.items():
        leaf = pred.detach().to(getattr(torch, dtype.split('.')[1])).requires_grad_(True)
        want = cls_focal.focal_loss(leaf, soft, weight, reduction=reduction,
                                    avg_factor=None if reduction == 'sum' else 7.0)
        want.float().sum().backward()
        assert loss.dtype == want.dtype and grad.dtype == leaf.grad.dtype
        tol = dict(rtol=1e-5, atol=1e-6) if leaf.dtype == torch.float32 else {}
        torch.testing.assert_close(loss, want.detach(), **tol)
        torch.testing.assert_close(grad, leaf.grad, **tol)
