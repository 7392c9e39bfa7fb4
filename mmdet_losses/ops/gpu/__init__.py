"""The GPU kernels: Triton kernels registered as the CUDA implementations of the same
PyTorch operators as the CPU kernels (:mod:`mmdet_losses.ops._library`), so ``torch.compile``,
meta tensors and autograd behave the same on every device.

Triton ships with the CUDA builds of PyTorch: nothing is compiled at install time, a kernel is
compiled on its first call. Where Triton is not importable, or ``MMDET_LOSSES_NO_EXT=1``, no
GPU kernel runs and CUDA tensors take the pure-PyTorch paths (the same maths).

Testing without a GPU: with ``TRITON_INTERPRET=1`` Triton's interpreter runs the kernels on CPU
tensors (the modules here are called directly on CPU tensors by the tests). With also
``MMDET_LOSSES_TRITON_CPU=1`` the operators' CPU implementations are the Triton kernels
instead of the C++ ones, so every loss runs through them end to end on a machine without a
GPU (slowly: a test set-up, not a way to train).
"""
import importlib
import importlib.util
import os
from typing import Callable

__all__ = ['AVAILABLE', 'TRITON_ON_CPU', 'applies', 'kernel_runs_on', 'lazy_kernel']

_DISABLED = os.environ.get('MMDET_LOSSES_NO_EXT') == '1'
#: Whether the Triton kernels can run: Triton is importable and the kernels are not disabled.
AVAILABLE = not _DISABLED and importlib.util.find_spec('triton') is not None
#: The test set-up above: Triton's interpreter runs the kernels in place of the C++ ones.
TRITON_ON_CPU = (AVAILABLE and os.environ.get('TRITON_INTERPRET') == '1'
                 and os.environ.get('MMDET_LOSSES_TRITON_CPU') == '1')


def applies(device) -> bool:
    """Whether a tensor on ``device`` is computed by the Triton kernels: a CUDA device with
    Triton available, or the CPU in the interpreter test set-up."""
    return (device.type == 'cuda' and AVAILABLE) or (device.type == 'cpu' and TRITON_ON_CPU)


def kernel_runs_on(device, cpu_kernel_built: bool) -> bool:
    """Whether a fused kernel computes tensors on ``device``: on the CPU the C++ kernel, where
    it is built (``cpu_kernel_built``; its operator's CPU implementation, which the Triton
    kernel replaces in the interpreter test set-up); elsewhere the Triton kernels
    (:func:`applies`)."""
    return cpu_kernel_built if device.type == 'cpu' else applies(device)


def lazy_kernel(module: str, name: str) -> Callable:
    """``mmdet_losses.ops.gpu.<module>.<name>``, imported on its first call (Triton is imported
    only when a GPU kernel runs, never when the package is)."""
    def kernel(*args):
        return getattr(importlib.import_module(f'{__name__}.{module}'), name)(*args)
    kernel.__name__ = kernel.__qualname__ = f'{module}_{name}'
    return kernel


def status() -> str:
    """The GPU kernels' state, for ``python -m mmdet_losses info``: 'disabled'
    (``MMDET_LOSSES_NO_EXT=1``), 'no Triton', 'ready, no CUDA device' or 'active on <device>'
    (each with Triton's version)."""
    if _DISABLED:
        return 'disabled'
    if not AVAILABLE:
        return 'no Triton (CUDA tensors take the pure-PyTorch paths)'
    import torch
    from importlib import metadata
    version = f'Triton {metadata.version("triton")}'
    if not torch.cuda.is_available():
        return f'ready, no CUDA device ({version})'
    return f'active on {torch.cuda.get_device_name()} ({version})'
