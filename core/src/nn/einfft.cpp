// EinFFT forward and backward (../shared/specs/vision.md §3.2; badripatro/Simba classification/simba.py).
// The 2-D DFT over (token, block) is separable: a hand-written 4-point DFT across the blocks and FFTW along
// the tokens (in-place "many" plans per (N, columns, row stride, direction), cached). The
// block-diagonal complex layers are gemm() calls on planar real/imaginary arrays, one per block and part.
// Backward (real loss): the adjoint of y = Re(U S) with U the unitary inverse DFT is dS = conj(U) dy = the
// forward unitary DFT of dy; the adjoint of F = V x (V the forward DFT, real x) is dx = Re(conj(V) dF). Both
// matrices are symmetric, so the same two transforms serve forward and backward.
// Threads: images x slices of the block columns for the transforms, row blocks for the complex layers
// (FFTW itself runs single-threaded). Not here: a half-spectrum (r2c) variant.
#include "ssmkit/core/nn/einfft.h"

#include <fftw3.h>

#include <cmath>
#include <map>
#include <mutex>

#include <omp.h>
#include <tuple>

#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/ssm/fftconv.h"  // fftw_planner_mutex()
#include "ssmkit/core/train/init.h"

namespace ssmkit::core {

namespace {

// ---------------------------------------------------------------------------------------------------------
// FFTW in float and double: in-place complex DFTs of length n down each of `cols` interleaved columns.

template <class T> struct Fftw;
template <> struct Fftw<float> {
  using Plan = fftwf_plan;
  static Plan plan(int n, int cols, int stride, int sign, float* buf) {
    auto* c = reinterpret_cast<fftwf_complex*>(buf);
    return fftwf_plan_many_dft(1, &n, cols, c, nullptr, stride, 1, c, nullptr, stride, 1, sign,
                               FFTW_ESTIMATE | (cols < stride ? FFTW_UNALIGNED : 0));
  }
  static void execute(Plan p, float* buf) {
    auto* c = reinterpret_cast<fftwf_complex*>(buf);
    fftwf_execute_dft(p, c, c);
  }
  static void destroy(Plan p) { fftwf_destroy_plan(p); }
  static float* alloc(size_t n) { return static_cast<float*>(fftwf_malloc(n * sizeof(float))); }
  static void release(float* p) { fftwf_free(p); }
};
template <> struct Fftw<double> {
  using Plan = fftw_plan;
  static Plan plan(int n, int cols, int stride, int sign, double* buf) {
    auto* c = reinterpret_cast<fftw_complex*>(buf);
    return fftw_plan_many_dft(1, &n, cols, c, nullptr, stride, 1, c, nullptr, stride, 1, sign,
                              FFTW_ESTIMATE | (cols < stride ? FFTW_UNALIGNED : 0));
  }
  static void execute(Plan p, double* buf) {
    auto* c = reinterpret_cast<fftw_complex*>(buf);
    fftw_execute_dft(p, c, c);
  }
  static void destroy(Plan p) { fftw_destroy_plan(p); }
  static double* alloc(size_t n) { return static_cast<double*>(fftw_malloc(n * sizeof(double))); }
  static void release(double* p) { fftw_free(p); }
};

// An FFTW-aligned array of n reals.
template <class T> struct FftBuf {
  T* p;
  explicit FftBuf(int64_t n) : p(Fftw<T>::alloc(static_cast<size_t>(std::max<int64_t>(n, 2)))) {
    SSMKIT_CHECK(p != nullptr, "einfft: out of memory for an FFT buffer of ", n, " values");
  }
  ~FftBuf() { Fftw<T>::release(p); }
  FftBuf(const FftBuf&) = delete;
  FftBuf& operator=(const FftBuf&) = delete;
};

template <class T> struct PlanCache {
  std::map<std::tuple<int, int, int, int>, typename Fftw<T>::Plan> plans;
  PlanCache() = default;
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;
  ~PlanCache() {
    for (auto& kv : plans) Fftw<T>::destroy(kv.second);
  }
};

// The cached plan for length n over `cols` adjacent columns of rows `stride` complex values apart, sign
// FFTW_FORWARD / FFTW_BACKWARD (made under the planner mutex on first use; execution with the new-array
// interface needs no lock). Plans over part of a row are FFTW_UNALIGNED (a slice starts anywhere in the row);
// whole-row plans keep FFTW's aligned kernels (every image's buffer starts 32-byte aligned: N*4*bs is a
// multiple of 4 complex values).
template <class T>
typename Fftw<T>::Plan column_plan(int64_t n, int64_t cols, int64_t stride, int sign) {
  static PlanCache<T> cache;
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  const auto key = std::make_tuple(static_cast<int>(n), static_cast<int>(cols), static_cast<int>(stride), sign);
  auto it = cache.plans.find(key);
  if (it != cache.plans.end()) return it->second;
  FftBuf<T> tmp(2 * n * stride);
  auto p = Fftw<T>::plan(static_cast<int>(n), static_cast<int>(cols), static_cast<int>(stride), sign, tmp.p);
  SSMKIT_CHECK(p != nullptr, "einfft: FFTW could not plan a length-", n, " transform over ", cols, " columns");
  cache.plans.emplace(key, p);
  return p;
}

// Work split of the transforms: B images x `chunks` slices of the bs block columns, so that a single image
// (inference at batch 1) still fills the threads. Slices are at least 8 columns wide.
struct ColumnSplit {
  int64_t chunks = 1, width = 0;
  // Task t of B * chunks: image b, block columns [d0, d1).
  void task(int64_t t, int64_t bs, int64_t& b, int64_t& d0, int64_t& d1) const {
    b = t / chunks;
    d0 = t % chunks * width;
    d1 = std::min(bs, d0 + width);
  }
};
ColumnSplit column_split(int64_t B, int64_t bs) {
  ColumnSplit c;
  const int64_t nth = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (B < 2 * nth) c.chunks = std::max<int64_t>(1, std::min<int64_t>((2 * nth + B - 1) / B, bs / 8));
  c.width = (bs + c.chunks - 1) / c.chunks;
  c.chunks = (bs + c.width - 1) / c.width;
  return c;
}

// Runs the length-N transform down the columns [k*bs + d0, k*bs + d1) of every block k of one image's
// interleaved buffer c (N rows of K complex values); the whole row at once when the slice is all of bs.
template <class T>
void transform_columns(T* c, int64_t N, int64_t bs, int64_t d0, int64_t d1, int sign) {
  if (N <= 1) return;
  const int64_t K = kEinFFTBlocks * bs;
  if (d0 == 0 && d1 == bs) return Fftw<T>::execute(column_plan<T>(N, K, K, sign), c);
  auto plan = column_plan<T>(N, d1 - d0, K, sign);
  for (int64_t k = 0; k < kEinFFTBlocks; ++k) Fftw<T>::execute(plan, c + 2 * (k * bs + d0));
}

// ---------------------------------------------------------------------------------------------------------
// The 2-D unitary DFT over (token, block) and the real part of its inverse.
// Layout: x, re, im, y (B,N,4,bs) contiguous; K = 4*bs columns per token.

// x real -> (re, im) = V x, V the unitary forward DFT over (N, 4).
template <class T>
void dft2_forward_real(T* re, T* im, const T* x, int64_t B, int64_t N, int64_t bs) {
  const int64_t K = kEinFFTBlocks * bs;
  FftBuf<T> buf(2 * B * N * K);
  const ColumnSplit split = column_split(B, bs);
  const T s = T(1) / std::sqrt(T(4 * N));
#pragma omp parallel for schedule(static) if (B * split.chunks > 1)
  for (int64_t task = 0; task < B * split.chunks; ++task) {
    int64_t b, d0, d1;
    split.task(task, bs, b, d0, d1);
    T* c = buf.p + 2 * b * N * K;
    const T* xb = x + b * N * K;
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = xb + n * K;
      T* cr = c + 2 * n * K;
      for (int64_t d = d0; d < d1; ++d) {
        // 4-point DFT e^{-2 pi i jk/4} of a real sequence x0..x3
        const T x0 = xr[d], x1 = xr[bs + d], x2 = xr[2 * bs + d], x3 = xr[3 * bs + d];
        const T a = x0 - x2, bb = x1 - x3;
        cr[2 * d] = x0 + x1 + x2 + x3;
        cr[2 * d + 1] = 0;
        cr[2 * (bs + d)] = a;
        cr[2 * (bs + d) + 1] = -bb;
        cr[2 * (2 * bs + d)] = x0 - x1 + x2 - x3;
        cr[2 * (2 * bs + d) + 1] = 0;
        cr[2 * (3 * bs + d)] = a;
        cr[2 * (3 * bs + d) + 1] = bb;
      }
    }
    transform_columns(c, N, bs, d0, d1, FFTW_FORWARD);
    T* rb = re + b * N * K;
    T* ib = im + b * N * K;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < kEinFFTBlocks; ++k)
        for (int64_t i = n * K + k * bs + d0; i < n * K + k * bs + d1; ++i) {
          rb[i] = s * c[2 * i];
          ib[i] = s * c[2 * i + 1];
        }
  }
}

// (re, im) -> y = Re(U (re + i im)), U the unitary inverse DFT over (N, 4).
template <class T>
void idft2_real_part(T* y, const T* re, const T* im, int64_t B, int64_t N, int64_t bs) {
  const int64_t K = kEinFFTBlocks * bs;
  FftBuf<T> buf(2 * B * N * K);
  const ColumnSplit split = column_split(B, bs);
  const T s = T(1) / std::sqrt(T(4 * N));
#pragma omp parallel for schedule(static) if (B * split.chunks > 1)
  for (int64_t task = 0; task < B * split.chunks; ++task) {
    int64_t b, d0, d1;
    split.task(task, bs, b, d0, d1);
    T* c = buf.p + 2 * b * N * K;
    const T* rb = re + b * N * K;
    const T* ib = im + b * N * K;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < kEinFFTBlocks; ++k)
        for (int64_t i = n * K + k * bs + d0; i < n * K + k * bs + d1; ++i) {
          c[2 * i] = rb[i];
          c[2 * i + 1] = ib[i];
        }
    transform_columns(c, N, bs, d0, d1, FFTW_BACKWARD);
    T* yb = y + b * N * K;
    for (int64_t n = 0; n < N; ++n) {
      const T* cr = c + 2 * n * K;
      T* yr = yb + n * K;
      for (int64_t d = d0; d < d1; ++d) {
        // real part of the 4-point inverse DFT e^{+2 pi i jk/4}
        const T r0 = cr[2 * d], r1 = cr[2 * (bs + d)], i1 = cr[2 * (bs + d) + 1];
        const T r2 = cr[2 * (2 * bs + d)], r3 = cr[2 * (3 * bs + d)], i3 = cr[2 * (3 * bs + d) + 1];
        yr[d] = s * (r0 + r1 + r2 + r3);
        yr[bs + d] = s * (r0 - i1 - r2 + i3);
        yr[2 * bs + d] = s * (r0 - r1 + r2 - r3);
        yr[3 * bs + d] = s * (r0 + i1 - r2 - i3);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Block-diagonal complex layer: (outR, outI) = (inR + i inI)(Wr + i Wi) + (br + i bi), per block k,
// rows M, each block a (M,bs) slice with row stride K. W (2,4,bs,bs), b (2,4,bs).

// Rows in blocks of at least 64 (the tile kernel's minimum), about four per thread; each block's 16 small
// products run on one thread (gemm() goes serial inside a parallel region).
int64_t row_block(int64_t M) {
  const int64_t nth = omp_in_parallel() ? 1 : omp_get_max_threads();
  return std::max<int64_t>(64, (M + 4 * nth - 1) / (4 * nth));
}

template <class T>
void complex_block_layer(T* outR, T* outI, const T* inR, const T* inI, const T* w, const T* bias, int64_t M,
                         int64_t bs) {
  const int64_t K = kEinFFTBlocks * bs, bb = bs * bs, blk = row_block(M), nblk = (M + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (nblk > 1 && M * K * bs > (1 << 17))
  for (int64_t r = 0; r < nblk; ++r) {
    const int64_t m0 = r * blk, mr = std::min(blk, M - m0);
    T *oR = outR + m0 * K, *oI = outI + m0 * K;
    const T *iR = inR + m0 * K, *iI = inI + m0 * K;
    for (int64_t m = 0; m < mr; ++m)
      for (int64_t c = 0; c < K; ++c) {
        oR[m * K + c] = bias[c];
        oI[m * K + c] = bias[K + c];
      }
    for (int64_t k = 0; k < kEinFFTBlocks; ++k) {
      const T* Wr = w + k * bb;
      const T* Wi = w + (kEinFFTBlocks + k) * bb;
      const int64_t o = k * bs;
      gemm(false, false, mr, bs, bs, T(1), iR + o, K, Wr, bs, T(1), oR + o, K);
      gemm(false, false, mr, bs, bs, T(-1), iI + o, K, Wi, bs, T(1), oR + o, K);
      gemm(false, false, mr, bs, bs, T(1), iR + o, K, Wi, bs, T(1), oI + o, K);
      gemm(false, false, mr, bs, bs, T(1), iI + o, K, Wr, bs, T(1), oI + o, K);
    }
  }
}

// Backward of complex_block_layer: (gR, gI) are d loss / d (outR, outI). Adds the weight and bias gradients
// into dw, db; writes d loss / d (inR, inI) into (ginR, ginI) when those are non-null.
template <class T>
void complex_block_layer_backward(T* ginR, T* ginI, T* dw, T* db, const T* gR, const T* gI, const T* inR,
                                  const T* inI, const T* w, int64_t M, int64_t bs) {
  const int64_t K = kEinFFTBlocks * bs, bb = bs * bs;
  for (int64_t k = 0; k < kEinFFTBlocks; ++k) {
    T* dWr = dw + k * bb;
    T* dWi = dw + (kEinFFTBlocks + k) * bb;
    const int64_t o = k * bs;
    // dWr += inR^T gR + inI^T gI;  dWi += -inI^T gR + inR^T gI
    gemm(true, false, bs, bs, M, T(1), inR + o, K, gR + o, K, T(1), dWr, bs);
    gemm(true, false, bs, bs, M, T(1), inI + o, K, gI + o, K, T(1), dWr, bs);
    gemm(true, false, bs, bs, M, T(-1), inI + o, K, gR + o, K, T(1), dWi, bs);
    gemm(true, false, bs, bs, M, T(1), inR + o, K, gI + o, K, T(1), dWi, bs);
  }
  if (ginR) {
    // ginR = gR Wr^T + gI Wi^T;  ginI = -gR Wi^T + gI Wr^T, row blocks in parallel
    const int64_t blk = row_block(M), nblk = (M + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (nblk > 1 && M * K * bs > (1 << 17))
    for (int64_t r = 0; r < nblk; ++r) {
      const int64_t m0 = r * blk, mr = std::min(blk, M - m0);
      const T *g_r = gR + m0 * K, *g_i = gI + m0 * K;
      T *o_r = ginR + m0 * K, *o_i = ginI + m0 * K;
      for (int64_t k = 0; k < kEinFFTBlocks; ++k) {
        const T* Wr = w + k * bb;
        const T* Wi = w + (kEinFFTBlocks + k) * bb;
        const int64_t o = k * bs;
        gemm(false, true, mr, bs, bs, T(1), g_r + o, K, Wr, bs, T(0), o_r + o, K);
        gemm(false, true, mr, bs, bs, T(1), g_i + o, K, Wi, bs, T(1), o_r + o, K);
        gemm(false, true, mr, bs, bs, T(-1), g_r + o, K, Wi, bs, T(0), o_i + o, K);
        gemm(false, true, mr, bs, bs, T(1), g_i + o, K, Wr, bs, T(1), o_i + o, K);
      }
    }
  }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < K; ++c) {
      db[c] += gR[m * K + c];
      db[K + c] += gI[m * K + c];
    }
}

// ---------------------------------------------------------------------------------------------------------
// Forward and backward on raw arrays.

template <class T>
void forward_impl(T* y, EinFFTCache& c, const T* x, const T* w1, const T* b1, const T* w2, const T* b2, int64_t B,
                  int64_t N, int64_t bs, double lambda) {
  const int64_t M = B * N, n = M * kEinFFTBlocks * bs;
  T *Fr = c.Fr.data<T>(), *Fi = c.Fi.data<T>(), *R1 = c.R1.data<T>(), *I1 = c.I1.data<T>();
  T *Sr = c.Sr.data<T>(), *Si = c.Si.data<T>();
  dft2_forward_real(Fr, Fi, x, B, N, bs);
  complex_block_layer(R1, I1, Fr, Fi, w1, b1, M, bs);
  const T lam = static_cast<T>(lambda);
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    R1[i] = R1[i] > T(0) ? R1[i] : T(0);
    I1[i] = I1[i] > T(0) ? I1[i] : T(0);
  }
  complex_block_layer(Sr, Si, R1, I1, w2, b2, M, bs);
  auto shrink = [lam](T v) { return v > lam ? v - lam : (v < -lam ? v + lam : T(0)); };
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    Sr[i] = shrink(Sr[i]);
    Si[i] = shrink(Si[i]);
  }
  idft2_real_part(y, Sr, Si, B, N, bs);
}

template <class T>
void backward_impl(T* dx, T* dw1, T* db1, T* dw2, T* db2, const T* dy, const EinFFTCache& c, const T* w1,
                   const T* w2, int64_t B, int64_t N, int64_t bs) {
  const int64_t M = B * N, n = M * kEinFFTBlocks * bs;
  const T *Fr = c.Fr.data<T>(), *Fi = c.Fi.data<T>(), *R1 = c.R1.data<T>(), *I1 = c.I1.data<T>();
  const T *Sr = c.Sr.data<T>(), *Si = c.Si.data<T>();
  Tensor t_gr = Tensor::uninitialized({n}, c.Fr.dtype()), t_gi = Tensor::uninitialized({n}, c.Fr.dtype());
  Tensor t_hr = Tensor::uninitialized({n}, c.Fr.dtype()), t_hi = Tensor::uninitialized({n}, c.Fr.dtype());
  T *gr = t_gr.data<T>(), *gi = t_gi.data<T>(), *hr = t_hr.data<T>(), *hi = t_hi.data<T>();
  // d loss / d S = unitary forward DFT of dy, through the softshrink mask (zero outputs had |v| <= lambda)
  dft2_forward_real(gr, gi, dy, B, N, bs);
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    if (Sr[i] == T(0)) gr[i] = 0;
    if (Si[i] == T(0)) gi[i] = 0;
  }
  complex_block_layer_backward(hr, hi, dw2, db2, gr, gi, R1, I1, w2, M, bs);
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    if (!(R1[i] > T(0))) hr[i] = 0;
    if (!(I1[i] > T(0))) hi[i] = 0;
  }
  complex_block_layer_backward(gr, gi, dw1, db1, hr, hi, Fr, Fi, w1, M, bs);
  idft2_real_part(dx, gr, gi, B, N, bs);
}

struct Dims {
  int64_t B, N, C, bs;
};

Dims check_args(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2) {
  SSMKIT_CHECK(x.ndim() == 3, "einfft: x must be (B,N,C), got ", shape_str(x.shape()));
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  SSMKIT_CHECK(C % kEinFFTBlocks == 0 && C > 0, "einfft: channels ", C, " must be a positive multiple of ",
               kEinFFTBlocks);
  SSMKIT_CHECK(B > 0 && N > 0, "einfft: x must have tokens, got ", shape_str(x.shape()));
  const int64_t bs = C / kEinFFTBlocks;
  const Shape ws{2, kEinFFTBlocks, bs, bs}, bsh{2, kEinFFTBlocks, bs};
  SSMKIT_CHECK(w1.shape() == ws && w2.shape() == ws, "einfft: complex weights must be ", shape_str(ws), ", got ",
               shape_str(w1.shape()), " and ", shape_str(w2.shape()));
  SSMKIT_CHECK(b1.shape() == bsh && b2.shape() == bsh, "einfft: complex biases must be ", shape_str(bsh),
               ", got ", shape_str(b1.shape()), " and ", shape_str(b2.shape()));
  const DType dt = x.dtype();
  SSMKIT_CHECK((dt == DType::F32 || dt == DType::F64) && w1.dtype() == dt && w2.dtype() == dt && b1.dtype() == dt &&
                   b2.dtype() == dt,
               "einfft: x and the parameters must all be F32 or all F64");
  return {B, N, C, bs};
}

// t, or a zero tensor of `shape` when t is undefined (gradients accumulate into it).
void ensure_grad(Tensor& t, const Shape& shape, DType dt, const char* name) {
  if (!t.defined()) {
    t = Tensor::zeros(shape, dt);
    return;
  }
  SSMKIT_CHECK(t.shape() == shape && t.dtype() == dt && t.is_contiguous(), "einfft_backward: ", name, " must be ",
               shape_str(shape), " contiguous ", dtype_name(dt), ", got ", shape_str(t.shape()));
}

}  // namespace

void einfft_forward(Tensor& y, EinFFTCache* cache, const Tensor& x0, const Tensor& w10, const Tensor& b10,
                    const Tensor& w20, const Tensor& b20, double lambda) {
  const Dims d = check_args(x0, w10, b10, w20, b20);
  SSMKIT_CHECK(lambda >= 0, "einfft: sparsity threshold must be >= 0, got ", lambda);
  const Tensor x = x0.contiguous(), w1 = w10.contiguous(), b1 = b10.contiguous(), w2 = w20.contiguous(),
               b2 = b20.contiguous();
  const DType dt = x.dtype();
  const Shape s4{d.B, d.N, kEinFFTBlocks, d.bs};
  EinFFTCache local;
  EinFFTCache& c = cache ? *cache : local;
  c.Fr = Tensor::uninitialized(s4, dt);
  c.Fi = Tensor::uninitialized(s4, dt);
  c.R1 = Tensor::uninitialized(s4, dt);
  c.I1 = Tensor::uninitialized(s4, dt);
  c.Sr = Tensor::uninitialized(s4, dt);
  c.Si = Tensor::uninitialized(s4, dt);
  c.lambda = lambda;
  if (!(y.defined() && y.shape() == x.shape() && y.dtype() == dt && y.is_contiguous())) y = Tensor::uninitialized(x.shape(), dt);
  if (dt == DType::F64)
    forward_impl<double>(y.data<double>(), c, x.data<double>(), w1.data<double>(), b1.data<double>(),
                         w2.data<double>(), b2.data<double>(), d.B, d.N, d.bs, lambda);
  else
    forward_impl<float>(y.data<float>(), c, x.data<float>(), w1.data<float>(), b1.data<float>(), w2.data<float>(),
                        b2.data<float>(), d.B, d.N, d.bs, lambda);
}

void einfft_backward(Tensor& dx, Tensor& dw1, Tensor& db1, Tensor& dw2, Tensor& db2, const Tensor& dy0,
                     const EinFFTCache& c, const Tensor& w10, const Tensor& w20) {
  SSMKIT_CHECK(c.Fr.defined() && c.Fr.ndim() == 4, "einfft_backward: the cache is empty (run einfft_forward with a "
               "cache first)");
  const int64_t B = c.Fr.size(0), N = c.Fr.size(1), bs = c.Fr.size(3), C = kEinFFTBlocks * bs;
  const DType dt = c.Fr.dtype();
  const Tensor dy = dy0.contiguous(), w1 = w10.contiguous(), w2 = w20.contiguous();
  SSMKIT_CHECK(dy.shape() == Shape({B, N, C}) && dy.dtype() == dt, "einfft_backward: dy must be ",
               shape_str({B, N, C}), " ", dtype_name(dt), ", got ", shape_str(dy.shape()));
  const Shape ws{2, kEinFFTBlocks, bs, bs}, bsh{2, kEinFFTBlocks, bs};
  SSMKIT_CHECK(w1.shape() == ws && w2.shape() == ws && w1.dtype() == dt && w2.dtype() == dt,
               "einfft_backward: weights must be ", shape_str(ws), " of the cache's dtype");
  ensure_grad(dw1, ws, dt, "dw1");
  ensure_grad(dw2, ws, dt, "dw2");
  ensure_grad(db1, bsh, dt, "db1");
  ensure_grad(db2, bsh, dt, "db2");
  if (!(dx.defined() && dx.shape() == dy.shape() && dx.dtype() == dt && dx.is_contiguous()))
    dx = Tensor::uninitialized(dy.shape(), dt);
  if (dt == DType::F64)
    backward_impl<double>(dx.data<double>(), dw1.data<double>(), db1.data<double>(), dw2.data<double>(),
                          db2.data<double>(), dy.data<double>(), c, w1.data<double>(), w2.data<double>(), B, N, bs);
  else
    backward_impl<float>(dx.data<float>(), dw1.data<float>(), db1.data<float>(), dw2.data<float>(), db2.data<float>(),
                         dy.data<float>(), c, w1.data<float>(), w2.data<float>(), B, N, bs);
}

Var einfft(const Var& x, const Var& w1, const Var& b1, const Var& w2,
                 const Var& b2, double lambda) {
  const bool record = grad_enabled() && (x.requires_grad() || w1.requires_grad() || b1.requires_grad() ||
                                               w2.requires_grad() || b2.requires_grad());
  auto cache = std::make_shared<EinFFTCache>();
  Tensor y;
  einfft_forward(y, record ? cache.get() : nullptr, x.value(), w1.value(), b1.value(), w2.value(), b2.value(),
                 lambda);
  if (!record) return Var(y);
  Tensor W1 = w1.value(), W2 = w2.value();
  return make_result(
      y, {x, w1, b1, w2, b2},
      [cache, W1, W2](const Tensor& g, const std::vector<bool>&) {
        Tensor dx, dw1, db1, dw2, db2;
        einfft_backward(dx, dw1, db1, dw2, db2, g, *cache, W1, W2);
        return std::vector<Tensor>{dx, dw1, db1, dw2, db2};
      },
      "einfft");
}

EinFFT::EinFFT(int64_t d, Rng& rng) : dim(d) {
  SSMKIT_CHECK(d > 0 && d % kEinFFTBlocks == 0, "EinFFT: dim ", d, " must be a positive multiple of ", kEinFFTBlocks);
  const int64_t bs = d / kEinFFTBlocks;
  auto draw = [&rng](const Shape& s) {
    Tensor t = Tensor::zeros(s);
    normal_(t, rng, 0.0, 0.02);
    return t;
  };
  complex_weight_1 = register_parameter("complex_weight_1", draw({2, kEinFFTBlocks, bs, bs}));
  complex_weight_2 = register_parameter("complex_weight_2", draw({2, kEinFFTBlocks, bs, bs}));
  complex_bias_1 = register_parameter("complex_bias_1", draw({2, kEinFFTBlocks, bs}));
  complex_bias_2 = register_parameter("complex_bias_2", draw({2, kEinFFTBlocks, bs}));
}

Var EinFFT::forward(const Var& x) const {
  return einfft(x, complex_weight_1, complex_bias_1, complex_weight_2, complex_bias_2);
}

}  // namespace ssmkit::core
