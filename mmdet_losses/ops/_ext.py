"""Access to the optional compiled kernels (``mmdet_losses/ops/csrc/<name>/``)."""
import importlib
from types import ModuleType
from typing import Optional


def load_extension(name: str) -> Optional[ModuleType]:
    """The compiled module ``mmdet_losses.ops._<name>``, or None where it was not built (the
    caller then takes its pure-PyTorch path, which computes the same maths)."""
    try:
        return importlib.import_module(f'mmdet_losses.ops._{name}')
    except ImportError:
        return None
