// The entry points of the IoU-family variant kernels (variant_kernels.h, built generic in
// iou_variants.cpp and for AVX2 + FMA in iou_variants_avx2.cpp), as the bindings in
// iou_loss.cpp see them.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <tuple>
#include <vector>

#include "../common/cpu_features.h"

// Per-pair loss (N,) of a variant, and Wise-IoU's 1 - IoU (else undefined).
using VariantForwardFn = std::tuple<at::Tensor, at::Tensor> (*)(
    const at::Tensor& pred, const at::Tensor& target, int64_t variant, int64_t base, double eps,
    const std::vector<double>& params);
// Gradients (pred, target or undefined) of sum(grad * loss).
using VariantBackwardFn = std::tuple<at::Tensor, at::Tensor> (*)(
    const at::Tensor& grad, const at::Tensor& pred, const at::Tensor& target, int64_t variant,
    int64_t base, double eps, const std::vector<double>& params, bool target_grad);

#ifdef MMDET_LOSSES_AVX2_BUILD  // cpu_features.h
extern const VariantForwardFn kAvx2VariantForward;  // iou_variants_avx2.cpp
extern const VariantBackwardFn kAvx2VariantBackward;
#endif

// Whether this CPU runs the AVX2 build (cpu_features::use_avx2: it has AVX2 and FMA, and
// MMDET_LOSSES_GENERIC is not set), and that build's entry points, or the generic build's.
bool iou_variants_use_avx2();
VariantForwardFn iou_variant_forward_kernel();
VariantBackwardFn iou_variant_backward_kernel();
