// Nearest and (bi)linear resizing (PyTorch's F.interpolate): per-axis source indices and weights computed once
// per call with PyTorch's formulas and precision (nearest: float scale and floorf, as in nearest_idx; linear:
// area_pixel_compute_scale / area_pixel_compute_source_index / guard_index_and_lambda in the tensor's dtype),
// then a gather per plane (forward) and the matching scatter (backward). 1-D ops run as 2-D with H = 1.
// Not here: bicubic, trilinear, area, nearest-exact, antialias.
#include "ssmkit/core/ops/upsample.h"

#include <algorithm>
#include <cmath>

#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

// PyTorch's nearest_idx: copy for equal sizes, halve for exactly 2x, else floorf(dst * scale) in float.
int64_t nearest_index(int64_t o, int64_t in, int64_t out, double scale) {
  if (out == in) return o;
  if (out == 2 * in) return o >> 1;
  const float s = scale > 0 ? static_cast<float>(1.0 / scale) : static_cast<float>(in) / static_cast<float>(out);
  return std::min(static_cast<int64_t>(std::floor(static_cast<float>(o) * s)), in - 1);
}

std::vector<int64_t> nearest_axis(int64_t in, int64_t out, double scale) {
  std::vector<int64_t> idx(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) idx[static_cast<size_t>(o)] = nearest_index(o, in, out, scale);
  return idx;
}

// Output o of one axis blends inputs i0[o] and i1[o] with weights l0[o] and l1[o].
template <class T>
struct LinearAxis {
  std::vector<int64_t> i0, i1;
  std::vector<T> l0, l1;
};

template <class T>
LinearAxis<T> linear_axis(int64_t in, int64_t out, bool align_corners, double scale) {
  LinearAxis<T> a;
  T ratio;  // area_pixel_compute_scale
  if (align_corners)
    ratio = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  else
    ratio = scale > 0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
  for (int64_t o = 0; o < out; ++o) {
    if (out == in) {  // scale factor 1: copy
      a.i0.push_back(o);
      a.i1.push_back(o);
      a.l0.push_back(T(1));
      a.l1.push_back(T(0));
      continue;
    }
    // area_pixel_compute_source_index (non-cubic: negative sources clamp to 0)
    T real = align_corners ? ratio * static_cast<T>(o) : ratio * (static_cast<T>(o) + T(0.5)) - T(0.5);
    if (!align_corners && real < T(0)) real = T(0);
    // guard_index_and_lambda (PyTorch floors with floorf for every dtype)
    const int64_t i = std::min(static_cast<int64_t>(std::floor(static_cast<float>(real))), in - 1);
    const T l1 = std::min(std::max(real - static_cast<T>(i), T(0)), T(1));
    a.i0.push_back(i);
    a.i1.push_back(i + (i < in - 1 ? 1 : 0));
    a.l1.push_back(l1);
    a.l0.push_back(T(1) - l1);
  }
  return a;
}

struct Planes {
  int64_t P, H, W;
};

Planes planes_of(const Shape& s) {
  const int64_t H = s[s.size() - 2], W = s.back();
  return {shape_numel(s) / std::max<int64_t>(H * W, 1), H, W};
}

Shape with_hw(const Shape& s, int64_t h, int64_t w) {
  Shape o = s;
  o[o.size() - 2] = h;
  o[o.size() - 1] = w;
  return o;
}

void check_input(const Tensor& x, int64_t out_h, int64_t out_w, const char* op) {
  SSMKIT_CHECK(x.defined() && x.ndim() >= 2, op, ": input must have at least 2 dims (...,H,W), got ",
               x.defined() ? shape_str(x.shape()) : "undefined");
  detail::check_float_dtype(x, op, "input");
  SSMKIT_CHECK(x.size(-2) >= 1 && x.size(-1) >= 1 && out_h >= 1 && out_w >= 1, op,
               ": input and output sizes must be > 0, got input ", shape_str(x.shape()), " and output size (", out_h,
               ",", out_w, ")");
}

// Checks dy against x_shape and prepares dx (allocated, or checked for accumulation).
void check_backward(Tensor& dx, const Tensor& dy, const Shape& x_shape, const char* op) {
  SSMKIT_CHECK(x_shape.size() >= 2 && dy.defined() && dy.ndim() == static_cast<int64_t>(x_shape.size()), op,
               ": dy and x_shape must have one rank >= 2, got dy ", dy.defined() ? shape_str(dy.shape()) : "undefined",
               " and x_shape ", shape_str(x_shape));
  SSMKIT_CHECK(dy.shape() == with_hw(x_shape, dy.size(-2), dy.size(-1)), op, ": dy ", shape_str(dy.shape()),
               " does not match input ", shape_str(x_shape), " outside the last two dims");
  check_input(dy, x_shape[x_shape.size() - 2], x_shape.back(), op);
  if (!dx.defined()) {
    dx = Tensor::zeros(x_shape, dy.dtype());
    return;
  }
  SSMKIT_CHECK(dx.shape() == x_shape && dx.dtype() == dy.dtype() && dx.is_contiguous(), op, ": dx must be a contiguous ",
               shape_str(x_shape), " ", dtype_name(dy.dtype()), " tensor, got ", shape_str(dx.shape()));
}

using detail::dispatch_float;

}  // namespace

void upsample_nearest2d_forward(Tensor& y, const Tensor& x0, int64_t out_h, int64_t out_w, double scale_h,
                                double scale_w) {
  check_input(x0, out_h, out_w, "upsample_nearest2d_forward");
  const Tensor x = x0.contiguous();
  const Planes p = planes_of(x.shape());
  const std::vector<int64_t> ih = nearest_axis(p.H, out_h, scale_h), iw = nearest_axis(p.W, out_w, scale_w);
  y = Tensor::empty(with_hw(x.shape(), out_h, out_w), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const int64_t HW = p.H * p.W, OP = out_h * out_w;
#pragma omp parallel for schedule(static) if (p.P * OP > 65536)
    for (int64_t pl = 0; pl < p.P; ++pl)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const T* xr = xp + pl * HW + ih[static_cast<size_t>(oh)] * p.W;
        T* yr = yp + pl * OP + oh * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) yr[ow] = xr[iw[static_cast<size_t>(ow)]];
      }
  });
}

void upsample_nearest2d_backward(Tensor& dx, const Tensor& dy0, const Shape& x_shape, double scale_h,
                                 double scale_w) {
  check_backward(dx, dy0, x_shape, "upsample_nearest2d_backward");
  const Tensor dy = dy0.contiguous();
  const Planes p = planes_of(x_shape);
  const int64_t out_h = dy.size(-2), out_w = dy.size(-1);
  const std::vector<int64_t> ih = nearest_axis(p.H, out_h, scale_h), iw = nearest_axis(p.W, out_w, scale_w);
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = dy.data<T>();
    T* dxp = dx.data<T>();
    const int64_t HW = p.H * p.W, OP = out_h * out_w;
#pragma omp parallel for schedule(static) if (p.P * OP > 65536)
    for (int64_t pl = 0; pl < p.P; ++pl)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        T* dxr = dxp + pl * HW + ih[static_cast<size_t>(oh)] * p.W;
        const T* gr = g + pl * OP + oh * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) dxr[iw[static_cast<size_t>(ow)]] += gr[ow];
      }
  });
}

void upsample_bilinear2d_forward(Tensor& y, const Tensor& x0, int64_t out_h, int64_t out_w, bool align_corners,
                                 double scale_h, double scale_w) {
  check_input(x0, out_h, out_w, "upsample_bilinear2d_forward");
  const Tensor x = x0.contiguous();
  const Planes p = planes_of(x.shape());
  y = Tensor::empty(with_hw(x.shape(), out_h, out_w), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const LinearAxis<T> ah = linear_axis<T>(p.H, out_h, align_corners, scale_h);
    const LinearAxis<T> aw = linear_axis<T>(p.W, out_w, align_corners, scale_w);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const int64_t HW = p.H * p.W, OP = out_h * out_w;
#pragma omp parallel for schedule(static) if (p.P * OP > 65536)
    for (int64_t pl = 0; pl < p.P; ++pl)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const size_t h = static_cast<size_t>(oh);
        const T* r0 = xp + pl * HW + ah.i0[h] * p.W;
        const T* r1 = xp + pl * HW + ah.i1[h] * p.W;
        T* yr = yp + pl * OP + oh * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const size_t w = static_cast<size_t>(ow);
          yr[ow] = ah.l0[h] * (aw.l0[w] * r0[aw.i0[w]] + aw.l1[w] * r0[aw.i1[w]]) +
                   ah.l1[h] * (aw.l0[w] * r1[aw.i0[w]] + aw.l1[w] * r1[aw.i1[w]]);
        }
      }
  });
}

void upsample_bilinear2d_backward(Tensor& dx, const Tensor& dy0, const Shape& x_shape, bool align_corners,
                                  double scale_h, double scale_w) {
  check_backward(dx, dy0, x_shape, "upsample_bilinear2d_backward");
  const Tensor dy = dy0.contiguous();
  const Planes p = planes_of(x_shape);
  const int64_t out_h = dy.size(-2), out_w = dy.size(-1);
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const LinearAxis<T> ah = linear_axis<T>(p.H, out_h, align_corners, scale_h);
    const LinearAxis<T> aw = linear_axis<T>(p.W, out_w, align_corners, scale_w);
    const T* g = dy.data<T>();
    T* dxp = dx.data<T>();
    const int64_t HW = p.H * p.W, OP = out_h * out_w;
#pragma omp parallel for schedule(static) if (p.P * OP > 65536)
    for (int64_t pl = 0; pl < p.P; ++pl)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const size_t h = static_cast<size_t>(oh);
        T* r0 = dxp + pl * HW + ah.i0[h] * p.W;
        T* r1 = dxp + pl * HW + ah.i1[h] * p.W;
        const T* gr = g + pl * OP + oh * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const size_t w = static_cast<size_t>(ow);
          const T g0 = ah.l0[h] * gr[ow], g1 = ah.l1[h] * gr[ow];
          r0[aw.i0[w]] += aw.l0[w] * g0;
          r0[aw.i1[w]] += aw.l1[w] * g0;
          r1[aw.i0[w]] += aw.l0[w] * g1;
          r1[aw.i1[w]] += aw.l1[w] * g1;
        }
      }
  });
}

// ------------------------------------------------------------------------------------------------------
// autograd ops

namespace {

// Resizes the last two axes of x (with an H = 1 axis inserted for 1-D ops) and records the backward.
Var resize_var(const Var& x, bool one_d, int64_t out_h, int64_t out_w, bool bilinear, bool align_corners,
               double scale_h, double scale_w, const char* op) {
  const int64_t rank = x.defined() ? x.ndim() : -1;
  SSMKIT_CHECK(rank == (one_d ? 3 : 4), op, ": input must be ", one_d ? "(N,C,L)" : "(N,C,H,W)", ", got ",
               x.defined() ? shape_str(x.shape()) : "undefined");
  Tensor x4 = x.value();
  if (one_d) x4 = x4.reshape({x4.size(0), x4.size(1), 1, x4.size(2)});
  Tensor y;
  if (bilinear)
    upsample_bilinear2d_forward(y, x4, out_h, out_w, align_corners, scale_h, scale_w);
  else
    upsample_nearest2d_forward(y, x4, out_h, out_w, scale_h, scale_w);
  const Shape xs = x.shape(), x4s = x4.shape(), y4s = y.shape();
  Shape ys = y4s;
  if (one_d) ys.erase(ys.end() - 2);
  return make_result(y.view(ys), {x}, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor dx;
    if (bilinear)
      upsample_bilinear2d_backward(dx, g.reshape(y4s), x4s, align_corners, scale_h, scale_w);
    else
      upsample_nearest2d_backward(dx, g.reshape(y4s), x4s, scale_h, scale_w);
    return std::vector<Tensor>{dx.view(xs)};
  }, op);
}

}  // namespace

Var upsample_nearest1d(const Var& x, int64_t out_l, double scale) {
  return resize_var(x, true, 1, out_l, false, false, 0, scale, "upsample_nearest1d");
}

Var upsample_linear1d(const Var& x, int64_t out_l, bool align_corners, double scale) {
  return resize_var(x, true, 1, out_l, true, align_corners, 0, scale, "upsample_linear1d");
}

Var upsample_nearest2d(const Var& x, std::array<int64_t, 2> size, std::array<double, 2> scales) {
  return resize_var(x, false, size[0], size[1], false, false, scales[0], scales[1], "upsample_nearest2d");
}

Var upsample_bilinear2d(const Var& x, std::array<int64_t, 2> size, bool align_corners, std::array<double, 2> scales) {
  return resize_var(x, false, size[0], size[1], true, align_corners, scales[0], scales[1], "upsample_bilinear2d");
}

Var interpolate(const Var& x, const InterpolateOptions& o) {
  const int64_t rank = x.defined() ? x.ndim() : -1;
  SSMKIT_CHECK(rank == 3 || rank == 4, "interpolate: input must be (N,C,L) or (N,C,H,W), got ",
               x.defined() ? shape_str(x.shape()) : "undefined");
  const size_t dims = static_cast<size_t>(rank - 2);
  SSMKIT_CHECK(o.mode != InterpMode::Linear || rank == 3, "interpolate: mode Linear needs a 3-D input (N,C,L), got ",
               shape_str(x.shape()));
  SSMKIT_CHECK(o.mode != InterpMode::Bilinear || rank == 4,
               "interpolate: mode Bilinear needs a 4-D input (N,C,H,W), got ", shape_str(x.shape()));
  SSMKIT_CHECK(o.mode != InterpMode::Nearest || !o.align_corners,
               "interpolate: align_corners can only be set with the interpolating modes Linear and Bilinear");
  SSMKIT_CHECK(o.size.empty() != o.scale_factor.empty(), "interpolate: give exactly one of size and scale_factor");
  std::vector<int64_t> out(dims);
  std::vector<double> scales(dims, 0.0);
  if (!o.size.empty()) {
    SSMKIT_CHECK(o.size.size() == 1 || o.size.size() == dims, "interpolate: size needs 1 or ", dims,
                 " values for input ", shape_str(x.shape()), ", got ", o.size.size());
    for (size_t i = 0; i < dims; ++i) out[i] = o.size.size() == 1 ? o.size[0] : o.size[i];
  } else {
    SSMKIT_CHECK(o.scale_factor.size() == 1 || o.scale_factor.size() == dims, "interpolate: scale_factor needs 1 or ",
                 dims, " values for input ", shape_str(x.shape()), ", got ", o.scale_factor.size());
    for (size_t i = 0; i < dims; ++i) {
      scales[i] = o.scale_factor.size() == 1 ? o.scale_factor[0] : o.scale_factor[i];
      SSMKIT_CHECK(scales[i] > 0, "interpolate: scale_factor must be > 0, got ", scales[i]);
      out[i] = static_cast<int64_t>(std::floor(static_cast<double>(x.size(static_cast<int64_t>(i) + 2)) * scales[i]));
    }
  }
  const bool interp = o.mode != InterpMode::Nearest;
  if (rank == 3) return resize_var(x, true, 1, out[0], interp, o.align_corners, 0, scales[0], "interpolate");
  return resize_var(x, false, out[0], out[1], interp, o.align_corners, scales[0], scales[1], "interpolate");
}

}  // namespace ssmkit::core
