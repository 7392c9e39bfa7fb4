"""Regression losses on tensors of any shape: ``pred`` and ``target`` have the same shape and
``reduction='none'`` keeps it. Half-precision inputs are computed in float32 and the result is
returned in the input dtype."""
import math
from typing import Optional

import torch
from torch import Tensor

from ..reduction import weight_reduce_loss
from ..validation import check_number, check_same_shape, check_tensor, upcast

__all__ = ['l1_loss', 'mse_loss', 'rmse_loss', 'smooth_l1_loss', 'balanced_l1_loss']


def _residual(pred: Tensor, target: Tensor) -> Tensor:
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target)
    check_same_shape('pred', pred, 'target', target)
    pred, target = upcast(pred, target.to(pred.dtype))
    return pred - target


def safe_sqrt(x: Tensor) -> Tensor:
    """sqrt(x) for x >= 0 whose gradient at 0 is 0 (the subgradient of |d| at d = 0) instead
    of inf, which would turn into NaN through the chain rule."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(),
                       torch.zeros_like(x))


def l1_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
            reduction: str = 'mean', avg_factor=None) -> Tensor:
    """L1 loss, ``|pred - target|``.

    Example:
        >>> l1_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]))
        tensor(1.5000)
    """
    loss = _residual(pred, target).abs()
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def mse_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
             reduction: str = 'mean', avg_factor=None) -> Tensor:
    """L2 loss, ``(pred - target)^2``; ``reduction='sum'`` is the sum of squared errors.

    Example:
        >>> mse_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]), reduction='sum')
        tensor(5.)
    """
    loss = _residual(pred, target).square()
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def rmse_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None) -> Tensor:
    """Root of the reduced (weighted) squared error: ``sqrt(reduce(weight * (pred-target)^2))``.

    With ``reduction='none'`` it is ``sqrt(weight) * |pred - target|`` element-wise. The
    gradient at a zero residual is 0, not NaN.

    Example:
        >>> rmse_loss(torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0]), reduction='sum')
        tensor(5.)
    """
    squared = _residual(pred, target).square()
    return safe_sqrt(weight_reduce_loss(squared, weight, reduction, avg_factor)).to(pred.dtype)


def smooth_l1_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                   reduction: str = 'mean', avg_factor=None, beta: float = 1.0) -> Tensor:
    """Smooth L1 (Huber divided by beta): ``0.5 d^2 / beta`` for ``|d| < beta``, else
    ``|d| - 0.5 beta``, with ``d = pred - target``. ``beta=0`` is exactly L1 (no 0/0).

    Reference: Girshick, "Fast R-CNN", ICCV 2015.

    Example:
        >>> smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction='none')
        tensor([0.1250, 2.5000])
    """
    beta = check_number('beta', beta, low=0.0)
    diff = _residual(pred, target).abs()
    if beta == 0.0:
        loss = diff
    else:
        loss = torch.where(diff < beta, 0.5 * diff.square() / beta, diff - 0.5 * beta)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)


def balanced_l1_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                     reduction: str = 'mean', avg_factor=None, alpha: float = 0.5,
                     gamma: float = 1.5, beta: float = 1.0) -> Tensor:
    """Balanced L1 loss of Libra R-CNN, with ``x = |pred - target|`` and ``b`` given by
    ``alpha * log(b + 1) = gamma``::

        x <  beta: alpha / b * (b x + 1) * log(b x / beta + 1) - alpha x
        x >= beta: gamma x + gamma / b - alpha beta

    Its gradient is ``alpha log(b x / beta + 1)`` below beta and ``gamma`` above: inliers
    get a larger gradient than with Smooth L1.

    Reference: Pang et al., "Libra R-CNN: Towards Balanced Learning for Object Detection",
    CVPR 2019.

    Example:
        >>> balanced_l1_loss(torch.tensor([2.0]), torch.tensor([0.0]), reduction='none')
        tensor([2.5786])
    """
    alpha = check_number('alpha', alpha, low=0.0, low_open=True)
    gamma = check_number('gamma', gamma, low=0.0, low_open=True)
    beta = check_number('beta', beta, low=0.0, low_open=True)
    diff = _residual(pred, target).abs()
    b = math.exp(gamma / alpha) - 1
    inlier = alpha / b * (b * diff + 1) * torch.log1p(b * diff / beta) - alpha * diff
    outlier = gamma * diff + gamma / b - alpha * beta
    loss = torch.where(diff < beta, inlier, outlier)
    return weight_reduce_loss(loss, weight, reduction, avg_factor).to(pred.dtype)
