// The IoU-family variant kernels (variant_kernels.h) built for AVX2 + FMA: a pack of box
// pairs (32 bytes) is then one register. iou_variants.cpp calls them where the CPU has both,
// unless MMDET_LOSSES_GENERIC is set (csrc/common/cpu_features.h).
#if defined(__x86_64__) && defined(__GNUC__)  // as MMDET_LOSSES_AVX2_BUILD (cpu_features.h)
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

#include "box_tensors.h"
#include "variant_api.h"
#include "ids.h"

#pragma GCC target("avx2,fma")
// no-fp-contract: no a * b + c fused into one rounding, which the reference does not do (near
// a cancellation, as GIoU's (E - U) / E under Alpha-IoU's square root, the results would
// differ by more than float32's rounding)
#pragma GCC optimize("no-trapping-math", "no-math-errno", "fp-contract=off")

// The headers' own includes are the ones above: inside the namespace they are no-ops.
namespace iou_variants_avx2 {
#include "box_math.h"
#include "dual.h"
#include "variant_kernels.h"
}  // namespace iou_variants_avx2

const VariantForwardFn kAvx2VariantForward = &iou_variants_avx2::variant_forward;
const VariantBackwardFn kAvx2VariantBackward = &iou_variants_avx2::variant_backward;
#endif
