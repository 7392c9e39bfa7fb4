// The IoU-family variant kernels (variant_kernels.h) for any CPU, the entry points of the
// extension, and the choice of the AVX2 build (iou_variants_avx2.cpp) where the CPU has it.
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

// Floating-point traps are never enabled around these kernels (see iou_loss.cpp), and errno
// is never read after them: sqrt is then one instruction.
#pragma GCC optimize("no-trapping-math", "no-math-errno")

// The headers' own includes are the ones above: inside the namespace they are no-ops.
namespace iou_variants_generic {
#include "box_math.h"
#include "dual.h"
#include "variant_kernels.h"
}  // namespace iou_variants_generic

#if defined(__x86_64__) && defined(__GNUC__)
#define MMDET_LOSSES_IOU_AVX2 1
namespace iou_variants_avx2 {
std::tuple<at::Tensor, at::Tensor> variant_forward(const at::Tensor& pred,
                                                   const at::Tensor& target, int64_t variant,
                                                   int64_t base, double eps,
                                                   const std::vector<double>& params);
std::tuple<at::Tensor, at::Tensor> variant_backward(const at::Tensor& grad,
                                                    const at::Tensor& pred,
                                                    const at::Tensor& target, int64_t variant,
                                                    int64_t base, double eps,
                                                    const std::vector<double>& params,
                                                    bool target_grad);
}  // namespace iou_variants_avx2
#endif

// MMDET_LOSSES_IOU_GENERIC=1 runs the generic build on any CPU (its tests use it).
bool iou_variants_use_avx2() {
#ifdef MMDET_LOSSES_IOU_AVX2
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                std::getenv("MMDET_LOSSES_IOU_GENERIC") == nullptr;
  return supported;
#else
  return false;
#endif
}

#ifdef MMDET_LOSSES_IOU_AVX2
#define IOU_VARIANTS_CALL(fn, ...) \
  (iou_variants_use_avx2() ? iou_variants_avx2::fn(__VA_ARGS__) : iou_variants_generic::fn(__VA_ARGS__))
#else
#define IOU_VARIANTS_CALL(fn, ...) iou_variants_generic::fn(__VA_ARGS__)
#endif

std::tuple<at::Tensor, at::Tensor> iou_variant_forward(const at::Tensor& pred,
                                                       const at::Tensor& target,
                                                       int64_t variant, int64_t base,
                                                       double eps,
                                                       const std::vector<double>& params) {
  return IOU_VARIANTS_CALL(variant_forward, pred, target, variant, base, eps, params);
}

std::tuple<at::Tensor, at::Tensor> iou_variant_backward(const at::Tensor& grad,
                                                        const at::Tensor& pred,
                                                        const at::Tensor& target,
                                                        int64_t variant, int64_t base,
                                                        double eps,
                                                        const std::vector<double>& params,
                                                        bool target_grad) {
  return IOU_VARIANTS_CALL(variant_backward, grad, pred, target, variant, base, eps, params,
                           target_grad);
}
