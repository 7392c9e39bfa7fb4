// Fused element-wise regression losses (L1, L2, Smooth L1, Balanced L1) on the CPU.
//
// The forward makes one pass over pred, target and the optional weight and writes either the
// weighted element-wise loss (reduction 'none') or only its sum (reduction 'mean'/'sum'; the
// division by the element count or by avg_factor + eps stays in PyTorch, so the reduction
// semantics remain those of mmdet_losses/reduction.py). The backward makes one pass more and
// writes the gradient of pred (and -that for target), recomputing the residual from the saved
// inputs. The maths, including autograd's conventions at the kinks, is that of the pure-PyTorch
// reference mmdet_losses/functional/regression.py, against which
// tests/test_regression_kernel.py checks this file:
//   * |d| has gradient sign(d), which is 0 at d = 0,
//   * torch.where(x < beta, inner, outer) takes the outer branch (value and gradient) at x = beta,
//   * a NaN or infinite residual (pred or target) has a NaN gradient (element_grad), and a NaN
//     or infinite weight makes the element's loss and gradient non-finite through the product.
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "../common/id_table.h"

// Floating-point traps are never enabled around these kernels: letting the compiler assume so
// allows it to evaluate both sides of a select and so to vectorise the loops. Values are
// IEEE-exact as without the option (this is not -ffast-math).
#pragma GCC optimize("no-trapping-math")

namespace {

// The kinds, defined once: a name's id is its position; exported as _regression.ids(), from
// which mmdet_losses/ops/regression_kernel.py builds FUSED_KINDS.
inline constexpr std::string_view kKindNames[] = {"l1", "mse", "smooth_l1", "balanced_l1"};
constexpr int64_t kL1 = id_table::id_of(kKindNames, "l1");
constexpr int64_t kMSE = id_table::id_of(kKindNames, "mse");
constexpr int64_t kSmoothL1 = id_table::id_of(kKindNames, "smooth_l1");
constexpr int64_t kBalancedL1 = id_table::id_of(kKindNames, "balanced_l1");

// Elements per parallel task of the element-wise loops.
constexpr int64_t kGrain = 4096;
// Elements per partial sum of the reduced forward. Fixed (not per thread), so that the sum is
// the same whatever the number of threads and however the blocks are scheduled.
constexpr int64_t kBlock = 8192;
// Independent accumulators per block: lets the double-precision sums run in parallel lanes.
constexpr int kLanes = 8;

#define REG_INLINE inline __attribute__((always_inline))

// The parameters, in the compute type, with the constants the reference derives from them.
template <typename T>
struct Params {
  T beta;             // smooth / balanced L1
  T half_beta;        // smooth L1: 0.5 * beta
  T alpha;            // balanced L1
  T gamma;            // balanced L1
  T b;                // balanced L1: exp(gamma / alpha) - 1
  T alpha_over_b;     // balanced L1: alpha / b
  T gamma_over_b;     // balanced L1: gamma / b
  T alpha_beta;       // balanced L1: alpha * beta
  T b_over_beta;      // balanced L1: b / beta
};

template <typename T>
Params<T> make_params(double beta, double alpha, double gamma) {
  const double b = std::exp(gamma / alpha) - 1.0;
  return Params<T>{static_cast<T>(beta),          static_cast<T>(0.5 * beta),
                   static_cast<T>(alpha),         static_cast<T>(gamma),
                   static_cast<T>(b),             static_cast<T>(alpha / b),
                   static_cast<T>(gamma / b),     static_cast<T>(alpha * beta),
                   static_cast<T>(b / beta)};
}

// Library functions declared above the pragma are not inlined into the loops below (their
// optimisation options differ), and a call per element stops vectorisation: hence the
// compiler built-ins and the own log1p.
REG_INLINE float abs_value(float d) { return __builtin_fabsf(d); }
REG_INLINE double abs_value(double d) { return __builtin_fabs(d); }

// Bit layout of the IEEE types, for the logarithm below.
template <typename T>
struct FloatBits;
template <>
struct FloatBits<float> {
  using U = uint32_t;
  static constexpr int kMantissa = 23;
  static constexpr U kOne = 0x3f800000u;            // 1.0f
  static constexpr U kSqrtHalf = 0x3f3504f3u;       // sqrt(1/2) rounded
  static constexpr U kMantissaMask = 0x007fffffu;
  static constexpr int kTerms = 5;   // z^6 / 13 < 2^-24 for z <= 0.0295
};
template <>
struct FloatBits<double> {
  using U = uint64_t;
  static constexpr int kMantissa = 52;
  static constexpr U kOne = 0x3ff0000000000000ull;
  static constexpr U kSqrtHalf = 0x3fe6a09e667f3bcdull;
  static constexpr U kMantissaMask = 0x000fffffffffffffull;
  static constexpr int kTerms = 10;  // z^11 / 23 < 2^-53 for z <= 0.0295
};

// log(u) for a finite u >= 1, branch-free (vectorisable). u = 2^k m with m in
// [sqrt(1/2), sqrt(2)); log m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m-1)/(m+1),
// |s| <= 0.1716, the series truncated below one ulp. Within a few ulp of libm's log.
template <typename T>
REG_INLINE T log_at_least_one(T u) {
  using B = FloatBits<T>;
  using U = typename B::U;
  U bits;
  __builtin_memcpy(&bits, &u, sizeof(T));
  bits += B::kOne - B::kSqrtHalf;
  // int32: its conversion to floating point vectorises, int64's does not (before AVX-512)
  const T k = static_cast<T>(static_cast<int32_t>(bits >> B::kMantissa) -
                             static_cast<int32_t>(B::kOne >> B::kMantissa));
  bits = (bits & B::kMantissaMask) + B::kSqrtHalf;
  T m;
  __builtin_memcpy(&m, &bits, sizeof(T));
  const T f = m - T(1);
  const T s = f / (T(2) + f);
  const T z = s * s;
  T series = T(0);
#pragma GCC unroll 16
  for (int j = B::kTerms; j >= 1; --j) {
    series = series * z + static_cast<T>(1.0 / (2 * j + 1));
  }
  const T log_m = T(2) * s + T(2) * s * (z * series);
  return k * static_cast<T>(0.69314718055994530942) + log_m;
}

// log(1 + y) for y >= 0, accurate for small y too: log(u) y / (u - 1) with u = 1 + y rounded
// corrects the rounding of u; y itself where u rounds to 1.
template <typename T>
REG_INLINE T log1p_nonnegative(T y) {
  const T u = T(1) + y;
  const T um1 = u - T(1);
  const T safe = um1 != T(0) ? um1 : T(1);
  // an infinite or NaN y gives a meaningless value here: only x >= beta (the other branch)
  // reaches that
  const T value = log_at_least_one(u) * (y / safe);
  return um1 != T(0) ? value : y;
}

template <typename T>
REG_INLINE T sign(T d) {
  return static_cast<T>(d > T(0)) - static_cast<T>(d < T(0));
}

// Loss of one residual d = pred - target.
template <typename T, int64_t KIND>
REG_INLINE T element_loss(T d, const Params<T>& prm) {
  if (KIND == kMSE) return d * d;
  const T x = abs_value(d);
  if (KIND == kL1) return x;
  if (KIND == kSmoothL1) {
    return x < prm.beta ? T(0.5) * (x * x) / prm.beta : x - prm.half_beta;
  }
  // balanced L1
  const T bx = prm.b * x;
  const T inlier =
      prm.alpha_over_b * (bx + T(1)) * log1p_nonnegative(bx / prm.beta) - prm.alpha * x;
  const T outlier = prm.gamma * x + prm.gamma_over_b - prm.alpha_beta;
  return x < prm.beta ? inlier : outlier;
}

// d loss / d pred of one residual (d loss / d target is its negative). A NaN or infinite
// residual gives NaN, as on the plain path (its with_nonfinite marker): the contract, a
// non-finite input gives a non-finite gradient, where sign(+-inf) = +-1 and the selected
// branch of Smooth/Balanced L1 alone would give a finite slope. d - d is NaN there, else 0.
template <typename T, int64_t KIND>
REG_INLINE T element_grad(T d, const Params<T>& prm) {
  const T poison = d - d;
  if (KIND == kMSE) return T(2) * d + poison;
  const T s = sign(d);
  if (KIND == kL1) return s + poison;
  const T x = abs_value(d);
  if (KIND == kSmoothL1) {
    return (x < prm.beta ? s * (x / prm.beta) : s) + poison;
  }
  // balanced L1: derivative of alpha/b (b x + 1) log(1 + b x / beta) - alpha x in x
  const T bx = prm.b * x;
  const T inlier = prm.alpha * log1p_nonnegative(bx / prm.beta) +
                   prm.alpha_over_b * (bx + T(1)) * prm.b_over_beta / (T(1) + bx / prm.beta) -
                   prm.alpha;
  return s * (x < prm.beta ? inlier : prm.gamma) + poison;
}

// Weighted element-wise loss (reduction 'none').
template <typename T, int64_t KIND, bool WEIGHTED>
void forward_elementwise(const T* __restrict__ p, const T* __restrict__ t,
                         const T* __restrict__ w, T* __restrict__ out, int64_t n,
                         const Params<T>& prm) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T loss = element_loss<T, KIND>(p[i] - t[i], prm);
      out[i] = WEIGHTED ? loss * w[i] : loss;
    }
  });
}

// Sum of the weighted loss over [begin, end), in double, in a fixed order. The losses of a
// chunk are computed first into a buffer (a loop that vectorises), then added into kLanes
// double accumulators.
template <typename T, int64_t KIND, bool WEIGHTED>
double block_sum(const T* __restrict__ p, const T* __restrict__ t, const T* __restrict__ w,
                 int64_t begin, int64_t end, const Params<T>& params) {
  const Params<T> prm = params;  // a local copy: no aliasing with the buffer to rule out
  constexpr int64_t kChunk = 512;
  T buffer[kChunk];
  double acc[kLanes] = {};
  for (int64_t start = begin; start < end; start += kChunk) {
    const int64_t len = std::min(kChunk, end - start);
    const T* __restrict__ pc = p + start;
    const T* __restrict__ tc = t + start;
    const T* __restrict__ wc = WEIGHTED ? w + start : nullptr;
#pragma GCC ivdep
    for (int64_t j = 0; j < len; ++j) {
      const T loss = element_loss<T, KIND>(pc[j] - tc[j], prm);
      buffer[j] = WEIGHTED ? loss * wc[j] : loss;
    }
    int64_t j = 0;
    for (; j + kLanes <= len; j += kLanes) {
#pragma GCC unroll 8
      for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(buffer[j + l]);
    }
    for (; j < len; ++j) acc[0] += static_cast<double>(buffer[j]);
  }
  double total = 0.0;
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total;
}

// Sum of the weighted loss (reductions 'mean' and 'sum'): deterministic, since the blocks are
// fixed and their partial sums are added in order.
template <typename T, int64_t KIND, bool WEIGHTED>
double forward_sum(const T* p, const T* t, const T* w, int64_t n, const Params<T>& prm) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const int64_t begin = k * kBlock;
      const int64_t end = std::min(n, begin + kBlock);
      partial[k] = block_sum<T, KIND, WEIGHTED>(p, t, w, begin, end, prm);
    }
  });
  double total = 0.0;
  for (int64_t k = 0; k < blocks; ++k) total += partial[k];
  return total;
}

// grad_pred = g * weight * d loss / d pred, with g one scalar (SCALAR_GRAD: the gradient of a
// sum) or one value per element; grad_target = -grad_pred where asked.
template <typename T, int64_t KIND, bool WEIGHTED, bool SCALAR_GRAD, bool TARGET_GRAD>
void backward_impl(const T* __restrict__ g, const T* __restrict__ p, const T* __restrict__ t,
                   const T* __restrict__ w, T* __restrict__ gp, T* __restrict__ gt, int64_t n,
                   const Params<T>& prm) {
  const T g0 = SCALAR_GRAD ? g[0] : T(0);
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T gi = SCALAR_GRAD ? g0 : g[i];
      const T gw = WEIGHTED ? gi * w[i] : gi;
      const T grad = gw * element_grad<T, KIND>(p[i] - t[i], prm);
      gp[i] = grad;
      if (TARGET_GRAD) gt[i] = -grad;
    }
  });
}

#define REG_DISPATCH_KIND(kind, ...)                                   \
  switch (kind) {                                                      \
    case kL1: {                                                        \
      constexpr int64_t K = kL1;                                       \
      __VA_ARGS__();                                                   \
      break;                                                           \
    }                                                                  \
    case kMSE: {                                                       \
      constexpr int64_t K = kMSE;                                      \
      __VA_ARGS__();                                                   \
      break;                                                           \
    }                                                                  \
    case kSmoothL1: {                                                  \
      constexpr int64_t K = kSmoothL1;                                 \
      __VA_ARGS__();                                                   \
      break;                                                           \
    }                                                                  \
    case kBalancedL1: {                                                \
      constexpr int64_t K = kBalancedL1;                               \
      __VA_ARGS__();                                                   \
      break;                                                           \
    }                                                                  \
    default:                                                           \
      TORCH_CHECK(false, "regression kernels: unknown kind ", kind);   \
  }

#define REG_DISPATCH_BOOL(flag, NAME, ...) \
  if (flag) {                              \
    constexpr bool NAME = true;            \
    __VA_ARGS__();                         \
  } else {                                 \
    constexpr bool NAME = false;           \
    __VA_ARGS__();                         \
  }

void check_inputs(const at::Tensor& pred, const at::Tensor& target,
                  const c10::optional<at::Tensor>& weight) {
  TORCH_CHECK(pred.device().is_cpu() && target.device().is_cpu(),
              "regression kernels: CPU tensors only");
  TORCH_CHECK(pred.scalar_type() == at::kFloat || pred.scalar_type() == at::kDouble,
              "regression kernels: float32 or float64 only");
  TORCH_CHECK(target.scalar_type() == pred.scalar_type(),
              "regression kernels: target must have pred's dtype");
  TORCH_CHECK(target.sizes() == pred.sizes(), "regression kernels: shapes differ");
  if (weight.has_value()) {
    TORCH_CHECK(weight->device().is_cpu() && weight->scalar_type() == pred.scalar_type() &&
                    weight->sizes() == pred.sizes(),
                "regression kernels: weight must be a CPU tensor of pred's shape and dtype");
  }
}

// The weighted loss of pred's shape (reduce = false) or its sum as a 0-d tensor (reduce = true).
at::Tensor regression_loss_forward(const at::Tensor& pred_in, const at::Tensor& target_in,
                                   const c10::optional<at::Tensor>& weight_in, int64_t kind,
                                   double beta, double alpha, double gamma, bool reduce) {
  check_inputs(pred_in, target_in, weight_in);
  const at::Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const bool weighted = weight_in.has_value();
  const at::Tensor weight = weighted ? weight_in->contiguous() : at::Tensor();
  const int64_t n = pred.numel();
  at::Tensor out = reduce ? at::empty({}, pred.options()) : at::empty_like(pred);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "regression_loss_forward", [&] {
    const Params<scalar_t> prm = make_params<scalar_t>(beta, alpha, gamma);
    const scalar_t* p = pred.data_ptr<scalar_t>();
    const scalar_t* t = target.data_ptr<scalar_t>();
    const scalar_t* w = weighted ? weight.data_ptr<scalar_t>() : nullptr;
    REG_DISPATCH_KIND(kind, [&] {
      REG_DISPATCH_BOOL(weighted, W, [&] {
        if (reduce) {
          *out.data_ptr<scalar_t>() =
              static_cast<scalar_t>(forward_sum<scalar_t, K, W>(p, t, w, n, prm));
        } else {
          forward_elementwise<scalar_t, K, W>(p, t, w, out.data_ptr<scalar_t>(), n, prm);
        }
      });
    });
  });
  return out;
}

// Gradients of pred and (if target_grad, else an undefined tensor) of target. grad has one
// element (scalar_grad: the gradient of the sum, or of a loss expanded from one value) or
// pred's shape.
std::tuple<at::Tensor, at::Tensor> regression_loss_backward(
    const at::Tensor& grad_in, const at::Tensor& pred_in, const at::Tensor& target_in,
    const c10::optional<at::Tensor>& weight_in, int64_t kind, double beta, double alpha,
    double gamma, bool scalar_grad, bool target_grad) {
  check_inputs(pred_in, target_in, weight_in);
  const at::Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const bool weighted = weight_in.has_value();
  const at::Tensor weight = weighted ? weight_in->contiguous() : at::Tensor();
  const at::Tensor grad = grad_in.to(pred.scalar_type()).contiguous();
  if (scalar_grad) {
    TORCH_CHECK(grad.numel() == 1, "regression kernels: a scalar grad must have one element");
  } else {
    TORCH_CHECK(grad.sizes() == pred.sizes(), "regression kernels: grad must have pred's shape");
  }
  const int64_t n = pred.numel();
  at::Tensor grad_pred = at::empty_like(pred);
  at::Tensor grad_target = target_grad ? at::empty_like(target) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "regression_loss_backward", [&] {
    const Params<scalar_t> prm = make_params<scalar_t>(beta, alpha, gamma);
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const scalar_t* p = pred.data_ptr<scalar_t>();
    const scalar_t* t = target.data_ptr<scalar_t>();
    const scalar_t* w = weighted ? weight.data_ptr<scalar_t>() : nullptr;
    scalar_t* gp = grad_pred.data_ptr<scalar_t>();
    scalar_t* gt = target_grad ? grad_target.data_ptr<scalar_t>() : nullptr;
    REG_DISPATCH_KIND(kind, [&] {
      REG_DISPATCH_BOOL(weighted, W, [&] {
        REG_DISPATCH_BOOL(scalar_grad, S, [&] {
          REG_DISPATCH_BOOL(target_grad, TG, [&] {
            backward_impl<scalar_t, K, W, S, TG>(g, p, t, w, gp, gt, n, prm);
          });
        });
      });
    });
  });
  return {grad_pred, grad_target};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def(
      "cpu_build", [] { return "generic"; },
      "the build that runs: always 'generic' (these loops have no CPU-specific build; see "
      "csrc/common/cpu_features.h)");
  m.def(
      "ids", [] { py::dict out; out["kinds"] = id_table::to_dict(kKindNames); return out; },
      "The kernels' ids: {'kinds': {name: id}}");
  m.def("regression_loss_forward", &regression_loss_forward,
        "Weighted element-wise regression loss, or its sum (CPU)");
  m.def("regression_loss_backward", &regression_loss_backward,
        "Gradients of pred and target of the regression loss (CPU)");
}
