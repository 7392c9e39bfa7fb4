"""Dual numbers in Triton: forward-mode derivatives of a box pair's loss in 4 coordinates.

A dual is a tuple ``(value, d0, d1, d2, d3)`` of tensors of one shape and dtype: a value and
its derivatives in the 4 coordinates of one box. The seed decides which box: the kernel of
:mod:`mmdet_losses.ops.gpu.iou` seeds pred's coordinates (``seed(x, k)``), and, when the
target's gradient is asked, runs the same loss a second time with the target's seeded. So a
loss is written once, over these operations: its value is the value part, its gradient the
tangents (no hand-derived backward).

Every operation's derivative is the one torch's autograd takes, kinks included, so the
kernels reproduce the pure-PyTorch reference (:mod:`mmdet_losses.boxes`) as the CPU kernels
do (``csrc/iou/dual.h``, whose conventions these mirror operation by operation):

- ``maximum``/``minimum`` split the derivative equally at a tie (1 to the larger, 1/2 each
  at a tie, 0 to the smaller), and return the second operand where the comparison is false
  (a NaN first operand);
- ``clamp_min`` passes the derivative where ``x >= low``, ``clamp_max`` where ``x <= high``
  (a NaN stays NaN, with derivative 0), ``relu`` where ``x > 0`` only;
- ``abs`` has derivative ``sign(x)``, 0 at 0;
- ``safe_pow``/``safe_sqrt`` (``x^p`` for x > 0 or non-finite, 0 for a finite x <= 0) have
  derivative 0 where they give 0;
- a value that carries no gradient (CIoU's alpha, a detached weight) is a plain tensor: the
  ``*_value`` operations combine a dual with one.

Functions taking a plain operand ``s`` (``add_value``, ``mul_value`` ...) accept a tensor or
a scalar (a Python float, a scalar argument of the kernel).

Rounding: additions, products, divisions (:func:`divide`) and square roots are IEEE-rounded
as torch's (the kernel is launched without fused multiply-adds); float32 ``exp``/``log`` are
Triton's (the GPU's approximate ``ex2``/``lg2``, a few ulp), float64 ones libdevice's.
"""
import os

import triton
import triton.language as tl

# ---------------------------------------------------------------- construction


@triton.jit
def zeros_like(x):
    """Zeros of x's shape and dtype (tl.zeros_like, as a builtin: cheaper interpreted)."""
    return tl.full(x.shape, 0, x.dtype)


@triton.jit
def divide(x, y):
    """``x / y`` correctly rounded, as torch's (Triton's ``/`` of float32 is an approximation
    within 2 ulp); ``y`` a tensor, ``x`` a tensor or a number."""
    if y.dtype == tl.float32:
        q = tl.div_rn(x, y)
    else:
        q = x / y
    return q


@triton.jit
def constant(v):
    """``v`` with zero derivatives."""
    z = zeros_like(v)
    return (v, z, z, z, z)


@triton.jit
def seed(v, K: tl.constexpr):
    """``v`` as the coordinate ``K`` (0..3) of the seeded box: derivative 1 in ``K``."""
    z = zeros_like(v)
    one = z + 1
    return (v, one if K == 0 else z, one if K == 1 else z, one if K == 2 else z,
            one if K == 3 else z)


@triton.jit
def box(x1, y1, x2, y2, SEEDED: tl.constexpr):
    """A box's 4 coordinates as duals: seeded (derivatives in them) or constant."""
    if SEEDED:
        return (seed(x1, 0), seed(y1, 1), seed(x2, 2), seed(y2, 3))
    else:
        return (constant(x1), constant(y1), constant(x2), constant(y2))


@triton.jit
def chain(fx, dfx, a):
    """f(a) for ``fx = f(a.value)`` and ``dfx = f'(a.value)``: the chain rule."""
    # the tangent first: dfx may be a constexpr (a literal argument)
    return (fx, a[1] * dfx, a[2] * dfx, a[3] * dfx, a[4] * dfx)


@triton.jit
def combine(v, sa, a, sb, b):
    """Value ``v``, derivatives ``sa * a' + sb * b'``."""
    return (v, a[1] * sa + b[1] * sb, a[2] * sa + b[2] * sb, a[3] * sa + b[3] * sb,
            a[4] * sa + b[4] * sb)


@triton.jit
def select(cond, a, b):
    """``a`` where ``cond``, else ``b`` (value and derivatives)."""
    return (tl.where(cond, a[0], b[0]), tl.where(cond, a[1], b[1]), tl.where(cond, a[2], b[2]),
            tl.where(cond, a[3], b[3]), tl.where(cond, a[4], b[4]))


# ---------------------------------------------------------------- arithmetic of two duals


@triton.jit
def add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])


@triton.jit
def sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3], a[4] - b[4])


@triton.jit
def mul(a, b):
    return combine(a[0] * b[0], b[0], a, a[0], b)


@triton.jit
def div(a, b):
    q = divide(a[0], b[0])
    return combine(q, divide(1.0, b[0]), a, divide(-q, b[0]), b)


@triton.jit
def neg(a):
    return (-a[0], -a[1], -a[2], -a[3], -a[4])


# ---------------------------------------------------------------- a dual and a plain value


@triton.jit
def add_value(a, s):
    """``a + s``."""
    return (a[0] + s, a[1], a[2], a[3], a[4])


@triton.jit
def sub_value(a, s):
    """``a - s``."""
    return (a[0] - s, a[1], a[2], a[3], a[4])


@triton.jit
def value_sub(s, a):
    """``s - a``."""
    return (s - a[0], -a[1], -a[2], -a[3], -a[4])


@triton.jit
def mul_value(a, s):
    """``a * s`` (``s`` without derivative)."""
    return chain(a[0] * s, s, a)


@triton.jit
def div_value(a, s):
    """``a / s`` (``s`` without derivative)."""
    s = zeros_like(a[0]) + s  # a tensor: correctly rounded divisions
    return chain(divide(a[0], s), divide(1.0, s), a)


# ---------------------------------------------------------------- kinks


@triton.jit
def max_share(a, b):
    """Share of max(a, b)'s derivative that goes to ``a``: 1, 1/2 at a tie, 0."""
    return (tl.where(a > b, 1.0, 0.0) + tl.where(a >= b, 1.0, 0.0)) * 0.5


@triton.jit
def maximum(a, b):
    s = max_share(a[0], b[0])
    return combine(tl.where(a[0] > b[0], a[0], b[0]), s, a, 1 - s, b)


@triton.jit
def minimum(a, b):
    s = max_share(b[0], a[0])
    return combine(tl.where(a[0] < b[0], a[0], b[0]), s, a, 1 - s, b)


@triton.jit
def relu(a):
    keep = a[0] > 0
    return chain(tl.where(keep, a[0], zeros_like(a[0])), tl.where(keep, 1.0, 0.0), a)


@triton.jit
def clamp_min_value(x, low):
    """clamp(x, min=low) of a plain tensor (a NaN stays NaN)."""
    return tl.where(x < low, zeros_like(x) + low, x)


@triton.jit
def clamp_min(a, low):
    return chain(clamp_min_value(a[0], low), tl.where(a[0] >= low, 1.0, 0.0), a)


@triton.jit
def clamp_max(a, high):
    return chain(tl.where(a[0] > high, zeros_like(a[0]) + high, a[0]),
                 tl.where(a[0] <= high, 1.0, 0.0), a)


@triton.jit
def clamp(a, low, high):
    return clamp_max(clamp_min(a, low), high)


@triton.jit
def abs(a):
    neg_side = a[0] < 0
    return chain(tl.where(neg_side, -a[0], a[0]),
                 tl.where(a[0] > 0, 1.0, 0.0) - tl.where(neg_side, 1.0, 0.0), a)


# ---------------------------------------------------------------- smooth functions


@triton.jit
def square(a):
    return chain(a[0] * a[0], 2 * a[0], a)


@triton.jit
def exp(a):
    e = tl.exp(a[0])
    return chain(e, e, a)


@triton.jit
def log(a):
    return chain(tl.log(a[0]), divide(1.0, a[0]), a)


@triton.jit
def sqrt_value(x):
    """The correctly rounded square root (``tl.sqrt`` of float32 is an approximation)."""
    if x.dtype == tl.float64:
        root = tl.sqrt(x)
    else:
        root = tl.sqrt_rn(x)
    return root


@triton.jit
def pow_value(x, p, p_int):
    """``x^p`` of a plain tensor. ``p_int`` is p where p is an integer in [0, 15], else -1:
    then a few multiplications (exact as the CPU kernel's), else 1/2 a square root, else
    ``exp(p log x)`` (x >= 0 here: 0 for x = 0 and p > 0, inf for p < 0)."""
    one = zeros_like(x) + 1
    x2 = x * x
    x4 = x2 * x2
    x8 = x4 * x4
    r = tl.where((p_int & 1) != 0, x, one)
    r = tl.where((p_int & 2) != 0, r * x2, r)
    r = tl.where((p_int & 4) != 0, r * x4, r)
    r = tl.where((p_int & 8) != 0, r * x8, r)
    root = sqrt_value(x)
    general = tl.where(p == 0.5, root,
                       tl.where(p == -0.5, divide(one, root), tl.exp(tl.log(x) * p)))
    return tl.where(p_int >= 0, r, general)


@triton.jit
def _minus_one(p_int):
    """The ``p_int`` of ``p - 1``."""
    return tl.where(p_int >= 1, p_int - 1, -1)


@triton.jit
def pow(a, p, p_int):
    """``a^p`` of ``a >= 0`` (torch.pow: derivative ``p a^(p-1)``, 1 at 0 for p = 1)."""
    return chain(pow_value(a[0], p, p_int), pow_value(a[0], p - 1, _minus_one(p_int)) * p, a)


@triton.jit
def safe_pow_keeps(x):
    """Where safe_pow keeps ``x^p``: x > 0 or x not finite (a NaN stays NaN)."""
    return (x > 0) | ((x - x) != 0)


@triton.jit
def safe_pow(a, p, p_int):
    """``a^p`` for a > 0 (and a non-finite a), 0 with derivative 0 for a finite a <= 0."""
    keep = safe_pow_keeps(a[0])
    base = tl.where(keep, a[0], zeros_like(a[0]) + 1)
    zero = zeros_like(base)
    return chain(tl.where(keep, pow_value(base, p, p_int), zero),
                 tl.where(keep, pow_value(base, p - 1, _minus_one(p_int)) * p, zero), a)


@triton.jit
def safe_sqrt(a):
    """sqrt(a) for a > 0 (and a non-finite a), 0 with derivative 0 for a finite a <= 0."""
    keep = safe_pow_keeps(a[0])
    root = sqrt_value(tl.where(keep, a[0], zeros_like(a[0]) + 1))
    zero = zeros_like(root)
    return chain(tl.where(keep, root, zero), tl.where(keep, divide(0.5, root), zero), a)


# ---------------------------------------------------------------- CIoU's angles


@triton.jit
def atan_unit(a):
    """atan(a) for a in [0, 1]: one reduction, atan(a) = pi/6 + atan((a - 1/sqrt3) /
    (1 + a/sqrt3)) for a > tan(pi/12), then the alternating series r - r^3/3 + ... to r^29
    (|r| <= 0.268: the first term left out is below 1e-19), as the CPU kernel's."""
    # constexpr: a local float variable would be a float32 scalar
    INV_SQRT3: tl.constexpr = 0.57735026918962576451
    reduce = a > 0.26794919243112270647
    r = tl.where(reduce, divide(a - INV_SQRT3, a * INV_SQRT3 + 1), a)
    z = r * r
    total = zeros_like(z)
    for i in tl.static_range(15):  # the term of r^(2k + 1), k = 14 - i: (-1)^k / (2k + 1)
        total = total * z + (1 - 2 * ((14 - i) % 2)) / (29 - 2 * i)
    return tl.where(reduce, zeros_like(r) + 0.52359877559829887308, zeros_like(r)) + r * total


@triton.jit
def atan2_right_half(y, x):
    """atan2(y, x) for x >= 0 (in [-pi/2, pi/2]); 0 for y = x = 0."""
    ay = tl.where(y < 0, -y, y)
    swap = ay > x
    num = tl.where(swap, x, ay)
    den = tl.where(swap, ay, x)
    den = tl.where(den > 0, den, zeros_like(den) + 1)
    unit = atan_unit(divide(num, den))
    angle = tl.where(swap, 1.57079632679489661923 - unit, unit)
    return tl.where(y < 0, -angle, angle)


@triton.jit
def unit_sides(w, h):
    """(w / m, h / m, 1 / m), m = max(w, h), of sides clamped at 0; (0, 1, 0) for a point
    box (angle 0, no gradient). Products of two such vectors neither underflow nor overflow
    at any box scale."""
    m = tl.where(w > h, w, h)
    is_box = m > 0
    zero = zeros_like(m)
    inv = divide(1.0, tl.where(is_box, m, zero + 1))
    return (tl.where(is_box, w * inv, zero), tl.where(is_box, h * inv, zero + 1),
            tl.where(is_box, inv, zero))


@triton.jit
def angle_gap(wa, ha, wb, hb):
    """``atan2(wb, hb) - atan2(wa, ha)`` of sides already clamped at 0 (an angle 0 with no
    gradient for a point box): the value by one atan2 of the unit vectors' cross and dot
    products, the derivative of atan2(w, h), ``(h dw - w dh) / (w^2 + h^2)``, from the unit
    vectors (finite at any scale where the true one is)."""
    ua = unit_sides(wa[0], ha[0])
    ub = unit_sides(wb[0], hb[0])
    sa = divide(ua[2], ua[0] * ua[0] + ua[1] * ua[1])
    sb = divide(ub[2], ub[0] * ub[0] + ub[1] * ub[1])
    ha_s = ua[1] * sa
    wa_s = ua[0] * sa
    hb_s = ub[1] * sb
    wb_s = ub[0] * sb
    v = atan2_right_half(ub[0] * ua[1] - ub[1] * ua[0], ub[0] * ua[0] + ub[1] * ua[1])
    return (v,
            (hb_s * wb[1] - wb_s * hb[1]) - (ha_s * wa[1] - wa_s * ha[1]),
            (hb_s * wb[2] - wb_s * hb[2]) - (ha_s * wa[2] - wa_s * ha[2]),
            (hb_s * wb[3] - wb_s * hb[3]) - (ha_s * wa[3] - wa_s * ha[3]),
            (hb_s * wb[4] - wb_s * hb[4]) - (ha_s * wa[4] - wa_s * ha[4]))


# ---------------------------------------------------------------- Triton's interpreter
def call_directly_when_interpreted(namespace: dict, kernels=()) -> None:
    """Under ``TRITON_INTERPRET=1``, make the ``@triton.jit`` helper functions of a module
    (its ``namespace``, all but ``kernels``) plain Python functions: the interpreter's own
    call of a helper re-patches ``triton.language`` each time (about a millisecond, while
    the arithmetic of a box pair batch takes microseconds), and a kernel's launch has patched
    it already. The helpers keep the interpreter's rewriting of their source (the same
    semantics). Compiled kernels are untouched."""
    if os.environ.get('TRITON_INTERPRET') != '1':
        return
    from triton.runtime.interpreter import InterpretedFunction
    for name, value in list(namespace.items()):
        if isinstance(value, InterpretedFunction) and name not in kernels:
            namespace[name] = value.rewrite()


call_directly_when_interpreted(globals())
