"""The one place where element-wise losses are weighted and reduced.

The semantics are mmdet's (``mmdet.models.losses.utils.weight_reduce_loss``), so a config that
swaps mmdet's loss for ours logs the same numbers, with three differences that only show at
the edges: an empty loss reduces to a zero that stays in the autograd graph (mmdet's 'mean'
gives NaN), bad arguments raise a ``ValueError`` naming them, and a weight that does not
broadcast to the loss is refused instead of silently broadcasting the loss up.
"""
from numbers import Number
from typing import Optional, Union

import torch
from torch import Tensor

from .validation import check_reduction, check_tensor

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
        check_avg_factor(avg_factor)
        if reduction == 'sum':
            raise ValueError("reduction must be 'mean' or 'none' when avg_factor is given, "
                             "got 'sum'")
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
        avg_factor: a non-negative number or scalar tensor. A tensor on an accelerator is not
            checked for sign: that would force a host synchronisation.

    Example:
        >>> loss = torch.tensor([1.0, 2.0, 3.0])
        >>> weight_reduce_loss(loss, torch.tensor([1.0, 0.0, 1.0]), avg_factor=2)
        tensor(2.)
    """
    check_reduction(reduction)
    if weight is not None:
        check_tensor('weight', weight)
        try:
            broadcast = torch.broadcast_shapes(weight.shape, loss.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != loss.shape:
            raise ValueError(f'weight must broadcast to the loss shape {tuple(loss.shape)}, '
                             f'got {tuple(weight.shape)}')
        loss = loss * weight.to(loss.dtype)
    if reduction == 'none':
        if avg_factor is not None:
            check_avg_factor(avg_factor)
        return loss
    return reduce_weighted_sum(loss.sum(), loss.numel(), reduction, avg_factor)


def check_avg_factor(avg_factor) -> None:
    """Raise unless ``avg_factor`` is a non-negative number or scalar tensor (the sign of a
    tensor is read on the CPU only, where it syncs nothing)."""
    if isinstance(avg_factor, Tensor):
        if avg_factor.numel() != 1:
            raise ValueError(f'avg_factor must be a scalar, got a tensor of shape '
                             f'{tuple(avg_factor.shape)}')
        if avg_factor.device.type == 'cpu' and not avg_factor.requires_grad \
                and bool(avg_factor < 0):  # reading a CPU tensor syncs nothing
            raise ValueError(f'avg_factor must be >= 0, got {float(avg_factor)}')
    elif isinstance(avg_factor, Number) and not isinstance(avg_factor, bool):
        if avg_factor < 0:
            raise ValueError(f'avg_factor must be >= 0, got {avg_factor}')
    else:
        raise TypeError(f'avg_factor must be a number or a scalar tensor, '
                        f'got {type(avg_factor).__name__}')
