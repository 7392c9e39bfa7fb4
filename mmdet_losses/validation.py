"""Argument checks shared by every loss: each error names the argument, what was expected
and what came. None of them reads tensor values, so none forces a host synchronisation."""
from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')
HALF_DTYPES = (torch.float16, torch.bfloat16)


def check_tensor(name: str, value, *, floating: bool = False) -> Tensor:
    """Raise TypeError unless ``value`` is a Tensor (of a floating dtype if asked)."""
    if not isinstance(value, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(value).__name__}')
    if floating and not value.is_floating_point():
        raise TypeError(f'{name} must be a floating-point tensor, got dtype {value.dtype}')
    return value


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f'{name_b} must have the shape of {name_a} {tuple(a.shape)}, '
                         f'got {tuple(b.shape)}')


def check_choice(name: str, value, choices: Iterable) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def check_reduction(reduction: str, name: str = 'reduction') -> str:
    check_choice(name, reduction, REDUCTIONS)
    return reduction


def check_number(name: str, value, *, low: Optional[float] = None,
                 high: Optional[float] = None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """Raise TypeError for a non-number, ValueError outside [low, high] (open ends if asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'{name} must be a number, got {type(value).__name__}')
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = '(' if low_open else '['
        right = ')' if high_open else ']'
        lo = '-inf' if low is None else low
        hi = 'inf' if high is None else high
        raise ValueError(f'{name} must be in {left}{lo}, {hi}{right}, got {value}')
    return float(value)


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype losses compute in: float32 for half inputs, else the inputs' own dtype."""
    dtype = tensors[0].dtype
    return torch.float32 if dtype in HALF_DTYPES or not dtype.is_floating_point else dtype


def upcast(*tensors: Tensor) -> Sequence[Tensor]:
    """Return the tensors in :func:`compute_dtype` (half precision is computed in float32)."""
    dtype = compute_dtype(*tensors)
    return tuple(t.to(dtype) for t in tensors)


def check_labels(labels: Tensor, high: Optional[int], *, name: str = 'target',
                 ignore_index: Optional[int] = None) -> Tensor:
    """Raise unless ``labels`` is an integer tensor of class indices in ``[0, high]`` (or equal
    to ``ignore_index``; ``high=None``: any value).

    The value check runs on CPU tensors only: reading an accelerator tensor's values would force
    a host synchronisation."""
    check_tensor(name, labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f'{name} must be an integer tensor of class indices, got dtype '
                        f'{labels.dtype}')
    if high is not None and labels.device.type == 'cpu' and labels.numel() > 0:
        valid = (labels >= 0) & (labels <= high)
        if ignore_index is not None:
            valid |= labels == ignore_index
        if not bool(valid.all()):
            bad = labels[~valid][0]
            extra = '' if ignore_index is None else f' or ignore_index={ignore_index}'
            raise ValueError(f'{name} must hold class indices in [0, {high}]{extra}, '
                             f'got {int(bad)}')
    return labels
