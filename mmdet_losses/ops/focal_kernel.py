"""The fused kernels of the sigmoid focal loss: class-index targets (C++ on the CPU, Triton on
CUDA) and one-hot or soft targets (Triton on CUDA).

``mmdet_losses.ops._focal`` (``csrc/focal/focal.cpp``) computes, in one pass over the logits
and without building a one-hot, the loss of every (anchor, class) element, weighted and summed
on the fly when the result is reduced. When the logits need a gradient, that same pass also
writes the weighted gradient (it shares the exponentials and logarithms with the loss) into
one (N, C) buffer, which the backward scales in place by ``grad_output`` and hands over as the
logits' gradient: the buffer the gradient needs anyway, and no second pass. Were the backward
run again (``retain_graph=True``), it recomputes the gradient from the saved logits and labels.
When a graph of the gradient is asked (``create_graph=True``: double backward), the gradient is
that of the pure-PyTorch path instead, differentiable again
(:mod:`mmdet_losses.ops._double_backward`). On CUDA (where Triton is available) the Triton
kernels of :mod:`mmdet_losses.ops.gpu.focal` do the same work, registered as the operators'
CUDA implementations; they need nothing from the C++ extension.

The kernel is the PyTorch operator ``torch.ops.mmdet_losses.sigmoid_focal_loss_index`` (its
second output is that gradient buffer, empty unless asked for), with its autograd formula and
the backward operator ``sigmoid_focal_loss_index_backward`` (:mod:`mmdet_losses.ops._library`),
so ``torch.compile`` traces it without a graph break. ``sigmoid_focal_loss_soft`` and its
backward are the same for targets of pred's shape (one-hot, soft or IoU-aware scores): their
CUDA implementation is the Triton kernel; their CPU implementation is the plain PyTorch maths
(there is no C++ kernel for soft targets, so on the CPU :func:`supports_soft` is False and the
losses keep their plain path; the operator's CPU implementation serves direct calls, and is
replaced by the Triton kernel in the interpreter test set-up of :mod:`mmdet_losses.ops.gpu`).
Where no kernel applies (the extension not built on the CPU, no Triton on CUDA, another device
or dtype, inside a ``torch.func`` transform), :func:`supports` and :func:`supports_soft` are
False and :func:`mmdet_losses.functional.focal_loss` takes its pure-PyTorch path (the same
maths, the reference the kernels are tested against).
"""
from types import SimpleNamespace
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reduction import reduce_weighted_sum, weight_reduce_loss
from ..validation import check_reduction
from . import gpu
from ._ext import load_extension
from ._library import EMPTY, KernelOp, kernel_allowed, kernel_op, register_gradient

__all__ = []

_ext = load_extension('focal')


def available() -> bool:
    """Whether the compiled kernel is built."""
    return _ext is not None


def supports(pred: Tensor, weight: Optional[Tensor]) -> bool:
    """Whether the kernel can compute this call: float32/float64 logits (N, C) on the CPU (the
    C++ kernel built) or on CUDA (Triton available), and a weight that is None, per anchor
    (N, 1) or per element (N, C), without gradient; no ``torch.func`` transform active."""
    if pred.dim() != 2 or not kernel_allowed():
        return False
    if not gpu.kernel_runs_on(pred.device, _ext is not None):
        return False
    if pred.dtype not in (torch.float32, torch.float64):
        return False
    if weight is None:
        return True
    return (not weight.requires_grad and weight.dim() == 2 and weight.shape[0] == pred.shape[0]
            and weight.shape[1] in (1, pred.shape[1]))


def _plain_focal_index(pred: Tensor, labels: Tensor, weight: Optional[Tensor], gamma: float,
                       alpha: float, reduce_sum: bool, with_grad: bool = False) -> Tensor:
    """What ``sigmoid_focal_loss_index_op`` computes, by the pure-PyTorch path of
    :func:`mmdet_losses.functional.focal_loss` (differentiable any number of times)."""
    from ..functional.cls_focal import _focal_index_torch  # imported here: it imports this one
    loss = _focal_index_torch(pred, labels, gamma, alpha, False)
    if weight is not None:
        loss = loss * weight
    return loss.sum() if reduce_sum else loss


# ------------------------------------------------------------------- the operators
def _focal_forward(pred: Tensor, labels: Tensor, weight: Optional[Tensor], gamma: float,
                   alpha: float, reduce_sum: bool, with_grad: bool) -> Tuple[Tensor, Tensor]:
    if with_grad:
        loss, grad = _ext.forward_with_grad(pred, labels, weight, gamma, alpha, reduce_sum)
        return loss, grad
    return _ext.forward(pred, labels, weight, gamma, alpha, reduce_sum), pred.new_empty(EMPTY)


def _focal_forward_fake(pred, labels, weight, gamma, alpha, reduce_sum, with_grad):
    loss = pred.new_empty(()) if reduce_sum else torch.empty_like(pred)
    return loss, torch.empty_like(pred) if with_grad else pred.new_empty(EMPTY)


def _focal_backward(grad_output: Tensor, pred: Tensor, labels: Tensor,
                    weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    return _ext.backward(grad_output.contiguous(), pred, labels, weight, gamma, alpha)


def _focal_backward_fake(grad_output, pred, labels, weight, gamma, alpha):
    return torch.empty_like(pred)


def _keep_forward_gradient(ctx, inputs, output):
    """The weighted gradient the forward computed (with_grad), for the backward to scale."""
    ctx.mark_non_differentiable(output[1])
    ctx.forward_grad = output[1] if inputs[-1] else None


def _focal_gradient(backward_op):
    """The autograd backward of a focal operator whose gradient is ``backward_op``."""
    def gradient(ctx, grad_output, pred, target, weight, gamma, alpha, reduce_sum, with_grad):
        # used once: a second backward recomputes
        grad, ctx.forward_grad = ctx.forward_grad, None
        if grad is None:
            grad = backward_op(grad_output, pred, target, weight, gamma, alpha)
        elif type(grad) is Tensor:  # eager: scaled in place, no second (N, C) buffer
            grad = grad.mul_(grad_output)
        else:  # traced (torch.compile's functional graph): out of place, the compiler reuses it
            grad = grad * grad_output
        return grad, None, None
    return gradient


#: The weighted element-wise loss (N, C), or its sum (``reduce_sum``), and (``with_grad``) the
#: weighted gradient of that loss w.r.t. the logits, without gradient itself (else empty).
sigmoid_focal_loss_index_op = kernel_op('sigmoid_focal_loss_index', _focal_forward,
                                        _focal_forward_fake,
                                        gpu=gpu.lazy_kernel('focal', 'focal_forward'))
sigmoid_focal_loss_index_backward_op = kernel_op('sigmoid_focal_loss_index_backward',
                                                 _focal_backward, _focal_backward_fake,
                                                 gpu=gpu.lazy_kernel('focal', 'focal_backward'))
register_gradient(sigmoid_focal_loss_index_op, 3,
                  _focal_gradient(sigmoid_focal_loss_index_backward_op), _plain_focal_index,
                  setup=_keep_forward_gradient)


# ------------------------------------------------------- soft targets: the plain CPU maths
def _plain_focal_soft(pred: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,
                      alpha: float, reduce_sum: bool, with_grad: bool = False) -> Tensor:
    """What ``sigmoid_focal_loss_soft_op`` computes, by the pure-PyTorch path of
    :func:`mmdet_losses.functional.focal_loss` for soft targets (differentiable any number of
    times)."""
    from ..functional.cls_focal import _sigmoid_focal_term, nan_if_nonfinite
    loss = nan_if_nonfinite(_sigmoid_focal_term(pred, target, gamma, alpha, False), pred, target)
    if weight is not None:
        loss = loss * weight
    return loss.sum() if reduce_sum else loss


def _soft_gradient_plain(pred: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,
                         alpha: float) -> Tensor:
    """The weighted gradient of :func:`_plain_focal_soft`'s element-wise loss, by the analytic
    backward of the plain path's ``_SigmoidFocalTerm`` (called as a function: autograd does not
    record inside an operator's implementation)."""
    from ..functional.cls_focal import _SigmoidFocalTerm, nan_if_nonfinite
    ctx = SimpleNamespace(saved_tensors=(pred, target), params=(gamma, alpha, False))
    grad = _SigmoidFocalTerm.backward(ctx, torch.ones_like(pred))[0]
    grad = nan_if_nonfinite(grad, pred, target)
    return grad if weight is None else grad * weight


def _focal_soft_forward(pred: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,
                        alpha: float, reduce_sum: bool,
                        with_grad: bool) -> Tuple[Tensor, Tensor]:
    with torch.no_grad():
        loss = _plain_focal_soft(pred, target, weight, gamma, alpha, reduce_sum)
        grad = (_soft_gradient_plain(pred, target, weight, gamma, alpha) if with_grad
                else pred.new_empty(EMPTY))
    return loss, grad


def _focal_soft_backward(grad_output: Tensor, pred: Tensor, target: Tensor,
                         weight: Optional[Tensor], gamma: float, alpha: float) -> Tensor:
    with torch.no_grad():
        grad = _soft_gradient_plain(pred, target, weight, gamma, alpha)
        return grad * grad_output.to(pred.dtype)


#: As ``sigmoid_focal_loss_index_op`` for targets of pred's shape (in pred's dtype).
sigmoid_focal_loss_soft_op = kernel_op('sigmoid_focal_loss_soft', _focal_soft_forward,
                                       _focal_forward_fake,
                                       gpu=gpu.lazy_kernel('focal', 'focal_soft_forward'))
sigmoid_focal_loss_soft_backward_op = kernel_op(
    'sigmoid_focal_loss_soft_backward', _focal_soft_backward, _focal_backward_fake,
    gpu=gpu.lazy_kernel('focal', 'focal_soft_backward'))
register_gradient(sigmoid_focal_loss_soft_op, 3,
                  _focal_gradient(sigmoid_focal_loss_soft_backward_op), _plain_focal_soft,
                  setup=_keep_forward_gradient)


# ------------------------------------------------------------------------------- the API
def sigmoid_focal_loss_index(pred: Tensor, labels: Tensor, weight: Optional[Tensor],
                             reduction: str, avg_factor, gamma: float, alpha: float) -> Tensor:
    """The sigmoid focal loss of logits (N, C) and labels (N,) (C is background) by the kernel,
    weighted and reduced with :func:`weight_reduce_loss`'s semantics.

    The kernel returns the weighted sum itself (reducing on the fly is what saves the (N, C)
    buffer), so only the final division happens here, by :func:`reduce_weighted_sum`.
    """
    return _reduced(sigmoid_focal_loss_index_op, pred, labels.long(), weight, reduction,
                    avg_factor, gamma, alpha)


def _reduced(op: KernelOp, pred: Tensor, target: Tensor, weight: Optional[Tensor],
             reduction: str, avg_factor, gamma: float, alpha: float) -> Tensor:
    """A focal operator's loss, weighted and reduced with :func:`weight_reduce_loss`'s
    semantics: the operator sums it for 'mean' and 'sum' (never writing the (N, C) loss), and
    writes the logits' gradient in its forward pass when they will need one."""
    check_reduction(reduction)
    pred = pred.contiguous()
    if weight is not None:
        weight = weight.to(pred.dtype).contiguous()
    with_grad = pred.requires_grad and torch.is_grad_enabled()
    gamma, alpha = float(gamma), float(alpha)
    reduce_sum = reduction != 'none'
    loss, _ = op(pred, target.contiguous(), weight, gamma, alpha, reduce_sum, with_grad)
    if not reduce_sum:
        return weight_reduce_loss(loss, None, 'none', avg_factor)
    return reduce_weighted_sum(loss, pred.numel(), reduction, avg_factor)


def supports_soft(pred: Tensor, target: Tensor, weight: Optional[Tensor]) -> bool:
    """Whether the soft-target kernel computes this call: float32/float64 logits of at least
    one dim where the Triton kernels run (CUDA; the CPU only in the interpreter test set-up:
    there is no C++ kernel for soft targets), a target tensor of pred's shape, and a weight that
    is None, of pred's shape or (N, 1) for 2-D logits, without gradient; no ``torch.func``
    transform active."""
    if not isinstance(target, Tensor) or pred.dim() < 1 or not kernel_allowed():
        return False
    if not gpu.applies(pred.device) or pred.dtype not in (torch.float32, torch.float64):
        return False
    if target.shape != pred.shape or target.device != pred.device:
        return False
    if weight is None:
        return True
    return (not weight.requires_grad and weight.device == pred.device
            and (weight.shape == pred.shape
                 or pred.dim() == 2 and weight.shape == (pred.shape[0], 1)))


def sigmoid_focal_loss_soft(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                            reduction: str, avg_factor, gamma: float, alpha: float) -> Tensor:
    """The sigmoid focal loss of logits and targets of their shape (one-hot, soft) by the
    kernel, weighted and reduced with :func:`weight_reduce_loss`'s semantics (as
    :func:`sigmoid_focal_loss_index`)."""
    return _reduced(sigmoid_focal_loss_soft_op, pred, target.detach().to(pred.dtype), weight,
                    reduction, avg_factor, gamma, alpha)
