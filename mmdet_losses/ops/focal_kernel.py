"""The fused CPU kernel of the sigmoid focal loss with class-index targets (optional).

``mmdet_losses.ops._focal`` (``csrc/focal/focal.cpp``) computes, in one pass over the logits
and without building a one-hot, the loss of every (anchor, class) element, weighted and summed
on the fly when the result is reduced. When the logits need a gradient, that same pass also
writes the weighted gradient (it shares the exponentials and logarithms with the loss) into
one (N, C) buffer, which the backward scales in place by ``grad_output`` and hands over as the
logits' gradient: the buffer the gradient needs anyway, and no second pass. Were the backward
run again (``retain_graph=True``), it recomputes the gradient from the saved logits and labels.
When a graph of the gradient is asked (``create_graph=True``: double backward), the gradient is
that of the pure-PyTorch path instead, differentiable again
(:mod:`mmdet_losses.ops._double_backward`).

The kernel is the PyTorch operator ``torch.ops.mmdet_losses.sigmoid_focal_loss_index`` (its
second output is that gradient buffer, empty unless asked for), with its autograd formula and
the backward operator ``sigmoid_focal_loss_index_backward`` (:mod:`mmdet_losses.ops._library`),
so ``torch.compile`` traces it without a graph break. Where the extension is not built, or
inside a ``torch.func`` transform, :func:`supports` is False and
:func:`mmdet_losses.functional.focal_loss` takes its pure-PyTorch path (the same maths, the
reference the kernel is tested against).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reduction import reduce_weighted_sum, weight_reduce_loss
from ..validation import check_reduction
from ._ext import load_extension
from ._library import EMPTY, kernel_allowed, kernel_op, register_gradient

__all__ = []

_ext = load_extension('focal')


def available() -> bool:
    """Whether the compiled kernel is built."""
    return _ext is not None


def supports(pred: Tensor, weight: Optional[Tensor]) -> bool:
    """Whether the kernel can compute this call: CPU float32/float64 logits (N, C), and a
    weight that is None, per anchor (N, 1) or per element (N, C), without gradient; no
    ``torch.func`` transform active."""
    if _ext is None or pred.device.type != 'cpu' or pred.dim() != 2 or not kernel_allowed():
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


def _focal_gradient(ctx, grad_output, pred, labels, weight, gamma, alpha, reduce_sum,
                    with_grad):
    grad, ctx.forward_grad = ctx.forward_grad, None  # used once: a second backward recomputes
    if grad is None:
        grad = sigmoid_focal_loss_index_backward_op(grad_output, pred, labels, weight, gamma,
                                                    alpha)
    elif type(grad) is Tensor:  # eager: scaled in place, no second (N, C) buffer
        grad = grad.mul_(grad_output)
    else:  # traced (torch.compile's functional graph): out of place, the compiler reuses it
        grad = grad * grad_output
    return grad, None, None


#: The weighted element-wise loss (N, C), or its sum (``reduce_sum``), and (``with_grad``) the
#: weighted gradient of that loss w.r.t. the logits, without gradient itself (else empty).
sigmoid_focal_loss_index_op = kernel_op('sigmoid_focal_loss_index', _focal_forward,
                                        _focal_forward_fake)
sigmoid_focal_loss_index_backward_op = kernel_op('sigmoid_focal_loss_index_backward',
                                                 _focal_backward, _focal_backward_fake)
register_gradient(sigmoid_focal_loss_index_op, 3, _focal_gradient, _plain_focal_index,
                  setup=_keep_forward_gradient)


# ------------------------------------------------------------------------------- the API
def sigmoid_focal_loss_index(pred: Tensor, labels: Tensor, weight: Optional[Tensor],
                             reduction: str, avg_factor, gamma: float, alpha: float) -> Tensor:
    """The sigmoid focal loss of logits (N, C) and labels (N,) (C is background) by the kernel,
    weighted and reduced with :func:`weight_reduce_loss`'s semantics.

    The kernel returns the weighted sum itself (reducing on the fly is what saves the (N, C)
    buffer), so only the final division happens here, by :func:`reduce_weighted_sum`.
    """
    check_reduction(reduction)
    pred = pred.contiguous()
    labels = labels.long().contiguous()
    if weight is not None:
        weight = weight.to(pred.dtype).contiguous()
    # The gradient comes out of the forward pass when the logits will need it.
    with_grad = pred.requires_grad and torch.is_grad_enabled()
    gamma, alpha = float(gamma), float(alpha)
    if reduction == 'none':
        loss, _ = sigmoid_focal_loss_index_op(pred, labels, weight, gamma, alpha, False,
                                              with_grad)
        return weight_reduce_loss(loss, None, 'none', avg_factor)
    total, _ = sigmoid_focal_loss_index_op(pred, labels, weight, gamma, alpha, True, with_grad)
    return reduce_weighted_sum(total, pred.numel(), reduction, avg_factor)
