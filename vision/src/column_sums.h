// Private: per-channel sums over the rows of a (rows, C) map, in double, over fixed chunks of kColumnSumRows
// rows combined in chunk order (the same bits on any thread count). Shared by the batch norm statistics
// (conv_tokens.cpp) and the bias gradients of the oneDNN convolution paths (conv_tokens.cpp, ops.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ssmkit/core/simd_clones.h"

namespace ssmkit::vision::detail {

constexpr int64_t kColumnSumRows = 512;

// acc (C) = sum over rows [r0, r1) of x[r][c] (mean null) or of (x[r][c] - mean[c])^2
// (static: a multi-versioned function keeps internal linkage in each including file, as in dwconv_kernels.h)
template <class T>
static SSMKIT_SIMD_CLONES void column_sums_rows(double* __restrict acc, const T* __restrict x,
                                                const double* __restrict mean, int64_t r0, int64_t r1, int64_t C) {
  std::fill(acc, acc + C, 0.0);
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict xr = x + r * C;
    if (mean)
      for (int64_t c = 0; c < C; ++c) {
        const double v = static_cast<double>(xr[c]) - mean[c];
        acc[c] += v * v;
      }
    else
      for (int64_t c = 0; c < C; ++c) acc[c] += static_cast<double>(xr[c]);
  }
}

// part (nchunk, C) <- per chunk of kColumnSumRows rows: column_sums_rows
template <class T>
static void column_sums(double* part, const T* x, const double* mean, int64_t rows, int64_t C) {
  const int64_t nchunk = (rows + kColumnSumRows - 1) / kColumnSumRows;
#pragma omp parallel for schedule(static) if (rows * C > (1 << 15))
  for (int64_t k = 0; k < nchunk; ++k)
    column_sums_rows<T>(part + k * C, x, mean, k * kColumnSumRows, std::min(rows, (k + 1) * kColumnSumRows), C);
}

inline void combine(double* out, const double* part, int64_t nchunk, int64_t C) {
  std::fill(out, out + C, 0.0);
  for (int64_t k = 0; k < nchunk; ++k)
    for (int64_t c = 0; c < C; ++c) out[c] += part[k * C + c];
}

// out (C) += the column sums of x (rows, C)
template <class T>
static void add_column_sums(T* out, const T* x, int64_t rows, int64_t C) {
  const int64_t nchunk = (rows + kColumnSumRows - 1) / kColumnSumRows;
  std::vector<double> part(static_cast<size_t>(std::max<int64_t>(nchunk, 1) * C)), sum(static_cast<size_t>(C));
  column_sums<T>(part.data(), x, nullptr, rows, C);
  combine(sum.data(), part.data(), nchunk, C);
  for (int64_t c = 0; c < C; ++c) out[c] += static_cast<T>(sum[static_cast<size_t>(c)]);
}

}  // namespace ssmkit::vision::detail
