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
Where the extension is not built, :func:`supports` is False and
:func:`mmdet_losses.functional.focal_loss` takes its pure-PyTorch path (the same maths, the
reference the kernel is tested against).
"""
from typing import Optional

import torch
from torch import Tensor

from ..reduction import reduce_weighted_sum, weight_reduce_loss
from ..validation import check_reduction
from ._double_backward import graph_requested, plain_backward
from ._ext import load_extension

__all__ = []

_ext = load_extension('focal')


def available() -> bool:
    """Whether the compiled kernel is built."""
    return _ext is not None


def supports(pred: Tensor, weight: Optional[Tensor]) -> bool:
    """Whether the kernel can compute this call: CPU float32/float64 logits (N, C), and a
    weight that is None, per anchor (N, 1) or per element (N, C), without gradient."""
    if _ext is None or pred.device.type != 'cpu' or pred.dim() != 2:
        return False
    if pred.dtype not in (torch.float32, torch.float64):
        return False
    if weight is None:
        return True
    return (not weight.requires_grad and weight.dim() == 2 and weight.shape[0] == pred.shape[0]
            and weight.shape[1] in (1, pred.shape[1]))


def _plain_focal_index(pred: Tensor, labels: Tensor, weight: Optional[Tensor], gamma: float,
                       alpha: float, reduce_sum: bool) -> Tensor:
    """What :class:`_FocalIndex` computes, by the pure-PyTorch path of
    :func:`mmdet_losses.functional.focal_loss` (differentiable any number of times)."""
    from ..functional.cls_focal import _focal_index_torch  # imported here: it imports this one
    loss = _focal_index_torch(pred, labels, gamma, alpha, False)
    if weight is not None:
        loss = loss * weight
    return loss.sum() if reduce_sum else loss


class _FocalIndex(torch.autograd.Function):
    """The weighted element-wise loss (N, C), or its sum; the gradient of the logits comes from
    the forward pass, or the kernel's backward, or (when a graph of the gradient is asked) the
    plain path (:mod:`mmdet_losses.ops._double_backward`)."""

    @staticmethod
    def forward(ctx, pred, labels, weight, gamma, alpha, reduce_sum):
        ctx.save_for_backward(pred, labels, weight)
        ctx.params = (gamma, alpha)
        ctx.reduce_sum = reduce_sum
        ctx.grad = None
        if not ctx.needs_input_grad[0]:
            return _ext.forward(pred, labels, weight, gamma, alpha, reduce_sum)
        loss, ctx.grad = _ext.forward_with_grad(pred, labels, weight, gamma, alpha, reduce_sum)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        grad, ctx.grad = ctx.grad, None  # used once: a second backward recomputes
        if graph_requested():  # create_graph=True: differentiable, by the plain path
            pred, labels, weight = ctx.saved_tensors
            return plain_backward(_plain_focal_index,
                                  (pred, labels, weight, *ctx.params, ctx.reduce_sum),
                                  ctx.needs_input_grad, grad_output)
        if grad is not None:
            return grad.mul_(grad_output), None, None, None, None, None
        pred, labels, weight = ctx.saved_tensors
        gamma, alpha = ctx.params
        grad = _ext.backward(grad_output.contiguous(), pred, labels, weight, gamma, alpha)
        return grad, None, None, None, None, None


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
    if reduction == 'none':
        loss = _FocalIndex.apply(pred, labels, weight, gamma, alpha, False)
        return weight_reduce_loss(loss, None, 'none', avg_factor)
    total = _FocalIndex.apply(pred, labels, weight, gamma, alpha, True)
    return reduce_weighted_sum(total, pred.numel(), reduction, avg_factor)
