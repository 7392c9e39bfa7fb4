// The tensor side shared by the entry points of the IoU-family kernels (iou_loss.cpp,
// variant_kernels.h): the input checks, and the tensors a forward or backward call works on.
// Included at the top level, before any target pragma: plain code for every build.
#pragma once

#include <torch/extension.h>

#include <cstdint>

// pred and target (N, 4), checked (CPU, one dtype, the same shape) and made contiguous.
struct BoxPairInputs {
  at::Tensor pred, target;
  int64_t n;
};

inline BoxPairInputs box_pair_inputs(const at::Tensor& pred, const at::Tensor& target) {
  TORCH_CHECK(pred.device().is_cpu() && target.device().is_cpu(),
              "iou kernels: pred and target must be CPU tensors");
  TORCH_CHECK(pred.dim() == 2 && pred.size(1) == 4, "iou kernels: pred must be (N, 4), got ",
              pred.sizes());
  TORCH_CHECK(target.sizes() == pred.sizes(), "iou kernels: target must have pred's shape ",
              pred.sizes(), ", got ", target.sizes());
  TORCH_CHECK(target.scalar_type() == pred.scalar_type(),
              "iou kernels: target must have pred's dtype");
  return {pred.contiguous(), target.contiguous(), pred.size(0)};
}

// A backward's inputs, the upstream gradient (N,) in the boxes' dtype, and the gradients to
// fill: grad_target is undefined unless asked for.
struct BoxPairBackward : BoxPairInputs {
  at::Tensor grad, grad_pred, grad_target;
};

inline BoxPairBackward box_pair_backward(const at::Tensor& grad, const at::Tensor& pred,
                                         const at::Tensor& target, bool target_grad) {
  BoxPairBackward b{box_pair_inputs(pred, target)};
  TORCH_CHECK(grad.dim() == 1 && grad.size(0) == b.n, "iou kernels: grad must be (N,), got ",
              grad.sizes());
  // An expanded gradient (stride 0, from a sum) is read in place rather than materialised.
  b.grad = grad.to(b.pred.scalar_type());
  b.grad_pred = at::empty_like(b.pred);
  if (target_grad) b.grad_target = at::empty_like(b.target);
  return b;
}
