// Private to core/src (not installed): the F32/F64 dispatch and dtype checks that the op kernels share.
// dispatch_float calls a generic lambda with a float or double tag; callers check the dtype first.
// The checks throw "<op>: <arg> must be F32 or F64, got <dtype>" (and "<op>: <arg> is undefined").
#pragma once

#include "ssmkit/core/error.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::core::detail {

// Calls fn(double{}) for F64 and fn(float{}) for every other dtype; returns what fn returns.
template <class Fn>
auto dispatch_float(DType dt, Fn fn) {
  if (dt == DType::F64) return fn(double{});
  return fn(float{});
}

// t (a Tensor or a Var) must be F32 or F64.
template <class T>
void check_float_dtype(const T& t, const char* op, const char* arg) {
  SSMKIT_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, op, ": ", arg, " must be F32 or F64, got ",
               dtype_name(t.dtype()));
}

// t (a Tensor or a Var) must be defined, and F32 or F64.
template <class T>
void check_float(const T& t, const char* op, const char* arg) {
  SSMKIT_CHECK(t.defined(), op, ": ", arg, " is undefined");
  check_float_dtype(t, op, arg);
}

}  // namespace ssmkit::core::detail
