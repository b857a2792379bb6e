// Normalization kernels, forward next to backward, and their autograd ops: layer_norm, rms_norm, batch_norm,
// group_norm, layer_norm_2d. Statistics use two passes (mean, then mean of squared deviations) in double.
// Backward of a normalization over M values with xhat = (x - mean) * rstd and g = dy * weight:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   (llm.c layernorm_backward, PyTorch native_layer_norm)
// Parameter gradients are reduced per column (parallel over column blocks), so results do not depend on the
// thread count. Follows torch.nn.functional (layer_norm, batch_norm, group_norm) and mamba_ssm's RMSNorm.
#include "ssmkit/core/ops/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/simd_clones.h"
#include "interleaved_sum.h"
#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements; below this, loops stay on one thread
constexpr int64_t kColBlock = 64;          // columns per task in the parameter-gradient reductions

std::string shape_or_undefined(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : "undefined"; }

using detail::check_float;
using detail::dispatch_float;

// A tensor that must have this shape and dtype (optional ones may be undefined).
void check_tensor(const char* op, const char* name, const Tensor& t, const Shape& want, DType dt, bool optional) {
  if (optional && !t.defined()) return;
  SSMKIT_CHECK(t.defined(), op, ": ", name, " is undefined, expected ", shape_str(want));
  SSMKIT_CHECK(t.shape() == want, op, ": ", name, " must be ", shape_str(want), ", got ", shape_str(t.shape()));
  SSMKIT_CHECK(t.dtype() == dt, op, ": ", name, " has dtype ", dtype_name(t.dtype()), ", expected ",
               dtype_name(dt));
}

// An output the kernel overwrites: allocated when undefined, else checked. Returns a contiguous buffer to
// write; finish() copies it back when it is not `out` itself.
Tensor out_buffer(const char* op, const char* name, Tensor& out, const Shape& shape, DType dt) {
  if (!out.defined()) {
    out = Tensor::uninitialized(shape, dt);  // the kernels write every element of their outputs
    return out;
  }
  check_tensor(op, name, out, shape, dt, false);
  return out.is_contiguous() ? out : Tensor::uninitialized(shape, dt);
}
void finish(Tensor& out, const Tensor& buf) {
  if (!out.same_storage(buf)) out.copy_from(buf);
}

// A requested gradient that will be added into: checked before any work.
void check_grad(const char* op, const char* name, const Tensor* g, const Shape& shape, DType dt) {
  if (g && g->defined()) check_tensor(op, name, *g, shape, dt, false);
}
// Hands a computed gradient over: stored when *out is undefined, else added into it.
void deliver(Tensor* out, Tensor buf) {
  if (!out) return;
  if (!out->defined())
    *out = std::move(buf);
  else
    out->add_(buf);
}

template <class T> T* ptr(Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <class T> const T* cptr(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// ----------------------------------------------------------------------------------------------------------
// row kernels shared by layer_norm and rms_norm: x (R, C) contiguous

// The row kernels run on ranges of rows, multi-versioned (SSMKIT_SIMD_CLONES) and called from the
// parallel loops below. Row sums use 8 interleaved partial sums in double: independent chains that
// vectorize without reassociation, so a row's statistics do not depend on the thread count.
constexpr int64_t kNormRowsPerTask = 16;

// rows [r0, r1) -> y (R,C), mean (R) (skipped for rms: null), rstd (R). w, b (C) when kW, kB.
template <class T, bool kW, bool kB>
SSMKIT_SIMD_CLONES void norm_rows_forward_range(T* __restrict y, T* __restrict mean, T* __restrict rstd,
                                                const T* __restrict x, const T* __restrict w,
                                                const T* __restrict b, int64_t r0, int64_t r1, int64_t C,
                                                double eps, bool rms) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * C;
    double m = 0;
    if (!rms) m = sum8(C, [&](int64_t i) { return static_cast<double>(xr[i]); }) / static_cast<double>(C);
    const double v = sum8(C, [&](int64_t i) {
                       const double d = xr[i] - m;
                       return d * d;
                     }) /
                     static_cast<double>(C);
    const double rs = 1.0 / std::sqrt(v + eps);
    T* yr = y + r * C;
    for (int64_t i = 0; i < C; ++i) {
      double o = (xr[i] - m) * rs;
      if constexpr (kW) o *= w[i];
      if constexpr (kB) o += b[i];
      yr[i] = static_cast<T>(o);
    }
    if (mean) mean[r] = static_cast<T>(m);
    rstd[r] = static_cast<T>(rs);
  }
}

template <class T>
void norm_rows_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t R, int64_t C,
                       double eps, bool rms) {
  auto kernel = w ? (b ? norm_rows_forward_range<T, true, true> : norm_rows_forward_range<T, true, false>)
                  : (b ? norm_rows_forward_range<T, false, true> : norm_rows_forward_range<T, false, false>);
  const int64_t tasks = (R + kNormRowsPerTask - 1) / kNormRowsPerTask;
#pragma omp parallel for schedule(static) if (R * C > kParallelMin)
  for (int64_t k = 0; k < tasks; ++k)
    kernel(y, mean, rstd, x, w, b, k * kNormRowsPerTask, std::min(R, (k + 1) * kNormRowsPerTask), C, eps, rms);
}

// rows [r0, r1) of dy (R,C) -> dx, written. layer norm: dx = rstd (g - mean(g) - xhat mean(g xhat));
// rms (mean null, xhat = x rstd): dx = rstd (g - xhat mean(g xhat)). g = dy w (w when kW).
template <class T, bool kW>
SSMKIT_SIMD_CLONES void norm_rows_backward_range(T* __restrict dx, const T* __restrict dy, const T* __restrict x,
                                                 const T* __restrict mean, const T* __restrict rstd,
                                                 const T* __restrict w, int64_t r0, int64_t r1, int64_t C) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * C;
    const T* gr = dy + r * C;
    const double m = mean ? static_cast<double>(mean[r]) : 0.0, rs = rstd[r];
    auto g_at = [&](int64_t i) {
      double g = gr[i];
      if constexpr (kW) g *= w[i];
      return g;
    };
    const double sg = mean ? sum8(C, g_at) / static_cast<double>(C) : 0.0;
    const double sgx = sum8(C, [&](int64_t i) { return g_at(i) * (xr[i] - m) * rs; }) / static_cast<double>(C);
    T* dr = dx + r * C;
    for (int64_t i = 0; i < C; ++i) dr[i] = static_cast<T>(rs * (g_at(i) - sg - (xr[i] - m) * rs * sgx));
  }
}

template <class T>
void norm_rows_backward(T* dx, const T* dy, const T* x, const T* mean, const T* rstd, const T* w, int64_t R,
                        int64_t C) {
  auto kernel = w ? norm_rows_backward_range<T, true> : norm_rows_backward_range<T, false>;
  const int64_t tasks = (R + kNormRowsPerTask - 1) / kNormRowsPerTask;
#pragma omp parallel for schedule(static) if (R * C > kParallelMin)
  for (int64_t k = 0; k < tasks; ++k)
    kernel(dx, dy, x, mean, rstd, w, k * kNormRowsPerTask, std::min(R, (k + 1) * kNormRowsPerTask), C);
}

// dy (R,C) -> dw[c] = sum_r dy xhat, db[c] = sum_r dy (either may be null), written. Column blocks in
// parallel, rows in order inside a block.
template <class T>
void norm_rows_affine_grads(T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd, int64_t R,
                            int64_t C) {
  const int64_t nb = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (R * C > kParallelMin)
  for (int64_t blk = 0; blk < nb; ++blk) {
    const int64_t c0 = blk * kColBlock, c1 = std::min(C, c0 + kColBlock);
    double aw[kColBlock] = {}, ab[kColBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const double m = mean ? static_cast<double>(mean[r]) : 0.0, rs = rstd[r];
      for (int64_t c = c0; c < c1; ++c) {
        const double g = dy[r * C + c];
        aw[c - c0] += g * (x[r * C + c] - m) * rs;
        ab[c - c0] += g;
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      if (dw) dw[c] = static_cast<T>(aw[c - c0]);
      if (db) db[c] = static_cast<T>(ab[c - c0]);
    }
  }
}

struct Rows {
  int64_t R, C;
  Shape stat_shape;  // x's shape without the normalized dims
};

Rows layer_norm_rows(const char* op, const Tensor& x, const Shape& ns) {
  const int64_t nd = x.ndim(), k = static_cast<int64_t>(ns.size());
  bool ok = k >= 1 && k <= nd;
  for (int64_t i = 0; ok && i < k; ++i) ok = x.shape()[nd - k + i] == ns[i];
  SSMKIT_CHECK(ok, op, ": normalized_shape ", shape_str(ns), " does not match the last dims of x ",
               shape_str(x.shape()));
  Rows z{1, shape_numel(ns), Shape(x.shape().begin(), x.shape().end() - k)};
  z.R = shape_numel(z.stat_shape);
  return z;
}

}  // namespace

// ----------------------------------------------------------------------------------------------------------
// layer norm

void layer_norm_forward(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Shape& normalized_shape,
                        const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm_forward";
  check_float(x, op, "x");
  const Rows z = layer_norm_rows(op, x, normalized_shape);
  const DType dt = x.dtype();
  check_tensor(op, "weight", weight, normalized_shape, dt, true);
  check_tensor(op, "bias", bias, normalized_shape, dt, true);
  Tensor yb = out_buffer(op, "y", y, x.shape(), dt), mb = out_buffer(op, "mean", mean, z.stat_shape, dt);
  Tensor rb = out_buffer(op, "rstd", rstd, z.stat_shape, dt);
  const Tensor xc = x.contiguous(), wc = weight.defined() ? weight.contiguous() : Tensor{},
               bc = bias.defined() ? bias.contiguous() : Tensor{};
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    norm_rows_forward<T>(yb.data<T>(), mb.data<T>(), rb.data<T>(), xc.data<T>(), cptr<T>(wc), cptr<T>(bc), z.R, z.C,
                         eps, false);
  });
  finish(y, yb);
  finish(mean, mb);
  finish(rstd, rb);
}

void layer_norm_backward(Tensor* dx, Tensor* dweight, Tensor* dbias, const Tensor& dy, const Tensor& x,
                         const Tensor& mean, const Tensor& rstd, const Tensor& weight, const Shape& normalized_shape) {
  const char* op = "layer_norm_backward";
  check_float(x, op, "x");
  const Rows z = layer_norm_rows(op, x, normalized_shape);
  const DType dt = x.dtype();
  check_tensor(op, "dy", dy, x.shape(), dt, false);
  check_tensor(op, "mean", mean, z.stat_shape, dt, false);
  check_tensor(op, "rstd", rstd, z.stat_shape, dt, false);
  check_tensor(op, "weight", weight, normalized_shape, dt, true);
  check_grad(op, "dx", dx, x.shape(), dt);
  check_grad(op, "dweight", dweight, normalized_shape, dt);
  check_grad(op, "dbias", dbias, normalized_shape, dt);
  const Tensor xc = x.contiguous(), gc = dy.contiguous(), mc = mean.contiguous(), rc = rstd.contiguous();
  const Tensor wc = weight.defined() ? weight.contiguous() : Tensor{};
  Tensor gx = dx ? Tensor::empty(x.shape(), dt) : Tensor{};
  Tensor gw = dweight ? Tensor::empty(normalized_shape, dt) : Tensor{};
  Tensor gb = dbias ? Tensor::empty(normalized_shape, dt) : Tensor{};
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if (dx)
      norm_rows_backward<T>(gx.data<T>(), gc.data<T>(), xc.data<T>(), mc.data<T>(), rc.data<T>(), cptr<T>(wc), z.R,
                            z.C);
    if (dweight || dbias)
      norm_rows_affine_grads<T>(ptr<T>(gw), ptr<T>(gb), gc.data<T>(), xc.data<T>(), mc.data<T>(), rc.data<T>(), z.R,
                                z.C);
  });
  deliver(dx, gx);
  deliver(dweight, gw);
  deliver(dbias, gb);
}

// ----------------------------------------------------------------------------------------------------------
// RMS norm

void rms_norm_forward(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
  const char* op = "rms_norm_forward";
  check_float(x, op, "x");
  SSMKIT_CHECK(x.ndim() >= 1, op, ": x must have at least one dim, got ", shape_str(x.shape()));
  const Rows z = layer_norm_rows(op, x, {x.shape().back()});
  const DType dt = x.dtype();
  check_tensor(op, "weight", weight, {z.C}, dt, true);
  Tensor yb = out_buffer(op, "y", y, x.shape(), dt), rb = out_buffer(op, "rstd", rstd, z.stat_shape, dt);
  const Tensor xc = x.contiguous(), wc = weight.defined() ? weight.contiguous() : Tensor{};
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    norm_rows_forward<T>(yb.data<T>(), nullptr, rb.data<T>(), xc.data<T>(), cptr<T>(wc), nullptr, z.R, z.C, eps,
                         true);
  });
  finish(y, yb);
  finish(rstd, rb);
}

void rms_norm_backward(Tensor* dx, Tensor* dweight, const Tensor& dy, const Tensor& x, const Tensor& rstd,
                       const Tensor& weight) {
  const char* op = "rms_norm_backward";
  check_float(x, op, "x");
  SSMKIT_CHECK(x.ndim() >= 1, op, ": x must have at least one dim, got ", shape_str(x.shape()));
  const Rows z = layer_norm_rows(op, x, {x.shape().back()});
  const DType dt = x.dtype();
  check_tensor(op, "dy", dy, x.shape(), dt, false);
  check_tensor(op, "rstd", rstd, z.stat_shape, dt, false);
  check_tensor(op, "weight", weight, {z.C}, dt, true);
  check_grad(op, "dx", dx, x.shape(), dt);
  check_grad(op, "dweight", dweight, {z.C}, dt);
  const Tensor xc = x.contiguous(), gc = dy.contiguous(), rc = rstd.contiguous();
  const Tensor wc = weight.defined() ? weight.contiguous() : Tensor{};
  Tensor gx = dx ? Tensor::empty(x.shape(), dt) : Tensor{};
  Tensor gw = dweight ? Tensor::empty({z.C}, dt) : Tensor{};
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if (dx) norm_rows_backward<T>(gx.data<T>(), gc.data<T>(), xc.data<T>(), nullptr, rc.data<T>(), cptr<T>(wc), z.R, z.C);
    if (dweight)
      norm_rows_affine_grads<T>(gw.data<T>(), nullptr, gc.data<T>(), xc.data<T>(), nullptr, rc.data<T>(), z.R, z.C);
  });
  deliver(dx, gx);
  deliver(dweight, gw);
}

// ----------------------------------------------------------------------------------------------------------
// batch norm: x (N, C, S) contiguous, per channel c the M = N*S values x[(n*C + c)*S + s]

namespace {

struct NCS {
  int64_t N, C, S;
};

NCS ncs_of(const char* op, const Tensor& x) {
  SSMKIT_CHECK(x.ndim() >= 2, op, ": x must be (N,C,...), got ", shape_str(x.shape()));
  NCS z{x.size(0), x.size(1), 1};
  for (int64_t d = 2; d < x.ndim(); ++d) z.S *= x.size(d);
  return z;
}

// Training statistics: mean (C), biased var (C), in double.
template <class T>
void batch_stats(std::vector<double>& mean, std::vector<double>& var, const T* x, NCS z) {
  const double M = static_cast<double>(z.N * z.S);
#pragma omp parallel for schedule(static) if (z.N * z.C * z.S > kParallelMin)
  for (int64_t c = 0; c < z.C; ++c) {
    double m = 0, v = 0;
    for (int64_t n = 0; n < z.N; ++n) {
      const T* xr = x + (n * z.C + c) * z.S;
      for (int64_t s = 0; s < z.S; ++s) m += xr[s];
    }
    m /= M;
    for (int64_t n = 0; n < z.N; ++n) {
      const T* xr = x + (n * z.C + c) * z.S;
      for (int64_t s = 0; s < z.S; ++s) v += (xr[s] - m) * (xr[s] - m);
    }
    mean[c] = m;
    var[c] = v / M;
  }
}

// y = (x - mean[c]) * rstd[c] * w[c] + b[c]
template <class T>
void channel_affine(T* y, const T* x, const T* mean, const T* rstd, const T* w, const T* b, NCS z) {
#pragma omp parallel for schedule(static) if (z.N * z.C * z.S > kParallelMin)
  for (int64_t nc = 0; nc < z.N * z.C; ++nc) {
    const int64_t c = nc % z.C;
    const double m = mean[c], rs = rstd[c], wc = w ? w[c] : T(1), bc = b ? b[c] : T(0);
    const T* xr = x + nc * z.S;
    T* yr = y + nc * z.S;
    for (int64_t s = 0; s < z.S; ++s) yr[s] = static_cast<T>((xr[s] - m) * rs * wc + bc);
  }
}

// dy -> dx (written; null to skip), dw[c] = sum dy xhat, db[c] = sum dy (written; null to skip).
template <class T>
void batch_norm_backward_impl(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd,
                              const T* w, NCS z, bool training) {
  const double M = static_cast<double>(z.N * z.S);
#pragma omp parallel for schedule(static) if (z.N * z.C * z.S > kParallelMin)
  for (int64_t c = 0; c < z.C; ++c) {
    const double m = mean[c], rs = rstd[c], wc = w ? w[c] : T(1);
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < z.N; ++n) {
      const T* xr = x + (n * z.C + c) * z.S;
      const T* gr = dy + (n * z.C + c) * z.S;
      for (int64_t s = 0; s < z.S; ++s) {
        sdy += gr[s];
        sdyx += gr[s] * (xr[s] - m) * rs;
      }
    }
    if (dw) dw[c] = static_cast<T>(sdyx);
    if (db) db[c] = static_cast<T>(sdy);
    if (!dx) continue;
    const double a = training ? wc * sdy / M : 0.0, bq = training ? wc * sdyx / M : 0.0;
    for (int64_t n = 0; n < z.N; ++n) {
      const T* xr = x + (n * z.C + c) * z.S;
      const T* gr = dy + (n * z.C + c) * z.S;
      T* dr = dx + (n * z.C + c) * z.S;
      for (int64_t s = 0; s < z.S; ++s) dr[s] = static_cast<T>(rs * (gr[s] * wc - a - (xr[s] - m) * rs * bq));
    }
  }
}

}  // namespace

void batch_norm_forward(Tensor& y, Tensor& save_mean, Tensor& save_rstd, const Tensor& x, Tensor running_mean,
                        Tensor running_var, const Tensor& weight, const Tensor& bias, bool training, double momentum,
                        double eps) {
  const char* op = "batch_norm_forward";
  check_float(x, op, "x");
  const NCS z = ncs_of(op, x);
  const DType dt = x.dtype();
  check_tensor(op, "weight", weight, {z.C}, dt, true);
  check_tensor(op, "bias", bias, {z.C}, dt, true);
  for (const Tensor* t : {&running_mean, &running_var}) {
    const char* name = t == &running_mean ? "running_mean" : "running_var";
    if (!t->defined()) continue;
    SSMKIT_CHECK(t->shape() == Shape{z.C}, op, ": ", name, " must be (", z.C, "), got ", shape_str(t->shape()));
    check_float(*t, op, name);
  }
  SSMKIT_CHECK(training || (running_mean.defined() && running_var.defined()), op,
               ": eval mode needs running_mean and running_var (got ", shape_or_undefined(running_mean), " and ",
               shape_or_undefined(running_var), ")");
  SSMKIT_CHECK(running_mean.defined() == running_var.defined(), op,
               ": running_mean and running_var must both be given or both be undefined");
  SSMKIT_CHECK(!training || z.N * z.S > 1, op, ": expected more than 1 value per channel when training, got x ",
               shape_str(x.shape()));
  Tensor yb = out_buffer(op, "y", y, x.shape(), dt), mb = out_buffer(op, "save_mean", save_mean, {z.C}, dt);
  Tensor rb = out_buffer(op, "save_rstd", save_rstd, {z.C}, dt);
  const Tensor xc = x.contiguous(), wc = weight.defined() ? weight.contiguous() : Tensor{},
               bc = bias.defined() ? bias.contiguous() : Tensor{};
  std::vector<double> mean(static_cast<size_t>(z.C)), var(static_cast<size_t>(z.C));
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if (training) {
      batch_stats<T>(mean, var, xc.data<T>(), z);
    } else {
      mean = running_mean.to_double_vector();
      var = running_var.to_double_vector();
    }
    T* pm = mb.data<T>();
    T* pr = rb.data<T>();
    for (int64_t c = 0; c < z.C; ++c) {
      pm[c] = static_cast<T>(mean[c]);
      pr[c] = static_cast<T>(1.0 / std::sqrt(var[c] + eps));
    }
    channel_affine<T>(yb.data<T>(), xc.data<T>(), pm, pr, cptr<T>(wc), cptr<T>(bc), z);
  });
  if (training && running_mean.defined()) {
    const double M = static_cast<double>(z.N * z.S);
    std::vector<double> rm = running_mean.to_double_vector(), rv = running_var.to_double_vector();
    for (int64_t c = 0; c < z.C; ++c) {
      rm[c] = (1 - momentum) * rm[c] + momentum * mean[c];
      rv[c] = (1 - momentum) * rv[c] + momentum * var[c] * M / (M - 1);
    }
    running_mean.copy_from(Tensor::from_vector({z.C}, rm));
    running_var.copy_from(Tensor::from_vector({z.C}, rv));
  }
  finish(y, yb);
  finish(save_mean, mb);
  finish(save_rstd, rb);
}

void batch_norm_backward(Tensor* dx, Tensor* dweight, Tensor* dbias, const Tensor& dy, const Tensor& x,
                         const Tensor& save_mean, const Tensor& save_rstd, const Tensor& weight, bool training) {
  const char* op = "batch_norm_backward";
  check_float(x, op, "x");
  const NCS z = ncs_of(op, x);
  const DType dt = x.dtype();
  check_tensor(op, "dy", dy, x.shape(), dt, false);
  check_tensor(op, "save_mean", save_mean, {z.C}, dt, false);
  check_tensor(op, "save_rstd", save_rstd, {z.C}, dt, false);
  check_tensor(op, "weight", weight, {z.C}, dt, true);
  check_grad(op, "dx", dx, x.shape(), dt);
  check_grad(op, "dweight", dweight, {z.C}, dt);
  check_grad(op, "dbias", dbias, {z.C}, dt);
  const Tensor xc = x.contiguous(), gc = dy.contiguous(), mc = save_mean.contiguous(), rc = save_rstd.contiguous();
  const Tensor wc = weight.defined() ? weight.contiguous() : Tensor{};
  Tensor gx = dx ? Tensor::empty(x.shape(), dt) : Tensor{};
  Tensor gw = dweight ? Tensor::empty({z.C}, dt) : Tensor{};
  Tensor gb = dbias ? Tensor::empty({z.C}, dt) : Tensor{};
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    batch_norm_backward_impl<T>(ptr<T>(gx), ptr<T>(gw), ptr<T>(gb), gc.data<T>(), xc.data<T>(), mc.data<T>(),
                                rc.data<T>(), cptr<T>(wc), z, training);
  });
  deliver(dx, gx);
  deliver(dweight, gw);
  deliver(dbias, gb);
}

// ----------------------------------------------------------------------------------------------------------
// group norm: x (N, C, S) contiguous; group (n, g) is the block of Cg*S values at (n*C + g*Cg)*S

namespace {

NCS group_sizes(const char* op, const Tensor& x, int64_t G) {
  const NCS z = ncs_of(op, x);
  SSMKIT_CHECK(G > 0 && z.C % G == 0, op, ": num_groups ", G, " must divide the ", z.C, " channels of x ",
               shape_str(x.shape()));
  return z;
}

template <class T>
void group_norm_forward_impl(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, NCS z, int64_t G,
                             double eps) {
  const int64_t Cg = z.C / G, M = Cg * z.S;
#pragma omp parallel for schedule(static) if (z.N * z.C * z.S > kParallelMin)
  for (int64_t ng = 0; ng < z.N * G; ++ng) {
    const T* xb = x + ng * M;  // (n*C + g*Cg)*S == ng*Cg*S
    double m = 0, v = 0;
    for (int64_t i = 0; i < M; ++i) m += xb[i];
    m /= static_cast<double>(M);
    for (int64_t i = 0; i < M; ++i) v += (xb[i] - m) * (xb[i] - m);
    const double rs = 1.0 / std::sqrt(v / static_cast<double>(M) + eps);
    mean[ng] = static_cast<T>(m);
    rstd[ng] = static_cast<T>(rs);
    const int64_t g = ng % G;
    T* yb = y + ng * M;
    for (int64_t cc = 0; cc < Cg; ++cc) {
      const int64_t c = g * Cg + cc;
      const double wc = w ? w[c] : T(1), bc = b ? b[c] : T(0);
      for (int64_t s = 0; s < z.S; ++s) {
        const int64_t i = cc * z.S + s;
        yb[i] = static_cast<T>((xb[i] - m) * rs * wc + bc);
      }
    }
  }
}

// dy -> dx (written, per group), dw/db (written, per channel). Null pointers skip.
template <class T>
void group_norm_backward_impl(T* dx, T* dw, T* db, const T* dy, const T* x, const T* mean, const T* rstd,
                              const T* w, NCS z, int64_t G) {
  const int64_t Cg = z.C / G, M = Cg * z.S;
  if (dx) {
#pragma omp parallel for schedule(static) if (z.N * z.C * z.S > kParallelMin)
    for (int64_t ng = 0; ng < z.N * G; ++ng) {
      const int64_t g = ng % G;
      const T* xb = x + ng * M;
      const T* gb = dy + ng * M;
      const double m = mean[ng], rs = rstd[ng];
      double sg = 0, sgx = 0;
      for (int64_t cc = 0; cc < Cg; ++cc) {
        const double wc = w ? w[g * Cg + cc] : T(1);
        for (int64_t s = 0; s < z.S; ++s) {
          const int64_t i = cc * z.S + s;
          sg += gb[i] * wc;
          sgx += gb[i] * wc * (xb[i] - m) * rs;
        }
      }
      sg /= static_cast<double>(M);
      sgx /= static_cast<double>(M);
      T* db_ = dx + ng * M;
      for (int64_t cc = 0; cc < Cg; ++cc) {
        const double wc = w ? w[g * Cg + cc] : T(1);
        for (int64_t s = 0; s < z.S; ++s) {
          const int64_t i = cc * z.S + s;
          db_[i] = static_cast<T>(rs * (gb[i] * wc - sg - (xb[i] - m) * rs * sgx));
        }
      }
    }
  }
  if (dw || db) {
#pragma omp parallel for schedule(static) if (z.N * z.C * z.S > kParallelMin)
    for (int64_t c = 0; c < z.C; ++c) {
      double sw = 0, sb = 0;
      for (int64_t n = 0; n < z.N; ++n) {
        const int64_t ng = n * G + c / Cg;
        const double m = mean[ng], rs = rstd[ng];
        const T* xr = x + (n * z.C + c) * z.S;
        const T* gr = dy + (n * z.C + c) * z.S;
        for (int64_t s = 0; s < z.S; ++s) {
          sw += gr[s] * (xr[s] - m) * rs;
          sb += gr[s];
        }
      }
      if (dw) dw[c] = static_cast<T>(sw);
      if (db) db[c] = static_cast<T>(sb);
    }
  }
}

}  // namespace

void group_norm_forward(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, int64_t num_groups,
                        const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "group_norm_forward";
  check_float(x, op, "x");
  const NCS z = group_sizes(op, x, num_groups);
  const DType dt = x.dtype();
  check_tensor(op, "weight", weight, {z.C}, dt, true);
  check_tensor(op, "bias", bias, {z.C}, dt, true);
  Tensor yb = out_buffer(op, "y", y, x.shape(), dt), mb = out_buffer(op, "mean", mean, {z.N, num_groups}, dt);
  Tensor rb = out_buffer(op, "rstd", rstd, {z.N, num_groups}, dt);
  const Tensor xc = x.contiguous(), wc = weight.defined() ? weight.contiguous() : Tensor{},
               bc = bias.defined() ? bias.contiguous() : Tensor{};
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    group_norm_forward_impl<T>(yb.data<T>(), mb.data<T>(), rb.data<T>(), xc.data<T>(), cptr<T>(wc), cptr<T>(bc), z,
                               num_groups, eps);
  });
  finish(y, yb);
  finish(mean, mb);
  finish(rstd, rb);
}

void group_norm_backward(Tensor* dx, Tensor* dweight, Tensor* dbias, const Tensor& dy, const Tensor& x,
                         const Tensor& mean, const Tensor& rstd, const Tensor& weight, int64_t num_groups) {
  const char* op = "group_norm_backward";
  check_float(x, op, "x");
  const NCS z = group_sizes(op, x, num_groups);
  const DType dt = x.dtype();
  check_tensor(op, "dy", dy, x.shape(), dt, false);
  check_tensor(op, "mean", mean, {z.N, num_groups}, dt, false);
  check_tensor(op, "rstd", rstd, {z.N, num_groups}, dt, false);
  check_tensor(op, "weight", weight, {z.C}, dt, true);
  check_grad(op, "dx", dx, x.shape(), dt);
  check_grad(op, "dweight", dweight, {z.C}, dt);
  check_grad(op, "dbias", dbias, {z.C}, dt);
  const Tensor xc = x.contiguous(), gc = dy.contiguous(), mc = mean.contiguous(), rc = rstd.contiguous();
  const Tensor wc = weight.defined() ? weight.contiguous() : Tensor{};
  Tensor gx = dx ? Tensor::empty(x.shape(), dt) : Tensor{};
  Tensor gw = dweight ? Tensor::empty({z.C}, dt) : Tensor{};
  Tensor gb = dbias ? Tensor::empty({z.C}, dt) : Tensor{};
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    group_norm_backward_impl<T>(ptr<T>(gx), ptr<T>(gw), ptr<T>(gb), gc.data<T>(), xc.data<T>(), mc.data<T>(),
                                rc.data<T>(), cptr<T>(wc), z, num_groups);
  });
  deliver(dx, gx);
  deliver(dweight, gw);
  deliver(dbias, gb);
}

// ----------------------------------------------------------------------------------------------------------
// autograd ops

namespace {

// x plus the defined ones of weight and bias, with the positions of weight and bias (-1 when absent).
struct AffineInputs {
  std::vector<Var> vars;
  int iw = -1, ib = -1;
  AffineInputs(const Var& x, const Var& w, const Var& b) : vars{x} {
    if (w.defined()) {
      iw = static_cast<int>(vars.size());
      vars.push_back(w);
    }
    if (b.defined()) {
      ib = static_cast<int>(vars.size());
      vars.push_back(b);
    }
  }
};

Tensor value_or_undefined(const Var& v) { return v.defined() ? v.value() : Tensor{}; }

}  // namespace

Var layer_norm(const Var& x, const Shape& normalized_shape, const Var& weight, const Var& bias, double eps) {
  Tensor y, mean, rstd;
  const Tensor xv = x.value(), wv = value_or_undefined(weight);
  layer_norm_forward(y, mean, rstd, xv, normalized_shape, wv, value_or_undefined(bias), eps);
  const AffineInputs in(x, weight, bias);
  return make_result(y, in.vars, [in_pos = std::pair{in.iw, in.ib}, xv, wv, mean, rstd, normalized_shape](
                                     const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(needs.size());
    const bool nw = in_pos.first >= 0 && needs[in_pos.first], nb = in_pos.second >= 0 && needs[in_pos.second];
    Tensor gw, gb;
    layer_norm_backward(needs[0] ? &grads[0] : nullptr, nw ? &gw : nullptr, nb ? &gb : nullptr, g, xv, mean, rstd,
                        wv, normalized_shape);
    if (nw) grads[in_pos.first] = gw;
    if (nb) grads[in_pos.second] = gb;
    return grads;
  }, "layer_norm");
}

Var rms_norm(const Var& x, const Var& weight, double eps) {
  Tensor y, rstd;
  const Tensor xv = x.value(), wv = value_or_undefined(weight);
  rms_norm_forward(y, rstd, xv, wv, eps);
  const AffineInputs in(x, weight, Var{});
  return make_result(y, in.vars, [iw = in.iw, xv, wv, rstd](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(needs.size());
    const bool nw = iw >= 0 && needs[iw];
    Tensor gw;
    rms_norm_backward(needs[0] ? &grads[0] : nullptr, nw ? &gw : nullptr, g, xv, rstd, wv);
    if (nw) grads[iw] = gw;
    return grads;
  }, "rms_norm");
}

Var batch_norm(const Var& x, Tensor running_mean, Tensor running_var, const Var& weight, const Var& bias,
               bool training, double momentum, double eps) {
  Tensor y, mean, rstd;
  const Tensor xv = x.value(), wv = value_or_undefined(weight);
  batch_norm_forward(y, mean, rstd, xv, running_mean, running_var, wv, value_or_undefined(bias), training, momentum,
                     eps);
  const AffineInputs in(x, weight, bias);
  return make_result(y, in.vars, [in_pos = std::pair{in.iw, in.ib}, xv, wv, mean, rstd, training](
                                     const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(needs.size());
    const bool nw = in_pos.first >= 0 && needs[in_pos.first], nb = in_pos.second >= 0 && needs[in_pos.second];
    Tensor gw, gb;
    batch_norm_backward(needs[0] ? &grads[0] : nullptr, nw ? &gw : nullptr, nb ? &gb : nullptr, g, xv, mean, rstd,
                        wv, training);
    if (nw) grads[in_pos.first] = gw;
    if (nb) grads[in_pos.second] = gb;
    return grads;
  }, "batch_norm");
}

Var group_norm(const Var& x, int64_t num_groups, const Var& weight, const Var& bias, double eps) {
  Tensor y, mean, rstd;
  const Tensor xv = x.value(), wv = value_or_undefined(weight);
  group_norm_forward(y, mean, rstd, xv, num_groups, wv, value_or_undefined(bias), eps);
  const AffineInputs in(x, weight, bias);
  return make_result(y, in.vars, [in_pos = std::pair{in.iw, in.ib}, xv, wv, mean, rstd, num_groups](
                                     const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(needs.size());
    const bool nw = in_pos.first >= 0 && needs[in_pos.first], nb = in_pos.second >= 0 && needs[in_pos.second];
    Tensor gw, gb;
    group_norm_backward(needs[0] ? &grads[0] : nullptr, nw ? &gw : nullptr, nb ? &gb : nullptr, g, xv, mean, rstd,
                        wv, num_groups);
    if (nw) grads[in_pos.first] = gw;
    if (nb) grads[in_pos.second] = gb;
    return grads;
  }, "group_norm");
}

Var layer_norm_2d(const Var& x, const Var& weight, const Var& bias, double eps) {
  const int64_t nd = x.ndim();
  SSMKIT_CHECK(nd >= 2, "layer_norm_2d: x must be (N,C,...), got ", shape_str(x.shape()));
  std::vector<int64_t> to_last{0}, back{0, nd - 1};
  for (int64_t d = 2; d < nd; ++d) to_last.push_back(d);
  to_last.push_back(1);
  for (int64_t d = 1; d < nd - 1; ++d) back.push_back(d);
  return permute(layer_norm(permute(x, to_last), {x.size(1)}, weight, bias, eps), back);
}

}  // namespace ssmkit::core
