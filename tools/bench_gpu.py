"""The GPU check and benchmark of issue #15: ``bash tools/bench_gpu.sh`` runs it on one GPU.

1. Checks (``--skip-checks`` to leave out): every fused loss on the device against the plain
   PyTorch path of this package (values and gradients in float32, float16 and bfloat16 inputs,
   NaN in -> NaN out), and whether the fused operator really ran (an op trace).
2. Timings of forward + backward and peak memory (``torch.cuda.max_memory_allocated`` above
   the inputs), side by side in one process:

   * ``FocalLoss`` at 240k anchors x 80 classes against mmcv 2.1.0's CUDA
     ``sigmoid_focal_loss`` (its two CUDA launchers compiled alone from mmcv's source
     distribution, ``$MMCV_SDIST``, default ``tools/bench_cases/mmcv-2.1.0.tar.gz``; skipped
     with a message without nvcc or the file) and mmdet's ``py_sigmoid_focal_loss`` formula;
   * IoU, GIoU, DIoU and CIoU at 1M box pairs against mmdet 3.3's formulas
     (``mmdet/models/losses/iou_loss.py``, ``bbox_overlaps``), plain PyTorch, written below;
   * L1, MSE, Smooth L1 and Balanced L1 at 1M x 4 against the plain formulas (as mmdet's);
   * and ``torch.compile`` of this package's plain path for each.

   Each row: milliseconds per forward + backward (median), peak MiB, and the ratio of the
   reference's time and memory to ours (> 1: ours is faster / smaller).

mmdet and mmcv are not needed (their formulas are written here, mmcv's kernel is compiled from
its source). ``--device cpu --dry-run`` runs every step at tiny sizes on the CPU (no mmcv
build; ``torch.compile`` with the eager backend), so that a test keeps this script working
without a GPU. The table is printed and, when ``--out`` or ``$OUT`` is set, written there
(``bench_gpu.txt`` and ``bench_gpu.json``). The exit status is 1 when a check failed.
"""
import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import traceback

import torch
import torch.nn.functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
DEFAULT_SDIST = os.path.join(HERE, 'bench_cases', 'mmcv-2.1.0.tar.gz')
#: The mmcv sources the sigmoid focal loss launchers need, inside the sdist.
MMCV_FILES = ('mmcv/ops/csrc/pytorch/cuda/focal_loss_cuda.cu',
              'mmcv/ops/csrc/common/cuda/sigmoid_focal_loss_cuda_kernel.cuh',
              'mmcv/ops/csrc/common/cuda/softmax_focal_loss_cuda_kernel.cuh',
              'mmcv/ops/csrc/common/cuda/common_cuda_helper.hpp')

#: A replacement of mmcv's pytorch_cuda_helper.hpp (which includes headers that newer torch
#: no longer ships, and ATen's CUDA context, which needs the cuBLAS/cuSPARSE headers): only
#: what the focal launchers use.
_HELPER_HEADER = '''#pragma once
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include "common_cuda_helper.hpp"
namespace at {
namespace cuda {
using c10::cuda::CUDAGuard;
using c10::cuda::getCurrentCUDAStream;
}  // namespace cuda
}  // namespace at
#ifndef AT_CUDA_CHECK
#define AT_CUDA_CHECK C10_CUDA_CHECK
#endif
using at::Half;
using at::Tensor;
'''
#: The bindings of the two launchers (declared as focal_loss_cuda.cu defines them).
_BINDING = '''#include <torch/extension.h>
using at::Tensor;
void SigmoidFocalLossForwardCUDAKernelLauncher(Tensor input, Tensor target, Tensor weight,
                                               Tensor output, const float gamma,
                                               const float alpha);
void SigmoidFocalLossBackwardCUDAKernelLauncher(Tensor input, Tensor target, Tensor weight,
                                                Tensor grad_input, const float gamma,
                                                const float alpha);
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &SigmoidFocalLossForwardCUDAKernelLauncher);
  m.def("backward", &SigmoidFocalLossBackwardCUDAKernelLauncher);
}
'''


# --------------------------------------------------------------------------- mmcv, built
def _write_if_changed(path: str, data: bytes) -> None:
    """Unchanged files keep their time stamps: a second process reuses the first's build."""
    if os.path.isfile(path):
        with open(path, 'rb') as f:
            if f.read() == data:
                return
    with open(path, 'wb') as f:
        f.write(data)


def build_mmcv_focal(sdist: str, build_dir: str, verbose: bool = False):
    """mmcv 2.1.0's CUDA sigmoid focal loss launchers, compiled from its source distribution
    with ``torch.utils.cpp_extension.load``; (None, why) where that cannot be done."""
    if not torch.cuda.is_available():
        return None, 'no CUDA device'
    if shutil.which('nvcc') is None and not os.environ.get('CUDA_HOME'):
        return None, 'nvcc not found (CUDA_HOME unset)'
    if not os.path.isfile(sdist):
        return None, f'mmcv source distribution not found at {sdist} (set MMCV_SDIST)'
    src = os.path.join(build_dir, 'src')
    os.makedirs(src, exist_ok=True)
    with tarfile.open(sdist) as archive:
        members = {m.name.split('/', 1)[-1]: m for m in archive.getmembers()}
        for name in MMCV_FILES:
            if name not in members:
                return None, f'{name} is not in {sdist}'
            _write_if_changed(os.path.join(src, os.path.basename(name)),
                              archive.extractfile(members[name]).read())
    _write_if_changed(os.path.join(src, 'pytorch_cuda_helper.hpp'), _HELPER_HEADER.encode())
    _write_if_changed(os.path.join(src, 'binding.cpp'), _BINDING.encode())
    major, minor = torch.cuda.get_device_capability()
    os.environ.setdefault('TORCH_CUDA_ARCH_LIST', f'{major}.{minor}')
    from torch.utils.cpp_extension import load
    try:
        module = load(name='mmcv_sigmoid_focal_ref', build_directory=build_dir,
                      sources=[os.path.join(src, 'focal_loss_cuda.cu'),
                               os.path.join(src, 'binding.cpp')],
                      extra_include_paths=[src], extra_cuda_cflags=['-O3'],
                      extra_cflags=['-O3'], verbose=verbose)
    except Exception as error:  # noqa: BLE001 - report and go on without the reference
        return None, f'build failed: {str(error).strip().splitlines()[-1][:300]}'
    return module, 'built'


class MmcvSigmoidFocal(torch.autograd.Function):
    """mmcv's ``SigmoidFocalLossFunction`` with reduction 'none' and no class weight, as mmdet
    calls it (mmdet then reduces with weight_reduce_loss)."""

    @staticmethod
    def forward(ctx, pred, target, gamma, alpha, ext):
        output = pred.new_zeros(pred.size())
        ext.forward(pred, target, pred.new_empty(0), output, gamma, alpha)
        ctx.save_for_backward(pred, target)
        ctx.params = (gamma, alpha, ext)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        pred, target = ctx.saved_tensors
        gamma, alpha, ext = ctx.params
        grad = pred.new_zeros(pred.size())
        ext.backward(pred, target, pred.new_empty(0), grad, gamma, alpha)
        grad *= grad_output
        return grad, None, None, None, None


# --------------------------------------------------------- the references, as mmdet writes
def mmdet_py_sigmoid_focal(pred, labels, gamma=2.0, alpha=0.25):
    """mmdet's FocalLoss without mmcv: labels to one-hot, then ``py_sigmoid_focal_loss``."""
    num_classes = pred.size(1)
    target = TF.one_hot(labels, num_classes=num_classes + 1)[:, :num_classes].type_as(pred)
    pred_sigmoid = pred.sigmoid()
    pt = (1 - pred_sigmoid) * target + pred_sigmoid * (1 - target)
    focal_weight = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
    loss = TF.binary_cross_entropy_with_logits(pred, target, reduction='none') * focal_weight
    return loss.mean()


def mmdet_focal_mmcv(pred, labels, ext, gamma=2.0, alpha=0.25):
    # mmcv's forward reads labels.max() on the host, as mmcv does (part of its cost)
    return MmcvSigmoidFocal.apply(pred.contiguous(), labels.contiguous(), gamma, alpha,
                                  ext).mean()


def _aligned_overlaps(b1, b2, mode, eps):
    """mmdet's ``bbox_overlaps(..., is_aligned=True)`` for 'iou' and 'giou'."""
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    lt = torch.max(b1[..., :2], b2[..., :2])
    rb = torch.min(b1[..., 2:], b2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - overlap
    eps_t = union.new_tensor([eps])
    union = torch.max(union, eps_t)
    ious = overlap / union
    if mode == 'iou':
        return ious
    enclosed_wh = (torch.max(b1[..., 2:], b2[..., 2:])
                   - torch.min(b1[..., :2], b2[..., :2])).clamp(min=0)
    enclose_area = torch.max(enclosed_wh[..., 0] * enclosed_wh[..., 1], eps_t)
    return ious - (enclose_area - union) / enclose_area


def mmdet_iou(pred, target, eps=1e-6):  # IoULoss(mode='log')
    return (-_aligned_overlaps(pred, target, 'iou', eps).clamp(min=eps).log()).mean()


def mmdet_giou(pred, target, eps=1e-7):
    return (1 - _aligned_overlaps(pred, target, 'giou', eps)).mean()


def _mmdet_diou_terms(pred, target, eps):
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[:, 0] * wh[:, 1]
    ap = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    ag = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    ious = overlap / (ap + ag - overlap + eps)
    enclose_wh = (torch.max(pred[:, 2:], target[:, 2:])
                  - torch.min(pred[:, :2], target[:, :2])).clamp(min=0)
    c2 = enclose_wh[:, 0] ** 2 + enclose_wh[:, 1] ** 2 + eps
    dx = (target[:, 0] + target[:, 2]) - (pred[:, 0] + pred[:, 2])
    dy = (target[:, 1] + target[:, 3]) - (pred[:, 1] + pred[:, 3])
    rho2 = dx ** 2 / 4 + dy ** 2 / 4
    return ious, rho2, c2


def mmdet_diou(pred, target, eps=1e-7):
    ious, rho2, c2 = _mmdet_diou_terms(pred, target, eps)
    return (1 - (ious - rho2 / c2)).mean()


def mmdet_ciou(pred, target, eps=1e-7):
    ious, rho2, c2 = _mmdet_diou_terms(pred, target, eps)
    w1, h1 = pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1] + eps
    w2, h2 = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1] + eps
    v = (4 / math.pi ** 2) * torch.pow(torch.atan(w2 / h2) - torch.atan(w1 / h1), 2)
    with torch.no_grad():
        alpha = (ious > 0.5).float() * v / (1 - ious + v)
    cious = ious - (rho2 / c2 + alpha * v)
    return (1 - cious.clamp(min=-1.0, max=1.0)).mean()


def plain_l1(pred, target):
    return (pred - target).abs().mean()


def plain_mse(pred, target):
    return TF.mse_loss(pred, target, reduction='none').mean()


def plain_smooth_l1(pred, target, beta=1.0):
    diff = (pred - target).abs()
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta).mean()


def plain_balanced_l1(pred, target, beta=1.0, alpha=0.5, gamma=1.5):
    diff = (pred - target).abs()
    b = math.e ** (gamma / alpha) - 1
    loss = torch.where(diff < beta,
                       alpha / b * (b * diff + 1) * torch.log(b * diff / beta + 1) - alpha * diff,
                       gamma * diff + gamma / b - alpha * beta)
    return loss.mean()


# ------------------------------------------------------------------------- our two paths
def _no_kernel() -> bool:
    """One function object for every patch (torch.compile guards on it: no recompilation)."""
    return False


@contextlib.contextmanager
def plain_path():
    """This package's plain PyTorch path: every kernel module told that no kernel may run
    (its ``kernel_allowed``, the switch the losses consult, as under a torch.func transform)."""
    from mmdet_losses.ops import focal_kernel, iou_kernels, regression_kernel
    modules = (focal_kernel, iou_kernels, regression_kernel)
    saved = [module.kernel_allowed for module in modules]
    for module in modules:
        module.kernel_allowed = _no_kernel
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            module.kernel_allowed = original


@contextlib.contextmanager
def trace_ops():
    """Records (into the yielded set) which mmdet_losses operators the losses call: every
    operator object of the kernel modules wrapped for the duration."""
    from torch._library.custom_ops import CustomOpDef

    from mmdet_losses.ops import focal_kernel, iou_kernels, regression_kernel
    ran, saved = set(), []

    def counting(name, op):
        def call(*args, **kwargs):
            ran.add(name)
            return op(*args, **kwargs)
        return call

    for module in (focal_kernel, iou_kernels, regression_kernel):
        for name, value in list(vars(module).items()):
            op = value if isinstance(value, CustomOpDef) else getattr(value, 'op', None)
            if isinstance(op, CustomOpDef):  # the operator, or the shortcut that wraps it
                saved.append((module, name, value))
                setattr(module, name, counting(op._name.split('::')[-1], value))
    try:
        yield ran
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


# --------------------------------------------------------------------------------- inputs
def make_boxes(n, device, dtype=torch.float32, seed=0):
    gen = torch.Generator(device='cpu').manual_seed(seed)
    centre = torch.rand(n, 2, generator=gen) * 800
    size = torch.rand(n, 2, generator=gen) * 200 + 4
    pred = torch.cat([centre - size / 2, centre + size / 2], 1)
    jitter = torch.randn(n, 4, generator=gen) * size.repeat(1, 2) * 0.15
    target = pred + jitter
    target = torch.cat([torch.min(target[:, :2], target[:, 2:] - 1), target[:, 2:]], 1)
    return pred.to(device, dtype), target.to(device, dtype)


def make_logits(n, c, device, seed=0):
    gen = torch.Generator(device='cpu').manual_seed(seed)
    pred = torch.randn(n, c, generator=gen) * 3
    labels = torch.randint(0, c + 1, (n,), generator=gen)  # c: background
    soft = torch.rand(n, c, generator=gen) * (torch.rand(n, 1, generator=gen) < 0.3)
    return pred.to(device), labels.to(device), soft.to(device)


def make_residuals(n, device, seed=0):
    gen = torch.Generator(device='cpu').manual_seed(seed)
    return (torch.randn(n, 4, generator=gen) * 2).to(device), \
        (torch.randn(n, 4, generator=gen)).to(device)


def loss_cases(device, sizes):
    """(name, module, pred, target, op names expected to run) of every fused loss."""
    import mmdet_losses as M
    n_box, (n_anchor, n_class), n_reg = sizes
    boxes = make_boxes(n_box, device)
    logits, labels, soft = make_logits(n_anchor, n_class, device)
    reg = make_residuals(n_reg, device)
    iou_losses = [
        ('IoULoss(log)', M.IoULoss()), ('IoULoss(linear)', M.IoULoss(mode='linear')),
        ('GIoULoss', M.GIoULoss()), ('DIoULoss', M.DIoULoss()), ('CIoULoss', M.CIoULoss()),
        ('EIoULoss', M.EIoULoss()), ('SIoULoss', M.SIoULoss()), ('WIoULoss', M.WIoULoss()),
        ('AlphaIoULoss', M.AlphaIoULoss()), ('MPDIoULoss', M.MPDIoULoss(img_size=1333)),
        ('InnerIoULoss', M.InnerIoULoss()), ('FocalerIoULoss', M.FocalerIoULoss()),
        ('ShapeIoULoss', M.ShapeIoULoss()), ('NWDLoss', M.NWDLoss())]
    cases = [(name, loss, *boxes) for name, loss in iou_losses]
    cases += [('FocalLoss(index)', M.FocalLoss(), logits, labels),
              ('FocalLoss(soft)', M.FocalLoss(), logits, soft)]
    cases += [(name, loss, *reg) for name, loss in (
        ('L1Loss', M.L1Loss()), ('MSELoss', M.MSELoss()), ('SmoothL1Loss', M.SmoothL1Loss()),
        ('SmoothL1Loss(beta=0.3)', M.SmoothL1Loss(beta=0.3)),
        ('BalancedL1Loss', M.BalancedL1Loss()))]
    return cases


# --------------------------------------------------------------------------------- checks
def _value_and_grad(loss, pred, target, reduction):
    leaf = pred.detach().clone().requires_grad_(True)
    out = loss(leaf, target, reduction_override=reduction)
    grad_out = torch.linspace(0.5, 1.5, out.numel(), device=out.device,
                              dtype=out.dtype).reshape(out.shape)
    out.backward(grad_out)
    return out.detach().float(), leaf.grad.float()


def _state(loss):
    return {k: v.clone() for k, v in loss.state_dict().items()}


def check_case(name, loss, pred, target):
    """Kernel path against plain path: float32 values and gradients ('none' and 'mean'),
    float16/bfloat16 inputs, and NaN in -> NaN out. Returns (ok, message, ran)."""
    problems = []
    ran = set()
    state = _state(loss)
    variants = [('float32', pred, 'none', dict(rtol=1e-4, atol=1e-5)),
                ('float32', pred, 'mean', dict(rtol=1e-4, atol=1e-6))]
    if pred.is_floating_point():
        for half in (torch.float16, torch.bfloat16):
            variants.append((str(half).split('.')[-1], pred.to(half), 'mean',
                             dict(rtol=2e-2, atol=2e-3)))
    bad = pred.clone()
    bad[1, 0] = float('nan')
    bad[2, 1] = float('inf')
    variants.append(('nan', bad, 'none', dict(rtol=1e-4, atol=1e-5)))
    for label, x, reduction, tol in variants:
        loss.load_state_dict(state)
        with trace_ops() as ops:
            got = _value_and_grad(loss, x, target, reduction)
        ran |= ops
        loss.load_state_dict(state)
        with plain_path():
            want = _value_and_grad(loss, x, target, reduction)
        for what, a, b in zip(('value', 'grad'), got, want):
            if label == 'nan':
                if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
                    problems.append(f'{label}: {what} non-finite pattern differs')
                if torch.isfinite(a.reshape(a.shape[0], -1)[1:3]).all():
                    problems.append(f'{label}: {what} finite for NaN/inf input')
                mask = torch.isfinite(a) & torch.isfinite(b)
                a, b = a[mask], b[mask]
            try:
                torch.testing.assert_close(a, b, **tol)
            except AssertionError as error:
                lines = [ln for ln in str(error).splitlines() if 'Greatest' in ln]
                problems.append(f'{label}/{reduction}: {what}: ' + '; '.join(lines))
    loss.load_state_dict(state)
    return not problems, '; '.join(problems) or 'ok', ran


def run_checks(device, sizes):
    rows, failed = [], 0
    for name, loss, pred, target in loss_cases(device, sizes):
        loss = loss.to(device)
        try:
            ok, message, ran = check_case(name, loss, pred, target)
        except Exception as error:  # noqa: BLE001 - one broken loss must not hide the rest
            ok, message, ran = False, f'{type(error).__name__}: {error}', set()
            traceback.print_exc()
        failed += not ok
        rows.append((name, 'PASS' if ok else 'FAIL', ','.join(sorted(ran)) or 'plain',
                     message))
        print(f'  check {name:24s} {rows[-1][1]}  kernel: {rows[-1][2]}  {message[:200]}',
              flush=True)
    return rows, failed


# ------------------------------------------------------------------------------- timing
def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(fn, pred, target, device, repeats, warmup):
    """(median ms of forward + backward, peak MiB above the inputs)."""
    leaf = pred.detach().clone().requires_grad_(True)

    def step():
        leaf.grad = None
        fn(leaf, target).backward()

    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    peak = float('nan')
    if device.type == 'cuda':
        leaf.grad = None
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    return statistics.median(times), peak


def _ours(loss):
    return lambda pred, target: loss(pred, target)


def _compiled_plain(loss, backend):
    compiled = torch.compile(lambda pred, target: loss(pred, target), backend=backend)

    def run(pred, target):
        with plain_path():
            return compiled(pred, target)
    return run


def timing_groups(device, sizes, mmcv_ext, backend):
    """(group, inputs, [(implementation, fn)]) for every timed comparison."""
    import mmdet_losses as M
    n_box, (n_anchor, n_class), n_reg = sizes
    logits, labels, _ = make_logits(n_anchor, n_class, device)
    focal = M.FocalLoss()
    impls = [('mmdet_losses (fused)', _ours(focal))]
    if mmcv_ext is not None:
        impls.append(('mmcv 2.1.0 CUDA op', lambda p, t: mmdet_focal_mmcv(p, t, mmcv_ext)))
    impls += [('mmdet py_sigmoid_focal_loss', mmdet_py_sigmoid_focal),
              ('torch.compile(our plain)', _compiled_plain(focal, backend))]
    groups = [(f'FocalLoss {n_anchor}x{n_class}', (logits, labels), impls)]
    boxes = make_boxes(n_box, device)
    for name, ours, reference in (('IoULoss(log)', M.IoULoss(), mmdet_iou),
                                  ('GIoULoss', M.GIoULoss(eps=1e-7), mmdet_giou),
                                  ('DIoULoss', M.DIoULoss(eps=1e-7), mmdet_diou),
                                  ('CIoULoss', M.CIoULoss(eps=1e-7), mmdet_ciou)):
        groups.append((f'{name} {n_box} pairs', boxes,
                       [('mmdet_losses (fused)', _ours(ours)), ('mmdet formula', reference),
                        ('torch.compile(our plain)', _compiled_plain(ours, backend))]))
    reg = make_residuals(n_reg, device)
    for name, ours, reference in (('L1Loss', M.L1Loss(), plain_l1),
                                  ('MSELoss', M.MSELoss(), plain_mse),
                                  ('SmoothL1Loss', M.SmoothL1Loss(), plain_smooth_l1),
                                  ('BalancedL1Loss', M.BalancedL1Loss(), plain_balanced_l1)):
        groups.append((f'{name} {n_reg}x4', reg,
                       [('mmdet_losses (fused)', _ours(ours)), ('plain formula', reference),
                        ('torch.compile(our plain)', _compiled_plain(ours, backend))]))
    return groups


def run_timings(device, sizes, mmcv_ext, backend, repeats, warmup, budget_s, started):
    rows = []
    for group, (pred, target), impls in timing_groups(device, sizes, mmcv_ext, backend):
        ours = None
        torch._dynamo.reset()  # each group's compiled function compiles afresh
        for impl, fn in impls:
            if time.time() - started > budget_s and 'compile' in impl:
                rows.append((group, impl, float('nan'), float('nan'), '', '',
                             'skipped: time budget'))
                continue
            try:
                ms, mib = measure(fn, pred, target, device, repeats, warmup)
            except Exception as error:  # noqa: BLE001
                traceback.print_exc()
                rows.append((group, impl, float('nan'), float('nan'), '', '',
                             f'{type(error).__name__}: {str(error)[:120]}'))
                continue
            if ours is None:
                ours = (ms, mib)
            speed = ms / ours[0] if ours[0] > 0 else float('nan')
            memory = mib / ours[1] if ours[1] and ours[1] > 0 else float('nan')
            rows.append((group, impl, ms, mib, f'{speed:.2f}x', f'{memory:.2f}x', ''))
            print(f'  time {group:32s} {impl:30s} {ms:9.3f} ms {mib:9.1f} MiB  '
                  f'time {speed:.2f}x  mem {memory:.2f}x', flush=True)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return rows


# ---------------------------------------------------------------------------------- main
def format_report(header, checks, timings):
    lines = [header, '', '## Checks: fused kernel against the plain path', '',
             '| loss | result | fused operators that ran | detail |', '| --- | --- | --- | --- |']
    lines += [f'| {n} | {r} | {k} | {m} |' for n, r, k, m in checks]
    lines += ['', '## fwd+bwd time (median) and peak memory above the inputs; the ratios are '
              'the reference\'s over ours (>1: ours faster / smaller)', '',
              '| case | implementation | ms | peak MiB | time ratio | memory ratio | note |',
              '| --- | --- | ---: | ---: | ---: | ---: | --- |']
    lines += [f'| {g} | {i} | {ms:.3f} | {mib:.1f} | {s} | {m} | {note} |'
              for g, i, ms, mib, s, m, note in timings]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dry-run', action='store_true',
                        help='tiny sizes, few repeats, torch.compile with the eager backend')
    parser.add_argument('--skip-checks', action='store_true')
    parser.add_argument('--skip-timings', action='store_true')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--budget', type=float, default=390.0,
                        help='seconds from the start ($BENCH_GPU_STARTED, bench_gpu.sh\'s, '
                        'else this process\'s) after which the torch.compile rows are skipped')
    parser.add_argument('--out', default=os.environ.get('OUT'))
    parser.add_argument('--mmcv-sdist', default=os.environ.get('MMCV_SDIST', DEFAULT_SDIST))
    parser.add_argument('--build-mmcv-only', action='store_true',
                        help='build the mmcv reference (in the build cache) and exit')
    args = parser.parse_args(argv)
    started = float(os.environ.get('BENCH_GPU_STARTED', time.time()))
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('bench_gpu: no CUDA device; use --device cpu --dry-run for a dry run')
        return 2
    build_dir = os.path.join(os.environ.get('MMDET_LOSSES_BENCH_BUILD',
                                            os.path.join(tempfile.gettempdir(),
                                                         'mmdet_losses_bench_gpu')))
    os.makedirs(build_dir, exist_ok=True)
    mmcv_ext, mmcv_status = None, 'not built: dry run'
    if not args.dry_run:
        mmcv_ext, mmcv_status = build_mmcv_focal(args.mmcv_sdist, build_dir)
    print(f'bench_gpu: mmcv reference: {mmcv_status} ({time.time() - started:.0f} s)',
          flush=True)
    if args.build_mmcv_only:
        return 0
    import mmdet_losses  # noqa: F401  (after the build: the import needs the repo's modules)
    from mmdet_losses.ops import _ext, gpu
    # (box pairs, (anchors, classes), regression rows)
    if args.dry_run:
        sizes = check_sizes = (64, (48, 5), 200)
        repeats, warmup, backend = 2, 1, 'eager'
    else:
        sizes, check_sizes = (1_000_000, (240_000, 80), 1_000_000), (20_000, (4_000, 80), 20_000)
        repeats, warmup, backend = args.repeats, 3, 'inductor'
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    header = (f'# bench_gpu: {name}, torch {torch.__version__}, '
              f'triton {_version("triton")}, python {sys.version.split()[0]}\n\n'
              f'Triton kernels apply on {device}: {gpu.applies(device)}; compiled extensions: '
              f'{_ext.kernel_status()}; mmcv reference: {mmcv_status}')
    print(header, flush=True)
    checks, failed = ([], 0) if args.skip_checks else run_checks(device, check_sizes)
    timings = [] if args.skip_timings else run_timings(
        device, sizes, mmcv_ext, backend, repeats, warmup, args.budget, started)
    report = format_report(header, checks, timings)
    print(report)
    print(f'bench_gpu: {failed} check(s) failed; {time.time() - started:.0f} s', flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'bench_gpu.txt'), 'w') as f:
            f.write(report)
        with open(os.path.join(args.out, 'bench_gpu.json'), 'w') as f:
            json.dump({'header': header, 'checks': checks, 'timings': timings}, f, indent=1,
                      default=str)
    return 1 if failed else 0


def _version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return 'not installed'


if __name__ == '__main__':
    sys.exit(main())
