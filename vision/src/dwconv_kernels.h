// Private: the depthwise 3x3 (padding 1) kernels on channels-last maps with row strides, shared by ops.cpp
// (DWConv of PVT2FFN) and vsss.cpp (the VSSS groups' conv2d, whose input is the x half of in_proj's output).
// Float path: the rows a kernel reads are first copied into padded scratch rows: a zero column on each side
// (every position then takes all nine taps, no edge cases) and a channel stride Cp that is not a multiple of
// 128 bytes. With the maps' own stride (C = 128, 512, 1024 floats) the same channel of neighbouring positions
// falls into one or two cache sets and the loops below thrash; the copy costs one pass over the input. Taps
// are tap-major (9, Cp). Forward / dx: channels innermost, 4 positions per step sharing each tap load (the
// output row stays in cache). dw / db: per block of 8 channels the ten sums stay in registers over a chunk of
// rows. 8-float vectors (GCC/Clang vector extension; multi-versioned, simd_clones.h, fused multiply-adds).
// Double (the tests' gradient checks) takes plain loops. OpenMP loops stay in plain functions (an outlined
// parallel region would not inherit a clone's target).
// Threads: output rows (forward, dx); fixed chunks of rows for dw and db, each with its own partial sums,
// added in chunk order: deterministic for any thread count.
// Layout: x (B,H,W,C) with element (b,h,w,c) at ((b*H + h)*W + w)*ld + c; w (C,1,3,3); bias (C) or null.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ssmkit/core/simd_clones.h"

namespace ssmkit::vision::detail {

constexpr int64_t kDwParallelMin = 1 << 14;  // elements; smaller loops stay on one thread
constexpr int64_t kDwChunkElems = 1 << 14;   // about this many elements of rows per weight-gradient chunk

typedef float dw_v8f __attribute__((vector_size(32)));  // 8 floats in a register
// the same through a pointer to any float: unaligned, aliasing floats (loads and stores in place)
typedef float dw_v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define SSMKIT_DW_V8(p) (*reinterpret_cast<dw_v8u*>(p))
#define SSMKIT_DW_CV8(p) (*reinterpret_cast<const dw_v8u*>(p))

// The padded channel stride: C rounded up to 8, plus 8 when that is a multiple of 32 floats (128 bytes).
inline int64_t dw_padded(int64_t C) {
  const int64_t c8 = (C + 7) / 8 * 8;
  return c8 % 32 == 0 ? c8 + 8 : c8;
}

// w (C,1,3,3) -> (9,ld), zero past C; rotate: the 180-degree turned kernel (tap k reads w[8 - k]), for dx
template <class T>
std::vector<T> dw_taps(const T* w, int64_t C, int64_t ld, bool rotate) {
  std::vector<T> wt(static_cast<size_t>(9 * ld), T(0));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < 9; ++k) wt[static_cast<size_t>(k * ld + c)] = w[c * 9 + (rotate ? 8 - k : k)];
  return wt;
}

// ---------------------------------------------------------------------------------------------------------
// Double: plain loops over the unpadded map (rows outside it are null)

template <class T>
void dw_rows_plain(T* y, int64_t ldy, const T* x, int64_t ldx, const T* taps, const T* bias, int64_t H, int64_t W,
                   int64_t C, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t h = r % H;
    const T* rows[3] = {h > 0 ? x + (r - 1) * W * ldx : nullptr, x + r * W * ldx,
                        h + 1 < H ? x + (r + 1) * W * ldx : nullptr};
    for (int64_t w = 0; w < W; ++w)
      for (int64_t c = 0; c < C; ++c) {
        T acc = bias ? bias[c] : T(0);
        for (int64_t kh = 0; kh < 3; ++kh)
          for (int64_t kw = 0; kw < 3; ++kw) {
            const int64_t ww = w + kw - 1;
            if (rows[kh] && ww >= 0 && ww < W) acc += taps[(kh * 3 + kw) * C + c] * rows[kh][ww * ldx + c];
          }
        y[(r * W + w) * ldy + c] = acc;
      }
  }
}

template <class T>
void dw_rows_weight_plain(T* acc, const T* g, int64_t ldy, const T* x, int64_t ldx, int64_t H, int64_t W, int64_t C,
                          int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t h = r % H;
    const T* rows[3] = {h > 0 ? x + (r - 1) * W * ldx : nullptr, x + r * W * ldx,
                        h + 1 < H ? x + (r + 1) * W * ldx : nullptr};
    for (int64_t w = 0; w < W; ++w)
      for (int64_t c = 0; c < C; ++c) {
        const T gv = g[(r * W + w) * ldy + c];
        acc[9 * C + c] += gv;
        for (int64_t kh = 0; kh < 3; ++kh)
          for (int64_t kw = 0; kw < 3; ++kw) {
            const int64_t ww = w + kw - 1;
            if (rows[kh] && ww >= 0 && ww < W) acc[(kh * 3 + kw) * C + c] += gv * rows[kh][ww * ldx + c];
          }
      }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Float: padded rows

// dst ((W+2) x Cp): row rr of x (rr < 0: zeros) with a zero column on each side and zeros past C.
SSMKIT_SIMD_CLONES __attribute__((optimize("no-tree-loop-distribute-patterns"))) static void dw_pad_row(
    float* __restrict dst, const float* __restrict x, int64_t ldx, int64_t rr, int64_t W, int64_t C, int64_t Cp) {
  if (rr < 0) {
    for (int64_t i = 0; i < (W + 2) * Cp; ++i) dst[i] = 0.0f;
    return;
  }
  for (int64_t i = 0; i < Cp; ++i) dst[i] = dst[(W + 1) * Cp + i] = 0.0f;
  const float* src = x + rr * W * ldx;
  for (int64_t w = 0; w < W; ++w) {
    float* d = dst + (w + 1) * Cp;
    const float* s = src + w * ldx;
    for (int64_t c = 0; c < C; ++c) d[c] = s[c];
    for (int64_t c = C; c < Cp; ++c) d[c] = 0.0f;
  }
}

// One output row from three padded input rows q0..q2: y[w][c] = bias + sum taps[kh][kw] q_kh[w + kw][c],
// 4 positions per step, channels innermost; bias is padded to Cp too. The last partial channel block is
// computed in full (zeros past C in the rows, taps and bias) and only its first C % 8 values stored.
SSMKIT_SIMD_CLONES __attribute__((optimize("fp-contract=fast"))) static void dw_out_row(
    float* y, int64_t ldy, const float* q0, const float* q1, const float* q2, const float* taps, const float* bias,
    int64_t W, int64_t C, int64_t Cp) {
  const float* q[3] = {q0, q1, q2};
  const int64_t C8 = C / 8 * 8;
  int64_t w = 0;
  for (; w + 4 <= W; w += 4)
    for (int64_t c = 0; c < Cp; c += 8) {
      dw_v8f a0 = SSMKIT_DW_CV8(bias + c), a1 = a0, a2 = a0, a3 = a0;
#pragma GCC unroll 3
      for (int kh = 0; kh < 3; ++kh) {
        const float* p = q[kh] + w * Cp + c;
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) {
          const dw_v8f t = SSMKIT_DW_CV8(taps + (kh * 3 + kw) * Cp + c);
          a0 += t * SSMKIT_DW_CV8(p + kw * Cp);
          a1 += t * SSMKIT_DW_CV8(p + (kw + 1) * Cp);
          a2 += t * SSMKIT_DW_CV8(p + (kw + 2) * Cp);
          a3 += t * SSMKIT_DW_CV8(p + (kw + 3) * Cp);
        }
      }
      if (c < C8) {
        SSMKIT_DW_V8(y + w * ldy + c) = a0;
        SSMKIT_DW_V8(y + (w + 1) * ldy + c) = a1;
        SSMKIT_DW_V8(y + (w + 2) * ldy + c) = a2;
        SSMKIT_DW_V8(y + (w + 3) * ldy + c) = a3;
      } else if (c < C) {
        const dw_v8f a[4] = {a0, a1, a2, a3};
        for (int j = 0; j < 4; ++j) std::memcpy(y + (w + j) * ldy + c, &a[j], sizeof(float) * (C - c));
      }
    }
  for (; w < W; ++w)
    for (int64_t c = 0; c < Cp; c += 8) {
      dw_v8f a = SSMKIT_DW_CV8(bias + c);
#pragma GCC unroll 3
      for (int kh = 0; kh < 3; ++kh) {
        const float* p = q[kh] + w * Cp + c;
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) a += SSMKIT_DW_CV8(taps + (kh * 3 + kw) * Cp + c) * SSMKIT_DW_CV8(p + kw * Cp);
      }
      if (c < C8)
        SSMKIT_DW_V8(y + w * ldy + c) = a;
      else if (c < C)
        std::memcpy(y + w * ldy + c, &a, sizeof(float) * (C - c));
    }
}

// Output rows [r0, r1) of the (B*H) rows, keeping the three input rows they need in a rolling set of padded
// rows (scratch: 4 (W+2) Cp floats; one new row per step inside an image).
inline void dw_rows_f32(float* y, int64_t ldy, const float* x, int64_t ldx, const float* taps, const float* bias,
                        int64_t H, int64_t W, int64_t C, int64_t Cp, int64_t r0, int64_t r1, float* scratch) {
  const int64_t rowlen = (W + 2) * Cp;
  float* zero = scratch + 3 * rowlen;
  dw_pad_row(zero, x, ldx, -1, W, C, Cp);
  int64_t tag[3] = {-2, -2, -2};  // the input row each slot holds (-2: none; rows needed are >= 0 or -1 = zeros)
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t h = r % H;
    const int64_t need[3] = {h > 0 ? r - 1 : -1, r, h + 1 < H ? r + 1 : -1};
    const float* q[3];
    for (int k = 0; k < 3; ++k) {
      if (need[k] < 0) {
        q[k] = zero;
        continue;
      }
      int s = -1;
      for (int t = 0; t < 3; ++t)
        if (tag[t] == need[k]) s = t;
      if (s < 0) {  // load into a slot no row of this step needs (there is one: at most two are needed)
        for (int t = 0; t < 3 && s < 0; ++t)
          if (tag[t] < 0 || (tag[t] != need[0] && tag[t] != need[1] && tag[t] != need[2])) s = t;
        dw_pad_row(scratch + s * rowlen, x, ldx, need[k], W, C, Cp);
        tag[s] = need[k];
      }
      q[k] = scratch + s * rowlen;
    }
    dw_out_row(y + r * W * ldy, ldy, q[0], q[1], q[2], taps, bias, W, C, Cp);
  }
}

// y = conv(x, taps) + bias over all rows; each thread takes a contiguous range of the B*H rows.
template <class T>
void dw_apply(T* y, int64_t ldy, const T* x, int64_t ldx, const T* w, const T* bias, bool rotate, int64_t B, int64_t H,
              int64_t W, int64_t C, bool parallel) {
  const int64_t nrows = B * H;
  const bool f32 = sizeof(T) == sizeof(float);
  const int64_t Cp = f32 ? dw_padded(C) : C;
  const std::vector<T> taps = dw_taps(w, C, Cp, rotate);
  std::vector<T> bias_p(static_cast<size_t>(Cp), T(0));  // zeros without a bias
  if (bias) std::copy(bias, bias + C, bias_p.begin());
#pragma omp parallel if (parallel && B * H * W * C > kDwParallelMin)
  {
    int nth = 1, ith = 0;
#ifdef _OPENMP
    nth = omp_get_num_threads();
    ith = omp_get_thread_num();
#endif
    const int64_t r0 = nrows * ith / nth, r1 = nrows * (ith + 1) / nth;
    if constexpr (sizeof(T) == sizeof(float)) {
      std::vector<float> scratch(static_cast<size_t>(4 * (W + 2) * Cp));
      dw_rows_f32(y, ldy, x, ldx, taps.data(), bias_p.data(), H, W, C, Cp, r0, r1, scratch.data());
    } else {
      dw_rows_plain(y, ldy, x, ldx, taps.data(), bias, H, W, C, r0, r1);
    }
  }
}

// y = bias + sum over taps of w * x(shifted).  x row stride ldx, y row stride ldy.
template <class T>
void dw_forward(T* y, int64_t ldy, const T* x, int64_t ldx, const T* w, const T* bias, int64_t B, int64_t H,
                int64_t W, int64_t C, bool parallel = true) {
  dw_apply(y, ldy, x, ldx, w, bias, false, B, H, W, C, parallel);
}

// dx = correlation of dy with the 180-degree turned kernel (written).  dy row stride ldy, dx row stride ldx.
template <class T>
void dw_backward_input(T* dx, int64_t ldx, const T* dy, int64_t ldy, const T* w, int64_t B, int64_t H, int64_t W,
                       int64_t C, bool parallel = true) {
  dw_apply(dx, ldx, dy, ldy, w, static_cast<const T*>(nullptr), true, B, H, W, C, parallel);
}

// acc (10, Cp) += sums over `n` output rows given as padded rows: gp[i] (W x Cp, gradient) and xp[i][0..3)
// ((W+2) x Cp, the input rows above, at, below). Per block of 8 channels the ten sums stay in registers.
SSMKIT_SIMD_CLONES __attribute__((optimize("fp-contract=fast"))) static void dw_weight_rows_f32(
    float* acc, const float* const* gp, const std::array<const float*, 3>* xp, int64_t n, int64_t W, int64_t Cp) {
  for (int64_t c = 0; c < Cp; c += 8) {
    dw_v8f a0 = SSMKIT_DW_CV8(acc + 0 * Cp + c), a1 = SSMKIT_DW_CV8(acc + 1 * Cp + c),
           a2 = SSMKIT_DW_CV8(acc + 2 * Cp + c), a3 = SSMKIT_DW_CV8(acc + 3 * Cp + c),
           a4 = SSMKIT_DW_CV8(acc + 4 * Cp + c), a5 = SSMKIT_DW_CV8(acc + 5 * Cp + c),
           a6 = SSMKIT_DW_CV8(acc + 6 * Cp + c), a7 = SSMKIT_DW_CV8(acc + 7 * Cp + c),
           a8 = SSMKIT_DW_CV8(acc + 8 * Cp + c), a9 = SSMKIT_DW_CV8(acc + 9 * Cp + c);
    for (int64_t i = 0; i < n; ++i) {
      const float *__restrict p0 = xp[i][0] + c, *__restrict p1 = xp[i][1] + c, *__restrict p2 = xp[i][2] + c;
      const float* __restrict g = gp[i] + c;
      for (int64_t w = 0; w < W; ++w) {
        const dw_v8f gv = SSMKIT_DW_CV8(g + w * Cp);
        const int64_t o = w * Cp;
        a9 += gv;
        a0 += gv * SSMKIT_DW_CV8(p0 + o);
        a1 += gv * SSMKIT_DW_CV8(p0 + o + Cp);
        a2 += gv * SSMKIT_DW_CV8(p0 + o + 2 * Cp);
        a3 += gv * SSMKIT_DW_CV8(p1 + o);
        a4 += gv * SSMKIT_DW_CV8(p1 + o + Cp);
        a5 += gv * SSMKIT_DW_CV8(p1 + o + 2 * Cp);
        a6 += gv * SSMKIT_DW_CV8(p2 + o);
        a7 += gv * SSMKIT_DW_CV8(p2 + o + Cp);
        a8 += gv * SSMKIT_DW_CV8(p2 + o + 2 * Cp);
      }
    }
    SSMKIT_DW_V8(acc + 0 * Cp + c) = a0;
    SSMKIT_DW_V8(acc + 1 * Cp + c) = a1;
    SSMKIT_DW_V8(acc + 2 * Cp + c) = a2;
    SSMKIT_DW_V8(acc + 3 * Cp + c) = a3;
    SSMKIT_DW_V8(acc + 4 * Cp + c) = a4;
    SSMKIT_DW_V8(acc + 5 * Cp + c) = a5;
    SSMKIT_DW_V8(acc + 6 * Cp + c) = a6;
    SSMKIT_DW_V8(acc + 7 * Cp + c) = a7;
    SSMKIT_DW_V8(acc + 8 * Cp + c) = a8;
    SSMKIT_DW_V8(acc + 9 * Cp + c) = a9;
  }
}

// One chunk of output rows [r0, r1): pads the gradient rows and the input rows they read into `scratch`,
// then accumulates into acc (10, Cp).
inline void dw_weight_chunk_f32(float* acc, const float* dy, int64_t ldy, const float* x, int64_t ldx, int64_t H,
                                int64_t W, int64_t C, int64_t Cp, int64_t nrows, int64_t r0, int64_t r1,
                                std::vector<float>& scratch) {
  const int64_t n = r1 - r0, rowlen = (W + 2) * Cp;
  // input rows r0-1 .. r1 (n + 2 of them), then a zero row, then the gradient rows (W x Cp each, padded too)
  scratch.resize(static_cast<size_t>((n + 3) * rowlen + n * rowlen));
  float* xs = scratch.data();
  float* zero = xs + (n + 2) * rowlen;
  float* gs = zero + rowlen;
  dw_pad_row(zero, x, ldx, -1, W, C, Cp);
  for (int64_t i = 0; i < n + 2; ++i) {  // rows of a neighbouring image are loaded but never read
    const int64_t rr = r0 - 1 + i;
    dw_pad_row(xs + i * rowlen, x, ldx, rr >= 0 && rr < nrows ? rr : -1, W, C, Cp);
  }
  std::vector<const float*> gp(static_cast<size_t>(n));
  std::vector<std::array<const float*, 3>> xp(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = r0 + i, h = r % H;
    dw_pad_row(gs + i * rowlen, dy, ldy, r, W, C, Cp);
    gp[static_cast<size_t>(i)] = gs + i * rowlen + Cp;  // skip the zero column: position w at w * Cp
    xp[static_cast<size_t>(i)] = {h > 0 ? xs + i * rowlen : zero, xs + (i + 1) * rowlen,
                                  h + 1 < H ? xs + (i + 2) * rowlen : zero};
  }
  dw_weight_rows_f32(acc, gp.data(), xp.data(), n, W, Cp);
}

// dw (C,1,3,3) += sum over positions of dy * x(shifted); db (C) += sum of dy (db may be null).
template <class T>
void dw_backward_weight(T* dw, T* db, const T* dy, int64_t ldy, const T* x, int64_t ldx, int64_t B, int64_t H,
                        int64_t W, int64_t C, bool parallel = true) {
  const bool f32 = sizeof(T) == sizeof(float);
  const int64_t Cp = f32 ? dw_padded(C) : C;
  const int64_t nrows = B * H;
  const int64_t per = std::max<int64_t>(1, kDwChunkElems / std::max<int64_t>(1, W * C));  // rows per chunk
  const int64_t nchunk = (nrows + per - 1) / per;
  std::vector<T> part(static_cast<size_t>(nchunk * 10 * Cp), T(0));
#pragma omp parallel if (parallel && nchunk > 1 && B * H * W * C > kDwParallelMin)
  {
    std::vector<float> scratch;
#pragma omp for schedule(static)
    for (int64_t k = 0; k < nchunk; ++k) {
      const int64_t r0 = k * per, r1 = std::min(nrows, (k + 1) * per);
      if constexpr (sizeof(T) == sizeof(float))
        dw_weight_chunk_f32(part.data() + k * 10 * Cp, dy, ldy, x, ldx, H, W, C, Cp, nrows, r0, r1, scratch);
      else
        dw_rows_weight_plain(part.data() + k * 10 * Cp, dy, ldy, x, ldx, H, W, C, r0, r1);
    }
  }
  for (int64_t k = 0; k < nchunk; ++k) {
    const T* acc = part.data() + k * 10 * Cp;
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t t = 0; t < 9; ++t) dw[c * 9 + t] += acc[t * Cp + c];
      if (db) db[c] += acc[9 * Cp + c];
    }
  }
}

}  // namespace ssmkit::vision::detail
