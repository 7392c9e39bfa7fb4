// The fused EIoU, SIoU, Wise-IoU, Alpha-IoU, MPDIoU, Inner-IoU, Focaler-IoU, Shape-IoU and
// NWD losses of aligned xyxy box pairs on the CPU: included, after box_math.h and dual.h,
// inside a namespace of its own once per instruction set (iou_variants.cpp,
// iou_variants_avx2.cpp), whose variant_forward / variant_backward iou_variants.cpp picks.
//
// Each variant is written once, below, over the shared geometry of a box pair, as a template
// over its scalar type (dual.h). The forward kernel instantiates it with a pack of 8 (float)
// or 4 (double) box pairs; the backward kernel with a dual number of such packs, which gives
// the loss's derivatives in the pred (and, when asked, target) coordinates in the same single
// pass. The formulas, eps placement and the conventions at kinks are those of the pure-PyTorch
// reference (mmdet_losses/functional/iou.py over mmdet_losses/boxes.py), which
// tests/test_iou_variant_kernels.py checks this file against. A pair with a NaN or infinite
// coordinate has a NaN loss (and Wise-IoU's 1 - IoU) and an all-NaN gradient
// (box_math::nonfinite_poison), whatever the geometry would give.

using namespace ad;
using box_math::kGrain;
using box_math::pack_t;
using box_math::width_v;

// The variant and base ids (ids.h, the one table that mmdet_losses/ops/iou_kernels.py reads).
using namespace iou_ids::variant;
using namespace iou_ids::base;

constexpr int64_t num_bases(int64_t variant) {
  return variant == kAlphaIoU ? 4 : (variant == kInnerIoU || variant == kFocalerIoU) ? 6 : 1;
}

// eps and a variant's own parameters:
//   EIoU (gamma), SIoU (theta), Alpha-IoU (alpha), MPDIoU (W^2 + H^2), Inner-IoU (ratio),
//   Focaler-IoU (d, u), Shape-IoU (scale), NWD (constant); Wise-IoU has none.
struct Params {
  double eps;
  double p0;
  double p1;
};

// The terms every variant combines: Geometry<S>, shared with DIoU-NMS.
#include "geometry.h"

// ------------------------------------------------------------------ the variants
// Lane-typed arguments (eps, ratio, ...) are T; exponents and branch conditions are doubles.
template <typename S, typename T = scalar_t<S>>
IOU_INLINE S eiou(const Geometry<S>& g, T eps, double gamma) {
  const T one = lit<T>(1);
  // each ratio <= 1 for well-formed boxes; the bound only acts on inverted ones
  S loss = one - g.diou(eps) + clamp_max(square(g.wa - g.wb) / clamp_min(square(g.ew), eps), one) +
           clamp_max(square(g.ha - g.hb) / clamp_min(square(g.eh), eps), one);
  if (gamma > 0) loss = loss * pow(value(g.iou(eps)), gamma);  // a detached weight
  return loss;
}

// SIoU's (and Shape-IoU's) sum_t (1 - exp(-omega_t))^theta, omega_w = weight_w |w - w_gt| /
// max(w, w_gt), likewise h.
template <typename S, typename T = scalar_t<S>>
IOU_INLINE S shape_cost(const Geometry<S>& g, T eps, double theta, T weight_w, T weight_h) {
  const S omega_w = weight_w * abs(g.wa - g.wb) / clamp_min(maximum(g.wa, g.wb), eps);
  const S omega_h = weight_h * abs(g.ha - g.hb) / clamp_min(maximum(g.ha, g.hb), eps);
  return pow(lit<T>(1) - exp(-omega_w), theta) + pow(lit<T>(1) - exp(-omega_h), theta);
}

template <typename S, typename T = scalar_t<S>>
IOU_INLINE S siou(const Geometry<S>& g, T eps, double theta) {
  const T one = lit<T>(1), two = lit<T>(2);
  // angle cost sin 2a = 2 |dx| |dy| / rho^2 (eps^2 floor: only where the centres meet)
  const S angle = two * abs(g.dx) * abs(g.dy) / clamp_min(g.rho2(), eps * eps);
  const S gamma = two - angle;
  const S distance = two - exp(-gamma * square(g.dx) / clamp_min(square(g.ew), eps)) -
                     exp(-gamma * square(g.dy) / clamp_min(square(g.eh), eps));
  return one - g.iou(eps) + (distance + shape_cost(g, eps, theta, one, one)) / two;
}

// L_base of Alpha-, Inner- and Focaler-IoU (CIoU without the gate, SIoU with theta 4, EIoU
// with gamma 0).
template <int64_t BASE, typename S, typename T = scalar_t<S>>
IOU_INLINE S base_loss(const Geometry<S>& g, T eps) {
  if constexpr (BASE == kIoU) return lit<T>(1) - g.iou(eps);
  if constexpr (BASE == kGIoU) return lit<T>(1) - g.giou(eps);
  if constexpr (BASE == kDIoU) return lit<T>(1) - g.diou(eps);
  if constexpr (BASE == kCIoU) return lit<T>(1) - g.ciou(eps);
  if constexpr (BASE == kSIoUBase) return siou(g, eps, 4.0);
  if constexpr (BASE == kEIoUBase) return eiou(g, eps, 0.0);
}

template <int64_t BASE, typename S, typename T = scalar_t<S>>
IOU_INLINE S alpha_iou(const Geometry<S>& g, T eps, double alpha) {
  S loss = lit<T>(1) - safe_pow(g.iou(eps), alpha);
  if constexpr (BASE == kGIoU) {
    const S e = clamp_min(g.ew * g.eh, eps);
    loss = loss + safe_pow((e - clamp_min(g.uni, eps)) / e, alpha);
  }
  if constexpr (BASE == kDIoU || BASE == kCIoU) loss = loss + safe_pow(g.distance_ratio(eps), alpha);
  if constexpr (BASE == kCIoU) {
    const S v = g.aspect_v();
    loss = loss + safe_pow(g.ciou_alpha(v, eps) * v, alpha);
  }
  return loss;
}

template <typename S, typename T = scalar_t<S>>
IOU_INLINE S shape_iou(const Geometry<S>& g, T eps, double scale) {
  const T zero = lit<T>(0), one = lit<T>(1), two = lit<T>(2);
  T ww = one, hh = one;  // the target's shape weights, no gradient
  if (scale > 0) {
    const T w_s = pow(clamp_min(value(g.wb), zero), scale);
    const T h_s = pow(clamp_min(value(g.hb), zero), scale);
    const T total = clamp_min(w_s + h_s, eps);
    ww = two * w_s / total;
    hh = two * h_s / total;
  }
  const S c2 = clamp_min(g.c2(), eps);  // the ratios' bound only acts on inverted boxes
  const S distance = hh * clamp_max(square(g.dx) / c2, one) + ww * clamp_max(square(g.dy) / c2, one);
  return one - g.iou(eps) + distance + lit<T>(0.5) * shape_cost(g, eps, 4.0, hh, ww);
}

// The loss of one pair; Wise-IoU also writes its L_IoU = 1 - IoU (a value) to l_iou.
template <int64_t VARIANT, int64_t BASE, typename S, typename T = scalar_t<S>>
IOU_INLINE S variant_loss(const Geometry<S>& g, const Params& prm, T& l_iou) {
  const T eps = lit<T>(prm.eps), one = lit<T>(1);
  if constexpr (VARIANT == kEIoU) return eiou(g, eps, prm.p0);
  if constexpr (VARIANT == kSIoU) return siou(g, eps, prm.p0);
  if constexpr (VARIANT == kWIoU) {
    const S loss = one - g.iou(eps);
    l_iou = value(loss);
    return loss * exp(clamp_max(g.rho2() / clamp_min(value(g.c2()), eps), one));
  }
  if constexpr (VARIANT == kAlphaIoU) return alpha_iou<BASE>(g, eps, prm.p0);
  if constexpr (VARIANT == kMPDIoU) {
    const S d1 = square(g.x1a - g.x1b) + square(g.y1a - g.y1b);
    const S d2 = square(g.x2a - g.x2b) + square(g.y2a - g.y2b);
    return one - g.iou(eps) + (d1 + d2) / lit<T>(prm.p0);
  }
  if constexpr (VARIANT == kInnerIoU) {
    return base_loss<BASE>(g, eps) + g.iou(eps) - g.scaled(lit<T>(prm.p0)).iou(eps);
  }
  if constexpr (VARIANT == kFocalerIoU) {
    const S iou = g.iou(eps);
    const T span = lit<T>(prm.p1 - prm.p0);  // u - d, rounded once as the reference
    return base_loss<BASE>(g, eps) + iou - clamp((iou - lit<T>(prm.p0)) / span, lit<T>(0), one);
  }
  if constexpr (VARIANT == kShapeIoU) return shape_iou(g, eps, prm.p0);
  if constexpr (VARIANT == kNWD) {
    const S w2 = g.rho2() + (square(g.wa - g.wb) + square(g.ha - g.hb)) / lit<T>(4);
    return one - exp(-safe_sqrt(w2) / lit<T>(prm.p0));
  }
}

// ------------------------------------------------------------------ kernels
// Pairs go through the maths a pack at a time (pack_t<T>: 8 floats or 4 doubles); the last
// pack of a task repeats its last pair in the lanes past the end, whose results are dropped.
template <typename T>
struct PackedPairs {
  static constexpr int kWidth = width_v<pack_t<T>>;
  int64_t begin, count;  // the pairs [begin, begin + count), count <= kWidth

  // Coordinate j of the pairs' boxes (4 values a pair, contiguous) as a pack.
  IOU_INLINE pack_t<T> load(const T* __restrict__ boxes, int j) const {
    pack_t<T> r;
    const T* first = boxes + 4 * begin + j;
    if (count == kWidth) {
#pragma GCC unroll 8
      for (int l = 0; l < kWidth; ++l) r[l] = first[4 * l];
    } else {
#pragma GCC unroll 8
      for (int l = 0; l < kWidth; ++l) r[l] = first[4 * (l < count ? l : count - 1)];
    }
    return r;
  }
};

// Runs f(PackedPairs) over the pairs [0, n), on the intra-op threads.
template <typename T, typename F>
void for_each_pack(int64_t n, F&& f) {
  constexpr int64_t kWidth = PackedPairs<T>::kWidth;
  at::parallel_for(0, (n + kWidth - 1) / kWidth, kGrain / kWidth, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * kWidth;
      f(PackedPairs<T>{begin, std::min<int64_t>(kWidth, n - begin)});
    }
  });
}

template <typename T, int64_t VARIANT, int64_t BASE>
void forward_impl(const T* __restrict__ p, const T* __restrict__ t, T* __restrict__ out,
                  T* __restrict__ l_iou, int64_t n, const Params& prm) {
  using P = pack_t<T>;
  for_each_pack<T>(n, [&](const PackedPairs<T>& pairs) {
    const P a[4] = {pairs.load(p, 0), pairs.load(p, 1), pairs.load(p, 2), pairs.load(p, 3)};
    const P b[4] = {pairs.load(t, 0), pairs.load(t, 1), pairs.load(t, 2), pairs.load(t, 3)};
    P l = lit<P>(0);
    // NaN where a coordinate is not finite (box_math::nonfinite_poison), else 0
    const P poison = box_math::nonfinite_poison(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
    const P loss = variant_loss<VARIANT, BASE>(Geometry<P>(a, b), prm, l) + poison;
    if constexpr (VARIANT == kWIoU) l = l + poison;
    for (int64_t k = 0; k < pairs.count; ++k) {
      out[pairs.begin + k] = loss[k];
      if constexpr (VARIANT == kWIoU) l_iou[pairs.begin + k] = l[k];
    }
  });
}

// K = 4: derivatives in the pred's coordinates; K = 8: in the target's too.
template <typename T, int64_t VARIANT, int64_t BASE, int K>
void backward_impl(const T* __restrict__ grad, int64_t grad_stride, const T* __restrict__ p,
                   const T* __restrict__ t, T* __restrict__ gp, T* __restrict__ gt, int64_t n,
                   const Params& prm) {
  using P = pack_t<T>;
  using D = Dual<P, K>;
  for_each_pack<T>(n, [&](const PackedPairs<T>& pairs) {
    D a[4], b[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      a[j] = constant<P, K>(pairs.load(p, j));
      b[j] = constant<P, K>(pairs.load(t, j));
      a[j].d[j] = lit<P>(1);
      if constexpr (K == 8) b[j].d[4 + j] = lit<P>(1);
    }
    P l = lit<P>(0);
    const D loss = variant_loss<VARIANT, BASE>(Geometry<D>(a, b), prm, l);
    // the poison's value (its derivative is 0): NaN where a coordinate is not finite
    const P poison = box_math::nonfinite_poison(a[0].v, a[1].v, a[2].v, a[3].v, b[0].v, b[1].v,
                                                b[2].v, b[3].v);
    for (int64_t k = 0; k < pairs.count; ++k) {
      const int64_t i = pairs.begin + k;
      const T g = grad[i * grad_stride];
      const T nan_or_zero = poison[k];
      // A zero incoming gradient (a zero weight) gives a zero gradient, as the plain path's
      // chain rule does, even where a derivative of finite boxes overflowed (1e18 corners in
      // float32); a non-finite box still gets its NaN from the poison.
      const bool zero_g = g == T(0);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        gp[4 * i + j] = (zero_g ? T(0) : g * loss.d[j][k]) + nan_or_zero;
        if constexpr (K == 8) gt[4 * i + j] = (zero_g ? T(0) : g * loss.d[4 + j][k]) + nan_or_zero;
      }
    }
  });
}

// Calls f(integral_constant<VARIANT>, integral_constant<BASE>) for the runtime ids.
template <int64_t VARIANT, int64_t BASE = 0, typename F>
void dispatch_base(int64_t base, F&& f) {
  if constexpr (BASE < num_bases(VARIANT)) {
    if (base == BASE) {
      f(std::integral_constant<int64_t, VARIANT>{}, std::integral_constant<int64_t, BASE>{});
    } else {
      dispatch_base<VARIANT, BASE + 1>(base, f);
    }
  } else {
    TORCH_CHECK(false, "iou variant kernels: base ", base, " is not one of variant ", VARIANT);
  }
}

template <int64_t VARIANT = 0, typename F>
void dispatch_variant(int64_t variant, int64_t base, F&& f) {
  if constexpr (VARIANT < iou_ids::kNumVariants) {
    if (variant == VARIANT) {
      dispatch_base<VARIANT>(num_bases(VARIANT) == 1 ? 0 : base, f);
    } else {
      dispatch_variant<VARIANT + 1>(variant, base, f);
    }
  } else {
    TORCH_CHECK(false, "iou variant kernels: unknown variant ", variant);
  }
}

Params make_params(double eps, const std::vector<double>& params) {
  TORCH_CHECK(params.size() <= 2, "iou variant kernels: at most 2 parameters, got ",
              params.size());
  return Params{eps, params.size() > 0 ? params[0] : 0.0, params.size() > 1 ? params[1] : 0.0};
}


std::tuple<at::Tensor, at::Tensor> variant_forward(const at::Tensor& pred_in,
                                                   const at::Tensor& target_in, int64_t variant,
                                                   int64_t base, double eps,
                                                   const std::vector<double>& params) {
  const auto [pred, target, n] = box_pair_inputs(pred_in, target_in);
  at::Tensor out = at::empty({n}, pred.options());
  at::Tensor l_iou = variant == kWIoU ? at::empty({n}, pred.options()) : at::Tensor();
  const Params prm = make_params(eps, params);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "iou_variant_forward", [&] {
    const scalar_t* p = pred.data_ptr<scalar_t>();
    const scalar_t* t = target.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    scalar_t* l = variant == kWIoU ? l_iou.data_ptr<scalar_t>() : nullptr;
    dispatch_variant(variant, base, [&](auto v, auto b) {
      forward_impl<scalar_t, decltype(v)::value, decltype(b)::value>(p, t, o, l, n, prm);
    });
  });
  return std::make_tuple(out, l_iou);
}

std::tuple<at::Tensor, at::Tensor> variant_backward(const at::Tensor& grad_in,
                                                    const at::Tensor& pred_in,
                                                    const at::Tensor& target_in, int64_t variant,
                                                    int64_t base, double eps,
                                                    const std::vector<double>& params,
                                                    bool target_grad) {
  const BoxPairBackward io = box_pair_backward(grad_in, pred_in, target_in, target_grad);
  const at::Tensor &pred = io.pred, &target = io.target, &grad = io.grad;
  const int64_t n = io.n;
  const Params prm = make_params(eps, params);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "iou_variant_backward", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const int64_t gs = grad.stride(0);
    const scalar_t* p = pred.data_ptr<scalar_t>();
    const scalar_t* t = target.data_ptr<scalar_t>();
    scalar_t* gp = io.grad_pred.data_ptr<scalar_t>();
    scalar_t* gt = target_grad ? io.grad_target.data_ptr<scalar_t>() : nullptr;
    dispatch_variant(variant, base, [&](auto v, auto b) {
      constexpr int64_t V = decltype(v)::value, B = decltype(b)::value;
      if (target_grad) {
        backward_impl<scalar_t, V, B, 8>(g, gs, p, t, gp, gt, n, prm);
      } else {
        backward_impl<scalar_t, V, B, 4>(g, gs, p, t, gp, gt, n, prm);
      }
    });
  });
  return std::make_tuple(io.grad_pred, io.grad_target);
}
