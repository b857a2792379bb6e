// Max, average and adaptive pooling (PyTorch semantics): forward and backward kernels and autograd ops.
// Every op is a set of windows per output row and column ([start, end) with a step), computed once per call:
// max windows follow PyTorch's cpu_max_pool (start stepped past the padding by the dilation), avg windows its
// cpu_avg_pool (divisor from the window clipped at in + pad, or at the input without count_include_pad),
// adaptive windows its start_index / end_index. Backward scatters inside each plane.
// Not here: divisor_override, fractional / LP pooling, 3-D pooling.
#include "ssmkit/core/ops/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

// The windows of one axis: output o reads positions start[o], start[o] + step, ... below end[o]; `full[o]`
// is the window length counted by count_include_pad.
struct Windows {
  std::vector<int64_t> start, end, full;
  int64_t step = 1;
};

Windows max_windows(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d) {
  Windows w;
  w.step = d;
  for (int64_t o = 0; o < out; ++o) {
    int64_t a = o * s - p;
    const int64_t e = std::min(a + (k - 1) * d + 1, in);
    while (a < 0) a += d;
    w.start.push_back(a);
    w.end.push_back(e);
    w.full.push_back(0);
  }
  return w;
}

Windows avg_windows(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p) {
  Windows w;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t a = o * s - p, e = std::min(a + k, in + p);
    w.full.push_back(e - a);
    w.start.push_back(std::max<int64_t>(a, 0));
    w.end.push_back(std::min(e, in));
  }
  return w;
}

Windows adaptive_windows(int64_t in, int64_t out) {
  Windows w;
  for (int64_t o = 0; o < out; ++o) {
    w.start.push_back(adaptive_pool_start(o, in, out));
    w.end.push_back(adaptive_pool_end(o, in, out));
    w.full.push_back(w.end.back() - w.start.back());
  }
  return w;
}

// The (..., H, W) view of a pooling input: P planes of H x W.
struct Planes {
  int64_t P, H, W;
};

Planes planes_of(const Tensor& x, const char* op) {
  SSMKIT_CHECK(x.defined() && x.ndim() >= 2, op, ": input must have at least 2 dims (...,H,W), got ",
               x.defined() ? shape_str(x.shape()) : "undefined");
  detail::check_float_dtype(x, op, "input");
  const int64_t H = x.size(-2), W = x.size(-1);
  SSMKIT_CHECK(H >= 1 && W >= 1, op, ": input ", shape_str(x.shape()), " has an empty spatial size");
  return {x.numel() / (H * W), H, W};
}

Shape with_hw(const Shape& s, int64_t h, int64_t w) {
  Shape o = s;
  o[o.size() - 2] = h;
  o[o.size() - 1] = w;
  return o;
}

// Checks PyTorch's pool2d_shape_check conditions and returns (OH, OW).
std::array<int64_t, 2> pool_out(const Planes& p, const Shape& xs, const PoolGeometry& g, const char* op) {
  SSMKIT_CHECK(g.kernel_h > 0 && g.kernel_w > 0, op, ": kernel_size must be > 0, got (", g.kernel_h, ",", g.kernel_w,
               ")");
  SSMKIT_CHECK(g.stride_h > 0 && g.stride_w > 0, op, ": stride must be > 0, got (", g.stride_h, ",", g.stride_w, ")");
  SSMKIT_CHECK(g.dilation_h > 0 && g.dilation_w > 0, op, ": dilation must be > 0, got (", g.dilation_h, ",",
               g.dilation_w, ")");
  SSMKIT_CHECK(g.pad_h >= 0 && g.pad_w >= 0 && g.pad_h <= g.kernel_h / 2 && g.pad_w <= g.kernel_w / 2, op,
               ": padding must be between 0 and half the kernel size, got padding (", g.pad_h, ",", g.pad_w,
               ") for kernel_size (", g.kernel_h, ",", g.kernel_w, ")");
  const int64_t oh = pool_output_size(p.H, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h, g.ceil_mode);
  const int64_t ow = pool_output_size(p.W, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w, g.ceil_mode);
  SSMKIT_CHECK(oh >= 1 && ow >= 1, op, ": input ", shape_str(xs), " is too small for kernel_size (", g.kernel_h, ",",
               g.kernel_w, ") (output size (", oh, ",", ow, "))");
  return {oh, ow};
}

void check_adaptive(int64_t out_h, int64_t out_w, const char* op) {
  SSMKIT_CHECK(out_h >= 1 && out_w >= 1, op, ": output_size must be >= 1, got (", out_h, ",", out_w, ")");
}

using detail::dispatch_float;

// Makes `dx` a contiguous zero-or-accumulating gradient of `shape`.
void prepare_dx(Tensor& dx, const Shape& shape, DType dt, const char* op) {
  if (!dx.defined()) {
    dx = Tensor::zeros(shape, dt);
    return;
  }
  SSMKIT_CHECK(dx.shape() == shape && dx.dtype() == dt && dx.is_contiguous(), op, ": dx must be a contiguous ",
               shape_str(shape), " ", dtype_name(dt), " tensor, got ", shape_str(dx.shape()), " ",
               dtype_name(dx.dtype()));
}

// ------------------------------------------------------------------------------------------------------
// kernels: x (P,H,W) -> y (P,OH,OW)

// Max over each window; idx gets the flat h*W + w of the first maximum (a NaN wins), -1 for an empty window.
template <class T>
void max_kernel(T* y, int64_t* idx, const T* x, const Planes& p, const Windows& wh, const Windows& ww) {
  const int64_t OH = static_cast<int64_t>(wh.start.size()), OW = static_cast<int64_t>(ww.start.size());
  const int64_t HW = p.H * p.W, OP = OH * OW;
#pragma omp parallel for schedule(static) if (p.P * HW > 65536)
  for (int64_t pl = 0; pl < p.P; ++pl) {
    const T* xp = x + pl * HW;
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t h0 = wh.start[oh], h1 = wh.end[oh], w0 = ww.start[ow], w1 = ww.end[ow];
        int64_t best = (h0 < h1 && w0 < w1) ? h0 * p.W + w0 : -1;
        T val = -std::numeric_limits<T>::infinity();
        for (int64_t h = h0; h < h1; h += wh.step)
          for (int64_t w = w0; w < w1; w += ww.step) {
            const T v = xp[h * p.W + w];
            if (v > val || std::isnan(v)) {
              val = v;
              best = h * p.W + w;
            }
          }
        y[pl * OP + oh * OW + ow] = val;
        if (idx) idx[pl * OP + oh * OW + ow] = best;
      }
  }
}

// Mean over each window: sum / (full_h * full_w) with count_include_pad, else / (clipped window size).
template <class T>
void avg_kernel(T* y, const T* x, const Planes& p, const Windows& wh, const Windows& ww, bool include_pad) {
  const int64_t OH = static_cast<int64_t>(wh.start.size()), OW = static_cast<int64_t>(ww.start.size());
  const int64_t HW = p.H * p.W, OP = OH * OW;
#pragma omp parallel for schedule(static) if (p.P * HW > 65536)
  for (int64_t pl = 0; pl < p.P; ++pl) {
    const T* xp = x + pl * HW;
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t h0 = wh.start[oh], h1 = wh.end[oh], w0 = ww.start[ow], w1 = ww.end[ow];
        T& out = y[pl * OP + oh * OW + ow];
        if (h0 >= h1 || w0 >= w1) {
          out = T(0);
          continue;
        }
        T s = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) s += xp[h * p.W + w];
        const int64_t div = include_pad ? wh.full[oh] * ww.full[ow] : (h1 - h0) * (w1 - w0);
        out = s / static_cast<T>(div);
      }
  }
}

template <class T>
void avg_backward_kernel(T* dx, const T* dy, const Planes& p, const Windows& wh, const Windows& ww, bool include_pad) {
  const int64_t OH = static_cast<int64_t>(wh.start.size()), OW = static_cast<int64_t>(ww.start.size());
  const int64_t HW = p.H * p.W, OP = OH * OW;
#pragma omp parallel for schedule(static) if (p.P * HW > 65536)
  for (int64_t pl = 0; pl < p.P; ++pl) {
    T* dxp = dx + pl * HW;
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t h0 = wh.start[oh], h1 = wh.end[oh], w0 = ww.start[ow], w1 = ww.end[ow];
        if (h0 >= h1 || w0 >= w1) continue;
        const int64_t div = include_pad ? wh.full[oh] * ww.full[ow] : (h1 - h0) * (w1 - w0);
        const T gv = dy[pl * OP + oh * OW + ow] / static_cast<T>(div);
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) dxp[h * p.W + w] += gv;
      }
  }
}

// ------------------------------------------------------------------------------------------------------
// shared entry points (op names the caller for messages)

void max_forward_any(Tensor& y, Tensor* indices, const Tensor& x0, const Planes& p, const Windows& wh,
                     const Windows& ww) {
  const Tensor x = x0.contiguous();
  const int64_t OH = static_cast<int64_t>(wh.start.size()), OW = static_cast<int64_t>(ww.start.size());
  const Shape ys = with_hw(x.shape(), OH, OW);
  y = Tensor::empty(ys, x.dtype());
  if (indices) *indices = Tensor::empty(ys, DType::I64);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_kernel<T>(y.data<T>(), indices ? indices->data<int64_t>() : nullptr, x.data<T>(), p, wh, ww);
  });
}

void avg_forward_any(Tensor& y, const Tensor& x0, const Planes& p, const Windows& wh, const Windows& ww,
                     bool include_pad) {
  const Tensor x = x0.contiguous();
  y = Tensor::empty(with_hw(x.shape(), static_cast<int64_t>(wh.start.size()), static_cast<int64_t>(ww.start.size())),
                    x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_kernel<T>(y.data<T>(), x.data<T>(), p, wh, ww, include_pad);
  });
}

void avg_backward_any(Tensor& dx, const Tensor& dy0, const Shape& x_shape, const Windows& wh, const Windows& ww,
                      bool include_pad, const char* op) {
  SSMKIT_CHECK(x_shape.size() >= 2, op, ": x_shape must have at least 2 dims, got ", shape_str(x_shape));
  const Shape ys =
      with_hw(x_shape, static_cast<int64_t>(wh.start.size()), static_cast<int64_t>(ww.start.size()));
  SSMKIT_CHECK(dy0.defined() && dy0.shape() == ys, op, ": dy must be ", shape_str(ys), " for input ",
               shape_str(x_shape), ", got ", dy0.defined() ? shape_str(dy0.shape()) : "undefined");
  SSMKIT_CHECK(dy0.dtype() == DType::F32 || dy0.dtype() == DType::F64, op, ": dy must be F32 or F64");
  const Tensor dy = dy0.contiguous();
  prepare_dx(dx, x_shape, dy.dtype(), op);
  const int64_t H = x_shape[x_shape.size() - 2], W = x_shape.back();
  const Planes p{shape_numel(x_shape) / std::max<int64_t>(H * W, 1), H, W};
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_backward_kernel<T>(dx.data<T>(), dy.data<T>(), p, wh, ww, include_pad);
  });
}

}  // namespace

int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode) {
  const int64_t num = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  // floor division (PyTorch's div_rtn), also for a negative numerator
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

int64_t adaptive_pool_start(int64_t i, int64_t in, int64_t out) { return (i / out) * in + ((i % out) * in) / out; }

int64_t adaptive_pool_end(int64_t i, int64_t in, int64_t out) { return 1 + ((i + 1) * in - 1) / out; }

void max_pool2d_forward(Tensor& y, Tensor* indices, const Tensor& x, const PoolGeometry& g) {
  const char* op = "max_pool2d_forward";
  const Planes p = planes_of(x, op);
  const auto [OH, OW] = pool_out(p, x.shape(), g, op);
  max_forward_any(y, indices, x, p, max_windows(p.H, OH, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h),
                  max_windows(p.W, OW, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w));
}

void max_pool2d_backward(Tensor& dx, const Tensor& dy0, const Tensor& indices0, const Shape& x_shape) {
  const char* op = "max_pool2d_backward";
  SSMKIT_CHECK(x_shape.size() >= 2, op, ": x_shape must have at least 2 dims, got ", shape_str(x_shape));
  SSMKIT_CHECK(dy0.defined() && indices0.defined() && dy0.shape() == indices0.shape() && dy0.ndim() == static_cast<int64_t>(x_shape.size()),
               op, ": dy and indices must have one shape of the input's rank, got dy ",
               dy0.defined() ? shape_str(dy0.shape()) : "undefined", " and indices ",
               indices0.defined() ? shape_str(indices0.shape()) : "undefined", " for input ", shape_str(x_shape));
  SSMKIT_CHECK(indices0.dtype() == DType::I64, op, ": indices must be I64, got ", dtype_name(indices0.dtype()));
  SSMKIT_CHECK(dy0.dtype() == DType::F32 || dy0.dtype() == DType::F64, op, ": dy must be F32 or F64");
  for (size_t i = 0; i + 2 < x_shape.size(); ++i)
    SSMKIT_CHECK(dy0.shape()[i] == x_shape[i], op, ": dy ", shape_str(dy0.shape()), " does not match input ",
                 shape_str(x_shape), " outside the last two dims");
  const Tensor dy = dy0.contiguous(), indices = indices0.contiguous();
  prepare_dx(dx, x_shape, dy.dtype(), op);
  const int64_t HW = x_shape[x_shape.size() - 2] * x_shape.back();
  const int64_t OP = dy.size(-2) * dy.size(-1), P = dy.numel() / std::max<int64_t>(OP, 1);
  const int64_t* ip = indices.data<int64_t>();
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dxp = dx.data<T>();
    const T* g = dy.data<T>();
#pragma omp parallel for schedule(static) if (P * OP > 65536)
    for (int64_t pl = 0; pl < P; ++pl)
      for (int64_t o = 0; o < OP; ++o) {
        const int64_t at = ip[pl * OP + o];
        if (at >= 0 && at < HW) dxp[pl * HW + at] += g[pl * OP + o];  // -1: an empty window
      }
  });
}

void avg_pool2d_forward(Tensor& y, const Tensor& x, const PoolGeometry& g) {
  const char* op = "avg_pool2d_forward";
  const Planes p = planes_of(x, op);
  const auto [OH, OW] = pool_out(p, x.shape(), g, op);
  avg_forward_any(y, x, p, avg_windows(p.H, OH, g.kernel_h, g.stride_h, g.pad_h),
                  avg_windows(p.W, OW, g.kernel_w, g.stride_w, g.pad_w), g.count_include_pad);
}

void avg_pool2d_backward(Tensor& dx, const Tensor& dy, const Shape& x_shape, const PoolGeometry& g) {
  const char* op = "avg_pool2d_backward";
  SSMKIT_CHECK(x_shape.size() >= 2, op, ": x_shape must have at least 2 dims, got ", shape_str(x_shape));
  const int64_t H = x_shape[x_shape.size() - 2], W = x_shape.back();
  const auto [OH, OW] = pool_out(Planes{1, H, W}, x_shape, g, op);
  avg_backward_any(dx, dy, x_shape, avg_windows(H, OH, g.kernel_h, g.stride_h, g.pad_h),
                   avg_windows(W, OW, g.kernel_w, g.stride_w, g.pad_w), g.count_include_pad, op);
}

void adaptive_avg_pool2d_forward(Tensor& y, const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* op = "adaptive_avg_pool2d_forward";
  const Planes p = planes_of(x, op);
  check_adaptive(out_h, out_w, op);
  avg_forward_any(y, x, p, adaptive_windows(p.H, out_h), adaptive_windows(p.W, out_w), true);
}

void adaptive_avg_pool2d_backward(Tensor& dx, const Tensor& dy, const Shape& x_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  SSMKIT_CHECK(x_shape.size() >= 2 && dy.defined() && dy.ndim() == static_cast<int64_t>(x_shape.size()), op,
               ": dy and x_shape must have one rank >= 2, got dy ", dy.defined() ? shape_str(dy.shape()) : "undefined",
               " and x_shape ", shape_str(x_shape));
  const int64_t H = x_shape[x_shape.size() - 2], W = x_shape.back();
  check_adaptive(dy.size(-2), dy.size(-1), op);
  avg_backward_any(dx, dy, x_shape, adaptive_windows(H, dy.size(-2)), adaptive_windows(W, dy.size(-1)), true, op);
}

void adaptive_max_pool2d_forward(Tensor& y, Tensor* indices, const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* op = "adaptive_max_pool2d_forward";
  const Planes p = planes_of(x, op);
  check_adaptive(out_h, out_w, op);
  max_forward_any(y, indices, x, p, adaptive_windows(p.H, out_h), adaptive_windows(p.W, out_w));
}

// ------------------------------------------------------------------------------------------------------
// autograd ops

namespace {

// PyTorch's accepted ranks: (N,C,L) or (C,L) for 1-D ops, (N,C,H,W) or (C,H,W) for 2-D ops.
void check_rank(const Var& x, bool one_d, const char* op) {
  const int64_t r = x.defined() ? x.ndim() : -1;
  const bool ok = one_d ? (r == 2 || r == 3) : (r == 3 || r == 4);
  SSMKIT_CHECK(ok, op, ": input must be ", one_d ? "(N,C,L) or (C,L)" : "(N,C,H,W) or (C,H,W)", ", got ",
               x.defined() ? shape_str(x.shape()) : "undefined");
}

// The (..., 1, L) view of a 1-D input (a contiguous copy when needed); the input itself for 2-D.
Tensor as_2d(const Tensor& x, bool one_d) {
  if (!one_d) return x;
  Shape s = x.shape();
  s.insert(s.end() - 1, 1);
  return x.reshape(s);
}

// Runs the max kernel `fwd(y, &idx, x4)` and records dx[idx] += dy.
template <class Fwd>
Var max_var(const Var& x, bool one_d, const char* op, Fwd fwd) {
  check_rank(x, one_d, op);
  const Tensor x4 = as_2d(x.value(), one_d);
  Tensor y, idx;
  fwd(y, &idx, x4);
  const Shape xs = x.shape(), x4s = x4.shape(), y4s = y.shape();
  Shape ys = y4s;
  if (one_d) ys.erase(ys.end() - 2);
  return make_result(y.view(ys), {x}, [idx, xs, x4s, y4s](const Tensor& g, const std::vector<bool>&) {
    Tensor dx;
    max_pool2d_backward(dx, g.reshape(y4s), idx, x4s);
    return std::vector<Tensor>{dx.view(xs)};
  }, op);
}

// Runs the average kernel `fwd(y, x4)` and records `bwd(dx, dy4, x4_shape)`.
template <class Fwd, class Bwd>
Var avg_var(const Var& x, bool one_d, const char* op, Fwd fwd, Bwd bwd) {
  check_rank(x, one_d, op);
  const Tensor x4 = as_2d(x.value(), one_d);
  Tensor y;
  fwd(y, x4);
  const Shape xs = x.shape(), x4s = x4.shape(), y4s = y.shape();
  Shape ys = y4s;
  if (one_d) ys.erase(ys.end() - 2);
  return make_result(y.view(ys), {x}, [xs, x4s, y4s, bwd](const Tensor& g, const std::vector<bool>&) {
    Tensor dx;
    bwd(dx, g.reshape(y4s), x4s);
    return std::vector<Tensor>{dx.view(xs)};
  }, op);
}

PoolGeometry geometry(std::array<int64_t, 2> k, std::array<int64_t, 2> s, std::array<int64_t, 2> p,
                      std::array<int64_t, 2> d, bool ceil_mode, bool count_include_pad) {
  PoolGeometry g;
  g.kernel_h = k[0];
  g.kernel_w = k[1];
  g.stride_h = s[0] == 0 ? k[0] : s[0];
  g.stride_w = s[1] == 0 ? k[1] : s[1];
  g.pad_h = p[0];
  g.pad_w = p[1];
  g.dilation_h = d[0];
  g.dilation_w = d[1];
  g.ceil_mode = ceil_mode;
  g.count_include_pad = count_include_pad;
  return g;
}

Var max_pool_any(const Var& x, const PoolGeometry& g, bool one_d, const char* op) {
  return max_var(x, one_d, op, [&](Tensor& y, Tensor* idx, const Tensor& x4) {
    const Planes p = planes_of(x4, op);
    const auto [OH, OW] = pool_out(p, x.shape(), g, op);
    max_forward_any(y, idx, x4, p, max_windows(p.H, OH, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h),
                    max_windows(p.W, OW, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w));
  });
}

Var avg_pool_any(const Var& x, const PoolGeometry& g, bool one_d, const char* op) {
  return avg_var(
      x, one_d, op,
      [&](Tensor& y, const Tensor& x4) {
        const Planes p = planes_of(x4, op);
        const auto [OH, OW] = pool_out(p, x.shape(), g, op);
        avg_forward_any(y, x4, p, avg_windows(p.H, OH, g.kernel_h, g.stride_h, g.pad_h),
                        avg_windows(p.W, OW, g.kernel_w, g.stride_w, g.pad_w), g.count_include_pad);
      },
      [g](Tensor& dx, const Tensor& dy, const Shape& x4s) { avg_pool2d_backward(dx, dy, x4s, g); });
}

Var adaptive_avg_any(const Var& x, int64_t out_h, int64_t out_w, bool one_d, const char* op) {
  return avg_var(
      x, one_d, op,
      [&](Tensor& y, const Tensor& x4) {
        const Planes p = planes_of(x4, op);
        check_adaptive(out_h, out_w, op);
        avg_forward_any(y, x4, p, adaptive_windows(p.H, out_h), adaptive_windows(p.W, out_w), true);
      },
      [](Tensor& dx, const Tensor& dy, const Shape& x4s) { adaptive_avg_pool2d_backward(dx, dy, x4s); });
}

Var adaptive_max_any(const Var& x, int64_t out_h, int64_t out_w, bool one_d, const char* op) {
  return max_var(x, one_d, op, [&](Tensor& y, Tensor* idx, const Tensor& x4) {
    const Planes p = planes_of(x4, op);
    check_adaptive(out_h, out_w, op);
    max_forward_any(y, idx, x4, p, adaptive_windows(p.H, out_h), adaptive_windows(p.W, out_w));
  });
}

}  // namespace

Var max_pool1d(const Var& x, int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation, bool ceil_mode) {
  return max_pool_any(x, geometry({1, kernel_size}, {1, stride}, {0, padding}, {1, dilation}, ceil_mode, true), true,
                      "max_pool1d");
}

Var max_pool2d(const Var& x, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride,
               std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, bool ceil_mode) {
  return max_pool_any(x, geometry(kernel_size, stride, padding, dilation, ceil_mode, true), false, "max_pool2d");
}

Var avg_pool1d(const Var& x, int64_t kernel_size, int64_t stride, int64_t padding, bool ceil_mode,
               bool count_include_pad) {
  return avg_pool_any(x, geometry({1, kernel_size}, {1, stride}, {0, padding}, {1, 1}, ceil_mode, count_include_pad),
                      true, "avg_pool1d");
}

Var avg_pool2d(const Var& x, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride,
               std::array<int64_t, 2> padding, bool ceil_mode, bool count_include_pad) {
  return avg_pool_any(x, geometry(kernel_size, stride, padding, {1, 1}, ceil_mode, count_include_pad), false,
                      "avg_pool2d");
}

Var adaptive_avg_pool1d(const Var& x, int64_t output_size) {
  return adaptive_avg_any(x, 1, output_size, true, "adaptive_avg_pool1d");
}

Var adaptive_max_pool1d(const Var& x, int64_t output_size) {
  return adaptive_max_any(x, 1, output_size, true, "adaptive_max_pool1d");
}

Var adaptive_avg_pool2d(const Var& x, std::array<int64_t, 2> output_size) {
  return adaptive_avg_any(x, output_size[0], output_size[1], false, "adaptive_avg_pool2d");
}

Var adaptive_max_pool2d(const Var& x, std::array<int64_t, 2> output_size) {
  return adaptive_max_any(x, output_size[0], output_size[1], false, "adaptive_max_pool2d");
}

}  // namespace ssmkit::core
