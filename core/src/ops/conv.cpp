// conv1d / conv2d forward and backward (PyTorch semantics), their autograd ops, and the naive reference.
// General case: im2col of one (image, group) into a (C/G*kH*kW, OH*OW) matrix, then gemm() (OpenBLAS):
//   y_g = w_g col,  dw_g += dy_g col^T,  dcol = w_g^T dy_g -> col2im into dx.
// A pointwise kernel (1x1, stride 1, no padding) skips im2col: col is x itself, e.g. S4D's output Conv1d.
// Depthwise case (C/G == 1): direct loops over each (image, channel) plane. 1-D runs as 2-D with H = 1.
// Shapes: N batch, C in channels, O out channels, G groups, Cg = C/G, Og = O/G, P = OH*OW, R = Cg*kH*kW.
// Not here: transposed or 3-D convolutions, non-zero padding modes.
#include "ssmkit/core/ops/conv.h"

#include <algorithm>
#include <vector>

#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/simd_clones.h"
#include "interleaved_sum.h"

namespace ssmkit::core {

namespace {

struct ConvDims {
  int64_t N, C, H, W;  // input
  int64_t O, KH, KW;   // weight
  int64_t OH, OW;      // output
  int64_t G, Cg, Og;   // groups, in and out channels per group
};

// Checks every operand once and returns the sizes. `one_d` selects the (N,C,L) / (O,C/G,K) layouts.
ConvDims conv_dims(const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeometry& g, bool one_d,
                   const char* op) {
  const int64_t nd = one_d ? 3 : 4;
  SSMKIT_CHECK(x.defined() && x.ndim() == nd, op, ": input must be ", one_d ? "(N,C,L)" : "(N,C,H,W)", ", got ",
               x.defined() ? shape_str(x.shape()) : "undefined");
  SSMKIT_CHECK(w.defined() && w.ndim() == nd, op, ": weight must be ", one_d ? "(O,C/groups,K)" : "(O,C/groups,kH,kW)",
               ", got ", w.defined() ? shape_str(w.shape()) : "undefined");
  SSMKIT_CHECK(x.dtype() == w.dtype() && (x.dtype() == DType::F32 || x.dtype() == DType::F64), op,
               ": input and weight must both be F32 or both F64, got ", dtype_name(x.dtype()), " and ",
               dtype_name(w.dtype()));
  SSMKIT_CHECK(g.groups >= 1, op, ": groups must be >= 1, got ", g.groups);
  SSMKIT_CHECK(g.stride_h >= 1 && g.stride_w >= 1, op, ": stride must be >= 1, got (", g.stride_h, ",", g.stride_w,
               ")");
  SSMKIT_CHECK(g.dilation_h >= 1 && g.dilation_w >= 1, op, ": dilation must be >= 1, got (", g.dilation_h, ",",
               g.dilation_w, ")");
  SSMKIT_CHECK(g.pad_top >= 0 && g.pad_bottom >= 0 && g.pad_left >= 0 && g.pad_right >= 0, op,
               ": padding must be >= 0");
  if (one_d)
    SSMKIT_CHECK(g.stride_h == 1 && g.dilation_h == 1 && g.pad_top == 0 && g.pad_bottom == 0, op,
                 ": a 1-D geometry uses only the w fields (stride_w, pad_left, pad_right, dilation_w)");
  ConvDims d{};
  d.N = x.size(0);
  d.C = x.size(1);
  d.H = one_d ? 1 : x.size(2);
  d.W = x.size(-1);
  d.O = w.size(0);
  d.KH = one_d ? 1 : w.size(2);
  d.KW = w.size(-1);
  d.G = g.groups;
  SSMKIT_CHECK(d.O % d.G == 0, op, ": out_channels ", d.O, " (weight ", shape_str(w.shape()),
               ") must be divisible by groups ", d.G);
  SSMKIT_CHECK(d.C == w.size(1) * d.G, op, ": weight ", shape_str(w.shape()), " with groups=", d.G,
               " expects input with ", w.size(1) * d.G, " channels, got input ", shape_str(x.shape()));
  SSMKIT_CHECK(d.KH >= 1 && d.KW >= 1 && w.size(1) >= 1, op, ": empty weight ", shape_str(w.shape()));
  if (b.defined())
    SSMKIT_CHECK(b.ndim() == 1 && b.size(0) == d.O && b.dtype() == x.dtype(), op, ": bias must be (", d.O, ") of ",
                 dtype_name(x.dtype()), ", got ", shape_str(b.shape()), " ", dtype_name(b.dtype()));
  const int64_t ph = d.H + g.pad_top + g.pad_bottom, pw = d.W + g.pad_left + g.pad_right;
  const int64_t eh = g.dilation_h * (d.KH - 1) + 1, ew = g.dilation_w * (d.KW - 1) + 1;
  SSMKIT_CHECK(ph >= eh && pw >= ew, op, ": padded input size (", ph, ",", pw, ") is smaller than the dilated kernel (",
               eh, ",", ew, ") for input ", shape_str(x.shape()), " and weight ", shape_str(w.shape()));
  d.OH = conv_output_size(d.H, d.KH, g.stride_h, g.pad_top, g.pad_bottom, g.dilation_h);
  d.OW = conv_output_size(d.W, d.KW, g.stride_w, g.pad_left, g.pad_right, g.dilation_w);
  d.Cg = d.C / d.G;
  d.Og = d.O / d.G;
  return d;
}

Shape out_shape(const ConvDims& d, bool one_d) {
  return one_d ? Shape{d.N, d.O, d.OW} : Shape{d.N, d.O, d.OH, d.OW};
}

// The outputs o in [lo, hi) of an axis whose input position o*s + off lies in [0, in).
inline void valid_range(int64_t off, int64_t s, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = in - off <= 0 ? 0 : (in - off + s - 1) / s;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
}

// Per-kernel-tap valid output ranges along one axis: lo[k], hi[k] for tap k (offset k*dil - pad).
struct TapRanges {
  std::vector<int64_t> lo, hi;
  TapRanges(int64_t K, int64_t dil, int64_t pad, int64_t s, int64_t in, int64_t out) : lo(K), hi(K) {
    for (int64_t k = 0; k < K; ++k) valid_range(k * dil - pad, s, in, out, lo[k], hi[k]);
  }
};

// xg (Cg,H,W) -> col (Cg*KH*KW, OH*OW), zeros where the window reads padding.
template <class T>
void im2col(T* col, const T* xg, const ConvDims& d, const ConvGeometry& g, const TapRanges& rh, const TapRanges& rw) {
  const int64_t P = d.OH * d.OW;
  for (int64_t c = 0; c < d.Cg; ++c) {
    const T* xc = xg + c * d.H * d.W;
    for (int64_t kh = 0; kh < d.KH; ++kh) {
      const int64_t off_h = kh * g.dilation_h - g.pad_top;
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        const int64_t off_w = kw * g.dilation_w - g.pad_left;
        const int64_t lo = rw.lo[kw], hi = rw.hi[kw];
        T* cr = col + ((c * d.KH + kh) * d.KW + kw) * P;
        for (int64_t oh = 0; oh < d.OH; ++oh) {
          T* dst = cr + oh * d.OW;
          if (oh < rh.lo[kh] || oh >= rh.hi[kh]) {
            std::fill(dst, dst + d.OW, T(0));
            continue;
          }
          const T* xr = xc + (oh * g.stride_h + off_h) * d.W;
          for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = T(0);
          for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = xr[ow * g.stride_w + off_w];
          for (int64_t ow = hi; ow < d.OW; ++ow) dst[ow] = T(0);
        }
      }
    }
  }
}

// col (Cg*KH*KW, OH*OW) -> dxg (Cg,H,W) +=, the adjoint of im2col.
template <class T>
void col2im_add(T* dxg, const T* col, const ConvDims& d, const ConvGeometry& g, const TapRanges& rh,
                const TapRanges& rw) {
  const int64_t P = d.OH * d.OW;
  for (int64_t c = 0; c < d.Cg; ++c) {
    T* dxc = dxg + c * d.H * d.W;
    for (int64_t kh = 0; kh < d.KH; ++kh) {
      const int64_t off_h = kh * g.dilation_h - g.pad_top;
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        const int64_t off_w = kw * g.dilation_w - g.pad_left;
        const int64_t lo = rw.lo[kw], hi = rw.hi[kw];
        const T* cr = col + ((c * d.KH + kh) * d.KW + kw) * P;
        for (int64_t oh = rh.lo[kh]; oh < rh.hi[kh]; ++oh) {
          const T* src = cr + oh * d.OW;
          T* dxr = dxc + (oh * g.stride_h + off_h) * d.W;
          for (int64_t ow = lo; ow < hi; ++ow) dxr[ow * g.stride_w + off_w] += src[ow];
        }
      }
    }
  }
}

// A 1x1 kernel with stride 1 and no padding reads x as it is: col is the (Cg, H*W) slab itself.
bool is_pointwise(const ConvDims& d, const ConvGeometry& g) {
  return d.KH == 1 && d.KW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_bottom == 0 &&
         g.pad_left == 0 && g.pad_right == 0;
}

bool is_depthwise(const ConvDims& d) { return d.Cg == 1; }

// Below this many multiply-adds a kernel runs on the calling thread (a parallel region costs more).
constexpr int64_t kParallelMacs = 1 << 16;

// ------------------------------------------------------------------------------------------------------
// forward

// y[i] += a * x[i*s] for i < n (y and x never overlap); stride 1 as a contiguous SIMD loop.
template <class T>
inline void axpy_strided(T* y, T a, const T* x, int64_t s, int64_t n) {
  if (s == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i * s];
  }
}

// x[i*s] += a * y[i] for i < n (the adjoint of axpy_strided).
template <class T>
inline void axpy_scatter(T* x, T a, const T* y, int64_t s, int64_t n) {
  if (s == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] += a * y[i];
  } else {
    for (int64_t i = 0; i < n; ++i) x[i * s] += a * y[i];
  }
}

// sum over i < n of y[i] * x[i*s]; stride 1 keeps 8 partial sums combined in a fixed order, which vectorizes
// without letting the compiler reassociate (results stay the same for every build).
template <class T>
inline T dot_strided(const T* y, const T* x, int64_t s, int64_t n) {
  if (s != 1) {
    T acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += y[i] * x[i * s];
    return acc;
  }
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += y[i + j] * x[i + j];
  T sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += y[i] * x[i];
  return sum;
}

// x (N,C,H,W), w (O,1,KH,KW), b (O) or null -> y (N,O,OH,OW); output channel o reads input channel o/Og.
template <class T>
void depthwise_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d, const ConvGeometry& g) {
  const int64_t P = d.OH * d.OW, HW = d.H * d.W, KK = d.KH * d.KW;
  const TapRanges rh(d.KH, g.dilation_h, g.pad_top, g.stride_h, d.H, d.OH);
  const TapRanges rw(d.KW, g.dilation_w, g.pad_left, g.stride_w, d.W, d.OW);
  const int64_t items = d.N * d.O;
#pragma omp parallel for schedule(static) if (items * P * KK > kParallelMacs)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t n = it / d.O, o = it % d.O;
    const T* xp = x + (n * d.C + o / d.Og) * HW;
    const T* wp = w + o * KK;
    T* yp = y + it * P;
    std::fill(yp, yp + P, b ? b[o] : T(0));
    for (int64_t oh = 0; oh < d.OH; ++oh) {
      T* yr = yp + oh * d.OW;
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        if (oh < rh.lo[kh] || oh >= rh.hi[kh]) continue;
        const T* xr = xp + (oh * g.stride_h + kh * g.dilation_h - g.pad_top) * d.W;
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          const T wv = wp[kh * d.KW + kw];
          const int64_t off = kw * g.dilation_w - g.pad_left, lo = rw.lo[kw], hi = rw.hi[kw];
          if (lo < hi) axpy_strided(yr + lo, wv, xr + lo * g.stride_w + off, g.stride_w, hi - lo);
        }
      }
    }
  }
}

template <class T>
void gemm_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d, const ConvGeometry& g) {
  const int64_t P = d.OH * d.OW, R = d.Cg * d.KH * d.KW, HW = d.H * d.W;
  const bool pointwise = is_pointwise(d, g);
  const TapRanges rh(d.KH, g.dilation_h, g.pad_top, g.stride_h, d.H, d.OH);
  const TapRanges rw(d.KW, g.dilation_w, g.pad_left, g.stride_w, d.W, d.OW);
  const int64_t items = d.N * d.G;
  // One (image, group) per iteration: y_g (Og,P) = w_g (Og,R) col (R,P), the bias written first and
  // accumulated into (beta = 1). gemm() runs single-threaded inside the team and threads the GEMM itself
  // when there is only one item. Tiny problems stay on one thread.
#pragma omp parallel if (items > 1 && items * d.Og * R * P > kParallelMacs)
  {
    std::vector<T> col(pointwise ? 0 : static_cast<size_t>(R * P));
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t n = it / d.G, gi = it % d.G;
      const T* xg = x + (n * d.C + gi * d.Cg) * HW;
      if (!pointwise) im2col(col.data(), xg, d, g, rh, rw);
      T* yg = y + (n * d.O + gi * d.Og) * P;
      if (b)
        for (int64_t o = 0; o < d.Og; ++o) std::fill(yg + o * P, yg + (o + 1) * P, b[gi * d.Og + o]);
      gemm(false, false, d.Og, P, R, T(1), w + gi * d.Og * R, R, pointwise ? xg : col.data(), P, b ? T(1) : T(0),
           yg, P);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// backward

// dy (N,O,OH,OW) -> dx (N,C,H,W) +=, dw (O,1,KH,KW) += (either may be null).
template <class T>
void depthwise_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const ConvDims& d, const ConvGeometry& g) {
  const int64_t P = d.OH * d.OW, HW = d.H * d.W, KK = d.KH * d.KW;
  const TapRanges rh(d.KH, g.dilation_h, g.pad_top, g.stride_h, d.H, d.OH);
  const TapRanges rw(d.KW, g.dilation_w, g.pad_left, g.stride_w, d.W, d.OW);
  const bool big = d.N * d.O * P * KK > kParallelMacs;
  if (dx) {
    // One input plane per iteration: it gathers from its Og output channels, so no two threads collide.
    const int64_t items = d.N * d.C;
#pragma omp parallel for schedule(static) if (big)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t n = it / d.C, c = it % d.C;
      T* dxp = dx + it * HW;
      for (int64_t m = 0; m < d.Og; ++m) {
        const int64_t o = c * d.Og + m;
        const T* dyp = dy + (n * d.O + o) * P;
        const T* wp = w + o * KK;
        for (int64_t oh = 0; oh < d.OH; ++oh) {
          const T* dyr = dyp + oh * d.OW;
          for (int64_t kh = 0; kh < d.KH; ++kh) {
            if (oh < rh.lo[kh] || oh >= rh.hi[kh]) continue;
            T* dxr = dxp + (oh * g.stride_h + kh * g.dilation_h - g.pad_top) * d.W;
            for (int64_t kw = 0; kw < d.KW; ++kw) {
              const T wv = wp[kh * d.KW + kw];
              const int64_t off = kw * g.dilation_w - g.pad_left, lo = rw.lo[kw], hi = rw.hi[kw];
              if (lo < hi) axpy_scatter(dxr + lo * g.stride_w + off, wv, dyr + lo, g.stride_w, hi - lo);
            }
          }
        }
      }
    }
  }
  if (dw) {
    // One output channel per iteration, images in order: deterministic for any thread count.
#pragma omp parallel for schedule(static) if (big)
    for (int64_t o = 0; o < d.O; ++o) {
      T* dwp = dw + o * KK;
      for (int64_t n = 0; n < d.N; ++n) {
        const T* xp = x + (n * d.C + o / d.Og) * HW;
        const T* dyp = dy + (n * d.O + o) * P;
        for (int64_t kh = 0; kh < d.KH; ++kh) {
          for (int64_t kw = 0; kw < d.KW; ++kw) {
            const int64_t off = kw * g.dilation_w - g.pad_left, lo = rw.lo[kw], hi = rw.hi[kw];
            T s = 0;
            if (lo < hi)
              for (int64_t oh = rh.lo[kh]; oh < rh.hi[kh]; ++oh) {
                const T* xr = xp + (oh * g.stride_h + kh * g.dilation_h - g.pad_top) * d.W;
                s += dot_strided(dyp + oh * d.OW + lo, xr + lo * g.stride_w + off, g.stride_w, hi - lo);
              }
            dwp[kh * d.KW + kw] += s;
          }
        }
      }
    }
  }
}

template <class T>
void gemm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const ConvDims& d, const ConvGeometry& g) {
  const int64_t P = d.OH * d.OW, R = d.Cg * d.KH * d.KW, HW = d.H * d.W;
  const bool pointwise = is_pointwise(d, g);
  const TapRanges rh(d.KH, g.dilation_h, g.pad_top, g.stride_h, d.H, d.OH);
  const TapRanges rw(d.KW, g.dilation_w, g.pad_left, g.stride_w, d.W, d.OW);
  // The batch is cut into S fixed chunks (independent of the thread count); chunk s adds its dw into its own
  // partial, and the partials are summed in chunk order at the end.
  const int64_t wsize = d.O * R;
  int64_t S = std::max<int64_t>(d.N, 1);
  if (dw) S = std::min({S, int64_t{16}, std::max<int64_t>((int64_t{1} << 24) / std::max<int64_t>(wsize, 1), 1)});
  std::vector<T> part(dw ? static_cast<size_t>(S * wsize) : 0, T(0));
  const int64_t items = S * d.G;
#pragma omp parallel if (items > 1 && d.N * d.O * R * P > kParallelMacs)
  {
    std::vector<T> col(dw && !pointwise ? static_cast<size_t>(R * P) : 0);
    std::vector<T> dcol(dx && !pointwise ? static_cast<size_t>(R * P) : 0);
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t s = it / d.G, gi = it % d.G;
      const int64_t n0 = s * d.N / S, n1 = (s + 1) * d.N / S;
      const T* wg = w + gi * d.Og * R;  // (Og,R)
      for (int64_t n = n0; n < n1; ++n) {
        const T* dyg = dy + (n * d.O + gi * d.Og) * P;  // (Og,P)
        const T* xg = x + (n * d.C + gi * d.Cg) * HW;
        T* dxg = dx ? dx + (n * d.C + gi * d.Cg) * HW : nullptr;
        if (dw) {  // dw_g (Og,R) += dy_g (Og,P) col^T (P,R)
          if (!pointwise) im2col(col.data(), xg, d, g, rh, rw);
          gemm(false, true, d.Og, R, P, T(1), dyg, P, pointwise ? xg : col.data(), P, T(1),
               part.data() + s * wsize + gi * d.Og * R, R);
        }
        if (dx) {  // dcol (R,P) = w_g^T (R,Og) dy_g (Og,P); pointwise: added straight into dx
          if (pointwise) {
            gemm(true, false, R, P, d.Og, T(1), wg, R, dyg, P, T(1), dxg, P);
          } else {
            gemm(true, false, R, P, d.Og, T(1), wg, R, dyg, P, T(0), dcol.data(), P);
            col2im_add(dxg, dcol.data(), d, g, rh, rw);
          }
        }
      }
    }
  }
  if (dw)
    for (int64_t s = 0; s < S; ++s) {
      const T* p = part.data() + s * wsize;
      for (int64_t i = 0; i < wsize; ++i) dw[i] += p[i];
    }
}

// Σ over n < rows of the P values at p + n·stride, in double (long sums), the rows in order.
template <class T>
SSMKIT_SIMD_CLONES double rows_sum(const T* p, int64_t rows, int64_t stride, int64_t P) {
  double s = 0;
  for (int64_t n = 0; n < rows; ++n) {
    const T* r = p + n * stride;
    s += sum8(P, [&](int64_t i) { return static_cast<double>(r[i]); });
  }
  return s;
}

// dy (N,O,P) -> db (O) +=, one channel per iteration.
template <class T>
void bias_backward(T* db, const T* dy, const ConvDims& d) {
  const int64_t P = d.OH * d.OW;
#pragma omp parallel for schedule(static) if (d.N * d.O * P > kParallelMacs)
  for (int64_t o = 0; o < d.O; ++o) db[o] += static_cast<T>(rows_sum(dy + o * P, d.N, d.O * P, P));
}

// ------------------------------------------------------------------------------------------------------
// entry points shared by 1-D and 2-D

// Makes `t` a contiguous tensor of `shape` and dtype `dt`: allocated when undefined, checked otherwise.
void prepare_grad(Tensor& t, const Shape& shape, DType dt, const char* op, const char* name) {
  if (!t.defined()) {
    t = Tensor::zeros(shape, dt);
    return;
  }
  SSMKIT_CHECK(t.shape() == shape && t.dtype() == dt && t.is_contiguous(), op, ": ", name, " must be a contiguous ",
               shape_str(shape), " ", dtype_name(dt), " tensor to accumulate into, got ", shape_str(t.shape()), " ",
               dtype_name(t.dtype()));
}

void conv_forward_any(Tensor& y, const Tensor& x0, const Tensor& w0, const Tensor& b0, const ConvGeometry& g,
                      bool one_d, const char* op) {
  const ConvDims d = conv_dims(x0, w0, b0, g, one_d, op);
  const Tensor x = x0.contiguous(), w = w0.contiguous();
  const Tensor b = b0.defined() ? b0.contiguous() : Tensor{};
  const Shape ys = out_shape(d, one_d);
  if (!(y.defined() && y.shape() == ys && y.dtype() == x.dtype() && y.is_contiguous() && !y.same_storage(x)))
    y = Tensor::uninitialized(ys, x.dtype());  // written in full (bias or zeros first, then the products)
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    if (is_depthwise(d))
      depthwise_forward<T>(y.data<T>(), x.data<T>(), w.data<T>(), bp, d, g);
    else
      gemm_forward<T>(y.data<T>(), x.data<T>(), w.data<T>(), bp, d, g);
  };
  if (x.dtype() == DType::F64)
    run(double{});
  else
    run(float{});
}

void conv_backward_any(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy0, const Tensor& x0, const Tensor& w0,
                       const ConvGeometry& g, bool one_d, const char* op) {
  const ConvDims d = conv_dims(x0, w0, Tensor{}, g, one_d, op);
  const Shape ys = out_shape(d, one_d);
  SSMKIT_CHECK(dy0.defined() && dy0.shape() == ys && dy0.dtype() == x0.dtype(), op, ": dy must be ", shape_str(ys),
               " ", dtype_name(x0.dtype()), " (the output of input ", shape_str(x0.shape()), " and weight ",
               shape_str(w0.shape()), "), got ", dy0.defined() ? shape_str(dy0.shape()) : "undefined");
  const Tensor x = x0.contiguous(), w = w0.contiguous(), dy = dy0.contiguous();
  if (dx) prepare_grad(*dx, x.shape(), x.dtype(), op, "dx");
  if (dw) prepare_grad(*dw, w.shape(), w.dtype(), op, "dw");
  if (db) prepare_grad(*db, {d.O}, x.dtype(), op, "db");
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* dxp = dx ? dx->data<T>() : nullptr;
    T* dwp = dw ? dw->data<T>() : nullptr;
    if (dxp || dwp) {
      if (is_depthwise(d))
        depthwise_backward<T>(dxp, dwp, dy.data<T>(), x.data<T>(), w.data<T>(), d, g);
      else
        gemm_backward<T>(dxp, dwp, dy.data<T>(), x.data<T>(), w.data<T>(), d, g);
    }
    if (db) bias_backward<T>(db->data<T>(), dy.data<T>(), d);
  };
  if (x.dtype() == DType::F64)
    run(double{});
  else
    run(float{});
}

}  // namespace

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before, int64_t pad_after,
                         int64_t dilation) {
  const int64_t span = in + pad_before + pad_after - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeometry& g) {
  conv_forward_any(y, x, w, b, g, false, "conv2d_forward");
}

void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ConvGeometry& g) {
  conv_backward_any(dx, dw, db, dy, x, w, g, false, "conv2d_backward");
}

void conv1d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeometry& g) {
  conv_forward_any(y, x, w, b, g, true, "conv1d_forward");
}

void conv1d_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ConvGeometry& g) {
  conv_backward_any(dx, dw, db, dy, x, w, g, true, "conv1d_backward");
}

// ------------------------------------------------------------------------------------------------------
// reference: direct sums in double over every (n, o, oh, ow, c, kh, kw)

namespace {

// Writes `v` (row-major values) into `t`: a new F64 tensor when undefined, else overwritten (converted).
void store_ref(Tensor& t, const Shape& shape, const std::vector<double>& v) {
  Tensor r = Tensor::from_vector(shape, v);
  if (t.defined() && t.shape() == shape)
    t.copy_from(r);
  else
    t = r;
}

// Adds `v` into `t` (+= when defined, else a new F64 tensor).
void accumulate_ref(Tensor& t, const Shape& shape, const std::vector<double>& v, const char* name) {
  Tensor r = Tensor::from_vector(shape, v);
  if (!t.defined()) {
    t = r;
    return;
  }
  SSMKIT_CHECK(t.shape() == shape, "conv2d_ref_backward: ", name, " must be ", shape_str(shape), ", got ",
               shape_str(t.shape()));
  t.add_(r.to(t.dtype()));
}

// Calls fn(y_index, x_index, w_index, o) for every product term of the convolution.
template <class Fn>
void for_each_term(const ConvDims& d, const ConvGeometry& g, Fn fn) {
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t o = 0; o < d.O; ++o) {
      const int64_t gi = o / d.Og;
      for (int64_t oh = 0; oh < d.OH; ++oh)
        for (int64_t ow = 0; ow < d.OW; ++ow) {
          const int64_t yi = ((n * d.O + o) * d.OH + oh) * d.OW + ow;
          for (int64_t c = 0; c < d.Cg; ++c)
            for (int64_t kh = 0; kh < d.KH; ++kh)
              for (int64_t kw = 0; kw < d.KW; ++kw) {
                const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
                const int64_t iw = ow * g.stride_w - g.pad_left + kw * g.dilation_w;
                if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;  // zero padding
                const int64_t xi = ((n * d.C + gi * d.Cg + c) * d.H + ih) * d.W + iw;
                const int64_t wi = ((o * d.Cg + c) * d.KH + kh) * d.KW + kw;
                fn(yi, xi, wi, o);
              }
        }
    }
}

}  // namespace

void conv2d_ref_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeometry& g) {
  const ConvDims d = conv_dims(x, w, b, g, false, "conv2d_ref_forward");
  const std::vector<double> xv = x.to_double_vector(), wv = w.to_double_vector();
  const std::vector<double> bv = b.defined() ? b.to_double_vector() : std::vector<double>(static_cast<size_t>(d.O), 0.0);
  const Shape ys = out_shape(d, false);
  std::vector<double> yv(static_cast<size_t>(shape_numel(ys)));
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = bv[(i / static_cast<size_t>(d.OH * d.OW)) % static_cast<size_t>(d.O)];
  for_each_term(d, g, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) { yv[yi] += xv[xi] * wv[wi]; });
  store_ref(y, ys, yv);
}

void conv2d_ref_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                         const ConvGeometry& g) {
  const ConvDims d = conv_dims(x, w, Tensor{}, g, false, "conv2d_ref_backward");
  SSMKIT_CHECK(dy.shape() == out_shape(d, false), "conv2d_ref_backward: dy must be ",
               shape_str(out_shape(d, false)), ", got ", shape_str(dy.shape()));
  const std::vector<double> xv = x.to_double_vector(), wv = w.to_double_vector(), dyv = dy.to_double_vector();
  std::vector<double> dxv(xv.size(), 0.0), dwv(wv.size(), 0.0), dbv(static_cast<size_t>(d.O), 0.0);
  for_each_term(d, g, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) {
    dxv[xi] += dyv[yi] * wv[wi];
    dwv[wi] += dyv[yi] * xv[xi];
  });
  for (size_t i = 0; i < dyv.size(); ++i) dbv[(i / static_cast<size_t>(d.OH * d.OW)) % static_cast<size_t>(d.O)] += dyv[i];
  if (dx) accumulate_ref(*dx, x.shape(), dxv, "dx");
  if (dw) accumulate_ref(*dw, w.shape(), dwv, "dw");
  if (db) accumulate_ref(*db, {d.O}, dbv, "db");
}

// ------------------------------------------------------------------------------------------------------
// autograd ops

namespace {

// The shared body of conv1d / conv2d on batched inputs.
Var conv_var(const Var& x, const Var& w, const Var& b, const ConvGeometry& g, bool one_d, const char* op) {
  Tensor xv = x.value(), wv = w.value();
  const bool has_b = b.defined();
  Tensor y;
  conv_forward_any(y, xv, wv, has_b ? b.value() : Tensor{}, g, one_d, op);
  std::vector<Var> inputs{x, w};
  if (has_b) inputs.push_back(b);
  return make_result(y, inputs, [xv, wv, has_b, g, one_d, op](const Tensor& gy, const std::vector<bool>& needs) {
    Tensor dx, dw, db;
    conv_backward_any(needs[0] ? &dx : nullptr, needs[1] ? &dw : nullptr, has_b && needs[2] ? &db : nullptr, gy, xv,
                      wv, g, one_d, op);
    std::vector<Tensor> grads{dx, dw};
    if (has_b) grads.push_back(db);
    return grads;
  }, op);
}

// Runs `f` on x with a batch dimension of 1 added when x is unbatched (rank `batched_rank` - 1), and drops
// it from the result again, as PyTorch does for unbatched inputs.
template <class F>
Var with_batch(const Var& x, int64_t batched_rank, F f) {
  if (x.defined() && x.ndim() == batched_rank - 1) {
    Shape s = x.shape();
    s.insert(s.begin(), 1);
    Var y = f(reshape(x, s));
    Shape ys = y.shape();
    ys.erase(ys.begin());
    return reshape(y, ys);
  }
  return f(x);
}

// PyTorch's "same": total = d*(k-1) zeros, total/2 before and the rest after.
void same_padding(int64_t kernel, int64_t dilation, int64_t& before, int64_t& after) {
  const int64_t total = dilation * (kernel - 1);
  before = total / 2;
  after = total - before;
}

}  // namespace

Var conv1d(const Var& x, const Var& w, const Var& b, int64_t stride, int64_t padding, int64_t dilation,
           int64_t groups) {
  ConvGeometry g;
  g.stride_w = stride;
  g.pad_left = g.pad_right = padding;
  g.dilation_w = dilation;
  g.groups = groups;
  return with_batch(x, 3, [&](const Var& xb) { return conv_var(xb, w, b, g, true, "conv1d"); });
}

Var conv1d(const Var& x, const Var& w, const Var& b, int64_t stride, ConvPadding padding, int64_t dilation,
           int64_t groups) {
  if (padding == ConvPadding::Valid) return conv1d(x, w, b, stride, int64_t{0}, dilation, groups);
  SSMKIT_CHECK(stride == 1, "conv1d: padding='same' is not supported for strided convolutions (stride ", stride, ")");
  SSMKIT_CHECK(w.defined() && w.ndim() == 3, "conv1d: weight must be (O,C/groups,K), got ",
               w.defined() ? shape_str(w.shape()) : "undefined");
  ConvGeometry g;
  same_padding(w.size(2), dilation, g.pad_left, g.pad_right);
  g.dilation_w = dilation;
  g.groups = groups;
  return with_batch(x, 3, [&](const Var& xb) { return conv_var(xb, w, b, g, true, "conv1d"); });
}

Var conv2d(const Var& x, const Var& w, const Var& b, std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
           std::array<int64_t, 2> dilation, int64_t groups) {
  ConvGeometry g;
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_top = g.pad_bottom = padding[0];
  g.pad_left = g.pad_right = padding[1];
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.groups = groups;
  return with_batch(x, 4, [&](const Var& xb) { return conv_var(xb, w, b, g, false, "conv2d"); });
}

Var conv2d(const Var& x, const Var& w, const Var& b, std::array<int64_t, 2> stride, ConvPadding padding,
           std::array<int64_t, 2> dilation, int64_t groups) {
  if (padding == ConvPadding::Valid) return conv2d(x, w, b, stride, {0, 0}, dilation, groups);
  SSMKIT_CHECK(stride[0] == 1 && stride[1] == 1, "conv2d: padding='same' is not supported for strided convolutions "
               "(stride (", stride[0], ",", stride[1], "))");
  SSMKIT_CHECK(w.defined() && w.ndim() == 4, "conv2d: weight must be (O,C/groups,kH,kW), got ",
               w.defined() ? shape_str(w.shape()) : "undefined");
  ConvGeometry g;
  same_padding(w.size(2), dilation[0], g.pad_top, g.pad_bottom);
  same_padding(w.size(3), dilation[1], g.pad_left, g.pad_right);
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.groups = groups;
  return with_batch(x, 4, [&](const Var& xb) { return conv_var(xb, w, b, g, false, "conv2d"); });
}

}  // namespace ssmkit::core
