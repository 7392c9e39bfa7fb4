// The IoU-family variant kernels (variant_kernels.h) for any CPU, and the choice of the AVX2
// build (iou_variants_avx2.cpp) where the CPU has it.
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <tuple>
#include <type_traits>
#include <vector>

#include "box_tensors.h"
#include "variant_api.h"
#include "ids.h"

// Floating-point traps are never enabled around these kernels (see iou_loss.cpp), and errno
// is never read after them: sqrt is then one instruction.
#pragma GCC optimize("no-trapping-math", "no-math-errno")

// The headers' own includes are the ones above: inside the namespace they are no-ops.
namespace iou_variants_generic {
#include "box_math.h"
#include "dual.h"
#include "variant_kernels.h"
}  // namespace iou_variants_generic

// The common check and switch (csrc/common/cpu_features.h): MMDET_LOSSES_GENERIC=1 (or its
// alias MMDET_LOSSES_IOU_GENERIC=1) runs the generic build on any CPU (the tests use it).
bool iou_variants_use_avx2() { return cpu_features::use_avx2(); }

VariantForwardFn iou_variant_forward_kernel() {
#ifdef MMDET_LOSSES_AVX2_BUILD
  if (iou_variants_use_avx2()) return kAvx2VariantForward;
#endif
  return &iou_variants_generic::variant_forward;
}

VariantBackwardFn iou_variant_backward_kernel() {
#ifdef MMDET_LOSSES_AVX2_BUILD
  if (iou_variants_use_avx2()) return kAvx2VariantBackward;
#endif
  return &iou_variants_generic::variant_backward;
}
