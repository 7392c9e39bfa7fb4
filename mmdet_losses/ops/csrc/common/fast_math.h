// Branch-free elementary functions on lanes (simd.h): a libm call takes one lane at a time and
// stops a loop's vectorisation, these stay in vector registers. Each is accurate to a few ulp
// (stated and measured below) over the range its callers use.
//
// Included inside the includer's namespace, as simd.h (std includes first, in the .cpp file).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "simd.h"

namespace simd {

// exp(x) of every lane of a pack, branch-free so that it stays in vector registers (a libm
// call takes one lane at a time): x = k ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor
// series truncated below half an ulp (terms to r^7 / 7! for float, r^13 / 13! for double:
// first left out 0.347^8 / 8! < 6e-9, 0.347^14 / 14! < 4e-18), times 2^k written into the
// exponent bits. Measured against libm: within 2 ulp. Below -87 (float) or -708 (double) it
// gives 0 (libm: a subnormal, under 1.2e-38 or 2.3e-308); above 88 or 709, +inf (libm: the
// same, or a finite value within a factor 2 of the largest one). The losses call it with
// arguments <= 1.
template <typename P>
MMDET_INLINE P pack_exp(P x) {
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

// atan(a) for a in [0, 1], branch-free so that the CIoU loops vectorise (a libm call would
// not). One reduction, atan(a) = pi/6 + atan((a - 1/sqrt3) / (1 + a/sqrt3)) for
// a > tan(pi/12), leaves |r| <= tan(pi/12) = 0.268, where the alternating Taylor series
// r - r^3/3 + r^5/5 - ... is truncated below half an ulp: 7 terms for float (first term left
// out 0.268^15/15 < 2e-10), 15 for double (0.268^31/31 < 1e-19). Measured against libm's
// atan2: within 3 ulp in float and double.
template <typename T>
MMDET_INLINE T atan_unit(T a) {
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
MMDET_INLINE T atan2_right_half(T y, T x) {
  const T ay = y < lit<T>(0) ? -y : y;
  const auto swap = ay > x;
  const T num = swap ? x : ay;
  T den = swap ? ay : x;
  den = den > lit<T>(0) ? den : lit<T>(1);
  const T unit = atan_unit(num / den);
  const T angle = swap ? lit<T>(M_PI / 2) - unit : unit;
  return y < lit<T>(0) ? -angle : angle;
}

}  // namespace simd
