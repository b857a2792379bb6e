// Channels-last convolution and batch norm on token maps, for the convolutional stem (patch_embed1) and the
// strided DownSamples (patch_embed2..4): conv2d_tokens (square kernel, stride, zero padding, no groups) as
// im2col rows + gemm() on blocks of output positions, and batch_norm_relu_tokens (nn.BatchNorm2d, then ReLU).
// Tokens in, tokens out: the models never build NCHW maps, and every GEMM has all the batch's positions as
// rows. Forward next to backward; F32 and F64 through one template. Follows torch.nn.Conv2d / BatchNorm2d.
// Not here: groups, dilation, asymmetric padding (core/ops/conv.h has them on NCHW tensors).
// Shapes: B batch, H x W input grid, C in channels, O out channels, K kernel side, OH x OW output grid,
// P = OH*OW, M = B*P output rows, R = K*K*C the length of an im2col row (taps kh, kw, then channels).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "column_sums.h"
#include "conv_tokens_onednn.h"
#include "ssmkit/core/simd_clones.h"
#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/vision/ops.h"

namespace ssmkit::vision {

using core::DType;
using core::Shape;
using core::Tensor;
using core::Var;

namespace {

constexpr int64_t kParallelMacs = 1 << 18;  // below this many multiply-adds a conv stays on one thread
constexpr int64_t kBlockFloats = 1 << 15;   // im2col block target (128 KB of floats)
constexpr int64_t kMinBlockRows = 256;      // rows per GEMM call at least (the packing of W is paid per call)
constexpr int64_t kMaxSlices = 8;           // weight-gradient partials (fixed: results never depend on threads)
constexpr int64_t kMinUnits = 4;            // backward work units at least, batch permitting
constexpr int64_t kBnRows = detail::kColumnSumRows;  // rows per batch-norm statistics chunk

struct ConvTok {
  int64_t B, H, W, C, O, K, S, Pd, OH, OW;
  int64_t P() const { return OH * OW; }
  int64_t R() const { return K * K * C; }
};

template <class T>
std::unique_ptr<T[]> scratch(int64_t n) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(std::max<int64_t>(n, 1))]);  // not cleared
}

// Rows per GEMM block: about kBlockFloats of im2col, at least kMinBlockRows, at most M.
int64_t block_rows(int64_t M, int64_t R) { return std::min(M, std::max(kMinBlockRows, kBlockFloats / R)); }

// The input with its zero border: xp (B, Hp, Wp, C), Hp = H + 2 Pd, Wp = W + 2 Pd, then kSlack zero elements
// (the block copies of im2col_rows may read up to 32 bytes past a run).
constexpr int64_t kSlack = 8;

// rows [r0, r1) of the padded map (inline loops: the rows can be short, a library call each would cost more)
template <class T>
SSMKIT_SIMD_CLONES __attribute__((optimize("no-tree-loop-distribute-patterns"))) void pad_rows(
    T* __restrict xp, const T* __restrict x, const ConvTok& d, int64_t r0, int64_t r1) {
  const int64_t Hp = d.H + 2 * d.Pd, Wp = d.W + 2 * d.Pd, C = d.C, lo = d.Pd * C, hi = (d.Pd + d.W) * C;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / Hp, h = r % Hp - d.Pd;
    T* dst = xp + r * Wp * C;
    if (h < 0 || h >= d.H) {
      for (int64_t j = 0; j < Wp * C; ++j) dst[j] = T(0);
      continue;
    }
    const T* src = x + (b * d.H + h) * d.W * C - lo;
    for (int64_t j = 0; j < lo; ++j) dst[j] = T(0);
    for (int64_t j = lo; j < hi; ++j) dst[j] = src[j];
    for (int64_t j = hi; j < Wp * C; ++j) dst[j] = T(0);
  }
}

template <class T>
void pad_map(T* xp, const T* x, const ConvTok& d) {
  const int64_t Hp = d.H + 2 * d.Pd, Wp = d.W + 2 * d.Pd, rows = d.B * Hp;
  constexpr int64_t kRows = 64;
#pragma omp parallel for schedule(static) if (rows * Wp * d.C > (1 << 16))
  for (int64_t r = 0; r < rows; r += kRows) pad_rows(xp, x, d, r, std::min(rows, r + kRows));
  std::fill(xp + rows * Wp * d.C, xp + rows * Wp * d.C + kSlack, T(0));
}

// col (m1-m0, R): the receptive fields of output rows [m0, m1), read from the padded map: for each kh the taps
// kw lie side by side there, K*C contiguous values, copied in 32-byte blocks. The last block of a run may
// copy up to 32 bytes too many: they land in the next run, written after it, or in col's kSlack elements.
// (The blocks stay inline register copies: as one memcpy call per run, which GCC would otherwise make of the
// loop, the calls cost 4 % of a groupmamba-micro training step.)
template <class T>
SSMKIT_SIMD_CLONES __attribute__((optimize("no-tree-loop-distribute-patterns"))) void im2col_rows(T* __restrict col, const T* __restrict xp, const ConvTok& d, int64_t m0,
                                      int64_t m1) {
  const int64_t P = d.P(), R = d.R(), KC = d.K * d.C, Hp = d.H + 2 * d.Pd, Wp = d.W + 2 * d.Pd;
  const int64_t blocks = (KC * static_cast<int64_t>(sizeof(T)) + 31) / 32;
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t b = m / P, p = m % P, oh = p / d.OW, ow = p % d.OW;
    const char* src = reinterpret_cast<const char*>(xp + ((b * Hp + oh * d.S) * Wp + ow * d.S) * d.C);
    char* dst = reinterpret_cast<char*>(col + (m - m0) * R);
    for (int64_t kh = 0; kh < d.K; ++kh) {
      const char* s = src + kh * Wp * d.C * static_cast<int64_t>(sizeof(T));
      char* t = dst + kh * KC * static_cast<int64_t>(sizeof(T));
      for (int64_t j = 0; j < blocks; ++j) std::memcpy(t + 32 * j, s + 32 * j, 32);
    }
  }
}

// dxp (the padded map of images b0, b0 + 1, ...) += the adjoint of im2col_rows for rows [m0, m1).
template <class T>
SSMKIT_SIMD_CLONES void col2im_rows_add(T* __restrict dxp, int64_t b0, const T* __restrict col, const ConvTok& d,
                                          int64_t m0, int64_t m1) {
  const int64_t P = d.P(), R = d.R(), KC = d.K * d.C, Hp = d.H + 2 * d.Pd, Wp = d.W + 2 * d.Pd;
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t b = m / P, p = m % P, oh = p / d.OW, ow = p % d.OW;
    const T* src = col + (m - m0) * R;
    for (int64_t kh = 0; kh < d.K; ++kh) {
      T* __restrict dst = dxp + (((b - b0) * Hp + oh * d.S + kh) * Wp + ow * d.S) * d.C;
      const T* __restrict sr = src + kh * KC;
      for (int64_t i = 0; i < KC; ++i) dst[i] += sr[i];
    }
  }
}

// w (O,C,K,K) -> wt (O,R) (transpose = false) or (R,O) (transpose = true), R in the im2col order (kh, kw, c);
// output channels (blocks of 16 when transposed) over threads for large weights
template <class T>
void weight_to_rows(T* wt, const T* w, const ConvTok& d, bool transpose) {
  const int64_t KK = d.K * d.K;
  if (transpose) {  // blocks of 16 output channels: 16 read streams, rows of 16 contiguous writes
#pragma omp parallel for schedule(static) if (d.O * d.C * KK > (1 << 16))
    for (int64_t o0 = 0; o0 < d.O; o0 += 16) {
      const int64_t o1 = std::min(d.O, o0 + 16);
      for (int64_t k = 0; k < KK; ++k)
        for (int64_t c = 0; c < d.C; ++c)
          for (int64_t o = o0; o < o1; ++o) wt[(k * d.C + c) * d.O + o] = w[(o * d.C + c) * KK + k];
    }
  } else {
#pragma omp parallel for schedule(static) if (d.O * d.C * KK > (1 << 16))
    for (int64_t o = 0; o < d.O; ++o) {
      T* row = wt + o * KK * d.C;
      for (int64_t k = 0; k < KK; ++k)
        for (int64_t c = 0; c < d.C; ++c) row[k * d.C + c] = w[(o * d.C + c) * KK + k];
    }
  }
}

// dw (O,C,K,K) += dwt (R,O)
template <class T>
void cols_to_weight_add(T* dw, const T* dwt, const ConvTok& d) {
  const int64_t KK = d.K * d.K;
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t k = 0; k < KK; ++k) dw[(o * d.C + c) * KK + k] += dwt[(k * d.C + c) * d.O + o];
}

// x (B,H*W,C), wtt (R,O), bias (O) or null -> y (M,O). Blocks of rows in parallel, one GEMM each (single-threaded
// inside the team); a single block runs a threaded GEMM.
template <class T>
void conv_tok_forward(T* y, const T* x, const T* wtt, const T* bias, const ConvTok& d) {
  const int64_t M = d.B * d.P(), R = d.R(), O = d.O;
  const int64_t rows = block_rows(M, R), nblk = (M + rows - 1) / rows;
  auto xp = scratch<T>(d.B * (d.H + 2 * d.Pd) * (d.W + 2 * d.Pd) * d.C + kSlack);
  pad_map(xp.get(), x, d);
  auto block = [&](T* col, int64_t k) {
    const int64_t m0 = k * rows, m1 = std::min(M, m0 + rows);
    im2col_rows(col, xp.get(), d, m0, m1);
    if (bias)
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t o = 0; o < O; ++o) y[m * O + o] = bias[o];
    core::gemm(false, false, m1 - m0, O, R, T(1), col, R, wtt, O, bias ? T(1) : T(0), y + m0 * O, O);
  };
  if (nblk == 1) {
    auto col = scratch<T>(rows * R + kSlack);
    block(col.get(), 0);
    return;
  }
#pragma omp parallel if (M * R * O > kParallelMacs)
  {
    auto col = scratch<T>(rows * R + kSlack);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < nblk; ++k) block(col.get(), k);
  }
}

// dy (M,O) -> dx (B,H*W,C) (written; null to skip), dwtt (R,O) and db (O) (added into; null to skip); wt (O,R).
// Work units are whole images (their dx never overlaps), cut into row blocks; the units are dealt to a fixed
// number of slices, each adding its weight and bias gradients into its own partial, summed in slice order.
template <class T>
void conv_tok_backward(T* dx, T* dwtt, T* db, const T* dy, const T* x, const T* wt, const ConvTok& d) {
  const int64_t P = d.P(), R = d.R(), O = d.O, M = d.B * P;
  const int64_t Hp = d.H + 2 * d.Pd, Wp = d.W + 2 * d.Pd, HWC = d.H * d.W * d.C, HpWpC = Hp * Wp * d.C;
  const int64_t rows = block_rows(M, R);
  // Images per unit: a row block's worth, but at most B / kMinUnits (the last DownSamples of a small-image
  // model have one or four positions per image, and a single unit ran on one thread). Fixed, not taken
  // from the thread count, so that the partial sums are the same on any number of threads.
  const int64_t per_unit = std::min(std::max<int64_t>(1, (rows + P - 1) / P),
                                    std::max<int64_t>(1, (d.B + kMinUnits - 1) / kMinUnits));
  const int64_t U = (d.B + per_unit - 1) / per_unit;
  const int64_t S = std::min(U, kMaxSlices);
  const bool want_w = dwtt != nullptr, want_b = db != nullptr;
  std::vector<T> wpart(want_w ? static_cast<size_t>(S * O * R) : 0, T(0));
  std::vector<T> bpart(want_b ? static_cast<size_t>(S * O) : 0, T(0));
  std::unique_ptr<T[]> xp;
  if (want_w) {
    xp = scratch<T>(d.B * HpWpC + kSlack);
    pad_map(xp.get(), x, d);
  }
#pragma omp parallel if (S > 1 && M * R * O > kParallelMacs)
  {
    auto col = scratch<T>(want_w ? rows * R + kSlack : 0);
    auto dcol = scratch<T>(dx ? rows * R : 0);
    auto dxp = scratch<T>(dx ? per_unit * HpWpC : 0);  // the unit's input gradient with its border
#pragma omp for schedule(static)
    for (int64_t s = 0; s < S; ++s) {
      T* wp = want_w ? wpart.data() + s * O * R : nullptr;
      T* bp = want_b ? bpart.data() + s * O : nullptr;
      for (int64_t u = s * U / S; u < (s + 1) * U / S; ++u) {
        const int64_t b0 = u * per_unit, b1 = std::min(d.B, b0 + per_unit);
        if (dx) std::fill(dxp.get(), dxp.get() + (b1 - b0) * HpWpC, T(0));
        for (int64_t m0 = b0 * P; m0 < b1 * P; m0 += rows) {
          const int64_t m1 = std::min(b1 * P, m0 + rows), n = m1 - m0;
          const T* g = dy + m0 * O;
          if (wp) {  // dwtt (R,O) += col^T (R,n) g (n,O)
            im2col_rows(col.get(), xp.get(), d, m0, m1);
            core::gemm(true, false, R, O, n, T(1), col.get(), R, g, O, T(1), wp, O);
          }
          if (bp)
            for (int64_t m = 0; m < n; ++m)
              for (int64_t o = 0; o < O; ++o) bp[o] += g[m * O + o];
          if (dx) {  // dcol (n,R) = g (n,O) wt (O,R), then scattered back
            core::gemm(false, false, n, R, O, T(1), g, O, wt, R, T(0), dcol.get(), R);
            col2im_rows_add(dxp.get(), b0, dcol.get(), d, m0, m1);
          }
        }
        if (dx)  // the interior of the padded gradient
          for (int64_t b = b0; b < b1; ++b)
            for (int64_t h = 0; h < d.H; ++h) {
              const T* src = dxp.get() + (((b - b0) * Hp + h + d.Pd) * Wp + d.Pd) * d.C;
              std::copy(src, src + d.W * d.C, dx + b * HWC + h * d.W * d.C);
            }
      }
    }
  }
  for (int64_t s = 0; s < S; ++s) {
    if (want_w)
      for (int64_t i = 0; i < O * R; ++i) dwtt[i] += wpart[static_cast<size_t>(s * O * R + i)];
    if (want_b)
      for (int64_t o = 0; o < O; ++o) db[o] += bpart[static_cast<size_t>(s * O + o)];
  }
}

ConvTok conv_dims(const Tensor& x, int64_t H, int64_t W, const Tensor& w, const Tensor& b, int64_t stride,
                  int64_t pad, const char* op) {
  SSMKIT_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, op, ": x must be F32 or F64, got ",
               core::dtype_name(x.dtype()));
  SSMKIT_CHECK(x.ndim() == 3 && H > 0 && W > 0 && x.size(1) == H * W, op, ": x must be (B,", H * W, ",C) for a ", H,
               "x", W, " map, got ", core::shape_str(x.shape()));
  const int64_t C = x.size(2);
  SSMKIT_CHECK(w.ndim() == 4 && w.size(1) == C && w.size(2) == w.size(3) && w.size(2) > 0 && w.dtype() == x.dtype(), op,
               ": weight must be (O,", C, ",K,K) of x's dtype, got ", core::shape_str(w.shape()));
  const int64_t O = w.size(0), K = w.size(2);
  SSMKIT_CHECK(!b.defined() || (b.shape() == Shape({O}) && b.dtype() == x.dtype()), op, ": bias must be (", O,
               ") of x's dtype, got ", core::shape_str(b.shape()));
  SSMKIT_CHECK(stride >= 1 && pad >= 0, op, ": stride must be >= 1 and padding >= 0, got ", stride, " and ", pad);
  SSMKIT_CHECK(H + 2 * pad >= K && W + 2 * pad >= K, op, ": the padded ", H, "x", W, " map (padding ", pad,
               ") is smaller than the ", K, "x", K, " kernel");
  const int64_t OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
  return {x.size(0), H, W, C, O, K, stride, pad, OH, OW};
}

detail::ConvGeometry geometry(const ConvTok& d) { return {d.B, d.H, d.W, d.C, d.O, d.K, d.S, d.Pd}; }

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Convolution

void conv2d_tokens_forward(Tensor& y, const Tensor& x0, int64_t H, int64_t W, const Tensor& w0, const Tensor& b0,
                           int64_t stride, int64_t pad) {
  const ConvTok d = conv_dims(x0, H, W, w0, b0, stride, pad, "conv2d_tokens");
  const Tensor x = x0.contiguous(), w = w0.contiguous(), b = b0.defined() ? b0.contiguous() : Tensor{};
  y = Tensor::uninitialized({d.B, d.P(), d.O}, x.dtype());
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>)
      if (detail::onednn_conv_forward(y.data<float>(), x.data<float>(), w.data<float>(),
                                      b.defined() ? b.data<float>() : nullptr, geometry(d)))
        return;
    auto wtt = scratch<T>(d.O * d.R());
    weight_to_rows(wtt.get(), w.data<T>(), d, true);
    conv_tok_forward<T>(y.data<T>(), x.data<T>(), wtt.get(), b.defined() ? b.data<T>() : nullptr, d);
  };
  if (x.dtype() == DType::F64) run(double{});
  else run(float{});
}

void conv2d_tokens_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy0, const Tensor& x0, int64_t H,
                            int64_t W, const Tensor& w0, int64_t stride, int64_t pad) {
  const char* op = "conv2d_tokens_backward";
  const ConvTok d = conv_dims(x0, H, W, w0, Tensor{}, stride, pad, op);
  const Tensor x = x0.contiguous(), w = w0.contiguous(), dy = dy0.contiguous();
  const DType dt = x.dtype();
  SSMKIT_CHECK(dy.shape() == Shape({d.B, d.P(), d.O}) && dy.dtype() == dt, op, ": dy must be (", d.B, ",", d.P(), ",",
               d.O, "), got ", core::shape_str(dy.shape()));
  auto slot = [&](Tensor* t, const Shape& s, const char* name) -> Tensor* {
    if (!t) return nullptr;
    if (!t->defined()) *t = Tensor::zeros(s, dt);
    SSMKIT_CHECK(t->shape() == s && t->dtype() == dt && t->is_contiguous(), op, ": ", name, " must be a contiguous ",
                 core::shape_str(s), " tensor to add into, got ", core::shape_str(t->shape()));
    return t;
  };
  Tensor* gw = slot(dw, w.shape(), "dw");
  Tensor* gb = slot(db, {d.O}, "db");
  if (dx) *dx = Tensor::uninitialized(x.shape(), dt);  // every value written by the backward
  auto run = [&](auto tag) {
    using T = decltype(tag);
    // oneDNN for dx and dw where it is built in (not for a single input channel, the stem's first conv on
    // gray images, where the fallback was faster); the bias gradient as column sums of dy.
    if constexpr (std::is_same_v<T, float>)
      if (d.C >= 4 && detail::onednn_conv_backward(dx ? dx->data<float>() : nullptr, gw ? gw->data<float>() : nullptr,
                                                   dy.data<float>(), x.data<float>(), w.data<float>(), geometry(d))) {
        if (gb) detail::add_column_sums(gb->data<float>(), dy.data<float>(), d.B * d.P(), d.O);
        return;
      }
    auto wt = scratch<T>(d.O * d.R());
    weight_to_rows(wt.get(), w.data<T>(), d, false);
    std::vector<T> dwtt(gw ? static_cast<size_t>(d.O * d.R()) : 0, T(0));
    conv_tok_backward<T>(dx ? dx->data<T>() : nullptr, gw ? dwtt.data() : nullptr, gb ? gb->data<T>() : nullptr,
                         dy.data<T>(), x.data<T>(), wt.get(), d);
    if (gw) cols_to_weight_add(gw->data<T>(), dwtt.data(), d);
  };
  if (dt == DType::F64) run(double{});
  else run(float{});
}

Var conv2d_tokens(const Var& x, int64_t H, int64_t W, const Var& w, const Var& b, int64_t stride, int64_t pad,
                  int64_t& OH, int64_t& OW) {
  Tensor y;
  const Tensor xv = x.value(), wv = w.value();
  conv2d_tokens_forward(y, xv, H, W, wv, b.defined() ? b.value() : Tensor{}, stride, pad);
  OH = (H + 2 * pad - wv.size(2)) / stride + 1;
  OW = (W + 2 * pad - wv.size(3)) / stride + 1;
  const bool has_b = b.defined();
  std::vector<Var> inputs = {x, w};
  if (has_b) inputs.push_back(b);
  return core::make_result(
      y, inputs,
      [xv, wv, H, W, stride, pad, has_b](const Tensor& g, const std::vector<bool>& needs) {
        Tensor dx, dw, db;
        conv2d_tokens_backward(needs[0] ? &dx : nullptr, needs[1] ? &dw : nullptr, has_b && needs[2] ? &db : nullptr,
                               g, xv, H, W, wv, stride, pad);
        std::vector<Tensor> r = {dx, dw};
        if (has_b) r.push_back(db);
        return r;
      },
      "conv2d_tokens");
}

// ---------------------------------------------------------------------------------------------------------
// Batch norm + ReLU over the rows of (..., C): per-channel statistics in double, accumulated over fixed
// chunks of kBnRows rows and combined in chunk order (deterministic for any thread count).

namespace {

// rows [r0, r1): y = max(0, x * scale + shift)
template <class T>
SSMKIT_SIMD_CLONES void affine_relu_rows(T* __restrict y, const T* __restrict x, const T* __restrict scale,
                                           const T* __restrict shift, int64_t r0, int64_t r1, int64_t C) {
  for (int64_t i = r0 * C; i < r1 * C; i += C)
    for (int64_t c = 0; c < C; ++c) y[i + c] = std::max(T(0), x[i + c] * scale[c] + shift[c]);
}

template <class T>
void affine_relu(T* y, const T* x, const T* scale, const T* shift, int64_t rows, int64_t C) {
  const int64_t nchunk = (rows + kBnRows - 1) / kBnRows;
#pragma omp parallel for schedule(static) if (rows * C > (1 << 15))
  for (int64_t k = 0; k < nchunk; ++k)
    affine_relu_rows<T>(y, x, scale, shift, k * kBnRows, std::min(rows, (k + 1) * kBnRows), C);
}

// rows [r0, r1), g = dy where y > 0: sg (C) = sum g, sgx (C) = sum g (x - mean) (scaled by rstd by the caller)
template <class T>
SSMKIT_SIMD_CLONES void bn_grad_sums_rows(double* __restrict sg, double* __restrict sgx, const T* __restrict dy,
                                            const T* __restrict y, const T* __restrict x, const T* __restrict mean,
                                            int64_t r0, int64_t r1, int64_t C) {
  std::fill(sg, sg + C, 0.0);
  std::fill(sgx, sgx + C, 0.0);
  for (int64_t i = r0 * C; i < r1 * C; i += C)
    for (int64_t c = 0; c < C; ++c) {
      const T g = y[i + c] > T(0) ? dy[i + c] : T(0);
      sg[c] += static_cast<double>(g);
      sgx[c] += static_cast<double>(g * (x[i + c] - mean[c]));
    }
}

// part (nchunk, 2, C) <- per chunk: bn_grad_sums_rows
template <class T>
void bn_grad_sums(double* part, const T* dy, const T* y, const T* x, const T* mean, int64_t rows, int64_t C) {
  const int64_t nchunk = (rows + kBnRows - 1) / kBnRows;
#pragma omp parallel for schedule(static) if (rows * C > (1 << 15))
  for (int64_t k = 0; k < nchunk; ++k)
    bn_grad_sums_rows<T>(part + k * 2 * C, part + k * 2 * C + C, dy, y, x, mean, k * kBnRows,
                         std::min(rows, (k + 1) * kBnRows), C);
}

// rows [r0, r1): dx = a[c] g - b1[c] - (x - mean[c]) b2[c], g = dy where y > 0
template <class T>
SSMKIT_SIMD_CLONES void bn_grad_input_rows(T* __restrict dx, const T* __restrict dy, const T* __restrict y,
                                             const T* __restrict x, const T* __restrict mean, const T* __restrict a,
                                             const T* __restrict b1, const T* __restrict b2, int64_t r0, int64_t r1,
                                             int64_t C) {
  for (int64_t i = r0 * C; i < r1 * C; i += C)
    for (int64_t c = 0; c < C; ++c) {
      const T g = y[i + c] > T(0) ? dy[i + c] : T(0);
      dx[i + c] = a[c] * g - b1[c] - (x[i + c] - mean[c]) * b2[c];
    }
}

template <class T>
void bn_grad_input(T* dx, const T* dy, const T* y, const T* x, const T* mean, const T* a, const T* b1, const T* b2,
                   int64_t rows, int64_t C) {
  const int64_t nchunk = (rows + kBnRows - 1) / kBnRows;
#pragma omp parallel for schedule(static) if (rows * C > (1 << 15))
  for (int64_t k = 0; k < nchunk; ++k)
    bn_grad_input_rows<T>(dx, dy, y, x, mean, a, b1, b2, k * kBnRows, std::min(rows, (k + 1) * kBnRows), C);
}

}  // namespace

Var batch_norm_relu_tokens(const Var& x, Tensor running_mean, Tensor running_var, const Var& weight, const Var& bias,
                           bool training, double momentum, double eps) {
  const char* op = "batch_norm_relu_tokens";
  SSMKIT_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, op, ": x must be F32 or F64");
  SSMKIT_CHECK(x.ndim() >= 2, op, ": x must be (..., C) with at least one row, got ", core::shape_str(x.shape()));
  const int64_t C = x.size(-1), rows = x.numel() / std::max<int64_t>(C, 1);
  const DType dt = x.dtype();
  const std::pair<const Tensor*, const char*> args[] = {{&running_mean, "running_mean"},
                                                        {&running_var, "running_var"},
                                                        {&weight.value(), "weight"},
                                                        {&bias.value(), "bias"}};
  for (const auto& [t, name] : args)
    SSMKIT_CHECK(t->defined() && t->shape() == Shape({C}) && t->dtype() == dt && t->is_contiguous(), op, ": ", name,
                 " must be a contiguous (", C, ") tensor of x's dtype, got ",
                 t->defined() ? core::shape_str(t->shape()) + " " + core::dtype_name(t->dtype()) : "undefined");
  SSMKIT_CHECK(!training || rows > 1, op, ": expected more than 1 value per channel when training, got x ",
               core::shape_str(x.shape()));
  const Tensor xv = x.value().contiguous();
  Tensor y = Tensor::uninitialized(xv.shape(), dt), mean = Tensor::uninitialized({C}, dt),
         rstd = Tensor::uninitialized({C}, dt);
  std::vector<double> m(static_cast<size_t>(C)), var(static_cast<size_t>(C));
  auto fwd = [&](auto tag) {
    using T = decltype(tag);
    if (training) {
      const int64_t nchunk = (rows + kBnRows - 1) / kBnRows;
      std::vector<double> part(static_cast<size_t>(nchunk * C));
      detail::column_sums<T>(part.data(), xv.data<T>(), nullptr, rows, C);
      detail::combine(m.data(), part.data(), nchunk, C);
      for (auto& v : m) v /= static_cast<double>(rows);
      detail::column_sums<T>(part.data(), xv.data<T>(), m.data(), rows, C);
      detail::combine(var.data(), part.data(), nchunk, C);
      for (auto& v : var) v /= static_cast<double>(rows);
    } else {
      m = running_mean.to_double_vector();
      var = running_var.to_double_vector();
    }
    std::vector<T> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
    const T* w = weight.value().data<T>();
    const T* b = bias.value().data<T>();
    for (int64_t c = 0; c < C; ++c) {
      const double rs = 1.0 / std::sqrt(var[static_cast<size_t>(c)] + eps);
      mean.data<T>()[c] = static_cast<T>(m[static_cast<size_t>(c)]);
      rstd.data<T>()[c] = static_cast<T>(rs);
      scale[static_cast<size_t>(c)] = static_cast<T>(w[c] * rs);
      shift[static_cast<size_t>(c)] = static_cast<T>(b[c] - m[static_cast<size_t>(c)] * w[c] * rs);
    }
    affine_relu<T>(y.data<T>(), xv.data<T>(), scale.data(), shift.data(), rows, C);
  };
  if (dt == DType::F64) fwd(double{});
  else fwd(float{});
  if (training) {  // running = (1 - momentum) running + momentum batch, with the unbiased variance
    std::vector<double> rm = running_mean.to_double_vector(), rv = running_var.to_double_vector();
    const double n = static_cast<double>(rows);
    for (size_t c = 0; c < rm.size(); ++c) {
      rm[c] = (1 - momentum) * rm[c] + momentum * m[c];
      rv[c] = (1 - momentum) * rv[c] + momentum * var[c] * n / (n - 1);
    }
    running_mean.copy_from(Tensor::from_vector({C}, rm));
    running_var.copy_from(Tensor::from_vector({C}, rv));
  }
  const Tensor wv = weight.value();
  return core::make_result(
      y, {x, weight, bias},
      [xv, y, wv, mean, rstd, training, rows, C, dt](const Tensor& g0, const std::vector<bool>& needs) {
        const Tensor g = g0.contiguous();
        Tensor dx = needs[0] ? Tensor::uninitialized(xv.shape(), dt) : Tensor{};
        Tensor dw = Tensor::uninitialized({C}, dt), db = Tensor::uninitialized({C}, dt);
        auto bwd = [&](auto tag) {
          using T = decltype(tag);
          const int64_t nchunk = (rows + kBnRows - 1) / kBnRows;
          std::vector<double> part(static_cast<size_t>(nchunk * 2 * C)), sums(static_cast<size_t>(2 * C));
          bn_grad_sums<T>(part.data(), g.data<T>(), y.data<T>(), xv.data<T>(), mean.data<T>(), rows, C);
          detail::combine(sums.data(), part.data(), nchunk, 2 * C);
          const T* w = wv.data<T>();
          const T* rs = rstd.data<T>();
          std::vector<T> a(static_cast<size_t>(C)), b1(static_cast<size_t>(C)), b2(static_cast<size_t>(C));
          for (int64_t c = 0; c < C; ++c) {
            const size_t i = static_cast<size_t>(c);
            db.data<T>()[c] = static_cast<T>(sums[i]);
            sums[static_cast<size_t>(C) + i] *= static_cast<double>(rs[c]);  // sum g xhat
            dw.data<T>()[c] = static_cast<T>(sums[static_cast<size_t>(C) + i]);
            // dx = rstd w (g - mean(g) - xhat mean(g xhat)) in training; rstd w g with fixed statistics
            const double k = static_cast<double>(rs[c]) * static_cast<double>(w[c]);
            a[i] = static_cast<T>(k);
            b1[i] = training ? static_cast<T>(k * sums[i] / static_cast<double>(rows)) : T(0);
            b2[i] = training ? static_cast<T>(k * static_cast<double>(rs[c]) * sums[static_cast<size_t>(C) + i] /
                                              static_cast<double>(rows))
                             : T(0);
          }
          if (dx.defined())
            bn_grad_input<T>(dx.data<T>(), g.data<T>(), y.data<T>(), xv.data<T>(), mean.data<T>(), a.data(), b1.data(),
                             b2.data(), rows, C);
        };
        if (dt == DType::F64) bwd(double{});
        else bwd(float{});
        return std::vector<Tensor>{dx, dw, db};
      },
      op);
}

}  // namespace ssmkit::vision
