"""Box formats and the one geometry core every IoU-family loss and :func:`box_iou` build on.

:class:`BoxPair` holds two sets of ``xyxy`` boxes that broadcast against each other and gives,
lazily and once each, the terms the variants combine: widths and heights, intersection,
union, enclosing box, centre offsets ``rho^2`` and enclosing diagonal ``c^2``. Aligned losses
build it on ``(N, 4)`` and ``(N, 4)``; the pairwise matrix is the same core on
``boxes1[:, None]`` and ``boxes2[None]``.

Reference values of IoU, GIoU, DIoU and CIoU (the contract a fused kernel reproduces)
------------------------------------------------------------------------------------
For boxes ``a`` (pred) and ``b`` (target), ``w = x2 - x1`` and ``h = y2 - y1`` (raw, negative
for an inverted box), ``clamp(x, 0)`` passing the gradient at 0 and ``relu(x)`` not::

    inter = relu(min(x2a, x2b) - max(x1a, x1b)) * relu(min(y2a, y2b) - max(y1a, y1b))
    area  = clamp(w, 0) * clamp(h, 0)                  # an inverted box has area 0
    union = area_a + area_b - inter                    # >= 0, and <= the enclosing area
    cw    = clamp(max(x2a, x2b) - min(x1a, x1b), 0)    # enclosing box, likewise ch
    rho2  = dx^2 + dy^2, dx = (x1b + x2b - x1a - x2a) / 2, dy likewise   # centre distance^2
    c2    = cw^2 + ch^2                                 # enclosing diagonal^2

    iou  (mmdet's bbox_overlaps):  IoU  = inter / max(union, eps)
    giou (mmdet's bbox_overlaps):  E = max(cw * ch, eps), U = max(union, eps)
                                   GIoU = inter / U - (E - U) / E
    diou (mmdet, torchvision):     IoU+ = inter / (union + eps)
                                   DIoU = IoU+ - min(rho2 / (c2 + eps), 1)
    ciou:                          v = 4 / pi^2 * (angle(wb, hb) - angle(wa, ha))^2, where
                                   angle(w, h) = atan2(clamp(w, 0), clamp(h, 0)), and 0 with
                                   a zero gradient where both are 0 (a point box)
                                   alpha = v / (clamp(1 - IoU+, 0) + v + eps), no gradient;
                                   alpha = 0 where IoU+ <= iou_gate (iou_gate None: no gate)
                                   CIoU = DIoU - alpha * v

and the losses: ``'iou'`` (IoULoss mode 'linear') is ``1 - max(IoU, eps)`` (mmdet clamps the
IoU at eps before every mode), ``'giou'`` is ``1 - GIoU``, ``'diou'`` is ``1 - DIoU``,
``'ciou'`` is ``1 - CIoU`` (not clamped: with the gate, mmdet's clamp of CIoU to [-1, 1] does
not bind, as alpha = 0 below the gate, DIoU >= -1, and IoU > 0.5 keeps DIoU above -0.5 and v,
which needs very different aspect ratios to grow, below about 0.1). Gradients are autograd's:
``max``/``min`` of two tensors split the gradient equally at ties, ``clamp`` passes it at its
bound (``x >= bound`` for a lower, ``x <= bound`` for an upper one), ``relu`` does not (x > 0).

On well-formed boxes (x2 >= x1, y2 >= y1) these are mmdet's values: the area clamp and the
``min(., 1)`` (the centres lie in the enclosing box, so rho2 <= c2) change nothing there, and
``atan2(w, h)`` differs from mmdet's ``atan(w / (h + eps))`` and the ``+ eps`` in alpha (which
keeps identical boxes from 0/0, as torchvision does) by O(eps). They only act on degenerate
boxes, where mmdet and torchvision give NaN, inf or gradients of order 1/eps:

- the intersection's sides are relus: two identical zero-width boxes would otherwise get a
  gradient ``h / (2 eps)`` through ``inter / max(union, eps)`` (2e6 for h = 4), which
  overflows float16; with the relu it is 0, the derivative of the side that does not overlap;
- an inverted box has area 0, so the union never exceeds the enclosing box (a doubly
  inverted box would otherwise have a positive "area" and GIoU of order 1/eps);
- ``min(rho2 / (c2 + eps), 1)`` bounds DIoU for an inverted box whose centre lies outside
  a degenerate enclosing box;
- ``atan2`` has a finite gradient for a zero-height box, and the point box is special-cased.
"""
import math
from typing import Optional

import torch
from torch import Tensor

from .validation import (check_choice, check_loss_tensors, check_number, check_tensor,
                         compute_dtype)

__all__ = ['BOX_FORMATS', 'box_convert', 'box_area', 'box_iou', 'BoxPair']

#: The box formats every box argument accepts: corners, corner + size, centre + size.
BOX_FORMATS = ('xyxy', 'xywh', 'cxcywh')
#: The pairwise / aligned similarities of :func:`box_iou`.
IOU_MODES = ('iou', 'giou', 'diou', 'ciou')


def check_boxes(name: str, boxes: Tensor) -> Tensor:
    """Raise TypeError/ValueError unless ``boxes`` is a floating tensor of shape (..., 4)."""
    check_tensor(name, boxes)
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f'{name} must have shape (..., 4), got {tuple(boxes.shape)}')
    return boxes


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str = 'xyxy') -> Tensor:
    """Convert boxes (..., 4) between 'xyxy' (corners), 'xywh' (top-left corner and size)
    and 'cxcywh' (centre and size).

    Example:
        >>> box_convert(torch.tensor([[1.0, 2.0, 4.0, 6.0]]), 'cxcywh')
        tensor([[-1., -1.,  3.,  5.]])
        >>> box_convert(torch.tensor([[1.0, 2.0, 4.0, 6.0]]), 'xyxy', 'xywh')
        tensor([[1., 2., 3., 4.]])
    """
    check_choice('in_fmt', in_fmt, BOX_FORMATS)
    check_choice('out_fmt', out_fmt, BOX_FORMATS)
    check_boxes('boxes', boxes)
    if in_fmt == out_fmt:
        return boxes
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == 'xywh':
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == 'cxcywh':
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == 'xyxy':
        return torch.stack((x1, y1, x2, y2), -1)
    if out_fmt == 'xywh':
        return torch.stack((x1, y1, x2 - x1, y2 - y1), -1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), -1)


def box_area(boxes: Tensor, box_format: str = 'xyxy') -> Tensor:
    """Area (...,) of boxes (..., 4); an inverted box (x2 < x1 or y2 < y1) has area 0.

    Example:
        >>> box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0], [0.0, 0.0, -1.0, 1.0]]))
        tensor([6., 0.])
    """
    x1, y1, x2, y2 = box_convert(boxes, box_format).unbind(-1)
    return (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)


class cached_property:  # noqa: N801 (named as functools')
    """``functools.cached_property`` without its lock: computed on first access and stored in
    the instance. Python 3.11's version takes an ``RLock``, which ``torch.compile`` cannot
    trace (a graph break, an error under ``fullgraph=True``); a BoxPair is never shared
    between threads."""

    def __init__(self, func):
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value
        return value


def _angle(w: Tensor, h: Tensor) -> Tensor:
    """``atan(w / h)`` of the sides clamped at 0, as ``atan2``; 0 with a zero gradient (not
    0/0) for a point box."""
    w, h = w.clamp(min=0), h.clamp(min=0)
    nonzero = (w > 0) | (h > 0)
    one = torch.ones_like(w)
    angle = torch.atan2(torch.where(nonzero, w, one), torch.where(nonzero, h, one))
    return torch.where(nonzero, angle, torch.zeros_like(angle))


class BoxPair:
    """The aligned geometry of two sets of ``xyxy`` boxes ``a`` (pred) and ``b`` (target)
    whose leading dims broadcast; every term has the broadcast leading shape and is computed
    on first use only. The formulas are in the module docstring.

    Example:
        >>> pair = BoxPair(torch.tensor([0.0, 0.0, 2.0, 2.0]), torch.tensor([1.0, 1.0, 3.0, 3.0]))
        >>> pair.inter, pair.union, pair.rho2, pair.c2
        (tensor(1.), tensor(7.), tensor(2.), tensor(18.))
    """

    def __init__(self, a: Tensor, b: Tensor) -> None:
        self.a, self.b = a, b
        self.x1a, self.y1a, self.x2a, self.y2a = a.unbind(-1)
        self.x1b, self.y1b, self.x2b, self.y2b = b.unbind(-1)

    @cached_property
    def nonfinite(self) -> Tensor:
        """0, with a zero gradient, for a pair whose 8 coordinates are finite; NaN, with a NaN
        gradient for all 8, for a pair with a NaN or +-inf coordinate:
        ``(sum (a - a) + sum (b - b))^2``. The losses add it to their value, so that a
        non-finite box never gives a finite loss or gradient (the relus, clamps and bounds of
        the geometry would otherwise turn an inf side into a finite 0 or 1).

        Example:
            >>> inf = float('inf')
            >>> BoxPair(torch.tensor([[0.0, 0, 2, 2], [0, 0, inf, 2]]),
            ...         torch.tensor([[1.0, 1, 3, 3], [1, 1, 3, 3]])).nonfinite
            tensor([0., nan])
        """
        z = ((self.a - self.a) + (self.b - self.b)).sum(-1)
        return z * z

    @cached_property
    def wa(self) -> Tensor:
        return self.x2a - self.x1a

    @cached_property
    def ha(self) -> Tensor:
        return self.y2a - self.y1a

    @cached_property
    def wb(self) -> Tensor:
        return self.x2b - self.x1b

    @cached_property
    def hb(self) -> Tensor:
        return self.y2b - self.y1b

    @cached_property
    def inter(self) -> Tensor:
        # relu, not clamp: no gradient where a side is exactly 0 (see the module docstring)
        iw = torch.relu(torch.minimum(self.x2a, self.x2b) - torch.maximum(self.x1a, self.x1b))
        ih = torch.relu(torch.minimum(self.y2a, self.y2b) - torch.maximum(self.y1a, self.y1b))
        return iw * ih

    @cached_property
    def union(self) -> Tensor:
        # Areas of clamped sides: an inverted box has area 0, not a (positive) product of two
        # negative sides, so 0 <= union <= enclosing area for any boxes.
        area_a = self.wa.clamp(min=0) * self.ha.clamp(min=0)
        area_b = self.wb.clamp(min=0) * self.hb.clamp(min=0)
        return area_a + area_b - self.inter

    @cached_property
    def enclose_w(self) -> Tensor:
        return (torch.maximum(self.x2a, self.x2b) - torch.minimum(self.x1a, self.x1b)).clamp(min=0)

    @cached_property
    def enclose_h(self) -> Tensor:
        return (torch.maximum(self.y2a, self.y2b) - torch.minimum(self.y1a, self.y1b)).clamp(min=0)

    @cached_property
    def dx(self) -> Tensor:
        """Centre offset along x, target minus pred."""
        return (self.x1b + self.x2b - self.x1a - self.x2a) / 2

    @cached_property
    def dy(self) -> Tensor:
        return (self.y1b + self.y2b - self.y1a - self.y2a) / 2

    @cached_property
    def rho2(self) -> Tensor:
        """Squared distance between the centres."""
        return self.dx.square() + self.dy.square()

    @cached_property
    def c2(self) -> Tensor:
        """Squared diagonal of the smallest enclosing box."""
        return self.enclose_w.square() + self.enclose_h.square()

    # -- the similarities, each with its eps placed as mmdet / torchvision place it --------
    def iou(self, eps: float) -> Tensor:
        """``inter / (union + eps)``: the IoU every variant other than 'iou'/'giou' uses."""
        return self.inter / (self.union + eps)

    def iou_clamped(self, eps: float) -> Tensor:
        """``inter / max(union, eps)``: mmdet's ``bbox_overlaps`` IoU."""
        return self.inter / self.union.clamp(min=eps)

    def giou(self, eps: float) -> Tensor:
        """mmdet's ``bbox_overlaps`` GIoU: ``IoU - (E - U) / E``, ``E``, ``U`` at least eps."""
        union = self.union.clamp(min=eps)
        enclose = (self.enclose_w * self.enclose_h).clamp(min=eps)
        return self.inter / union - (enclose - union) / enclose

    def distance_ratio(self, eps: float) -> Tensor:
        """DIoU's penalty ``min(rho2 / (c2 + eps), 1)`` (the bound only acts on inverted
        boxes: for well-formed ones the centres lie in the enclosing box)."""
        return (self.rho2 / (self.c2 + eps)).clamp(max=1)

    def diou(self, eps: float) -> Tensor:
        """``inter / (union + eps) - min(rho2 / (c2 + eps), 1)``."""
        return self.iou(eps) - self.distance_ratio(eps)

    def aspect_v(self) -> Tensor:
        """CIoU's aspect-ratio term ``4/pi^2 (atan(wb/hb) - atan(wa/ha))^2``, as
        ``atan2(w, h)`` of the sides clamped at 0: finite, with a finite gradient, for any
        box (0 for a point box)."""
        return (4 / math.pi ** 2) * (_angle(self.wb, self.hb) - _angle(self.wa, self.ha)).square()

    def ciou_alpha(self, v: Tensor, eps: float, iou_gate: Optional[float]) -> Tensor:
        """CIoU's trade-off ``alpha = v / (1 - IoU + v + eps)`` without gradient, 0 where
        IoU <= iou_gate (None: no gate)."""
        # detach rather than no_grad: under no_grad, the first use of a cached term (inter,
        # union) would cache it without a gradient for the other terms too
        iou, v = self.iou(eps).detach(), v.detach()
        alpha = v / ((1 - iou).clamp(min=0) + v + eps)
        if iou_gate is not None:
            alpha = torch.where(iou > iou_gate, alpha, torch.zeros_like(alpha))
        return alpha

    def scaled(self, ratio: float) -> 'BoxPair':
        """Both sets of boxes scaled by ``ratio`` about their centres (Inner-IoU's auxiliary
        boxes)."""
        def scale(x1, y1, x2, y2):
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            half_w, half_h = (x2 - x1) * (ratio / 2), (y2 - y1) * (ratio / 2)
            return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), -1)
        return BoxPair(scale(self.x1a, self.y1a, self.x2a, self.y2a),
                       scale(self.x1b, self.y1b, self.x2b, self.y2b))

    def ciou(self, eps: float, iou_gate: Optional[float] = None) -> Tensor:
        """``DIoU - alpha * v``."""
        v = self.aspect_v()
        return self.diou(eps) - self.ciou_alpha(v, eps, iou_gate) * v


def to_xyxy(name: str, boxes: Tensor, box_format: str) -> Tensor:
    """Validate ``boxes`` (..., 4) and return them as xyxy."""
    check_boxes(name, boxes)
    return box_convert(boxes, box_format, 'xyxy')


def box_iou(boxes1: Tensor, boxes2: Tensor, mode: str = 'iou', box_format: str = 'xyxy',
            aligned: bool = False, eps: float = 1e-6) -> Tensor:
    """Pairwise (or aligned) IoU, GIoU, DIoU or CIoU of two sets of boxes.

    ``mode='iou'`` is ``inter / max(union, eps)`` (mmdet's ``bbox_overlaps``; torchvision's
    ``box_iou`` has no eps), ``'giou'`` mmdet's GIoU, ``'diou'`` ``IoU - rho^2 / c^2`` and
    ``'ciou'`` ``DIoU - alpha v`` without the IoU gate (torchvision's ``complete_box_iou``);
    the exact eps placement is in the docstring of :mod:`mmdet_losses.boxes`.

    Args:
        boxes1: (N, 4) boxes (any leading batch dims (..., N, 4) broadcasting with boxes2's).
        boxes2: (M, 4) boxes.
        mode: 'iou', 'giou', 'diou' or 'ciou'.
        box_format: 'xyxy', 'xywh' or 'cxcywh'.
        aligned: compare ``boxes1[i]`` with ``boxes2[i]`` only: (N,) instead of (N, M).
        eps: keeps denominators away from zero.

    Returns:
        (N, M), or (N,) when aligned, in the input dtype (half precision computed in float32).

    Example:
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
        >>> box_iou(a, b)
        tensor([[0.1429],
                [0.0000]])
        >>> box_iou(a, b, mode='giou')
        tensor([[-0.0794],
                [-0.4444]])
    """
    check_choice('mode', mode, IOU_MODES)
    check_choice('box_format', box_format, BOX_FORMATS)
    eps = check_number('eps', eps, low=0.0)
    check_loss_tensors(boxes1=boxes1, boxes2=boxes2)  # real tensors, one device
    check_boxes('boxes1', boxes1)
    check_boxes('boxes2', boxes2)
    # both straight to the compute dtype, before converting (x + w / 2 of huge half-precision
    # boxes overflows float16; boxes2 is not rounded through boxes1's half dtype)
    dtype = compute_dtype(boxes1)
    a = to_xyxy('boxes1', boxes1.to(dtype), box_format)
    b = to_xyxy('boxes2', boxes2.to(dtype), box_format)
    if aligned:
        if a.shape != b.shape:
            raise ValueError(f'boxes2 must have the shape of boxes1 {tuple(a.shape)} when '
                             f'aligned, got {tuple(b.shape)}')
    elif a.dim() < 2 or b.dim() < 2:
        raise ValueError(f'boxes1 and boxes2 must have shape (..., N, 4) and (..., M, 4), '
                         f'got {tuple(a.shape)} and {tuple(b.shape)}')
    else:
        try:
            torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except RuntimeError:
            raise ValueError(f'boxes1 and boxes2 must have batch dims that broadcast (..., N, 4) '
                             f'and (..., M, 4), got {tuple(a.shape)} and '
                             f'{tuple(b.shape)}') from None
        a, b = a.unsqueeze(-2), b.unsqueeze(-3)
    pair = BoxPair(a, b)
    if mode == 'iou':
        out = pair.iou_clamped(eps)
    elif mode == 'giou':
        out = pair.giou(eps)
    elif mode == 'diou':
        out = pair.diou(eps)
    else:
        out = pair.ciou(eps)
    return out.to(boxes1.dtype) if boxes1.is_floating_point() else out
