// Fused sigmoid focal loss with class-index targets (label C = background), CPU.
//
// For logits x (N, C) and labels (N,), element (n, c) is a positive when c == labels[n]:
//   negative: (1 - alpha) p^gamma softplus(x),
//             d/dx = (1 - alpha) p^gamma (gamma (1 - p) softplus(x) + p)
//   positive: alpha (1 - p)^gamma softplus(-x),
//             d/dx = -alpha (1 - p)^gamma (gamma p softplus(-x) + (1 - p))
// with p = sigmoid(x) and 1 - p computed as sigmoid(-x) (no cancellation at saturated logits);
// alpha < 0 drops the alpha factors. The derivatives hold no negative power of p or 1 - p, so
// they are finite for every logit and every gamma >= 0. One pass over the logits, no one-hot:
// the forward reduces on the fly (weighted sum, accumulated in double) or writes the weighted
// element-wise loss; forward_with_grad also writes the weighted gradient in that pass (for the
// autograd wrapper to scale by grad_output); backward recomputes it from logits and labels.
// The maths and loops are in focal_math.h, compiled twice: baseline x86-64 and AVX2+FMA, the
// latter run where the CPU has both and MMDET_LOSSES_GENERIC is not set (the common check and
// switch, csrc/common/cpu_features.h).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "../common/cpu_features.h"

namespace {

enum class WeightMode { kNone, kPerAnchor, kPerElement };

struct Params {
  double gamma;
  double neg_alpha;
  double pos_alpha;
};

Params make_params(double gamma, double alpha) {
  return {gamma, alpha < 0 ? 1.0 : 1.0 - alpha, alpha < 0 ? 1.0 : alpha};
}

// Forced inlining keeps the per-element maths inside the vectorised loops.
#define FOCAL_INLINE inline __attribute__((always_inline))

namespace generic {
#include "focal_math.h"
}  // namespace generic

#ifdef MMDET_LOSSES_AVX2_BUILD
namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "focal_math.h"
#pragma GCC pop_options
}  // namespace avx2
#endif

bool use_avx2() { return cpu_features::use_avx2(); }

#ifdef MMDET_LOSSES_AVX2_BUILD
#define FOCAL_CALL(fn, ...) (use_avx2() ? avx2::fn(__VA_ARGS__) : generic::fn(__VA_ARGS__))
#else
#define FOCAL_CALL(fn, ...) generic::fn(__VA_ARGS__)
#endif

WeightMode weight_mode(const c10::optional<at::Tensor>& weight, const at::Tensor& pred) {
  if (!weight.has_value() || !weight->defined()) return WeightMode::kNone;
  const int64_t rows = pred.size(0), cols = pred.size(1);
  TORCH_CHECK(weight->dim() == 2 && weight->size(0) == rows &&
                  (weight->size(1) == 1 || weight->size(1) == cols),
              "weight must have shape (N, 1) or (N, C), got ", weight->sizes());
  TORCH_CHECK(weight->is_contiguous() && weight->scalar_type() == pred.scalar_type(),
              "weight must be contiguous, in pred's dtype");
  return weight->size(1) == 1 ? WeightMode::kPerAnchor : WeightMode::kPerElement;
}

void check_inputs(const at::Tensor& pred, const at::Tensor& labels) {
  TORCH_CHECK(pred.device().is_cpu() && labels.device().is_cpu(), "CPU tensors expected");
  TORCH_CHECK(pred.dim() == 2 && pred.is_contiguous(), "pred must be contiguous (N, C)");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == pred.size(0) &&
                  labels.scalar_type() == at::kLong && labels.is_contiguous(),
              "labels must be contiguous int64 (N,)");
}

// Rows per parallel task: about 16k elements, at least one row.
int64_t grain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

// Runs task(begin, end) -> double over blocks of rows on torch's intra-op threads and returns
// the sum of the results in block order (deterministic). Blocks are handed out dynamically
// (at::parallel_for splits the rows into one static range per thread): when a thread is
// descheduled on a busy machine, the others take over its blocks instead of waiting for it.
template <typename Task>
double parallel_rows(int64_t rows, int64_t cols, const Task& task) {
  const int64_t block = grain(cols);
  const int64_t blocks = (rows + block - 1) / block;
  const int threads = at::get_num_threads();
  if (blocks <= 1 || threads <= 1 || at::in_parallel_region()) return task(0, rows);
  std::vector<double> partial(blocks);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; ++b) {
    partial[b] = task(b * block, std::min(rows, (b + 1) * block));
  }
  double total = 0;
  for (const double value : partial) total += value;
  return total;
}

at::Tensor forward(const at::Tensor& pred, const at::Tensor& labels,
                   const c10::optional<at::Tensor>& weight, double gamma, double alpha,
                   bool reduce_sum) {
  check_inputs(pred, labels);
  const int64_t rows = pred.size(0), cols = pred.size(1);
  const WeightMode mode = weight_mode(weight, pred);
  const Params k = make_params(gamma, alpha);
  at::Tensor out = reduce_sum ? at::empty({}, pred.options()) : at::empty_like(pred);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "sigmoid_focal_index_forward", [&] {
    using T = scalar_t;
    const T* x = pred.data_ptr<T>();
    const int64_t* y = labels.data_ptr<int64_t>();
    const T* w = mode == WeightMode::kNone ? nullptr : weight->data_ptr<T>();
    if (reduce_sum) {
      out.fill_(parallel_rows(rows, cols, [&](int64_t begin, int64_t end) {
        return FOCAL_CALL(chunk_loss_sum<T>, k, x, y, w, mode, cols, begin, end);
      }));
    } else {
      T* o = out.data_ptr<T>();
      parallel_rows(rows, cols, [&](int64_t begin, int64_t end) {
        FOCAL_CALL(chunk_loss<T>, k, x, y, w, mode, cols, begin, end, o);
        return 0.0;
      });
    }
  });
  return out;
}

// The forward for an input that needs a gradient: the loss (as `forward`) and the weighted
// gradient w * dloss/dx computed in the same pass, kept for the backward, which only scales
// it by grad_output (instead of a second pass over the logits).
std::vector<at::Tensor> forward_with_grad(const at::Tensor& pred, const at::Tensor& labels,
                                          const c10::optional<at::Tensor>& weight, double gamma,
                                          double alpha, bool reduce_sum) {
  check_inputs(pred, labels);
  const int64_t rows = pred.size(0), cols = pred.size(1);
  const WeightMode mode = weight_mode(weight, pred);
  const Params k = make_params(gamma, alpha);
  at::Tensor out = reduce_sum ? at::empty({}, pred.options()) : at::empty_like(pred);
  at::Tensor grad = at::empty_like(pred);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "sigmoid_focal_index_forward_with_grad", [&] {
    using T = scalar_t;
    const T* x = pred.data_ptr<T>();
    const int64_t* y = labels.data_ptr<int64_t>();
    const T* w = mode == WeightMode::kNone ? nullptr : weight->data_ptr<T>();
    T* loss = reduce_sum ? nullptr : out.data_ptr<T>();
    T* g = grad.data_ptr<T>();
    const double total = parallel_rows(rows, cols, [&](int64_t begin, int64_t end) {
      return FOCAL_CALL(chunk_loss_grad<T>, k, x, y, w, mode, cols, begin, end, loss, g);
    });
    if (reduce_sum) out.fill_(total);
  });
  return {out, grad};
}

// grad_output is a scalar (reduced forward) or (N, C) (element-wise forward).
at::Tensor backward(const at::Tensor& grad_output, const at::Tensor& pred,
                    const at::Tensor& labels, const c10::optional<at::Tensor>& weight,
                    double gamma, double alpha) {
  check_inputs(pred, labels);
  const WeightMode mode = weight_mode(weight, pred);
  const bool scalar_grad = grad_output.dim() == 0;
  TORCH_CHECK(scalar_grad || grad_output.sizes() == pred.sizes(),
              "grad_output must be a scalar or of pred's shape");
  const int64_t rows = pred.size(0), cols = pred.size(1);
  const Params k = make_params(gamma, alpha);
  at::Tensor grad = at::empty_like(pred);
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "sigmoid_focal_index_backward", [&] {
    using T = scalar_t;
    const T* x = pred.data_ptr<T>();
    const int64_t* y = labels.data_ptr<int64_t>();
    const T* w = mode == WeightMode::kNone ? nullptr : weight->data_ptr<T>();
    const at::Tensor go_tensor = grad_output.to(pred.scalar_type()).contiguous();
    const T go_scalar = scalar_grad ? go_tensor.data_ptr<T>()[0] : T(1);
    const T* go_rows = scalar_grad ? nullptr : go_tensor.data_ptr<T>();
    T* g = grad.data_ptr<T>();
    parallel_rows(rows, cols, [&](int64_t begin, int64_t end) {
      FOCAL_CALL(chunk_grad<T>, k, x, y, w, mode, go_scalar, go_rows, cols, begin, end, g);
      return 0.0;
    });
  });
  return grad;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused sigmoid focal loss with class-index targets (CPU)";
  m.def("forward", &forward, "weighted focal loss: sum (reduce_sum) or element-wise",
        py::arg("pred"), py::arg("labels"), py::arg("weight"), py::arg("gamma"),
        py::arg("alpha"), py::arg("reduce_sum"));
  m.def("forward_with_grad", &forward_with_grad,
        "forward, plus the weighted gradient computed in the same pass", py::arg("pred"),
        py::arg("labels"), py::arg("weight"), py::arg("gamma"), py::arg("alpha"),
        py::arg("reduce_sum"));
  m.def("backward", &backward, "gradient of the forward w.r.t. pred", py::arg("grad_output"),
        py::arg("pred"), py::arg("labels"), py::arg("weight"), py::arg("gamma"),
        py::arg("alpha"));
  m.def("uses_avx2", &use_avx2, "whether the AVX2+FMA build of the loops runs on this CPU");
  m.def("cpu_build", &cpu_features::build_name,
        "the build of the loops that runs: 'avx2' or 'generic' (csrc/common/cpu_features.h; "
        "MMDET_LOSSES_GENERIC=1 forces it)");
}
