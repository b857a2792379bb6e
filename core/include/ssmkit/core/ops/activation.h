// Activation functions as autograd ops, with PyTorch's torch.nn.functional semantics and defaults:
// pointwise relu, gelu (exact erf form or tanh approximation), silu, sigmoid, tanh, softplus, softshrink,
// and the ops along one dimension: softmax, log_softmax (max-subtracted, reductions in double) and glu.
// Not here: in-place variants, other activations (elu, hardswish, ...). F32 or F64; any shape
// (non-contiguous inputs are copied). Shapes: x (...) -> y (...) unless noted; dim may be negative.
#pragma once

#include <string>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// Pointwise. Gradients at kinks follow PyTorch: relu'(0) = 0, softshrink'(+-lambd) = 0.
Var relu(const Var& x);
Var gelu(const Var& x, const std::string& approximate = "none");  // "none": x Phi(x) (erf); "tanh"
Var silu(const Var& x);                                            // x sigmoid(x)
Var sigmoid(const Var& x);
Var tanh(const Var& x);
// log(1 + exp(beta x)) / beta, and x itself where beta x > threshold.
Var softplus(const Var& x, double beta = 1.0, double threshold = 20.0);
// x - lambd where x > lambd, x + lambd where x < -lambd, else 0 (lambd >= 0).
Var softshrink(const Var& x, double lambd = 0.5);

// Along one dimension.
Var softmax(const Var& x, int64_t dim);      // x (...) -> y (...), sums to 1 along dim
Var log_softmax(const Var& x, int64_t dim);  // x (...) -> y (...), log of softmax
// x (..., 2H, ...) -> a * sigmoid(b) (..., H, ...) where a, b are the first and second halves along dim.
Var glu(const Var& x, int64_t dim = -1);

// Tensor kernels of the softmax pair (reused by the losses). y is the forward's output.
Tensor softmax_forward(const Tensor& x, int64_t dim);
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim);
Tensor log_softmax_forward(const Tensor& x, int64_t dim);
Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim);

}  // namespace ssmkit::core
