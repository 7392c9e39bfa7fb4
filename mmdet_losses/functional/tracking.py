"""The tracking L2 loss of mmdet's QDTrack head (``L2Loss``, ``MarginL2Loss``): a squared
error of similarities clamped to [0, 1] against 0/1 targets, with margins and an upper bound
on the negatives kept per positive (hard or random mining).

The mining is decided on the device (a sort, no host synchronisation); mmdet counts on the
host and draws random negatives with numpy.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reduction import check_weight, weight_reduce_loss
from ..validation import (_is_bool, check_int, check_loss_tensors, check_number,
                          check_same_shape, check_tensor, compute_dtype)
from .safe_math import with_nonfinite

__all__ = ['margin_l2_loss']

#: mmdet's guard in the negative-to-positive ratio test.
RATIO_EPS = 1e-6


def _kept_negatives(neg: Tensor, cost: Tensor, limit: Tensor, hard_mining: bool,
                    generator: Optional[torch.Generator]) -> Tensor:
    """The ``limit`` negatives of highest cost (hard mining) or a uniformly random subset of
    ``limit`` of them, as a mask of neg's shape: rank every negative by its key and keep those
    ranked below the limit (a device tensor, never read on the host)."""
    if hard_mining:
        key = cost.detach()
    else:
        key = torch.rand(neg.shape, generator=generator, device='cpu' if generator is not None
                         else neg.device, dtype=cost.dtype).to(neg.device)
    key = torch.where(neg, key, torch.full_like(key, -float('inf'))).flatten()
    order = torch.argsort(key, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return neg & (rank.view(neg.shape) < limit)


def check_margin_l2_params(neg_pos_ub, pos_margin, neg_margin,
                           hard_mining) -> Tuple[int, float, float, bool]:
    """:func:`margin_l2_loss`'s parameters checked (an int, two numbers, a bool)."""
    neg_pos_ub = check_int('neg_pos_ub', neg_pos_ub)
    pos_margin = check_number('pos_margin', pos_margin)
    neg_margin = check_number('neg_margin', neg_margin)
    if not _is_bool(hard_mining):
        raise TypeError(f'hard_mining must be a bool, got {type(hard_mining).__name__} '
                        f'{hard_mining!r}')
    return neg_pos_ub, pos_margin, neg_margin, hard_mining


def margin_l2_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                   reduction: str = 'mean', avg_factor=None, neg_pos_ub: int = -1,
                   pos_margin: float = -1.0, neg_margin: float = -1.0,
                   hard_mining: bool = False,
                   generator: Optional[torch.Generator] = None) -> Tensor:
    """mmdet's tracking L2 loss of similarities against 0/1 targets::

        valid = weight > 0;  t = target where valid, else -1
        s = clamp(pred - pos_margin [t == 1, pos_margin > 0] - neg_margin [t == 0,
                  neg_margin > 0], 0, 1)
        loss = (s - t)^2, weighted; 'mean' divides by the number of elements of weight > 0

    With ``neg_pos_ub > 0`` and more than ``neg_pos_ub`` negatives per positive, only
    ``neg_pos_ub * #positives`` negatives keep their weight: those of highest loss
    (``hard_mining``) or a random subset (drawn with torch's generator). A given
    ``avg_factor`` replaces the count (mmdet's ignores it; its heads pass none).

    Args:
        pred: similarities (cosine or dot products), any shape.
        target: pred's shape, 1 for a positive pair, 0 for a negative.
        weight: element-wise weight of pred's shape (default 1); <= 0 ignores the element.
        neg_pos_ub: the most negatives per positive; <= 0 keeps all.
        pos_margin: subtracted from the positives' pred when > 0.
        neg_margin: subtracted from the negatives' pred when > 0.
        hard_mining: keep the hardest negatives instead of random ones.
        generator: the random negatives' generator (default: torch's global one).

    Returns:
        The reduced loss, or the weighted element-wise loss of pred's shape.

    Reference: Pang et al., "Quasi-Dense Similarity Learning for Multiple Object Tracking",
    CVPR 2021.

    Example:
        >>> pred = torch.tensor([[0.9, 0.3, 1.4]])
        >>> target = torch.tensor([[1.0, 0.0, 0.0]])
        >>> F.margin_l2_loss(pred, target, reduction='none')
        tensor([[0.0100, 0.0900, 1.0000]])
    """
    neg_pos_ub, pos_margin, neg_margin, hard_mining = check_margin_l2_params(
        neg_pos_ub, pos_margin, neg_margin, hard_mining)
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_same_shape('pred', pred, 'target', target)
    if weight is not None:
        check_weight(weight, pred)
    dtype = compute_dtype(pred)
    s, t = pred.to(dtype), target.to(dtype)
    w = torch.ones_like(t) if weight is None else weight.to(dtype).expand_as(t)
    t = torch.where(w > 0, t, torch.full_like(t, -1.0))
    pos, neg = t == 1, t == 0
    if pos_margin > 0:
        s = s - pos_margin * pos.to(dtype)
    if neg_margin > 0:
        s = s - neg_margin * neg.to(dtype)
    # the clamp would turn +-inf into 0 or 1: NaN in, NaN out (value and gradient)
    loss = with_nonfinite((s.clamp(0.0, 1.0) - t).square(), pred, target)
    if neg_pos_ub > 0:
        num_pos, num_neg = pos.sum(), neg.sum()
        limit = num_pos * neg_pos_ub
        too_many = num_neg / (num_pos + RATIO_EPS) > neg_pos_ub
        kept = _kept_negatives(neg, loss, limit, hard_mining, generator)
        w = torch.where(too_many & neg & ~kept, torch.zeros_like(w), w)
    if avg_factor is None and reduction == 'mean':
        avg_factor = (w > 0).sum()
    return weight_reduce_loss(loss, w, reduction, avg_factor).to(pred.dtype)
