"""Re-weighting classification and regression losses with running statistics: Seesaw
(long-tailed class counts), GHM-C and GHM-R (gradient-density histograms), Equalization
Loss v2 (accumulated positive and negative gradients).

Each functional form takes its statistics as tensors and returns the loss; the ``update_*``
helpers compute the new statistics. Both run on the device without a host synchronisation
(no ``.item()``, no data-dependent Python branch), and a batch with a NaN or infinite input
never changes the statistics (:func:`finite_batch` decides it on the device), so one bad
batch cannot poison the later ones. Half-precision inputs are computed in float32 and the
result is returned in the input dtype.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as TF
from torch import Tensor

from ..reduction import AVG_FACTOR_EPS, check_avg_factor, check_weight, reduce_weighted_sum
from ..validation import (check_int, check_labels, check_loss_tensors, check_number,
                          check_reduction, check_same_shape, check_tensor, compute_dtype)
from .cls_common import check_scores, check_unit_interval, is_index_target
from .safe_math import nan_if_nonfinite

__all__ = ['seesaw_loss', 'ghmc_loss', 'ghmr_loss', 'eqlv2_loss']


# ------------------------------------------------------------------------------ shared
def finite_batch(*tensors: Optional[Tensor]) -> Tensor:
    """A bool scalar tensor: every floating tensor given is finite (no host sync)."""
    ok = None
    for t in tensors:
        if t is None or not t.is_floating_point():
            continue
        f = torch.isfinite(t).all()
        ok = f if ok is None else ok & f
    return torch.ones((), dtype=torch.bool) if ok is None else ok


def all_reduce_if_distributed(t: Tensor, sync: bool) -> Tensor:
    """Sum ``t`` over the process group in place when ``sync`` and torch.distributed is
    initialised (a collective: every rank must make the same calls)."""
    if sync and dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


# ------------------------------------------------------------------------------ Seesaw
def check_seesaw_inputs(pred: Tensor, target: Tensor, weight: Optional[Tensor]) -> int:
    """Check Seesaw's pred (N, C + 2), labels (N,) in [0, C] and weight (N,); return C."""
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_scores(pred)
    num_classes = pred.shape[1] - 2
    if num_classes < 1:
        raise ValueError(f'pred must be (N, C + 2) scores (C classes, then objectness '
                         f'positive and negative), got shape {tuple(pred.shape)}')
    if target.shape != pred.shape[:1]:
        raise ValueError(f'target must be class labels of shape {tuple(pred.shape[:1])}, got '
                         f'{tuple(target.shape)}')
    check_labels(target, num_classes)
    if weight is not None:
        check_tensor('weight', weight)
        if weight.shape != target.shape:
            raise ValueError(f'weight must have the shape of target {tuple(target.shape)}, '
                             f'got {tuple(weight.shape)}')
    return num_classes


def class_counts(labels: Tensor, num_bins: int, keep: Tensor) -> Tensor:
    """float32 counts of each label in ``[0, num_bins)`` (a scatter, no host sync), zero
    unless ``keep`` (a bool scalar tensor)."""
    counts = torch.zeros(num_bins, dtype=torch.float32, device=labels.device)
    counts.index_add_(0, labels.reshape(-1).long(),
                      torch.ones(labels.numel(), dtype=torch.float32, device=labels.device))
    return torch.where(keep, counts, torch.zeros_like(counts))


def check_seesaw_params(p, q, eps) -> Tuple[float, float, float]:
    """Seesaw's exponents ``p``, ``q`` (>= 0) and ``eps`` (> 0) checked."""
    return (check_number('p', p, low=0.0), check_number('q', q, low=0.0),
            check_number('eps', eps, low=0.0, low_open=True))


def seesaw_loss_parts(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                      reduction: str = 'mean', avg_factor=None, *, cum_samples: Tensor,
                      p: float = 0.8, q: float = 2.0, eps: float = 1e-2
                      ) -> Tuple[Tensor, Tensor]:
    """Seesaw's two terms ``(loss_classes, loss_objectness)``: see :func:`seesaw_loss`."""
    reduction = check_reduction(reduction)
    p, q, eps = check_seesaw_params(p, q, eps)
    num_classes = check_seesaw_inputs(pred, target, weight)
    check_tensor('cum_samples', cum_samples, floating=True)
    if cum_samples.numel() < num_classes:
        raise ValueError(f'cum_samples must hold at least C = {num_classes} counts, got '
                         f'shape {tuple(cum_samples.shape)}')
    if avg_factor is not None:
        check_avg_factor(avg_factor, pred.device)
    dtype = compute_dtype(pred)
    x = pred.to(dtype)
    w = None if weight is None else weight.to(dtype)
    logits, objectness = x[:, :num_classes], x[:, num_classes:]
    positive = target < num_classes
    labels = torch.where(positive, target, torch.zeros_like(target)).long()
    onehot = TF.one_hot(labels, num_classes).to(dtype)

    # log of the Seesaw factor S_ij (j != y_i), added to the other classes' logits
    log_factor = torch.zeros_like(logits)
    if p > 0:  # mitigation: (N_j / N_i)^p where class j is rarer than i
        counts = cum_samples[:num_classes].to(dtype).clamp(min=1)
        ratio = counts[None, :] / counts[labels][:, None]
        log_factor = log_factor + p * ratio.log().clamp(max=0)
    if q > 0:  # compensation: (s_j / s_i)^q where j scores above the true class i
        scores = torch.softmax(logits.detach(), dim=1)
        own = scores.gather(1, labels[:, None]).clamp(min=eps)
        log_factor = log_factor + q * (scores / own).log().clamp(min=0)
    adjusted = logits + log_factor * (1 - onehot)
    ce = TF.cross_entropy(adjusted, labels, reduction='none')
    classes = torch.where(positive, ce, torch.zeros_like(ce))
    obj = TF.cross_entropy(objectness, (target == num_classes).long(), reduction='none')
    # a NaN/inf anywhere in a row (the class logits of a negative too) shows in its loss
    obj = nan_if_nonfinite(obj, x, dim=1)
    if w is not None:
        classes, obj = classes * w, obj * w
    if reduction == 'none':
        loss_classes, loss_obj = classes, obj
    elif reduction == 'mean' and avg_factor is None:
        # mmdet's mean over the positive samples (0 without any)
        num_pos = positive.sum().clamp(min=1).to(dtype)
        loss_classes = classes.sum() / num_pos
        loss_obj = reduce_weighted_sum(obj.sum(), obj.numel(), 'mean')
    else:
        loss_classes = reduce_weighted_sum(classes.sum(), classes.numel(), reduction,
                                           avg_factor)
        loss_obj = reduce_weighted_sum(obj.sum(), obj.numel(), reduction, avg_factor)
    return loss_classes.to(pred.dtype), loss_obj.to(pred.dtype)


def seesaw_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                reduction: str = 'mean', avg_factor=None, *, cum_samples: Tensor,
                p: float = 0.8, q: float = 2.0, eps: float = 1e-2) -> Tensor:
    """Seesaw loss with mmdet's objectness split: ``loss_classes + loss_objectness``.

    ``pred`` (N, C + 2) holds C class logits, then two objectness logits (foreground,
    background); labels ``y`` are in [0, C] with C the background. The objectness term is the
    softmax cross-entropy of the last two logits against "background or not", over every
    sample. The class term, over the foreground samples only, is the cross-entropy of the
    class logits with every other class's logit ``z_j`` raised by ``log S_ij``::

        L_i = -log( e^{z_i} / (e^{z_i} + sum_{j != i} S_ij e^{z_j}) ),   S_ij = M_ij C_ij
        M_ij = (N_j / N_i)^p if N_j < N_i else 1     (mitigation; N the class counts,
                                                      clamped to >= 1)
        C_ij = (s_j / max(s_i, eps))^q if s_j > s_i else 1  (compensation; s the softmax
                                                             of the logits, detached)

    ``cum_samples`` holds the counts ``N`` (at least C entries; the class module keeps the
    cumulative counts, background included as entry C). 'mean' averages the class term over
    the foreground samples (0 without any) and the objectness term over all, as mmdet;
    with ``avg_factor`` both are ``sum / (avg_factor + eps)``. ``reduction='none'`` gives (N,)
    per-sample losses (class term 0 for background samples).

    Reference: Wang et al., "Seesaw Loss for Long-Tailed Instance Segmentation", CVPR 2021,
    arXiv 2008.10032.

    Example:
        >>> pred = torch.tensor([[2.0, 1.0, 0.5, -0.5], [0.0, 0.0, -1.0, 1.0]])
        >>> counts = torch.tensor([100.0, 10.0])
        >>> F.seesaw_loss(pred, torch.tensor([0, 2]), cum_samples=counts)
        tensor(0.2768)
    """
    classes, objectness = seesaw_loss_parts(pred, target, weight, reduction, avg_factor,
                                            cum_samples=cum_samples, p=p, q=q, eps=eps)
    return classes + objectness


# ------------------------------------------------------------------------------ GHM
def check_ghm_args(bins, momentum) -> Tuple[int, float]:
    """``bins`` an int >= 1, ``momentum`` in [0, 1) (1 would never move the counts off 0)."""
    bins = check_int('bins', bins)
    if bins < 1:
        raise ValueError(f'bins must be >= 1, got {bins}')
    momentum = check_number('momentum', momentum, low=0.0, high=1.0, high_open=True)
    return bins, momentum


def ghm_edges(bins: int, last: float, device=None) -> Tensor:
    """mmdet's float32 bin edges ``i / bins`` with the last one replaced by ``last``."""
    edges = torch.arange(bins + 1, dtype=torch.float32, device=device) / bins
    edges[-1] = last
    return edges


def ghm_weights(g: Tensor, valid: Tensor, total: Tensor, edges: Tensor, momentum: float,
                acc_sum: Optional[Tensor], update: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
    """GHM's per-element weights ``total / (n_bins * count(bin of g))`` and the new
    ``acc_sum``, with tensor operations only (no loop over bins, no host sync).

    An element is counted in bin ``i`` where ``edges[i] <= g < edges[i + 1]`` and ``valid``
    (a NaN ``g`` is in no bin: weight 0). ``n_bins`` is the number of non-empty bins; an
    empty bin gets weight 0 (never ``total / 0``). With ``momentum`` the count is the moving
    average ``acc_sum <- momentum acc_sum + (1 - momentum) count``, updated for the non-empty
    bins only, and only where ``update`` (a bool scalar tensor) is true.
    """
    bins = edges.numel() - 1
    edges = edges.to(g.dtype)
    index = torch.bucketize(g.detach(), edges, right=True) - 1
    in_bin = valid & torch.isfinite(g) & (index >= 0) & (index < bins)
    index = torch.where(in_bin, index, torch.full_like(index, bins))  # bins: the discard slot
    counts = torch.zeros(bins + 1, dtype=torch.float32, device=g.device)
    counts.scatter_add_(0, index.reshape(-1), torch.ones(index.numel(), dtype=torch.float32,
                                                         device=g.device))
    counts = counts[:bins]
    filled = counts > 0
    new_acc = None
    if momentum > 0:
        acc = acc_sum.to(torch.float32)
        moved = momentum * acc + (1 - momentum) * counts
        new_acc = torch.where(filled & update, moved, acc)
        density = torch.where(filled, moved, torch.ones_like(moved))
    else:
        density = torch.where(filled, counts, torch.ones_like(counts))
    n_filled = filled.sum().clamp(min=1).to(g.dtype)
    per_bin = torch.where(filled, total.to(g.dtype) / density.to(g.dtype),
                          torch.zeros((), dtype=g.dtype, device=g.device)) / n_filled
    per_bin = torch.cat((per_bin, per_bin.new_zeros(1)))
    return per_bin[index], new_acc


def _ghm_reduce(loss: Tensor, reduction: str, total: Tensor) -> Tensor:
    """'mean' is ``sum / (total + eps)`` (mmdet's avg_factor = total), 'sum' the sum."""
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    # a NaN/inf weight makes total non-finite: the loss is then NaN, not a refusal
    return loss.sum() / (total.to(loss.dtype) + AVG_FACTOR_EPS)


def ghmc_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, *, bins: int = 10,
              momentum: float = 0.0, acc_sum: Optional[Tensor] = None,
              update: bool = False) -> Tensor:
    """Gradient Harmonizing Mechanism classification loss (GHM-C): sigmoid binary
    cross-entropy weighted by the inverse density of the gradient norm ``g = |sigmoid(x) -
    t|`` (detached)::

        L = sum_k beta_k BCE(x_k, t_k) w_k / T,   beta_k = T / (n GD(g_k))

    ``GD(g)`` is the number of valid elements in g's bin (``bins`` equal bins of [0, 1]; with
    ``momentum``, the moving average ``acc_sum`` of it), ``n`` the number of non-empty bins,
    ``T`` the number of valid elements (``weight != 0``; at least 1). ``avg_factor`` is checked
    but, as in mmdet, not used: the normalisation is ``T``. 'sum' gives the weighted sum (mmdet
    raises), 'none' the weighted element-wise loss.

    Args:
        pred: logits (N, C).
        target: binary targets of pred's shape, or class indices (N,) with C the background
            (expanded to one-hot, as mmdet).
        weight: (N,) or pred's shape; 0 marks an ignored element. It multiplies the loss (mmdet
            uses it as a 0/1 mask only: the same for 0/1 weights).
        bins: number of bins of g.
        momentum: of the moving average, in [0, 1); 0: this batch's counts.
        acc_sum: (bins,) moving-average counts, updated in place when ``update``.
        update: write the new counts into ``acc_sum`` (training).

    Reference: Li et al., "Gradient Harmonized Single-stage Detector", AAAI 2019,
    arXiv 1811.05181.

    Example:
        >>> pred = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
        >>> F.ghmc_loss(pred, torch.tensor([0, 2]), bins=4)
        tensor(1.1157)
    """
    reduction = check_reduction(reduction)
    bins, momentum = check_ghm_args(bins, momentum)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_tensor('pred', pred, floating=True)
    if avg_factor is not None:
        check_avg_factor(avg_factor, pred.device)
    if momentum > 0:
        _check_state('acc_sum', acc_sum, (bins,))
    dtype = compute_dtype(pred)
    x = pred.to(dtype)
    if pred.dim() == 2 and is_index_target(pred, target):
        check_labels(target, pred.shape[1])
        t = TF.one_hot(target.long(), pred.shape[1] + 1)[:, :-1].to(dtype)
        if weight is not None and weight.shape == target.shape:
            weight = weight[:, None]
    else:
        check_same_shape('pred', pred, 'target', target)
        check_unit_interval('target', target)
        t = target.to(dtype)
    w = torch.ones_like(x) if weight is None else \
        check_weight(weight, x).to(dtype).expand_as(x)
    clean = finite_batch(pred, target, weight)
    valid = w != 0
    total = valid.sum().clamp(min=1)
    g = (torch.sigmoid(x.detach()) - t).abs()
    beta, new_acc = ghm_weights(g, valid, total, ghm_edges(bins, 1 + 1e-6, x.device),
                                momentum, acc_sum, clean)
    if update and new_acc is not None:
        acc_sum.copy_(new_acc)
    loss = TF.binary_cross_entropy_with_logits(x, t, reduction='none') * beta * w
    loss = nan_if_nonfinite(loss, x, t, w)
    return _ghm_reduce(loss, reduction, total).to(pred.dtype)


def ghmr_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, *, mu: float = 0.02, bins: int = 10,
              momentum: float = 0.0, acc_sum: Optional[Tensor] = None,
              update: bool = False) -> Tensor:
    """Gradient Harmonizing Mechanism regression loss (GHM-R): the Authentic Smooth L1
    ``ASL1(d) = sqrt(d^2 + mu^2) - mu`` of ``d = pred - target``, weighted by the inverse
    density of its gradient norm ``g = |d| / sqrt(d^2 + mu^2)`` (detached)::

        L = sum_k beta_k ASL1(d_k) w_k / T,   beta_k = T / (n GD(g_k))

    as :func:`ghmc_loss`, with ``T = max(sum |w|, 1)`` (mmdet's ``max(sum w, 1)`` for the
    usual non-negative weights) and ``bins`` bins of [0, 1) (the last one open-ended).
    ``avg_factor`` is checked but, as in mmdet, not used.

    Args:
        pred, target: regression values (..., 4), any equal shapes.
        weight: pred's shape or broadcastable; 0 marks an ignored element.
        mu: the ASL1 smoothing, > 0.
        bins, momentum, acc_sum, update: as in :func:`ghmc_loss`.

    Reference: Li et al., "Gradient Harmonized Single-stage Detector", AAAI 2019,
    arXiv 1811.05181.

    Example:
        >>> pred = torch.tensor([[0.1, 0.0, -0.5, 0.02]])
        >>> F.ghmr_loss(pred, torch.zeros(1, 4), mu=0.02, bins=4)
        tensor(0.0965)
    """
    reduction = check_reduction(reduction)
    bins, momentum = check_ghm_args(bins, momentum)
    mu = check_ghmr_mu(mu)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target, floating=True)
    check_same_shape('pred', pred, 'target', target)
    if avg_factor is not None:
        check_avg_factor(avg_factor, pred.device)
    if momentum > 0:
        _check_state('acc_sum', acc_sum, (bins,))
    dtype = compute_dtype(pred)
    x, t = pred.to(dtype), target.to(dtype)
    w = torch.ones_like(x) if weight is None else \
        check_weight(weight, x).to(dtype).expand_as(x)
    clean = finite_batch(pred, target, weight)
    d = x - t
    root = torch.sqrt(d * d + mu * mu)
    asl1 = d * d / (root + mu)  # sqrt(d^2 + mu^2) - mu without the cancellation
    valid = w != 0
    total = w.abs().sum().clamp(min=1)
    g = (d / root).abs().detach()
    beta, new_acc = ghm_weights(g, valid, total, ghm_edges(bins, 1e3, x.device), momentum,
                                acc_sum, clean)
    if update and new_acc is not None:
        acc_sum.copy_(new_acc)
    loss = nan_if_nonfinite(asl1 * beta * w, x, t, w)
    return _ghm_reduce(loss, reduction, total).to(pred.dtype)


def _check_state(name: str, state, shape) -> None:
    check_tensor(name, state, floating=True)
    if tuple(state.shape) != tuple(shape):
        raise ValueError(f'{name} must have shape {tuple(shape)}, got {tuple(state.shape)}')


# ------------------------------------------------------------------------------ EQLv2
def check_ghmr_mu(mu) -> float:
    """GHM-R's ASL1 smoothing ``mu`` checked (> 0)."""
    return check_number('mu', mu, low=0.0, low_open=True)


def check_eqlv2_params(gamma, mu, alpha) -> Tuple[float, float, float]:
    """EQLv2's ``gamma``, ``mu`` and ``alpha`` checked (finite numbers)."""
    return check_number('gamma', gamma), check_number('mu', mu), check_number('alpha', alpha)


def check_eqlv2_inputs(pred: Tensor, target: Tensor, weight: Optional[Tensor]) -> int:
    """Check EQLv2's pred (N, C + 1), labels (N,) in [0, C] and weight; return C."""
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_scores(pred)
    if target.shape != pred.shape[:1]:
        raise ValueError(f'target must be class labels of shape {tuple(pred.shape[:1])}, got '
                         f'{tuple(target.shape)}')
    num_classes = pred.shape[1] - 1
    check_labels(target, num_classes)
    return num_classes


def eqlv2_weights(pos_neg: Tensor, gamma: float, mu: float, alpha: float,
                  dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """EQLv2's per-class (positive, negative) weights (C + 1,) from the accumulated ratio
    ``pos_neg`` (C,): ``q = sigmoid(gamma (pos_neg - mu))`` and 1 for the background column,
    ``r = 1 + alpha (1 - q)``."""
    q = torch.sigmoid(gamma * (pos_neg.to(dtype) - mu))
    neg = torch.cat((q, q.new_ones(1)))
    return 1 + alpha * (1 - neg), neg


def eqlv2_gradient_stats(pred: Tensor, target: Tensor, weight: Tensor) -> Tuple[Tensor, Tensor]:
    """The (positive, negative) gradient magnitudes of this batch per class (C,), float32:
    ``sum_i |dBCE/dx_ij| w_ij`` over the samples whose target of class j is 1 (0), the
    background column left out (no grad)."""
    with torch.no_grad():
        t = target.float()
        grad = (torch.sigmoid(pred.float()) - t).abs() * weight.float()
        return (grad * t).sum(0)[:-1], (grad * (1 - t)).sum(0)[:-1]


def eqlv2_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
               reduction: str = 'mean', avg_factor=None, *, pos_neg: Tensor,
               gamma: float = 12.0, mu: float = 0.8, alpha: float = 4.0) -> Tensor:
    """Equalization Loss v2: sigmoid BCE over C + 1 columns (the last one the background,
    label C) with per-class weights from the accumulated gradient ratio ``pos_neg``::

        L = sum_ij w_ij BCE(x_ij, t_ij) / N,   w_ij = r_j t_ij + q_j (1 - t_ij)
        q_j = sigmoid(gamma (pos_neg_j - mu)) (1 for the background),  r_j = 1 + alpha (1 - q_j)

    A rare class (few positive gradients against many negative ones: small ``pos_neg``) gets
    its negative gradients damped and its positive ones raised. ``weight`` (N,) or (N, C + 1)
    multiplies the loss; 'mean' divides by N (mmdet's), ``avg_factor`` is checked but, as in
    mmdet, not used; 'none' gives the (N, C + 1) element-wise loss.

    Reference: Tan et al., "Equalization Loss v2: A New Gradient Balance Approach for
    Long-tailed Object Detection", CVPR 2021, arXiv 2012.08548.

    Example:
        >>> pred = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
        >>> F.eqlv2_loss(pred, torch.tensor([0, 2]), pos_neg=torch.tensor([100.0, 0.5]))
        tensor(1.9822)
    """
    reduction = check_reduction(reduction)
    gamma, mu, alpha = check_eqlv2_params(gamma, mu, alpha)
    num_classes = check_eqlv2_inputs(pred, target, weight)
    check_tensor('pos_neg', pos_neg, floating=True)
    if pos_neg.shape != (num_classes,):
        raise ValueError(f'pos_neg must have shape ({num_classes},) for pred of '
                         f'{num_classes + 1} columns, got {tuple(pos_neg.shape)}')
    if avg_factor is not None:
        check_avg_factor(avg_factor, pred.device)
    dtype = compute_dtype(pred)
    x = pred.to(dtype)
    t = TF.one_hot(target.long(), num_classes + 1).to(dtype)
    pos_w, neg_w = eqlv2_weights(pos_neg, gamma, mu, alpha, dtype)
    loss = TF.binary_cross_entropy_with_logits(x, t, reduction='none') * (
        pos_w * t + neg_w * (1 - t))
    loss = nan_if_nonfinite(loss, x)  # +-inf logits: BCE's gradient alone stays finite
    if weight is not None:
        w = weight.to(dtype)
        loss = loss * check_weight(w[:, None] if w.shape == target.shape else w, loss)
    if reduction == 'none':
        return loss.to(pred.dtype)
    total = loss.sum()
    if reduction == 'mean':
        total = total / max(pred.shape[0], 1)
    return total.to(pred.dtype)
