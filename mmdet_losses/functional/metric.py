"""Metric-learning losses on embeddings: triplet (explicit triplets, or mined from labels),
contrastive (explicit pairs, or every pair of a batch) and center loss.

Embeddings are ``(N, D)``, labels ``(N,)`` integers. Distances have a finite gradient at zero
distance (the subgradient 0, not the NaN that ``sqrt(0)`` gives through the chain rule).
Half-precision inputs are computed in float32 and the result is returned in the input dtype.
"""
import contextlib
from typing import Optional, Tuple

import torch
import torch.nn.functional as nnF
from torch import Tensor

from ..reduction import weight_reduce_loss
from ..validation import (check_choice, check_labels, check_loss_tensors, check_number,
                          check_same_shape, check_tensor, compute_dtype, upcast)
from .safe_math import nonfinite_marker, safe_sqrt, with_nonfinite

__all__ = ['pairwise_distances', 'triplet_margin_loss', 'triplet_loss', 'contrastive_loss',
           'pairwise_contrastive_loss', 'center_loss']

MINING_MODES = ('batch_hard', 'batch_all')


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------
def _check_embeddings(name: str, x) -> Tensor:
    check_tensor(name, x, floating=True)
    if x.dim() != 2:
        raise ValueError(f'{name} must be a 2-D (N, D) tensor, got shape {tuple(x.shape)}')
    return x


def _check_labels(name: str, labels, num: int, num_classes: Optional[int] = None) -> Tensor:
    """Integer labels of shape (num,), in [0, num_classes) when that is given (checked for CPU
    labels only, see :func:`mmdet_losses.validation.check_labels`)."""
    check_labels(labels, None if num_classes is None else num_classes - 1, name=name)
    if labels.shape != (num,):
        raise ValueError(f'{name} must have shape ({num},), got {tuple(labels.shape)}')
    return labels


def _check_p(p) -> float:
    """A norm order: p >= 1 (a metric), inf allowed."""
    return check_number('p', p, low=1.0, allow_inf=True)


def check_triplet_params(margin, p, mining) -> Tuple[float, float, str]:
    """:func:`triplet_loss`'s ``margin`` (>= 0), ``p`` (>= 1) and ``mining`` checked."""
    margin = check_number('margin', margin, low=0.0)
    p = _check_p(p)
    check_choice('mining', mining, MINING_MODES)
    return margin, p, mining


def check_contrastive_margin(margin) -> float:
    """The contrastive losses' ``margin`` checked (>= 0)."""
    return check_number('margin', margin, low=0.0)


def _hinge(gap: Tensor, soft_margin: bool) -> Tensor:
    """max(0, gap), or its smooth version log(1 + exp(gap))."""
    return nnF.softplus(gap) if soft_margin else gap.clamp_min(0)


# ---------------------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------------------
def _autocast_off(device_type: str):
    """Autocast switched off on ``device_type``; nothing to switch off where autocast does not
    exist ('meta': shape propagation, whose dtypes autocast does not change either)."""
    available = getattr(torch.amp, 'is_autocast_available', lambda d: d != 'meta')
    if not available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def _distance_matrix(x: Tensor, y: Optional[Tensor], p: float, squared: bool) -> Tensor:
    """(N, M) distances between the rows of x and y (y=None: x with itself, zero diagonal).

    p=2 uses the Gram matrix (N*M*D multiply-adds, no (N, M, D) temporary) on inputs centred
    on x's mean, which cuts the cancellation of ``|a|^2 + |b|^2 - 2 a.b`` without changing a
    distance; then a square root whose gradient at 0 is 0. Other p take norms of the
    differences, whose gradient at a zero difference is 0 as well.
    """
    same = y is None
    if p != 2.0:
        dist = torch.linalg.vector_norm(x[:, None, :] - (x if same else y)[None, :, :],
                                        ord=p, dim=-1)
        return dist.square() if squared else dist
    centre = x.detach().mean(0) if x.shape[0] else x.new_zeros(x.shape[1:])
    a = x - centre
    b = a if same else y - centre
    # autocast would run the product in half precision, where the cancellation is ruinous
    with _autocast_off(x.device.type):
        sq = torch.addmm(a.square().sum(1)[:, None] + b.square().sum(1)[None, :], a, b.t(),
                         alpha=-2.0).clamp_min(0)
    if same:  # exactly 0 (not rounding noise) on the diagonal
        sq = sq.masked_fill(torch.eye(sq.shape[0], dtype=torch.bool, device=sq.device), 0)
    return sq if squared else safe_sqrt(sq)


def pairwise_distances(x: Tensor, y: Optional[Tensor] = None, p: float = 2.0,
                       squared: bool = False) -> Tensor:
    """The (N, M) matrix of p-norm distances ``||x_i - y_j||_p`` (``y=None``: ``y = x``).

    Unlike ``torch.nn.functional.pairwise_distance`` (row i with row i), this is every row of
    ``x`` against every row of ``y``, as ``torch.cdist``, but its gradient at zero distance is
    0 rather than NaN, and ``d(x_i, x_i)`` is exactly 0 when ``y`` is None.

    Args:
        x: (N, D) floating tensor.
        y: (M, D) floating tensor, or None.
        p: the norm order, >= 1 (``float('inf')`` allowed).
        squared: return squared distances.

    Returns:
        (N, M) distances in x's dtype (half precision is computed in float32).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
        >>> d = F.pairwise_distances(x)
        >>> d
        tensor([[0., 5.],
                [5., 0.]], grad_fn=<...>)
        >>> d.sum().backward(); x.grad
        tensor([[-1.2000, -1.6000],
                [ 1.2000,  1.6000]])
    """
    _check_embeddings('x', x)
    p = _check_p(p)
    if y is not None:
        _check_embeddings('y', y)
        check_loss_tensors(x=x, y=y)
        if y.shape[1] != x.shape[1]:
            raise ValueError(f'y must have {x.shape[1]} columns as x, got {y.shape[1]}')
        xc, yc = upcast(x, y)
    else:
        (xc,), yc = upcast(x), None
    return _distance_matrix(xc, yc, p, squared).to(x.dtype)


def _row_distance(x: Tensor, y: Tensor, p: float, eps: float) -> Tensor:
    """``||x - y + eps||_p`` along the last dim, as ``torch.nn.functional.pairwise_distance``."""
    return torch.linalg.vector_norm(x - y + eps, ord=p, dim=-1)


# ---------------------------------------------------------------------------------------------
# triplet losses
# ---------------------------------------------------------------------------------------------
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor,
                        margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                        swap: bool = False, *, weight: Optional[Tensor] = None,
                        reduction: str = 'mean', avg_factor=None) -> Tensor:
    """Triplet margin loss of explicit triplets, ``max(0, d(a, p) - d(a, n) + margin)`` with
    ``d(x, y) = ||x - y + eps||_p``: the same values as
    ``torch.nn.functional.triplet_margin_loss`` (whose argument order it keeps), plus
    ``weight`` and ``avg_factor``.

    Args:
        anchor, positive, negative: (N, D) or (D,) floating tensors of one shape.
        margin: >= 0.
        p: the norm order, >= 1.
        eps: added to the differences, as torch does.
        swap: use ``min(d(a, n), d(p, n))`` as the negative distance (Balntas et al. 2016).
        weight: broadcastable to the per-triplet loss (N,).
        reduction: 'none' (per triplet), 'mean' or 'sum'.
        avg_factor: divide the summed loss by this ('mean').

    Reference: Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and
    Clustering", CVPR 2015; Balntas et al., "Learning local feature descriptors with triplets
    and shallow convolutional neural networks", BMVC 2016.

    Example:
        >>> a = torch.tensor([[0.0, 0.0]]); pos = torch.tensor([[3.0, 4.0]])
        >>> neg = torch.tensor([[0.0, 1.0]])
        >>> F.triplet_margin_loss(a, pos, neg, margin=1.0, eps=0.0)
        tensor(5.)
    """
    for name, t in (('anchor', anchor), ('positive', positive), ('negative', negative)):
        check_tensor(name, t, floating=True)
    check_loss_tensors(anchor=anchor, positive=positive, negative=negative, weight=weight)
    check_same_shape('anchor', anchor, 'positive', positive)
    check_same_shape('anchor', anchor, 'negative', negative)
    if anchor.dim() not in (1, 2):
        raise ValueError(f'anchor must be (N, D) or (D,), got shape {tuple(anchor.shape)}')
    margin = check_number('margin', margin, low=0.0)
    p = _check_p(p)
    eps = check_number('eps', eps, low=0.0)
    a, pos, neg = upcast(anchor, positive, negative)
    d_ap = _row_distance(a, pos, p, eps)
    d_an = _row_distance(a, neg, p, eps)
    if swap:
        d_an = torch.minimum(d_an, _row_distance(pos, neg, p, eps))
    loss = (d_ap - d_an + margin).clamp_min(0)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(anchor.dtype)


def _label_masks(labels: Tensor) -> Tuple[Tensor, Tensor]:
    """(N, N) masks: positives (same label, not the anchor itself) and negatives."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _batch_hard(dist: Tensor, pos: Tensor, neg: Tensor, margin: float,
                soft_margin: bool) -> Tuple[Tensor, Tensor]:
    """Per anchor: hinge(farthest positive - nearest negative + margin), 0 where the anchor has
    no positive or no negative; returns (loss (N,), number of anchors with both)."""
    if dist.shape[0] == 0:
        return dist.sum(1), dist.new_zeros(())
    valid = pos.any(1) & neg.any(1)
    d_ap = torch.where(pos, dist, 0.0).max(1).values
    d_an = torch.where(neg, dist, float('inf')).min(1).values
    # The inner where keeps inf (no negative) out of the hinge and so out of backward.
    gap = torch.where(valid, d_ap - torch.where(valid, d_an, d_ap), 0.0)
    loss = torch.where(valid, _hinge(gap + margin, soft_margin), 0.0)
    return loss, valid.sum().to(dist.dtype)


def _batch_all(dist: Tensor, pos: Tensor, neg: Tensor, margin: float,
               soft_margin: bool) -> Tuple[Tensor, Tensor]:
    """loss[a, p, n] = hinge(d(a, p) - d(a, n) + margin) for every valid triplet (p a positive
    and n a negative of a), else 0; returns (loss (N, N, N), number of non-zero terms)."""
    valid = pos[:, :, None] & neg[:, None, :]
    gap = dist[:, :, None] - dist[:, None, :] + margin
    loss = torch.where(valid, _hinge(gap, soft_margin), 0.0)
    return loss, (loss > 0).sum().to(dist.dtype)


#: Elements of the (chunk, N, N) temporaries of :func:`_batch_all_summed`.
BATCH_ALL_CHUNK = 1 << 22


def _batch_all_summed(dist: Tensor, pos: Tensor, neg: Tensor, margin: float,
                      weight: Optional[Tensor],
                      marker: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The hinge form of :func:`_batch_all` summed (per-anchor ``weight``), without keeping
    (N, N, N) tensors for backward. On its active set the hinge is linear, so the sum is
    ``sum_ap d(a, p) k_p(a, p) - sum_an d(a, n) k_n(a, n) + margin sum k_p`` where k_p and k_n
    count the active triplets each pair takes part in, found without gradient in chunks of
    anchors. ``marker`` (N,) is added per anchor before the weight (see
    :func:`mmdet_losses.functional.safe_math.nonfinite_marker`). Returns (the loss summed as
    a (1,) tensor, the number of active triplets)."""
    count_p = torch.zeros_like(dist)
    count_n = torch.zeros_like(dist)
    num = dist.shape[0]
    step = max(1, BATCH_ALL_CHUNK // max(num * num, 1))
    with torch.no_grad():
        for start in range(0, num, step):
            rows = slice(start, start + step)
            d = dist[rows]
            active = (pos[rows, :, None] & neg[rows, None, :]
                      & (d[:, :, None] - d[:, None, :] + margin > 0))
            count_p[rows] = active.sum(2)
            count_n[rows] = active.sum(1)
    per_anchor = (dist * (count_p - count_n) + margin * count_p).sum(1)
    if marker is not None:
        per_anchor = per_anchor + marker
    if weight is not None:
        per_anchor = per_anchor * weight.to(per_anchor.dtype)
    return per_anchor.sum().reshape(1), count_p.sum()


def triplet_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                 reduction: str = 'mean', avg_factor=None, margin: float = 0.3,
                 p: float = 2.0, mining: str = 'batch_hard', soft_margin: bool = False,
                 normalize: bool = False) -> Tensor:
    """Triplet loss with the triplets mined from the labels of a batch.

    With ``d`` the (N, N) distance matrix and ``h(g) = max(0, g)`` (``soft_margin``:
    ``log(1 + exp(g))``):

    - 'batch_hard': per anchor a, ``h(max_{p: y_p = y_a, p != a} d(a, p)
      - min_{n: y_n != y_a} d(a, n) + margin)``; 'mean' averages over the anchors that have a
      positive and a negative (the others give 0).
    - 'batch_all': every valid triplet (a, p, n), ``h(d(a, p) - d(a, n) + margin)``; 'mean'
      averages over the active (non-zero) ones.

    A batch without a valid triplet gives a zero that stays in the graph.

    Args:
        pred: (N, D) embeddings.
        target: (N,) integer labels.
        weight: (N,) per-anchor weight.
        reduction: 'none' gives (N,) per anchor ('batch_hard') or (N, N, N) indexed
            [anchor, positive, negative] ('batch_all'); 'mean' or 'sum'.
        avg_factor: replaces the count of anchors / active triplets in 'mean'.
        margin: >= 0.
        p: the norm order of the distance, >= 1.
        mining: 'batch_hard' or 'batch_all'.
        soft_margin: softplus instead of the hinge.
        normalize: L2-normalise the embeddings first.

    Reference: Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", arXiv:1703.07737, 2017.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.5], [0.0, 0.55]])
        >>> y = torch.tensor([0, 0, 1, 1])
        >>> F.triplet_loss(x, y, margin=0.3, reduction='none')
        tensor([0.8000, 0.8500, 0.0000, 0.0000])
        >>> F.triplet_loss(x, y, margin=0.3, mining='batch_all')
        tensor(0.8000)
    """
    _check_embeddings('pred', pred)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    labels = _check_labels('target', target, pred.shape[0])
    margin, p, mining = check_triplet_params(margin, p, mining)
    x, = upcast(pred)
    # 0 (zero gradient) per anchor with a finite embedding, NaN (NaN gradient) otherwise: the
    # hinge, the masks and the max/min of the mining would hide a NaN or inf embedding
    marker = nonfinite_marker(x, dim=1)
    if normalize:
        x = nnF.normalize(x, dim=1)
    pos, neg = _label_masks(labels.to(x.device))
    dist = _distance_matrix(x, None, p, squared=False)
    if mining == 'batch_hard':
        loss, count = _batch_hard(dist, pos, neg, margin, soft_margin)
        loss = loss + marker
    elif not soft_margin and reduction != 'none' and (
            weight is None or isinstance(weight, Tensor) and weight.shape == labels.shape):
        # the same sum without (N, N, N) tensors in the graph
        loss, count = _batch_all_summed(dist, pos, neg, margin, weight, marker)
        weight = None
    else:
        loss, count = _batch_all(dist, pos, neg, margin, soft_margin)
        loss = loss + marker[:, None, None]
        if isinstance(weight, Tensor) and weight.dim() == 1:  # per anchor
            weight = weight[:, None, None]
    if avg_factor is None and reduction == 'mean':
        avg_factor = count
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


# ---------------------------------------------------------------------------------------------
# contrastive losses
# ---------------------------------------------------------------------------------------------
def _contrastive(sq_dist: Tensor, similar: Tensor, margin: float) -> Tensor:
    """1/2 [y d^2 + (1 - y) max(0, m - d)^2] from squared distances (the similar term needs no
    square root, the dissimilar one takes a root with a zero gradient at 0)."""
    far = (margin - safe_sqrt(sq_dist)).clamp_min(0)
    return 0.5 * (similar * sq_dist + (1 - similar) * far.square())


def contrastive_loss(x1: Tensor, x2: Tensor, similar: Tensor, margin: float = 1.0,
                     weight: Optional[Tensor] = None, reduction: str = 'mean',
                     avg_factor=None) -> Tensor:
    """Contrastive loss of explicit pairs, ``1/2 [y d^2 + (1 - y) max(0, m - d)^2]`` with
    ``d = ||x1 - x2||_2`` and ``y = 1`` for a similar pair, 0 for a dissimilar one.

    Args:
        x1, x2: (..., D) floating tensors of one shape.
        similar: (...,) bool, integer or float (soft labels in [0, 1]).
        margin: m >= 0, the distance beyond which dissimilar pairs cost nothing.
        weight: broadcastable to the per-pair loss (...,).
        reduction: 'none' (per pair), 'mean' or 'sum'.
        avg_factor: divide the summed loss by this ('mean').

    Reference: Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.

    Example:
        >>> x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]]); x2 = torch.tensor([[0.6, 0.8], [0.3, 0.4]])
        >>> F.contrastive_loss(x1, x2, torch.tensor([1, 0]), margin=1.0, reduction='none')
        tensor([0.5000, 0.1250])
    """
    check_tensor('x1', x1, floating=True)
    check_tensor('x2', x2, floating=True)
    check_same_shape('x1', x1, 'x2', x2)
    if x1.dim() < 1:
        raise ValueError(f'x1 must have a feature dimension, got shape {tuple(x1.shape)}')
    check_loss_tensors(x1=x1, x2=x2, similar=similar, weight=weight)
    if similar.shape != x1.shape[:-1]:
        raise ValueError(f'similar must have shape {tuple(x1.shape[:-1])} (x1 without its '
                         f'last dim), got {tuple(similar.shape)}')
    margin = check_contrastive_margin(margin)
    a, b = upcast(x1, x2)
    sq_dist = (a - b).square().sum(-1)
    loss = _contrastive(sq_dist, similar.to(sq_dist.dtype), margin)
    # NaN/inf in x1, x2 or a soft label: NaN loss and gradient (the hinge would hide it)
    loss = with_nonfinite(with_nonfinite(loss, a, b, dim=-1), similar.detach())
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(x1.dtype)


def pairwise_contrastive_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                              reduction: str = 'mean', avg_factor=None,
                              margin: float = 1.0) -> Tensor:
    """Contrastive loss over every pair i < j of a batch, similar where the labels agree:
    ``1/2 [y_ij d_ij^2 + (1 - y_ij) max(0, m - d_ij)^2]``, averaged over the N (N - 1) / 2
    pairs. A batch of fewer than 2 gives a zero that stays in the graph.

    Args:
        pred: (N, D) embeddings.
        target: (N,) integer labels.
        weight: broadcastable to the per-pair loss, (N (N - 1) / 2,) in the order of
            ``torch.triu_indices(N, N, 1)``.
        reduction: 'none' (per pair, that order), 'mean' or 'sum'.
        avg_factor: divide the summed loss by this ('mean').
        margin: m >= 0.

    Reference: Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.6, 0.8], [0.3, 0.4]])
        >>> F.pairwise_contrastive_loss(x, torch.tensor([0, 0, 1]), reduction='none')
        tensor([0.5000, 0.1250, 0.1250])
    """
    _check_embeddings('pred', pred)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    labels = _check_labels('target', target, pred.shape[0])
    margin = check_contrastive_margin(margin)
    x, = upcast(pred)
    i, j = torch.triu_indices(x.shape[0], x.shape[0], 1, device=x.device)
    sq_dist = _distance_matrix(x, None, 2.0, squared=True)[i, j]
    labels = labels.to(x.device)
    loss = _contrastive(sq_dist, (labels[i] == labels[j]).to(x.dtype), margin)
    # a pair with a NaN/inf embedding: NaN loss and gradient (see nonfinite_marker)
    row = (x - x).sum(1)
    loss = with_nonfinite(loss, row[i] + row[j])
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


# ---------------------------------------------------------------------------------------------
# center loss
# ---------------------------------------------------------------------------------------------
def center_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                reduction: str = 'mean', avg_factor=None, *, centers: Tensor) -> Tensor:
    """Center loss, per sample ``1/2 ||x_i - c_{y_i}||^2``; 'mean' gives
    ``1/2 mean_i ||x_i - c_{y_i}||^2``. Gradients reach both the features and the centres.

    Args:
        pred: (N, D) features.
        target: (N,) integer labels in [0, C).
        weight: broadcastable to the per-sample loss (N,).
        reduction: 'none' (per sample), 'mean' or 'sum'.
        avg_factor: divide the summed loss by this ('mean').
        centers: (C, D) class centres (keyword only).

    Reference: Wen et al., "A Discriminative Feature Learning Approach for Deep Face
    Recognition", ECCV 2016.

    Example:
        >>> centers = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> x = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
        >>> F.center_loss(x, torch.tensor([0, 1]), centers=centers, reduction='none')
        tensor([12.5000,  0.5000])
    """
    _check_embeddings('pred', pred)
    _check_embeddings('centers', centers)
    check_loss_tensors(pred=pred, target=target, weight=weight, centers=centers)
    if centers.shape[1] != pred.shape[1]:
        raise ValueError(f'centers must have {pred.shape[1]} columns (the feature dim of '
                         f'pred), got {centers.shape[1]}')
    labels = _check_labels('target', target, pred.shape[0], num_classes=centers.shape[0])
    dtype = compute_dtype(pred)
    x, c = pred.to(dtype), centers.to(dtype)
    loss = 0.5 * (x - c[labels.to(c.device)]).square().sum(1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
