"""The IoU-family losses on the GPU: one Triton kernel for the 6 modes of ``iou_loss`` (IoU,
its square and log, GIoU, DIoU, CIoU with its gate) and the 9 variants of
``iou_variant_loss`` (EIoU, SIoU, Wise-IoU, Alpha-IoU, MPDIoU, Inner-IoU, Focaler-IoU,
Shape-IoU, NWD, with their bases), registered by :mod:`mmdet_losses.ops.iou_kernels` as the
CUDA implementations of those operators and of their backward operators.

One geometry (:func:`_geometry`: sides, intersection, union, enclosing box, centre offset)
feeds every loss; the loss is picked by constexpr ids (``csrc/iou/ids.h``, read through
``FUSED_MODES``, ``FUSED_VARIANTS`` and ``FUSED_BASES``), so each (loss, base, dtype) is a
compiled specialisation of the same kernel. Every loss is written once, over the dual numbers
of :mod:`mmdet_losses.ops.gpu.dual`: the forward keeps the value part (the compiler drops the
unused tangents), the backward seeds pred's coordinates and takes the tangents, then, when the
target's gradient is asked, runs the loss again with the target's seeded. The maths, eps
placement and conventions at ties and clamps are those of the CPU kernels (``csrc/iou/``) and
of the plain PyTorch reference they are tested against (:mod:`mmdet_losses.boxes`,
:mod:`mmdet_losses.functional.iou`). A pair with a NaN or infinite coordinate gets a NaN loss
(and Wise-IoU's 1 - IoU) and an all-NaN gradient; a NaN or infinite incoming gradient gives a
NaN gradient, a zero one a zero gradient.

The functions take exactly the arguments of the CPU implementations in
:mod:`mmdet_losses.ops.iou_kernels` and return the same outputs. float32 and float64 (the
caller upcasts half precision); the computation is in the input dtype. The loss's scalar
parameters travel in a small tensor of that dtype (a float kernel argument would be rounded
to float32).

Example (under ``TRITON_INTERPRET=1`` on CPU tensors, or on CUDA tensors):
    >>> from mmdet_losses.ops.gpu import iou as gpu_iou
    >>> from mmdet_losses.ops.iou_kernels import FUSED_MODES
    >>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    >>> target = torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    >>> if FUSED_MODES:  # ids from the C++ extension
    ...     loss = gpu_iou.iou_forward(pred, target, FUSED_MODES['giou'], 1e-7, 0.0, False)
    ... else:
    ...     loss = torch.tensor([1 - (1 / 7 - 2 / 9)], dtype=torch.float64)
    >>> round(float(loss), 4)  # 1 - (1/7 - (9 - 7)/9)
    1.0794
"""
import contextlib
import math
from typing import List, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import dual as D
from .._library import EMPTY
from ..iou_kernels import FUSED_BASES, FUSED_MODES, FUSED_VARIANTS

__all__ = ['iou_forward', 'iou_backward', 'variant_forward', 'variant_backward',
           'compile_specs']

# The kernel's two loss families (a kernel-internal switch; the ids within a family are
# ids.h's).
_MODES = tl.constexpr(0)
_VARIANTS = tl.constexpr(1)

# ids.h's ids as constexprs (-1 where the extension is not built: no kernel runs then).
_M_IOU = tl.constexpr(FUSED_MODES.get('iou', -1))
_M_GIOU = tl.constexpr(FUSED_MODES.get('giou', -1))
_M_DIOU = tl.constexpr(FUSED_MODES.get('diou', -1))
_M_CIOU = tl.constexpr(FUSED_MODES.get('ciou', -1))
_M_IOU_SQUARE = tl.constexpr(FUSED_MODES.get('iou_square', -1))
_M_IOU_LOG = tl.constexpr(FUSED_MODES.get('iou_log', -1))
_V_EIOU = tl.constexpr(FUSED_VARIANTS.get('eiou', -1))
_V_SIOU = tl.constexpr(FUSED_VARIANTS.get('siou', -1))
_V_WIOU = tl.constexpr(FUSED_VARIANTS.get('wiou', -1))
_V_ALPHA = tl.constexpr(FUSED_VARIANTS.get('alpha_iou', -1))
_V_MPDIOU = tl.constexpr(FUSED_VARIANTS.get('mpdiou', -1))
_V_INNER = tl.constexpr(FUSED_VARIANTS.get('inner_iou', -1))
_V_FOCALER = tl.constexpr(FUSED_VARIANTS.get('focaler_iou', -1))
_V_SHAPE = tl.constexpr(FUSED_VARIANTS.get('shape_iou', -1))
_V_NWD = tl.constexpr(FUSED_VARIANTS.get('nwd', -1))
_B_IOU = tl.constexpr(FUSED_BASES.get('iou', -1))
_B_GIOU = tl.constexpr(FUSED_BASES.get('giou', -1))
_B_DIOU = tl.constexpr(FUSED_BASES.get('diou', -1))
_B_CIOU = tl.constexpr(FUSED_BASES.get('ciou', -1))
_B_SIOU = tl.constexpr(FUSED_BASES.get('siou', -1))
_B_EIOU = tl.constexpr(FUSED_BASES.get('eiou', -1))

#: 4 / pi^2, CIoU's aspect factor.
_CIOU_FACTOR = tl.constexpr(4.0 / math.pi ** 2)

# Positions of the terms in the geometry tuple (mmdet_losses/boxes.py, BoxPair): a is pred,
# b target; raw sides (negative for an inverted box), intersection of relu sides, union of
# clamped areas, enclosing box (clamped sides), centre offset (target minus pred).
_A = tl.constexpr(0)
_B = tl.constexpr(1)
_WA = tl.constexpr(2)
_HA = tl.constexpr(3)
_WB = tl.constexpr(4)
_HB = tl.constexpr(5)
_INTER = tl.constexpr(6)
_UNION = tl.constexpr(7)
_EW = tl.constexpr(8)
_EH = tl.constexpr(9)
_DX = tl.constexpr(10)
_DY = tl.constexpr(11)

#: Box pairs per program.
_BLOCK = 128
_NUM_WARPS = 4
_TRITON_DTYPES = {torch.float32: 'fp32', torch.float64: 'fp64'}


# ------------------------------------------------------------------ the geometry
@triton.jit
def _geometry(a, b):
    """The terms every loss combines, of boxes a (pred) and b (target), 4 duals each."""
    wa = D.sub(a[2], a[0])
    ha = D.sub(a[3], a[1])
    wb = D.sub(b[2], b[0])
    hb = D.sub(b[3], b[1])
    inter = D.mul(D.relu(D.sub(D.minimum(a[2], b[2]), D.maximum(a[0], b[0]))),
                  D.relu(D.sub(D.minimum(a[3], b[3]), D.maximum(a[1], b[1]))))
    union = D.sub(D.add(D.mul(D.clamp_min(wa, 0.0), D.clamp_min(ha, 0.0)),
                        D.mul(D.clamp_min(wb, 0.0), D.clamp_min(hb, 0.0))), inter)
    ew = D.clamp_min(D.sub(D.maximum(a[2], b[2]), D.minimum(a[0], b[0])), 0.0)
    eh = D.clamp_min(D.sub(D.maximum(a[3], b[3]), D.minimum(a[1], b[1])), 0.0)
    dx = D.div_value(D.sub(D.sub(D.add(b[0], b[2]), a[0]), a[2]), 2.0)
    dy = D.div_value(D.sub(D.sub(D.add(b[1], b[3]), a[1]), a[3]), 2.0)
    return (a, b, wa, ha, wb, hb, inter, union, ew, eh, dx, dy)


@triton.jit
def _rho2(g):
    return D.add(D.square(g[_DX]), D.square(g[_DY]))


@triton.jit
def _c2(g):
    return D.add(D.square(g[_EW]), D.square(g[_EH]))


@triton.jit
def _iou(g, eps):
    """``inter / (union + eps)``."""
    return D.div(g[_INTER], D.add_value(g[_UNION], eps))


@triton.jit
def _giou(g, eps):
    """``inter / U - (E - U) / E``, U and E the union and enclosing area at least eps."""
    u = D.clamp_min(g[_UNION], eps)
    e = D.clamp_min(D.mul(g[_EW], g[_EH]), eps)
    return D.sub(D.div(g[_INTER], u), D.div(D.sub(e, u), e))


@triton.jit
def _distance_ratio(g, eps):
    """``min(rho2 / (c2 + eps), 1)``."""
    return D.clamp_max(D.div(_rho2(g), D.add_value(_c2(g), eps)), 1.0)


@triton.jit
def _diou(g, eps):
    return D.sub(_iou(g, eps), _distance_ratio(g, eps))


@triton.jit
def _aspect_v(g):
    """CIoU's ``4/pi^2 (angle(b) - angle(a))^2``, angles of the sides clamped at 0."""
    gap = D.angle_gap(D.clamp_min(g[_WA], 0.0), D.clamp_min(g[_HA], 0.0),
                      D.clamp_min(g[_WB], 0.0), D.clamp_min(g[_HB], 0.0))
    return D.mul_value(D.square(gap), _CIOU_FACTOR)


@triton.jit
def _ciou_alpha(g, v, eps):
    """CIoU's ``alpha = v / (clamp(1 - IoU, 0) + v + eps)``, a value (no gradient)."""
    iou = _iou(g, eps)[0]
    return D.divide(v[0], D.clamp_min_value(1 - iou, 0.0) + v[0] + eps)


@triton.jit
def _ciou(g, eps, gate, GATED: tl.constexpr):
    """``DIoU - alpha v``; GATED: alpha = 0 where IoU <= gate (-inf: no gate)."""
    v = _aspect_v(g)
    alpha = _ciou_alpha(g, v, eps)
    if GATED:
        alpha = tl.where(_iou(g, eps)[0] > gate, alpha, D.zeros_like(alpha))
    return D.sub(_diou(g, eps), D.mul_value(v, alpha))


@triton.jit
def _scaled_geometry(g, ratio):
    """The geometry of both boxes scaled by ``ratio`` about their centres (Inner-IoU)."""
    half = ratio * 0.5
    a = g[_A]
    b = g[_B]
    cxa = D.div_value(D.add(a[0], a[2]), 2.0)
    cya = D.div_value(D.add(a[1], a[3]), 2.0)
    cxb = D.div_value(D.add(b[0], b[2]), 2.0)
    cyb = D.div_value(D.add(b[1], b[3]), 2.0)
    hwa = D.mul_value(g[_WA], half)
    hha = D.mul_value(g[_HA], half)
    hwb = D.mul_value(g[_WB], half)
    hhb = D.mul_value(g[_HB], half)
    return _geometry((D.sub(cxa, hwa), D.sub(cya, hha), D.add(cxa, hwa), D.add(cya, hha)),
                     (D.sub(cxb, hwb), D.sub(cyb, hhb), D.add(cxb, hwb), D.add(cyb, hhb)))


# ------------------------------------------------------------------ the losses
@triton.jit
def _mode_loss(g, eps, gate, MODE: tl.constexpr):
    """iou_loss's modes: 1 - max(IoU, eps) (and its square, -log), 1 - GIoU, 1 - DIoU,
    1 - CIoU (gated), IoU = inter / max(union, eps)."""
    if MODE == _M_GIOU:
        loss = D.value_sub(1.0, _giou(g, eps))
    elif MODE == _M_DIOU:
        loss = D.value_sub(1.0, _diou(g, eps))
    elif MODE == _M_CIOU:
        loss = D.value_sub(1.0, _ciou(g, eps, gate, True))
    else:
        iou = D.clamp_min(D.div(g[_INTER], D.clamp_min(g[_UNION], eps)), eps)
        if MODE == _M_IOU_SQUARE:
            loss = D.value_sub(1.0, D.square(iou))
        elif MODE == _M_IOU_LOG:
            loss = D.neg(D.log(iou))
        else:
            tl.static_assert(MODE == _M_IOU, 'unknown iou_loss mode')
            loss = D.value_sub(1.0, iou)
    return loss


@triton.jit
def _eiou(g, eps, gamma, gamma_int):
    """DIoU + squared side differences over the enclosing box's (each at most 1), times the
    detached IoU^gamma where gamma > 0 (Focal-EIoU)."""
    loss = D.add(D.add(D.value_sub(1.0, _diou(g, eps)),
                       D.clamp_max(D.div(D.square(D.sub(g[_WA], g[_WB])),
                                         D.clamp_min(D.square(g[_EW]), eps)), 1.0)),
                 D.clamp_max(D.div(D.square(D.sub(g[_HA], g[_HB])),
                                   D.clamp_min(D.square(g[_EH]), eps)), 1.0))
    iou = _iou(g, eps)[0]
    weight = tl.where(gamma > 0, D.pow_value(iou, gamma, gamma_int), D.zeros_like(iou) + 1)
    return D.mul_value(loss, weight)


@triton.jit
def _shape_cost(g, eps, theta, theta_int, weight_w, weight_h):
    """``sum_t (1 - exp(-omega_t))^theta``, ``omega_w = weight_w |w - w_gt| / max(w, w_gt)``."""
    omega_w = D.div(D.mul_value(D.abs(D.sub(g[_WA], g[_WB])), weight_w),
                    D.clamp_min(D.maximum(g[_WA], g[_WB]), eps))
    omega_h = D.div(D.mul_value(D.abs(D.sub(g[_HA], g[_HB])), weight_h),
                    D.clamp_min(D.maximum(g[_HA], g[_HB]), eps))
    return D.add(D.pow(D.value_sub(1.0, D.exp(D.neg(omega_w))), theta, theta_int),
                 D.pow(D.value_sub(1.0, D.exp(D.neg(omega_h))), theta, theta_int))


@triton.jit
def _siou(g, eps, theta, theta_int):
    """1 - IoU + (distance cost + shape cost) / 2, the angle cost 2 |dx| |dy| / rho^2."""
    angle = D.div(D.mul(D.mul_value(D.abs(g[_DX]), 2.0), D.abs(g[_DY])),
                  D.clamp_min(_rho2(g), eps * eps))
    gamma = D.value_sub(2.0, angle)
    distance = D.sub(
        D.value_sub(2.0, D.exp(D.div(D.mul(D.neg(gamma), D.square(g[_DX])),
                                     D.clamp_min(D.square(g[_EW]), eps)))),
        D.exp(D.div(D.mul(D.neg(gamma), D.square(g[_DY])), D.clamp_min(D.square(g[_EH]), eps))))
    one = D.zeros_like(g[_DX][0]) + 1
    cost = D.div_value(D.add(distance, _shape_cost(g, eps, theta, theta_int, one, one)), 2.0)
    return D.add(D.value_sub(1.0, _iou(g, eps)), cost)


@triton.jit
def _base_loss(g, eps, BASE: tl.constexpr):
    """L_base of Inner- and Focaler-IoU: CIoU without the gate, SIoU with theta 4, EIoU with
    gamma 0."""
    if BASE == _B_GIOU:
        loss = D.value_sub(1.0, _giou(g, eps))
    elif BASE == _B_DIOU:
        loss = D.value_sub(1.0, _diou(g, eps))
    elif BASE == _B_CIOU:
        loss = D.value_sub(1.0, _ciou(g, eps, 0.0, False))
    elif BASE == _B_SIOU:
        loss = _siou(g, eps, 4.0, 4)
    elif BASE == _B_EIOU:
        loss = _eiou(g, eps, 0.0, 0)
    else:
        tl.static_assert(BASE == _B_IOU, 'unknown base loss')
        loss = D.value_sub(1.0, _iou(g, eps))
    return loss


@triton.jit
def _alpha_iou(g, eps, alpha, alpha_int, BASE: tl.constexpr):
    """1 - IoU^alpha plus each penalty of the base to the power alpha (safe powers)."""
    loss = D.value_sub(1.0, D.safe_pow(_iou(g, eps), alpha, alpha_int))
    if BASE == _B_GIOU:
        e = D.clamp_min(D.mul(g[_EW], g[_EH]), eps)
        loss = D.add(loss, D.safe_pow(D.div(D.sub(e, D.clamp_min(g[_UNION], eps)), e),
                                      alpha, alpha_int))
    if BASE == _B_DIOU or BASE == _B_CIOU:
        loss = D.add(loss, D.safe_pow(_distance_ratio(g, eps), alpha, alpha_int))
    if BASE == _B_CIOU:
        v = _aspect_v(g)
        loss = D.add(loss, D.safe_pow(D.mul_value(v, _ciou_alpha(g, v, eps)), alpha, alpha_int))
    return loss


@triton.jit
def _shape_iou(g, eps, scale, scale_int):
    """1 - IoU + the target-shape-weighted distance and shape costs (weights detached)."""
    wb = D.clamp_min_value(g[_WB][0], 0.0)
    hb = D.clamp_min_value(g[_HB][0], 0.0)
    w_s = D.pow_value(wb, scale, scale_int)
    h_s = D.pow_value(hb, scale, scale_int)
    total = D.clamp_min_value(w_s + h_s, eps)
    one = D.zeros_like(wb) + 1
    ww = tl.where(scale > 0, D.divide(2 * w_s, total), one)
    hh = tl.where(scale > 0, D.divide(2 * h_s, total), one)
    c2 = D.clamp_min(_c2(g), eps)
    distance = D.add(D.mul_value(D.clamp_max(D.div(D.square(g[_DX]), c2), 1.0), hh),
                     D.mul_value(D.clamp_max(D.div(D.square(g[_DY]), c2), 1.0), ww))
    return D.add(D.add(D.value_sub(1.0, _iou(g, eps)), distance),
                 D.mul_value(_shape_cost(g, eps, 4.0, 4, hh, ww), 0.5))


@triton.jit
def _variant_loss(g, eps, p0, p1, span, p0_int, VARIANT: tl.constexpr, BASE: tl.constexpr):
    """(loss, Wise-IoU's 1 - IoU as a value: for the others, the loss's value)."""
    if VARIANT == _V_EIOU:
        loss = _eiou(g, eps, p0, p0_int)
    elif VARIANT == _V_SIOU:
        loss = _siou(g, eps, p0, p0_int)
    elif VARIANT == _V_WIOU:
        l_iou = D.value_sub(1.0, _iou(g, eps))
        c2 = D.clamp_min_value(_c2(g)[0], eps)
        loss = D.mul(l_iou, D.exp(D.clamp_max(D.div_value(_rho2(g), c2), 1.0)))
    elif VARIANT == _V_ALPHA:
        loss = _alpha_iou(g, eps, p0, p0_int, BASE)
    elif VARIANT == _V_MPDIOU:
        a = g[_A]
        b = g[_B]
        d1 = D.add(D.square(D.sub(a[0], b[0])), D.square(D.sub(a[1], b[1])))
        d2 = D.add(D.square(D.sub(a[2], b[2])), D.square(D.sub(a[3], b[3])))
        loss = D.add(D.value_sub(1.0, _iou(g, eps)), D.div_value(D.add(d1, d2), p0))
    elif VARIANT == _V_INNER:
        loss = D.sub(D.add(_base_loss(g, eps, BASE), _iou(g, eps)),
                     _iou(_scaled_geometry(g, p0), eps))
    elif VARIANT == _V_FOCALER:
        iou = _iou(g, eps)
        loss = D.sub(D.add(_base_loss(g, eps, BASE), iou),
                     D.clamp(D.div_value(D.sub_value(iou, p0), span), 0.0, 1.0))
    elif VARIANT == _V_SHAPE:
        loss = _shape_iou(g, eps, p0, p0_int)
    else:
        tl.static_assert(VARIANT == _V_NWD, 'unknown iou variant')
        w2 = D.add(_rho2(g), D.div_value(D.add(D.square(D.sub(g[_WA], g[_WB])),
                                               D.square(D.sub(g[_HA], g[_HB]))), 4.0))
        loss = D.value_sub(1.0, D.exp(D.div_value(D.neg(D.safe_sqrt(w2)), p0)))
    if VARIANT == _V_WIOU:
        aux = l_iou[0]
    else:
        aux = loss[0]
    return loss, aux


@triton.jit
def _pair_loss(a, b, eps, p0, p1, span, gate, p0_int, FAMILY: tl.constexpr,
               LOSS: tl.constexpr, BASE: tl.constexpr):
    g = _geometry(a, b)
    if FAMILY == _MODES:
        loss = _mode_loss(g, eps, gate, LOSS)
        aux = loss[0]
    else:
        loss, aux = _variant_loss(g, eps, p0, p1, span, p0_int, LOSS, BASE)
    return loss, aux


# ------------------------------------------------------------------ the kernel
@triton.jit
def _store_gradient(ptr, offs, mask, g, loss, poison):
    """``g * d loss / d box`` (0 where g is 0, as the plain path's chain rule gives it even
    where a derivative of finite boxes overflowed), NaN where a coordinate or g is not
    finite (``poison``)."""
    zero = D.zeros_like(g)
    for j in tl.static_range(4):
        tl.store(ptr + 4 * offs + j, tl.where(g == 0, zero, g * loss[1 + j]) + poison, mask=mask)


@triton.jit(do_not_specialize=['grad_stride', 'n', 'p0_int', 'target_grad'])
def _box_pair_kernel(pred_ptr, target_ptr, prm_ptr, grad_ptr, grad_stride, out_ptr, aux_ptr,
                     grad_pred_ptr, grad_target_ptr, n, p0_int, target_grad,
                     FAMILY: tl.constexpr, LOSS: tl.constexpr, BASE: tl.constexpr,
                     GRAD: tl.constexpr, BLOCK: tl.constexpr):
    """Forward (GRAD False): the loss of each pair to out, Wise-IoU's 1 - IoU to aux.
    Backward (GRAD True): ``grad * d loss / d pred`` to grad_pred and, where target_grad,
    ``grad * d loss / d target`` to grad_target. prm: eps, p0, p1, p1 - p0, CIoU's gate."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x1a = tl.load(pred_ptr + 4 * offs, mask=mask, other=0)
    y1a = tl.load(pred_ptr + 4 * offs + 1, mask=mask, other=0)
    x2a = tl.load(pred_ptr + 4 * offs + 2, mask=mask, other=0)
    y2a = tl.load(pred_ptr + 4 * offs + 3, mask=mask, other=0)
    x1b = tl.load(target_ptr + 4 * offs, mask=mask, other=0)
    y1b = tl.load(target_ptr + 4 * offs + 1, mask=mask, other=0)
    x2b = tl.load(target_ptr + 4 * offs + 2, mask=mask, other=0)
    y2b = tl.load(target_ptr + 4 * offs + 3, mask=mask, other=0)
    eps = tl.load(prm_ptr)
    p0 = tl.load(prm_ptr + 1)
    p1 = tl.load(prm_ptr + 2)
    span = tl.load(prm_ptr + 3)
    gate = tl.load(prm_ptr + 4)
    # NaN where one of the 8 coordinates is NaN or infinite (x - x), else 0: the geometry alone
    # could turn it into a finite loss (a max, a clamp or a select takes the other operand)
    poison = (((x1a - x1a) + (y1a - y1a)) + ((x2a - x2a) + (y2a - y2a))) + (
        ((x1b - x1b) + (y1b - y1b)) + ((x2b - x2b) + (y2b - y2b)))
    if not GRAD:
        loss, aux = _pair_loss(D.box(x1a, y1a, x2a, y2a, False), D.box(x1b, y1b, x2b, y2b, False),
                               eps, p0, p1, span, gate, p0_int, FAMILY, LOSS, BASE)
        tl.store(out_ptr + offs, loss[0] + poison, mask=mask)
        if FAMILY == _VARIANTS and LOSS == _V_WIOU:
            tl.store(aux_ptr + offs, aux + poison, mask=mask)
    else:
        g = tl.load(grad_ptr + offs * grad_stride, mask=mask, other=0)
        g_poison = poison + g * 0  # NaN for a NaN or infinite incoming gradient too
        loss, aux = _pair_loss(D.box(x1a, y1a, x2a, y2a, True), D.box(x1b, y1b, x2b, y2b, False),
                               eps, p0, p1, span, gate, p0_int, FAMILY, LOSS, BASE)
        _store_gradient(grad_pred_ptr, offs, mask, g, loss, g_poison)
        if target_grad != 0:  # the same loss again, the target's coordinates seeded
            loss, aux = _pair_loss(D.box(x1a, y1a, x2a, y2a, False),
                                   D.box(x1b, y1b, x2b, y2b, True),
                                   eps, p0, p1, span, gate, p0_int, FAMILY, LOSS, BASE)
            _store_gradient(grad_target_ptr, offs, mask, g, loss, g_poison)


D.call_directly_when_interpreted(globals(), kernels=('_box_pair_kernel',))


# ------------------------------------------------------------------ the host side
def _check_boxes(pred: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
    if pred.dim() != 2 or pred.shape[1] != 4:
        raise ValueError(f'iou kernels: pred must be (N, 4), got {tuple(pred.shape)}')
    if target.shape != pred.shape:
        raise ValueError(f"iou kernels: target must have pred's shape {tuple(pred.shape)}, "
                         f'got {tuple(target.shape)}')
    if pred.dtype not in _TRITON_DTYPES or target.dtype != pred.dtype:
        raise TypeError(f'iou kernels: pred and target must be both float32 or both float64, '
                        f'got {pred.dtype} and {target.dtype}')
    if target.device != pred.device:
        raise ValueError(f'iou kernels: target must be on pred\'s device {pred.device}, got '
                         f'{target.device}')
    return pred.contiguous(), target.contiguous()


def _exponent_int(p: float) -> int:
    """p where it is an integer in [0, 15] (a few multiplications), else -1."""
    return int(p) if math.isfinite(p) and p == math.floor(p) and 0 <= p <= 15 else -1


def _launch(pred: Tensor, target: Tensor, family: int, loss: int, base: int, eps: float,
            params, gate: float, grad=None, target_grad: bool = False):
    """Runs the kernel; returns (out, aux) forward, (grad_pred, grad_target) backward."""
    pred, target = _check_boxes(pred, target)
    n = pred.shape[0]
    p0 = float(params[0]) if len(params) > 0 else 0.0
    p1 = float(params[1]) if len(params) > 1 else 0.0
    wiou = family == 1 and loss == FUSED_VARIANTS.get('wiou')
    if grad is None:
        out = pred.new_empty((n,))
        aux = pred.new_empty((n,) if wiou else EMPTY)
        results = (out, aux)
    else:
        if grad.dim() != 1 or grad.shape[0] != n:
            raise ValueError(f'iou kernels: grad must be ({n},), got {tuple(grad.shape)}')
        grad = grad.to(pred.dtype)
        grad_pred = torch.empty_like(pred)
        grad_target = torch.empty_like(target) if target_grad else pred.new_empty(EMPTY)
        results = (grad_pred, grad_target)
    if n == 0:
        return results
    # the parameters in the boxes' dtype (a float argument would be rounded to float32); u - d
    # rounded once from the doubles, as the reference's
    prm = torch.tensor([eps, p0, p1, p1 - p0, gate], dtype=pred.dtype, device=pred.device)
    if grad is None:
        args = (pred, target, prm, pred, 0, results[0],
                results[1] if wiou else results[0], pred, pred)
    else:
        args = (pred, target, prm, grad, grad.stride(0), pred, pred, results[0],
                results[1] if target_grad else results[0])
    grid = (triton.cdiv(n, _BLOCK),)
    on_device = (torch.cuda.device(pred.device) if pred.device.type == 'cuda'
                 else contextlib.nullcontext())  # the interpreter's CPU tensors
    with on_device:
        # no fused multiply-adds: each product rounded as the plain path's (a clamp or a
        # tie of computed terms, the union of identical boxes, stays where it is there)
        _box_pair_kernel[grid](*args, n, _exponent_int(p0), int(target_grad), FAMILY=family,
                               LOSS=loss, BASE=base, GRAD=grad is not None, BLOCK=_BLOCK,
                               num_warps=_NUM_WARPS, enable_fp_fusion=False)
    return results


def _variant_base(variant: int, base: int) -> int:
    """The base a variant's kernel is specialised on: its own for Alpha- (the first four),
    Inner- and Focaler-IoU, the first id for the others (which ignore it)."""
    name = {i: v for v, i in FUSED_VARIANTS.items()}.get(variant)
    if name is None:
        raise ValueError(f'iou variant kernels: unknown variant {variant}')
    allowed = _BASES_OF.get(name, ())
    if not allowed:
        return 0
    if base not in [FUSED_BASES[b] for b in allowed]:
        raise ValueError(f'iou variant kernels: base {base} is not one of variant {variant}')
    return base


#: The bases each composite variant takes (the CPU kernel's num_bases).
_BASES_OF = {'alpha_iou': ('iou', 'giou', 'diou', 'ciou'),
             'inner_iou': ('iou', 'giou', 'diou', 'ciou', 'siou', 'eiou'),
             'focaler_iou': ('iou', 'giou', 'diou', 'ciou', 'siou', 'eiou')}


def _check_mode(mode: int) -> int:
    if mode not in FUSED_MODES.values():
        raise ValueError(f'iou kernels: unknown mode {mode}')
    return mode


def _gate(iou_gate: float, has_gate: bool) -> float:
    return float(iou_gate) if has_gate else -math.inf


def iou_forward(pred: Tensor, target: Tensor, mode: int, eps: float, iou_gate: float,
                has_gate: bool) -> Tensor:
    """The (N,) loss of ``iou_loss`` (the CPU kernel's ``_iou_forward``)."""
    return _launch(pred, target, 0, _check_mode(mode), 0, eps, (), _gate(iou_gate, has_gate))[0]


def iou_backward(grad: Tensor, pred: Tensor, target: Tensor, mode: int, eps: float,
                 iou_gate: float, has_gate: bool, target_grad: bool) -> Tuple[Tensor, Tensor]:
    """(grad_pred, grad_target or an EMPTY placeholder) of ``sum(grad * loss)``."""
    return _launch(pred, target, 0, _check_mode(mode), 0, eps, (), _gate(iou_gate, has_gate),
                   grad, target_grad)


def variant_forward(pred: Tensor, target: Tensor, variant: int, base: int, eps: float,
                    params: List[float]) -> Tuple[Tensor, Tensor]:
    """(loss (N,), Wise-IoU's 1 - IoU (N,) or an EMPTY placeholder) of ``iou_variant_loss``."""
    if len(params) > 2:
        raise ValueError(f'iou variant kernels: at most 2 parameters, got {len(params)}')
    return _launch(pred, target, 1, variant, _variant_base(variant, base), eps, params, 0.0)


def variant_backward(grad: Tensor, pred: Tensor, target: Tensor, variant: int, base: int,
                     eps: float, params: List[float],
                     target_grad: bool) -> Tuple[Tensor, Tensor]:
    """(grad_pred, grad_target or an EMPTY placeholder) of ``sum(grad * loss)``."""
    if len(params) > 2:
        raise ValueError(f'iou variant kernels: at most 2 parameters, got {len(params)}')
    return _launch(pred, target, 1, variant, _variant_base(variant, base), eps, params, 0.0,
                   grad, target_grad)


def _specialisations():
    """(family, loss id, base id) of every compiled loss."""
    for mode in FUSED_MODES.values():
        yield 0, mode, 0
    for name, variant in FUSED_VARIANTS.items():
        for base in ([FUSED_BASES[b] for b in _BASES_OF[name]] if name in _BASES_OF else [0]):
            yield 1, variant, base


def compile_specs():
    """``(kernel, signature, constexprs)`` of every kernel this module launches: each loss
    (mode, variant and base), forward and backward, float32 and float64."""
    specs = []
    for dtype in _TRITON_DTYPES.values():
        pointer = f'*{dtype}'
        signature = {'pred_ptr': pointer, 'target_ptr': pointer, 'prm_ptr': pointer,
                     'grad_ptr': pointer, 'grad_stride': 'i32', 'out_ptr': pointer,
                     'aux_ptr': pointer, 'grad_pred_ptr': pointer, 'grad_target_ptr': pointer,
                     'n': 'i32', 'p0_int': 'i32', 'target_grad': 'i32',
                     'FAMILY': 'constexpr', 'LOSS': 'constexpr', 'BASE': 'constexpr',
                     'GRAD': 'constexpr', 'BLOCK': 'constexpr'}
        for family, loss, base in _specialisations():
            for grad in (False, True):
                specs.append((_box_pair_kernel, signature,
                              dict(FAMILY=family, LOSS=loss, BASE=base, GRAD=grad,
                                   BLOCK=_BLOCK)))
    return specs
