// Helpers shared by the IoU-family kernels (iou_loss.cpp, iou_variants.cpp): lanes, the
// autograd conventions at ties of max/min and a branch-free atan for CIoU's aspect term.
//
// A lane type L is a float or double (one box pair) or a pack of them, a GCC vector of 32
// bytes (8 floats or 4 doubles: as many box pairs). The per-pair maths is written once for
// both: arithmetic and `cond ? a : b` work lane-wise on packs, and lit<L>(x) is a constant.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#pragma GCC diagnostic ignored "-Wpsabi"  // packs never cross a non-inlined call

namespace box_math {

// Everything per pair is inlined into the loops, so that the compiler can vectorise them.
#define IOU_INLINE inline __attribute__((always_inline))

// Box pairs per task of at::parallel_for.
constexpr int64_t kGrain = 2048;

typedef float f32x8 __attribute__((vector_size(32)));
typedef double f64x4 __attribute__((vector_size(32)));

template <typename L>
struct Lane {
  using elem = L;
  static constexpr int width = 1;
};
template <>
struct Lane<f32x8> {
  using elem = float;
  static constexpr int width = 8;
};
template <>
struct Lane<f64x4> {
  using elem = double;
  static constexpr int width = 4;
};
template <typename L>
using elem_t = typename Lane<L>::elem;
template <typename L>
constexpr int width_v = Lane<L>::width;
// The pack of a floating-point type.
template <typename T>
using pack_t = std::conditional_t<std::is_same_v<T, float>, f32x8, f64x4>;

template <typename L>
concept LaneType = std::is_floating_point_v<L> || (width_v<L> > 1);

// The constant x in every lane.
template <typename L>
IOU_INLINE L lit(double x) {
  if constexpr (width_v<L> == 1) {
    return static_cast<L>(x);
  } else {
    return L{} + static_cast<elem_t<L>>(x);
  }
}

// exp(x) of every lane of a pack, branch-free so that it stays in vector registers (a libm
// call takes one lane at a time): x = k ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor
// series truncated below half an ulp (terms to r^7 / 7! for float, r^13 / 13! for double:
// first left out 0.347^8 / 8! < 6e-9, 0.347^14 / 14! < 4e-18), times 2^k written into the
// exponent bits. Measured against libm: within 2 ulp. Below -87 (float) or -708 (double) it
// gives 0 (libm: a subnormal, under 1.2e-38 or 2.3e-308); above 88 or 709, +inf (libm: the
// same, or a finite value within a factor 2 of the largest one). The losses call it with
// arguments <= 1.
template <typename P>
IOU_INLINE P pack_exp(P x) {
  using E = elem_t<P>;
  constexpr bool kFloat = sizeof(E) == 4;
  using I = std::conditional_t<kFloat, int32_t, int64_t>;
  typedef I IP __attribute__((vector_size(sizeof(P))));
  constexpr int kTerms = kFloat ? 7 : 13;
  const P low = lit<P>(kFloat ? -87.0 : -708.0), high = lit<P>(kFloat ? 88.0 : 709.0);
  const auto under = x < low, over = x > high;
  const P xc = under ? low : (over ? high : x);
  const P kf = xc * lit<P>(1.4426950408889634074);  // x / ln2
  const IP k = __builtin_convertvector(kf + (kf >= lit<P>(0) ? lit<P>(0.5) : lit<P>(-0.5)), IP);
  const P kp = __builtin_convertvector(k, P);
  // ln2 in two parts, the first with trailing zero bits so that k * ln2_hi is exact
  const P r = (xc - kp * lit<P>(kFloat ? 0.693359375 : 6.93147180369123816490e-01)) -
              kp * lit<P>(kFloat ? -2.12194440e-4 : 1.90821492927058770002e-10);
  double inv_factorial[kTerms + 1];
  inv_factorial[0] = 1.0;
  for (int i = 1; i <= kTerms; ++i) inv_factorial[i] = inv_factorial[i - 1] / i;
  P poly = lit<P>(inv_factorial[kTerms]);
#pragma GCC unroll 16
  for (int i = kTerms - 1; i >= 0; --i) poly = poly * r + lit<P>(inv_factorial[i]);
  constexpr int kMantissa = kFloat ? 23 : 52, kBias = kFloat ? 127 : 1023;
  const IP bits = (k + static_cast<I>(kBias)) << kMantissa;
  P scale;
  __builtin_memcpy(&scale, &bits, sizeof(P));
  const P result = poly * scale;
  return under ? lit<P>(0) : (over ? lit<P>(INFINITY) : result);
}

// 1 where the comparison m holds, else 0.
template <typename L, typename M>
IOU_INLINE L to_real(M m) {
  if constexpr (width_v<L> == 1) {
    return static_cast<L>(m);
  } else {
    return __builtin_convertvector(-m, L);  // a true lane of a comparison is -1
  }
}

// f applied to every lane (a scalar function: libm's, for instance).
template <typename L, typename F>
IOU_INLINE L lane_map(L x, F f) {
  if constexpr (width_v<L> == 1) {
    return f(x);
  } else {
    L r;
#pragma GCC unroll 8
    for (int i = 0; i < width_v<L>; ++i) r[i] = f(x[i]);
    return r;
  }
}

// Share of the gradient of max(a, b) that goes to a, as torch.maximum's backward gives it:
// 1 if a > b, 1/2 at a tie, 0 if a < b. Arithmetic rather than branches: with random boxes the
// comparisons are unpredictable, and a mispredicted branch costs more than the whole pair.
template <typename T>
IOU_INLINE T max_share(T a, T b) {
  if constexpr (width_v<T> == 1) {
    // the conversions written out: through to_real, GCC compiles iou_loss.cpp's backward
    // loops to code three times slower (measured)
    return (T(a > b) + T(a >= b)) * T(0.5);
  } else {
    return (to_real<T>(a > b) + to_real<T>(a >= b)) * lit<T>(0.5);
  }
}

// clamp(x, min=low); at x == low it is x itself, so the gradient passes there (torch's rule).
// A NaN x stays NaN, as in torch.clamp (a NaN reaches a clamp only through an overflow, inf / inf
// or inf - inf, of finite boxes: the loss is then NaN on both paths).
template <LaneType T>
IOU_INLINE T clamp_min(T x, T low) {
  return x < low ? low : x;
}

// atan(a) for a in [0, 1], branch-free so that the CIoU loops vectorise (a libm call would
// not). One reduction, atan(a) = pi/6 + atan((a - 1/sqrt3) / (1 + a/sqrt3)) for
// a > tan(pi/12), leaves |r| <= tan(pi/12) = 0.268, where the alternating Taylor series
// r - r^3/3 + r^5/5 - ... is truncated below half an ulp: 7 terms for float (first term left
// out 0.268^15/15 < 2e-10), 15 for double (0.268^31/31 < 1e-19). Measured against libm's
// atan2: within 3 ulp in float and double.
template <typename T>
IOU_INLINE T atan_unit(T a) {
  constexpr int kTerms = sizeof(elem_t<T>) == 4 ? 7 : 15;
  const T inv_sqrt3 = lit<T>(0.57735026918962576451);
  const T tan_pi_12 = lit<T>(0.26794919243112270647);
  const auto reduce = a > tan_pi_12;
  const T r = reduce ? (a - inv_sqrt3) / (lit<T>(1) + a * inv_sqrt3) : a;
  const T z = r * r;
  T sum = lit<T>(0);
#pragma GCC unroll 16
  for (int k = kTerms - 1; k >= 0; --k) {
    sum = sum * z + lit<T>((k % 2 ? -1.0 : 1.0) / (2 * k + 1));
  }
  return (reduce ? lit<T>(M_PI / 6) : lit<T>(0)) + r * sum;
}

// atan2(y, x) for x >= 0 (result in [-pi/2, pi/2]), branch-free; 0 for y = x = 0.
template <typename T>
IOU_INLINE T atan2_right_half(T y, T x) {
  const T ay = y < lit<T>(0) ? -y : y;
  const auto swap = ay > x;
  const T num = swap ? x : ay;
  T den = swap ? ay : x;
  den = den > lit<T>(0) ? den : lit<T>(1);
  const T unit = atan_unit(num / den);
  const T angle = swap ? lit<T>(M_PI / 2) - unit : unit;
  return y < lit<T>(0) ? -angle : angle;
}

// A box's (h, w) vector divided by its larger component, which leaves its angle atan2(w, h)
// as it is and keeps the products of two such vectors (below) away from underflow and
// overflow at any magnitude of the boxes (unscaled, float32 boxes of size 1e-24 give products
// of 1e-48, which flush to 0). Sides are clamped at 0 already; a point box (w = h = 0) gets
// the vector (h, w) = (1, 0), whose angle is 0, and inv = 0 (its angle has no gradient).
template <typename T>
struct UnitSides {
  T w, h, inv;  // w / m, h / m and 1 / m, m = max(w, h)
};
template <typename T>
IOU_INLINE UnitSides<T> unit_sides(T w, T h) {
  const T m = w > h ? w : h;
  const auto box = m > lit<T>(0);
  const T inv = lit<T>(1) / (box ? m : lit<T>(1));
  return {box ? w * inv : lit<T>(0), box ? h * inv : lit<T>(1), box ? inv : lit<T>(0)};
}

// CIoU's angle of a box is atan2(w, h) of its sides clamped at 0, and 0 (with no gradient)
// for a point box (w = h = 0). The difference of two angles, angle(b) - angle(a), by one
// atan2 of the cross and dot products of the unit (h, w) vectors (unit_sides): both angles lie
// in [0, pi/2], so the dot product is >= 0 and the result is the difference itself.
template <typename T>
IOU_INLINE T angle_difference(const UnitSides<T>& a, const UnitSides<T>& b) {
  return atan2_right_half(b.w * a.h - b.h * a.w, b.w * a.w + b.h * a.h);
}
template <typename T>
IOU_INLINE T angle_difference(T wa, T ha, T wb, T hb) {
  return angle_difference(unit_sides(wa, ha), unit_sides(wb, hb));
}

// The gradient of atan2(w, h), (h, -w) / (w^2 + h^2), from the unit vector:
// (h', -w') / (m (w'^2 + h'^2)), w' = w / m, h' = h / m, finite at any magnitude where the
// true value is (w^2 + h^2 itself flushes to 0 or overflows in float32 beyond about 1e-19 and
// 1e19); 0 for a point box. Returns the common factor 1 / (m (w'^2 + h'^2)).
template <typename T>
IOU_INLINE T angle_grad_scale(const UnitSides<T>& u) {
  return u.inv / (u.w * u.w + u.h * u.h);
}

// NaN where one of the 8 coordinates of a box pair is NaN or infinite (x - x), +0 otherwise.
// Added to a pair's loss and to every component of its gradient, it gives the contract's
// "NaN in, NaN out" without a branch: the geometry alone can turn a non-finite coordinate into
// a finite loss (a max, a clamp or a select picks the other operand, an IoU of inter / inf is 0).
template <typename T>
IOU_INLINE T nonfinite_poison(T x1a, T y1a, T x2a, T y2a, T x1b, T y1b, T x2b, T y2b) {
  return (((x1a - x1a) + (y1a - y1a)) + ((x2a - x2a) + (y2a - y2a))) +
         (((x1b - x1b) + (y1b - y1b)) + ((x2b - x2b) + (y2b - y2b)));
}

constexpr double kCIoUFactor = 4.0 / (M_PI * M_PI);

}  // namespace box_math
