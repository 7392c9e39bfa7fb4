"""Regression losses on tensors of any shape: ``pred`` and ``target`` have the same shape and
``reduction='none'`` keeps it. Half-precision inputs are computed in float32 and the result is
returned in the input dtype; the target and the weight are cast straight to float32, never
through the half dtype. A NaN or inf in pred, target or weight gives a non-finite loss for that
element and a non-finite gradient (even where the element's slope is finite or 0, as |d|'s at
NaN).

On the CPU the losses run through the fused kernel of :mod:`mmdet_losses.ops.regression_kernel`
(one pass forward, one backward, the same maths) where it applies; the PyTorch expressions
below are the definition, what runs elsewhere, and the reference the kernel is tested
against."""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..ops.regression_kernel import fused_regression_loss
from ..reduction import weight_reduce_loss
from ..validation import (check_loss_tensors, check_number, check_same_shape, check_tensor,
                          compute_dtype)
from .safe_math import safe_sqrt, with_nonfinite

__all__ = ['l1_loss', 'mse_loss', 'rmse_loss', 'smooth_l1_loss', 'balanced_l1_loss']


def _checked_inputs(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None):
    """pred and target checked (with weight: real tensors on one device) and in the compute
    dtype (half precision upcast)."""
    check_tensor('pred', pred, floating=True)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_same_shape('pred', pred, 'target', target)
    # target straight to the compute dtype (never through pred's half dtype)
    dtype = compute_dtype(pred)
    return pred.to(dtype), target.to(dtype)


def _weighted_reduced(kind: str, elementwise, pred: Tensor, target: Tensor,
                      weight: Optional[Tensor], reduction: str, avg_factor,
                      **params) -> Tensor:
    """``weight_reduce_loss(elementwise(pred - target, **params), ...)`` in the compute dtype:
    by the fused kernel ``kind`` where it applies, else by ``elementwise`` (its definition)."""
    pred, target = _checked_inputs(pred, target, weight)
    fused = fused_regression_loss(kind, pred, target, weight, reduction, avg_factor, **params)
    if fused is not None:
        return fused
    residual = pred - target
    # + 0 (zero gradient) where the residual is finite, NaN (NaN gradient) where it is not:
    # abs'/sign of NaN is 0, and a NaN or inf weight must reach the gradient as well
    loss = with_nonfinite(elementwise(residual, **params), residual)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def check_smooth_l1_params(beta) -> float:
    """:func:`smooth_l1_loss`'s ``beta`` checked (>= 0); its class checks it with this too."""
    return check_number('beta', beta, low=0.0)


def check_balanced_l1_params(alpha, gamma, beta) -> Tuple[float, float, float]:
    """:func:`balanced_l1_loss`'s ``alpha``, ``gamma``, ``beta`` checked (each > 0)."""
    return (check_number('alpha', alpha, low=0.0, low_open=True),
            check_number('gamma', gamma, low=0.0, low_open=True),
            check_number('beta', beta, low=0.0, low_open=True))


def _smooth_l1_elementwise(residual: Tensor, beta: float) -> Tensor:
    diff = residual.abs()
    return torch.where(diff < beta, 0.5 * diff.square() / beta, diff - 0.5 * beta)


def _balanced_l1_elementwise(residual: Tensor, alpha: float, gamma: float,
                             beta: float) -> Tensor:
    diff = residual.abs()
    b = math.exp(gamma / alpha) - 1
    # The inlier formula on residuals clamped at beta: where it is not used (diff >= beta) it
    # stays finite, so its zero share of the gradient is 0, not 0 * inf = NaN (b * diff
    # overflows float32 near 1.8e37 for the default parameters).
    small = diff.clamp(max=beta)
    inlier = alpha / b * (b * small + 1) * torch.log1p(b * small / beta) - alpha * small
    outlier = gamma * diff + gamma / b - alpha * beta
    return torch.where(diff < beta, inlier, outlier)


def l1_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
            reduction: str = 'mean', avg_factor=None) -> Tensor:
    """L1 loss, ``|pred - target|``.

    Example:
        >>> l1_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]))
        tensor(1.5000)
    """
    loss = _weighted_reduced('l1', torch.abs, pred, target, weight, reduction, avg_factor)
    return loss.to(pred.dtype)


def mse_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
             reduction: str = 'mean', avg_factor=None) -> Tensor:
    """L2 loss, ``(pred - target)^2``; ``reduction='sum'`` is the sum of squared errors.

    Example:
        >>> mse_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]), reduction='sum')
        tensor(5.)
    """
    loss = _weighted_reduced('mse', torch.square, pred, target, weight, reduction, avg_factor)
    return loss.to(pred.dtype)


def rmse_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None) -> Tensor:
    """Root of the reduced (weighted) squared error: ``sqrt(reduce(weight * (pred-target)^2))``.

    With ``reduction='none'`` it is ``sqrt(weight) * |pred - target|`` element-wise. The
    gradient at a zero residual is 0, not NaN. A negative reduced value (negative weights) has
    no root: the result is NaN there, never a silent 0.

    Example:
        >>> rmse_loss(torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0]), reduction='sum')
        tensor(5.)
    """
    squared = _weighted_reduced('mse', torch.square, pred, target, weight, reduction, avg_factor)
    no_root = torch.where(squared < 0, math.nan, 0.0)  # safe_sqrt would give a silent 0
    # sqrt's gradient at +inf is 0: mark an infinite squared error NaN, as the plain path's
    # element-wise marker already has, so both paths give every element a NaN gradient
    return with_nonfinite(safe_sqrt(squared) + no_root, squared).to(pred.dtype)


def smooth_l1_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                   reduction: str = 'mean', avg_factor=None, beta: float = 1.0) -> Tensor:
    """Smooth L1 (Huber divided by beta): ``0.5 d^2 / beta`` for ``|d| < beta``, else
    ``|d| - 0.5 beta``, with ``d = pred - target``. ``beta=0`` is exactly L1 (no 0/0).

    Reference: Girshick, "Fast R-CNN", ICCV 2015.

    Example:
        >>> smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction='none')
        tensor([0.1250, 2.5000])
    """
    beta = check_smooth_l1_params(beta)
    if beta == 0.0:
        loss = _weighted_reduced('l1', torch.abs, pred, target, weight, reduction, avg_factor)
        return loss.to(pred.dtype)
    loss = _weighted_reduced('smooth_l1', _smooth_l1_elementwise, pred, target, weight,
                             reduction, avg_factor, beta=beta)
    return loss.to(pred.dtype)


def balanced_l1_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                     reduction: str = 'mean', avg_factor=None, alpha: float = 0.5,
                     gamma: float = 1.5, beta: float = 1.0) -> Tensor:
    """Balanced L1 loss of Libra R-CNN, with ``x = |pred - target|`` and ``b`` given by
    ``alpha * log(b + 1) = gamma``::

        x <  beta: alpha / b * (b x + 1) * log(b x / beta + 1) - alpha x
        x >= beta: gamma x + gamma / b - alpha beta

    Its gradient is ``alpha log(b x / beta + 1) + alpha ((b x + 1) / (b x + beta) - 1)``
    below beta (the second term vanishes for ``beta = 1``) and ``gamma`` above: inliers get
    a larger gradient than with Smooth L1.

    Reference: Pang et al., "Libra R-CNN: Towards Balanced Learning for Object Detection",
    CVPR 2019.

    Example:
        >>> balanced_l1_loss(torch.tensor([2.0]), torch.tensor([0.0]), reduction='none')
        tensor([2.5786])
    """
    alpha, gamma, beta = check_balanced_l1_params(alpha, gamma, beta)
    loss = _weighted_reduced('balanced_l1', _balanced_l1_elementwise, pred, target, weight,
                             reduction, avg_factor, alpha=alpha, gamma=gamma, beta=beta)
    return loss.to(pred.dtype)
