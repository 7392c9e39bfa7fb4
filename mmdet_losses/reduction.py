"""The one place where element-wise losses are weighted and reduced.

The semantics are mmdet's (``mmdet.models.losses.utils.weight_reduce_loss``), so a config that
swaps mmdet's loss for ours logs the same numbers, with three differences that only show at
the edges: an empty loss reduces to a zero that stays in the autograd graph (mmdet's 'mean'
gives NaN), bad arguments raise a ``ValueError`` naming them, and a weight that does not
broadcast to the loss is refused instead of silently broadcasting the loss up.
"""
import math
import numbers
from numbers import Number
from typing import Optional, Union

import torch
from torch import Tensor

from .validation import (_is_bool, check_loss_tensors, check_number, check_reduction,
                         reads_values)

#: Added to avg_factor before dividing, as mmdet does, so avg_factor=0 gives 0 rather than NaN.
AVG_FACTOR_EPS = torch.finfo(torch.float32).eps


def reduce_loss(loss: Tensor, reduction: str = 'mean') -> Tensor:
    """Reduce an element-wise loss.

    Args:
        loss: element-wise loss of any shape.
        reduction: 'none' returns ``loss``; 'sum' its sum; 'mean' its mean, where the mean of
            an empty loss is a zero connected to the graph (not NaN).

    Example:
        >>> reduce_loss(torch.tensor([1.0, 2.0, 6.0]), 'mean')
        tensor(3.)
    """
    check_reduction(reduction)
    if reduction == 'none':
        return loss
    return reduce_weighted_sum(loss.sum(), loss.numel(), reduction)


def reduce_weighted_sum(total: Tensor, numel: int, reduction: str = 'mean',
                        avg_factor: Optional[Union[Number, Tensor]] = None) -> Tensor:
    """Finish a 'mean' or 'sum' reduction from the weighted sum ``total`` of ``numel``
    element-wise losses: what :func:`weight_reduce_loss` does after summing, and what the fused
    kernels, which produce the sum without the element-wise loss, call directly.

    'sum' is ``total`` (refused with ``avg_factor``); 'mean' is ``total / (avg_factor + eps)``
    or, without ``avg_factor``, ``total / numel`` (0 for ``numel = 0``, not 0/0).

    Example:
        >>> reduce_weighted_sum(torch.tensor(6.0), 3)
        tensor(2.)
    """
    check_reduction(reduction)
    if reduction == 'none':
        raise ValueError("reduction must be 'mean' or 'sum' to reduce a summed loss, "
                         "got 'none'")
    if avg_factor is not None:
        check_avg_factor(avg_factor, total.device)
        if reduction == 'sum':
            raise ValueError("reduction must be 'mean' or 'none' when avg_factor is given, "
                             "got 'sum'")
        if isinstance(avg_factor, Tensor):  # straight to the loss's (compute) dtype
            avg_factor = avg_factor.to(device=total.device, dtype=total.dtype)
        return total / (avg_factor + AVG_FACTOR_EPS)
    if reduction == 'sum':
        return total
    # numel is known on the host: no synchronisation.
    return total / max(numel, 1)


def weight_reduce_loss(loss: Tensor,
                       weight: Optional[Tensor] = None,
                       reduction: str = 'mean',
                       avg_factor: Optional[Union[Number, Tensor]] = None) -> Tensor:
    """Multiply an element-wise loss by ``weight`` and reduce it.

    Without ``avg_factor`` this is :func:`reduce_loss` of ``loss * weight``. With it, 'mean'
    is ``sum(loss * weight) / (avg_factor + eps)`` (mmdet's convention: heads pass the number of
    positive samples), 'none' returns the weighted loss and 'sum' is refused.

    Args:
        loss: element-wise loss.
        weight: broadcastable to ``loss`` (the result keeps ``loss``'s shape).
        reduction: 'none', 'mean' or 'sum'.
        avg_factor: a finite, non-negative real number or scalar tensor on the loss's device
            (see :func:`check_avg_factor`). The value of a tensor on an accelerator is not
            checked: that would force a host synchronisation.

    Example:
        >>> loss = torch.tensor([1.0, 2.0, 3.0])
        >>> weight_reduce_loss(loss, torch.tensor([1.0, 0.0, 1.0]), avg_factor=2)
        tensor(2.)
    """
    check_reduction(reduction)
    if weight is not None:
        check_weight(weight, loss)
        loss = loss * weight.to(loss.dtype)
    if reduction == 'none':
        if avg_factor is not None:
            check_avg_factor(avg_factor, loss.device)
        return loss
    return reduce_weighted_sum(loss.sum(), loss.numel(), reduction, avg_factor)


def check_weight(weight, loss: Tensor) -> Tensor:
    """Raise unless ``weight`` is a real tensor on ``loss``'s device that broadcasts to
    ``loss``'s shape (without broadcasting the loss up): TypeError for a non-tensor or a
    complex one, ValueError for another device or shape, each naming weight.

    Example:
        >>> check_weight(torch.ones(2, 3, 2), torch.zeros(2, 3))
        Traceback (most recent call last):
        ...
        ValueError: weight must broadcast to the loss shape (2, 3), got (2, 3, 2)
    """
    check_loss_tensors(loss=loss, weight=weight)
    try:
        broadcast = torch.broadcast_shapes(weight.shape, loss.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != loss.shape:
        raise ValueError(f'weight must broadcast to the loss shape {tuple(loss.shape)}, '
                         f'got {tuple(weight.shape)}')
    return weight


def check_avg_factor(avg_factor, device: Optional[torch.device] = None) -> None:
    """Raise unless ``avg_factor`` is a real, finite, non-negative number or scalar tensor, a
    tensor on ``device`` (the loss's device; a CPU tensor is accepted on any device, as torch
    accepts a CPU scalar in an accelerator's arithmetic).

    A non-number, a bool or a complex value is a TypeError; NaN, inf, a negative value, a
    tensor of more than one element or on another device a ValueError, each naming
    avg_factor. The values of a tensor are read only on the CPU and not while compiling
    (:func:`mmdet_losses.validation.reads_values`): on an accelerator they are not checked.

    Example:
        >>> check_avg_factor(2.0)
        >>> check_avg_factor(float('inf'))
        Traceback (most recent call last):
        ...
        ValueError: avg_factor must be a finite number, got inf
        >>> check_avg_factor(torch.tensor(-1.0))
        Traceback (most recent call last):
        ...
        ValueError: avg_factor must be >= 0, got -1.0
    """
    if isinstance(avg_factor, Tensor):
        if avg_factor.is_complex() or avg_factor.dtype == torch.bool:
            raise TypeError(f'avg_factor must be a real number or a real scalar tensor, got a '
                            f'tensor of dtype {avg_factor.dtype}')
        if avg_factor.numel() != 1:
            raise ValueError(f'avg_factor must be a scalar, got a tensor of shape '
                             f'{tuple(avg_factor.shape)}')
        if device is not None and avg_factor.device != torch.device(device) \
                and avg_factor.device.type != 'cpu':
            raise ValueError(f'avg_factor must be on the device of the loss ({device}), got '
                             f'{avg_factor.device}')
        if reads_values(avg_factor):  # reading a CPU tensor syncs nothing
            value = float(avg_factor.detach())
            if not math.isfinite(value):
                raise ValueError(f'avg_factor must be a finite number, got {value}')
            if value < 0:
                raise ValueError(f'avg_factor must be >= 0, got {value}')
    elif isinstance(avg_factor, numbers.Number) and not _is_bool(avg_factor):
        check_number('avg_factor', avg_factor)
        if avg_factor < 0:
            raise ValueError(f'avg_factor must be >= 0, got {avg_factor}')
    else:
        raise TypeError(f'avg_factor must be a number or a scalar tensor, '
                        f'got {type(avg_factor).__name__}')
