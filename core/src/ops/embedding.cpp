// Embedding: forward copies row idx[i] of W (V,D) to out[i]; backward adds dout[i] to dW[idx[i]] for
// each position i in order (skipping padding_idx), so repeated indices accumulate deterministically.
// Threads split the D columns in backward, never the positions, so no two threads touch one element.
#include "ssmkit/core/ops/embedding.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

using detail::dispatch_float;

// The indices as int64 values, checked against [0, V).
std::vector<int64_t> read_indices(const Tensor& indices, int64_t V) {
  SSMKIT_CHECK(indices.defined() && (indices.dtype() == DType::I64 || indices.dtype() == DType::I32),
               "embedding: indices must be an I64 or I32 tensor, got ",
               indices.defined() ? dtype_name(indices.dtype()) : "undefined");
  const Tensor c = indices.contiguous();
  std::vector<int64_t> idx(static_cast<size_t>(c.numel()));
  for (size_t i = 0; i < idx.size(); ++i) {
    idx[i] = c.dtype() == DType::I64 ? c.data<int64_t>()[i] : c.data<int32_t>()[i];
    SSMKIT_CHECK(idx[i] >= 0 && idx[i] < V, "embedding: index ", idx[i], " at position ", i,
                 " is out of range for a table of ", V, " rows");
  }
  return idx;
}

}  // namespace

Var embedding(const Var& weight, const Tensor& indices, std::optional<int64_t> padding_idx) {
  SSMKIT_CHECK(weight.defined() && weight.ndim() == 2, "embedding: weight must be (V,D), got ",
               weight.defined() ? shape_str(weight.shape()) : "undefined");
  detail::check_float_dtype(weight, "embedding", "weight");
  const int64_t V = weight.size(0), D = weight.size(1);
  int64_t pad = -1;  // none
  if (padding_idx) {
    pad = *padding_idx < 0 ? *padding_idx + V : *padding_idx;
    SSMKIT_CHECK(pad >= 0 && pad < V, "embedding: padding_idx ", *padding_idx, " must be within [", -V, ", ", V,
                 ") for weight ", shape_str(weight.shape()));
  }
  auto idx = std::make_shared<const std::vector<int64_t>>(read_indices(indices, V));
  const Tensor W = weight.value().contiguous();
  Shape out_shape = indices.shape();
  out_shape.push_back(D);
  Tensor y = Tensor::empty(out_shape, W.dtype());
  const int64_t n = static_cast<int64_t>(idx->size());
  dispatch_float(W.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pw = W.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(py + i * D, pw + (*idx)[static_cast<size_t>(i)] * D, sizeof(T) * static_cast<size_t>(D));
  });
  const Shape wshape = W.shape();
  return make_result(y, {weight}, [idx, wshape, pad](const Tensor& g0, const std::vector<bool>&) {
    const Tensor g = g0.contiguous();
    Tensor dW = Tensor::empty(wshape, g.dtype());  // zeros
    const int64_t D = wshape[1], n = static_cast<int64_t>(idx->size());
    dispatch_float(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pg = g.data<T>();
      T* pd = dW.data<T>();
      const int64_t block = 64;  // columns per thread task
#pragma omp parallel for schedule(static) if (n * D > 65536)
      for (int64_t d0 = 0; d0 < D; d0 += block) {
        const int64_t d1 = std::min(D, d0 + block);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t r = (*idx)[static_cast<size_t>(i)];
          if (r == pad) continue;
          for (int64_t d = d0; d < d1; ++d) pd[r * D + d] += pg[i * D + d];
        }
      }
    });
    return std::vector<Tensor>{dW};
  }, "embedding");
}

}  // namespace ssmkit::core
