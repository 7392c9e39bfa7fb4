// The focal-loss maths and row loops, included twice by focal.cpp: once for the baseline
// instruction set and once compiled for AVX2+FMA (chosen at run time), inside two namespaces.
// No include guard on purpose; focal.cpp includes the standard headers it needs first.
// exp(z) for z <= 0 and log1p(e) for e in [0, 1]. For float these are branch-free polynomial
// forms that the compiler vectorises (libm's expf/log1pf calls are not vectorised without
// -ffast-math); their error is a few ulp, far below the tests' tolerance. Double uses libm.
// cond ? a : b. For float by bit masks: GCC leaves some float selects as branches in loops that
// store (it will not if-convert them), which stops the vectorisation of the whole loop.
template <typename T>
FOCAL_INLINE T select(bool cond, T a, T b) {
  return cond ? a : b;
}
template <>
FOCAL_INLINE float select<float>(bool cond, float a, float b) {
  const int32_t mask = -static_cast<int32_t>(cond);
  return __builtin_bit_cast(float, (__builtin_bit_cast(int32_t, a) & mask) |
                                       (__builtin_bit_cast(int32_t, b) & ~mask));
}

template <typename T>
struct Math {
  static FOCAL_INLINE T exp_neg(T z) { return std::exp(z); }
  static FOCAL_INLINE T log1p_unit(T e, T) { return std::log1p(e); }
};

template <>
struct Math<float> {
  static FOCAL_INLINE float exp_neg(float z) {
    // exp(z) = 2^n exp(r), n = round(z / ln 2), |r| <= ln2 / 2; z clamped above the
    // float32 normal range (exp(-87) ~ 1.6e-38: anything smaller is 0 to the losses).
    z = select(z < -87.0f, -87.0f, z);
    const float t = z * 1.44269504088896341f;
    const float shifted = t + 12582912.0f;  // 1.5 * 2^23: rounds t into the low mantissa bits
    const float nf = shifted - 12582912.0f;
    const int32_t n = __builtin_bit_cast(int32_t, shifted) - 0x4B400000;
    const float r = (z - nf * 0.693359375f) + nf * 2.12194440e-4f;
    // Cephes expf minimax polynomial on [-ln2/2, ln2/2]
    float poly = 1.9875691500e-4f;
    poly = poly * r + 1.3981999507e-3f;
    poly = poly * r + 8.3334519073e-3f;
    poly = poly * r + 4.1665795894e-2f;
    poly = poly * r + 1.6666665459e-1f;
    poly = poly * r + 5.0000001201e-1f;
    const float er = poly * r * r + r + 1.0f;
    return er * __builtin_bit_cast(float, (n + 127) << 23);
  }
  static FOCAL_INLINE float log1p_unit(float e, float inv_two_plus_e) {
    // log1p(e) = 2 atanh(s), s = e / (2 + e) in [0, 1/3]: the series in s^2 <= 1/9 to s^13
    const float s = e * inv_two_plus_e;
    const float s2 = s * s;
    float poly = 1.0f / 13.0f;
    poly = poly * s2 + 1.0f / 11.0f;
    poly = poly * s2 + 1.0f / 9.0f;
    poly = poly * s2 + 1.0f / 7.0f;
    poly = poly * s2 + 1.0f / 5.0f;
    poly = poly * s2 + 1.0f / 3.0f;
    poly = poly * s2 + 1.0f;
    return 2.0f * s * poly;
  }
};

// p = sigmoid(x), q = 1 - p = sigmoid(-x), softplus(x) = -log(1 - p), softplus(-x) = -log(p).
// poison = x - x: NaN for a NaN or infinite logit, else 0. Added to every loss and gradient
// term (the contract: a non-finite input gives a NaN loss and a NaN gradient, as the plain
// path's with_nonfinite does), where the maths alone would give a finite value (the positive
// term of x = +inf: (1 - p)^gamma softplus(-x) = 0) or an infinite one.
template <typename T>
struct Sigmoid {
  T p, q, softplus_pos, softplus_neg, poison;
  explicit FOCAL_INLINE Sigmoid(T x) : poison(x - x) {
    // Every value is computed before the selections, which pick between ready values, so the
    // loop stays branch-free and vectorisable.
    const T neg_x = -x;
    const bool nonneg = x >= T(0);
    const T e = Math<T>::exp_neg(select(nonneg, neg_x, x));  // exp(-|x|)
    // one division for 1 / (1 + e) and 1 / (2 + e)
    const T inv = T(1) / ((T(1) + e) * (T(2) + e));
    const T d = (T(2) + e) * inv;
    const T ed = e * d;
    const T log_term = Math<T>::log1p_unit(e, (T(1) + e) * inv);
    const T pos_part = select(nonneg, x, T(0));
    const T neg_part = select(nonneg, T(0), neg_x);
    p = select(nonneg, d, ed);
    q = select(nonneg, ed, d);
    softplus_pos = pos_part + log_term;
    softplus_neg = neg_part + log_term;
  }
};

// The focal terms for a compile-time gamma G in {0, 1, 2, 3} (products) or G = -1 (any
// gamma: base^gamma = exp(gamma log base), with log p = -softplus(-x), log q = -softplus(x)).
template <typename T, int G>
struct Focal {
  T gamma, neg_alpha, pos_alpha;
  explicit Focal(const Params& k) : gamma(T(k.gamma)), neg_alpha(T(k.neg_alpha)),
                                    pos_alpha(T(k.pos_alpha)) {}
  FOCAL_INLINE T power(T base, T log_base) const {
    if constexpr (G == 0) return T(1);  // 0^0 = 1, as torch.pow
    else if constexpr (G == 1) return base;
    else if constexpr (G == 2) return base * base;
    else if constexpr (G == 3) return base * base * base;
    else return Math<T>::exp_neg(-gamma * log_base);
  }
  FOCAL_INLINE T negative_loss(const Sigmoid<T>& s) const {
    return neg_alpha * power(s.p, s.softplus_neg) * s.softplus_pos + s.poison;
  }
  FOCAL_INLINE T positive_loss(const Sigmoid<T>& s) const {
    return pos_alpha * power(s.q, s.softplus_pos) * s.softplus_neg + s.poison;
  }
  // The negative loss, and its derivative in `grad`, sharing p^gamma.
  FOCAL_INLINE T negative_loss_grad(const Sigmoid<T>& s, T& grad) const {
    const T factor = neg_alpha * power(s.p, s.softplus_neg);
    grad = factor * (gamma * s.q * s.softplus_pos + s.p) + s.poison;
    return factor * s.softplus_pos + s.poison;
  }
  FOCAL_INLINE T negative_grad(const Sigmoid<T>& s) const {
    T grad;
    negative_loss_grad(s, grad);  // the same rounding as the fused forward
    return grad;
  }
  FOCAL_INLINE T positive_grad(const Sigmoid<T>& s) const {
    return -pos_alpha * power(s.q, s.softplus_pos) * (gamma * s.p * s.softplus_neg + s.q) +
           s.poison;
  }
};

// Calls body(Focal<T, G>) with G chosen from gamma once, outside the loops.
template <typename T, typename Body>
void with_focal(const Params& k, Body&& body) {
  if (k.gamma == 0) body(Focal<T, 0>(k));
  else if (k.gamma == 1) body(Focal<T, 1>(k));
  else if (k.gamma == 2) body(Focal<T, 2>(k));
  else if (k.gamma == 3) body(Focal<T, 3>(k));
  else body(Focal<T, -1>(k));
}

// Row kernels: the loop over classes treats every class as a negative (a branch-free loop the
// compiler vectorises), then the labelled column, if any, is swapped for the positive term.
template <typename T, typename F>
FOCAL_INLINE T row_loss_sum(const F& f, const T* xr, const T* wr, int64_t cols, int64_t label) {
  T row = 0;
  if (wr) {
#pragma omp simd reduction(+ : row)
    for (int64_t c = 0; c < cols; ++c) row += wr[c] * f.negative_loss(Sigmoid<T>(xr[c]));
  } else {
#pragma omp simd reduction(+ : row)
    for (int64_t c = 0; c < cols; ++c) row += f.negative_loss(Sigmoid<T>(xr[c]));
  }
  if (label >= 0 && label < cols) {
    const Sigmoid<T> s(xr[label]);
    const T diff = f.positive_loss(s) - f.negative_loss(s);
    row += wr ? wr[label] * diff : diff;
  }
  return row;
}

template <typename T, typename F>
FOCAL_INLINE void row_loss(const F& f, const T* xr, const T* wr, T scale, int64_t cols,
                           int64_t label, T* out) {
  if (wr) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] = scale * wr[c] * f.negative_loss(Sigmoid<T>(xr[c]));
  } else {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) out[c] = scale * f.negative_loss(Sigmoid<T>(xr[c]));
  }
  if (label >= 0 && label < cols) {
    out[label] = scale * (wr ? wr[label] : T(1)) * f.positive_loss(Sigmoid<T>(xr[label]));
  }
}

// out[c] = (scale * wr[c] * dloss/dx) * go[c] (wr: 1 when null; go: go_scalar when null),
// multiplied in the order of the fused forward's gradient times grad_output, so that a
// recomputed gradient is bit-identical to the one the forward kept.
template <typename T, typename F>
FOCAL_INLINE void row_grad(const F& f, const T* xr, const T* wr, const T* go, T go_scalar,
                           T scale, int64_t cols, int64_t label, T* out) {
  if (wr && go) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c)
      out[c] = (scale * wr[c] * f.negative_grad(Sigmoid<T>(xr[c]))) * go[c];
  } else if (wr) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c)
      out[c] = (scale * wr[c] * f.negative_grad(Sigmoid<T>(xr[c]))) * go_scalar;
  } else if (go) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c)
      out[c] = (scale * f.negative_grad(Sigmoid<T>(xr[c]))) * go[c];
  } else {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c)
      out[c] = (scale * f.negative_grad(Sigmoid<T>(xr[c]))) * go_scalar;
  }
  if (label >= 0 && label < cols) {
    const T w = wr ? wr[label] : T(1);
    out[label] = (scale * w * f.positive_grad(Sigmoid<T>(xr[label]))) *
                 (go ? go[label] : go_scalar);
  }
}

// Loss and gradient in one pass (for a forward whose input needs a gradient): returns the row's
// loss sum weighted by wr (unscaled) and writes grad[c] = scale * wr[c] * dloss/dx, and with
// kWriteLoss loss[c] = scale * wr[c] * loss.
template <bool kWriteLoss, typename T, typename F>
FOCAL_INLINE T row_loss_grad(const F& f, const T* xr, const T* wr, T scale, int64_t cols,
                             int64_t label, T* loss, T* grad) {
  T row = 0;
  if (wr) {
#pragma omp simd reduction(+ : row)
    for (int64_t c = 0; c < cols; ++c) {
      T d;
      const T value = wr[c] * f.negative_loss_grad(Sigmoid<T>(xr[c]), d);
      grad[c] = scale * wr[c] * d;
      if constexpr (kWriteLoss) loss[c] = scale * value;
      row += value;
    }
  } else {
#pragma omp simd reduction(+ : row)
    for (int64_t c = 0; c < cols; ++c) {
      T d;
      const T value = f.negative_loss_grad(Sigmoid<T>(xr[c]), d);
      grad[c] = scale * d;
      if constexpr (kWriteLoss) loss[c] = scale * value;
      row += value;
    }
  }
  if (label >= 0 && label < cols) {
    const Sigmoid<T> s(xr[label]);
    const T w = wr ? wr[label] : T(1);
    const T positive = f.positive_loss(s);
    row += w * (positive - f.negative_loss(s));
    grad[label] = scale * w * f.positive_grad(s);
    if constexpr (kWriteLoss) loss[label] = scale * w * positive;
  }
  return row;
}

// Entry points over a range of rows [begin, end), for one of the compiled instruction sets.
template <typename T>
double chunk_loss_sum(const Params& k, const T* x, const int64_t* y, const T* w, WeightMode mode,
                      int64_t cols, int64_t begin, int64_t end) {
  double acc = 0;
  with_focal<T>(k, [&](const auto& f) {
    for (int64_t n = begin; n < end; ++n) {
      const T* wr = mode == WeightMode::kPerElement ? w + n * cols : nullptr;
      const T row = row_loss_sum(f, x + n * cols, wr, cols, y[n]);
      acc += mode == WeightMode::kPerAnchor ? double(w[n]) * double(row) : double(row);
    }
  });
  return acc;
}

template <typename T>
void chunk_loss(const Params& k, const T* x, const int64_t* y, const T* w, WeightMode mode,
                int64_t cols, int64_t begin, int64_t end, T* out) {
  with_focal<T>(k, [&](const auto& f) {
    for (int64_t n = begin; n < end; ++n) {
      const T* wr = mode == WeightMode::kPerElement ? w + n * cols : nullptr;
      const T scale = mode == WeightMode::kPerAnchor ? w[n] : T(1);
      row_loss(f, x + n * cols, wr, scale, cols, y[n], out + n * cols);
    }
  });
}

// go: the scalar grad_output (go_scalar) or (N, C) (go_rows, else null).
template <typename T>
void chunk_grad(const Params& k, const T* x, const int64_t* y, const T* w, WeightMode mode,
                T go_scalar, const T* go_rows, int64_t cols, int64_t begin, int64_t end,
                T* out) {
  with_focal<T>(k, [&](const auto& f) {
    for (int64_t n = begin; n < end; ++n) {
      const T* wr = mode == WeightMode::kPerElement ? w + n * cols : nullptr;
      const T* gor = go_rows ? go_rows + n * cols : nullptr;
      const T scale = mode == WeightMode::kPerAnchor ? w[n] : T(1);
      row_grad(f, x + n * cols, wr, gor, go_scalar, scale, cols, y[n], out + n * cols);
    }
  });
}

// Loss (summed, or element-wise into `loss`) and the weighted gradient in one pass.
template <typename T>
double chunk_loss_grad(const Params& k, const T* x, const int64_t* y, const T* w,
                       WeightMode mode, int64_t cols, int64_t begin, int64_t end, T* loss,
                       T* grad) {
  double acc = 0;
  with_focal<T>(k, [&](const auto& f) {
    for (int64_t n = begin; n < end; ++n) {
      const T* wr = mode == WeightMode::kPerElement ? w + n * cols : nullptr;
      const T scale = mode == WeightMode::kPerAnchor ? w[n] : T(1);
      const int64_t offset = n * cols;
      const T row = loss ? row_loss_grad<true>(f, x + offset, wr, scale, cols, y[n],
                                                loss + offset, grad + offset)
                         : row_loss_grad<false>(f, x + offset, wr, scale, cols, y[n],
                                                 static_cast<T*>(nullptr), grad + offset);
      acc += double(scale) * double(row);
    }
  });
  return acc;
}
