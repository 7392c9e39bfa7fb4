"""The compiled kernels as PyTorch operators, ``torch.ops.mmdet_losses.<name>``.

Every kernel entry point (a pybind function of ``mmdet_losses.ops._iou``, ``_focal``,
``_regression``) is registered with :func:`torch.library.custom_op` by :func:`kernel_op`,
with a fake implementation that gives the outputs' shapes and dtypes without computing them.
So ``torch.compile`` traces a loss through its kernel as one graph node (no graph break),
FakeTensor tracing and ``torch.export`` see the right shapes, and the operator runs on
``meta`` tensors. :func:`register_gradient` registers the autograd formula of a loss
operator: its backward is another kernel operator, except when a graph of the gradient is
asked (``create_graph=True``): then the gradient is that of the plain, differentiable PyTorch
path (:mod:`mmdet_losses.ops._double_backward`), as before the kernels were operators.

``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``, ...): the operators have no vmap
rule, and the autograd formula of a custom operator is not one ``torch.func`` accepts, so
under an active transform the losses do not call them (:func:`kernel_allowed` is False) and
take their plain PyTorch path, the same maths, which every transform supports.

Example:
    >>> from mmdet_losses.ops import iou_kernels  # registers the IoU-family operators
    >>> torch.ops.mmdet_losses.iou_loss.default
    <OpOverload(op='mmdet_losses.iou_loss', overload='default')>
    >>> boxes = torch.empty(5, 4, device='meta')  # shapes only, no kernel runs
    >>> torch.ops.mmdet_losses.iou_loss(boxes, boxes, 3, 1e-7, 0.5, True).shape
    torch.Size([5])
"""
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from ._double_backward import graph_requested, plain_backward
from .gpu import TRITON_ON_CPU

__all__ = ['NAMESPACE', 'kernel_op', 'register_gradient', 'kernel_allowed', 'EMPTY']

NAMESPACE = 'mmdet_losses'
#: The shape of an output a call does not produce (a custom operator cannot return None).
EMPTY = (0,)


def kernel_allowed() -> bool:
    """Whether a loss may call its kernel operator: not inside a ``torch.func`` transform
    (traced by ``torch.compile`` as a constant, no graph break)."""
    return not torch._C._are_functorch_transforms_active()


class KernelOp:
    """A kernel operator (``op``, the ``CustomOpDef``) and its eager shortcut.

    Calling it is calling the operator, with the same result. Eagerly, on ordinary CPU (or
    CUDA) tensors, it calls the kernel itself, through a plain ``autograd.Function`` with the
    operator's autograd formula, instead of going through the dispatcher: the Python layers of
    a ``custom_op`` call (schema checks, the autograd wrapper, the dispatch) cost about 0.2 ms
    per forward and backward, more than a loss of 100k elements takes. While compiling, and
    on meta, fake or other tensors, the operator runs, so tracing sees one graph node.
    """

    def __init__(self, op, cpu: Callable, gpu: Optional[Callable]):
        self.op = op
        self._impls = {'cpu': cpu, 'cuda': gpu}
        self._function: Optional[type] = None  # the eager autograd.Function, once registered

    def __call__(self, *args):
        if torch.compiler.is_compiling():
            return self.op(*args)
        tensors = [a for a in args if isinstance(a, Tensor)]
        device = tensors[0].device.type
        impl = self._impls.get(device)
        # Only plain tensors of one device (not FakeTensor, functorch or other subclasses).
        if impl is None or any(type(t) is not Tensor or t.device.type != device
                               for t in tensors):
            return self.op(*args)
        if self._function is None or not (
                torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
            return impl(*args)
        return self._function.apply(*args)

    def __repr__(self) -> str:
        return f'KernelOp({self.op._qualname})'


def kernel_op(name: str, kernel: Callable, fake: Callable,
              gpu: Optional[Callable] = None) -> KernelOp:
    """Register ``kernel`` (a function with type annotations, which calls a compiled kernel
    on CPU tensors and returns new tensors) as the CPU operator ``mmdet_losses::<name>``,
    with ``fake`` (same signature: empty outputs of the right shapes and dtypes) for
    FakeTensor and meta tensors, and ``gpu`` (same signature, a Triton kernel: see
    :mod:`mmdet_losses.ops.gpu`), when given, as its CUDA implementation. Returns the
    :class:`KernelOp` (calling it, or ``torch.ops.mmdet_losses.<name>``, runs the operator)."""
    op = torch.library.custom_op(f'{NAMESPACE}::{name}', kernel, mutates_args=(),
                                 device_types='cpu')
    op.register_fake(fake)
    cpu = kernel
    if gpu is not None:
        op.register_kernel('cuda', gpu)
        if TRITON_ON_CPU:  # the interpreter test set-up: Triton in place of the C++ kernel
            op.register_kernel('cpu', gpu)
            cpu = gpu
    return KernelOp(op, cpu, gpu)


def register_gradient(kernel: KernelOp, n_tensors: int, backward: Callable,
                      plain: Callable[..., Tensor],
                      setup: Optional[Callable] = None) -> None:
    """Register the autograd formula of the loss operator ``kernel``, whose first ``n_tensors``
    inputs are tensors (or None) and the rest parameters.

    The forward saves those tensors (``ctx.saved_tensors``) and the parameters
    (``ctx.params``); ``setup(ctx, inputs, output)``, when given, keeps anything else (and
    marks outputs without a gradient). The backward returns
    ``backward(ctx, grad, *tensors, *params)`` (the gradients of the tensor inputs, by a
    kernel operator; a gradient not needed may be anything, it is dropped), or, when a graph
    of the gradient is asked, the gradient of ``plain(*tensors, *params)`` (the plain PyTorch
    expression of the operator's first output), differentiable again. Only the first
    output's gradient is used: any other output has none.
    """
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.params = tuple(inputs[n_tensors:])
        # No zeros for the gradients of the other outputs, which are never used (a (N, C)
        # fill for the focal kernel's gradient buffer).
        ctx.set_materialize_grads(False)
        if setup is not None:
            setup(ctx, inputs, output)

    def gradient(ctx, grad: Optional[Tensor], *unused_grads):
        if grad is None:  # only another output reached the loss: no gradient
            return (None,) * len(ctx.needs_input_grad)
        tensors = ctx.saved_tensors
        if graph_requested():  # create_graph=True: differentiable, by the plain path
            return plain_backward(plain, (*tensors, *ctx.params), ctx.needs_input_grad, grad)
        grads = backward(ctx, grad, *tensors, *ctx.params)
        needs: Sequence[bool] = ctx.needs_input_grad
        return tuple(g if need else None for g, need in zip(grads, needs[:n_tensors])) + (
            (None,) * (len(needs) - n_tensors))

    kernel.op.register_autograd(gradient, setup_context=setup_context)

    # The eager shortcut's Function: the same formula around the kernel itself. Its forward
    # takes ``ctx`` (no separate setup_context, whose argument binding through ``inspect``
    # would cost more than a small kernel); torch.func never sees it (kernel_allowed).
    def forward(ctx, *args):
        output = kernel._impls[next(a for a in args if isinstance(a, Tensor)).device.type](*args)
        setup_context(ctx, args, output)
        return output

    # Its graph node is '<name>_kernelBackward'.
    kernel._function = type(f'{kernel.op._name}_kernel', (torch.autograd.Function,), {
        'forward': staticmethod(forward), 'backward': staticmethod(gradient)})
