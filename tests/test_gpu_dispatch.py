"""The GPU kernels' plumbing (mmdet_losses/ops/gpu/, mmdet_losses/ops/_library.py), without a
GPU: which implementation runs for which device, the eager shortcut of the kernel operators,
the CUDA registrations, that every Triton kernel compiles for a real GPU (sm_90), and that the
losses run end to end through the Triton kernels (``MMDET_LOSSES_TRITON_CPU=1``, Triton's
interpreter standing in for the C++ kernels on the CPU)."""
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmdet_losses.ops import _library, focal_kernel, gpu, iou_kernels, regression_kernel
from mmdet_losses.ops._library import KernelOp

from _helpers import graph_node_names, kernel_node

pytest.importorskip('triton')
ROOT = Path(__file__).resolve().parents[1]
GPU_MODULES = sorted(m.name for m in pkgutil.iter_modules(gpu.__path__)
                     if not m.name.startswith('_'))
#: The operators with a Triton implementation: every loss operator and its backward.
GPU_OPERATORS = {
    'iou_loss': iou_kernels.iou_loss_op, 'iou_loss_backward': iou_kernels.iou_loss_backward_op,
    'iou_variant_loss': iou_kernels.iou_variant_loss_op,
    'iou_variant_loss_backward': iou_kernels.iou_variant_loss_backward_op,
    'regression_loss': regression_kernel.regression_loss_op,
    'regression_loss_backward': regression_kernel.regression_loss_backward_op,
    'sigmoid_focal_loss_index': focal_kernel.sigmoid_focal_loss_index_op,
    'sigmoid_focal_loss_index_backward': focal_kernel.sigmoid_focal_loss_index_backward_op,
}


@pytest.mark.parametrize('device,available,on_cpu,expected', [
    ('cuda', True, False, True), ('cuda', False, False, False), ('cpu', True, False, False),
    ('cpu', True, True, True), ('meta', True, True, False), ('cuda:1', True, False, True)])
def test_applies_by_device(monkeypatch, device, available, on_cpu, expected):
    monkeypatch.setattr(gpu, 'AVAILABLE', available)
    monkeypatch.setattr(gpu, 'TRITON_ON_CPU', on_cpu)
    assert gpu.applies(torch.device(device)) is expected


def test_without_triton_or_with_no_ext_no_gpu_kernel_runs():
    probe = ('import sys; from mmdet_losses.ops import gpu; '
             'print(gpu.AVAILABLE, gpu.TRITON_ON_CPU, gpu.status())')
    hidden = "import sys; sys.modules['triton'] = None; " + probe.replace('import sys; ', '')
    env = {**os.environ, 'MMDET_LOSSES_TRITON_CPU': '1'}
    runs = {'no triton': subprocess.run([sys.executable, '-c', hidden], env=env, cwd=ROOT,
                                        capture_output=True, text=True, timeout=120),
            'no ext': subprocess.run([sys.executable, '-c', probe], cwd=ROOT,
                                     env={**env, 'MMDET_LOSSES_NO_EXT': '1'},
                                     capture_output=True, text=True, timeout=120)}
    for run in runs.values():
        assert run.returncode == 0, run.stderr
    assert runs['no triton'].stdout.startswith('False False no Triton')
    assert runs['no ext'].stdout.strip() == 'False False disabled'


def test_status_names_the_state():
    assert gpu.status().startswith('ready, no CUDA device (Triton 3.')
    from mmdet_losses.catalogue import format_info
    assert 'GPU kernels (Triton' in format_info()


@pytest.mark.parametrize('name', sorted(GPU_OPERATORS))
def test_every_loss_operator_has_a_cuda_kernel(name):
    assert isinstance(GPU_OPERATORS[name], KernelOp)
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f'mmdet_losses::{name}', 'CUDA')
    assert GPU_OPERATORS[name]._impls['cuda'] is not None


def test_gpu_modules_exist():
    assert {'iou', 'focal', 'regression'} <= set(GPU_MODULES)


# Compiles every kernel of every GPU module for an H100/H200 (sm_90), in a process without
# TRITON_INTERPRET: the interpreter accepts code that the compiler refuses.
COMPILE_PROBE = r'''
import importlib, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
count = 0
for name in sys.argv[1:]:
    module = importlib.import_module(f'mmdet_losses.ops.gpu.{name}')
    for fn, signature, constexprs in module.compile_specs():
        compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                                  target=GPUTarget('cuda', 90, 32))
        assert compiled.asm['cubin'], (name, fn)
        count += 1
    print(name, 'compiled', count)
'''


#: Modules of @triton.jit helpers only, compiled inside the kernels that call them.
HELPER_MODULES = {'dual', 'elementwise'}


@pytest.mark.parametrize('module', GPU_MODULES)
def test_every_triton_kernel_compiles_for_sm90(module):
    if not hasattr(importlib.import_module(f'mmdet_losses.ops.gpu.{module}'), 'compile_specs'):
        assert module in HELPER_MODULES
        return
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    # Triton's cache is keyed by the kernel's source, signature, target and Triton's version:
    # what it holds compiled before, unchanged; it saves a minute of compiling per run.
    cache = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache'))
    env.setdefault('TRITON_CACHE_DIR', str(cache / 'mmdet_losses' / 'triton-sm90'))
    result = subprocess.run([sys.executable, '-c', COMPILE_PROBE, module], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert int(result.stdout.split()[-1]) > 0


# ------------------------------------------------------------ the eager shortcut of KernelOp
def test_eager_call_takes_the_kernel_and_its_own_autograd_node():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    args = (iou_kernels.FUSED_MODES['diou'], 1e-7, 0.0, False)
    eager = iou_kernels.iou_loss_op(pred, target, *args)
    dispatched = iou_kernels.iou_loss_op.op(pred, target, *args)
    assert graph_node_names(eager) == {kernel_node('iou_loss'), 'AccumulateGrad'}
    assert 'GeneratedBackwardFor_mmdet_losses_iou_loss_defaultBackward' in graph_node_names(
        dispatched)
    torch.testing.assert_close(eager, dispatched, rtol=0, atol=0)
    (g_eager,) = torch.autograd.grad(eager.sum(), pred)
    (g_dispatched,) = torch.autograd.grad(dispatched.sum(), pred)
    torch.testing.assert_close(g_eager, g_dispatched, rtol=0, atol=0)
    # a second derivative through either is the plain path's
    (g,) = torch.autograd.grad(iou_kernels.iou_loss_op(pred, target, *args).sum(), pred,
                               create_graph=True)
    assert g.requires_grad
    torch.testing.assert_close(g.detach(), g_eager)


def test_meta_and_fake_tensors_go_through_the_operator():
    from torch._subclasses.fake_tensor import FakeTensorMode
    args = (iou_kernels.FUSED_MODES['giou'], 1e-7, 0.0, False)
    boxes = torch.empty(7, 4, device='meta')
    assert iou_kernels.iou_loss_op(boxes, boxes, *args).shape == (7,)
    with FakeTensorMode():
        fake = torch.empty(5, 4)
        assert iou_kernels.iou_loss_op(fake, fake, *args).shape == (5,)


def test_mixed_devices_go_through_the_operator(monkeypatch):
    seen = []
    kernel = KernelOp(op=lambda *a: seen.append('op') or 'op', cpu=lambda *a: 'cpu', gpu=None)
    assert kernel(torch.zeros(2), torch.zeros(2)) == 'cpu'
    assert kernel(torch.zeros(2), torch.zeros(2, device='meta')) == 'op'
    assert kernel(torch.zeros(2, device='meta')) == 'op'
    assert seen == ['op', 'op']


# --------------------------------------- end to end: the losses through the Triton kernels
END_TO_END = r'''
import torch, mmdet_losses
from mmdet_losses.ops import gpu, iou_kernels
assert gpu.TRITON_ON_CPU
torch.manual_seed(0)
centre, size = torch.rand(40, 2) * 50, torch.rand(40, 2) * 20 + 1
pred = torch.cat((centre - size, centre + size), 1).double().requires_grad_()
target = pred.detach() + torch.randn(40, 4, dtype=torch.float64)
logits = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
labels = torch.randint(0, 6, (30,))
cases = [(mmdet_losses.CIoULoss(), pred, target), (mmdet_losses.SIoULoss(), pred, target),
         (mmdet_losses.SmoothL1Loss(beta=0.5), pred, target),
         (mmdet_losses.FocalLoss(), logits, labels)]
for module, x, y in cases:
    with_triton = module(x, y)
    (grad,) = torch.autograd.grad(with_triton, x)
    # the reference: the plain path, which torch.func transforms take
    plain, plain_grad = torch.func.grad_and_value(lambda p: module(p, y))(x.detach())[::-1]
    assert torch.allclose(with_triton, plain, rtol=1e-9, atol=1e-12), type(module).__name__
    assert torch.allclose(grad, plain_grad, rtol=1e-9, atol=1e-12), type(module).__name__
    print(type(module).__name__, float(with_triton))
import sys  # the Triton modules are imported by their first call
print(sorted(m for m in sys.modules if m.startswith('mmdet_losses.ops.gpu.')))
'''


def test_losses_run_end_to_end_through_the_triton_kernels():
    env = {**os.environ, 'TRITON_INTERPRET': '1', 'MMDET_LOSSES_TRITON_CPU': '1'}
    result = subprocess.run([sys.executable, '-c', END_TO_END], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert all(f"'mmdet_losses.ops.gpu.{m}'" in lines[-1] for m in ('focal', 'iou', 'regression'))
