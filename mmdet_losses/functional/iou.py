"""The IoU family of box-regression losses: ``pred`` and ``target`` are boxes (..., 4) in
``box_format`` 'xyxy' (default), 'xywh' or 'cxcywh', and ``reduction='none'`` returns (...,).

A ``weight`` of the boxes' shape (..., 4), which mmdet's heads pass, is averaged over its last
dim, as mmdet's losses do. Half precision is computed in float32 and returned in the input
dtype.

Every loss is the shared geometry of :class:`mmdet_losses.boxes.BoxPair` (intersection,
union, enclosing box, ``rho^2``, ``c^2``) plus its own penalty, each a few lines below. Every
value and gradient is finite for any input boxes: zero-area, inverted, identical, nested,
far apart, huge or tiny. Every loss runs a fused kernel
(:mod:`mmdet_losses.ops.iou_kernels`) where one applies (float32/float64 on the CPU) and
otherwise its plain element below, the reference the kernel is tested against; the exact
maths of IoU, GIoU, DIoU and CIoU, and where eps enters, is in the docstring of
:mod:`mmdet_losses.boxes`.
"""
import numbers
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from torch import Tensor

from ..boxes import BOX_FORMATS, BoxPair, check_boxes, box_convert
from ..reduction import weight_reduce_loss
from ..validation import (check_choice, check_loss_tensors, check_number, check_same_shape,
                          check_tensor, compute_dtype)
from .safe_math import safe_pow, safe_sqrt

# Return None where no kernel applies (not built, not on the CPU, ...): the plain path runs.
from ..ops.iou_kernels import fused_iou_loss, fused_variant_loss

__all__ = ['iou_loss', 'giou_loss', 'diou_loss', 'ciou_loss', 'eiou_loss', 'siou_loss',
           'wiou_loss', 'alpha_iou_loss', 'mpdiou_loss', 'inner_iou_loss', 'focaler_iou_loss',
           'shape_iou_loss', 'nwd_loss']

IOU_LOSS_MODES = ('linear', 'square', 'log')
FUSED_MODES = ('iou', 'giou', 'diou', 'ciou')
WIOU_VERSIONS = ('v1', 'v2', 'v3')
ALPHA_IOU_BASES = ('iou', 'giou', 'diou', 'ciou')
#: Bases of InnerIoULoss and FocalerIoULoss.
COMPOSITE_BASES = ('iou', 'giou', 'diou', 'ciou', 'siou', 'eiou')


# ------------------------------------------------------------------------------ plumbing
def _prepare(pred: Tensor, target: Tensor, box_format: str,
             weight: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Validate (with weight: real tensors on one device); return pred and target as (N, 4)
    xyxy in the compute dtype."""
    check_box_format(box_format)
    check_tensor('pred', pred, floating=True)
    check_boxes('pred', pred)
    check_loss_tensors(pred=pred, target=target, weight=weight)
    check_same_shape('pred', pred, 'target', target)
    # Upcast before converting (x + w / 2 of huge half-precision boxes overflows float16), and
    # cast the target straight to the compute dtype: under AMP a float32 target stays exact.
    dtype = compute_dtype(pred)
    pred, target = pred.to(dtype), target.to(dtype)
    pred = box_convert(pred.reshape(-1, 4), box_format, 'xyxy')
    target = box_convert(target.reshape(-1, 4), box_format, 'xyxy')
    return pred, target


def _box_weight(weight: Optional[Tensor], pred: Tensor) -> Optional[Tensor]:
    """A weight of the boxes' shape (..., 4) is averaged to (...,), as mmdet's heads expect;
    anything else must broadcast to the loss shape (...,)."""
    if weight is None:
        return None
    check_tensor('weight', weight)
    if weight.shape == pred.shape:
        weight = weight.mean(-1)
    try:
        ok = torch.broadcast_shapes(weight.shape, pred.shape[:-1]) == pred.shape[:-1]
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f'weight must have the boxes\' shape {tuple(pred.shape)} or broadcast '
                         f'to the loss shape {tuple(pred.shape[:-1])}, got {tuple(weight.shape)}')
    return weight


def _finish(loss: Tensor, pred: Tensor, weight, reduction, avg_factor) -> Tensor:
    loss = loss.reshape(pred.shape[:-1])
    return weight_reduce_loss(loss, _box_weight(weight, pred), reduction,
                              avg_factor).to(pred.dtype)


def _per_box_loss(kernel: Callable[[Tensor, Tensor], Optional[Tensor]],
                  element: Callable[[BoxPair], Tensor], a: Tensor, b: Tensor):
    """The per-box loss of (N, 4) xyxy boxes: ``kernel(a, b)``, a fused kernel that returns
    None where it does not apply, else ``element(BoxPair(a, b))``, the plain reference."""
    loss = kernel(a.contiguous(), b.contiguous())
    return element(BoxPair(a, b)) if loss is None else loss


def _box_loss(kernel, element, pred, target, weight, reduction, avg_factor,
              box_format) -> Tensor:
    """Reduce the per-box loss of a variant (:func:`_per_box_loss`)."""
    a, b = _prepare(pred, target, box_format, weight)
    return _finish(_per_box_loss(kernel, element, a, b), pred, weight, reduction, avg_factor)


def _variant_loss(variant: str, eps: float, params: Tuple[float, ...], pred, target, weight,
                  reduction, avg_factor, box_format, base: Optional[str] = None) -> Tensor:
    """Reduce the per-box loss of a variant of :func:`plain_variant_loss`, fused where a
    kernel applies."""
    return _box_loss(lambda a, b: fused_variant_loss(a, b, variant, eps, params, base or 'iou'),
                     lambda pair: plain_variant_loss(pair, variant, eps, params, base),
                     pred, target, weight, reduction, avg_factor, box_format)


# ------------------------------------------------- parameter checks (shared with the classes)
# Each loss's parameters are checked by one function here: the functional form calls it on
# every call, the loss class (mmdet_losses.losses.iou) once in its __init__.
def check_box_format(box_format: str) -> str:
    check_choice('box_format', box_format, BOX_FORMATS)
    return box_format


def check_eps(eps) -> float:
    return check_number('eps', eps, low=0.0, low_open=True)


def check_iou_gate(iou_gate) -> Optional[float]:
    return None if iou_gate is None else check_number('iou_gate', iou_gate, low=0.0, high=1.0)


def check_iou_mode(mode: str) -> str:
    check_choice('mode', mode, IOU_LOSS_MODES)
    return mode


def check_eiou_gamma(gamma) -> float:
    return check_number('gamma', gamma, low=0.0)


def check_siou_params(theta, neg_gamma) -> Tuple[float, bool]:
    theta = check_number('theta', theta, low=1.0)
    if not isinstance(neg_gamma, bool):
        raise TypeError(f'neg_gamma must be a bool, got {type(neg_gamma).__name__} '
                        f'{neg_gamma!r}')
    return theta, neg_gamma


def check_wiou_params(version: str, alpha, delta, momentum) -> Tuple[str, float, float, float]:
    check_choice('version', version, WIOU_VERSIONS)
    return (version, check_number('alpha', alpha, low=0.0, low_open=True),
            check_number('delta', delta, low=0.0, low_open=True),
            check_number('momentum', momentum, low=0.0, high=1.0))


def check_alpha_iou_params(alpha, base: str) -> Tuple[float, str]:
    alpha = check_number('alpha', alpha, low=0.0, low_open=True)
    check_choice('base', base, ALPHA_IOU_BASES)
    return alpha, base


def check_inner_iou_params(ratio, base: str) -> Tuple[float, str]:
    ratio = check_number('ratio', ratio, low=0.0, low_open=True)
    check_choice('base', base, COMPOSITE_BASES)
    return ratio, base


def check_focaler_iou_params(d, u, base: str) -> Tuple[float, float, str]:
    d = check_number('d', d, low=0.0, high=1.0)
    u = check_number('u', u, low=0.0, high=1.0)
    if not d < u:
        raise ValueError(f'd must be less than u, got d={d} and u={u}')
    check_choice('base', base, COMPOSITE_BASES)
    return d, u, base


def check_shape_iou_scale(scale) -> float:
    return check_number('scale', scale, low=0.0)


def check_nwd_constant(constant) -> float:
    return check_number('constant', constant, low=0.0, low_open=True)


# -------------------------------------------------------- IoU, GIoU, DIoU, CIoU (fused)
def _plain_iou_family_loss(pred: Tensor, target: Tensor, mode: str, eps: float,
                           iou_gate: Optional[float] = None) -> Tensor:
    """The pure-PyTorch loss (N,) of (N, 4) xyxy boxes for mode 'iou' (``1 - max(IoU, eps)``),
    'iou_square' (``1 - max(IoU, eps)^2``), 'iou_log' (``-log max(IoU, eps)``), 'giou', 'diou'
    or 'ciou': the reference every fused kernel is tested against."""
    return _plain_family_element(BoxPair(pred, target), mode, eps, iou_gate)


def _plain_family_element(pair: BoxPair, mode: str, eps: float,
                          iou_gate: Optional[float] = None) -> Tensor:
    """The per-pair loss, NaN (with a NaN gradient) for a pair with a non-finite
    coordinate (:attr:`BoxPair.nonfinite`)."""
    return _family_element(pair, mode, eps, iou_gate) + pair.nonfinite


def _family_element(pair: BoxPair, mode: str, eps: float,
                    iou_gate: Optional[float] = None) -> Tensor:
    if mode.startswith('iou'):
        iou = pair.iou_clamped(eps).clamp(min=eps)
        return {'iou': lambda: 1 - iou, 'iou_square': lambda: 1 - iou.square(),
                'iou_log': lambda: -iou.log()}[mode]()
    if mode == 'giou':
        return 1 - pair.giou(eps)
    if mode == 'diou':
        return 1 - pair.diou(eps)
    return 1 - pair.ciou(eps, iou_gate)


def _fused_family(mode: str, pred, target, weight, reduction, avg_factor, box_format,
                  eps: float, iou_gate: Optional[float] = None) -> Tensor:
    return _box_loss(lambda a, b: fused_iou_loss(a, b, mode, eps, iou_gate),
                     lambda pair: _plain_family_element(pair, mode, eps, iou_gate),
                     pred, target, weight, reduction, avg_factor, box_format)


def iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
             reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
             mode: str = 'log', eps: float = 1e-6) -> Tensor:
    """IoU loss, with ``IoU = inter / max(union, eps)`` clamped at ``eps`` (as mmdet):
    ``mode='linear'``: ``1 - IoU``, ``'square'``: ``1 - IoU^2``, ``'log'``: ``-log IoU``.

    Args:
        pred, target: boxes (..., 4) in ``box_format``.
        mode: 'linear', 'square' or 'log' (mmdet's default).
        eps: floor of the union and of the IoU.

    Returns:
        (...,) with ``reduction='none'``, else a scalar.

    Reference: Yu et al., "UnitBox: An Advanced Object Detection Network", ACM MM 2016.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> iou_loss(pred, target, mode='linear')
        tensor(0.6667)
        >>> iou_loss(pred, target)  # -log(1/3)
        tensor(1.0986)
    """
    check_iou_mode(mode)
    eps = check_eps(eps)
    fused_mode = {'linear': 'iou', 'square': 'iou_square', 'log': 'iou_log'}[mode]
    return _fused_family(fused_mode, pred, target, weight, reduction, avg_factor, box_format, eps)


def giou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
              eps: float = 1e-7) -> Tensor:
    """Generalized IoU loss, ``1 - IoU + (C - U) / C`` with ``C`` the area of the smallest
    enclosing box and ``U`` the union (each at least eps, as mmdet's ``bbox_overlaps``).

    Reference: Rezatofighi et al., "Generalized Intersection over Union: A Metric and A Loss
    for Bounding Box Regression", CVPR 2019.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        >>> target = torch.tensor([[1.0, 1.0, 2.0, 2.0]])
        >>> giou_loss(pred, target)  # touching corners: IoU 0, C = 4, U = 2
        tensor(1.5000)
    """
    return _fused_family('giou', pred, target, weight, reduction, avg_factor, box_format,
                         check_eps(eps))


def diou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
              eps: float = 1e-7) -> Tensor:
    """Distance IoU loss, ``1 - IoU + rho^2 / c^2``: ``rho`` the distance between the centres,
    ``c`` the diagonal of the smallest enclosing box.

    Reference: Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
    Regression", AAAI 2020.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        >>> target = torch.tensor([[1.0, 1.0, 2.0, 2.0]])
        >>> diou_loss(pred, target)  # 1 - 0 + 2 / 8
        tensor(1.2500)
    """
    return _fused_family('diou', pred, target, weight, reduction, avg_factor, box_format,
                         check_eps(eps))


def ciou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
              iou_gate: Optional[float] = 0.5, eps: float = 1e-7) -> Tensor:
    """Complete IoU loss, ``1 - IoU + rho^2 / c^2 + alpha v`` with the aspect-ratio term
    ``v = 4 / pi^2 (atan(w_gt / h_gt) - atan(w / h))^2`` and ``alpha = v / (1 - IoU + v)``,
    which carries no gradient.

    Args:
        iou_gate: ``alpha = 0`` where ``IoU <= iou_gate`` (0.5: the CIoU authors' code and
            mmdet); None: no gate (torchvision, ultralytics).

    Reference: Zheng et al., "Enhancing Geometric Factors in Model Learning and Inference
    for Object Detection and Instance Segmentation", IEEE T-CYB 2021.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[0.0, 0.0, 2.0, 3.0]])
        >>> ciou_loss(pred, target, reduction='none')
        tensor([0.3533])
        >>> ciou_loss(pred, target, reduction='none', iou_gate=0.8)  # gated: 1/3 + 0.25/13
        tensor([0.3526])
    """
    return _fused_family('ciou', pred, target, weight, reduction, avg_factor, box_format,
                         check_eps(eps), check_iou_gate(iou_gate))


# ---------------------------------------------------------------- the other variants
def _eiou(pair: BoxPair, eps: float, gamma: float = 0.0) -> Tensor:
    """DIoU + squared width and height differences over the enclosing box's, times IoU^gamma."""
    # each ratio <= 1 for well-formed boxes; the bound only acts on inverted ones
    loss = (1 - pair.diou(eps)
            + ((pair.wa - pair.wb).square() / pair.enclose_w.square().clamp(min=eps)).clamp(max=1)
            + ((pair.ha - pair.hb).square() / pair.enclose_h.square().clamp(min=eps)).clamp(max=1))
    if gamma > 0:  # Focal-EIoU: a per-box weight, hence detached (and finite at IoU = 0)
        loss = loss * pair.iou(eps).detach().pow(gamma)
    return loss


def _siou(pair: BoxPair, eps: float, theta: float = 4.0) -> Tensor:
    """1 - IoU + (distance cost + shape cost) / 2."""
    # Angle cost 1 - 2 sin^2(arcsin(sin a) - pi/4) = sin 2a = 2 |dx| |dy| / rho^2: the same
    # for the angle to either axis, so no branch (eps^2 floor: only where the centres meet).
    angle = 2 * pair.dx.abs() * pair.dy.abs() / pair.rho2.clamp(min=eps * eps)
    gamma = 2 - angle
    distance = (2 - torch.exp(-gamma * pair.dx.square() / pair.enclose_w.square().clamp(min=eps))
                - torch.exp(-gamma * pair.dy.square() / pair.enclose_h.square().clamp(min=eps)))
    return 1 - pair.iou(eps) + (distance + _shape_cost(pair, eps, theta)) / 2


def _siou_mmdet_sign(pair: BoxPair, eps: float, theta: float = 4.0) -> Tensor:
    """mmdet's ``siou_loss(neg_gamma=False)``: :func:`_siou` with the distance cost's
    exponent ``+(2 - Lambda) rho_t`` instead of the paper's ``-(2 - Lambda) rho_t`` (so the
    cost is <= 0), and ``1 - clamp(SIoU, -1, 1)`` as mmdet."""
    angle = 2 * pair.dx.abs() * pair.dy.abs() / pair.rho2.clamp(min=eps * eps)
    gamma = 2 - angle
    # rho_t <= 1 for well-formed boxes; the bound keeps exp finite for inverted ones
    rho_x = (pair.dx.square() / pair.enclose_w.square().clamp(min=eps)).clamp(max=1)
    rho_y = (pair.dy.square() / pair.enclose_h.square().clamp(min=eps)).clamp(max=1)
    distance = 2 - torch.exp(gamma * rho_x) - torch.exp(gamma * rho_y)
    siou = pair.iou(eps) - (distance + _shape_cost(pair, eps, theta)) / 2
    return 1 - siou.clamp(-1.0, 1.0)


def _shape_cost(pair: BoxPair, eps: float, theta: float, weight_w=1.0, weight_h=1.0) -> Tensor:
    """SIoU's (and Shape-IoU's) ``sum_t (1 - exp(-omega_t))^theta`` with
    ``omega_w = weight_w |w - w_gt| / max(w, w_gt)`` and likewise for h."""
    omega_w = weight_w * (pair.wa - pair.wb).abs() / torch.maximum(pair.wa, pair.wb).clamp(min=eps)
    omega_h = weight_h * (pair.ha - pair.hb).abs() / torch.maximum(pair.ha, pair.hb).clamp(min=eps)
    return (1 - torch.exp(-omega_w)).pow(theta) + (1 - torch.exp(-omega_h)).pow(theta)


def _ciou_no_gate(pair: BoxPair, eps: float) -> Tensor:
    return 1 - pair.ciou(eps, None)


#: L_base of InnerIoULoss and FocalerIoULoss (CIoU without the gate, as the papers' code).
_BASE_LOSSES = {
    'iou': lambda pair, eps: 1 - pair.iou(eps),
    'giou': lambda pair, eps: 1 - pair.giou(eps),
    'diou': lambda pair, eps: 1 - pair.diou(eps),
    'ciou': _ciou_no_gate,
    'siou': _siou,
    'eiou': _eiou,
}


def _wiou_v1(pair: BoxPair, eps: float) -> Tuple[Tensor, Tensor]:
    """Wise-IoU v1, ``L_IoU exp(rho^2 / c^2*)``, and ``L_IoU = 1 - IoU`` detached."""
    l_iou = 1 - pair.iou(eps)
    loss = l_iou * torch.exp((pair.rho2 / pair.c2.clamp(min=eps).detach()).clamp(max=1))
    return loss, l_iou.detach()


def _alpha_iou(pair: BoxPair, eps: float, alpha: float, base: str) -> Tensor:
    loss = 1 - safe_pow(pair.iou(eps), alpha)
    if base == 'giou':
        enclose = (pair.enclose_w * pair.enclose_h).clamp(min=eps)
        loss = loss + safe_pow((enclose - pair.union.clamp(min=eps)) / enclose, alpha)
    elif base in ('diou', 'ciou'):
        loss = loss + safe_pow(pair.distance_ratio(eps), alpha)
    if base == 'ciou':
        v = pair.aspect_v()
        loss = loss + safe_pow(pair.ciou_alpha(v, eps, None) * v, alpha)
    return loss


def _mpdiou(pair: BoxPair, eps: float, image_diagonal2: float) -> Tensor:
    d1 = (pair.x1a - pair.x1b).square() + (pair.y1a - pair.y1b).square()
    d2 = (pair.x2a - pair.x2b).square() + (pair.y2a - pair.y2b).square()
    return 1 - pair.iou(eps) + (d1 + d2) / image_diagonal2


def _inner_iou(pair: BoxPair, eps: float, ratio: float, base: str) -> Tensor:
    return _BASE_LOSSES[base](pair, eps) + pair.iou(eps) - pair.scaled(ratio).iou(eps)


def _focaler_iou(pair: BoxPair, eps: float, d: float, u: float, base: str) -> Tensor:
    iou = pair.iou(eps)
    return _BASE_LOSSES[base](pair, eps) + iou - ((iou - d) / (u - d)).clamp(0, 1)


def _shape_iou(pair: BoxPair, eps: float, scale: float) -> Tensor:
    ww = hh = 1.0
    if scale > 0:  # the target's shape weights, no gradient (not under no_grad: that would
        # cache pair.wb, pair.hb without one for the terms below too)
        w_s = pair.wb.detach().clamp(min=0).pow(scale)
        h_s = pair.hb.detach().clamp(min=0).pow(scale)
        total = (w_s + h_s).clamp(min=eps)
        ww, hh = 2 * w_s / total, 2 * h_s / total
    c2 = pair.c2.clamp(min=eps)  # the ratios' bound only acts on inverted boxes
    distance = (hh * (pair.dx.square() / c2).clamp(max=1)
                + ww * (pair.dy.square() / c2).clamp(max=1))
    return 1 - pair.iou(eps) + distance + 0.5 * _shape_cost(pair, eps, 4.0, hh, ww)


def _nwd(pair: BoxPair, eps: float, constant: float) -> Tensor:
    del eps  # no denominator to keep from 0: safe_sqrt has a zero gradient at 0
    w2 = pair.rho2 + ((pair.wa - pair.wb).square() + (pair.ha - pair.hb).square()) / 4
    return 1 - torch.exp(-safe_sqrt(w2) / constant)


#: The plain per-box loss of each variant that :func:`fused_variant_loss` fuses:
#: ``element(pair, eps, *params)``, plus ``base=`` for Alpha-, Inner- and Focaler-IoU.
_PLAIN_VARIANTS = {
    'eiou': _eiou, 'siou': _siou, 'wiou': _wiou_v1, 'alpha_iou': _alpha_iou, 'mpdiou': _mpdiou,
    'inner_iou': _inner_iou, 'focaler_iou': _focaler_iou, 'shape_iou': _shape_iou, 'nwd': _nwd,
}


def plain_variant_loss(pair: BoxPair, variant: str, eps: float, params: Sequence[float] = (),
                       base: Optional[str] = None):
    """The pure-PyTorch per-box loss of ``variant`` (a key of :data:`_PLAIN_VARIANTS`), the
    reference the fused kernel is tested against; ``params`` are the variant's own, in the
    order of :func:`mmdet_losses.ops.iou_kernels.fused_variant_loss`. A pair with a NaN or
    inf coordinate gets a NaN loss and gradient (:attr:`BoxPair.nonfinite`); Wise-IoU's
    detached ``1 - IoU`` (its second output) is NaN there too."""
    element = _PLAIN_VARIANTS[variant]
    out = element(pair, eps, *params) if base is None else element(pair, eps, *params,
                                                                   base=base)
    if isinstance(out, tuple):  # Wise-IoU: (loss, 1 - IoU detached)
        return out[0] + pair.nonfinite, out[1] + pair.nonfinite.detach()
    return out + pair.nonfinite


def eiou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
              gamma: float = 0.0, eps: float = 1e-7) -> Tensor:
    """Efficient IoU loss, ``1 - IoU + rho^2 / c^2 + (w - w_gt)^2 / C_w^2 + (h - h_gt)^2 / C_h^2``
    with ``C_w``, ``C_h`` the enclosing box's width and height; ``gamma > 0`` gives Focal-EIoU,
    ``IoU^gamma`` times it (the factor weights the boxes and carries no gradient).

    This is Efficient-IoU (Zhang et al.), NOT mmdet's ``EIoULoss``, which is the unrelated
    Extended-IoU loss (Peng and Yu 2021, a smoothed 1 - IoU).

    Reference: Zhang et al., "Focal and Efficient IOU Loss for Accurate Bounding Box
    Regression", Neurocomputing 2022 (arXiv 2101.08158).

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[0.0, 0.0, 2.0, 4.0]])
        >>> eiou_loss(pred, target)  # 1 - 1/2 + 1/20 + 4/16
        tensor(0.8000)
    """
    gamma = check_eiou_gamma(gamma)
    eps = check_eps(eps)
    return _variant_loss('eiou', eps, (gamma,), pred, target, weight, reduction, avg_factor,
                         box_format)


def siou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
              theta: float = 4.0, eps: float = 1e-7, neg_gamma: bool = True) -> Tensor:
    """SCYLLA IoU loss, ``1 - IoU + (Delta + Omega) / 2`` with, for the centre offsets
    ``dx``, ``dy`` and the enclosing box ``C_w x C_h``:

    - angle cost ``Lambda = sin(2 a) = 2 |dx dy| / (dx^2 + dy^2)``,
    - distance cost ``Delta = sum_{t=x,y} 1 - exp(-(2 - Lambda) rho_t)``,
      ``rho_x = (dx / C_w)^2``, ``rho_y = (dy / C_h)^2`` (the paper's sign; mmdet's
      ``neg_gamma=True``),
    - shape cost ``Omega = sum_{t=w,h} (1 - exp(-omega_t))^theta``,
      ``omega_w = |w - w_gt| / max(w, w_gt)``.

    Args:
        theta: the shape cost's exponent, >= 1 (the paper uses 2 to 6).
        neg_gamma: True (default): the paper's distance cost above. False: mmdet's
            ``neg_gamma=False`` (its default), :func:`_siou_mmdet_sign`: ``Delta`` with the
            exponent's sign flipped, ``2 - exp((2 - Lambda) rho_x) - exp((2 - Lambda) rho_y)``
            (<= 0, so it *decreases* the loss as the centres move apart) and the result
            clamped as mmdet's, ``1 - clamp(IoU - (Delta + Omega) / 2, -1, 1)``: 0, with no
            gradient, where the clamp binds (boxes far apart). Kept for drop-in parity with
            mmdet only (plain path, no fused kernel).

    Reference: Gevorgyan, "SIoU Loss: More Powerful Learning for Bounding Box Regression",
    arXiv 2205.12740, 2022.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> siou_loss(pred, target)  # 1 - 1/3 + (1 - exp(-2/9)) / 2
        tensor(0.7663)
    """
    theta, neg_gamma = check_siou_params(theta, neg_gamma)
    eps = check_eps(eps)
    if not neg_gamma:  # mmdet's sign: the plain path only (no kernel fuses it)
        return _box_loss(lambda a, b: None,
                         lambda pair: _siou_mmdet_sign(pair, eps, theta) + pair.nonfinite,
                         pred, target, weight, reduction, avg_factor, box_format)
    return _variant_loss('siou', eps, (theta,), pred, target, weight, reduction, avg_factor,
                         box_format)


def _iou_loss_mean(l_iou: Tensor, weight: Optional[Tensor], running_mean: Optional[Tensor],
                   training: bool, momentum: float, sync: bool) -> Tensor:
    """WIoU's mean of ``L_IoU`` (weighted by ``weight``): the running mean, updated in place
    from this batch when training (the batch statistic all-reduced over the process group,
    so every rank keeps the same value); without a running mean, the batch's own.

    A batch whose statistic is not finite (a NaN or inf box or weight) leaves the running
    mean as it is, decided on the device by ``torch.where`` (no host synchronisation): its own
    boxes get a NaN loss, and the later batches are not poisoned. A running mean given
    non-finite is replaced by the first finite batch mean."""
    with torch.no_grad():
        if running_mean is not None and not training:
            return running_mean.to(l_iou.dtype)
        w = torch.ones_like(l_iou) if weight is None else weight.to(l_iou.dtype)
        stats = torch.stack(((w * l_iou).sum(), w.sum()))
        if training and sync and dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        has_boxes = stats[1] > 0  # a tensor: no host synchronisation
        batch_mean = stats[0] / torch.where(has_boxes, stats[1], torch.ones_like(stats[1]))
        if running_mean is None:
            return torch.where(has_boxes, batch_mean, torch.ones_like(batch_mean))
        old = running_mean.to(l_iou.dtype)
        update = has_boxes & torch.isfinite(batch_mean)
        # a running mean that is not finite (given so) is replaced by the batch's
        new = torch.where(torch.isfinite(old), (1 - momentum) * old + momentum * batch_mean,
                          batch_mean)
        running_mean.copy_(torch.where(update, new, old))
        return running_mean.to(l_iou.dtype)


def wiou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
              reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
              version: str = 'v3', alpha: float = 1.9, delta: float = 3.0,
              momentum: float = 0.01, running_mean: Optional[Tensor] = None,
              training: bool = False, sync: bool = True, eps: float = 1e-7) -> Tensor:
    """Wise-IoU loss. With ``L_IoU = 1 - IoU`` and ``W_g``, ``H_g`` the enclosing box's size:

    - v1: ``R L_IoU``, ``R = exp(rho^2 / (W_g^2 + H_g^2))`` with the denominator detached;
    - v2: ``(L_IoU* / mean)^0.5 R L_IoU`` (monotonic focusing, the paper's gamma = 0.5);
    - v3: ``r R L_IoU`` with the outlier degree ``beta = L_IoU* / mean`` and the
      non-monotonic focusing ``r = beta / (delta alpha^(beta - delta))``.

    ``*`` marks a detached value; ``mean`` is the mean of ``L_IoU``. As with
    ``F.batch_norm``, a ``running_mean`` tensor (a scalar) is used when given, and updated in
    place first, ``mean <- (1 - momentum) mean + momentum batch_mean``, when ``training``
    (the weighted batch mean, summed over the ranks when torch.distributed is initialised);
    without one the batch's own mean is used. A batch whose mean is not finite (a NaN or inf
    box or weight) does not update ``running_mean`` (decided on the device, without a host
    synchronisation): its boxes get a NaN loss, the later batches stay clean. A box with a
    non-finite coordinate has a NaN loss and gradient.

    Args:
        version: 'v1', 'v2' or 'v3'.
        alpha, delta: v3's focusing parameters (> 0).
        momentum: of the running-mean update, in [0, 1].
        running_mean: the running mean of L_IoU (v2, v3), updated in place when training.
        training: update ``running_mean`` from this batch.
        sync: all-reduce the batch statistic when training under torch.distributed. This is a
            collective: every rank must then call the loss equally often (a head that skips
            the call on a rank without positives would hang); ``False`` keeps per-rank means.

    Reference: Tong et al., "Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing
    Mechanism", arXiv 2301.10051, 2023.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> wiou_loss(pred, target, version='v1')  # (2/3) exp(1/13)
        tensor(0.7200)
        >>> mean = torch.tensor(1.0)
        >>> wiou_loss(pred, target, running_mean=mean, training=True, momentum=0.5)  # beta 0.8
        tensor(0.7880)
        >>> mean  # (1 + 2/3) / 2
        tensor(0.8333)
    """
    version, alpha, delta, momentum = check_wiou_params(version, alpha, delta, momentum)
    eps = check_eps(eps)
    if running_mean is not None:
        check_tensor('running_mean', running_mean, floating=True)
    a, b = _prepare(pred, target, box_format, weight)
    loss, l_iou = _per_box_loss(lambda p, t: fused_variant_loss(p, t, 'wiou', eps),
                                lambda pair: plain_variant_loss(pair, 'wiou', eps), a, b)
    if version != 'v1':
        box_weight = None if weight is None else \
            _box_weight(weight, pred).expand(pred.shape[:-1]).reshape(-1)
        mean = _iou_loss_mean(l_iou, box_weight, running_mean, training, momentum, sync)
        beta = l_iou / mean.clamp(min=eps)
        if version == 'v2':
            loss = loss * beta.sqrt()
        else:
            loss = loss * (beta / (delta * torch.pow(alpha, beta - delta)))
    return _finish(loss, pred, weight, reduction, avg_factor)


def alpha_iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                   reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
                   alpha: float = 3.0, base: str = 'iou', eps: float = 1e-7) -> Tensor:
    """Alpha-IoU: the IoU and each penalty term of ``base`` raised to ``alpha``:
    'iou' ``1 - IoU^a``; 'giou' ``+ ((C - U) / C)^a``; 'diou' ``+ (rho^2 / c^2)^a``;
    'ciou' ``+ (rho^2 / c^2)^a + (beta v)^a`` (CIoU's ``beta = v / (1 - IoU + v)``, detached,
    no gate).

    Args:
        alpha: the power, > 0 (3 in the paper).
        base: 'iou', 'giou', 'diou' or 'ciou'.

    Reference: He et al., "Alpha-IoU: A Family of Power Intersection over Union Losses for
    Bounding Box Regression", NeurIPS 2021.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> alpha_iou_loss(pred, target)  # 1 - (1/3)^3
        tensor(0.9630)
    """
    alpha, base = check_alpha_iou_params(alpha, base)
    return _variant_loss('alpha_iou', check_eps(eps), (alpha,), pred, target, weight,
                         reduction, avg_factor, box_format, base)


def check_img_size(img_size) -> Tuple[float, float]:
    """(w, h) from a pair of positive numbers or one number (a square image)."""
    if isinstance(img_size, numbers.Number) and not isinstance(img_size, bool):
        img_size = (img_size, img_size)  # check_number refuses complex, NaN, inf
    if not isinstance(img_size, Sequence) or len(img_size) != 2:
        raise ValueError(f'img_size must be (width, height) or one number, got {img_size!r}')
    return (check_number('img_size[0] (width)', img_size[0], low=0.0, low_open=True),
            check_number('img_size[1] (height)', img_size[1], low=0.0, low_open=True))


def mpdiou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
                img_size: Union[float, Sequence[float]] = None, eps: float = 1e-7) -> Tensor:
    """Minimum points distance IoU loss, ``1 - IoU + (d1^2 + d2^2) / (W^2 + H^2)``: ``d1``,
    ``d2`` the distances between the top-left and between the bottom-right corners, ``W x H``
    the input image size.

    Args:
        img_size: the input image's (width, height), or one number for a square image.

    Reference: Ma and Xu, "MPDIoU: A Loss for Efficient and Accurate Bounding Box
    Regression", arXiv 2307.07662, 2023.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> mpdiou_loss(pred, target, img_size=(4, 2))  # 1 - 1/3 + (1 + 1) / 20
        tensor(0.7667)
    """
    if img_size is None:
        raise ValueError('img_size must be given: the input image (width, height), got None')
    width, height = check_img_size(img_size)
    return _variant_loss('mpdiou', check_eps(eps), (width ** 2 + height ** 2,), pred, target,
                         weight, reduction, avg_factor, box_format)


def inner_iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                   reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
                   ratio: float = 0.75, base: str = 'iou', eps: float = 1e-7) -> Tensor:
    """Inner-IoU, ``L_base + IoU - IoU_inner``: ``IoU_inner`` is the IoU of auxiliary boxes,
    both boxes scaled by ``ratio`` about their centres (ratio < 1 speeds up high-IoU samples,
    > 1 low-IoU ones). ``base='iou'`` gives ``1 - IoU_inner``.

    Args:
        ratio: the auxiliary boxes' scale, > 0 (0.5 to 1.5 in the paper).
        base: 'iou', 'giou', 'diou', 'ciou' (without the gate), 'siou' or 'eiou'.

    Reference: Zhang, Xu and Zhang, "Inner-IoU: More Effective Intersection over Union Loss
    with Auxiliary Bounding Box", arXiv 2311.02877, 2023.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> inner_iou_loss(pred, target, ratio=0.5)  # inner boxes [0.5, 1.5] and [1.5, 2.5]
        tensor(1.)
    """
    ratio, base = check_inner_iou_params(ratio, base)
    return _variant_loss('inner_iou', check_eps(eps), (ratio,), pred, target, weight,
                         reduction, avg_factor, box_format, base)


def focaler_iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                     reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
                     d: float = 0.0, u: float = 0.95, base: str = 'iou',
                     eps: float = 1e-7) -> Tensor:
    """Focaler-IoU, ``L_base + IoU - IoU_focaler`` with the IoU mapped linearly from
    [d, u] onto [0, 1]: ``IoU_focaler = clamp((IoU - d) / (u - d), 0, 1)``.

    Args:
        d, u: ``0 <= d < u <= 1``; the IoU range the loss focuses on.
        base: 'iou', 'giou', 'diou', 'ciou' (without the gate), 'siou' or 'eiou'.

    Reference: Zhang and Zhang, "Focaler-IoU: More Focused Intersection over Union Loss",
    arXiv 2401.10525, 2024.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> focaler_iou_loss(pred, target, d=0.0, u=0.5)  # 1 - (1/3) / 0.5
        tensor(0.3333)
    """
    d, u, base = check_focaler_iou_params(d, u, base)
    return _variant_loss('focaler_iou', check_eps(eps), (d, u), pred, target, weight,
                         reduction, avg_factor, box_format, base)


def shape_iou_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                   reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
                   scale: float = 0.0, eps: float = 1e-7) -> Tensor:
    """Shape-IoU loss, ``1 - IoU + distance_shape + Omega_shape / 2`` where, with the target's
    shape weights ``ww = 2 w_gt^s / (w_gt^s + h_gt^s)``, ``hh = 2 h_gt^s / (w_gt^s + h_gt^s)``
    (``s = scale``, no gradient):

    - ``distance_shape = (hh dx^2 + ww dy^2) / c^2``,
    - ``Omega_shape = sum_{t=w,h} (1 - exp(-omega_t))^4``,
      ``omega_w = hh |w - w_gt| / max(w, w_gt)``, ``omega_h = ww |h - h_gt| / max(h, h_gt)``.

    Args:
        scale: ``s`` >= 0, tied to the size of the dataset's targets (0: ww = hh = 1).

    Reference: Zhang and Zhang, "Shape-IoU: More Accurate Metric considering Bounding Box
    Shape and Scale", arXiv 2312.17663, 2023.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
        >>> shape_iou_loss(pred, target)  # 1 - 1/3 + 1/13
        tensor(0.7436)
    """
    scale = check_shape_iou_scale(scale)
    return _variant_loss('shape_iou', check_eps(eps), (scale,), pred, target, weight,
                         reduction, avg_factor, box_format)


def nwd_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
             reduction: str = 'mean', avg_factor=None, box_format: str = 'xyxy',
             constant: float = 12.8) -> Tensor:
    """Normalized Gaussian Wasserstein distance loss, ``1 - exp(-W2 / C)``: each box is the
    Gaussian N((cx, cy), diag(w^2, h^2) / 4), so
    ``W2^2 = |c - c_gt|^2 + ((w - w_gt)^2 + (h - h_gt)^2) / 4``. Meaningful for boxes that do
    not overlap (tiny objects), where the IoU is 0 and flat. The gradient at ``W2 = 0`` is 0.

    Args:
        constant: ``C`` > 0, of the order of the dataset's object size (12.8 for AI-TOD).

    Reference: Wang et al., "A Normalized Gaussian Wasserstein Distance for Tiny Object
    Detection", arXiv 2110.13389, 2021.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> target = torch.tensor([[3.0, 4.0, 5.0, 6.0]])
        >>> nwd_loss(pred, target, constant=5.0)  # 1 - exp(-5 / 5)
        tensor(0.6321)
    """
    constant = check_nwd_constant(constant)
    return _variant_loss('nwd', 0.0, (constant,), pred, target, weight, reduction, avg_factor,
                         box_format)
