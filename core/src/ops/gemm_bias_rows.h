// Private to core: float products with a bias row in the same pass: the tile kernel of ops/gemm.cpp with the bias
// starting its accumulators, or oneDNN's matmul (ops/matmul_onednn.h).
#pragma once

#include <cstdint>

namespace ssmkit::core::detail {

// C (M,N) = op(A) op(B) + bias in every row (bias (N)), C not read. False (nothing done) for products neither
// path takes (see gemm.cpp); the caller then writes the bias and calls gemm() with beta 1.
bool gemm_bias_rows(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                    int64_t ldb, const float* bias, float* C, int64_t ldc);
// Float only: double products always take the caller's fallback.
inline bool gemm_bias_rows(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t,
                           const double*, double*, int64_t) {
  return false;
}

}  // namespace ssmkit::core::detail
