// Matrix products as autograd ops on core's gemm() (ops/gemm.h): matmul with torch.matmul semantics (batched, batch
// dims broadcast, 1-D operands promoted and the added dim removed) and linear (nn.functional.linear)
// on the kernels of ops/linear.h. Not here: integer matmul, out= variants, transposed-operand flags.
// Shapes: m, k, n the matrix sizes, (...) batch dims. F32 or F64, both operands of one dtype.
#pragma once

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// a (..., m, k), b (..., k, n) -> (broadcast(...), m, n). a (k) acts as (1, k), b (k) as (k, 1), and
// that dim is dropped from the result (so (k) x (k) -> 0-d dot product).
Tensor matmul_forward(const Tensor& a, const Tensor& b);
// dc (result shape) -> da (a's shape), db (b's shape), each allocated; pass nullptr to skip one.
// Gradients of broadcast batch dims are summed (in batch order: deterministic).
void matmul_backward(Tensor* da, Tensor* db, const Tensor& dc, const Tensor& a, const Tensor& b);
Var matmul(const Var& a, const Var& b);

// x (..., I), weight (O, I), bias (O) or undefined -> x weight^T + bias (..., O).
Var linear(const Var& x, const Var& weight, const Var& bias = Var{});

}  // namespace ssmkit::core
