// Forward-mode differentiation of box pairs: a Dual<T, K> carries a value and its K partial
// derivatives (K = 4: the pred box's coordinates; 8: the target's too), where T is a lane
// type (box_math.h): one pair, or a pack of 8 (float) or 4 (double) pairs side by side.
//
// The IoU-family variants are written once, as templates over a type S, with the operations
// below. Instantiated with S = T they are the forward kernel; with S = Dual<T, K> the same
// code gives the loss and its gradient in one pass with no tape and no allocation.
// Every operation's derivative is the one torch's autograd uses, kinks included, so the
// kernel reproduces the pure-PyTorch reference's gradients (mmdet_losses/boxes.py):
//   * maximum/minimum split the derivative equally at a tie,
//   * clamp passes it where the bound is reached (x >= low, x <= high), relu does not (x > 0),
//   * abs has derivative sign(x), 0 at 0,
//   * safe_pow (x^p for x > 0, else 0) has derivative 0 where x <= 0 (a finite x),
//   * clamp keeps a NaN (as torch.clamp), with derivative 0,
//   * detach drops the derivative.
#pragma once

#include <cmath>
#include <type_traits>

#include "box_math.h"

namespace ad {

using box_math::elem_t;
using box_math::lane_map;
using box_math::LaneType;
using box_math::lit;
using box_math::max_share;
using box_math::to_real;

template <typename T, int K>
struct Dual {
  T v;
  T d[K];
};

// The lane type under S.
template <typename S>
struct Scalar {
  using type = S;
};
template <typename T, int K>
struct Scalar<Dual<T, K>> {
  using type = T;
};
template <typename S>
using scalar_t = typename Scalar<S>::type;

// f(x) for a value fx = f(x.v) and derivative dfx = f'(x.v): the chain rule.
template <typename T, int K>
IOU_INLINE Dual<T, K> chain(T fx, T dfx, const Dual<T, K>& x) {
  Dual<T, K> r;
  r.v = fx;
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) r.d[k] = dfx * x.d[k];
  return r;
}

// r = sa * a + sb * b in the derivatives, value v.
template <typename T, int K>
IOU_INLINE Dual<T, K> combine(T v, T sa, const Dual<T, K>& a, T sb, const Dual<T, K>& b) {
  Dual<T, K> r;
  r.v = v;
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) r.d[k] = sa * a.d[k] + sb * b.d[k];
  return r;
}

template <typename T, int K>
IOU_INLINE Dual<T, K> constant(T v) {
  Dual<T, K> r;
  r.v = v;
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) r.d[k] = lit<T>(0);
  return r;
}

// ---------------------------------------------------------------- arithmetic
template <typename T, int K>
IOU_INLINE Dual<T, K> operator+(const Dual<T, K>& a, const Dual<T, K>& b) {
  return combine(a.v + b.v, lit<T>(1), a, lit<T>(1), b);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator-(const Dual<T, K>& a, const Dual<T, K>& b) {
  return combine(a.v - b.v, lit<T>(1), a, lit<T>(-1), b);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator*(const Dual<T, K>& a, const Dual<T, K>& b) {
  return combine(a.v * b.v, b.v, a, a.v, b);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator/(const Dual<T, K>& a, const Dual<T, K>& b) {
  const T q = a.v / b.v;
  return combine(q, lit<T>(1) / b.v, a, -q / b.v, b);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator-(const Dual<T, K>& a) {
  return chain(-a.v, lit<T>(-1), a);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator+(const Dual<T, K>& a, T b) {
  return chain(a.v + b, lit<T>(1), a);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator+(T a, const Dual<T, K>& b) {
  return chain(a + b.v, lit<T>(1), b);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator-(const Dual<T, K>& a, T b) {
  return chain(a.v - b, lit<T>(1), a);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator-(T a, const Dual<T, K>& b) {
  return chain(a - b.v, lit<T>(-1), b);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator*(const Dual<T, K>& a, T b) {
  return chain(a.v * b, b, a);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator*(T a, const Dual<T, K>& b) {
  return chain(a * b.v, a, b);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator/(const Dual<T, K>& a, T b) {
  return chain(a.v / b, lit<T>(1) / b, a);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> operator/(T a, const Dual<T, K>& b) {
  const T q = a / b.v;
  return chain(q, -q / b.v, b);
}

// ---------------------------------------------------------------- values and selection
template <LaneType T>
IOU_INLINE T value(T x) {
  return x;
}
template <typename T, int K>
IOU_INLINE T value(const Dual<T, K>& x) {
  return x.v;
}

template <LaneType T>
IOU_INLINE T detach(T x) {
  return x;
}
template <typename T, int K>
IOU_INLINE Dual<T, K> detach(const Dual<T, K>& x) {
  return constant<T, K>(x.v);
}

// ---------------------------------------------------------------- kinks
template <LaneType T>
IOU_INLINE T maximum(T a, T b) {
  return a > b ? a : b;
}
template <typename T, int K>
IOU_INLINE Dual<T, K> maximum(const Dual<T, K>& a, const Dual<T, K>& b) {
  const T s = max_share(a.v, b.v);
  return combine(a.v > b.v ? a.v : b.v, s, a, lit<T>(1) - s, b);
}

template <LaneType T>
IOU_INLINE T minimum(T a, T b) {
  return a < b ? a : b;
}
template <typename T, int K>
IOU_INLINE Dual<T, K> minimum(const Dual<T, K>& a, const Dual<T, K>& b) {
  const T s = max_share(b.v, a.v);
  return combine(a.v < b.v ? a.v : b.v, s, a, lit<T>(1) - s, b);
}

template <LaneType T>
IOU_INLINE T relu(T x) {
  return x > lit<T>(0) ? x : lit<T>(0);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> relu(const Dual<T, K>& x) {
  const auto pass = x.v > lit<T>(0);
  return chain(pass ? x.v : lit<T>(0), to_real<T>(pass), x);
}

using box_math::clamp_min;
// (a NaN x stays NaN, with derivative 0, as torch.clamp and its backward)
template <typename T, int K>
IOU_INLINE Dual<T, K> clamp_min(const Dual<T, K>& x, T low) {
  return chain(clamp_min(x.v, low), to_real<T>(x.v >= low), x);
}

template <LaneType T>
IOU_INLINE T clamp_max(T x, T high) {
  return x > high ? high : x;
}
template <typename T, int K>
IOU_INLINE Dual<T, K> clamp_max(const Dual<T, K>& x, T high) {
  return chain(clamp_max(x.v, high), to_real<T>(x.v <= high), x);
}

// clamp(x, low, high): the derivative passes where low <= x <= high.
template <typename S, typename T = scalar_t<S>>
IOU_INLINE S clamp(const S& x, T low, T high) {
  return clamp_max(clamp_min(x, low), high);
}

template <LaneType T>
IOU_INLINE T abs(T x) {
  return x < lit<T>(0) ? -x : x;
}
template <typename T, int K>
IOU_INLINE Dual<T, K> abs(const Dual<T, K>& x) {
  const T zero = lit<T>(0);
  return chain(x.v < zero ? -x.v : x.v, to_real<T>(x.v > zero) - to_real<T>(x.v < zero), x);
}

// ---------------------------------------------------------------- smooth functions
template <LaneType T>
IOU_INLINE T square(T x) {
  return x * x;
}
template <typename T, int K>
IOU_INLINE Dual<T, K> square(const Dual<T, K>& x) {
  return chain(x.v * x.v, lit<T>(2) * x.v, x);
}

// Lane-wise libm functions; a power with a small integer exponent (SIoU's theta = 4,
// Alpha-IoU's alpha = 3) is a few multiplications rather than a call to pow.
template <LaneType T>
IOU_INLINE T lane_exp(T x) {
  if constexpr (box_math::width_v<T> == 1) {
    return std::exp(x);
  } else {
    return box_math::pack_exp(x);
  }
}
template <LaneType T>
IOU_INLINE T lane_sqrt(T x) {
  return lane_map(x, [](elem_t<T> v) { return std::sqrt(v); });
}
template <LaneType T>
IOU_INLINE T lane_pow(T x, double p) {
  if (p >= 0 && p <= 8 && p == std::floor(p)) {
    T r = lit<T>(1);
    for (int i = 0; i < static_cast<int>(p); ++i) r = r * x;
    return r;
  }
  if (p == 0.5) return lane_sqrt(x);  // Alpha-IoU's and Shape-IoU's square roots, and the
  if (p == -0.5) return lit<T>(1) / lane_sqrt(x);  // derivative of alpha = 0.5
  const elem_t<T> q = static_cast<elem_t<T>>(p);
  return lane_map(x, [q](elem_t<T> v) { return std::pow(v, q); });
}

template <LaneType T>
IOU_INLINE T exp(T x) {
  return lane_exp(x);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> exp(const Dual<T, K>& x) {
  const T e = lane_exp(x.v);
  return chain(e, e, x);
}

// x^p of x >= 0, p >= 1 (torch.pow: derivative p x^(p-1), 1 at x = 0 for p = 1).
template <LaneType T>
IOU_INLINE T pow(T x, double p) {
  return lane_pow(x, p);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> pow(const Dual<T, K>& x, double p) {
  return chain(lane_pow(x.v, p), lit<T>(p) * lane_pow(x.v, p - 1), x);
}

// Where safe_pow keeps x^p: x > 0, or x not finite (NaN, +-inf: functional/safe_math.py maps
// only a finite x <= 0 to 0, so that a NaN stays NaN).
template <LaneType T>
IOU_INLINE auto safe_pow_keeps(T x) {
  return (x > lit<T>(0)) | ((x - x) != lit<T>(0));
}

// x^p for x > 0 (and non-finite x) and 0 for a finite x <= 0, with derivative 0 there
// (functional/safe_math.py).
template <LaneType T>
IOU_INLINE T safe_pow(T x, double p) {
  const auto keep = safe_pow_keeps(x);
  return keep ? lane_pow(keep ? x : lit<T>(1), p) : lit<T>(0);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> safe_pow(const Dual<T, K>& x, double p) {
  const auto keep = safe_pow_keeps(x.v);
  const T base = keep ? x.v : lit<T>(1);
  return chain(keep ? lane_pow(base, p) : lit<T>(0),
               keep ? lit<T>(p) * lane_pow(base, p - 1) : lit<T>(0), x);
}

// sqrt(x) for x > 0 (and non-finite x) and 0 for a finite x <= 0, with derivative 0 there
// (safe_pow(x, 1/2)).
template <LaneType T>
IOU_INLINE T safe_sqrt(T x) {
  const auto keep = safe_pow_keeps(x);
  return keep ? lane_sqrt(keep ? x : lit<T>(1)) : lit<T>(0);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> safe_sqrt(const Dual<T, K>& x) {
  const auto keep = safe_pow_keeps(x.v);
  const T root = lane_sqrt(keep ? x.v : lit<T>(1));
  return chain(keep ? root : lit<T>(0), keep ? lit<T>(0.5) / root : lit<T>(0), x);
}

// CIoU's angle(b) - angle(a), angle(w, h) = atan2(w, h) of sides already clamped at 0 and 0,
// with derivative 0, for a point box. The value is one atan (box_math::angle_difference); the
// derivative of atan2(w, h) is (h dw - w dh) / (w^2 + h^2), computed from the unit (h, w)
// vector (box_math::unit_sides), so that neither underflows nor overflows at any box scale.
template <LaneType T>
IOU_INLINE T angle_gap(T wa, T ha, T wb, T hb) {
  return box_math::angle_difference(wa, ha, wb, hb);
}
template <typename T, int K>
IOU_INLINE Dual<T, K> angle_gap(const Dual<T, K>& wa, const Dual<T, K>& ha,
                                const Dual<T, K>& wb, const Dual<T, K>& hb) {
  const box_math::UnitSides<T> ua = box_math::unit_sides(wa.v, ha.v);
  const box_math::UnitSides<T> ub = box_math::unit_sides(wb.v, hb.v);
  const T sa = box_math::angle_grad_scale(ua), sb = box_math::angle_grad_scale(ub);
  const T ha_s = ua.h * sa, wa_s = ua.w * sa, hb_s = ub.h * sb, wb_s = ub.w * sb;
  Dual<T, K> r;
  r.v = box_math::angle_difference(ua, ub);
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) {
    r.d[k] = (hb_s * wb.d[k] - wb_s * hb.d[k]) - (ha_s * wa.d[k] - wa_s * ha.d[k]);
  }
  return r;
}

}  // namespace ad
