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

#include <cmath>
#include <vector>

namespace {

template <typename T>
inline T diou_score(const T* a, const T* b, T eps, T beta) {
  const T zero = T(0);
  const T x1a = a[0], y1a = a[1], x2a = a[2], y2a = a[3];
  const T x1b = b[0], y1b = b[1], x2b = b[2], y2b = b[3];
  T iw = (x2a < x2b ? x2a : x2b) - (x1a > x1b ? x1a : x1b);
  T ih = (y2a < y2b ? y2a : y2b) - (y1a > y1b ? y1a : y1b);
  iw = iw > zero ? iw : zero;
  ih = ih > zero ? ih : zero;
  const T inter = iw * ih;
  T wa = x2a - x1a, ha = y2a - y1a, wb = x2b - x1b, hb = y2b - y1b;
  wa = wa > zero ? wa : zero;
  ha = ha > zero ? ha : zero;
  wb = wb > zero ? wb : zero;
  hb = hb > zero ? hb : zero;
  const T uni = wa * ha + wb * hb - inter;
  const T iou = inter / (uni >= eps ? uni : eps);
  T ew = (x2a > x2b ? x2a : x2b) - (x1a < x1b ? x1a : x1b);
  T eh = (y2a > y2b ? y2a : y2b) - (y1a < y1b ? y1a : y1b);
  ew = ew > zero ? ew : zero;
  eh = eh > zero ? eh : zero;
  const T dx = (x1b + x2b - x1a - x2a) / 2, dy = (y1b + y2b - y1a - y2a) / 2;
  T ratio = (dx * dx + dy * dy) / (ew * ew + eh * eh + eps);
  ratio = ratio <= T(1) ? ratio : T(1);
  const T penalty = beta == T(1) ? ratio : std::pow(ratio, beta);
  return iou - penalty;
}

}  // namespace

// Positions (into the sorted boxes) of the kept boxes, in order.
at::Tensor diou_nms_sorted(const at::Tensor& boxes_in, double iou_threshold, double beta,
                           double eps) {
  TORCH_CHECK(boxes_in.device().is_cpu(), "diou_nms kernel: boxes must be on the CPU");
  TORCH_CHECK(boxes_in.dim() == 2 && boxes_in.size(1) == 4, "diou_nms kernel: boxes (N, 4)");
  const at::Tensor boxes = boxes_in.contiguous();
  const int64_t n = boxes.size(0);
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
        if (!suppressed[j] && diou_score(b + 4 * i, b + 4 * j, e, bt) > thr) suppressed[j] = 1;
      }
    }
  });
  at::Tensor out = at::empty({static_cast<int64_t>(keep.size())}, at::kLong);
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}
