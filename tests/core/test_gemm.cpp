// gemm() (ops/gemm.h) on the shapes its two float paths take: the register-tile kernel for skinny products
// (every transpose combination, row and column tails of each size, K past one block, padded leading
// dimensions, beta 0 with garbage in C, rows split over threads; the linear layer's bias starting its
// accumulators; oneDNN's matmul with the bias for the wide ones) and the BLAS for the rest, each against a double-precision loop; double inputs; degenerate
// sizes; leading dimensions too small.
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <strings.h>
#include <limits>
#include <omp.h>

#include "gradcheck.h"
#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/ops/linear.h"
#include "ssmkit/core/ops/vec_math.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;

namespace {

std::vector<float> values(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = seed * 2654435761u + 1;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) / 16777216.0f * 2.0f - 1.0f;
  }
  return v;
}

// max |C - (beta C0 + op(A) op(B))| over the M x N block, relative to the row's scale sum |a||b|
double check(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float beta, int64_t pad) {
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const std::vector<float> A = values((ta ? K : M) * lda, 1), B = values((tb ? N : K) * ldb, 2);
  std::vector<float> C0 = values(M * ldc, 3);
  if (beta == 0.0f)
    for (float& c : C0) c = std::numeric_limits<float>::quiet_NaN();  // must not be read
  std::vector<float> C = C0;
  gemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = beta == 0.0f ? 0.0 : static_cast<double>(C0[static_cast<size_t>(i * ldc + j)]), scale = 1;
      for (int64_t k = 0; k < K; ++k) {
        const double a = A[static_cast<size_t>(ta ? k * lda + i : i * lda + k)];
        const double b = B[static_cast<size_t>(tb ? j * ldb + k : k * ldb + j)];
        s += a * b;
        scale += std::abs(a * b);
      }
      worst = std::max(worst, std::abs(C[static_cast<size_t>(i * ldc + j)] - s) / scale);
    }
  if (pad > 0)  // columns past N untouched
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = N; j < ldc; ++j) {
        const float c = C[static_cast<size_t>(i * ldc + j)], c0 = C0[static_cast<size_t>(i * ldc + j)];
        EXPECT_TRUE(c == c0 || (std::isnan(c) && std::isnan(c0))) << "column " << j << " past N = " << N << " written";
      }
  return worst;
}

}  // namespace

TEST(Gemm, FloatTilePathAgainstDoubleLoops) {
  // N from 8 (one 8-wide panel) through 16-wide panels and every tail; M (>= 64, below which the BLAS takes
  // the product) every tile tail; K over one block (K 300 with N 49 is past the deep-B cap: the BLAS)
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t N : {8, 13, 16, 24, 33, 49})
        for (int64_t M : {64, 65, 67, 69, 71})
          for (int64_t K : {1, 9, 300})
            for (float beta : {0.0f, 1.0f})
              EXPECT_LT(check(ta, tb, M, N, K, beta, N % 2), 2e-6)
                  << "ta " << ta << " tb " << tb << " M " << M << " N " << N << " K " << K << " beta " << beta;
}

// The tile kernel at each SIMD path's width (16 floats on AVX-512, 8 on AVX2) gives the same bits: every output
// sums its K products in one order with fused multiply-adds. The portable path (one float, no FMA in the
// baseline ISA) rounds each product separately, so it agrees to rounding only. Shapes cover 2W, W and staged tail
// panels of both widths and K past one block, all under the tile kernel's caps (B at most 12 k floats when K > 64),
// with beta 1 and a transposed B.
TEST(Gemm, TileKernelWidthsAgree) {
  const std::vector<std::string> targets = simd_targets_available();
  for (int64_t K : {9, 150, 260})
    for (int64_t N : {8, 13, 16, 24, 32, 40, 47, 64}) {
      if (K > 64 && N * K > 12288) continue;
      const int64_t M = 67;
      const std::vector<float> a = values(M * K, 21), b = values(K * N, 22), c0 = values(M * N, 23);
      std::vector<float> want;
      for (const std::string& target : targets) {
        simd_force_target(target);
        std::vector<float> c = c0;
        gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 1.0f, c.data(), N);
        gemm(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 1.0f, c.data(), N);  // B read as (N,K)
        if (want.empty()) {
          want = c;
        } else if (target != "SCALAR" && target != "EMU128") {
          EXPECT_EQ(0, std::memcmp(c.data(), want.data(), c.size() * sizeof(float)))
              << target << " differs from " << targets.front() << ", N " << N << " K " << K;
        } else {
          for (size_t i = 0; i < c.size(); ++i)
            ASSERT_NEAR(c[i], want[i], 1e-5f * (2 * K + 1)) << target << ", N " << N << " K " << K << " at " << i;
        }
      }
      simd_force_target("");
    }
}

TEST(Gemm, FloatRowsOverThreadsAndBlasPath) {
  const int keep = omp_get_max_threads();
  for (int nth : {1, 2, 3}) {
    omp_set_num_threads(nth);
    EXPECT_LT(check(false, false, 1000, 16, 144, 0.0f, 0), 2e-6) << nth << " threads";  // tile kernel, threaded
    EXPECT_LT(check(true, false, 144, 32, 300, 1.0f, 3), 2e-6) << nth << " threads";  // tile kernel, A^T
    EXPECT_LT(check(false, false, 128, 24, 64, 1.0f, 2), 2e-6) << nth << " threads";  // 22 panels over the threads
    EXPECT_LT(check(false, false, 67, 200, 16, 0.0f, 0), 2e-6) << nth << " threads";  // last panel partial
    EXPECT_LT(check(true, false, 144, 32, 700, 1.0f, 3), 2e-6) << nth << " threads";  // deep: the BLAS
    EXPECT_LT(check(false, true, 70, 300, 400, 1.0f, 1), 2e-6) << nth << " threads";   // B too large: the BLAS
    EXPECT_LT(check(false, false, 50, 5, 20, 0.0f, 0), 2e-6) << nth << " threads";     // N < 8: the BLAS
    EXPECT_LT(check(false, true, 11, 256, 64, 0.0f, 0), 2e-6) << nth << " threads";    // M < 64: the BLAS
  }
  omp_set_num_threads(keep);
  // alpha other than 1 and beta other than 0 or 1 take the BLAS too
  std::vector<float> A = values(6 * 4, 4), B = values(4 * 8, 5), C(6 * 8, 1.0f), R(6 * 8);
  gemm(false, false, 6, 8, 4, 2.0f, A.data(), 4, B.data(), 8, 0.5f, C.data(), 8);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 8; ++j) {
      double s = 0.5;
      for (int64_t k = 0; k < 4; ++k) s += 2.0 * A[static_cast<size_t>(i * 4 + k)] * B[static_cast<size_t>(k * 8 + j)];
      EXPECT_NEAR(C[static_cast<size_t>(i * 8 + j)], s, 1e-5);
    }
}

// Inside a parallel region a product runs on its calling thread alone, with the bits of a one-thread call
// outside (data-parallel shards depend on it: K shards give the same result on one thread as on K). Shapes of
// the BLAS / oneDNN path (S-Mamba's in_proj, a transposed weight) and of the tile kernel.
TEST(Gemm, InsideAParallelRegionLikeOneThread) {
  struct Shape3 { bool tb; int64_t M, N, K; };
  const int keep = omp_get_max_threads();
  for (const Shape3& sh : {Shape3{true, 176, 512, 256}, Shape3{false, 300, 300, 300}, Shape3{false, 1000, 16, 144}}) {
    const std::vector<float> a = values(sh.M * sh.K, 31), b = values(sh.K * sh.N, 32);
    const int64_t ldb = sh.tb ? sh.K : sh.N;
    omp_set_num_threads(1);
    std::vector<float> want(static_cast<size_t>(sh.M * sh.N));
    gemm(false, sh.tb, sh.M, sh.N, sh.K, 1.0f, a.data(), sh.K, b.data(), ldb, 0.0f, want.data(), sh.N);
    omp_set_num_threads(std::max(2, keep));
    std::vector<std::vector<float>> got(2, std::vector<float>(want.size()));
#pragma omp parallel for num_threads(2) schedule(static)
    for (int t = 0; t < 2; ++t)
      gemm(false, sh.tb, sh.M, sh.N, sh.K, 1.0f, a.data(), sh.K, b.data(), ldb, 0.0f, got[t].data(), sh.N);
    for (int t = 0; t < 2; ++t)
      EXPECT_EQ(0, std::memcmp(got[t].data(), want.data(), want.size() * sizeof(float)))
          << "M " << sh.M << " N " << sh.N << " K " << sh.K << ": call " << t << " inside a parallel region";
  }
  omp_set_num_threads(keep);
}

TEST(Gemm, HandComputedDoubleAndDegenerateSizes) {
  const double A[] = {1, 2, 3, 4}, B[] = {5, 6, 7, 8};
  double C[4];
  gemm(false, false, 2, 2, 2, 1.0, A, 2, B, 2, 0.0, C, 2);
  EXPECT_EQ(std::vector<double>(C, C + 4), (std::vector<double>{19, 22, 43, 50}));
  gemm(true, true, 2, 2, 2, 1.0, A, 2, B, 2, 0.0, C, 2);  // A^T B^T
  EXPECT_EQ(std::vector<double>(C, C + 4), (std::vector<double>{23, 31, 34, 46}));
  // K == 0: C = beta C; M or N == 0: nothing
  float c[2] = {3, 4};
  gemm(false, false, 1, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c, 2);
  EXPECT_EQ(c[0], 1.5f);
  EXPECT_EQ(c[1], 2.0f);
  gemm(false, false, 0, 2, 3, 1.0f, nullptr, 3, nullptr, 2, 0.0f, c, 2);
  EXPECT_EQ(c[0], 1.5f);
  expect_error([&] { gemm(false, false, 2, 8, 4, 1.0f, nullptr, 3, nullptr, 8, 0.0f, c, 8); }, "leading dimensions");
}

TEST(Gemm, LinearForwardBiasInTheTileKernel) {
  // F32 linear_forward with bias (the bias starts the tile kernel's accumulators) against F64; column tails
  // (O % 8), K over one block, rows over threads
  for (const auto& [rows, I, O] : std::vector<std::array<int64_t, 3>>{{70, 5, 13}, {300, 300, 24}, {64, 32, 128}}) {
    const Tensor x = ssmkit::test::random_tensor({rows, I}, 1), W = ssmkit::test::random_tensor({O, I}, 2);
    const Tensor b = ssmkit::test::random_tensor({O}, 3);
    Tensor y64, y32;
    linear_forward(y64, x, W, b);
    linear_forward(y32, x.to(DType::F32), W.to(DType::F32), b.to(DType::F32));
    EXPECT_LT(max_abs_diff(y32, y64), 2e-5 * std::sqrt(static_cast<double>(I))) << rows << "x" << I << "->" << O;
  }
}

// Products the tile kernel does not take (wide or deep: GroupMamba's FFN, S-Mamba's projections) run with the
// bias in one pass where oneDNN is built in (ops/matmul_onednn.cpp), else bias rows + gemm with beta 1: both
// against F64, at 1 and 2 threads, and inside a parallel region with the bits of a one-thread call outside (as
// data-parallel shards need).
TEST(Gemm, LinearForwardBiasOnTheWideProducts) {
  const int keep = omp_get_max_threads();
  for (const auto& [rows, I, O] :
       std::vector<std::array<int64_t, 3>>{{2100, 80, 256}, {300, 300, 300}, {49, 448, 1792}, {7, 96, 200}}) {
    const Tensor x = ssmkit::test::random_tensor({rows, I}, 4), W = ssmkit::test::random_tensor({O, I}, 5);
    const Tensor b = ssmkit::test::random_tensor({O}, 6);
    const Tensor x32 = x.to(DType::F32), W32 = W.to(DType::F32), b32 = b.to(DType::F32);
    Tensor y64;
    linear_forward(y64, x, W, b);
    Tensor one;
    for (int nth : {1, 2}) {
      omp_set_num_threads(nth);
      Tensor y32;
      linear_forward(y32, x32, W32, b32);
      EXPECT_LT(max_abs_diff(y32, y64), 2e-5 * std::sqrt(static_cast<double>(I)))
          << rows << "x" << I << "->" << O << ", " << nth << " threads";
      if (nth == 1) one = y32;
    }
    omp_set_num_threads(2);
    std::vector<Tensor> got(2);
#pragma omp parallel for num_threads(2) schedule(static)
    for (int t = 0; t < 2; ++t) linear_forward(got[static_cast<size_t>(t)], x32, W32, b32);
    for (const Tensor& g : got)
      EXPECT_EQ(0, std::memcmp(g.data<float>(), one.data<float>(), static_cast<size_t>(one.numel()) * sizeof(float)))
          << rows << "x" << I << "->" << O << ": inside a parallel region, not the bits of one thread";
  }
  omp_set_num_threads(keep);
}

// The BLAS kernels match the CPU: an OpenBLAS that did not recognise the CPU (Debian 12's 0.3.21 chooses its
// SSE3 "Prescott" kernels on Emerald Rapids) runs with the AVX-512 / AVX2 kernels the CPU can run, unless the
// user forced a core with OPENBLAS_CORETYPE. The core name is read back from gemm_backend().
TEST(Gemm, BlasKernelsUseTheCpusVectorWidth) {
  const std::string backend = gemm_backend();
  if (backend.find("OpenBLAS") == std::string::npos || backend.find("DYNAMIC_ARCH") == std::string::npos ||
      std::getenv("OPENBLAS_CORETYPE") != nullptr)
    GTEST_SKIP() << "not an OpenBLAS choosing its kernels at run time: " << backend;
  const size_t at = backend.find("(core ");
  ASSERT_NE(at, std::string::npos) << backend;
  const std::string core = backend.substr(at + 6, backend.find(')', at) - at - 6);
  auto is_one_of = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (strcasecmp(core.c_str(), n) == 0) return true;
    return false;
  };
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512) {
    EXPECT_TRUE(is_one_of({"SkylakeX", "Cooperlake", "SapphireRapids"})) << backend;
  } else if (avx2) {
    EXPECT_TRUE(is_one_of({"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"})) << backend;
  }
  // A product through the BLAS stays right after the switch: a double one (floats beyond the tile kernel's
  // sizes go to oneDNN where it is built in, doubles always to the BLAS), and a float one.
  const int64_t M = 70, N = 300, K = 300;
  const std::vector<float> a = values(M * K, 11), b = values(K * N, 12);
  const std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end());
  std::vector<float> c(static_cast<size_t>(M * N));
  std::vector<double> cd(c.size());
  gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
  gemm(false, false, M, N, K, 1.0, ad.data(), K, bd.data(), N, 0.0, cd.data(), N);
  double worst = 0, worst_d = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double ref = 0;
      for (int64_t k = 0; k < K; ++k) ref += ad[i * K + k] * bd[k * N + j];
      worst = std::max(worst, std::abs(ref - c[i * N + j]));
      worst_d = std::max(worst_d, std::abs(ref - cd[i * N + j]));
    }
  EXPECT_LT(worst, 1e-4);
  EXPECT_LT(worst_d, 1e-9);
}
