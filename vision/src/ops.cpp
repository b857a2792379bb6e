// Channels-last kernels of the vision models: blocked (B,C,L) <-> (B,L,C) transposes, the depthwise 3x3
// convolution on token maps (dwconv_kernels.h) with its optional GELU, the GELU array kernels, LayerNorm over
// the last dim, GroupMamba's modulation product. Forward next to backward; F32 and F64 through one template.
// Threads: rows of the output (transposes, conv forward, dx, GELU, LayerNorm), channel blocks or fixed row
// chunks for the parameter gradients (each owned by one thread, summed in order: deterministic).
#include "ssmkit/vision/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "column_sums.h"
#include "conv_tokens_onednn.h"
#include "dwconv_kernels.h"
#include "ssmkit/core/simd_clones.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/vec_math.h"

namespace ssmkit::vision {

using core::DType;
using core::Shape;
using core::Tensor;
using core::Var;

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements; smaller loops stay on one thread

void check_float(const Tensor& t, const char* op, const char* name) {
  SSMKIT_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, op, ": ", name, " must be F32 or F64, got ",
               core::dtype_name(t.dtype()));
}

// t, or zeros of `shape` when undefined (a gradient to add into).
Tensor& grad_slot(Tensor& t, const Shape& shape, DType dt, const char* op, const char* name) {
  if (!t.defined()) t = Tensor::zeros(shape, dt);
  SSMKIT_CHECK(t.shape() == shape && t.dtype() == dt && t.is_contiguous(), op, ": ", name, " must be ",
               core::shape_str(shape), " contiguous ", core::dtype_name(dt), ", got ", core::shape_str(t.shape()));
  return t;
}

// ---------------------------------------------------------------------------------------------------------
// Transpose (B,R,S) -> (B,S,R) in 32x32 tiles.

template <class T>
void transpose_impl(T* y, const T* x, int64_t B, int64_t R, int64_t S) {
  constexpr int64_t kT = 32;
  const int64_t tr = (R + kT - 1) / kT, ts = (S + kT - 1) / kT;
#pragma omp parallel for collapse(2) schedule(static) if (B * R * S > kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < tr * ts; ++t) {
      const int64_t r0 = (t / ts) * kT, s0 = (t % ts) * kT;
      const int64_t r1 = std::min(R, r0 + kT), s1 = std::min(S, s0 + kT);
      const T* xb = x + b * R * S;
      T* yb = y + b * R * S;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t s = s0; s < s1; ++s) yb[s * R + r] = xb[r * S + s];
    }
}

void check_dwconv(const Tensor& x, int64_t H, int64_t W, const Tensor& w, const Tensor& b, const char* op) {
  check_float(x, op, "x");
  SSMKIT_CHECK(x.ndim() == 3 && H > 0 && W > 0 && x.size(1) == H * W, op, ": x must be (B,", H * W, ",C) for a ", H,
               "x", W, " map, got ", core::shape_str(x.shape()));
  const int64_t C = x.size(2);
  SSMKIT_CHECK(w.shape() == Shape({C, 1, 3, 3}) && w.dtype() == x.dtype(), op, ": weight must be (", C,
               ",1,3,3) of x's dtype, got ", core::shape_str(w.shape()));
  SSMKIT_CHECK(!b.defined() || (b.shape() == Shape({C}) && b.dtype() == x.dtype()), op, ": bias must be (", C,
               ") of x's dtype, got ", core::shape_str(b.shape()));
}

// ---------------------------------------------------------------------------------------------------------
// Modulation: out = y * s * xn * a[b,c]

template <class T>
void modulate_forward_impl(T* out, const T* y, T s, const T* xn, const T* a, int64_t B, int64_t L, int64_t C) {
#pragma omp parallel for collapse(2) schedule(static) if (B * L * C > kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      const int64_t o = (b * L + l) * C;
      const T* ab = a + b * C;
      for (int64_t c = 0; c < C; ++c) out[o + c] = y[o + c] * s * xn[o + c] * ab[c];
    }
}

// g -> dy = g s xn a, dxn = g s y a, ds = sum g y xn a, da[b,c] = sum_l g s y xn
template <class T>
void modulate_backward_impl(T* dy, T* dxn, T* ds, T* da, const T* g, const T* y, T s, const T* xn, const T* a,
                            int64_t B, int64_t L, int64_t C) {
  double s_acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : s_acc) if (B * L * C > kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    const T* ab = a + b * C;
    std::vector<T> acc(static_cast<size_t>(C), T(0));
    for (int64_t l = 0; l < L; ++l) {
      const int64_t o = (b * L + l) * C;
      T srow = 0;
      for (int64_t c = 0; c < C; ++c) {
        const T gy = g[o + c] * y[o + c] * xn[o + c];  // d/d(s a) of the product
        if (dy) dy[o + c] = g[o + c] * s * xn[o + c] * ab[c];
        if (dxn) dxn[o + c] = g[o + c] * s * y[o + c] * ab[c];
        acc[static_cast<size_t>(c)] += gy;
        srow += gy * ab[c];
      }
      s_acc += static_cast<double>(srow);
    }
    for (int64_t c = 0; c < C; ++c) da[b * C + c] = s * acc[static_cast<size_t>(c)];
  }
  *ds = static_cast<T>(s_acc);
}

// ---------------------------------------------------------------------------------------------------------
// GELU, erf form. F32: e = exp(-x^2/2) from core's SIMD exp, erf(|x|/sqrt 2) = 1 - P(t) e with
// t = 1/(1 + p |x|/sqrt 2) (Abramowitz-Stegun 7.1.26), so Phi = 1 - P e / 2 (x >= 0) or P e / 2 (x < 0).

constexpr int64_t kGeluChunk = 1024;
constexpr float kAsP = 0.3275911f, kAs1 = 0.254829592f, kAs2 = -0.284496736f, kAs3 = 1.421413741f,
                kAs4 = -1.453152027f, kAs5 = 1.061405429f;
constexpr float kInvSqrt2 = 0.70710678118654752f, kInvSqrt2Pi = 0.39894228040143268f;

// Phi(x) and phi(x) of a chunk (n <= kGeluChunk): e holds exp(-x^2/2) on entry.
SSMKIT_SIMD_CLONES void gelu_cdf_chunk(float* __restrict cdf, const float* __restrict x, const float* __restrict e,
                                         int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]) * kInvSqrt2;
    const float t = 1.0f / (1.0f + kAsP * a);
    const float half_tail = 0.5f * t * (kAs1 + t * (kAs2 + t * (kAs3 + t * (kAs4 + t * kAs5)))) * e[i];
    cdf[i] = x[i] >= 0.0f ? 1.0f - half_tail : half_tail;
  }
}

SSMKIT_SIMD_CLONES void neg_half_square(float* __restrict e, const float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) e[i] = -0.5f * x[i] * x[i];
}

SSMKIT_SIMD_CLONES void gelu_combine(float* y, const float* x, const float* __restrict cdf, int64_t n) {  // y may be x
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * cdf[i];
}

SSMKIT_SIMD_CLONES void gelu_grad_combine(float* dx, const float* dy, const float* __restrict x,
                                            const float* __restrict cdf, const float* __restrict e, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (cdf[i] + x[i] * e[i] * kInvSqrt2Pi);
}

// ---------------------------------------------------------------------------------------------------------
// LayerNorm over the last dim. Rows in chunks of kLnRows: the weight/bias gradients are summed per chunk and
// the chunks added in order (deterministic for any thread count).

constexpr int64_t kLnRows = 64;

// Sum of n values with 8 partial sums (vectorizable; float error ~ sqrt(n) ulp).
template <class T>
inline T sum8(const T* __restrict x, int64_t n) {
  T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += x[i + j];
  T t = 0;
  for (; i < n; ++i) t += x[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

// rows [r0, r1): y, mean, rstd
template <class T>
SSMKIT_SIMD_CLONES void ln_rows_forward(T* __restrict y, T* __restrict mean, T* __restrict rstd, const T* __restrict x,
                                          const T* __restrict w, const T* __restrict b, int64_t r0, int64_t r1,
                                          int64_t C, T eps, T* __restrict tmp) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * C;
    const T m = sum8(xr, C) / static_cast<T>(C);
    for (int64_t c = 0; c < C; ++c) tmp[c] = (xr[c] - m) * (xr[c] - m);
    const T rs = T(1) / std::sqrt(sum8(tmp, C) / static_cast<T>(C) + eps);
    T* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
    mean[r] = m;
    rstd[r] = rs;
  }
}

// rows [r0, r1): dx (written); gw, gb (C) += this chunk's sums
template <class T>
SSMKIT_SIMD_CLONES void ln_rows_backward(T* __restrict dx, T* __restrict gw, T* __restrict gb, const T* __restrict g,
                                           const T* __restrict x, const T* __restrict mean, const T* __restrict rstd,
                                           const T* __restrict w, int64_t r0, int64_t r1, int64_t C,
                                           T* __restrict t1, T* __restrict t2) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * C;
    const T* gr = g + r * C;
    const T m = mean[r], rs = rstd[r];
    for (int64_t c = 0; c < C; ++c) {
      const T xh = (xr[c] - m) * rs;
      gw[c] += gr[c] * xh;
      gb[c] += gr[c];
      t1[c] = gr[c] * w[c];
      t2[c] = t1[c] * xh;
    }
    const T a1 = sum8(t1, C) / static_cast<T>(C), a2 = sum8(t2, C) / static_cast<T>(C);
    if (dx) {
      T* dr = dx + r * C;
      for (int64_t c = 0; c < C; ++c) dr[c] = rs * (t1[c] - a1 - (xr[c] - m) * rs * a2);
    }
  }
}

}  // namespace

void gelu_forward(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t c0 = 0; c0 < n; c0 += kGeluChunk) {
    float e[kGeluChunk], cdf[kGeluChunk];
    const int64_t m = std::min(kGeluChunk, n - c0);
    neg_half_square(e, x + c0, m);
    core::vec_exp(e, e, m);
    gelu_cdf_chunk(cdf, x + c0, e, m);
    gelu_combine(y + c0, x + c0, cdf, m);
  }
}

void gelu_forward(double* y, const double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5 * x[i] * (1.0 + std::erf(x[i] * 0.70710678118654752));
}

void gelu_backward(float* dx, const float* dy, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t c0 = 0; c0 < n; c0 += kGeluChunk) {
    float e[kGeluChunk], cdf[kGeluChunk];
    const int64_t m = std::min(kGeluChunk, n - c0);
    neg_half_square(e, x + c0, m);
    core::vec_exp(e, e, m);
    gelu_cdf_chunk(cdf, x + c0, e, m);
    gelu_grad_combine(dx + c0, dy + c0, x + c0, cdf, e, m);
  }
}

void gelu_backward(double* dx, const double* dy, const double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * (1.0 + std::erf(x[i] * 0.70710678118654752));
    const double pdf = std::exp(-0.5 * x[i] * x[i]) * 0.39894228040143268;
    dx[i] = dy[i] * (cdf + x[i] * pdf);
  }
}

// The depthwise 3x3 (padding 1) of dwconv3x3_tokens for conv_tokens_onednn.h.
detail::ConvGeometry dw_geometry(int64_t B, int64_t H, int64_t W, int64_t C) {
  detail::ConvGeometry g{B, H, W, C, C, 3, 1, 1};
  g.G = C;
  return g;
}

// ---------------------------------------------------------------------------------------------------------
// Public kernels

void transpose_cl_forward(Tensor& y, const Tensor& x0) {
  check_float(x0, "transpose_cl", "x");
  SSMKIT_CHECK(x0.ndim() == 3, "transpose_cl: x must be (B,R,S), got ", core::shape_str(x0.shape()));
  const Tensor x = x0.contiguous();
  const int64_t B = x.size(0), R = x.size(1), S = x.size(2);
  y = Tensor::uninitialized({B, S, R}, x.dtype());
  if (x.dtype() == DType::F64)
    transpose_impl(y.data<double>(), x.data<double>(), B, R, S);
  else
    transpose_impl(y.data<float>(), x.data<float>(), B, R, S);
}

namespace {

// dwconv3x3_tokens_forward, and with gelu its GELU in oneDNN's epilogue where oneDNN takes it (float): returns
// whether y already holds GELU(conv) (false: y is the convolution alone).
bool dwconv3x3_forward_impl(Tensor& y, const Tensor& x0, int64_t H, int64_t W, const Tensor& w0, const Tensor& b0,
                            bool gelu, const char* op) {
  check_dwconv(x0, H, W, w0, b0, op);
  const Tensor x = x0.contiguous(), w = w0.contiguous(), b = b0.defined() ? b0.contiguous() : Tensor{};
  const int64_t B = x.size(0), C = x.size(2);
  y = Tensor::uninitialized(x.shape(), x.dtype());
  if (x.dtype() == DType::F64) {
    detail::dw_forward(y.data<double>(), C, x.data<double>(), C, w.data<double>(),
                       b.defined() ? b.data<double>() : nullptr, B, H, W, C);
    return false;
  }
  const float* bp = b.defined() ? b.data<float>() : nullptr;
  if (gelu && detail::onednn_conv_forward(y.data<float>(), x.data<float>(), w.data<float>(), bp,
                                          dw_geometry(B, H, W, C), true))
    return true;
  if (!detail::onednn_conv_forward(y.data<float>(), x.data<float>(), w.data<float>(), bp, dw_geometry(B, H, W, C)))
    detail::dw_forward(y.data<float>(), C, x.data<float>(), C, w.data<float>(), bp, B, H, W, C);
  return false;
}

}  // namespace

void dwconv3x3_tokens_forward(Tensor& y, const Tensor& x0, int64_t H, int64_t W, const Tensor& w0, const Tensor& b0) {
  dwconv3x3_forward_impl(y, x0, H, W, w0, b0, false, "dwconv3x3_tokens");
}

void dwconv3x3_tokens_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy0, const Tensor& x0, int64_t H,
                               int64_t W, const Tensor& w0) {
  check_dwconv(x0, H, W, w0, Tensor{}, "dwconv3x3_tokens_backward");
  const Tensor x = x0.contiguous(), w = w0.contiguous(), dy = dy0.contiguous();
  SSMKIT_CHECK(dy.shape() == x.shape() && dy.dtype() == x.dtype(), "dwconv3x3_tokens_backward: dy must be ",
               core::shape_str(x.shape()), ", got ", core::shape_str(dy.shape()));
  const int64_t B = x.size(0), C = x.size(2);
  const DType dt = x.dtype();
  if (dx) *dx = Tensor::uninitialized(x.shape(), dt);  // written by either path
  // oneDNN's depthwise backward where built in, on maps of 4 x 4 and more (on 2 x 2 maps its weight gradient
  // fell back to a general kernel 8x slower than ours); the bias gradient as column sums of dy.
  if (dt == DType::F32 && std::min(H, W) >= 4) {
    Tensor* gw = dw ? &grad_slot(*dw, {C, 1, 3, 3}, dt, "dwconv3x3_tokens_backward", "dw") : nullptr;
    if ((dx || gw) && detail::onednn_conv_backward(dx ? dx->data<float>() : nullptr, gw ? gw->data<float>() : nullptr,
                                                   dy.data<float>(), x.data<float>(), w.data<float>(),
                                                   dw_geometry(B, H, W, C))) {
      if (db)
        detail::add_column_sums(grad_slot(*db, {C}, dt, "dwconv3x3_tokens_backward", "db").data<float>(),
                                dy.data<float>(), B * H * W, C);
      return;
    }
  }
  if (dx) {
    if (dt == DType::F64)
      detail::dw_backward_input(dx->data<double>(), C, dy.data<double>(), C, w.data<double>(), B, H, W, C);
    else
      detail::dw_backward_input(dx->data<float>(), C, dy.data<float>(), C, w.data<float>(), B, H, W, C);
  }
  if (dw || db) {
    Tensor tw, tb;
    Tensor& gw = dw ? grad_slot(*dw, {C, 1, 3, 3}, dt, "dwconv3x3_tokens_backward", "dw") : (tw = Tensor::zeros({C, 1, 3, 3}, dt));
    Tensor* gb = db ? &grad_slot(*db, {C}, dt, "dwconv3x3_tokens_backward", "db") : nullptr;
    if (dt == DType::F64)
      detail::dw_backward_weight(gw.data<double>(), gb ? gb->data<double>() : nullptr, dy.data<double>(), C,
                                 x.data<double>(), C, B, H, W, C);
    else
      detail::dw_backward_weight(gw.data<float>(), gb ? gb->data<float>() : nullptr, dy.data<float>(), C,
                                 x.data<float>(), C, B, H, W, C);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Autograd ops

Var map_to_tokens(const Var& x) {
  SSMKIT_CHECK(x.ndim() == 4, "map_to_tokens: x must be (B,C,H,W), got ", core::shape_str(x.shape()));
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y;
  transpose_cl_forward(y, x.value().reshape({B, C, H * W}));
  return core::make_result(
      y, {x},
      [B, C, H, W](const Tensor& g, const std::vector<bool>&) {
        Tensor dx;
        transpose_cl_forward(dx, g);
        return std::vector<Tensor>{dx.view({B, C, H, W})};
      },
      "map_to_tokens");
}

Var tokens_to_map(const Var& x, int64_t H, int64_t W) {
  SSMKIT_CHECK(x.ndim() == 3 && x.size(1) == H * W, "tokens_to_map: x must be (B,", H * W, ",C) for a ", H, "x", W,
               " grid, got ", core::shape_str(x.shape()));
  const int64_t B = x.size(0), C = x.size(2);
  Tensor y;
  transpose_cl_forward(y, x.value());
  return core::make_result(
      y.view({B, C, H, W}), {x},
      [B, C, H, W](const Tensor& g, const std::vector<bool>&) {
        Tensor dx;
        transpose_cl_forward(dx, g.reshape({B, C, H * W}));
        return std::vector<Tensor>{dx};
      },
      "tokens_to_map");
}

Var dwconv3x3_tokens(const Var& x, int64_t H, int64_t W, const Var& w, const Var& b) {
  Tensor y;
  dwconv3x3_tokens_forward(y, x.value(), H, W, w.value(), b.defined() ? b.value() : Tensor{});
  const Tensor xv = x.value(), wv = w.value();
  const bool has_b = b.defined();
  std::vector<Var> inputs = {x, w};
  if (has_b) inputs.push_back(b);
  return core::make_result(
      y, inputs,
      [xv, wv, H, W, has_b](const Tensor& g, const std::vector<bool>& needs) {
        Tensor dx, dw, db;
        dwconv3x3_tokens_backward(needs[0] ? &dx : nullptr, needs[1] ? &dw : nullptr,
                                  has_b && needs[2] ? &db : nullptr, g, xv, H, W, wv);
        std::vector<Tensor> r = {dx, dw};
        if (has_b) r.push_back(db);
        return r;
      },
      "dwconv3x3_tokens");
}

Var dwconv3x3_gelu_tokens(const Var& x, int64_t H, int64_t W, const Var& w, const Var& b) {
  const bool record = core::grad_enabled() && (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
  // inference: the GELU in oneDNN's epilogue where it takes it, the output written once (no pre-activation kept)
  Tensor pre;
  if (dwconv3x3_forward_impl(pre, x.value(), H, W, w.value(), b.defined() ? b.value() : Tensor{}, !record,
                             "dwconv3x3_gelu_tokens"))
    return Var(pre);
  Tensor y = record ? Tensor::uninitialized(pre.shape(), pre.dtype()) : pre;  // in place when nothing is recorded
  if (pre.dtype() == DType::F64)
    gelu_forward(y.data<double>(), pre.data<double>(), pre.numel());
  else
    gelu_forward(y.data<float>(), pre.data<float>(), pre.numel());
  if (!record) return Var(y);
  const Tensor xv = x.value(), wv = w.value();
  const bool has_b = b.defined();
  std::vector<Var> inputs = {x, w};
  if (has_b) inputs.push_back(b);
  return core::make_result(
      y, inputs,
      [xv, wv, pre, H, W, has_b](const Tensor& g0, const std::vector<bool>& needs) {
        const Tensor g = g0.contiguous();
        Tensor gpre = Tensor::uninitialized(pre.shape(), pre.dtype());
        if (pre.dtype() == DType::F64)
          gelu_backward(gpre.data<double>(), g.data<double>(), pre.data<double>(), pre.numel());
        else
          gelu_backward(gpre.data<float>(), g.data<float>(), pre.data<float>(), pre.numel());
        Tensor dx, dw, db;
        dwconv3x3_tokens_backward(needs[0] ? &dx : nullptr, needs[1] ? &dw : nullptr,
                                  has_b && needs[2] ? &db : nullptr, gpre, xv, H, W, wv);
        std::vector<Tensor> r = {dx, dw};
        if (has_b) r.push_back(db);
        return r;
      },
      "dwconv3x3_gelu_tokens");
}

Var layer_norm_lastdim(const Var& x, const Var& weight, const Var& bias, double eps) {
  check_float(x.value(), "layer_norm_lastdim", "x");
  SSMKIT_CHECK(x.ndim() >= 1, "layer_norm_lastdim: x must have a last dim");
  const int64_t C = x.size(-1), R = C > 0 ? x.numel() / C : 0;
  const DType dt = x.dtype();
  SSMKIT_CHECK(weight.defined() && bias.defined() && weight.shape() == Shape({C}) && bias.shape() == Shape({C}) &&
                   weight.dtype() == dt && bias.dtype() == dt,
               "layer_norm_lastdim: weight and bias must be (", C, ") of x's dtype");
  const Tensor xv = x.value().contiguous(), wv = weight.value().contiguous(), bv = bias.value().contiguous();
  Tensor y = Tensor::uninitialized(xv.shape(), dt), mean = Tensor::uninitialized({R}, dt);
  Tensor rstd = Tensor::uninitialized({R}, dt);
  const int64_t nchunk = (R + kLnRows - 1) / kLnRows;
  auto fwd = [&](auto tag) {
    using T = decltype(tag);
#pragma omp parallel for schedule(static) if (R * C > kParallelMin)
    for (int64_t k = 0; k < nchunk; ++k) {
      std::vector<T> tmp(static_cast<size_t>(C));
      ln_rows_forward<T>(y.data<T>(), mean.data<T>(), rstd.data<T>(), xv.data<T>(), wv.data<T>(), bv.data<T>(),
                         k * kLnRows, std::min(R, (k + 1) * kLnRows), C, static_cast<T>(eps), tmp.data());
    }
  };
  if (dt == DType::F64) fwd(double{});
  else fwd(float{});
  return core::make_result(
      y, {x, weight, bias},
      [xv, wv, mean, rstd, R, C, nchunk, dt](const Tensor& g0, const std::vector<bool>& needs) {
        const Tensor g = g0.contiguous();
        Tensor dx = needs[0] ? Tensor::uninitialized(xv.shape(), dt) : Tensor{};
        Tensor part = Tensor::zeros({nchunk, 2, C}, dt);  // per-chunk (gw, gb)
        auto bwd = [&](auto tag) {
          using T = decltype(tag);
#pragma omp parallel for schedule(static) if (R * C > kParallelMin)
          for (int64_t k = 0; k < nchunk; ++k) {
            std::vector<T> t1(static_cast<size_t>(C)), t2(static_cast<size_t>(C));
            T* pk = part.data<T>() + k * 2 * C;
            ln_rows_backward<T>(dx.defined() ? dx.data<T>() : nullptr, pk, pk + C, g.data<T>(), xv.data<T>(),
                                mean.data<T>(), rstd.data<T>(), wv.data<T>(), k * kLnRows,
                                std::min(R, (k + 1) * kLnRows), C, t1.data(), t2.data());
          }
        };
        if (dt == DType::F64) bwd(double{});
        else bwd(float{});
        Tensor sums = core::sum_to(part, {1, 2, C});  // chunks added in order
        return std::vector<Tensor>{dx, sums.select(0, 0).select(0, 0).contiguous(),
                                   sums.select(0, 0).select(0, 1).contiguous()};
      },
      "layer_norm_lastdim");
}

Var modulate(const Var& y, const Var& s, const Var& xn, const Var& a) {
  SSMKIT_CHECK(y.ndim() == 3 && xn.shape() == y.shape(), "modulate: y and xn must be one (B,L,C) shape, got ",
               core::shape_str(y.shape()), " and ", core::shape_str(xn.shape()));
  const int64_t B = y.size(0), L = y.size(1), C = y.size(2);
  SSMKIT_CHECK(s.numel() == 1 && a.shape() == Shape({B, C}), "modulate: s must hold 1 value and a be (", B, ",", C,
               "), got ", core::shape_str(s.shape()), " and ", core::shape_str(a.shape()));
  const DType dt = y.dtype();
  check_float(y.value(), "modulate", "y");
  SSMKIT_CHECK(s.dtype() == dt && xn.dtype() == dt && a.dtype() == dt, "modulate: all operands must share one dtype");
  const Tensor yv = y.value().contiguous(), xv = xn.value().contiguous(), av = a.value().contiguous();
  const Tensor sv = s.value();
  Tensor out = Tensor::uninitialized(yv.shape(), dt);
  const double sval = sv.to_double_vector()[0];
  if (dt == DType::F64)
    modulate_forward_impl(out.data<double>(), yv.data<double>(), sval, xv.data<double>(), av.data<double>(), B, L, C);
  else
    modulate_forward_impl(out.data<float>(), yv.data<float>(), static_cast<float>(sval), xv.data<float>(),
                          av.data<float>(), B, L, C);
  const Shape s_shape = s.shape();
  return core::make_result(
      out, {y, s, xn, a},
      [yv, xv, av, sval, s_shape, B, L, C, dt](const Tensor& g0, const std::vector<bool>& needs) {
        const Tensor g = g0.contiguous();
        Tensor dy = needs[0] ? Tensor::uninitialized(yv.shape(), dt) : Tensor{};
        Tensor dxn = needs[2] ? Tensor::uninitialized(yv.shape(), dt) : Tensor{};
        Tensor ds = Tensor::uninitialized(s_shape, dt), da = Tensor::uninitialized({B, C}, dt);
        if (dt == DType::F64)
          modulate_backward_impl(dy.defined() ? dy.data<double>() : nullptr,
                                 dxn.defined() ? dxn.data<double>() : nullptr, ds.data<double>(), da.data<double>(),
                                 g.data<double>(), yv.data<double>(), sval, xv.data<double>(), av.data<double>(), B, L,
                                 C);
        else
          modulate_backward_impl(dy.defined() ? dy.data<float>() : nullptr, dxn.defined() ? dxn.data<float>() : nullptr,
                                 ds.data<float>(), da.data<float>(), g.data<float>(), yv.data<float>(),
                                 static_cast<float>(sval), xv.data<float>(), av.data<float>(), B, L, C);
        return std::vector<Tensor>{dy, ds, dxn, da};
      },
      "modulate");
}

}  // namespace ssmkit::vision
