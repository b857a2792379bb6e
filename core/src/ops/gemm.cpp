// gemm(): row-major GEMM through CBLAS (OpenBLAS) when available, else through Eigen maps with strides.
// Both paths honour the beta == 0 contract (C not read). Degenerate sizes (M, N or K zero) are handled
// here so that neither backend sees them.
#include "ssmkit/core/ops/gemm.h"

#include <Eigen/Dense>

#include "ssmkit/core/error.h"

#ifdef SSMKIT_HAVE_CBLAS
#include <cblas.h>
#endif

namespace ssmkit::core {

namespace {

void check_args(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  SSMKIT_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M=", M, " N=", N, " K=", K);
  SSMKIT_CHECK(lda >= std::max<int64_t>(1, ta ? M : K) && ldb >= std::max<int64_t>(1, tb ? K : N) &&
                   ldc >= std::max<int64_t>(1, N),
               "gemm: leading dimensions lda=", lda, " ldb=", ldb, " ldc=", ldc, " too small for M=", M, " N=", N,
               " K=", K);
  constexpr int64_t kMaxInt = 2147483647;
  SSMKIT_CHECK(M <= kMaxInt && N <= kMaxInt && K <= kMaxInt && lda <= kMaxInt && ldb <= kMaxInt && ldc <= kMaxInt,
               "gemm: sizes beyond 32-bit BLAS indices");
}

// C = beta * C (beta == 0 writes zeros): the whole product when K == 0.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

#ifndef SSMKIT_HAVE_CBLAS
template <class T>
void gemm_eigen(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<const Mat, 0, Stride> a(A, ta ? K : M, ta ? M : K, Stride(lda));
  Eigen::Map<const Mat, 0, Stride> b(B, tb ? N : K, tb ? K : N, Stride(ldb));
  Eigen::Map<Mat, 0, Stride> c(C, M, N, Stride(ldc));
  auto run = [&](const auto& opa, const auto& opb) {
    if (beta == T(0))
      c.noalias() = alpha * (opa * opb);
    else {
      c *= beta;
      c.noalias() += alpha * (opa * opb);
    }
  };
  if (ta && tb) run(a.transpose(), b.transpose());
  else if (ta) run(a.transpose(), b);
  else if (tb) run(a, b.transpose());
  else run(a, b);
}
#endif

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  check_args(ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
#ifdef SSMKIT_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
#else
  gemm_eigen<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  check_args(ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
#ifdef SSMKIT_HAVE_CBLAS
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
#else
  gemm_eigen<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

std::string gemm_backend() {
#ifdef SSMKIT_HAVE_CBLAS
  return std::string(openblas_get_config()) + " (core " + openblas_get_corename() + ")";
#else
  return "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION);
#endif
}

}  // namespace ssmkit::core
