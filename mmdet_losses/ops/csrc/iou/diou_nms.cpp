// Greedy DIoU-NMS on the CPU over boxes already sorted by descending score.
//
// A box j is suppressed by a kept, higher-scored box i where
//   IoU(i, j) - min(rho2 / (c2 + eps), 1)^beta > iou_threshold,
// with the geometry of mmdet_losses/boxes.py (IoU = inter / max(union, eps), relu sides,
// inverted boxes of area 0), evaluated in the same order as the pure-PyTorch path
// (mmdet_losses/ops/nms.py), which stays the reference. Nothing of size N x N is allocated:
// each kept box is compared with the boxes after it that are still alive. A box with a NaN or
// infinite coordinate is never kept and suppresses nothing (diou_nms in nms.py drops such
// boxes, and NaN scores, before sorting, on every path; this kernel skips them too).
#include <torch/extension.h>

#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

// The headers' own includes are the ones above: inside the namespace they are no-ops.

// The box-pair geometry of the fused losses (geometry.h), instantiated on plain scalars.
namespace diou_nms_geometry {
#include "box_math.h"
#include "dual.h"
#include "geometry.h"

template <typename T>
inline T diou_score(const T* a, const T* b, T eps, T beta) {
  const Geometry<T> g(a, b);
  const T ratio = g.distance_ratio(eps);
  return g.iou_clamped(eps) - (beta == T(1) ? ratio : std::pow(ratio, beta));
}
}  // namespace diou_nms_geometry

// Positions (into the sorted boxes) of the kept boxes, in order.
// With `groups` (N,) int64, a box only suppresses boxes of its own group (batched NMS).
at::Tensor diou_nms_sorted(const at::Tensor& boxes_in, const c10::optional<at::Tensor>& groups_in,
                           double iou_threshold, double beta, double eps) {
  TORCH_CHECK(boxes_in.device().is_cpu(), "diou_nms kernel: boxes must be on the CPU");
  TORCH_CHECK(boxes_in.dim() == 2 && boxes_in.size(1) == 4, "diou_nms kernel: boxes (N, 4)");
  const at::Tensor boxes = boxes_in.contiguous();
  const int64_t n = boxes.size(0);
  at::Tensor groups;
  if (groups_in.has_value() && groups_in->defined()) {
    groups = groups_in->to(at::kLong).contiguous();
    TORCH_CHECK(groups.device().is_cpu() && groups.dim() == 1 && groups.size(0) == n,
                "diou_nms kernel: groups (N,) on the CPU");
  }
  const int64_t* grp = groups.defined() ? groups.data_ptr<int64_t>() : nullptr;
  std::vector<int64_t> keep;
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "diou_nms_sorted", [&] {
    const scalar_t* b = boxes.data_ptr<scalar_t>();
    const scalar_t thr = static_cast<scalar_t>(iou_threshold);
    const scalar_t bt = static_cast<scalar_t>(beta), e = static_cast<scalar_t>(eps);
    std::vector<char> suppressed(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t* box = b + 4 * i;
      suppressed[i] = !(std::isfinite(box[0]) && std::isfinite(box[1]) &&
                        std::isfinite(box[2]) && std::isfinite(box[3]));
    }
    for (int64_t i = 0; i < n; ++i) {
      if (suppressed[i]) continue;
      keep.push_back(i);
      for (int64_t j = i + 1; j < n; ++j) {
        if (suppressed[j] || (grp != nullptr && grp[j] != grp[i])) continue;
        if (diou_nms_geometry::diou_score(b + 4 * i, b + 4 * j, e, bt) > thr) suppressed[j] = 1;
      }
    }
  });
  at::Tensor out = at::empty({static_cast<int64_t>(keep.size())}, at::kLong);
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}
