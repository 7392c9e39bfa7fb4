"""Second derivatives of the fused kernels: the backward of every fused ``autograd.Function``
computes its gradient with the C++ kernel (fast, but a tensor with no graph), except when the
caller asks for a graph of the gradient (``torch.autograd.grad(..., create_graph=True)``,
``backward(create_graph=True)``: gradient penalties, meta-learning). Then autograd runs the
backward with grad mode on, and :func:`plain_backward` recomputes the loss from the saved
inputs by the plain, differentiable PyTorch path (the reference the kernel is tested against)
and differentiates that with ``create_graph=True``: the gradient, and every derivative of it,
is the plain path's. The first-order path (no graph asked) is untouched.

Usage, in a Function's ``backward``::

    if graph_requested():
        return plain_backward(plain_fn, (pred, target, *params), ctx.needs_input_grad, grad)
    ...  # the kernel's backward
"""
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['graph_requested', 'plain_backward']


def graph_requested() -> bool:
    """Inside an ``autograd.Function.backward``: whether the caller asked for a graph of the
    gradient (``create_graph=True``; autograd then runs the backward with grad mode on)."""
    return torch.is_grad_enabled()


def plain_backward(plain: Callable[..., Tensor], inputs: Sequence,
                   needs_input_grad: Sequence[bool], grad_output: Tensor
                   ) -> Tuple[Optional[Tensor], ...]:
    """The gradients ``d <grad_output, plain(*inputs)> / d inputs[i]`` for every tensor input
    whose ``needs_input_grad[i]`` is set (None for the others), each with its graph, so that
    they can be differentiated again.

    ``inputs`` are the Function's own inputs as saved by ``ctx.save_for_backward`` (a saved
    input unpacks with its place in the caller's graph, so the gradient is a function of the
    caller's tensors) followed by its non-tensor arguments, in ``forward``'s order; ``plain``
    is the plain PyTorch expression of the Function's (first) output.

    Example:
        >>> from mmdet_losses.ops._double_backward import plain_backward
        >>> x = torch.tensor([3.0], requires_grad=True)
        >>> (g,) = plain_backward(torch.square, (x,), (True,), torch.ones(1))
        >>> g, torch.autograd.grad(g.sum(), x)[0]
        (tensor([6.], grad_fn=<MulBackward0>), tensor([2.]))
    """
    wanted = [i for i, (x, need) in enumerate(zip(inputs, needs_input_grad))
              if need and isinstance(x, Tensor)]
    grads = [None] * len(needs_input_grad)
    if not wanted:
        return tuple(grads)
    with torch.enable_grad():
        output = plain(*inputs)
        found = torch.autograd.grad(output, [inputs[i] for i in wanted], grad_output,
                                    create_graph=True, allow_unused=True)
    for i, grad in zip(wanted, found):
        grads[i] = grad
    return tuple(grads)
