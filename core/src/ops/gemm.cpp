// gemm(): row-major GEMM through CBLAS (OpenBLAS) when available, else through Eigen maps with strides; float
// products go to oneDNN's sgemm first where ssmkit was built with it (faster than OpenBLAS 0.3.21 on the
// models' Linear shapes; docs/performance.md).
// Skinny float products (B at most 64K floats, N >= 8, alpha 1, beta 0 or 1: convolutions with 16-64 output
// channels, small projections) run instead through a register-blocked kernel, where OpenBLAS spends more time
// packing and clearing than multiplying (ops/gemm_tiles.cpp: 6 x 2W tiles of C in W-float registers, W the
// vector width of the SIMD path in use), rows split over OpenMP threads outside parallel regions. Every path
// honours the beta == 0 contract (C not read). Degenerate sizes (M, N or K zero) are handled here so that no
// backend sees them.
#include "ssmkit/core/ops/gemm.h"

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cstring>
#include <vector>

#include "blas_kernels.h"
#include "gemm_bias_rows.h"
#include "gemm_tiles.h"
#include "matmul_onednn.h"
#include "ssmkit/core/error.h"
#include "ssmkit/core/max_threads_scope.h"

#ifdef SSMKIT_HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef SSMKIT_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
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

// ------------------------------------------------------------------------------------------------------
// Register-blocked float kernel for skinny products

// Larger products go to the BLAS (see use_tiles):
constexpr int64_t kTileMaxShallowB = 1 << 14;  // B (K x N) floats at most for K <= 64
constexpr int64_t kTileMaxDeepB = 12288;       // B floats at most for K > 64
constexpr int64_t kTileMaxDeepA = 1 << 20;     // A (M x K) floats at most for K > 64
constexpr int64_t kTileParallel = 1 << 17;  // multiply-adds below which one thread does it all
#ifdef SSMKIT_HAVE_ONEDNN
constexpr int64_t kBlasWideGradC = 1 << 18;  // C elements from which A^T B products stay with OpenBLAS
constexpr int64_t kDnnlForkMinMacs = 1 << 20;  // multiply-adds below which oneDNN's sgemm runs on one thread
// Which float products go to oneDNN (sgemm, or the matmul with a bias): all but the weight gradients of wide
// layers (A transposed, C of 256 k floats or more), which stay with OpenBLAS (see gemm()).
bool onednn_takes(bool ta, int64_t M, int64_t N) { return !(ta && M * N >= kBlasWideGradC); }
#endif

// Skinny products: B small enough that its panels stay in L1/L2 while A streams past. Measured against
// OpenBLAS 0.3.21 (Zen 2, one thread, a sweep over the models' product shapes): the tile kernel wins for K <= 64
// up to 16 k B elements (M 352 x N 256 x K 16: 78 vs 42 GFLOP/s; 25088 x 256 x 64: 63 vs 56) and for deeper
// products only while B stays under 12 k elements and A under 1 M (3136 x 64 x 96: 90 vs 73); it loses to the
// BLAS on wide deep products (352 x 256 x 256: 59 vs 85) and on deep ones whose A streams from memory
// (25088 x 64 x 256: 33 vs 63), and with few rows (11 x 256 x 64: 13 vs 33).
// With oneDNN built in, the wide ones of these (N >= 128 over 2048 rows or more) go to its sgemm instead:
// 1.1-1.9x the tile kernel there (M 8192 x N 256 x K 16: 1.8x at one thread, 1.3x at two), while on narrow
// or short products the two are even or the tile kernel ahead (M 512 x N 256 x K 8 at 2 threads: 2.9x).
bool use_tiles(int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  if (alpha != 1.0f || !(beta == 0.0f || beta == 1.0f) || N < 8 || M < 64) return false;
#ifdef SSMKIT_HAVE_ONEDNN
  if (N >= 128 && M >= 2048) return false;
#endif
  return K <= 64 ? N * K <= kTileMaxShallowB : N * K <= kTileMaxDeepB && M * K <= kTileMaxDeepA;
}

// The tile kernel behind gemm(): op(B) packed row-major when transposed, rows of C split over threads when
// the product is large enough and no parallel region is active.
void gemm_tiles(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                int64_t ldb, bool beta, const float* bias, float* C, int64_t ldc) {
  std::vector<float> bt;
  if (tb) {  // B stored (N,K): copy op(B) = B^T into (K,N)
    bt.resize(static_cast<size_t>(K * N));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) bt[static_cast<size_t>(k * N + n)] = B[n * ldb + k];
    B = bt.data();
    ldb = N;
  }
  const int64_t a_rs = ta ? 1 : lda, a_cs = ta ? lda : 1;
  const int nth = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (nth <= 1 || M < 12 || M * N * K < kTileParallel) {
    detail::tile_gemm(M, N, K, A, a_rs, a_cs, B, ldb, beta, bias, C, ldc);
    return;
  }
  // Blocks of whole 6-row panels, a multiple of the thread count (two per thread when there are enough
  // panels), the panels spread evenly: with contiguous static scheduling every thread gets the same
  // number of rows to within one panel (M 128 on 2 threads: 66 / 62 rows, not 90 / 38).
  const int64_t panels = (M + 5) / 6;
  const int64_t nblk = panels >= 2 * nth ? 2 * nth : std::min<int64_t>(panels, nth);
#pragma omp parallel for schedule(static) num_threads(nth)
  for (int64_t k = 0; k < nblk; ++k) {
    const int64_t i0 = k * panels / nblk * 6, i1 = std::min(M, (k + 1) * panels / nblk * 6);
    if (i1 > i0) detail::tile_gemm(i1 - i0, N, K, A + i0 * a_rs, a_rs, a_cs, B, ldb, beta, bias, C + i0 * ldc, ldc);
  }
}

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  check_args(ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  if (use_tiles(M, N, K, alpha, beta))
    return gemm_tiles(ta, tb, M, N, K, A, lda, B, ldb, beta == 1.0f, nullptr, C, ldc);
#ifdef SSMKIT_HAVE_ONEDNN
  // Threads: OpenMP's (omp_get_max_threads(); one inside a parallel region). Falls through to the BLAS
  // on any failure status, and leaves it the weight gradients of wide layers (A transposed, C of 256 k
  // floats or more: 1536 x 384 x 3136 at 2 threads 203-283 GFLOP/s in OpenBLAS, 156-209 in oneDNN 2.6; the
  // narrow ones, 128 x 32 x 8192, are 2.5x faster in oneDNN).
  if (onednn_takes(ta, M, N)) {
    // Small products on the calling thread alone: oneDNN would fork for them too, and waking an idle worker
    // took ~0.9 ms here against ~3 us of work (GroupMamba-T's 1 x 224 x 112 affinity products at 2 threads).
    const bool alone = M * N * K < kDnnlForkMinMacs && !omp_in_parallel();
    dnnl_status_t st;
    {
      const MaxThreadsScope threads(alone ? 1 : omp_get_max_threads());
      st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    if (st == dnnl_success) return;
  }
#endif
#ifdef SSMKIT_HAVE_CBLAS
  detail::select_blas_kernels();
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
  detail::select_blas_kernels();
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
#else
  gemm_eigen<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

namespace detail {

// For linear_forward (ops/linear.cpp): C (M,N) = A op(B) + bias in every row through the tile kernel, the bias
// starting the accumulators instead of being written into C first, or through oneDNN's matmul with the bias in
// its epilogue. False (nothing done) for products neither takes.
bool gemm_bias_rows(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                    int64_t ldb, const float* bias, float* C, int64_t ldc) {
  check_args(ta, tb, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0 || K == 0) return false;
  if (use_tiles(M, N, K, 1.0f, 0.0f)) {
    gemm_tiles(ta, tb, M, N, K, A, lda, B, ldb, false, bias, C, ldc);
    return true;
  }
#ifdef SSMKIT_HAVE_ONEDNN
  // the products gemm() would give oneDNN's sgemm, with the bias in oneDNN's epilogue
  if (onednn_takes(ta, M, N)) return onednn_matmul_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc);
#endif
  return false;
}

}  // namespace detail

std::string gemm_backend() {
#ifdef SSMKIT_HAVE_ONEDNN
  const dnnl_version_t* v = dnnl_version();
  const std::string dnnl = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                           std::to_string(v->patch) + " sgemm for float, then ";
#else
  const std::string dnnl;
#endif
#ifdef SSMKIT_HAVE_CBLAS
  const std::string& note = detail::blas_kernel_note();
  return dnnl + std::string(openblas_get_config()) + " (core " + openblas_get_corename() + ")" +
         (note.empty() ? "" : "; " + note);
#else
  return dnnl + "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION);
#endif
}

}  // namespace ssmkit::core
