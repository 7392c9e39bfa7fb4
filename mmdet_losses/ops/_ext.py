"""Access to the optional compiled kernels (``mmdet_losses/ops/csrc/<name>/``), and their
status.

A kernel that is missing or cannot be loaded is never silent: without it the losses still
compute the same maths on their pure-PyTorch paths, but 15-30x slower on the CPU, so the first
failure warns once (:class:`KernelWarning`), naming the cause and how to rebuild.
``MMDET_LOSSES_NO_EXT=1`` is the explicit, silent opt-out. ``python -m mmdet_losses info``
prints :func:`kernel_status`.
"""
import glob
import importlib
import importlib.machinery
import os
import warnings
from types import ModuleType
from typing import Dict, Optional

__all__ = ['KernelWarning', 'load_extension', 'kernel_status', 'KERNEL_DTYPES']

#: What every compiled kernel computes in: float32 and float64 tensors on the CPU (half
#: precision is upcast to float32 before the kernel; other devices take the plain path).
KERNEL_DTYPES = ('float32', 'float64')
KERNEL_DEVICES = ('cpu',)
NO_EXT_VARIABLE = 'MMDET_LOSSES_NO_EXT'
REBUILD_HINT = ('Build them against the installed torch with `pip install --no-build-isolation '
                '--force-reinstall --no-deps .` in the source tree (or `bash tools/setup.sh` '
                f'in a clone); {NO_EXT_VARIABLE}=1 runs the pure-PyTorch paths without this '
                'warning')

_HERE = os.path.dirname(os.path.abspath(__file__))
#: name -> 'loaded', 'disabled', 'not built' or 'failed: <cause>'
_STATUS: Dict[str, str] = {}
_WARNED = False


class KernelWarning(RuntimeWarning):
    """A compiled kernel is missing or failed to load; the pure-PyTorch path runs instead."""


def _built_files(name: str):
    """The library files of extension ``name`` next to this module, whatever their suffix."""
    return [path for suffix in importlib.machinery.EXTENSION_SUFFIXES
            for path in glob.glob(os.path.join(_HERE, f'_{name}{suffix}'))]


def _warn(message: str) -> None:
    global _WARNED
    if not _WARNED:  # once per process: every kernel module loads at import
        _WARNED = True
        warnings.warn(message, KernelWarning, stacklevel=3)


def load_extension(name: str) -> Optional[ModuleType]:
    """The compiled module ``mmdet_losses.ops._<name>``, or None where it is disabled by
    ``MMDET_LOSSES_NO_EXT=1`` (silently), not built or not loadable (a :class:`KernelWarning`,
    once per process). The caller then takes its pure-PyTorch path, the same maths."""
    if os.environ.get(NO_EXT_VARIABLE) == '1':
        _STATUS[name] = 'disabled'
        return None
    try:
        module = importlib.import_module(f'mmdet_losses.ops._{name}')
    except (ImportError, OSError) as error:
        if _built_files(name):  # built, but corrupt or built against another torch
            _STATUS[name] = f'failed: {error}'
            _warn(f'mmdet_losses: the compiled kernel _{name} could not be loaded ({error}); '
                  f'the losses run their pure-PyTorch paths, 15-30x slower on the CPU. '
                  f'{REBUILD_HINT}.')
        else:
            _STATUS[name] = 'not built'
            _warn(f'mmdet_losses: the compiled kernels are not built (no _{name} library in '
                  f'{_HERE}), so the losses run their pure-PyTorch paths, 15-30x slower on '
                  f'the CPU. {REBUILD_HINT}.')
        return None
    _STATUS[name] = 'loaded'
    return module


def ext_ids(module: Optional[ModuleType], name: str, empty: Dict[str, dict]) -> Dict[str, dict]:
    """The id tables that extension ``name`` exports (``module.ids()``, defined once in its
    C++ source), or ``empty`` where it is not loaded. A library built before its ids table
    existed is stale: it counts as failed (a :class:`KernelWarning`) and gives ``empty``."""
    if module is None:
        return empty
    if not hasattr(module, 'ids'):
        _STATUS[name] = 'failed: stale build (no ids table)'
        _warn(f'mmdet_losses: the compiled kernel _{name} is older than its sources (it '
              f'exports no ids table); the losses run their pure-PyTorch paths, 15-30x slower '
              f'on the CPU. {REBUILD_HINT}.')
        return empty
    return module.ids()


def kernel_status() -> Dict[str, str]:
    """Each compiled kernel's state: 'loaded', 'disabled' (``MMDET_LOSSES_NO_EXT=1``),
    'not built' or 'failed: <cause>'.

    Example:
        >>> from mmdet_losses.ops._ext import kernel_status
        >>> sorted(kernel_status())
        ['focal', 'iou', 'regression']
    """
    import mmdet_losses.ops.focal_kernel  # noqa: F401  (each kernel module loads its library)
    import mmdet_losses.ops.iou_kernels  # noqa: F401
    import mmdet_losses.ops.regression_kernel  # noqa: F401
    return dict(sorted(_STATUS.items()))
