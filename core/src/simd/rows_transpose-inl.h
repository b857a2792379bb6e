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
  // Written out: at -O2 GCC does not unroll loops over small arrays of vectors, and r[8], t[8] then live on
  // the stack (a store and a reload per shuffle).
  const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + src_stride);
  const __m256 r2 = _mm256_loadu_ps(src + 2 * src_stride), r3 = _mm256_loadu_ps(src + 3 * src_stride);
  const __m256 r4 = _mm256_loadu_ps(src + 4 * src_stride), r5 = _mm256_loadu_ps(src + 5 * src_stride);
  const __m256 r6 = _mm256_loadu_ps(src + 6 * src_stride), r7 = _mm256_loadu_ps(src + 7 * src_stride);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + dst_stride, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * dst_stride, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * dst_stride, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * dst_stride, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * dst_stride, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * dst_stride, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * dst_stride, _mm256_permute2f128_ps(s3, s7, 0x31));
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
