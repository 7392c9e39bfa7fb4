"""Losses of dense maps: the Dice loss of masks and the Gaussian focal loss of heatmaps.

Both take one value per pixel (or per cell of a heatmap) and reduce as mmdet does: Dice per
mask (one loss per row of ``pred``), the Gaussian focal loss per element. Half-precision
inputs are computed in float32 (the target straight to float32) and the result is returned in
``pred``'s dtype; a NaN or inf in ``pred``, ``target`` or ``weight`` gives a non-finite loss
and gradient for the elements it touches.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reduction import check_weight, reduce_weighted_sum, weight_reduce_loss
from ..validation import (check_labels, check_loss_tensors, check_number, check_same_shape,
                          check_tensor, compute_dtype)
from .cls_common import check_unit_interval
from .safe_math import nan_if_nonfinite

__all__ = ['dice_loss', 'gaussian_focal_loss']

#: mmdet's guard inside the logarithms of the Gaussian focal loss.
GAUSSIAN_FOCAL_EPS = 1e-12


def _dense_inputs(pred: Tensor, target: Tensor, weight: Optional[Tensor]):
    """pred (floating) and target checked (one shape, one device, real) and both in the
    compute dtype; target may be bool or integer (a binary mask)."""
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_same_shape('pred', pred, 'target', target)
    dtype = compute_dtype(pred)
    return pred.to(dtype), target.to(dtype)


def check_dice_params(activate, naive_dice, eps) -> Tuple[bool, bool, float]:
    """:func:`dice_loss`'s options checked (the flags bools, ``eps >= 0``); DiceLoss checks
    them with this too."""
    return (_check_flag('activate', activate), _check_flag('naive_dice', naive_dice),
            check_number('eps', eps, low=0.0))


def dice_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, eps: float = 1e-3,
              naive_dice: bool = False, activate: bool = True) -> Tensor:
    """Dice loss of each mask (row) of ``pred`` against ``target``::

        p = sigmoid(pred) if activate else pred,  flattened per row i
        V-Net (naive_dice=False):  1 - 2 sum(p t) / (sum(p^2) + eps + sum(t^2) + eps)
        naive  (naive_dice=True):  1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)

    mmdet's two forms, with its ``eps`` placement; then weighted per mask and reduced.

    Args:
        pred: mask logits (probabilities if ``activate=False``) (N, ...), at least 2-D.
        target: masks of pred's shape, values in [0, 1] (bool, integer or float).
        weight: per-mask weight, broadcastable to (N,).
        eps: the smoothing term, >= 0.
        naive_dice: the first-power denominator instead of the V-Net squares.
        activate: apply the sigmoid to ``pred``.

    Returns:
        The reduced loss, or the per-mask loss (N,).

    Reference: Milletari et al., "V-Net: Fully Convolutional Neural Networks for Volumetric
    Medical Image Segmentation", 3DV 2016.

    Example:
        >>> pred = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
        >>> target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> F.dice_loss(pred, target, activate=False, eps=0.0, reduction='none')
        tensor([0.0000, 0.3333])
    """
    activate, naive_dice, eps = check_dice_params(activate, naive_dice, eps)
    p, t = _dense_inputs(pred, target, weight)
    if p.dim() < 2:
        raise ValueError(f'pred must be (N, ...) masks with at least 2 dimensions, got shape '
                         f'{tuple(pred.shape)}')
    check_unit_interval('target', target)
    if not activate:
        check_unit_interval('pred', pred)
    scores, t = p.flatten(1), t.flatten(1)
    p = scores.sigmoid() if activate else scores
    overlap = (p * t).sum(1)
    if naive_dice:
        dice = (2 * overlap + eps) / (p.sum(1) + t.sum(1) + eps)
    else:
        dice = 2 * overlap / ((p * p).sum(1) + eps + (t * t).sum(1) + eps)
    # sigmoid(+-inf) is finite: a non-finite pixel makes its mask's loss (and gradient) NaN
    loss = nan_if_nonfinite(1 - dice, scores, t, dim=1)
    if weight is not None:
        check_weight(weight, loss)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def check_gaussian_focal_params(alpha, gamma, pos_weight,
                                neg_weight) -> Tuple[float, float, float, float]:
    """:func:`gaussian_focal_loss`'s parameters checked (powers >= 0, factors finite)."""
    return (check_number('alpha', alpha, low=0.0), check_number('gamma', gamma, low=0.0),
            check_number('pos_weight', pos_weight), check_number('neg_weight', neg_weight))


def gaussian_focal_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                        reduction: str = 'mean', avg_factor=None, alpha: float = 2.0,
                        gamma: float = 4.0, pos_weight: float = 1.0, neg_weight: float = 1.0,
                        pos_inds: Optional[Tensor] = None,
                        pos_labels: Optional[Tensor] = None) -> Tensor:
    """Focal loss against a Gaussian heatmap (CornerNet, CenterNet), per element::

        pos = -log(p + 1e-12) (1 - p)^alpha            where the target is 1
        neg = -log(1 - p + 1e-12) p^alpha (1 - t)^gamma everywhere
        loss = pos_weight * pos + neg_weight * neg

    With ``pos_inds``/``pos_labels`` (mmdet's CenterNet-update form) the positives are the
    elements ``(pos_inds[k], pos_labels[k])`` of an (N, C) ``pred`` instead of the target's 1s,
    and the positive and negative terms are reduced separately, as mmdet does: 'mean' is
    ``pos_weight * mean(pos) + neg_weight * mean(neg)`` (each over its own count), 'sum' and
    'mean' with ``avg_factor`` are those of the (N, C) map holding both terms, and 'none'
    returns that map (mmdet's 'none' there adds an (M, 1) to an (N, C) tensor). ``weight`` is
    refused in that form (mmdet's ignores it).

    Args:
        pred: probabilities in [0, 1] (the head applies the sigmoid), any shape; (N, C) with
            ``pos_inds``.
        target: Gaussian heatmap of pred's shape, values in [0, 1]; 1 marks a positive.
        weight: element-wise weight, broadcastable to pred's shape.
        alpha: power of the prediction's modulating factor, >= 0.
        gamma: power of the negatives' ``1 - t`` factor, >= 0.
        pos_weight: factor of the positive term.
        neg_weight: factor of the negative term.
        pos_inds: row index of each positive (M,), integer.
        pos_labels: class of each positive (M,), integer.

    Returns:
        The reduced loss, or the element-wise loss of pred's shape.

    Reference: Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018.

    Example:
        >>> pred = torch.tensor([[0.5, 0.25]])
        >>> target = torch.tensor([[1.0, 0.5]])
        >>> F.gaussian_focal_loss(pred, target, reduction='none')
        tensor([[0.1733, 0.0011]])
    """
    alpha, gamma, pos_weight, neg_weight = check_gaussian_focal_params(alpha, gamma, pos_weight,
                                                                       neg_weight)
    p, t = _dense_inputs(pred, target, weight)
    check_unit_interval('pred', pred)
    check_unit_interval('target', target)
    t = t.detach()
    neg = -torch.log(1 - p + GAUSSIAN_FOCAL_EPS) * p.pow(alpha) * (1 - t).pow(gamma)
    neg = nan_if_nonfinite(neg, p, t)  # clamp-free maths, but keep the rule explicit
    if pos_inds is None:
        if pos_labels is not None:
            raise ValueError('pos_inds must be given with pos_labels (the row of each '
                             'positive), got None')
        pos = -torch.log(p + GAUSSIAN_FOCAL_EPS) * (1 - p).pow(alpha) * (t == 1).to(p.dtype)
        loss = pos_weight * pos + neg_weight * neg
        return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
    return _gaussian_focal_with_pos_inds(pred, p, neg, weight, reduction, avg_factor, alpha,
                                         pos_weight, neg_weight, pos_inds,
                                         pos_labels).to(pred.dtype)


def _gaussian_focal_with_pos_inds(pred, p, neg, weight, reduction, avg_factor, alpha,
                                  pos_weight, neg_weight, pos_inds, pos_labels) -> Tensor:
    if weight is not None:
        raise ValueError('weight must be None with pos_inds (mmdet ignores it there), got a '
                         f'tensor of shape {tuple(weight.shape)}')
    if pos_labels is None:
        raise ValueError('pos_labels must be given with pos_inds (the class of each '
                         'positive), got None')
    if p.dim() != 2:
        raise ValueError(f'pred must be (N, C) with pos_inds, got shape {tuple(pred.shape)}')
    check_loss_tensors(pred=pred, pos_inds=pos_inds, pos_labels=pos_labels)
    check_labels(pos_inds, p.shape[0] - 1 if p.shape[0] else None, name='pos_inds')
    check_labels(pos_labels, p.shape[1] - 1, name='pos_labels')
    if pos_inds.shape != pos_labels.shape or pos_inds.dim() != 1:
        raise ValueError(f'pos_inds and pos_labels must be 1-D of one length, got shapes '
                         f'{tuple(pos_inds.shape)} and {tuple(pos_labels.shape)}')
    pos_p = p[pos_inds, pos_labels]
    pos = -torch.log(pos_p + GAUSSIAN_FOCAL_EPS) * (1 - pos_p).pow(alpha)
    if reduction == 'mean' and avg_factor is None:
        # mmdet reduces each term over its own count
        return (pos_weight * reduce_weighted_sum(pos.sum(), pos.numel())
                + neg_weight * reduce_weighted_sum(neg.sum(), neg.numel()))
    loss = (neg_weight * neg).index_put((pos_inds, pos_labels), pos_weight * pos,
                                        accumulate=True)
    return weight_reduce_loss(loss, None, reduction, avg_factor)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be a bool, got {type(value).__name__} {value!r}')
    return value
