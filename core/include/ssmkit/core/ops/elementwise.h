// Elementwise arithmetic with NumPy/PyTorch broadcasting, unary math, and reductions, as autograd ops.
// Broadcasting aligns shapes from the right; a dimension of size 1 (or a missing one) is repeated.
// Backward sums the gradient over the broadcast dimensions (sum_to). F32 or F64; operands of one op
// share a dtype. Also the view-like ops (reshape, permute, transpose) on Vars.
#pragma once

#include <vector>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// The broadcast shape of a and b; throws Error naming both shapes when they are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Sums t over the dimensions that broadcasting added or expanded, giving `shape` (the backward of a
// broadcast). Contiguous result.
Tensor sum_to(const Tensor& t, const Shape& shape);

// Binary (broadcasting)
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
// With a constant
Var add_scalar(const Var& a, double s);
Var mul_scalar(const Var& a, double s);
Var pow_scalar(const Var& a, double p);  // a^p (a > 0 for non-integer p)
// Unary
Var neg(const Var& a);
Var exp(const Var& a);
Var log(const Var& a);
Var sqrt(const Var& a);
Var square(const Var& a);
Var abs(const Var& a);  // gradient sign(a), 0 at 0
// Reductions
Var sum(const Var& a);                                            // all elements -> shape []
Var mean(const Var& a);                                           // all elements -> shape []
Var sum(const Var& a, const std::vector<int64_t>& dims, bool keepdim = false);
Var mean(const Var& a, const std::vector<int64_t>& dims, bool keepdim = false);
// Views
Var reshape(const Var& a, const Shape& shape);  // one dim may be -1
Var permute(const Var& a, const std::vector<int64_t>& dims);
Var transpose(const Var& a, int64_t d0, int64_t d1);
Var contiguous(const Var& a);

inline Var operator+(const Var& a, const Var& b) { return add(a, b); }
inline Var operator-(const Var& a, const Var& b) { return sub(a, b); }
inline Var operator*(const Var& a, const Var& b) { return mul(a, b); }
inline Var operator/(const Var& a, const Var& b) { return div(a, b); }
inline Var operator-(const Var& a) { return neg(a); }

}  // namespace ssmkit::core
