// Lanes: the per-element maths of a kernel written once for one element and for a pack of
// them. A lane type L is a float or double (one element) or a pack of them, a GCC vector of 32
// bytes (8 floats or 4 doubles: one AVX register). Arithmetic and `cond ? a : b` work
// lane-wise on packs, and lit<L>(x) is a constant. Also the conventions of torch's autograd at
// the ties of max and at a clamp's bound, lane-wise. (fast_math.h: exp and atan on lanes.)
//
// Included inside the includer's namespace, once per instruction set that it is compiled for
// (csrc/iou/box_math.h includes it; see csrc/iou/iou_variants.cpp): its std includes must
// come first, at file scope, in the .cpp file (here they are then no-ops).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#pragma GCC diagnostic ignored "-Wpsabi"  // packs never cross a non-inlined call

// Everything per element is inlined into the loops, so that the compiler can vectorise them.
#define MMDET_INLINE inline __attribute__((always_inline))

namespace simd {

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
MMDET_INLINE L lit(double x) {
  if constexpr (width_v<L> == 1) {
    return static_cast<L>(x);
  } else {
    return L{} + static_cast<elem_t<L>>(x);
  }
}

// 1 where the comparison m holds, else 0.
template <typename L, typename M>
MMDET_INLINE L to_real(M m) {
  if constexpr (width_v<L> == 1) {
    return static_cast<L>(m);
  } else {
    return __builtin_convertvector(-m, L);  // a true lane of a comparison is -1
  }
}

// f applied to every lane (a scalar function: libm's, for instance).
template <typename L, typename F>
MMDET_INLINE L lane_map(L x, F f) {
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
// 1 if a > b, 1/2 at a tie, 0 if a < b. Arithmetic rather than branches: with random inputs
// (boxes) the comparisons are unpredictable, and a mispredicted branch costs more than the
// whole element (a box pair).
template <typename T>
MMDET_INLINE T max_share(T a, T b) {
  if constexpr (width_v<T> == 1) {
    // the conversions written out: through to_real, GCC compiles iou_loss.cpp's backward
    // loops to code three times slower (measured)
    return (T(a > b) + T(a >= b)) * T(0.5);
  } else {
    return (to_real<T>(a > b) + to_real<T>(a >= b)) * lit<T>(0.5);
  }
}

// clamp(x, min=low); at x == low it is x itself, so the gradient passes there (torch's rule).
// A NaN x stays NaN, as in torch.clamp (in the IoU kernels a NaN reaches a clamp only through
// an overflow, inf / inf or inf - inf, of finite boxes: the loss is then NaN on both paths).
template <LaneType T>
MMDET_INLINE T clamp_min(T x, T low) {
  return x < low ? low : x;
}

}  // namespace simd
