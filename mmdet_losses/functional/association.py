"""Association losses of multi-object tracking: QDTrack's multi-positive cross-entropy over
the similarities of detections to reference objects. Half-precision inputs are computed in
float32 and the result is returned in the input dtype."""
from typing import Optional

import torch
import torch.nn.functional as TF
from torch import Tensor

from ..reduction import weight_reduce_loss
from ..validation import check_loss_tensors, check_same_shape, check_tensor, compute_dtype
from .safe_math import nan_if_nonfinite

__all__ = ['multi_pos_cross_entropy_loss']


def _masked_logsumexp(x: Tensor, mask: Tensor) -> Tensor:
    """``log sum_{j: mask_ij} exp(x_ij)`` per row, -inf for a row without any (with a zero,
    not NaN, gradient there)."""
    any_ = mask.any(dim=1)
    neg_inf = torch.full_like(x, float('-inf'))
    masked = torch.where(mask, x, neg_inf)
    # a row with nothing in it takes zeros (a finite logsumexp) and is then replaced
    safe = torch.where(any_[:, None], masked, torch.zeros_like(x))
    return torch.where(any_, torch.logsumexp(safe, dim=1), neg_inf[:, 0])


def multi_pos_cross_entropy_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                 reduction: str = 'mean', avg_factor=None) -> Tensor:
    """Multi-positive cross-entropy (QDTrack's quasi-dense contrastive loss) of each row of
    similarity logits ``s_i`` against its positive set ``P_i`` (``target >= 1``) and negative
    set ``N_i`` (``target == 0``; other target values are ignored)::

        L_i = log(1 + sum_{p in P_i} sum_{n in N_i} exp(s_in - s_ip))
            = softplus(logsumexp_{n in N_i} s_in + logsumexp_{p in P_i} (-s_ip))

    computed in the second, O(N M), form (mmdet's builds all M^2 pairs). A row without a
    positive or without a negative has loss 0. The per-row loss is weighted by ``weight``
    (N,) and reduced as mmdet's ``weight_reduce_loss``.

    Args:
        pred: similarity logits (N, M).
        target: (N, M): 1 (or more) for a positive, 0 for a negative.
        weight: (N,) per row.

    Reference: Pang et al., "Quasi-Dense Similarity Learning for Multiple Object Tracking",
    CVPR 2021, arXiv 2006.06664.

    Example:
        >>> pred = torch.tensor([[2.0, 0.5, -1.0]])
        >>> F.multi_pos_cross_entropy_loss(pred, torch.tensor([[1.0, 0.0, 0.0]]))
        tensor(0.2413)
    """
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_tensor('pred', pred, floating=True)
    if pred.dim() != 2:
        raise ValueError(f'pred must be (N, M) similarities, got shape {tuple(pred.shape)}')
    check_same_shape('pred', pred, 'target', target)
    dtype = compute_dtype(pred)
    x = pred.to(dtype)
    positive = target >= 1
    negative = target == 0
    loss = TF.softplus(_masked_logsumexp(x, negative) + _masked_logsumexp(-x, positive))
    loss = nan_if_nonfinite(loss, x, target.to(dtype) if target.is_floating_point() else None,
                            dim=1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
