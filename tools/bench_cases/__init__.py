"""Benchmark cases for tools/benchmark.py, one module per loss family.

Each module defines ``CASES``, a list of :class:`BenchCase`. A case builds our loss module,
optionally the reference it is compared with (mmdet's loss of the same name, or an mmcv op),
and inputs of a given size.
"""
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

#: make_inputs(size, device, dtype) -> (args, kwargs). Every floating tensor in ``args`` that
#: requires grad is a leaf whose gradient the benchmark computes.
InputMaker = Callable[[int, torch.device, torch.dtype], Tuple[list, dict]]


@dataclass
class BenchCase:
    name: str  # our class name, what --loss selects
    ours: Callable[[], torch.nn.Module]
    make_inputs: InputMaker
    sizes: Sequence[int]  # default sizes, in `unit`
    reference: Optional[Callable[[], torch.nn.Module]] = None
    reference_name: str = ''  # e.g. 'mmdet.SmoothL1Loss'
    unit: str = 'elements'
    # Arguments for the reference when they differ from ours (e.g. mmdet wants one-hot).
    make_reference_inputs: Optional[Callable[[list, dict], Tuple[list, dict]]] = None


def discover() -> Dict[str, BenchCase]:
    """Every case of every module in this package, by name."""
    cases: Dict[str, BenchCase] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f'{__name__}.{info.name}')
        for case in getattr(module, 'CASES', []):
            if case.name in cases:
                raise ValueError(f'benchmark case {case.name!r} is defined twice')
            cases[case.name] = case
    return cases


def ours(name: str, **kwargs) -> Callable[[], torch.nn.Module]:
    """A builder of our loss class ``name`` with ``kwargs``."""
    def build():
        import mmdet_losses
        return getattr(mmdet_losses, name)(**kwargs)
    return build


def mmdet(name: str, **kwargs) -> Callable[[], torch.nn.Module]:
    """A builder of mmdet's loss class ``name`` with ``kwargs``: the reference."""
    def build():
        from mmdet.models import losses
        return getattr(losses, name)(**kwargs)
    return build


def leaf(x: torch.Tensor) -> torch.Tensor:
    """A leaf tensor that requires grad, for the prediction argument."""
    return x.detach().requires_grad_(True)


def names(cases: Dict[str, BenchCase]) -> List[str]:
    return sorted(cases)
