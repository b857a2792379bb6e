// Argument and buffer helpers shared by the S4D and FFT-convolution kernels (private to core/src/ssm):
// shape checks naming the op and argument, output and gradient buffers that accept any strides (the
// kernel writes a contiguous buffer and copies back), and the reference paths' F64 result store.
#pragma once

#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core::detail {

inline void check_shape(const char* fn, const char* name, const Tensor& t, const Shape& want) {
  SSMKIT_CHECK(t.defined(), fn, ": ", name, " is undefined, expected ", shape_str(want));
  SSMKIT_CHECK(t.shape() == want, fn, ": ", name, " must be ", shape_str(want), ", got ", shape_str(t.shape()));
}

// An output the kernel overwrites: allocated when undefined, else checked; a contiguous tensor to write.
inline Tensor output_buffer(const char* fn, const char* name, Tensor& out, const Shape& shape, DType dt) {
  if (!out.defined()) {
    out = Tensor::empty(shape, dt);
    return out;
  }
  check_shape(fn, name, out, shape);
  SSMKIT_CHECK(out.dtype() == dt, fn, ": ", name, " has dtype ", dtype_name(out.dtype()), ", expected ",
               dtype_name(dt));
  return out.is_contiguous() ? out : Tensor::empty(shape, dt);
}

// A gradient the kernel adds into, when defined on entry: must have this shape and dtype. Checked for every
// gradient before any is allocated, so a bad call changes nothing.
inline void check_grad(const char* fn, const char* name, const Tensor& g, const Shape& shape, DType dt) {
  if (!g.defined()) return;
  check_shape(fn, name, g, shape);
  SSMKIT_CHECK(g.dtype() == dt, fn, ": ", name, " has dtype ", dtype_name(g.dtype()), ", expected ",
               dtype_name(dt));
}

// The gradient to add into: allocated (zeros) when undefined, else a contiguous tensor holding its values;
// when that is not `g` itself the caller copies it back (copy_back).
inline Tensor grad_buffer(Tensor& g, const Shape& shape, DType dt) {
  if (!g.defined()) g = Tensor::zeros(shape, dt);
  return g.contiguous();
}

inline void copy_back(Tensor& dst, const Tensor& buf) {
  if (dst.defined() && !dst.same_storage(buf)) dst.copy_from(buf);
}

// Reference outputs: F64 when `g` is undefined, else added into (accumulate) or written into `g`.
inline void ref_store(const char* fn, const char* name, Tensor& g, const Shape& shape, std::vector<double> v,
               bool accumulate) {
  if (!g.defined()) {
    g = Tensor::from_vector(shape, v);
    return;
  }
  check_shape(fn, name, g, shape);
  if (accumulate) {
    std::vector<double> cur = g.to_double_vector();
    for (size_t i = 0; i < v.size(); ++i) v[i] += cur[i];
  }
  g.copy_from(Tensor::from_vector(shape, v));
}

}  // namespace ssmkit::core::detail
