"""Fused kernels for the element-wise regression losses (L1, L2, Smooth L1, Balanced L1): C++ on
the CPU, Triton on CUDA.

:func:`fused_regression_loss` computes ``weight_reduce_loss(loss(pred - target), weight,
reduction, avg_factor)`` with one pass forward and one backward. On the CPU the C++ kernel
spreads both over the intra-op threads with ``at::parallel_for``; on CUDA (where Triton is
available) the Triton kernels of :mod:`mmdet_losses.ops.gpu.regression` do the same work. For
'mean' and 'sum' the forward produces only the weighted sum (in double, per fixed block, added
in order: the result does not depend on the number of threads or on the scheduling of the GPU
programs) and never the element-wise loss; the division by the element count or by
``avg_factor + eps`` is :func:`mmdet_losses.reduction.reduce_weighted_sum`. The forward saves
only its inputs; the backward recomputes the residual and writes the gradient of pred (and its
negative for target) in one pass. The extension ``mmdet_losses.ops._regression`` is compiled
when the package is built (``setup.py``), never at run time, and defines the kind ids
(:data:`FUSED_KINDS`), which the Triton kernels use too: without the built extension no fused
kernel runs, on any device. The maths is that of the pure-PyTorch path in
:mod:`mmdet_losses.functional.regression`, which is also the reference both kernels are tested
against and what runs wherever no kernel applies (inside a ``torch.func`` transform too). The
kernels are the PyTorch operator ``torch.ops.mmdet_losses.regression_loss`` (CPU and CUDA
implementations) with its autograd formula and the backward operator
``regression_loss_backward`` (:mod:`mmdet_losses.ops._library`), so ``torch.compile`` traces
it without a graph break.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reduction import check_avg_factor, reduce_weighted_sum
from ..validation import check_reduction
from . import gpu
from ._ext import ext_ids, load_extension
from ._library import EMPTY, kernel_allowed, kernel_op, register_gradient

__all__ = ['fused_regression_loss', 'FUSED_KINDS', 'kernels_available']

_EXT = load_extension('regression')

#: The losses the kernel computes, with their kind ids: defined once in C++
#: (``csrc/regression/regression_loss.cpp``, ``kKindNames``) and read from the extension
#: (empty when it is not built: no kernel runs then).
FUSED_KINDS = dict(ext_ids(_EXT, 'regression', {'kinds': {}})['kinds'])
if not FUSED_KINDS:
    _EXT = None  # a build older than its ids table: its ids cannot be trusted
_DTYPES = (torch.float32, torch.float64)


def kernels_available() -> bool:
    """Whether the compiled extension is importable."""
    return _EXT is not None


def _plain_regression(pred: Tensor, target: Tensor, weight: Optional[Tensor], kind: int,
                      beta: float, alpha: float, gamma: float, reduce: bool) -> Tensor:
    """What ``regression_loss_op`` computes, by the plain PyTorch element functions of
    :mod:`mmdet_losses.functional.regression` (differentiable any number of times)."""
    from ..functional import regression  # imported here: that module imports this one
    residual = pred - target
    if kind == FUSED_KINDS['l1']:
        loss = residual.abs()
    elif kind == FUSED_KINDS['mse']:
        loss = residual.square()
    elif kind == FUSED_KINDS['smooth_l1']:
        loss = regression._smooth_l1_elementwise(residual, beta)
    else:
        loss = regression._balanced_l1_elementwise(residual, alpha, gamma, beta)
    loss = regression.with_nonfinite(loss, residual)  # NaN/inf residual: NaN value and grad
    if weight is not None:
        loss = loss * weight
    return loss.sum() if reduce else loss


# ------------------------------------------------------------------- the operators
def _regression_forward(pred: Tensor, target: Tensor, weight: Optional[Tensor], kind: int,
                        beta: float, alpha: float, gamma: float, reduce: bool) -> Tensor:
    return _EXT.regression_loss_forward(pred, target, weight, kind, beta, alpha, gamma, reduce)


def _regression_forward_fake(pred, target, weight, kind, beta, alpha, gamma, reduce):
    return pred.new_empty(()) if reduce else torch.empty_like(
        pred, memory_format=torch.contiguous_format)


def _regression_backward(grad: Tensor, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                         kind: int, beta: float, alpha: float, gamma: float, scalar_grad: bool,
                         target_grad: bool) -> Tuple[Tensor, Tensor]:
    grad_pred, grad_target = _EXT.regression_loss_backward(
        grad, pred, target, weight, kind, beta, alpha, gamma, scalar_grad, target_grad)
    return grad_pred, grad_target if target_grad else pred.new_empty(EMPTY)


def _regression_backward_fake(grad, pred, target, weight, kind, beta, alpha, gamma,
                              scalar_grad, target_grad):
    grad_pred = torch.empty_like(pred, memory_format=torch.contiguous_format)
    return grad_pred, torch.empty_like(grad_pred) if target_grad else pred.new_empty(EMPTY)


def _regression_gradient(ctx, grad, pred, target, weight, kind, beta, alpha, gamma, reduce):
    # The gradient of a sum, or an element-wise gradient expanded from one value (the
    # 'none' loss summed afterwards), is read as one scalar rather than materialised.
    scalar = reduce or (grad.numel() > 0 and all(s == 0 for s in grad.stride()))
    if scalar and not reduce:
        grad = grad.as_strided((1,), (1,))
    grad_pred, grad_target = regression_loss_backward_op(
        grad, pred, target, weight, kind, beta, alpha, gamma, scalar, ctx.needs_input_grad[1])
    return grad_pred, grad_target, None


#: The weighted element-wise loss (``reduce=False``) or its sum (a 0-d tensor); the backward
#: recomputes from the inputs.
regression_loss_op = kernel_op('regression_loss', _regression_forward, _regression_forward_fake,
                               gpu=gpu.lazy_kernel('regression', 'regression_forward'))
regression_loss_backward_op = kernel_op('regression_loss_backward', _regression_backward,
                                        _regression_backward_fake,
                                        gpu=gpu.lazy_kernel('regression', 'regression_backward'))
register_gradient(regression_loss_op, 3, _regression_gradient, _plain_regression)


def _kernel_applies(pred: Tensor, target: Tensor, weight: Optional[Tensor]) -> bool:
    if not (isinstance(pred, Tensor) and isinstance(target, Tensor)) or not kernel_allowed():
        return False
    device = pred.device
    if target.device != device or not gpu.kernel_runs_on(device, _EXT is not None):
        return False
    if pred.dtype not in _DTYPES or target.dtype != pred.dtype or target.shape != pred.shape:
        return False
    if weight is None:
        return True
    # Only a weight of the loss's own shape; other broadcasts (and their errors), a weight that
    # needs a gradient, or one on another device take the plain path.
    return (isinstance(weight, Tensor) and weight.device == device
            and weight.shape == pred.shape and not weight.requires_grad
            and not weight.is_complex())


def fused_regression_loss(kind: str, pred: Tensor, target: Tensor,
                          weight: Optional[Tensor] = None, reduction: str = 'mean',
                          avg_factor=None, beta: float = 1.0, alpha: float = 0.5,
                          gamma: float = 1.5) -> Optional[Tensor]:
    """``weight_reduce_loss(loss(pred - target), weight, reduction, avg_factor)`` by the fused
    kernel, or None where none applies.

    The element-wise losses, with ``d = pred - target`` and ``x = |d|``: ``'l1'`` is ``x``,
    ``'mse'`` ``d^2``, ``'smooth_l1'`` ``0.5 x^2 / beta`` for ``x < beta`` else
    ``x - 0.5 beta`` (``beta > 0``; the caller maps ``beta = 0`` to ``'l1'``), and
    ``'balanced_l1'`` Libra R-CNN's loss with ``alpha``, ``gamma``, ``beta`` (see
    :func:`mmdet_losses.functional.balanced_l1_loss`). Parameters are assumed validated.

    Args:
        kind: 'l1', 'mse', 'smooth_l1' or 'balanced_l1'.
        pred: float32 or float64 tensor of any shape, on the CPU or (with Triton) on CUDA
            (half precision is upcast by the caller).
        target: tensor of pred's shape, dtype and device; it gets a gradient when it requires
            one.
        weight: None or a tensor of pred's shape (converted to pred's dtype) that needs no
            gradient.
        reduction, avg_factor: as for :func:`mmdet_losses.reduction.weight_reduce_loss`, whose
            errors (bad reduction, bad avg_factor) are raised here the same way.

    Returns:
        The reduced loss in pred's dtype, differentiable through the kernel's backward (and
        any number of times through the plain path when a graph of the gradient is asked),
        or None when the extension is not built, a tensor is on another device than pred or
        pred is on neither the CPU nor a CUDA device with Triton, the dtypes are
        not float32/float64 or differ, the shapes differ, the weight has another shape (a
        broadcast), needs a gradient, the kind is unknown, or 'sum' is asked with avg_factor
        (the plain path then raises).

    Example:
        >>> from mmdet_losses.ops.regression_kernel import fused_regression_loss
        >>> from mmdet_losses.ops.regression_kernel import kernels_available
        >>> pred, target = torch.tensor([0.5, 3.0]), torch.zeros(2)
        >>> loss = fused_regression_loss('smooth_l1', pred, target, reduction='sum')
        >>> loss if kernels_available() else torch.tensor(2.6250)  # None: not built
        tensor(2.6250)
    """
    if kind not in FUSED_KINDS or not _kernel_applies(pred, target, weight):
        return None
    check_reduction(reduction)
    if avg_factor is not None:
        check_avg_factor(avg_factor, pred.device)
        if reduction == 'sum':
            return None  # refused by weight_reduce_loss, with its message
    if weight is not None:
        weight = weight.to(pred.dtype)
    reduce = reduction != 'none'
    out = regression_loss_op(pred, target, weight, FUSED_KINDS[kind], float(beta),
                             float(alpha), float(gamma), reduce)
    if not reduce:
        return out
    return reduce_weighted_sum(out, pred.numel(), reduction, avg_factor)

