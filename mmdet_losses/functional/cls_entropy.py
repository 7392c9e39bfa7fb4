"""Cross-entropy losses: softmax, sigmoid (binary), mask-head, class-balanced, and KL
distillation.

Half-precision inputs are computed in float32 and the result is returned in the input dtype.
"""
from numbers import Number
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as TF
from torch import Tensor

from ..reduction import check_weight, weight_reduce_loss
from ..validation import (check_int, check_labels, check_loss_tensors, check_number,
                          check_numbers, check_reduction, check_same_shape, check_tensor,
                          reads_values, upcast)
from .cls_common import (check_class_vector, check_scores, check_unit_interval,
                         is_index_target, per_anchor_weight)
from .safe_math import nan_if_nonfinite

__all__ = ['cross_entropy_loss', 'binary_cross_entropy_loss', 'mask_cross_entropy_loss',
           'balanced_cross_entropy_loss', 'kl_div_loss']

ClassVector = Optional[Union[Sequence[float], Tensor]]


# Parameter checks shared with the loss classes (mmdet_losses.losses.classification), which
# run them once in __init__; the functional forms run them on every call.
def check_ignore_index(ignore_index: Optional[int]) -> int:
    """The label of ignored samples checked (an int); None means -100, as in mmdet."""
    return -100 if ignore_index is None else check_int('ignore_index', ignore_index)


def check_label_smoothing(label_smoothing) -> float:
    return check_number('label_smoothing', label_smoothing, low=0.0, high=1.0)


def check_effective_beta(beta: Optional[float]) -> Optional[float]:
    """The effective-number parameter, None or in [0, 1)."""
    return None if beta is None else check_number('beta', beta, low=0.0, high=1.0,
                                                  high_open=True)


def check_temperature(temperature) -> float:
    return check_number('temperature', temperature, low=0.0, low_open=True)


def cross_entropy_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                       reduction: str = 'mean', avg_factor=None,
                       class_weight: ClassVector = None, ignore_index: Optional[int] = -100,
                       avg_non_ignore: bool = False, label_smoothing: float = 0.0,
                       use_sigmoid: bool = False, use_mask: bool = False) -> Tensor:
    """Softmax cross-entropy, ``-class_weight[y] * log softmax(pred)[y]`` per sample.

    mmdet's ``CrossEntropyLoss`` semantics: the per-sample loss (0 where ``target`` is
    ``ignore_index``) is weighted by ``weight`` and reduced by :func:`weight_reduce_loss`, so
    'mean' divides by the number of samples, ignored ones included, unless ``avg_non_ignore``
    (then by the non-ignored count, as ``torch.nn.functional.cross_entropy`` does without class
    weights). ``label_smoothing`` is ``torch.nn.functional.cross_entropy``'s.
    ``use_sigmoid=True`` computes :func:`binary_cross_entropy_loss` instead, with
    ``class_weight`` as its ``pos_weight``, exactly as mmdet's ``CrossEntropyLoss`` does.
    ``use_mask=True`` computes :func:`mask_cross_entropy_loss` instead, and then, as in mmdet's
    ``CrossEntropyLoss(use_mask=True)``, the third argument (``weight``) is the RoIs' class
    labels ``label`` (N,), not a weight; ``avg_non_ignore`` has no effect there (no element is
    ignored) and ``label_smoothing`` must be 0.

    Args:
        pred: logits (N, C) or (N, C, d1, ...).
        target: class indices (N,) or (N, d1, ...), or class probabilities of pred's shape.
        class_weight: C weights, one per class.
        ignore_index: the label whose samples are skipped (None means -100, as mmdet).
        avg_non_ignore: average over the non-ignored samples only ('mean' without avg_factor).
        label_smoothing: in [0, 1].
        use_sigmoid: compute the binary (sigmoid) cross-entropy, see above.
        use_mask: compute the mask-head cross-entropy, see above (not with ``use_sigmoid``).

    Returns:
        The reduced loss, or with ``reduction='none'`` the per-sample loss of target's shape.

    Example:
        >>> F.cross_entropy_loss(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]))
        tensor(0.4100)
    """
    ignore_index = check_ignore_index(ignore_index)
    if use_mask:
        check_mask_options(use_sigmoid=use_sigmoid, label_smoothing=label_smoothing)
        return mask_cross_entropy_loss(pred, target, weight, reduction, avg_factor,
                                       class_weight=class_weight, ignore_index=ignore_index)
    if use_sigmoid:
        if label_smoothing != 0.0:
            raise ValueError(f'label_smoothing must be 0 with use_sigmoid=True, '
                             f'got {label_smoothing}')
        return binary_cross_entropy_loss(pred, target, weight, reduction, avg_factor,
                                         pos_weight=class_weight, ignore_index=ignore_index,
                                         avg_non_ignore=avg_non_ignore)
    check_scores(pred, dims=tuple(range(2, 8)))
    check_loss_tensors(pred=pred, target=target, weight=weight)
    label_smoothing = check_label_smoothing(label_smoothing)
    (logits,) = upcast(pred)
    class_weight = check_class_vector('class_weight', class_weight, pred.shape[1], logits)
    if is_index_target(pred, target):
        check_labels(target, pred.shape[1] - 1, ignore_index=ignore_index)
        loss = TF.cross_entropy(logits, target.long(), weight=class_weight, reduction='none',
                                ignore_index=ignore_index, label_smoothing=label_smoothing)
        if avg_non_ignore and avg_factor is None and reduction == 'mean':
            avg_factor = (target != ignore_index).sum()  # a tensor: no host sync
        # A sample that is not ignored with a NaN or inf logit: NaN loss and gradient. NaN and
        # +inf are NaN/inf through the log-softmax by themselves; -inf is hidden by
        # exp(-inf) = 0, and the row's minimum (one cheap reduction) shows it.
        loss = nan_if_nonfinite(loss, logits.detach().amin(1), mask=target != ignore_index)
    else:
        loss = TF.cross_entropy(logits, target.to(logits.dtype), weight=class_weight,
                                reduction='none', label_smoothing=label_smoothing)
        # (a NaN or inf soft target is NaN or inf in value and gradient by itself)
        loss = nan_if_nonfinite(loss, logits, dim=1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def _binary_targets(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                    ignore_index: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Dense float targets of pred's shape, the valid-element mask and the weight in a shape
    that broadcasts to pred. Class indices (N,) for pred (N, C) become one-hot rows where label
    C (background) is a row of zeros and ``ignore_index`` (or any negative label) masks the
    row out, as mmdet's ``binary_cross_entropy`` expands them (by a scatter, no host sync)."""
    if is_index_target(pred, target):
        if pred.dim() != 2:
            raise ValueError(f'pred must be 2-D (N, C) for class-index targets, got shape '
                             f'{tuple(pred.shape)}')
        num_classes = pred.shape[1]
        check_labels(target, num_classes, ignore_index=ignore_index)
        valid = (target >= 0) & (target != ignore_index)
        column = torch.where(valid & (target < num_classes), target, num_classes).long()
        dense = pred.new_zeros(pred.shape[0], num_classes + 1)
        dense = dense.scatter_(1, column.unsqueeze(1), 1.0)[:, :num_classes]
        return dense, valid.unsqueeze(1), per_anchor_weight(weight, pred.shape)
    check_unit_interval('target', target, ignore_index=ignore_index)
    valid = (target >= 0) & (target != ignore_index)
    return target.to(pred.dtype), valid, per_anchor_weight(weight, pred.shape)


def binary_cross_entropy_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                              reduction: str = 'mean', avg_factor=None,
                              pos_weight: Optional[Union[Number, Sequence[float], Tensor]] = None,
                              class_weight: ClassVector = None,
                              ignore_index: Optional[int] = -100,
                              avg_non_ignore: bool = False) -> Tensor:
    """Sigmoid binary cross-entropy per element,
    ``-class_weight_c * (pos_weight_c * t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))``.

    Targets are one-hot or soft targets of pred's shape, or for pred (N, C) class indices (N,)
    where label C is background (all-zero row), expanded as mmdet's
    ``CrossEntropyLoss(use_sigmoid=True)`` does, with the same values: rows (or, for dense
    targets, elements) whose target is ``ignore_index`` get weight 0 (other values outside
    [0, 1] are a ValueError, checked on CPU tensors; unchecked on an accelerator, a negative
    target is ignored as in mmdet), and
    ``avg_non_ignore`` averages over the remaining elements.

    Args:
        pred: logits of any shape; (N, C) for class-index targets.
        target: see above.
        weight: per element, or per sample (N,) for (N, C) logits.
        pos_weight: a number or C numbers weighting the positive term
            (``torch.nn.functional.binary_cross_entropy_with_logits``'s ``pos_weight``).
        class_weight: C numbers multiplying the loss of each class.
        ignore_index: label of ignored samples (None means -100).
        avg_non_ignore: 'mean' without avg_factor averages over non-ignored elements.

    Returns:
        The reduced loss, or the element-wise loss of pred's shape.

    Example:
        >>> F.binary_cross_entropy_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([1]),
        ...                             reduction='none')
        tensor([[0.6931, 0.1269]])
    """
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    ignore_index = check_ignore_index(ignore_index)
    (logits,) = upcast(pred)
    dense, valid, weight = _binary_targets(logits, target, weight, ignore_index)
    if weight is not None:
        check_weight(weight, logits)
    num_classes = pred.shape[-1] if pred.dim() else 1
    if pos_weight is not None and not isinstance(pos_weight, Number):
        pos_weight = check_class_vector('pos_weight', pos_weight, num_classes, logits)
    elif pos_weight is not None:
        pos_weight = logits.new_tensor(check_number('pos_weight', pos_weight, low=0.0))
    class_weight = check_class_vector('class_weight', class_weight, num_classes, logits)
    loss = TF.binary_cross_entropy_with_logits(logits, dense, pos_weight=pos_weight,
                                               reduction='none')
    if class_weight is not None:
        loss = loss * class_weight
    # NaN/inf logits: NaN loss and gradient (sigmoid(+-inf) - t is finite); a NaN or inf
    # target is non-finite in value and gradient by itself
    loss = nan_if_nonfinite(loss, logits)
    mask = valid.to(logits.dtype)
    if avg_non_ignore and avg_factor is None and reduction == 'mean':
        avg_factor = mask.expand_as(loss).sum()
    weight = mask if weight is None else weight.to(logits.dtype) * mask
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def check_mask_options(*, use_sigmoid: bool = False, reduction: str = 'mean',
                       avg_factor=None, ignore_index: Optional[int] = None,
                       label_smoothing: float = 0.0) -> None:
    """Raise a ValueError, naming the argument, for an option that mmdet's mask cross-entropy
    does not support (mmdet asserts on each): ``use_sigmoid``, a ``reduction`` other than
    'mean', an ``avg_factor``, an ``ignore_index`` (None, or -100 which means None here and
    which no valid label equals) and, ours only, ``label_smoothing``."""
    if use_sigmoid:
        raise ValueError('use_sigmoid must be False with use_mask=True (mmdet\'s '
                         'CrossEntropyLoss allows one of the two), got use_sigmoid=True')
    check_reduction(reduction)
    if reduction != 'mean':
        raise ValueError(f"reduction must be 'mean' for the mask cross-entropy (mmdet's "
                         f"mask_cross_entropy averages over every mask element), got "
                         f"{reduction!r}")
    if avg_factor is not None:
        raise ValueError(f'avg_factor must be None for the mask cross-entropy (mmdet\'s '
                         f'mask_cross_entropy averages over every mask element), got '
                         f'{avg_factor!r}')
    if ignore_index not in (None, -100):
        raise ValueError(f'ignore_index must be None for the mask cross-entropy (mmdet\'s '
                         f'mask_cross_entropy ignores nothing), got {ignore_index!r}')
    if label_smoothing != 0.0:
        raise ValueError(f'label_smoothing must be 0 with use_mask=True, got {label_smoothing}')


def mask_cross_entropy_loss(pred: Tensor, target: Tensor, label: Tensor,
                            reduction: str = 'mean', avg_factor=None,
                            class_weight: ClassVector = None,
                            ignore_index: Optional[int] = None) -> Tensor:
    """The mask-head binary cross-entropy of mmdet's ``CrossEntropyLoss(use_mask=True)`` (Mask
    R-CNN's ``loss_mask``): each RoI's mask logits are those of its class's channel, and with
    x = pred[i, label_i], per mask element::

        l = -w_i * (t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))

    averaged over all N * H * W elements (``w_i = class_weight[label_i]``, 1 without
    ``class_weight``). As in mmdet, only ``reduction='mean'`` without ``avg_factor`` and without
    ``ignore_index`` is supported (anything else is a ValueError naming it), and the result has
    shape (1,). Unlike mmdet (NaN, the mean of nothing), N = 0 gives a 0 that stays in the
    autograd graph.

    Shape:
        pred: (N, C, H, W) mask logits (any trailing dims (N, C, d1, ...)); C = 1 for
        class-agnostic masks. target: (N, H, W) mask targets in [0, 1] (floating point).
        label: (N,) integer class index of each RoI, in [0, C - 1] (all 0 when C = 1).

    Args:
        pred: mask logits, see Shape.
        target: binary (or soft) masks, see Shape.
        label: which channel of pred each RoI uses, see Shape.
        reduction: must be 'mean'.
        avg_factor: must be None.
        class_weight: C weights, RoI i weighted by ``class_weight[label_i]``, or a single
            weight for every element. (mmdet multiplies the (N, H, W) loss by the raw vector,
            which broadcasts along W: it agrees for a single weight; with C weights ours
            weights classes where mmdet fails or weights mask columns.)
        ignore_index: must be None (-100 is accepted as None: no label equals it).

    Returns:
        The mean loss, shape (1,), in pred's dtype (half precision is computed in float32).

    Example:
        >>> pred = torch.zeros(2, 3, 2, 2)       # 2 RoIs, 3 classes, 2x2 masks
        >>> pred[1, 2] = 4.0                     # RoI 1's class-2 mask logits
        >>> target = torch.ones(2, 2, 2)
        >>> F.mask_cross_entropy_loss(pred, target, torch.tensor([0, 2]))
        tensor([0.3556])
    """
    check_mask_options(reduction=reduction, avg_factor=avg_factor, ignore_index=ignore_index)
    check_tensor('pred', pred, floating=True)
    if pred.dim() < 3:
        raise ValueError(f'pred must be (N, C, H, W) mask logits (at least 3-D), got shape '
                         f'{tuple(pred.shape)}')
    check_tensor('target', target, floating=True)
    mask_shape = pred.shape[:1] + pred.shape[2:]
    if target.shape != mask_shape:
        raise ValueError(f'target must have the shape {tuple(mask_shape)} (pred\'s shape '
                         f'{tuple(pred.shape)} without C), got {tuple(target.shape)}')
    if not isinstance(label, Tensor):
        raise TypeError(f'label must be a torch.Tensor of class indices (N,), the third '
                        f'argument (mmdet\'s weight position), got {type(label).__name__}')
    num_rois, num_classes = pred.shape[:2]
    if label.shape != (num_rois,):
        raise ValueError(f'label must have the shape ({num_rois},), one class index per RoI, '
                         f'got {tuple(label.shape)}')
    check_labels(label, num_classes - 1, name='label')
    check_loss_tensors(pred=pred, target=target, label=label)
    (logits,) = upcast(pred)
    rows = torch.arange(num_rois, device=pred.device)
    selected = logits[rows, label.long()]  # (N, H, W): each RoI's own class channel
    loss = TF.binary_cross_entropy_with_logits(selected, target.to(logits.dtype),
                                               reduction='none')
    loss = nan_if_nonfinite(loss, selected)  # NaN/inf logits: NaN loss and gradient
    weight = None
    if class_weight is not None:
        check_numbers('class_weight', class_weight)
        vector = torch.as_tensor(class_weight, dtype=logits.dtype, device=logits.device)
        vector = vector.reshape(1) if vector.dim() == 0 else vector  # one number
        if vector.dim() != 1 or vector.numel() not in (1, num_classes):
            raise ValueError(f'class_weight must have one value per class ({num_classes}) or a '
                             f'single value, got shape {tuple(vector.shape)}')
        if vector.numel() == num_classes:
            vector = vector[label.long()].view((num_rois,) + (1,) * (loss.dim() - 1))
        weight = vector
    return weight_reduce_loss(loss, weight, 'mean').to(pred.dtype).unsqueeze(0)


def _balanced_class_weight(target: Tensor, num_classes: int, like: Tensor, class_counts,
                           beta: Optional[float], ignore_index: int) -> Tensor:
    """w_c proportional to 1/n_c (or 1/effective number), normalised to mean 1 over the classes
    present; classes that never occur (count 0) get weight 0."""
    if class_counts is not None:
        check_numbers('class_counts', class_counts)
        if isinstance(class_counts, Tensor):
            bad = reads_values(class_counts) and bool((class_counts <= 0).any())
        else:
            bad = any(float(n) <= 0 for n in class_counts)
        if bad:
            raise ValueError(f'class_counts must all be > 0, got {class_counts}')
        counts = check_class_vector('class_counts', class_counts, num_classes, like)
    else:  # counts of the batch, by a scatter-add (no host sync, no bincount)
        valid = target != ignore_index
        column = torch.where(valid, target, 0).long().reshape(-1)
        counts = like.new_zeros(num_classes).scatter_add_(0, column,
                                                           valid.reshape(-1).to(like.dtype))
    present = counts > 0
    safe = torch.where(present, counts, torch.ones_like(counts))
    inverse = 1.0 / safe if beta is None else (1.0 - beta) / (1.0 - beta ** safe)
    inverse = torch.where(present, inverse, torch.zeros_like(inverse))
    tiny = torch.finfo(like.dtype).tiny
    return inverse * present.sum() / inverse.sum().clamp_min(tiny)


def balanced_cross_entropy_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                reduction: str = 'mean', avg_factor=None,
                                class_counts: ClassVector = None, beta: Optional[float] = None,
                                use_sigmoid: bool = False,
                                ignore_index: Optional[int] = -100) -> Tensor:
    """Cross-entropy with class weights inversely proportional to class frequency.

    Softmax form (``use_sigmoid=False``): :func:`cross_entropy_loss` with
    ``class_weight`` w_c, where with ``class_counts`` n_c::

        w_c = (1 / n_c) * C / sum_k (1 / n_k)

    with ``beta`` (Cui et al.'s effective number of samples, from ``class_counts`` or the
    batch), ``w_c`` proportional to ``(1 - beta) / (1 - beta^n_c)``, normalised the same way;
    with neither, n_c are counted from the labels of the batch (classes absent from the batch
    get weight 0 and C counts only the classes present). The weights carry no gradient.

    Sigmoid form (``use_sigmoid=True``, HED's class-balanced BCE): with the fraction of positive
    targets f = sum(t) / numel over the batch, positives are weighted by 1 - f (the fraction of
    negatives) and negatives by f::

        loss = -(1 - f) t log sigmoid(x) - f (1 - t) log(1 - sigmoid(x))

    Targets as for :func:`binary_cross_entropy_loss` (class indices with C as background are
    expanded to one-hot rows).

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.
        Xie and Tu, "Holistically-Nested Edge Detection", ICCV 2015.

    Example:
        >>> pred = torch.zeros(3, 2)
        >>> F.balanced_cross_entropy_loss(pred, torch.tensor([0, 0, 1]), reduction='none')
        tensor([0.4621, 0.4621, 0.9242])
    """
    ignore_index = check_ignore_index(ignore_index)
    beta = check_effective_beta(beta)
    if use_sigmoid:
        if class_counts is not None or beta is not None:
            raise ValueError('class_counts and beta apply to the softmax form: with '
                             'use_sigmoid=True the balance is the fraction of positives of the '
                             f'batch, got class_counts={class_counts}, beta={beta}')
        check_tensor('pred', pred, floating=True)
        check_loss_tensors(pred=pred, target=target, weight=weight)
        (logits,) = upcast(pred)
        dense, valid, weight = _binary_targets(logits, target, weight, ignore_index)
        if weight is not None:
            check_weight(weight, logits)
        mask = valid.to(logits.dtype).expand_as(logits)
        positive_fraction = ((dense * mask).sum() / mask.sum().clamp_min(1.0)).detach()
        # -log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x)
        loss = ((1 - positive_fraction) * dense * TF.softplus(-logits)
                + positive_fraction * (1 - dense) * TF.softplus(logits))
        loss = nan_if_nonfinite(loss, logits)
        weight = mask if weight is None else weight.to(logits.dtype) * mask
        return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
    check_scores(pred, dims=tuple(range(2, 8)))
    check_tensor('target', target)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    if not is_index_target(pred, target):
        raise ValueError(f'target must be class indices of shape '
                         f'{tuple(pred.shape[:1] + pred.shape[2:])} for the softmax form, got '
                         f'shape {tuple(target.shape)}')
    check_labels(target, pred.shape[1] - 1, ignore_index=ignore_index)
    like = upcast(pred)[0].detach()
    class_weight = _balanced_class_weight(target, pred.shape[1], like, class_counts, beta,
                                          ignore_index)
    return cross_entropy_loss(pred, target, weight, reduction, avg_factor,
                              class_weight=class_weight, ignore_index=ignore_index)


def kl_div_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                reduction: str = 'mean', avg_factor=None, temperature: float = 1.0) -> Tensor:
    """Knowledge-distillation KL divergence of a student from a teacher, per sample::

        T^2 * sum_c q_c (log q_c - log p_c),  q = softmax(target / T),  p = softmax(pred / T)

    ``target`` (the teacher's logits) is detached. 'mean' averages over samples, so at T = 1
    it equals ``torch.nn.functional.kl_div(log p, q, reduction='batchmean')``; T^2 keeps the
    gradient's scale independent of T.

    Args:
        pred: student logits (N, C).
        target: teacher logits (N, C).
        temperature: T > 0.

    Returns:
        The reduced loss, or the per-sample loss (N,).

    Reference: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015.

    Example:
        >>> F.kl_div_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]]))
        tensor(0.)
    """
    check_scores(pred)
    check_tensor('target', target, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_same_shape('pred', pred, 'target', target)
    temperature = check_temperature(temperature)
    logits, teacher = upcast(pred, target.detach())
    log_p = TF.log_softmax(logits / temperature, dim=1)
    q = TF.softmax(teacher / temperature, dim=1)
    loss = TF.kl_div(log_p, q, reduction='none').sum(1) * temperature ** 2
    loss = nan_if_nonfinite(loss, logits, teacher, dim=1)  # NaN/inf in: NaN loss, gradient
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
