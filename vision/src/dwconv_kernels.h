// Private: the depthwise 3x3 (padding 1) kernels on channels-last maps with row strides, shared by ops.cpp
// (DWConv of PVT2FFN) and vsss.cpp (the VSSS groups' conv2d, whose input is the x half of in_proj's output).
// Weights are re-laid out tap-major (9,C) so the inner loops run over contiguous channels; the per-row
// kernels are multi-versioned (simd_clones.h) and the OpenMP loops around them stay in plain functions (an
// outlined parallel region would not inherit a clone's target).
// Threads: output rows (forward, dx), channel blocks (dw, db): every value has one owner, deterministic.
// Layout: x (B,H,W,C) with element (b,h,w,c) at ((b*H + h)*W + w)*ld + c; w (C,1,3,3); bias (C) or null.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd_clones.h"

namespace ssmkit::vision::detail {

constexpr int64_t kDwParallelMin = 1 << 14;  // elements; smaller loops stay on one thread

// w (C,1,3,3) -> (9,C)
template <class T>
std::vector<T> dw_taps(const T* w, int64_t C) {
  std::vector<T> wt(static_cast<size_t>(9 * C));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < 9; ++k) wt[static_cast<size_t>(k * C + c)] = w[c * 9 + k];
  return wt;
}

// One output row: y[w] = bias + sum_{kh,kw} taps[kh][kw] * rows[kh][w + kw - 1], taken as zero outside the
// map (rows[kh] null above/below it). With flip, the input gradient: dx of a row from the dy rows h+1, h, h-1
// read at w - kw + 1. All nine products of a channel are summed in registers before one store.
template <class T>
SSMKIT_VISION_KERNEL void dw_row(T* __restrict y, int64_t ldy, const T* const rows[3], int64_t ldx,
                                 const T* __restrict taps, const T* __restrict bias, bool flip, int64_t W, int64_t C,
                                 const T* __restrict zeros) {
  const bool full = rows[0] && rows[1] && rows[2];
  if (!bias) bias = zeros;
  for (int64_t w = 0; w < W; ++w) {
    T* __restrict out = y + w * ldy;
    if (full && w > 0 && w + 1 < W) {
      // interior: every tap inside the map, no branches in the channel loop. With flip, tap kw reads w - kw + 1.
      const int64_t l = (flip ? w + 1 : w - 1) * ldx, m = w * ldx, r = (flip ? w - 1 : w + 1) * ldx;
      const T *__restrict a = rows[0], *__restrict b = rows[1], *__restrict d = rows[2];
      for (int64_t c = 0; c < C; ++c) {
        T acc = bias[c];
        acc += taps[c] * a[l + c] + taps[C + c] * a[m + c] + taps[2 * C + c] * a[r + c];
        acc += taps[3 * C + c] * b[l + c] + taps[4 * C + c] * b[m + c] + taps[5 * C + c] * b[r + c];
        acc += taps[6 * C + c] * d[l + c] + taps[7 * C + c] * d[m + c] + taps[8 * C + c] * d[r + c];
        out[c] = acc;
      }
      continue;
    }
    const T* in[9];
    for (int64_t kh = 0; kh < 3; ++kh)
      for (int64_t kw = 0; kw < 3; ++kw) {
        const int64_t ww = flip ? w - kw + 1 : w + kw - 1;
        in[kh * 3 + kw] = rows[kh] && ww >= 0 && ww < W ? rows[kh] + ww * ldx : zeros;
      }
    const T *__restrict i0 = in[0], *__restrict i1 = in[1], *__restrict i2 = in[2], *__restrict i3 = in[3],
                        *__restrict i4 = in[4], *__restrict i5 = in[5], *__restrict i6 = in[6], *__restrict i7 = in[7],
                        *__restrict i8 = in[8];
    for (int64_t c = 0; c < C; ++c) {
      T acc = bias[c];
      acc += taps[c] * i0[c] + taps[C + c] * i1[c] + taps[2 * C + c] * i2[c];
      acc += taps[3 * C + c] * i3[c] + taps[4 * C + c] * i4[c] + taps[5 * C + c] * i5[c];
      acc += taps[6 * C + c] * i6[c] + taps[7 * C + c] * i7[c] + taps[8 * C + c] * i8[c];
      out[c] = acc;
    }
  }
}

// y = bias + sum over taps of w * x(shifted).  x row stride ldx, y row stride ldy.
template <class T>
void dw_forward(T* y, int64_t ldy, const T* x, int64_t ldx, const T* w, const T* bias, int64_t B, int64_t H,
                int64_t W, int64_t C, bool parallel = true) {
  const std::vector<T> wt = dw_taps(w, C), zeros(static_cast<size_t>(C), T(0));
#pragma omp parallel for collapse(2) schedule(static) if (parallel && B * H * W * C > kDwParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const T* rows[3];
      for (int64_t kh = 0; kh < 3; ++kh) {
        const int64_t hh = h + kh - 1;
        rows[kh] = hh >= 0 && hh < H ? x + (b * H + hh) * W * ldx : nullptr;
      }
      dw_row<T>(y + (b * H + h) * W * ldy, ldy, rows, ldx, wt.data(), bias, false, W, C, zeros.data());
    }
}

// dx = correlation of dy with the flipped kernel (written).  dy row stride ldy, dx row stride ldx.
template <class T>
void dw_backward_input(T* dx, int64_t ldx, const T* dy, int64_t ldy, const T* w, int64_t B, int64_t H, int64_t W,
                       int64_t C, bool parallel = true) {
  const std::vector<T> wt = dw_taps(w, C), zeros(static_cast<size_t>(C), T(0));
#pragma omp parallel for collapse(2) schedule(static) if (parallel && B * H * W * C > kDwParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      // the output at (h - kh + 1, w - kw + 1) read this input through tap (kh, kw)
      const T* rows[3];
      for (int64_t kh = 0; kh < 3; ++kh) {
        const int64_t ho = h - kh + 1;
        rows[kh] = ho >= 0 && ho < H ? dy + (b * H + ho) * W * ldy : nullptr;
      }
      dw_row<T>(dx + (b * H + h) * W * ldx, ldx, rows, ldy, wt.data(), nullptr, true, W, C, zeros.data());
    }
}

// acc (10,n): acc[k][c] += sum_w dy[w][c] * x_row_k[w + kw - 1][c] for the 9 taps, acc[9][c] += sum_w dy[w][c].
template <class T>
SSMKIT_VISION_KERNEL void dw_row_weight(T* __restrict acc, int64_t n, const T* __restrict g, int64_t ldy,
                                        const T* const rows[3], int64_t ldx, int64_t W) {
  for (int64_t w = 0; w < W; ++w) {
    const T* __restrict gw = g + w * ldy;
    T* __restrict a9 = acc + 9 * n;
    for (int64_t c = 0; c < n; ++c) a9[c] += gw[c];
    for (int64_t kh = 0; kh < 3; ++kh) {
      if (!rows[kh]) continue;
      for (int64_t kw = 0; kw < 3; ++kw) {
        const int64_t ww = w + kw - 1;
        if (ww < 0 || ww >= W) continue;
        const T* __restrict in = rows[kh] + ww * ldx;
        T* __restrict a = acc + (kh * 3 + kw) * n;
        for (int64_t c = 0; c < n; ++c) a[c] += gw[c] * in[c];
      }
    }
  }
}

// dw (C,1,3,3) += sum over positions of dy * x(shifted); db (C) += sum of dy (db may be null).
template <class T>
void dw_backward_weight(T* dw, T* db, const T* dy, int64_t ldy, const T* x, int64_t ldx, int64_t B, int64_t H,
                        int64_t W, int64_t C, bool parallel = true) {
  constexpr int64_t kCB = 64;
  const int64_t nblk = (C + kCB - 1) / kCB;
#pragma omp parallel for schedule(static) if (parallel && B * H * W * C > kDwParallelMin)
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const int64_t c0 = blk * kCB, n = std::min(C, c0 + kCB) - c0;
    std::vector<T> acc(static_cast<size_t>(10 * n), T(0));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const T* rows[3];
        for (int64_t kh = 0; kh < 3; ++kh) {
          const int64_t hh = h + kh - 1;
          rows[kh] = hh >= 0 && hh < H ? x + (b * H + hh) * W * ldx + c0 : nullptr;
        }
        dw_row_weight<T>(acc.data(), n, dy + (b * H + h) * W * ldy + c0, ldy, rows, ldx, W);
      }
    for (int64_t c = 0; c < n; ++c) {
      for (int64_t k = 0; k < 9; ++k) dw[(c0 + c) * 9 + k] += acc[static_cast<size_t>(k * n + c)];
      if (db) db[c0 + c] += acc[static_cast<size_t>(9 * n + c)];
    }
  }
}

}  // namespace ssmkit::vision::detail
