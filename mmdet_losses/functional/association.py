"""Association losses: QDTrack's multi-positive cross-entropy over the similarities of
detections to reference objects (multi-object tracking), and CornerNet's associative
embedding loss, which groups the two corners of an object by their embeddings. Half-precision
inputs are computed in float32 and the result is returned in the input dtype."""
import operator
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as TF
from torch import Tensor

from ..reduction import weight_reduce_loss
from ..validation import (check_loss_tensors, check_number, check_same_shape, check_tensor,
                          compute_dtype)
from .safe_math import nan_if_nonfinite

__all__ = ['multi_pos_cross_entropy_loss', 'associative_embedding_terms',
           'associative_embedding_loss', 'corner_embeddings']


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


def _check_image_ids(image_ids: Optional[Tensor], n: int) -> None:
    if image_ids is None:
        return
    check_tensor('image_ids', image_ids)
    if image_ids.is_floating_point() or image_ids.is_complex() or image_ids.dtype == torch.bool:
        raise TypeError(f'image_ids must be an integer tensor, got dtype {image_ids.dtype}')
    if image_ids.shape != (n,):
        raise ValueError(f'image_ids must have shape ({n},) (one image index per embedding), '
                         f'got {tuple(image_ids.shape)}')


def _check_corner_pair(pred: Tensor, target: Tensor, dim: int, what: str) -> None:
    """Floating top-left (``pred``) and bottom-right (``target``) embeddings of ``dim``
    dimensions and one shape; ``what`` names pred's expected form in the error."""
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target, floating=True)
    if pred.dim() != dim:
        raise ValueError(f'pred must be {what}, got shape {tuple(pred.shape)}')
    check_same_shape('pred', pred, 'target', target)


def associative_embedding_terms(top_left: Tensor, bottom_right: Tensor,
                                image_ids: Optional[Tensor] = None,
                                margin: float = 1.0) -> Tuple[Tensor, Tensor]:
    """The pull and push terms of each object's corner embeddings, (N,) each, normalised per
    image so that their sums over the N objects of a batch are CornerNet's pull and push
    losses of the batch (summed over its images)::

        e_k = (tl_k + br_k) / 2                         (the object's mean embedding)
        pull_k = ((tl_k - e_k)^2 + (br_k - e_k)^2) / n
        push_k = sum_{j != k} relu(margin - |e_k - e_j|) / (n (n - 1))    (0 if n = 1)

    with j over the objects of k's image and n their number. All pairs are formed at once
    (an (N, N) mask of same-image pairs; no loop over images or objects, no host
    synchronisation). A non-finite embedding makes its object's pull and push non-finite,
    and the push of every object of its image.

    Args:
        top_left: the top-left corner embedding of each object (N,).
        bottom_right: the bottom-right corner embedding of each object (N,).
        image_ids: the image each object belongs to (N,), integers; None: one image.
        margin: the push margin (CornerNet's 1).

    Example:
        >>> pull, push = F.associative_embedding_terms(torch.tensor([0.0, 0.5, 3.0]),
        ...                                            torch.tensor([0.2, 0.5, 3.0]),
        ...                                            torch.tensor([0, 0, 1]))
        >>> pull, push
        (tensor([0.0100, 0.0000, 0.0000]), tensor([0.3000, 0.3000, 0.0000]))
    """
    m = (top_left + bottom_right) / 2.0
    pull = (top_left - m).pow(2) + (bottom_right - m).pow(2)
    n = top_left.shape[0]
    same = torch.ones(n, n, dtype=torch.bool, device=top_left.device) if image_ids is None \
        else image_ids[:, None] == image_ids[None, :]
    count = same.sum(1).to(m.dtype)  # objects in each one's image, itself included
    others = same & ~torch.eye(n, dtype=torch.bool, device=m.device)
    gap = TF.relu(margin - (m[:, None] - m[None, :]).abs())
    push = torch.where(others, gap, torch.zeros_like(gap)).sum(1)
    push = push / (count * (count - 1)).clamp(min=1.0)
    # alone in its image, an object's push is 0 whatever its embedding: keep a NaN visible
    push = nan_if_nonfinite(push, m)
    return pull / count, push


def check_associative_embedding_weights(pull_weight, push_weight) -> Tuple[float, float]:
    """The factors of the pull and push terms checked (finite numbers)."""
    return check_number('pull_weight', pull_weight), check_number('push_weight', push_weight)


def associative_embedding_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                               reduction: str = 'mean', avg_factor=None,
                               image_ids: Optional[Tensor] = None, pull_weight: float = 0.25,
                               push_weight: float = 0.25, margin: float = 1.0) -> Tensor:
    """CornerNet's associative embedding loss per object: ``pull_weight * pull_k +
    push_weight * push_k`` of :func:`associative_embedding_terms` (pull the two corner
    embeddings of an object to their mean, push the means of two objects of one image at
    least ``margin`` apart), weighted by ``weight`` (N,) and reduced as mmdet's
    ``weight_reduce_loss``. The terms are normalised per image, so ``reduction='sum'``
    gives mmdet's ``pull + push`` of the batch.

    Args:
        pred: the top-left corner embedding of each object (N,).
        target: the bottom-right corner embedding of each object (N,).
        image_ids: the image of each object (N,), integers; None: all in one image.
        pull_weight: factor of the pull term.
        push_weight: factor of the push term.
        margin: the push margin, > 0.

    Reference: Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018;
    Newell et al., "Associative Embedding: End-to-End Learning for Joint Detection and
    Grouping", NeurIPS 2017.

    Example:
        >>> top_left = torch.tensor([0.0, 0.5, 3.0])
        >>> bottom_right = torch.tensor([0.2, 0.5, 3.0])
        >>> F.associative_embedding_loss(top_left, bottom_right, reduction='sum')
        tensor(0.0517)
    """
    check_loss_tensors(pred=pred, target=target, weight=weight, image_ids=image_ids)
    _check_corner_pair(pred, target, 1, '(N,) embeddings (one per object)')
    _check_image_ids(image_ids, pred.shape[0])
    pull_weight, push_weight = check_associative_embedding_weights(pull_weight, push_weight)
    margin = check_number('margin', margin, low=0.0, low_open=True)
    dtype = compute_dtype(pred)
    pull, push = associative_embedding_terms(pred.to(dtype), target.to(dtype), image_ids,
                                             margin)
    loss = pull_weight * pull + push_weight * push
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def _corner_index(value, where: str, size: int, axis: str) -> int:
    try:
        index = operator.index(value)
    except TypeError:
        raise TypeError(f'{where} must be an integer {axis} index, got '
                        f'{type(value).__name__} {value!r}') from None
    if not 0 <= index < size:
        raise ValueError(f'{where} must be a {axis} index in [0, {size - 1}], got {index}')
    return index


def _corner_indices(match: Sequence, height: int, width: int) -> List[List[int]]:
    """mmdet's ``match`` (per image, a list of ``[[tl_y, tl_x], [br_y, br_x]]``) as five
    lists of Python ints: image, top-left y and x, bottom-right y and x of every object."""
    columns: List[List[int]] = [[], [], [], [], []]
    for b, pairs in enumerate(match):
        if not isinstance(pairs, (list, tuple)):
            raise TypeError(f'match[{b}] must be a list of [[tl_y, tl_x], [br_y, br_x]] '
                            f'(one per object of image {b}), got {type(pairs).__name__}')
        for k, pair in enumerate(pairs):
            try:
                (tl_y, tl_x), (br_y, br_x) = pair
            except (TypeError, ValueError):
                raise ValueError(f'match[{b}][{k}] must be [[tl_y, tl_x], [br_y, br_x]], got '
                                 f'{pair!r}') from None
            where = f'match[{b}][{k}]'
            columns[0].append(b)
            columns[1].append(_corner_index(tl_y, where + '[0][0]', height, 'row'))
            columns[2].append(_corner_index(tl_x, where + '[0][1]', width, 'column'))
            columns[3].append(_corner_index(br_y, where + '[1][0]', height, 'row'))
            columns[4].append(_corner_index(br_x, where + '[1][1]', width, 'column'))
    return columns


def corner_embeddings(top_left_map: Tensor, bottom_right_map: Tensor,
                      match: Sequence) -> Tuple[Tensor, Tensor, Tensor]:
    """The corner embeddings of every object, read from the embedding maps of mmdet's
    ``CornerHead`` at the corners ``match`` gives, as mmdet's ``AssociativeEmbeddingLoss``
    reads them: each of the C channels is an embedding of its own (flattened object-major,
    so C > 1 gives C entries per object that pull and push as separate objects, as in
    mmdet's).

    Args:
        top_left_map: top-left corner embeddings (B, C, H, W).
        bottom_right_map: bottom-right corner embeddings (B, C, H, W).
        match: per image, a list of ``[[tl_y, tl_x], [br_y, br_x]]`` (Python ints), one per
            object, in feature-map coordinates.

    Returns:
        top-left and bottom-right embeddings (N C,) and the image of each (N C,).

    Example:
        >>> tl, br = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
        >>> tl[1, 0, 2, 1] = 5.0
        >>> F.corner_embeddings(tl, br, [[], [[[2, 1], [3, 3]]]])
        (tensor([5.]), tensor([1.]), tensor([1]))
    """
    check_loss_tensors(pred=top_left_map, target=bottom_right_map)
    _check_corner_pair(top_left_map, bottom_right_map, 4,
                       '(B, C, H, W) top-left corner embedding maps')
    if not isinstance(match, (list, tuple)):
        raise TypeError(f'match must be a list (one entry per image) of lists of '
                        f'[[tl_y, tl_x], [br_y, br_x]], got {type(match).__name__}')
    batch, channels, height, width = top_left_map.shape
    if len(match) != batch:
        raise ValueError(f'match must have one entry per image ({batch}), got {len(match)}')
    image, tl_y, tl_x, br_y, br_x = (
        torch.tensor(c, dtype=torch.long).to(top_left_map.device, non_blocking=True)
        for c in _corner_indices(match, height, width))
    # (objects, C) -> (objects C,): every channel an embedding, object-major as mmdet's
    top_left = top_left_map[image, :, tl_y, tl_x].reshape(-1)
    bottom_right = bottom_right_map[image, :, br_y, br_x].reshape(-1)
    return top_left, bottom_right, image.repeat_interleave(channels)
