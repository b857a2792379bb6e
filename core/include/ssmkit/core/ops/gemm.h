// General matrix multiply on raw row-major buffers: the one place where core calls a BLAS.
//   C (M,N) = alpha * op(A) * op(B) + beta * C,  op(A) (M,K), op(B) (K,N)
// A is stored (M,K) with row stride lda, or (K,M) when trans_a; B likewise (K,N) / (N,K) with ldb.
// With beta == 0, C is written without being read (it may hold garbage). Backend: OpenBLAS (kernels
// chosen for the CPU at run time, OpenMP threads; single-threaded when called inside a parallel
// region) when built with SSMKIT_WITH_BLAS, Eigen otherwise; float products go to oneDNN's sgemm first when
// built with SSMKIT_WITH_ONEDNN (the same threading); gemm_backend() says which. Float products with a narrow
// right-hand side (small N: 16-64 output channels, small projections) take a register-blocked kernel of
// gemm.cpp instead, which beats both libraries on those shapes.
#pragma once

#include <cstdint>
#include <string>

namespace ssmkit::core {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// "OpenBLAS 0.3.21 ... (core Haswell)" or "Eigen 3.4.0", after "oneDNN 2.6.3 sgemm for float, then " when
// oneDNN is in use. Where OpenBLAS did not know the CPU and chose
// kernels of a narrower ISA than it has (Debian 12's OpenBLAS on Emerald Rapids: SSE3 "Prescott"), core forces
// the matching AVX-512 / AVX2 kernels once per process unless OPENBLAS_CORETYPE is set; the string then ends
// with "; OpenBLAS chose Prescott for this AVX-512 CPU; switched to Cooperlake".
std::string gemm_backend();

}  // namespace ssmkit::core
