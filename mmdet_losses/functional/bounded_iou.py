"""The Bounded IoU loss of Tychsen-Smith and Petersson, as mmdet defines it: four per-box
terms, one per centre offset and one per side ratio, each an upper bound on ``1 - IoU`` when
only that quantity differs from the target, passed through a smooth L1 at ``beta``.

It lives beside the IoU family's geometry but needs none of it: only the centres and sides of
(x1, y1, x2, y2) boxes.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reduction import check_weight, weight_reduce_loss
from ..validation import (check_loss_tensors, check_number, check_same_shape, check_tensor,
                          compute_dtype)
from .safe_math import nonfinite_marker

__all__ = ['bounded_iou_loss']


def _centres_and_sides(boxes: Tensor):
    x1, y1, x2, y2 = boxes.unbind(-1)
    return (x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1


def _offset_term(target_side: Tensor, offset: Tensor, eps: float) -> Tensor:
    """``1 - max((s - 2|d|) / (s + 2|d| + eps), 0)``: the bound for a centre offset d."""
    twice = 2 * offset.abs()
    return 1 - torch.clamp_min((target_side - twice) / (target_side + twice + eps), 0.0)


def _ratio_term(pred_side: Tensor, target_side: Tensor, eps: float) -> Tensor:
    """``1 - min(s_t / (s_p + eps), s_p / (s_t + eps))``: the bound for a side's scale."""
    return 1 - torch.minimum(target_side / (pred_side + eps), pred_side / (target_side + eps))


def check_bounded_iou_params(beta, eps) -> Tuple[float, float]:
    """:func:`bounded_iou_loss`'s ``beta`` (> 0) and ``eps`` (>= 0) checked."""
    return check_number('beta', beta, low=0.0, low_open=True), check_number('eps', eps, low=0.0)


def bounded_iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                     reduction: str = 'mean', avg_factor=None, beta: float = 0.2,
                     eps: float = 1e-3) -> Tensor:
    """Bounded IoU loss of (x1, y1, x2, y2) boxes, four terms per box::

        dx = cx_t - cx_p,  dy = cy_t - cy_p
        l_x = 1 - max((w_t - 2|dx|) / (w_t + 2|dx| + eps), 0)    (l_y likewise with h, dy)
        l_w = 1 - min(w_t / (w_p + eps), w_p / (w_t + eps))      (l_h likewise)
        loss = smooth_l1(l, beta) = 0.5 l^2 / beta if l < beta else l - 0.5 beta

    The target is a constant (no gradient), as in mmdet.

    Args:
        pred: predicted boxes (..., 4), x1 y1 x2 y2.
        target: target boxes of pred's shape.
        weight: broadcastable to the element-wise loss (..., 4) (mmdet's heads pass the
            (n, 4) box weights).
        beta: where the smooth L1 turns linear, > 0.
        eps: guards the divisions, >= 0.

    Returns:
        The reduced loss, or the element-wise loss (..., 4): (l_x, l_y, l_w, l_h) smoothed.

    Reference: Tychsen-Smith and Petersson, "Improving Object Localization with Fitness NMS
    and Bounded IoU Loss", CVPR 2018.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
        >>> target = torch.tensor([[1.0, 0.0, 11.0, 20.0]])
        >>> F.bounded_iou_loss(pred, target, reduction='none', eps=0.0)
        tensor([[0.2333, 0.5667, 0.0000, 0.4000]])
    """
    beta, eps = check_bounded_iou_params(beta, eps)
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_same_shape('pred', pred, 'target', target)
    if pred.dim() == 0 or pred.shape[-1] != 4:
        raise ValueError(f'pred must be (..., 4) boxes (x1, y1, x2, y2), got shape '
                         f'{tuple(pred.shape)}')
    dtype = compute_dtype(pred)
    boxes, goal = pred.to(dtype), target.detach().to(dtype)
    cx, cy, w, h = _centres_and_sides(boxes)
    gx, gy, gw, gh = _centres_and_sides(goal)
    terms = torch.stack((_offset_term(gw, gx - cx, eps), _offset_term(gh, gy - cy, eps),
                         _ratio_term(w, gw, eps), _ratio_term(h, gh, eps)), dim=-1)
    loss = torch.where(terms < beta, 0.5 * terms * terms / beta, terms - 0.5 * beta)
    # a non-finite coordinate can leave some of its box's terms finite (a ratio of an infinite
    # side is 0): make all four non-finite, with a NaN gradient for the box
    loss = loss + nonfinite_marker(boxes, goal, dim=-1).unsqueeze(-1)
    if weight is not None:
        check_weight(weight, loss)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
