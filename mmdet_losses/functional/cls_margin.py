"""Margin-based losses of a score f and a label y (logistic, exponential, hinge) and the 0-1
loss. Binary labels may be {0, 1} or {-1, 1}: 0 and -1 both mean the negative class.
Half-precision inputs are computed in float32 and the result is returned in the input dtype.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as TF
from torch import Tensor

from ..reduction import weight_reduce_loss
from ..validation import (check_choice, check_labels, check_loss_tensors, check_number,
                          check_tensor, compute_dtype, upcast)
from .cls_common import check_binary_labels, check_scores, is_index_target
from .safe_math import with_nonfinite

__all__ = ['logistic_loss', 'hinge_loss', 'exponential_loss', 'zero_one_loss']

HINGE_MODES = ('crammer_singer', 'weston_watkins')


def _signed_margin(pred: Tensor, target: Tensor) -> Tensor:
    """y * f for binary labels y in {0, 1} or {-1, 1} of pred's shape."""
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target)
    if target.shape != pred.shape:
        raise ValueError(f'target must have the shape of pred {tuple(pred.shape)}, got '
                         f'{tuple(target.shape)}')
    (scores,) = upcast(pred)
    return check_binary_labels('target', target).to(scores.dtype) * scores


def logistic_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                  reduction: str = 'mean', avg_factor=None) -> Tensor:
    """Logistic loss ``log(1 + exp(-y f))``, computed as ``softplus(-y f)`` (no overflow).

    Args:
        pred: scores f of any shape.
        target: labels y of pred's shape, in {0, 1} or {-1, 1}.

    Returns:
        The reduced loss, or the element-wise loss of pred's shape.

    Reference: Hastie, Tibshirani and Friedman, "The Elements of Statistical Learning",
    2nd ed., section 10.6 (binomial deviance).

    Example:
        >>> F.logistic_loss(torch.tensor([0.0, 2.0, 2.0]), torch.tensor([1, 1, 0]),
        ...                 reduction='none')
        tensor([0.6931, 0.1269, 2.1269])
    """
    check_loss_tensors(pred=pred, target=target, weight=weight)
    margin = _signed_margin(pred, target)
    loss = with_nonfinite(TF.softplus(-margin), margin)  # NaN/inf in: NaN loss and gradient
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def exponential_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                     reduction: str = 'mean', avg_factor=None) -> Tensor:
    """Exponential loss ``exp(-y f)`` (AdaBoost's). It grows exponentially with a wrong margin:
    in float32 it overflows to inf for ``y f < -88``, as the true value does not fit.

    Args:
        pred: scores f of any shape.
        target: labels y of pred's shape, in {0, 1} or {-1, 1}.

    Returns:
        The reduced loss, or the element-wise loss of pred's shape.

    Reference: Friedman, Hastie and Tibshirani, "Additive Logistic Regression: a Statistical
    View of Boosting", Annals of Statistics, 2000.

    Example:
        >>> F.exponential_loss(torch.tensor([0.0, 1.0]), torch.tensor([-1, -1]),
        ...                    reduction='none')
        tensor([1.0000, 2.7183])
    """
    check_loss_tensors(pred=pred, target=target, weight=weight)
    margin = _signed_margin(pred, target)
    loss = with_nonfinite(torch.exp(-margin), margin)  # NaN/inf in: NaN loss and gradient
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def check_hinge_params(margin, multiclass: str) -> Tuple[float, str]:
    """:func:`hinge_loss`'s ``margin`` (>= 0) and ``multiclass`` mode checked; HingeLoss
    checks them with this too."""
    margin = check_number('margin', margin, low=0.0)
    check_choice('multiclass', multiclass, HINGE_MODES)
    return margin, multiclass


def hinge_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
               reduction: str = 'mean', avg_factor=None, margin: float = 1.0,
               squared: bool = False, multiclass: str = 'crammer_singer') -> Tensor:
    """Hinge loss; each hinge term is squared when ``squared``.

    Binary (target of pred's shape, y in {0, 1} or {-1, 1}): ``max(0, margin - y f)``.
    Multi-class (pred (N, C), target class indices (N,)), per sample:

    - 'crammer_singer': ``max(0, margin + max_{j != y} f_j - f_y)``
    - 'weston_watkins': ``sum_{j != y} max(0, margin - f_y + f_j)``

    Args:
        pred: scores.
        target: binary labels of pred's shape, or class indices (N,) for pred (N, C).
        margin: >= 0.
        squared: square each hinge term (L2-SVM).
        multiclass: 'crammer_singer' or 'weston_watkins'.

    Returns:
        The reduced loss, or the element-wise (binary) / per-sample (multi-class) loss.

    References:
        Crammer and Singer, "On the Algorithmic Implementation of Multiclass Kernel-based
        Vector Machines", JMLR 2001. Weston and Watkins, "Support Vector Machines for
        Multi-Class Pattern Recognition", ESANN 1999.

    Example:
        >>> pred = torch.tensor([[2.0, 1.5, 0.0]])
        >>> F.hinge_loss(pred, torch.tensor([0]), reduction='none')
        tensor([0.5000])
        >>> F.hinge_loss(pred, torch.tensor([0]), reduction='none', multiclass='weston_watkins')
        tensor([0.5000])
    """
    margin, multiclass = check_hinge_params(margin, multiclass)
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    if target.shape == pred.shape:
        signed = _signed_margin(pred, target)
        loss = TF.relu(margin - signed)
        loss = with_nonfinite(loss.square() if squared else loss, signed)
        return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
    check_scores(pred)
    is_index_target(pred, target)  # raises for a shape that is neither
    check_labels(target, pred.shape[1] - 1)
    (scores,) = upcast(pred)
    column = target.long().unsqueeze(1)
    true_score = scores.gather(1, column)
    if multiclass == 'crammer_singer':
        others = scores.scatter(1, column, float('-inf'))
        loss = TF.relu(margin + others.max(dim=1).values - true_score.squeeze(1))
        loss = loss.square() if squared else loss
    else:
        terms = TF.relu(margin - true_score + scores)
        terms = terms.square() if squared else terms
        loss = terms.scatter(1, column, 0.0).sum(dim=1)
    loss = with_nonfinite(loss, scores, dim=1)  # NaN/inf in: NaN loss and gradient
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def zero_one_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                  reduction: str = 'mean', avg_factor=None) -> Tensor:
    """0-1 loss: 1 for a misclassified sample, else 0; its 'mean' is the error rate.

    A value without gradient (the result is detached: the 0-1 loss is piecewise constant),
    for logging and comparison, not for training.

    Multi-class (pred (N, C, ...), target class indices (N, ...)): wrong when
    ``argmax_c pred != target``. Binary (target of pred's shape in {0, 1} or {-1, 1}): wrong
    when ``pred > 0`` disagrees with ``y > 0``. A sample with a NaN or inf score gives NaN,
    not a guess of right or wrong.

    Example:
        >>> F.zero_one_loss(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([1, 1]))
        tensor(0.5000)
    """
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    dtype = compute_dtype(pred)
    with torch.no_grad():
        if target.shape == pred.shape:
            wrong = (pred > 0) != (check_binary_labels('target', target) > 0)
            marker_dim = None
        else:
            check_scores(pred, dims=tuple(range(2, 8)))
            is_index_target(pred, target)
            check_labels(target, pred.shape[1] - 1)
            wrong = pred.argmax(dim=1) != target
            marker_dim = 1
        # a NaN or inf score gives NaN, not a guess of right or wrong
        wrong = with_nonfinite(wrong.to(dtype), pred, dim=marker_dim)
        loss = weight_reduce_loss(wrong, weight, reduction, avg_factor)
    return loss.detach().to(pred.dtype)
