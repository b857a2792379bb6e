// Channel rows <-> time-major tiles for Highway kernels that vectorize across channels (private; include
// after "hwy/highway.h" in a file compiled once per target through hwy/foreach_target.h). Per-target
// include guard as Highway's own -inl headers. Used by the selective scan and the S4D recurrence.
//   gather_rows   (nc,L) rows -> (L,V) tile, lanes past nc zero
//   scatter_rows  (L,V) tile -> (nc,L) rows, written or added
#if defined(SSMKIT_SIMD_ROWS_TRANSPOSE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SSMKIT_SIMD_ROWS_TRANSPOSE_INL_H_
#undef SSMKIT_SIMD_ROWS_TRANSPOSE_INL_H_
#else
#define SSMKIT_SIMD_ROWS_TRANSPOSE_INL_H_
#endif

#include <algorithm>
#include <cstdint>

#include "hwy/highway.h"
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
// dst[c * dst_stride + r] = src[r * src_stride + c] for an 8 x 8 tile (AVX2 shuffles).
HWY_INLINE void transpose8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m256 r[8], t[8];
  for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(src + k * src_stride);
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    r[k] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(dst + k * dst_stride, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(dst + (k + 4) * dst_stride, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}
constexpr bool kHaveTranspose8 = true;
#else
HWY_INLINE void transpose8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}
constexpr bool kHaveTranspose8 = false;
#endif

// outT (L,V): outT[l V + i] = rows[i L + l] for the nc valid rows, zero in the other lanes. Whole 8 x 8
// tiles go through SIMD transposes.
HWY_INLINE void gather_rows(const float* rows, int64_t nc, int64_t L, int64_t V, float* outT) {
  if (nc < V) std::fill(outT, outT + L * V, 0.0f);
  int64_t i0 = 0;
  if (kHaveTranspose8)
    for (; i0 + 8 <= nc; i0 += 8) {
      int64_t l = 0;
      for (; l + 8 <= L; l += 8) transpose8x8(rows + i0 * L + l, L, outT + l * V + i0, V);
      for (; l < L; ++l)
        for (int64_t i = i0; i < i0 + 8; ++i) outT[l * V + i] = rows[i * L + l];
    }
  for (int64_t i = i0; i < nc; ++i) {
    const float* r = rows + i * L;
    for (int64_t l = 0; l < L; ++l) outT[l * V + i] = r[l];
  }
}

// rows[i L + l] (+)= inT[l V + i] for the nc valid rows.
template <bool kAdd>
HWY_INLINE void scatter_rows(const float* inT, int64_t nc, int64_t L, int64_t V, float* rows) {
  int64_t i0 = 0;
  if (kHaveTranspose8) {
    HWY_ALIGN float tile[64];
    for (; i0 + 8 <= nc; i0 += 8) {
      int64_t l = 0;
      for (; l + 8 <= L; l += 8) {
        if (!kAdd) {
          transpose8x8(inT + l * V + i0, V, rows + i0 * L + l, L);
          continue;
        }
        transpose8x8(inT + l * V + i0, V, tile, 8);
        for (int64_t i = 0; i < 8; ++i)
          for (int64_t k = 0; k < 8; ++k) rows[(i0 + i) * L + l + k] += tile[i * 8 + k];
      }
      for (; l < L; ++l)
        for (int64_t i = i0; i < i0 + 8; ++i) rows[i * L + l] = kAdd ? rows[i * L + l] + inT[l * V + i] : inT[l * V + i];
    }
  }
  for (int64_t i = i0; i < nc; ++i) {
    float* r = rows + i * L;
    for (int64_t l = 0; l < L; ++l) r[l] = kAdd ? r[l] + inT[l * V + i] : inT[l * V + i];
  }
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // SSMKIT_SIMD_ROWS_TRANSPOSE_INL_H_
