// Linear layer (PyTorch nn.Linear): y = x W^T + b over the last axis, through core's gemm() (OpenBLAS; Eigen without it).
// Shapes: x (..., I), W (O, I), b (O) optional -> y (..., O). F32 or F64, contiguous operands.
#pragma once

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

// y (..., O) is allocated (or overwritten when it already has the right shape and dtype).
void linear_forward(Tensor& y, const Tensor& x, const Tensor& W, const Tensor& b);

// dy (..., O) -> dx (..., I) (+= when defined, else allocated), dW (O, I) += dy^T x, db (O) += sum dy when
// db is requested (pass a defined tensor to accumulate into, or an undefined one to allocate; pass
// nullptr to skip). dx is skipped when `dx` is nullptr.
void linear_backward(Tensor* dx, Tensor& dW, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& W);

}  // namespace ssmkit::core
