"""The focal family: sigmoid and softmax focal loss, Varifocal, Quality and Distribution Focal.

The modulating factors ``(1 - p_t)^gamma`` are differentiated analytically (small autograd
Functions below): autograd through ``pow`` gives ``gamma (1 - p_t)^(gamma - 1)``, infinite at
``p_t = 1`` for ``gamma < 1``, times a zero, hence NaN; the analytic gradients are finite for
every logit and every ``gamma >= 0``. Their backward formulas are differentiable again
(double backward: gradient penalties, ``torch.autograd.gradgradcheck``), and the Functions
have the ``setup_context`` form that ``torch.func`` transforms need. Half-precision inputs
are computed in float32.
"""
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as TF
from torch import Tensor

from ..ops import focal_kernel
from ..reduction import weight_reduce_loss
from ..validation import (check_int, check_labels, check_loss_tensors, check_number,
                          check_tensor, reads_values, upcast)
from .cls_common import (check_class_vector, check_scores, check_unit_interval, is_index_target,
                         per_anchor_weight)
from .safe_math import nan_if_nonfinite

__all__ = ['focal_loss', 'sigmoid_focal_loss', 'softmax_focal_loss', 'varifocal_loss',
           'quality_focal_loss', 'distribution_focal_loss']

#: torch's binary_cross_entropy clamps log(p) at -100 and divides by max(p (1 - p), 1e-12).
BCE_LOG_FLOOR = -100.0
BCE_GRAD_EPS = 1e-12


def _focal_pieces(pred: Tensor, target: Tensor, activated: bool):
    """p, 1 - p, q = 1 - p_t = p (1 - t) + (1 - p) t and the cross-entropy ce(p, t).

    From logits, 1 - p is sigmoid(-x), not 1 - sigmoid(x), so q keeps its precision at
    saturated logits instead of cancelling to 0."""
    if activated:
        p, one_minus_p = pred, 1 - pred
        ce = -(target * torch.log(p).clamp_min(BCE_LOG_FLOOR)
               + (1 - target) * torch.log(one_minus_p).clamp_min(BCE_LOG_FLOOR))
    else:
        p, one_minus_p = torch.sigmoid(pred), torch.sigmoid(-pred)
        ce = TF.binary_cross_entropy_with_logits(pred, target.expand_as(pred), reduction='none')
    q = p * (1 - target) + one_minus_p * target
    return p, one_minus_p, q, ce


def _alpha_t(target: Tensor, alpha: float):
    return 1.0 if alpha < 0 else alpha * target + (1 - alpha) * (1 - target)


def _pow_for_graph(q: Tensor, gamma: float) -> Tensor:
    """``q^gamma`` for q >= 0, differentiable again where ``q.pow(gamma)`` is not: its
    derivative at q = 0 is taken as 0 instead of ``gamma * 0^(gamma - 1)`` (infinite for
    gamma < 1, then NaN through the chain rule). That is the limit of the focal terms'
    derivative in the logits, where ``dq / q`` stays bounded. Used by the backward formulas
    below when a graph of the gradient is asked (double backward)."""
    positive = q > 0
    return torch.where(positive, torch.where(positive, q, torch.ones_like(q)).pow(gamma),
                       q.detach().pow(gamma))


class _SigmoidFocalTerm(torch.autograd.Function):
    """Element-wise ``alpha_t (1 - p_t)^gamma ce(p, t)`` with an analytic gradient for pred
    (logits, or probabilities when ``activated``); ``target`` gets no gradient.

    With q = 1 - p_t, dq/dx = p (1 - p) (1 - 2t) for logits, so for logits::

        dL/dx = alpha_t q^gamma (gamma r (1 - 2t) ce + p - t),   r = p (1 - p) / q in [0, 2]

    and for probabilities ``dL/dp = alpha_t q^gamma (gamma (1 - 2t) ce / q + ce'(p))``, where
    ce / q -> 1 as q -> 0. Neither holds a negative power of q. The backward is written with
    out-of-place differentiable ops, so a second derivative (``create_graph=True``) is the
    derivative of this formula.
    """
    generate_vmap_rule = True

    @staticmethod
    def forward(pred, target, gamma, alpha, activated):
        _, _, q, ce = _focal_pieces(pred, target, activated)
        return _alpha_t(target, alpha) * q.pow(gamma) * ce

    @staticmethod
    def setup_context(ctx, inputs, output):
        pred, target, gamma, alpha, activated = inputs
        ctx.save_for_backward(pred, target)
        ctx.params = (gamma, alpha, activated)

    @staticmethod
    def backward(ctx, grad_output):
        pred, target = ctx.saved_tensors
        gamma, alpha, activated = ctx.params
        p, one_minus_p, q, ce = _focal_pieces(pred, target, activated)
        q_gamma = _pow_for_graph(q, gamma) if torch.is_grad_enabled() else q.pow(gamma)
        positive_q = q > 0
        safe_q = torch.where(positive_q, q, torch.ones_like(q))
        if activated:
            ce_over_q = torch.where(positive_q, ce / safe_q, torch.ones_like(q))
            d_ce = (p - target) / (p * one_minus_p).clamp_min(BCE_GRAD_EPS)
            inner = gamma * (1 - 2 * target) * ce_over_q + d_ce
        else:
            r = torch.where(positive_q, p * one_minus_p / safe_q, torch.ones_like(q))
            p_minus_t = p * (1 - target) - one_minus_p * target
            inner = gamma * r * (1 - 2 * target) * ce + p_minus_t
        grad = _alpha_t(target, alpha) * q_gamma * inner
        return grad_output * grad, None, None, None, None


class _HardFocalTerm(torch.autograd.Function):
    """``scale * sigmoid(z)^gamma * softplus(z)``: the focal term of a hard target, with
    z = x for a negative (t = 0) and z = -x for a positive (t = 1); then q = 1 - p_t =
    sigmoid(z) and ce = softplus(z). Its derivative ``scale q^gamma (gamma (1 - q) ce + q)``
    (1 - q computed as sigmoid(-z)) holds no negative power of q. Fewer passes over (N, C)
    than :class:`_SigmoidFocalTerm`, for the every-class-negative term of index targets. When a
    graph of the gradient is asked (double backward), the backward is the same formula in
    out-of-place differentiable ops, with ``q^gamma = exp(gamma logsigmoid(z))`` (finite
    derivative everywhere)."""
    generate_vmap_rule = True

    @staticmethod
    def forward(z, gamma, scale):
        return torch.sigmoid(z).pow_(gamma).mul_(TF.softplus(z)).mul_(scale)

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, gamma, scale = inputs
        ctx.save_for_backward(z)
        ctx.params = (gamma, scale)

    @staticmethod
    def backward(ctx, grad_output):
        (z,) = ctx.saved_tensors
        gamma, scale = ctx.params
        if torch.is_grad_enabled():  # create_graph=True: out of place, differentiable
            q_gamma = torch.exp(gamma * TF.logsigmoid(z))
            inner = gamma * torch.sigmoid(-z) * TF.softplus(z) + torch.sigmoid(z)
            return grad_output * (scale * q_gamma * inner), None, None
        q = torch.sigmoid(z)
        inner = torch.sigmoid(-z).mul_(TF.softplus(z)).mul_(gamma).add_(q)
        return grad_output * q.pow_(gamma).mul_(inner).mul_(scale), None, None


def _sigmoid_focal_term(pred: Tensor, target: Tensor, gamma: float, alpha: float,
                        activated: bool) -> Tensor:
    return _SigmoidFocalTerm.apply(pred, target, gamma, alpha, activated)


def _negative_term(pred: Tensor, gamma: float, scale: float, activated: bool) -> Tensor:
    """``scale * p^gamma * -log(1 - p)`` for every element (the t = 0 focal term)."""
    if activated:
        return scale * _sigmoid_focal_term(pred, pred.new_zeros(()), gamma, -1.0, True)
    return _HardFocalTerm.apply(pred, gamma, scale)


def _scatter_positives(negative: Tensor, labels: Tensor, positive_fn) -> Tensor:
    """``negative`` (N, C), every class scored as a negative, with the entry (n, labels[n])
    replaced by ``positive_fn(column)`` for labels < C (label C is background). Only the (N, 1)
    positive entries are gathered: no dense one-hot is built."""
    num_classes = negative.shape[1]
    is_positive = (labels < num_classes).unsqueeze(1)
    column = torch.where(is_positive.squeeze(1), labels, 0).long().unsqueeze(1)
    positive = torch.where(is_positive, positive_fn(column), negative.gather(1, column))
    return negative.scatter(1, column, positive)


def _focal_index_torch(pred: Tensor, labels: Tensor, gamma: float, alpha: float,
                       activated: bool) -> Tensor:
    """Element-wise sigmoid focal loss (N, C) for class indices (N,), in pure PyTorch; NaN
    (value and gradient) where a logit is NaN or +-inf."""
    negative = _negative_term(pred, gamma, 1.0 if alpha < 0 else 1.0 - alpha, activated)
    loss = _scatter_positives(negative, labels, lambda column: _sigmoid_focal_term(
        pred.gather(1, column), pred.new_ones(()), gamma, alpha, activated))
    return nan_if_nonfinite(loss, pred)


def _check_probabilities(pred: Tensor) -> None:
    """Finite probabilities in [0, 1] (NaN and inf pass: they give a non-finite loss);
    checked on CPU tensors, not while compiling."""
    if reads_values(pred) and pred.numel() > 0:
        inside = (pred >= 0) & (pred <= 1) | ~torch.isfinite(pred)
        if not bool(inside.all()):
            raise ValueError(f'pred must hold probabilities in [0, 1] with activated=True, got '
                             f'{pred[~inside][0].item()}')


def focal_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
               reduction: str = 'mean', avg_factor=None, gamma: float = 2.0,
               alpha: float = 0.25, activated: bool = False) -> Tensor:
    """Sigmoid focal loss, element-wise over classes::

        p = sigmoid(x),  p_t = p t + (1 - p)(1 - t),  alpha_t = alpha t + (1 - alpha)(1 - t)
        loss = -alpha_t (1 - p_t)^gamma log(p_t)   (for soft t: alpha_t (1 - p_t)^gamma BCE(x, t))

    Targets: class indices (N,) for pred (N, C), label C meaning background (mmdet's
    ``FocalLoss`` convention, same values; never expanded to a dense one-hot), or one-hot / soft
    targets of pred's shape (``torchvision.ops.sigmoid_focal_loss``'s element-wise values).
    ``alpha < 0`` disables the alpha term (alpha_t = 1). ``activated=True`` takes probabilities
    instead of logits (log clamped at -100 as ``torch.nn.functional.binary_cross_entropy``).
    Value and gradient are finite for any logit (e.g. +-100) and any ``gamma >= 0``,
    ``gamma < 1`` included. On CPU, for class-index targets with float32/float64 logits the
    compiled kernel ``mmdet_losses.ops._focal`` computes it in one pass when it is built; on
    CUDA with Triton, Triton kernels do for index and soft targets
    (:mod:`mmdet_losses.ops.focal_kernel`); the pure-PyTorch path (used everywhere else)
    computes the same maths. ``target`` gets no gradient. Label values are checked on CPU only
    (on CUDA that would force a host sync).

    Args:
        pred: logits (or probabilities) (N, C); any shape with dense targets.
        target: class indices (N,) in [0, C], or targets of pred's shape in [0, 1].
        weight: per element (N, C), per anchor (N,), or flattened (N*C,) as mmdet accepts.
        gamma: focusing parameter >= 0.
        alpha: balance of positives in [0, 1], or < 0 for none.
        activated: pred are probabilities.

    Returns:
        The reduced loss, or the element-wise loss of pred's shape.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Example:
        >>> pred = torch.tensor([[0.0, -2.0], [1.0, 0.0]])
        >>> F.focal_loss(pred, torch.tensor([0, 2]), reduction='none')
        tensor([[0.0433, 0.0014],
                [0.5264, 0.1300]])
    """
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    gamma = check_number('gamma', gamma, low=0.0)
    alpha = check_number('alpha', alpha, high=1.0)
    index = is_index_target(pred, target)
    if index:
        check_scores(pred)
        check_labels(target, pred.shape[1])
    else:
        check_unit_interval('target', target)
    if activated:
        _check_probabilities(pred)
    weight = per_anchor_weight(weight, pred.shape)
    (probs_or_logits,) = upcast(pred)
    if index and not activated and focal_kernel.supports(probs_or_logits, weight):
        loss = focal_kernel.sigmoid_focal_loss_index(probs_or_logits, target, weight, reduction,
                                                     avg_factor, gamma, alpha)
        return loss.to(pred.dtype)
    if not index and not activated and focal_kernel.supports_soft(probs_or_logits, target,
                                                                  weight):
        loss = focal_kernel.sigmoid_focal_loss_soft(probs_or_logits, target, weight, reduction,
                                                    avg_factor, gamma, alpha)
        return loss.to(pred.dtype)
    if index:
        loss = _focal_index_torch(probs_or_logits, target, gamma, alpha, activated)
    else:
        loss = _sigmoid_focal_term(probs_or_logits, target.detach().to(probs_or_logits.dtype),
                                   gamma, alpha, activated)
        loss = nan_if_nonfinite(loss, probs_or_logits, target)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


#: The same function under torchvision's and mmdet's name.
sigmoid_focal_loss = focal_loss


class _SoftmaxFocalTerm(torch.autograd.Function):
    """``-(1 - exp(l))^gamma l`` of a log-probability l, with the analytic derivative
    ``q^gamma (gamma p l / q - 1)``, q = 1 - p, where l / q -> -1 as q -> 0. The backward is
    written with out-of-place differentiable ops (double backward differentiates it)."""
    generate_vmap_rule = True

    @staticmethod
    def forward(log_p, gamma):
        return -(-torch.expm1(log_p)).pow(gamma) * log_p

    @staticmethod
    def setup_context(ctx, inputs, output):
        log_p, gamma = inputs
        ctx.save_for_backward(log_p)
        ctx.gamma = gamma

    @staticmethod
    def backward(ctx, grad_output):
        (log_p,) = ctx.saved_tensors
        q = -torch.expm1(log_p)
        positive_q = q > 0
        l_over_q = torch.where(positive_q, log_p / torch.where(positive_q, q, torch.ones_like(q)),
                               -torch.ones_like(q))
        q_gamma = _pow_for_graph(q, ctx.gamma) if torch.is_grad_enabled() else q.pow(ctx.gamma)
        grad = q_gamma * (ctx.gamma * log_p.exp() * l_over_q - 1)
        return grad_output * grad, None


def softmax_focal_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                       reduction: str = 'mean', avg_factor=None, gamma: float = 2.0,
                       alpha: Optional[Union[float, Sequence[float], Tensor]] = None,
                       ignore_index: Optional[int] = -100) -> Tensor:
    """Softmax focal loss per sample, ``-alpha_y (1 - p_y)^gamma log p_y`` with
    ``p = softmax(pred)``; samples labelled ``ignore_index`` give 0 (and still count in the
    'mean', as in mmdet's cross-entropy). ``gamma=0`` with ``alpha=None`` is the cross-entropy.

    Args:
        pred: logits (N, C).
        target: class indices (N,) in [0, C - 1] or ``ignore_index``.
        gamma: focusing parameter >= 0 (finite gradient for gamma < 1 too).
        alpha: None, a number scaling every class, or C per-class factors.
        ignore_index: the label of ignored samples.

    Returns:
        The reduced loss, or the per-sample loss (N,).

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Example:
        >>> F.softmax_focal_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1]), gamma=1.0)
        tensor(0.3466)
    """
    check_scores(pred)
    check_tensor('target', target)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    gamma = check_number('gamma', gamma, low=0.0)
    ignore_index = -100 if ignore_index is None else check_int('ignore_index', ignore_index)
    if not is_index_target(pred, target):
        raise ValueError(f'target must be class indices of shape ({pred.shape[0]},), got shape '
                         f'{tuple(target.shape)}')
    num_classes = pred.shape[1]
    check_labels(target, num_classes - 1, ignore_index=ignore_index)
    (logits,) = upcast(pred)
    valid = target != ignore_index
    column = torch.where(valid, target, 0).long()
    log_p = TF.log_softmax(logits, dim=1).gather(1, column.unsqueeze(1)).squeeze(1)
    # where, not * valid: an ignored sample's loss is 0 even for NaN logits (as in
    # cross_entropy); the others' NaN/inf logits give NaN (nan_if_nonfinite below)
    loss = torch.where(valid, _SoftmaxFocalTerm.apply(log_p, gamma), 0.0)
    if alpha is not None:
        if isinstance(alpha, numbers.Number) and not isinstance(alpha, bool):
            loss = loss * check_number('alpha', alpha, low=0.0)
        else:
            loss = loss * check_class_vector('alpha', alpha, num_classes, logits)[column]
    # NaN/inf logits of a sample that is not ignored: NaN loss and gradient
    loss = nan_if_nonfinite(loss, logits, dim=1, mask=valid)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def varifocal_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                   reduction: str = 'mean', avg_factor=None, alpha: float = 0.75,
                   gamma: float = 2.0, iou_weighted: bool = True) -> Tensor:
    """Varifocal loss (VFNet), element-wise, with IoU-aware targets q in [0, 1]::

        q > 0:  q * BCE(x, q)          (iou_weighted; 1 * BCE(x, q) otherwise)
        q = 0:  alpha p^gamma BCE(x, 0),  p = sigmoid(x)

    Same maths as mmdet's ``VarifocalLoss``; only negatives are down-weighted.

    Args:
        pred: logits (N, C).
        target: IoU-aware classification targets of pred's shape.
        weight: per element, or per anchor (N,).
        alpha: weight of the negatives, >= 0.
        gamma: focusing parameter of the negatives, >= 0.
        iou_weighted: weight positives by their target q.

    Returns:
        The reduced loss, or the element-wise loss of pred's shape.

    Reference: Zhang et al., "VarifocalNet: An IoU-aware Dense Object Detector", CVPR 2021.

    Example:
        >>> F.varifocal_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.0]]),
        ...                  reduction='none')
        tensor([[0.3466, 0.1300]])
    """
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    if target.shape != pred.shape:
        raise ValueError(f'target must have the shape of pred {tuple(pred.shape)}, got '
                         f'{tuple(target.shape)}')
    check_unit_interval('target', target)
    alpha = check_number('alpha', alpha, low=0.0)
    gamma = check_number('gamma', gamma, low=0.0)
    logits, target = upcast(pred, target.detach())
    positive = target > 0
    bce = TF.binary_cross_entropy_with_logits(logits, target, reduction='none')
    positive_loss = target * bce if iou_weighted else bce
    negative_loss = _negative_term(logits, gamma, alpha, False)
    loss = torch.where(positive, positive_loss, negative_loss)
    # a NaN target is neither positive nor negative: NaN loss, and a NaN gradient for pred
    loss = nan_if_nonfinite(loss, logits, target)
    weight = per_anchor_weight(weight, loss.shape)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


QualityTarget = Union[Tensor, Tuple[Tensor, Tensor]]


def quality_focal_loss(pred: Tensor, target: QualityTarget, weight: Optional[Tensor] = None,
                       reduction: str = 'mean', avg_factor=None, beta: float = 2.0,
                       activated: bool = False) -> Tensor:
    """Quality focal loss (GFL), summed over classes per sample::

        loss_n = sum_c BCE(p_nc, y_nc) |y_nc - p_nc|^beta

    where y is the quality (IoU) target of the labelled class and 0 for every other class.
    ``target`` is either ``(labels, scores)`` with labels (N,) in [0, C] (C is background) and
    scores (N,), or a dense (N, C) soft target. Same maths as mmdet's ``QualityFocalLoss``;
    the negatives' factor p^beta has a finite gradient at saturated logits.

    Args:
        pred: logits (probabilities if ``activated``) (N, C).
        target: ``(labels, scores)`` or an (N, C) tensor.
        weight: per sample (N,).
        beta: focusing parameter >= 0.
        activated: pred are probabilities.

    Returns:
        The reduced loss, or the per-sample loss (N,).

    Reference: Li et al., "Generalized Focal Loss: Learning Qualified and Distributed Bounding
    Boxes for Dense Object Detection", NeurIPS 2020.

    Example:
        >>> labels, scores = torch.tensor([0, 2]), torch.tensor([0.5, 0.0])
        >>> F.quality_focal_loss(torch.zeros(2, 2), (labels, scores), reduction='none')
        tensor([0.1733, 0.3466])
    """
    check_scores(pred)
    check_loss_tensors(pred=pred, weight=weight)
    beta = check_number('beta', beta, low=0.0)
    if activated:
        _check_probabilities(pred)
    (scores_in,) = upcast(pred)
    p = scores_in if activated else torch.sigmoid(scores_in)

    def soft_term(x, y, p):  # BCE(x, y) |y - p|^beta for soft targets y
        bce = (TF.binary_cross_entropy(x, y, reduction='none') if activated
               else TF.binary_cross_entropy_with_logits(x, y, reduction='none'))
        return bce * (y - p).abs().pow(beta)

    negative = _negative_term(scores_in, beta, 1.0, activated)
    if isinstance(target, (tuple, list)):
        if len(target) != 2:
            raise ValueError(f'target must be (labels, scores) or a tensor, got a '
                             f'{type(target).__name__} of {len(target)} items')
        labels, quality = target
        check_tensor('target[0] (labels)', labels)
        check_tensor('target[1] (scores)', quality, floating=True)
        if labels.shape != pred.shape[:1] or quality.shape != pred.shape[:1]:
            raise ValueError(f'target labels and scores must have shape ({pred.shape[0]},), '
                             f'got {tuple(labels.shape)} and {tuple(quality.shape)}')
        check_loss_tensors(pred=pred, **{'target[0] (labels)': labels,
                                         'target[1] (scores)': quality})
        check_labels(labels, pred.shape[1], name='target[0] (labels)')
        check_unit_interval('target[1] (scores)', quality)
        quality = quality.detach().to(scores_in.dtype).unsqueeze(1)
        loss = _scatter_positives(negative, labels, lambda column: soft_term(
            scores_in.gather(1, column), quality, p.gather(1, column)))
        loss = nan_if_nonfinite(loss, scores_in, quality)
    else:
        check_loss_tensors(pred=pred, target=target)
        if target.shape != pred.shape:
            # mmdet's DETR-family heads send (labels, IoU scores) only to mmdet's own class
            # (an isinstance check), plain labels to any other: say so rather than guess scores
            detr = (' (class indices alone: mmdet\'s DETRHead, DINOHead and GroundingDINOHead '
                    'pass (labels, IoU scores) only to an instance of mmdet\'s own '
                    'QualityFocalLoss, and plain labels to any other loss class, so keep '
                    'type=\'QualityFocalLoss\' (mmdet\'s) in those heads)'
                    if target.dim() == pred.dim() - 1 else '')
            raise ValueError(f'target must be (labels, scores) or a tensor of pred\'s shape '
                             f'{tuple(pred.shape)}, got shape {tuple(target.shape)}{detr}')
        check_unit_interval('target', target)
        soft = target.detach().to(scores_in.dtype)
        loss = torch.where(soft != 0, soft_term(scores_in, soft, p), negative)
        loss = nan_if_nonfinite(loss, scores_in, soft)
    loss = loss.sum(dim=1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def distribution_focal_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                            reduction: str = 'mean', avg_factor=None) -> Tensor:
    """Distribution focal loss (GFL): cross-entropy to the two bins around a continuous target
    y in [0, n], weighted by closeness::

        loss = -(y_r - y) log S_l - (y - y_l) log S_r,  y_l = floor(y), y_r = y_l + 1

    with S = softmax(pred) over the n + 1 bins. Same values as mmdet's
    ``DistributionFocalLoss``; y = n (which mmdet cannot take) is -log S_n.

    Args:
        pred: logits (N, n + 1) of the distribution over {0, ..., n}.
        target: distances (N,) in [0, n].
        weight: per sample (N,).

    Returns:
        The reduced loss, or the per-sample loss (N,).

    Reference: Li et al., "Generalized Focal Loss", NeurIPS 2020.

    Example:
        >>> F.distribution_focal_loss(torch.zeros(1, 4), torch.tensor([1.5]))
        tensor(1.3863)
    """
    check_scores(pred)
    check_tensor('target', target, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    if target.shape != pred.shape[:1]:
        raise ValueError(f'target must have shape ({pred.shape[0]},), got '
                         f'{tuple(target.shape)}')
    bins = pred.shape[1] - 1
    if bins < 1:
        raise ValueError(f'pred must have at least 2 bins (N, n + 1), got shape '
                         f'{tuple(pred.shape)}')
    if reads_values(target) and target.numel() > 0:  # NaN and inf give a non-finite loss
        inside = (target >= 0) & (target <= bins) | ~torch.isfinite(target)
        if not bool(inside.all()):
            raise ValueError(f'target must be in [0, {bins}], got {target[~inside][0].item()}')
    logits, y = upcast(pred, target)
    left = y.detach().floor().long().clamp(0, bins - 1)
    right = left + 1
    log_p = TF.log_softmax(logits, dim=1)
    loss = -(log_p.gather(1, left.unsqueeze(1)).squeeze(1) * (right.to(y.dtype) - y)
             + log_p.gather(1, right.unsqueeze(1)).squeeze(1) * (y - left.to(y.dtype)))
    loss = nan_if_nonfinite(loss, logits, y, dim=1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
