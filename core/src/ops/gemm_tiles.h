// Private to core's GEMM: the register-tile float kernel for skinny products (ops/gemm_tiles.cpp).
#pragma once

#include <cstdint>

namespace ssmkit::core::detail {

// C (M,N) = (beta ? C : bias rows or 0) + A B on the calling thread, at the vector width of the SIMD path in
// use. A(i,k) = a[i*a_rs + k*a_cs]; B (K,N) row-major with row stride ldb; bias (N) or null; with beta false
// C is written without being read.
void tile_gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
               int64_t ldb, bool beta, const float* bias, float* c, int64_t ldc);

}  // namespace ssmkit::core::detail
