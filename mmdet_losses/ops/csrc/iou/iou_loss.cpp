// Fused IoU / GIoU / DIoU / CIoU losses of aligned xyxy box pairs on the CPU.
//
// One pass per box pair computes the loss (forward) or its analytic gradient (backward); no
// intermediate tensor is allocated. The maths, eps placement and the autograd conventions at
// kinks are those of the pure-PyTorch reference, mmdet_losses/boxes.py (module docstring):
//   * max/min of two coordinates split the gradient equally at a tie,
//   * clamp(x, min=b) passes the gradient where x >= b, clamp(x, max=b) where x <= b,
//     relu(x) where x > 0 (the intersection's sides),
//   * CIoU's alpha carries no gradient; the angle of a point box is 0 with no gradient,
//   * a pair with a NaN or infinite coordinate has a NaN loss and an all-NaN gradient (pred's
//     and target's), whatever the geometry would give (box_math::nonfinite_poison).
// At any scale of the boxes the values and gradients are the reference's, within rounding,
// wherever the reference is finite (tests/test_contract_kernels.py, boxes of size 1e-30 to
// 1e30): the clamps keep a NaN from an overflow (inf / inf) as torch.clamp does, and CIoU's
// angles go through unit vectors (box_math::unit_sides), whose products neither underflow nor
// overflow (the reference's atan2 gradient, (h, -w) / (w^2 + h^2), loses itself in float32
// beyond about 1e-19 and 1e19; the kernel's stays exact there).
// The reference stays the definition; tests/test_iou_kernels.py checks this file against it.
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

// Floating-point traps are never enabled around these kernels: letting the compiler assume so
// allows it to evaluate both sides of a select (a division included) and so to vectorise the
// per-pair loops. Values are IEEE-exact as without the option (this is not -ffast-math).
#pragma GCC optimize("no-trapping-math")

#include "box_math.h"  // after the pragma: its helpers are inlined into the loops
#include "box_tensors.h"
#include "ids.h"
#include "variant_api.h"

namespace {

using namespace box_math;

// IoULoss's three modes (1 - IoU, 1 - IoU^2, -log IoU) and GIoU, DIoU, CIoU (ids.h).
using namespace iou_ids::mode;

constexpr bool plain_iou(int64_t mode) {
  return mode == kIoU || mode == kIoUSquare || mode == kIoULog;
}

// Gradient of max(a, b) (torch.maximum): all to the larger, half each at a tie.
template <typename T>
IOU_INLINE void max_backward(T a, T b, T g, T& ga, T& gb) {
  const T ga_part = g * max_share(a, b);
  ga += ga_part;
  gb += g - ga_part;
}

// Gradient of min(a, b) (torch.minimum): all to the smaller, half each at a tie.
template <typename T>
IOU_INLINE void min_backward(T a, T b, T g, T& ga, T& gb) {
  const T ga_part = g * max_share(b, a);
  ga += ga_part;
  gb += g - ga_part;
}

// Gradient through clamp(x, min=low): passes where x >= low (torch's clamp_min backward).
template <typename T>
IOU_INLINE T clamp_min_backward(T x, T low, T g) {
  return x >= low ? g : T(0);
}

// Gradient through relu(x): passes where x > 0 only (torch.relu's backward).
template <typename T>
IOU_INLINE T relu_backward(T x, T g) {
  return x > T(0) ? g : T(0);
}

// Gradient through clamp(x, max=high): passes where x <= high (torch's clamp_max backward).
template <typename T>
IOU_INLINE T clamp_max_backward(T x, T high, T g) {
  return x <= high ? g : T(0);
}


// Gradient (dw, dh) of atan2(w, h) (w, h the unit sides u of a box: box_math::unit_sides),
// scaled by g; zero for a point box (w = h = 0).
template <typename T>
IOU_INLINE void box_angle_backward(const UnitSides<T>& u, T g, T& gw, T& gh) {
  const T s = g * angle_grad_scale(u);
  gw += s * u.h;
  gh -= s * u.w;
}

struct Params {
  double eps;
  double iou_gate;  // -inf where there is no gate: every IoU passes it
};

// The loss of one box pair and, when GRAD, its gradient scaled by `g` written to gp and, when
// TARGET_GRAD, to gt. Formulas: mmdet_losses/boxes.py.
template <typename T, int64_t MODE, bool GRAD, bool TARGET_GRAD = false>
IOU_INLINE T box_pair_loss(const T* __restrict__ p, const T* __restrict__ t, const Params& prm,
                           T g, T* __restrict__ gp, T* __restrict__ gt) {
  const T eps = static_cast<T>(prm.eps);
  const T zero = T(0), one = T(1);
  const T x1a = p[0], y1a = p[1], x2a = p[2], y2a = p[3];
  const T x1b = t[0], y1b = t[1], x2b = t[2], y2b = t[3];
  // NaN where a coordinate is not finite: added to the loss and to every gradient component
  const T poison = nonfinite_poison(x1a, y1a, x2a, y2a, x1b, y1b, x2b, y2b);

  // Intersection (relu sides), areas of clamped sides, union (>= 0 for any boxes).
  const T ix1 = x1a > x1b ? x1a : x1b, ix2 = x2a < x2b ? x2a : x2b;
  const T iy1 = y1a > y1b ? y1a : y1b, iy2 = y2a < y2b ? y2a : y2b;
  const T iw_raw = ix2 - ix1, ih_raw = iy2 - iy1;
  const T iw = clamp_min(iw_raw, zero), ih = clamp_min(ih_raw, zero);
  const T inter = iw * ih;
  const T wa = x2a - x1a, ha = y2a - y1a, wb = x2b - x1b, hb = y2b - y1b;
  const T wa_c = clamp_min(wa, zero), ha_c = clamp_min(ha, zero);
  const T wb_c = clamp_min(wb, zero), hb_c = clamp_min(hb, zero);
  const T uni = wa_c * ha_c + wb_c * hb_c - inter;

  // Enclosing box (clamped sides) and centre offset, target minus pred.
  T ew_raw = 0, eh_raw = 0, ew = 0, eh = 0, dx = 0, dy = 0;
  if (!plain_iou(MODE)) {
    ew_raw = (x2a > x2b ? x2a : x2b) - (x1a < x1b ? x1a : x1b);
    eh_raw = (y2a > y2b ? y2a : y2b) - (y1a < y1b ? y1a : y1b);
    ew = clamp_min(ew_raw, zero);
    eh = clamp_min(eh_raw, zero);
    dx = (x1b + x2b - x1a - x2a) / 2;
    dy = (y1b + y2b - y1a - y2a) / 2;
  }

  T loss;
  // Gradients of the loss (times g) with respect to the shared terms.
  T g_inter = 0, g_union = 0, g_ew = 0, g_eh = 0, g_dx = 0, g_dy = 0;
  T g_wa_c = 0, g_ha_c = 0, g_wb_c = 0, g_hb_c = 0;

  if (plain_iou(MODE)) {
    // IoU clamped at eps: 1 - IoU, 1 - IoU^2 or -log IoU, IoU = inter / max(union, eps)
    const T u = clamp_min(uni, eps);
    const T iou = inter / u;
    const T iou_c = clamp_min(iou, eps);
    loss = MODE == kIoU ? one - iou_c : (MODE == kIoUSquare ? one - iou_c * iou_c
                                                             : -std::log(iou_c));
    if (GRAD) {
      const T g_iou_c = MODE == kIoU ? -g : (MODE == kIoUSquare ? -g * 2 * iou_c : -g / iou_c);
      const T g_iou = clamp_min_backward(iou, eps, g_iou_c);
      g_inter = g_iou / u;
      g_union = clamp_min_backward(uni, eps, -g_iou * iou / u);
    }
  } else if (MODE == kGIoU) {
    // 1 - (inter / U - (E - U) / E), U = max(union, eps), E = max(ew * eh, eps)
    const T u = clamp_min(uni, eps);
    const T enclose_raw = ew * eh;
    const T e = clamp_min(enclose_raw, eps);
    const T iou = inter / u;
    const T gap = (e - u) / e;
    loss = one - (iou - gap);
    if (GRAD) {
      const T g_iou = -g, g_gap = g;
      g_inter = g_iou / u;
      const T g_u = -g_iou * iou / u - g_gap / e;
      const T g_e = g_gap / e - g_gap * gap / e;
      g_union = clamp_min_backward(uni, eps, g_u);
      const T g_enclose = clamp_min_backward(enclose_raw, eps, g_e);
      g_ew = g_enclose * eh;
      g_eh = g_enclose * ew;
    }
  } else {
    // DIoU: 1 - (inter / (union + eps) - min(rho2 / (c2 + eps), 1)); CIoU: - alpha * v too.
    const T denom = uni + eps;
    const T iou = inter / denom;
    const T rho2 = dx * dx + dy * dy;
    const T c_den = ew * ew + eh * eh + eps;
    const T ratio_raw = rho2 / c_den;
    const T ratio = ratio_raw > one ? one : ratio_raw;  // clamp(max=1): NaN stays NaN
    const T diou = iou - ratio;
    const T g_diou = -g;
    if (MODE == kCIoU) {
      // alpha (no gradient) is 0 below the gate; computed for every pair (no branch).
      const UnitSides<T> ua = unit_sides(wa_c, ha_c), ub = unit_sides(wb_c, hb_c);
      const T diff = angle_difference(ua, ub);
      const T v = static_cast<T>(kCIoUFactor) * (diff * diff);
      const bool active = iou > static_cast<T>(prm.iou_gate);
      const T alpha = active ? v / (clamp_min(one - iou, zero) + v + eps) : zero;
      loss = one - (diou - alpha * v);
      if (GRAD) {
        const T g_diff = g * alpha * static_cast<T>(kCIoUFactor) * 2 * diff;
        box_angle_backward(ub, g_diff, g_wb_c, g_hb_c);
        box_angle_backward(ua, -g_diff, g_wa_c, g_ha_c);
      }
    } else {
      loss = one - diou;
    }
    if (GRAD) {
      g_inter = g_diou / denom;
      g_union = -g_diou * iou / denom;
      const T g_ratio = clamp_max_backward(ratio_raw, one, -g_diou);
      const T g_rho2 = g_ratio / c_den;
      const T g_c2 = -g_ratio * ratio_raw / c_den;
      g_dx = g_rho2 * 2 * dx;
      g_dy = g_rho2 * 2 * dy;
      g_ew = g_c2 * 2 * ew;
      g_eh = g_c2 * 2 * eh;
    }
  }

  if (GRAD) {
    T g_x1a = 0, g_y1a = 0, g_x2a = 0, g_y2a = 0;
    T g_x1b = 0, g_y1b = 0, g_x2b = 0, g_y2b = 0;
    // union = wa_c * ha_c + wb_c * hb_c - inter
    g_wa_c += g_union * ha_c;
    g_ha_c += g_union * wa_c;
    g_wb_c += g_union * hb_c;
    g_hb_c += g_union * wb_c;
    g_inter -= g_union;
    // inter = relu(ix2 - ix1) * relu(iy2 - iy1)
    const T g_iw = relu_backward(iw_raw, g_inter * ih);
    const T g_ih = relu_backward(ih_raw, g_inter * iw);
    min_backward(x2a, x2b, g_iw, g_x2a, g_x2b);
    max_backward(x1a, x1b, -g_iw, g_x1a, g_x1b);
    min_backward(y2a, y2b, g_ih, g_y2a, g_y2b);
    max_backward(y1a, y1b, -g_ih, g_y1a, g_y1b);
    // clamped widths and heights
    const T g_wa = clamp_min_backward(wa, zero, g_wa_c);
    const T g_ha = clamp_min_backward(ha, zero, g_ha_c);
    const T g_wb = clamp_min_backward(wb, zero, g_wb_c);
    const T g_hb = clamp_min_backward(hb, zero, g_hb_c);
    g_x2a += g_wa;
    g_x1a -= g_wa;
    g_y2a += g_ha;
    g_y1a -= g_ha;
    g_x2b += g_wb;
    g_x1b -= g_wb;
    g_y2b += g_hb;
    g_y1b -= g_hb;
    if (!plain_iou(MODE)) {
      // enclosing box
      const T g_ewr = clamp_min_backward(ew_raw, zero, g_ew);
      const T g_ehr = clamp_min_backward(eh_raw, zero, g_eh);
      max_backward(x2a, x2b, g_ewr, g_x2a, g_x2b);
      min_backward(x1a, x1b, -g_ewr, g_x1a, g_x1b);
      max_backward(y2a, y2b, g_ehr, g_y2a, g_y2b);
      min_backward(y1a, y1b, -g_ehr, g_y1a, g_y1b);
      // centre offset
      const T hx = g_dx / 2, hy = g_dy / 2;
      g_x1b += hx;
      g_x2b += hx;
      g_x1a -= hx;
      g_x2a -= hx;
      g_y1b += hy;
      g_y2b += hy;
      g_y1a -= hy;
      g_y2a -= hy;
    }
    // g * 0 is NaN for a NaN or infinite incoming gradient (an inf weight): the masks above
    // (relu, clamp, min/max) would drop it where inactive, the plain path's marker does not
    const T g_poison = poison + g * zero;
    gp[0] = g_x1a + g_poison;
    gp[1] = g_y1a + g_poison;
    gp[2] = g_x2a + g_poison;
    gp[3] = g_y2a + g_poison;
    if (TARGET_GRAD) {
      gt[0] = g_x1b + g_poison;
      gt[1] = g_y1b + g_poison;
      gt[2] = g_x2b + g_poison;
      gt[3] = g_y2b + g_poison;
    }
  }
  return loss + poison;
}

template <typename T, int64_t MODE>
void forward_impl(const T* __restrict__ p, const T* __restrict__ t, T* __restrict__ out,
                  int64_t n, const Params& prm) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] = box_pair_loss<T, MODE, false>(p + 4 * i, t + 4 * i, prm, T(0), nullptr, nullptr);
    }
  });
}

template <typename T, int64_t MODE, bool TARGET_GRAD>
void backward_impl(const T* __restrict__ g, int64_t g_stride, const T* __restrict__ p,
                   const T* __restrict__ t, T* __restrict__ gp, T* __restrict__ gt, int64_t n,
                   const Params& prm) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      box_pair_loss<T, MODE, true, TARGET_GRAD>(p + 4 * i, t + 4 * i, prm, g[i * g_stride],
                                                gp + 4 * i, TARGET_GRAD ? gt + 4 * i : gp);
    }
  });
}

#define IOU_DISPATCH_MODE(mode, ...)                          \
  switch (mode) {                                             \
    case kIoU: {                                              \
      constexpr int64_t M = kIoU;                             \
      __VA_ARGS__();                                          \
      break;                                                  \
    }                                                         \
    case kGIoU: {                                             \
      constexpr int64_t M = kGIoU;                            \
      __VA_ARGS__();                                          \
      break;                                                  \
    }                                                         \
    case kDIoU: {                                             \
      constexpr int64_t M = kDIoU;                            \
      __VA_ARGS__();                                          \
      break;                                                  \
    }                                                         \
    case kCIoU: {                                             \
      constexpr int64_t M = kCIoU;                            \
      __VA_ARGS__();                                          \
      break;                                                  \
    }                                                         \
    case kIoUSquare: {                                        \
      constexpr int64_t M = kIoUSquare;                       \
      __VA_ARGS__();                                          \
      break;                                                  \
    }                                                         \
    case kIoULog: {                                           \
      constexpr int64_t M = kIoULog;                          \
      __VA_ARGS__();                                          \
      break;                                                  \
    }                                                         \
    default:                                                  \
      TORCH_CHECK(false, "iou kernels: unknown mode ", mode); \
  }

at::Tensor iou_loss_forward(const at::Tensor& pred_in, const at::Tensor& target_in, int64_t mode,
                            double eps, double iou_gate, bool has_gate) {
  const auto [pred, target, n] = box_pair_inputs(pred_in, target_in);
  at::Tensor out = at::empty({n}, pred.options());
  const Params prm{eps, has_gate ? iou_gate : -std::numeric_limits<double>::infinity()};
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "iou_loss_forward", [&] {
    const scalar_t* p = pred.data_ptr<scalar_t>();
    const scalar_t* t = target.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    IOU_DISPATCH_MODE(mode, [&] { forward_impl<scalar_t, M>(p, t, o, n, prm); });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> iou_loss_backward(const at::Tensor& grad_in,
                                                     const at::Tensor& pred_in,
                                                     const at::Tensor& target_in, int64_t mode,
                                                     double eps, double iou_gate, bool has_gate,
                                                     bool target_grad) {
  const BoxPairBackward io = box_pair_backward(grad_in, pred_in, target_in, target_grad);
  const at::Tensor &pred = io.pred, &target = io.target, &grad = io.grad;
  const int64_t n = io.n;
  const Params prm{eps, has_gate ? iou_gate : -std::numeric_limits<double>::infinity()};
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "iou_loss_backward", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const int64_t gs = grad.stride(0);
    const scalar_t* p = pred.data_ptr<scalar_t>();
    const scalar_t* t = target.data_ptr<scalar_t>();
    scalar_t* gp = io.grad_pred.data_ptr<scalar_t>();
    scalar_t* gt = target_grad ? io.grad_target.data_ptr<scalar_t>() : nullptr;
    IOU_DISPATCH_MODE(mode, [&] {
      if (target_grad) {
        backward_impl<scalar_t, M, true>(g, gs, p, t, gp, gt, n, prm);
      } else {
        backward_impl<scalar_t, M, false>(g, gs, p, t, gp, gt, n, prm);
      }
    });
  });
  return std::make_tuple(io.grad_pred, io.grad_target);
}

}  // namespace

// diou_nms.cpp
at::Tensor diou_nms_sorted(const at::Tensor& boxes, const c10::optional<at::Tensor>& groups,
                           double iou_threshold, double beta, double eps);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused IoU-family box losses (CPU): one pass per box pair, analytic backward.";
  m.def("iou_loss_forward", &iou_loss_forward, "Per-pair loss (N,) of aligned xyxy boxes",
        py::arg("pred"), py::arg("target"), py::arg("mode"), py::arg("eps"),
        py::arg("iou_gate"), py::arg("has_gate"));
  m.def("iou_loss_backward", &iou_loss_backward,
        "Gradients (pred, target or undefined) of sum(grad * loss)", py::arg("grad"),
        py::arg("pred"), py::arg("target"), py::arg("mode"), py::arg("eps"),
        py::arg("iou_gate"), py::arg("has_gate"), py::arg("target_grad"));
  m.def("iou_variant_forward", iou_variant_forward_kernel(),
        "Per-pair loss (N,) of an IoU-family variant, and Wise-IoU's 1 - IoU (else undefined)",
        py::arg("pred"), py::arg("target"), py::arg("variant"), py::arg("base"),
        py::arg("eps"), py::arg("params"));
  m.def("iou_variant_backward", iou_variant_backward_kernel(),
        "Gradients (pred, target or undefined) of sum(grad * loss) of a variant",
        py::arg("grad"), py::arg("pred"), py::arg("target"), py::arg("variant"),
        py::arg("base"), py::arg("eps"), py::arg("params"), py::arg("target_grad"));
  m.def(
      "ids",
      [] {
        py::dict out;
        out["modes"] = id_table::to_dict(iou_ids::kModeNames);
        out["variants"] = id_table::to_dict(iou_ids::kVariantNames);
        out["bases"] = id_table::to_dict(iou_ids::kBaseNames);
        return out;
      },
      "The kernels' ids (ids.h): {'modes': {name: id}, 'variants': {...}, 'bases': {...}}");
  m.def("variants_use_avx2", &iou_variants_use_avx2,
        "whether the AVX2+FMA build of the variant kernels runs on this CPU");
  m.def("cpu_build", &cpu_features::build_name,
        "the build of the kernels with a CPU-specific one (the variant kernels) that runs: "
        "'avx2' or 'generic' (csrc/common/cpu_features.h; MMDET_LOSSES_GENERIC=1 forces it)");
  m.def("diou_nms_sorted", &diou_nms_sorted,
        "Greedy DIoU-NMS of boxes sorted by descending score: kept positions",
        py::arg("boxes"), py::arg("groups"), py::arg("iou_threshold"), py::arg("beta"),
        py::arg("eps"));
}
