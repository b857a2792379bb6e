// Private to core: float products with a bias row through oneDNN's matmul primitive (ops/matmul_onednn.cpp).
#pragma once

#include <cstdint>

namespace ssmkit::core::detail {

// C (M,N) = op(A) op(B) + bias in every row (bias (N)), C not read; strides as in gemm(). Runs the product and
// the bias in one pass, where the fallback writes the bias into C and then multiplies with beta 1 (two more
// passes over C). False (nothing done) where ssmkit was built without oneDNN, or oneDNN offers only its
// reference implementation for the layout.
bool onednn_matmul_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                        const float* B, int64_t ldb, const float* bias, float* C, int64_t ldc);

}  // namespace ssmkit::core::detail
