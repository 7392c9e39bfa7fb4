// The box-specific helpers of the IoU-family kernels (iou_loss.cpp, iou_variants.cpp,
// diou_nms.cpp): the unit side vectors and angle difference of CIoU's aspect term, the NaN
// marker of a box pair, the pair grain. The lanes, lit<L>, the autograd conventions at ties and
// the branch-free exp and atan they use are the kernels' common ones (csrc/common/simd.h and
// fast_math.h), visible here as box_math::lit and so on.
//
// Included at file scope (iou_loss.cpp) or inside the includer's namespace, once per
// instruction set (iou_variants.cpp, iou_variants_avx2.cpp, diou_nms.cpp): the std includes
// come first, in the .cpp file.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../common/fast_math.h"
#include "../common/simd.h"

// The IoU kernels' name for the common forced inlining (simd.h).
#define IOU_INLINE MMDET_INLINE

namespace box_math {

using namespace simd;  // box_math::lit, pack_t, width_v, pack_exp, ... name the common ones

// Box pairs per task of at::parallel_for.
constexpr int64_t kGrain = 2048;

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
