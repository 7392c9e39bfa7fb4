"""Fused kernels for the losses of the IoU family on aligned box pairs: C++ on the CPU,
Triton on CUDA.

:func:`fused_iou_loss` (IoU, GIoU, DIoU, CIoU) and :func:`fused_variant_loss` (every other
variant) run one C++ pass per box pair forward (the per-pair loss) and one backward (the
gradient, recomputing the geometry from the saved boxes), both spread over the intra-op
threads with ``at::parallel_for``; no intermediate tensor is allocated. The first four have a
hand-written analytic backward (``csrc/iou/iou_loss.cpp``); the others are written once over
a dual-number type whose forward-mode derivatives give the gradient in the same pass
(``csrc/iou/iou_variants.cpp``). The extension ``mmdet_losses.ops._iou`` is compiled when the
package is built (``setup.py``), never at run time. It computes exactly the maths of the
pure-PyTorch reference in :mod:`mmdet_losses.functional.iou` over :mod:`mmdet_losses.boxes`
(eps placement and gradients at ties and clamps included) and is tested against it.

On CUDA tensors the same operators run Triton kernels (:mod:`mmdet_losses.ops.gpu.iou`, over
the dual numbers of :mod:`mmdet_losses.ops.gpu.dual`: every loss written once, its gradient
by forward-mode derivatives), registered as the operators' CUDA implementations; they use the
ids of the compiled extension, so they run where it is built and Triton is available
(:func:`mmdet_losses.ops.gpu.applies`).

The kernels are PyTorch operators (:mod:`mmdet_losses.ops._library`):
``torch.ops.mmdet_losses.iou_loss`` and ``iou_variant_loss`` with their autograd formulas,
and their backward operators ``iou_loss_backward`` and ``iou_variant_loss_backward``; so
``torch.compile`` traces them without a graph break. Where no kernel applies (extension not
built, a tensor neither on the CPU nor on a CUDA device with Triton, a dtype other than
float32/float64, inside a ``torch.func`` transform) the functions return None and the caller
takes the pure-PyTorch path.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ._ext import ext_ids as _ext_ids, load_extension
from ._library import EMPTY, kernel_allowed, kernel_op, register_gradient
from .gpu import kernel_runs_on, lazy_kernel

__all__ = ['fused_iou_loss', 'fused_variant_loss', 'FUSED_MODES', 'FUSED_VARIANTS',
           'FUSED_BASES', 'kernels_available']

_EXT = load_extension('iou')

#: The kernels' ids, defined once in C++ (``csrc/iou/ids.h``) and read from the extension
#: (empty when it is not built: no kernel runs then). FUSED_MODES: the losses of
#: :func:`fused_iou_loss` ('iou', 'iou_square' and 'iou_log' are IoULoss's modes 'linear',
#: 'square' and 'log'); FUSED_VARIANTS: those of :func:`fused_variant_loss`; FUSED_BASES: the
#: base losses of Alpha-IoU (the first four), Inner-IoU and Focaler-IoU.
_IDS = _ext_ids(_EXT, 'iou', {'modes': {}, 'variants': {}, 'bases': {}})
if not _IDS['modes']:
    _EXT = None  # a build older than its ids table: its ids cannot be trusted
FUSED_MODES = dict(_IDS['modes'])
FUSED_VARIANTS = dict(_IDS['variants'])
FUSED_BASES = dict(_IDS['bases'])
_DTYPES = (torch.float32, torch.float64)


def kernels_available() -> bool:
    """Whether the compiled extension is importable."""
    return _EXT is not None


def _kernel_applies(pred, target) -> bool:
    """Built, (N, 4) tensors of one dtype, float32 or float64, on the CPU or on a CUDA device
    with Triton, no ``torch.func`` transform active."""
    return (isinstance(pred, Tensor) and isinstance(target, Tensor)
            and pred.device == target.device and kernel_runs_on(pred.device, _EXT is not None)
            and pred.dtype in _DTYPES and target.dtype == pred.dtype
            and pred.dim() == 2 and pred.shape[-1] == 4 and target.shape == pred.shape
            and kernel_allowed())


_MODE_NAMES = {i: name for name, i in FUSED_MODES.items()}
_VARIANT_NAMES = {i: name for name, i in FUSED_VARIANTS.items()}
_BASE_NAMES = {i: name for name, i in FUSED_BASES.items()}
#: The variants whose plain element takes ``base=``.
_WITH_BASE = ('alpha_iou', 'inner_iou', 'focaler_iou')


def _plain_iou(pred: Tensor, target: Tensor, mode: int, eps: float, gate: float,
               gated: bool) -> Tensor:
    """What ``iou_loss_op`` computes, by the plain PyTorch reference (differentiable any
    number of times)."""
    from ..boxes import BoxPair  # imported here: the functional modules import this one
    from ..functional.iou import _plain_family_element
    return _plain_family_element(BoxPair(pred, target), _MODE_NAMES[mode], eps,
                                 gate if gated else None)


def _plain_variant(pred: Tensor, target: Tensor, variant: int, base: int, eps: float,
                   params) -> Tensor:
    """The loss (first output) of ``iou_variant_loss_op`` by the plain PyTorch reference."""
    from ..boxes import BoxPair  # imported here: the functional modules import this one
    from ..functional.iou import plain_variant_loss
    name = _VARIANT_NAMES[variant]
    loss = plain_variant_loss(BoxPair(pred, target), name, eps, tuple(params),
                              _BASE_NAMES[base] if name in _WITH_BASE else None)
    return loss[0] if isinstance(loss, tuple) else loss  # Wise-IoU: (loss, 1 - IoU)


# ------------------------------------------------------------------- the operators
def _iou_forward(pred: Tensor, target: Tensor, mode: int, eps: float, iou_gate: float,
                 has_gate: bool) -> Tensor:
    return _EXT.iou_loss_forward(pred, target, mode, eps, iou_gate, has_gate)


def _iou_forward_fake(pred, target, mode, eps, iou_gate, has_gate):
    return pred.new_empty(pred.shape[:1])


def _iou_backward(grad: Tensor, pred: Tensor, target: Tensor, mode: int, eps: float,
                  iou_gate: float, has_gate: bool,
                  target_grad: bool) -> Tuple[Tensor, Tensor]:
    grad_pred, grad_target = _EXT.iou_loss_backward(grad, pred, target, mode, eps, iou_gate,
                                                    has_gate, target_grad)
    return grad_pred, grad_target if target_grad else pred.new_empty(EMPTY)


def _boxes_backward_fake(grad, pred, target, *params_and_target_grad):
    target_grad = params_and_target_grad[-1]
    return (torch.empty_like(pred, memory_format=torch.contiguous_format),
            torch.empty_like(target, memory_format=torch.contiguous_format) if target_grad
            else pred.new_empty(EMPTY))


#: Per-pair loss (N,) of (N, 4) xyxy boxes; its backward recomputes from the boxes.
iou_loss_op = kernel_op('iou_loss', _iou_forward, _iou_forward_fake,
                        gpu=lazy_kernel('iou', 'iou_forward'))
iou_loss_backward_op = kernel_op('iou_loss_backward', _iou_backward, _boxes_backward_fake,
                                 gpu=lazy_kernel('iou', 'iou_backward'))


def _boxes_gradient(backward_op):
    def backward(ctx, grad, pred, target, *params):
        return backward_op(grad, pred, target, *params, ctx.needs_input_grad[1])
    return backward


register_gradient(iou_loss_op, 2, _boxes_gradient(iou_loss_backward_op), _plain_iou)


def _variant_forward(pred: Tensor, target: Tensor, variant: int, base: int, eps: float,
                     params: List[float]) -> Tuple[Tensor, Tensor]:
    loss, l_iou = _EXT.iou_variant_forward(pred, target, variant, base, eps, params)
    return loss, pred.new_empty(EMPTY) if l_iou is None else l_iou


def _variant_forward_fake(pred, target, variant, base, eps, params):
    n = pred.shape[:1]
    return pred.new_empty(n), pred.new_empty(n if variant == FUSED_VARIANTS.get('wiou') else EMPTY)


def _variant_backward(grad: Tensor, pred: Tensor, target: Tensor, variant: int, base: int,
                      eps: float, params: List[float],
                      target_grad: bool) -> Tuple[Tensor, Tensor]:
    grad_pred, grad_target = _EXT.iou_variant_backward(grad, pred, target, variant, base, eps,
                                                       params, target_grad)
    return grad_pred, grad_target if target_grad else pred.new_empty(EMPTY)


def _no_gradient_of_l_iou(ctx, inputs, output):
    ctx.mark_non_differentiable(output[1])


#: Per-pair loss (N,) of a variant, and Wise-IoU's 1 - IoU (N,) without gradient (the
#: other variants: an empty tensor).
iou_variant_loss_op = kernel_op('iou_variant_loss', _variant_forward, _variant_forward_fake,
                                gpu=lazy_kernel('iou', 'variant_forward'))
iou_variant_loss_backward_op = kernel_op('iou_variant_loss_backward', _variant_backward,
                                         _boxes_backward_fake,
                                         gpu=lazy_kernel('iou', 'variant_backward'))
register_gradient(iou_variant_loss_op, 2, _boxes_gradient(iou_variant_loss_backward_op),
                  _plain_variant, setup=_no_gradient_of_l_iou)


# ------------------------------------------------------------------------------- the API
def fused_iou_loss(pred: Tensor, target: Tensor, mode: str, eps: float,
                   iou_gate: Optional[float]) -> Optional[Tensor]:
    """Per-pair loss of aligned xyxy boxes by the fused kernel, or None where none applies.

    The losses are those of :mod:`mmdet_losses.boxes` (formulas and eps placement in its
    docstring): ``'iou'`` is ``1 - max(IoU, eps)``, ``'giou'`` ``1 - GIoU``, ``'diou'``
    ``1 - DIoU`` and ``'ciou'`` ``1 - CIoU``, where CIoU's ``alpha`` has no gradient and is 0
    where ``IoU <= iou_gate`` (``iou_gate=None``: no gate). ``'iou_square'`` and ``'iou_log'``
    are ``1 - max(IoU, eps)^2`` and ``-log max(IoU, eps)`` (IoULoss's other modes).

    Args:
        pred: (N, 4) predicted boxes, float32 or float64, on the CPU or a CUDA device.
        target: (N, 4) target boxes of pred's dtype and device; it gets a gradient when it
            requires one.
        mode: 'iou', 'giou', 'diou', 'ciou', 'iou_square' or 'iou_log'.
        eps: the reference's eps.
        iou_gate: CIoU's gate, a float or None.

    Returns:
        The (N,) loss, differentiable through the kernel's analytic backward (and any number
        of times through the plain path when a graph of the gradient is asked), or None
        when the extension is not built, a tensor is on no kernel's device (the CPU, a CUDA
        device with Triton), the dtypes are not both float32 or both float64, the shapes are
        not (N, 4), or the mode is unknown.

    Example:
        >>> from mmdet_losses.ops.iou_kernels import fused_iou_loss, kernels_available
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
        >>> target = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
        >>> loss = fused_iou_loss(pred, target, 'diou', 1e-7, None)
        >>> loss.detach() if kernels_available() else torch.tensor([0.9683])  # None: not built
        tensor([0.9683])
    """
    if mode not in FUSED_MODES or not _kernel_applies(pred, target):
        return None
    gate = 0.0 if iou_gate is None else float(iou_gate)
    return iou_loss_op(pred, target, FUSED_MODES[mode], float(eps), gate, iou_gate is not None)


def fused_variant_loss(pred: Tensor, target: Tensor, variant: str, eps: float,
                       params: Sequence[float] = (), base: str = 'iou'):
    """Per-pair loss of aligned xyxy boxes for an IoU-family variant by the fused kernel, or
    None where none applies.

    The losses are those of :mod:`mmdet_losses.functional.iou` (``eiou_loss`` ...), with
    ``params`` their own parameters in this order: 'eiou' (gamma), 'siou' (theta), 'wiou' (none;
    the v1 loss), 'alpha_iou' (alpha), 'mpdiou' (W^2 + H^2 of the image), 'inner_iou' (ratio),
    'focaler_iou' (d, u), 'shape_iou' (scale), 'nwd' (constant). ``base`` is the base loss of
    'alpha_iou' ('iou', 'giou', 'diou', 'ciou'), 'inner_iou' and 'focaler_iou' (those and
    'siou', 'eiou'); the other variants ignore it.

    Args:
        pred: (N, 4) predicted boxes, float32 or float64, on the CPU or a CUDA device.
        target: (N, 4) target boxes of pred's dtype and device; it gets a gradient when it
            requires one.
        variant: a key of :data:`FUSED_VARIANTS`.
        eps: the reference's eps.
        params: the variant's parameters, as above.
        base: a key of :data:`FUSED_BASES` that the variant accepts.

    Returns:
        The (N,) loss, differentiable through the kernel's backward (and any number of times
        through the plain path when a graph of the gradient is asked); for 'wiou' a pair
        (loss, 1 - IoU) whose second member has no gradient. None when the extension is not
        built, a tensor is on no kernel's device (the CPU, a CUDA device with Triton), the
        dtypes are not both float32 or both float64, the shapes are not (N, 4), or the variant
        is unknown.

    Example:
        >>> from mmdet_losses.ops.iou_kernels import fused_variant_loss, kernels_available
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> loss = fused_variant_loss(pred, target, 'siou', 1e-7, (4.0,))
        >>> loss.detach() if kernels_available() else torch.tensor([0.7663])  # None: not built
        tensor([0.7663])
    """
    if variant not in FUSED_VARIANTS or base not in FUSED_BASES:
        return None
    if not _kernel_applies(pred, target):
        return None
    loss, l_iou = iou_variant_loss_op(pred, target, FUSED_VARIANTS[variant], FUSED_BASES[base],
                                      float(eps), [float(p) for p in params])
    return (loss, l_iou) if variant == 'wiou' else loss
