"""Argument checks shared by every loss: each error names the argument, what was expected
and what came. The checks that read tensor values (labels, target domains) run only on CPU
tensors and not while compiling (:func:`reads_values`), so none forces a host synchronisation:
on an accelerator those values are not checked."""
import math
import numbers
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
                 high_open: bool = False, allow_inf: bool = False) -> float:
    """``value`` as a float: a real number (int, float, numpy scalar) that is finite (or +-inf
    with ``allow_inf``) and in [low, high] (open ends if asked).

    A bool, a complex number or a non-number is a TypeError; NaN, +-inf and a value out of
    range are a ValueError; each names the argument and the value.

    Example:
        >>> check_number('gamma', 2, low=0.0)
        2.0
        >>> check_number('gamma', float('nan'))
        Traceback (most recent call last):
        ...
        ValueError: gamma must be a finite number, got nan
        >>> check_number('gamma', 1j)
        Traceback (most recent call last):
        ...
        TypeError: gamma must be a real number, got complex 1j
    """
    if _is_bool(value) or not isinstance(value, numbers.Real):
        if isinstance(value, numbers.Complex) and not _is_bool(value):
            raise TypeError(f'{name} must be a real number, got complex {value!r}')
        raise TypeError(f'{name} must be a number, got {_describe(value)}')
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValueError(f'{name} must be a finite number, got {number}')
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        left = '(' if low_open else '['
        right = ')' if high_open else ']'
        lo = '-inf' if low is None else low
        hi = 'inf' if high is None else high
        raise ValueError(f'{name} must be in {left}{lo}, {hi}{right}, got {value}')
    return number


def check_int(name: str, value) -> int:
    """``value`` as an int: an integer (or an integral float such as 255.0); a bool or a
    non-number is a TypeError, a fractional or non-finite number a ValueError.

    Example:
        >>> check_int('ignore_index', 255)
        255
        >>> check_int('ignore_index', 'x')
        Traceback (most recent call last):
        ...
        TypeError: ignore_index must be an integer, got str 'x'
    """
    if isinstance(value, numbers.Integral) and not _is_bool(value):
        return int(value)
    if isinstance(value, numbers.Real) and not _is_bool(value):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return int(number)
        raise ValueError(f'{name} must be an integer, got {value!r}')
    raise TypeError(f'{name} must be an integer, got {_describe(value)}')


def _is_bool(value) -> bool:
    """True for Python's and numpy's booleans (numpy's ``bool_`` is not an int subclass)."""
    return isinstance(value, bool) or type(value).__name__ == 'bool_'


def _describe(value) -> str:
    """The type of ``value``, with its repr when that is short (``str 'x'``, ``bool True``)."""
    text = repr(value)
    kind = type(value).__name__
    return f'{kind} {text}' if len(text) <= 40 and not isinstance(value, Tensor) else kind


def check_numbers(name: str, values) -> None:
    """Check every value of a sequence (list, tuple), tensor of numbers or single number
    (``class_weight``, ``pos_weight``, ``class_counts``...): each a real finite number. A
    complex tensor is a TypeError; a tensor's values are read only on the CPU
    (:func:`reads_values`)."""
    if values is None:
        return
    if isinstance(values, numbers.Number) or _is_bool(values):
        check_number(name, values)
        return
    if isinstance(values, Tensor):
        if values.is_complex() or values.dtype == torch.bool:
            raise TypeError(f'{name} must hold real numbers, got dtype {values.dtype}')
        if values.is_floating_point() and reads_values(values) and values.numel() > 0:
            finite = torch.isfinite(values)
            if not bool(finite.all()):
                raise ValueError(f'{name} must hold finite numbers, got '
                                 f'{values.detach()[~finite].flatten()[0].item()}')
        return
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f'{name} must be a sequence or a tensor of numbers, got '
                        f'{type(values).__name__}')
    for i, value in enumerate(values):
        check_number(f'{name}[{i}]', value)


def reads_values(tensor: Tensor) -> bool:
    """Whether a check may read ``tensor``'s values: on the CPU (no host synchronisation),
    not while ``torch.compile`` traces and not inside a ``torch.func`` transform (``vmap``,
    ``grad``) of that tensor (the values are not known there)."""
    return (tensor.device.type == 'cpu' and not torch.compiler.is_compiling()
            and not _functorch_wrapped(tensor))


def _functorch_wrapped(tensor: Tensor) -> bool:
    is_wrapped = getattr(torch._C._functorch, 'is_functorch_wrapped_tensor', None)
    return bool(is_wrapped is not None and is_wrapped(tensor))


def check_loss_tensors(**named) -> None:
    """Check the tensors of one loss call (``pred=..., target=..., weight=...``; None is
    skipped): each a Tensor (TypeError naming it), none complex (TypeError), all on one
    device (ValueError naming both devices), before any kernel reads their memory.

    Example:
        >>> check_loss_tensors(pred=torch.zeros(2), weight=[1.0, 1.0])
        Traceback (most recent call last):
        ...
        TypeError: weight must be a torch.Tensor, got list
        >>> check_loss_tensors(pred=torch.zeros(2), target=torch.zeros(2, device='meta'))
        Traceback (most recent call last):
        ...
        ValueError: target must be on the device of pred (cpu), got meta
    """
    first = None
    for name, value in named.items():
        if value is None:
            continue
        check_tensor(name, value)
        if value.is_complex():
            raise TypeError(f'{name} must be a real tensor, got dtype {value.dtype}')
        if first is None:
            first = (name, value.device)
        elif value.device != first[1]:
            raise ValueError(f'{name} must be on the device of {first[0]} ({first[1]}), '
                             f'got {value.device}')


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
    if high is not None and reads_values(labels) and labels.numel() > 0:
        valid = (labels >= 0) & (labels <= high)
        if ignore_index is not None:
            valid |= labels == ignore_index
        if not bool(valid.all()):
            bad = labels[~valid][0]
            extra = '' if ignore_index is None else f' or ignore_index={ignore_index}'
            raise ValueError(f'{name} must hold class indices in [0, {high}]{extra}, '
                             f'got {int(bad)}')
    return labels
