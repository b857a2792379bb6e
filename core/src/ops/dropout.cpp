// Dropout family: one kernel scales x (G, inner) by a per-group factor m[g] in {0, scale} where the
// groups are elements (dropout), (n,c) channels (dropout_channels) or samples (drop_path); backward
// scales the gradient by the same saved factors. Follows torch.nn.functional.dropout/dropout1d/dropout2d
// and timm.layers.drop_path.
#include "ssmkit/core/ops/dropout.h"

#include <algorithm>
#include <cmath>

#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

using detail::dispatch_float;

// y[g, i] = x[g, i] * m[g] for x viewed as (G, inner).
Tensor scale_groups(const Tensor& x0, const Tensor& m) {
  const Tensor x = x0.contiguous();
  const int64_t G = m.numel(), inner = G > 0 ? x.numel() / G : 0;
  Tensor y = Tensor::uninitialized(x.shape(), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *pm = m.data<T>();
    T* py = y.data<T>();
    if (inner == 1) {  // elementwise dropout: one flat loop that vectorizes
      const int64_t n = G;
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
      for (int64_t i = 0; i < n; ++i) py[i] = px[i] * pm[i];
    } else {
#pragma omp parallel for schedule(static) if (x.numel() > 65536)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < inner; ++i) py[g * inner + i] = px[g * inner + i] * pm[g];
    }
  });
  return y;
}

// Draws the factors of G groups: 1/(1-p) (or 1 without scaling) with probability 1-p, else 0.
// Group g is kept when the g-th uniform() of rng is below 1-p; the uniforms are drawn in blocks (the same
// stream as one uniform() per group, fewer calls).
Tensor draw_mask(int64_t G, double p, bool scale, DType dt, Rng& rng) {
  if (p >= 1.0) return Tensor::zeros({G}, dt);
  Tensor m = Tensor::uninitialized({G}, dt);  // every element written
  const double keep = 1.0 - p, value = scale ? 1.0 / keep : 1.0;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    T* pm = m.data<T>();
    // uniform() = k 2^-53 with k = bits >> 11, and k 2^-53 < keep exactly when k < ceil(keep 2^53): an integer
    // compare (k < 2^53, so a signed one) that vectorizes, where the conversion to double would not (AVX2).
    const int64_t thr = static_cast<int64_t>(std::ceil(keep * 0x1.0p53));
    const T kept = static_cast<T>(value);
    constexpr int64_t kBlock = 1024;
    uint64_t bits[kBlock];
    for (int64_t g0 = 0; g0 < G; g0 += kBlock) {
      const int64_t n = std::min(kBlock, G - g0);
      rng.fill_u64(bits, n);
      for (int64_t i = 0; i < n; ++i) pm[g0 + i] = static_cast<int64_t>(bits[i] >> 11) < thr ? kept : T(0);
    }
  });
  return m;
}

Var masked_op(const Var& x, double p, int64_t G, bool scale, Rng& rng, const char* op) {
  const Tensor m = draw_mask(G, p, scale, x.dtype(), rng);
  return make_result(scale_groups(x.value(), m), {x}, [m](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{scale_groups(g, m)};
  }, op);
}

void check_args(const Var& x, double p, const char* op) {
  detail::check_float(x, op, "input");
  SSMKIT_CHECK(p >= 0.0 && p <= 1.0, op, ": probability p must be in [0, 1], got ", p);
}

}  // namespace

Var dropout(const Var& x, double p, bool training, Rng& rng) {
  check_args(x, p, "dropout");
  if (!training || p == 0.0) return x;
  return masked_op(x, p, x.numel(), true, rng, "dropout");
}

Var dropout_channels(const Var& x, double p, bool training, Rng& rng) {
  check_args(x, p, "dropout_channels");
  SSMKIT_CHECK(x.ndim() >= 2, "dropout_channels: input must be (N,C,*) or unbatched (C,L), got ",
               shape_str(x.shape()));
  if (!training || p == 0.0) return x;
  const int64_t G = x.ndim() == 2 ? x.size(0) : x.size(0) * x.size(1);
  return masked_op(x, p, G, true, rng, "dropout_channels");
}

Var drop_path(const Var& x, double p, bool training, Rng& rng, bool scale_by_keep) {
  check_args(x, p, "drop_path");
  SSMKIT_CHECK(x.ndim() >= 1, "drop_path: input must have a batch dimension, got a 0-d tensor");
  if (!training || p == 0.0) return x;
  return masked_op(x, p, x.size(0), scale_by_keep, rng, "drop_path");
}

}  // namespace ssmkit::core
