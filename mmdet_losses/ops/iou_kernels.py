"""Fused CPU kernels for the IoU, GIoU, DIoU and CIoU losses of aligned box pairs.

:func:`fused_iou_loss` runs one C++ pass per box pair forward (the per-pair loss) and one
backward (the analytic gradient, recomputing the geometry from the saved boxes), both spread
over the intra-op threads with ``at::parallel_for``; no intermediate tensor is allocated. The
extension ``mmdet_losses.ops._iou`` is compiled when the package is built (``setup.py``),
never at run time. It computes exactly the maths of the pure-PyTorch reference in
:mod:`mmdet_losses.boxes` (eps placement and gradients at ties and clamps included) and is
tested against it. Where no kernel applies (extension not built, a tensor not on the CPU, a
dtype other than float32/float64) :func:`fused_iou_loss` returns None and the caller takes the
pure-PyTorch path, which is also what runs on a GPU.
"""
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._ext import load_extension

__all__ = ['fused_iou_loss', 'FUSED_MODES', 'kernels_available']

_EXT = load_extension('iou')

#: The losses the kernel computes, with the mode ids of the C++ side: 'iou', 'iou_square' and
#: 'iou_log' are IoULoss's modes 'linear', 'square' and 'log'.
FUSED_MODES = {'iou': 0, 'giou': 1, 'diou': 2, 'ciou': 3, 'iou_square': 4, 'iou_log': 5}
_DTYPES = (torch.float32, torch.float64)


def kernels_available() -> bool:
    """Whether the compiled extension is importable."""
    return _EXT is not None


class _FusedIoULoss(torch.autograd.Function):
    """Per-pair loss of (N, 4) xyxy boxes; saves only the boxes, the backward recomputes."""

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, mode: int, eps: float,
                iou_gate: Optional[float]) -> Tensor:
        ctx.save_for_backward(pred, target)
        ctx.params = (mode, eps, 0.0 if iou_gate is None else iou_gate, iou_gate is not None)
        return _EXT.iou_loss_forward(pred, target, *ctx.params)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        pred, target = ctx.saved_tensors
        need_pred, need_target = ctx.needs_input_grad[:2]
        grad_pred, grad_target = _EXT.iou_loss_backward(grad, pred, target, *ctx.params,
                                                        need_target)
        return (grad_pred if need_pred else None, grad_target if need_target else None,
                None, None, None)


def fused_iou_loss(pred: Tensor, target: Tensor, mode: str, eps: float,
                   iou_gate: Optional[float]) -> Optional[Tensor]:
    """Per-pair loss of aligned xyxy boxes by the fused kernel, or None where none applies.

    The losses are those of :mod:`mmdet_losses.boxes` (formulas and eps placement in its
    docstring): ``'iou'`` is ``1 - max(IoU, eps)``, ``'giou'`` ``1 - GIoU``, ``'diou'``
    ``1 - DIoU`` and ``'ciou'`` ``1 - CIoU``, where CIoU's ``alpha`` has no gradient and is 0
    where ``IoU <= iou_gate`` (``iou_gate=None``: no gate). ``'iou_square'`` and ``'iou_log'``
    are ``1 - max(IoU, eps)^2`` and ``-log max(IoU, eps)`` (IoULoss's other modes).

    Args:
        pred: (N, 4) predicted boxes, float32 or float64, on the CPU.
        target: (N, 4) target boxes of pred's dtype and device; it gets a gradient when it
            requires one.
        mode: 'iou', 'giou', 'diou', 'ciou', 'iou_square' or 'iou_log'.
        eps: the reference's eps.
        iou_gate: CIoU's gate, a float or None.

    Returns:
        The (N,) loss, differentiable through the kernel's analytic backward (once), or None
        when the extension is not built, a tensor is not on the CPU, the dtypes are not both
        float32 or both float64, the shapes are not (N, 4), or the mode is unknown.

    Example:
        >>> from mmdet_losses.ops.iou_kernels import fused_iou_loss, kernels_available
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
        >>> target = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
        >>> loss = fused_iou_loss(pred, target, 'diou', 1e-7, None)
        >>> loss.detach() if kernels_available() else torch.tensor([0.9683])  # None: not built
        tensor([0.9683])
    """
    if _EXT is None or mode not in FUSED_MODES:
        return None
    if not (isinstance(pred, Tensor) and isinstance(target, Tensor)):
        return None
    if pred.device.type != 'cpu' or target.device.type != 'cpu':
        return None
    if pred.dtype not in _DTYPES or target.dtype != pred.dtype:
        return None
    if pred.dim() != 2 or pred.shape[-1] != 4 or target.shape != pred.shape:
        return None
    gate = None if iou_gate is None else float(iou_gate)
    return _FusedIoULoss.apply(pred, target, FUSED_MODES[mode], float(eps), gate)
