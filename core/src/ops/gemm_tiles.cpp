// The register-tile float kernel behind gemm() for skinny products (see use_tiles in gemm.cpp), written with
// Highway and compiled once per SIMD target (AVX-512, AVX2, portable), dispatched like the other kernels: the
// path in use is simd_target()'s, so simd_force_target() runs each width in tests. Tiles of 6 rows x 2W
// columns of C in W-float registers (W 16 on AVX-512, 8 on AVX2) over K blocks of 256, one broadcast of A per
// row and two loads of B per step, fused multiply-adds. Every output sums its K products in the same order at
// every width, so the FMA targets give the same bits.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/gemm_tiles.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cstdint>

#include "hwy/highway.h"
#include "ops/gemm_tiles.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int64_t kTileKc = 256;  // K block: a two-vector column panel of B (16-32 KB on AVX2 / AVX-512) stays in L1

// C[0..MR) x [0..W NV) = (add ? C : bias or 0) + A[0..MR) x [0..K) . B[0..K) x [0..W NV),
// A(i,k) = a[i*a_rs + k*a_cs]; bias (W NV) is added to every row (null: none)
template <int MR, int NV>
HWY_INLINE void tile(float* HWY_RESTRICT c, int64_t ldc, const float* HWY_RESTRICT a, int64_t a_rs, int64_t a_cs,
                     const float* HWY_RESTRICT b, int64_t ldb, int64_t K, bool add, const float* HWY_RESTRICT bias) {
  const DF d;
  const int64_t W = static_cast<int64_t>(hn::Lanes(d));
  VF acc[MR][NV];
  VF init[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) init[v] = bias ? hn::LoadU(d, bias + W * v) : hn::Zero(d);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = init[v];
  for (int64_t k = 0; k < K; ++k) {
    VF bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = hn::LoadU(d, b + k * ldb + W * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const VF av = hn::Set(d, a[i * a_rs + k * a_cs]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = hn::MulAdd(av, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* ci = c + i * ldc + W * v;
      hn::StoreU(add ? hn::Add(acc[i][v], hn::LoadU(d, ci)) : acc[i][v], d, ci);
    }
}

// Rows [0, M) of one column panel W NV wide, one K block.
template <int NV>
HWY_INLINE void panel(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb,
                      int64_t M, int64_t K, bool add, const float* bias) {
  int64_t i = 0;
  for (; i + 6 <= M; i += 6) tile<6, NV>(c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, add, bias);
  switch (M - i) {
    case 5: tile<5, NV>(c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, add, bias); break;
    case 4: tile<4, NV>(c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, add, bias); break;
    case 3: tile<3, NV>(c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, add, bias); break;
    case 2: tile<2, NV>(c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, add, bias); break;
    case 1: tile<1, NV>(c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, add, bias); break;
    default: break;
  }
}

// C (M,N) = (beta ? C : bias rows or 0) + A B, A(i,k) = a[i*a_rs + k*a_cs], B (K,N) row-major, bias (N) or
// null. Panels of 2W then W columns; the last N % W columns go through a zero-padded copy of B and a staging
// tile on the stack.
void TileGemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
              int64_t ldb, bool beta, const float* bias, float* c, int64_t ldc) {
  constexpr int64_t W = static_cast<int64_t>(hn::MaxLanes(DF()));
  const int64_t n2w = N / (2 * W) * (2 * W), nw = N / W * W;
  for (int64_t k0 = 0; k0 < K; k0 += kTileKc) {
    const int64_t kc = std::min(kTileKc, K - k0);
    const bool add = beta || k0 > 0;
    const float* bias0 = add ? nullptr : bias;  // the bias starts the first K block
    const float* ak = a + k0 * a_cs;
    const float* bk = b + k0 * ldb;
    for (int64_t j = 0; j < n2w; j += 2 * W)
      panel<2>(c + j, ldc, ak, a_rs, a_cs, bk + j, ldb, M, kc, add, bias0 ? bias0 + j : nullptr);
    if (nw > n2w) panel<1>(c + n2w, ldc, ak, a_rs, a_cs, bk + n2w, ldb, M, kc, add, bias0 ? bias0 + n2w : nullptr);
    if (N > nw) {
      const int64_t nt = N - nw;
      HWY_ALIGN float bt[kTileKc * W];
      HWY_ALIGN float ct[6 * W];
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = 0; j < W; ++j) bt[k * W + j] = j < nt ? bk[k * ldb + nw + j] : 0.0f;
      for (int64_t i = 0; i < M; i += 6) {
        const int64_t mr = std::min<int64_t>(6, M - i);
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t j = 0; j < W; ++j)
            ct[r * W + j] = j >= nt ? 0.0f : add ? c[(i + r) * ldc + nw + j] : bias0 ? bias0[nw + j] : 0.0f;
        panel<1>(ct, W, ak + i * a_rs, a_rs, a_cs, bt, W, mr, kc, true, nullptr);
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t j = 0; j < nt; ++j) c[(i + r) * ldc + nw + j] = ct[r * W + j];
      }
    }
  }
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssmkit::core::detail {

HWY_EXPORT(TileGemm);

void tile_gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
               int64_t ldb, bool beta, const float* bias, float* c, int64_t ldc) {
  HWY_DYNAMIC_DISPATCH(TileGemm)(M, N, K, a, a_rs, a_cs, b, ldb, beta, bias, c, ldc);
}

}  // namespace ssmkit::core::detail
#endif  // HWY_ONCE
