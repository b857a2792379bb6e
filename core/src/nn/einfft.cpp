// EinFFT forward and backward (../shared/specs/vision.md §3.2; badripatro/Simba classification/simba.py).
// The 2-D DFT over (token, block) is separable: a hand-written 4-point DFT across the blocks and FFTW along
// the tokens (in-place "many" plans per (N, columns, row stride, direction), cached). Spectra are kept per
// token and block as [bs real parts | bs imaginary parts], so that each block of a complex layer is one real
// product with the (2bs, 2bs) matrix [[Wr, Wi], [-Wi, Wr]] (a quarter of the calls of the four planar
// products, alpha 1, bias in the accumulators), and ReLU / softshrink run on each row block right after its
// products, while the rows are in cache.
// Backward (real loss): the adjoint of y = Re(U S) with U the unitary inverse DFT is dS = conj(U) dy = the
// forward unitary DFT of dy; the adjoint of F = V x (V the forward DFT, real x) is dx = Re(conj(V) dF). Both
// matrices are symmetric, so the same two transforms serve forward and backward.
// Threads: images x slices of the block columns for the transforms, even row blocks for the complex layers
// (FFTW itself runs single-threaded). Not here: a half-spectrum (r2c) variant.
#include "ssmkit/core/nn/einfft.h"

#include <fftw3.h>

#include <cmath>
#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include <omp.h>
#include <tuple>

#include "../ops/gemm_bias_rows.h"
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
// Layouts: x, y (B,N,4,bs) contiguous, K = 4*bs values per token; spectra (B,N,4,2,bs): per token and block
// the bs real parts, then the bs imaginary parts (2K values per token), so that each block's complex layer
// is one real product (complex_layer).

// x real -> F = V x, V the unitary forward DFT over (N, 4).
template <class T>
void dft2_forward_real(T* F, const T* x, int64_t B, int64_t N, int64_t bs) {
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
    T* fb = F + 2 * b * N * K;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < kEinFFTBlocks; ++k) {
        const T* ck = c + 2 * (n * K + k * bs);
        T* re = fb + 2 * (n * K + k * bs);
        T* im = re + bs;
        for (int64_t d = d0; d < d1; ++d) {
          re[d] = s * ck[2 * d];
          im[d] = s * ck[2 * d + 1];
        }
      }
  }
}

// S (spectrum layout) -> y = Re(U S), U the unitary inverse DFT over (N, 4).
template <class T>
void idft2_real_part(T* y, const T* S, int64_t B, int64_t N, int64_t bs) {
  const int64_t K = kEinFFTBlocks * bs;
  FftBuf<T> buf(2 * B * N * K);
  const ColumnSplit split = column_split(B, bs);
  const T s = T(1) / std::sqrt(T(4 * N));
#pragma omp parallel for schedule(static) if (B * split.chunks > 1)
  for (int64_t task = 0; task < B * split.chunks; ++task) {
    int64_t b, d0, d1;
    split.task(task, bs, b, d0, d1);
    T* c = buf.p + 2 * b * N * K;
    const T* sb = S + 2 * b * N * K;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < kEinFFTBlocks; ++k) {
        T* ck = c + 2 * (n * K + k * bs);
        const T* re = sb + 2 * (n * K + k * bs);
        const T* im = re + bs;
        for (int64_t d = d0; d < d1; ++d) {
          ck[2 * d] = re[d];
          ck[2 * d + 1] = im[d];
        }
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
// Block-diagonal complex layer: out = in (Wr + i Wi) + (br + i bi) per block k, on the spectrum layout. A
// complex product is one real one: [oR | oI] = [iR | iI] [[Wr, Wi], [-Wi, Wr]], so each block is a single
// (rows, 2bs) x (2bs, 2bs) gemm() with the bias starting the accumulators. W (2,4,bs,bs), b (2,4,bs) as the
// official parameters (index 0 real, 1 imaginary).

// The real (2bs, 2bs) matrix of each block, [[Wr, Wi], [-Wi, Wr]], or its transpose [[Wr', -Wi'], [Wi', Wr']]
// for the input gradient; (4, 2bs, 2bs).
template <class T>
std::vector<T> real_block_matrices(const T* w, int64_t bs, bool transpose) {
  const int64_t bb = bs * bs, n2 = 2 * bs;
  std::vector<T> m(static_cast<size_t>(kEinFFTBlocks * n2 * n2));
  for (int64_t k = 0; k < kEinFFTBlocks; ++k) {
    const T* Wr = w + k * bb;
    const T* Wi = w + (kEinFFTBlocks + k) * bb;
    T* mk = m.data() + k * n2 * n2;
    for (int64_t i = 0; i < bs; ++i)
      for (int64_t j = 0; j < bs; ++j) {
        const T r = transpose ? Wr[j * bs + i] : Wr[i * bs + j];
        const T im = transpose ? -Wi[j * bs + i] : Wi[i * bs + j];
        mk[i * n2 + j] = r;
        mk[i * n2 + bs + j] = im;
        mk[(bs + i) * n2 + j] = -im;
        mk[(bs + i) * n2 + bs + j] = r;
      }
  }
  return m;
}

// Rows [0, rows) of one block: C = A W (+ bias), all (., n2) slices of rows lda / ldc apart, W (n2, n2).
// The bias (n2) starts the tile kernel's accumulators where it takes the product; null: no bias.
template <class T>
void block_product(int64_t rows, int64_t n2, const T* A, int64_t lda, const T* W, const T* bias, T* C, int64_t ldc) {
  if (bias && detail::gemm_bias_rows(false, false, rows, n2, n2, A, lda, W, n2, bias, C, ldc)) return;
  if (bias)
    for (int64_t m = 0; m < rows; ++m) std::copy(bias, bias + n2, C + m * ldc);
  gemm(false, false, rows, n2, n2, T(1), A, lda, W, n2, bias ? T(1) : T(0), C, ldc);
}

// Row blocks of the complex layers: a multiple of the thread count, ~128 rows each (the tile kernel takes
// blocks of 64 rows and more), split evenly; one block per call inside a parallel region.
int64_t row_blocks(int64_t M) {
  const int64_t nth = omp_in_parallel() ? 1 : omp_get_max_threads();
  return std::max<int64_t>(1, nth * std::max<int64_t>(1, M / (128 * nth)));
}

// What runs on each row block once its products are done, while the rows are still in cache.
enum class Epilogue { kNone, kRelu, kShrink, kReluMask };

// out (M, 2K) = in W + b per block, then the epilogue on the block's rows: kRelu max(v, 0); kShrink
// softshrink(v, lambda); kReluMask zeroes out[i] where mask[i] is not positive (the ReLU's backward).
// W the official (2,4,bs,bs) weights, or their transposes when `wT` (the input gradient); b null: no bias.
template <class T>
void complex_layer(T* out, const T* in, const T* w, bool wT, const T* b, int64_t M, int64_t bs, Epilogue epi,
                   T lambda = T(0), const T* mask = nullptr) {
  const int64_t K2 = 2 * kEinFFTBlocks * bs, n2 = 2 * bs;
  const std::vector<T> W = real_block_matrices(w, bs, wT);
  std::vector<T> bias;
  if (b) {
    bias.resize(static_cast<size_t>(K2));
    for (int64_t k = 0; k < kEinFFTBlocks; ++k)
      for (int64_t j = 0; j < bs; ++j) {
        bias[static_cast<size_t>(k * n2 + j)] = b[k * bs + j];
        bias[static_cast<size_t>(k * n2 + bs + j)] = b[kEinFFTBlocks * bs + k * bs + j];
      }
  }
  const int64_t nblk = row_blocks(M);
#pragma omp parallel for schedule(static) if (nblk > 1 && M * K2 * n2 > (1 << 17))
  for (int64_t r = 0; r < nblk; ++r) {
    const int64_t m0 = r * M / nblk, m1 = (r + 1) * M / nblk;
    if (m1 <= m0) continue;
    for (int64_t k = 0; k < kEinFFTBlocks; ++k)
      block_product(m1 - m0, n2, in + m0 * K2 + k * n2, K2, W.data() + k * n2 * n2, b ? bias.data() + k * n2 : nullptr,
                    out + m0 * K2 + k * n2, K2);
    T* o = out + m0 * K2;
    const int64_t n = (m1 - m0) * K2;
    if (epi == Epilogue::kRelu) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = o[i] > T(0) ? o[i] : T(0);
    } else if (epi == Epilogue::kShrink) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T v = o[i];
        o[i] = v > lambda ? v - lambda : (v < -lambda ? v + lambda : T(0));
      }
    } else if (epi == Epilogue::kReluMask) {
      const T* mk = mask + m0 * K2;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = mk[i] > T(0) ? o[i] : T(0);
    }
  }
}

// Weight and bias gradients of complex_layer: with G = d loss / d out and A its input (both (M, 2K)), the real
// block matrix's gradient is A_k' G_k (one product per block, (2bs, 2bs)), folded back onto the complex
// weights: dWr += top-left + bottom-right, dWi += top-right - bottom-left. db += the column sums of G. dw
// (2,4,bs,bs), db (2,4,bs) added into.
template <class T>
void complex_layer_weight_grads(T* dw, T* db, const T* G, const T* A, int64_t M, int64_t bs) {
  const int64_t K = kEinFFTBlocks * bs, K2 = 2 * K, bb = bs * bs, n2 = 2 * bs;
  std::vector<T> g(static_cast<size_t>(n2 * n2));
  for (int64_t k = 0; k < kEinFFTBlocks; ++k) {
    gemm(true, false, n2, n2, M, T(1), A + k * n2, K2, G + k * n2, K2, T(0), g.data(), n2);
    T* dWr = dw + k * bb;
    T* dWi = dw + (kEinFFTBlocks + k) * bb;
    for (int64_t i = 0; i < bs; ++i)
      for (int64_t j = 0; j < bs; ++j) {
        dWr[i * bs + j] += g[static_cast<size_t>(i * n2 + j)] + g[static_cast<size_t>((bs + i) * n2 + bs + j)];
        dWi[i * bs + j] += g[static_cast<size_t>(i * n2 + bs + j)] - g[static_cast<size_t>((bs + i) * n2 + j)];
      }
  }
  std::vector<T> colsum(static_cast<size_t>(K2), T(0));
  for (int64_t m = 0; m < M; ++m) {
    const T* gm = G + m * K2;
    T* cs = colsum.data();
#pragma omp simd
    for (int64_t c = 0; c < K2; ++c) cs[c] += gm[c];
  }
  for (int64_t k = 0; k < kEinFFTBlocks; ++k)
    for (int64_t j = 0; j < bs; ++j) {
      db[k * bs + j] += colsum[static_cast<size_t>(k * n2 + j)];
      db[K + k * bs + j] += colsum[static_cast<size_t>(k * n2 + bs + j)];
    }
}

// ---------------------------------------------------------------------------------------------------------
// Forward and backward on raw arrays.

template <class T>
void forward_impl(T* y, EinFFTCache& c, const T* x, const T* w1, const T* b1, const T* w2, const T* b2, int64_t B,
                  int64_t N, int64_t bs, double lambda) {
  const int64_t M = B * N;
  T *F = c.F.data<T>(), *H = c.H.data<T>(), *S = c.S.data<T>();
  dft2_forward_real(F, x, B, N, bs);
  complex_layer(H, F, w1, false, b1, M, bs, Epilogue::kRelu);
  complex_layer(S, H, w2, false, b2, M, bs, Epilogue::kShrink, static_cast<T>(lambda));
  idft2_real_part(y, S, B, N, bs);
}

template <class T>
void backward_impl(T* dx, T* dw1, T* db1, T* dw2, T* db2, const T* dy, const EinFFTCache& c, const T* w1,
                   const T* w2, int64_t B, int64_t N, int64_t bs) {
  const int64_t M = B * N, n = 2 * M * kEinFFTBlocks * bs;
  const T *F = c.F.data<T>(), *H = c.H.data<T>(), *S = c.S.data<T>();
  Tensor t_g = Tensor::uninitialized({n}, c.F.dtype()), t_h = Tensor::uninitialized({n}, c.F.dtype());
  T *g = t_g.data<T>(), *h = t_h.data<T>();
  // d loss / d S = unitary forward DFT of dy, through the softshrink mask (zero outputs had |v| <= lambda)
  dft2_forward_real(g, dy, B, N, bs);
#pragma omp parallel for simd schedule(static) if (parallel : n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) g[i] = S[i] == T(0) ? T(0) : g[i];
  complex_layer_weight_grads(dw2, db2, g, H, M, bs);
  complex_layer(h, g, w2, true, static_cast<const T*>(nullptr), M, bs, Epilogue::kReluMask, T(0), H);
  complex_layer_weight_grads(dw1, db1, h, F, M, bs);
  complex_layer(g, h, w1, true, static_cast<const T*>(nullptr), M, bs, Epilogue::kNone);
  idft2_real_part(dx, g, B, N, bs);
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
  const Shape s5{d.B, d.N, kEinFFTBlocks, 2, d.bs};
  EinFFTCache local;
  EinFFTCache& c = cache ? *cache : local;
  c.F = Tensor::uninitialized(s5, dt);
  c.H = Tensor::uninitialized(s5, dt);
  c.S = Tensor::uninitialized(s5, dt);
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
  SSMKIT_CHECK(c.F.defined() && c.F.ndim() == 5, "einfft_backward: the cache is empty (run einfft_forward with a "
               "cache first)");
  const int64_t B = c.F.size(0), N = c.F.size(1), bs = c.F.size(4), C = kEinFFTBlocks * bs;
  const DType dt = c.F.dtype();
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
