// Pooling with PyTorch's semantics (torch.nn.functional): max_pool1d/2d (implicit -inf padding, dilation,
// ceil_mode; the first maximum in window order wins on ties, a NaN always wins), avg_pool1d/2d (zero padding,
// count_include_pad, ceil_mode windows clipped at in + pad), adaptive_avg_pool1d/2d and adaptive_max_pool1d/2d
// with PyTorch's bins [floor(i*in/out), ceil((i+1)*in/out)). Global average pooling is
// adaptive_avg_pool2d(x, {1, 1}). Shapes: N batch, C channels, H x W image (1-D: L); the kernels pool the
// last two axes of any (..., H, W) tensor, so 1-D pooling runs as 2-D with H = 1.
// Not here: divisor_override, fractional / LP pooling, 3-D pooling, max_unpool.
#pragma once

#include <array>
#include <cstdint>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// Window geometry of max_pool / avg_pool on the last two axes.
struct PoolGeometry {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;            // on both sides; at most kernel/2
  int64_t dilation_h = 1, dilation_w = 1;  // max pooling only
  bool ceil_mode = false;
  bool count_include_pad = true;           // avg pooling only
};

// PyTorch's pooling_output_shape: floor (or ceil) of (in + 2 pad - dilation (kernel-1) - 1) / stride, plus 1;
// in ceil mode the last window must start inside the input or the left padding.
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode);
// Adaptive bin i of `out` bins over `in` positions: [floor(i*in/out), ceil((i+1)*in/out)).
int64_t adaptive_pool_start(int64_t i, int64_t in, int64_t out);
int64_t adaptive_pool_end(int64_t i, int64_t in, int64_t out);

// ------------------------------------------------------------------------------------------------------
// Tensor kernels on (..., H, W), F32 or F64, any strides. Threads: one (…) plane per iteration, so every
// backward scatter stays inside one thread (deterministic). Gradients: dx is accumulated into (+=) when
// defined, else allocated.

// x (...,H,W) -> y (...,OH,OW); indices (...,OH,OW) I64 (when not null): the flat position h*W + w of each
// window's maximum within its plane, as PyTorch's return_indices.
void max_pool2d_forward(Tensor& y, Tensor* indices, const Tensor& x, const PoolGeometry& g);
// dy (...,OH,OW), indices (...,OH,OW) -> dx (x_shape): dx[indices] += dy. Also the backward of
// adaptive_max_pool2d.
void max_pool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& indices, const Shape& x_shape);

// x (...,H,W) -> y (...,OH,OW)
void avg_pool2d_forward(Tensor& y, const Tensor& x, const PoolGeometry& g);
// dy (...,OH,OW) -> dx (x_shape)
void avg_pool2d_backward(Tensor& dx, const Tensor& dy, const Shape& x_shape, const PoolGeometry& g);

// x (...,H,W) -> y (...,out_h,out_w)
void adaptive_avg_pool2d_forward(Tensor& y, const Tensor& x, int64_t out_h, int64_t out_w);
// dy (...,out_h,out_w) -> dx (x_shape)
void adaptive_avg_pool2d_backward(Tensor& dx, const Tensor& dy, const Shape& x_shape);
// x (...,H,W) -> y (...,out_h,out_w), indices as in max_pool2d_forward
void adaptive_max_pool2d_forward(Tensor& y, Tensor* indices, const Tensor& x, int64_t out_h, int64_t out_w);

// ------------------------------------------------------------------------------------------------------
// Autograd ops, PyTorch's functional signatures. A stride of 0 (PyTorch's None) means stride = kernel_size.
// 1-D ops take (N,C,L) or (C,L); 2-D ops take (N,C,H,W) or (C,H,W).

// x (N,C,L) -> (N,C,OL)
Var max_pool1d(const Var& x, int64_t kernel_size, int64_t stride = 0, int64_t padding = 0, int64_t dilation = 1,
               bool ceil_mode = false);
// x (N,C,H,W) -> (N,C,OH,OW); all pairs are {h, w}
Var max_pool2d(const Var& x, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride = {0, 0},
               std::array<int64_t, 2> padding = {0, 0}, std::array<int64_t, 2> dilation = {1, 1},
               bool ceil_mode = false);
// x (N,C,L) -> (N,C,OL)
Var avg_pool1d(const Var& x, int64_t kernel_size, int64_t stride = 0, int64_t padding = 0, bool ceil_mode = false,
               bool count_include_pad = true);
// x (N,C,H,W) -> (N,C,OH,OW)
Var avg_pool2d(const Var& x, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride = {0, 0},
               std::array<int64_t, 2> padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true);
// x (N,C,L) -> (N,C,output_size)
Var adaptive_avg_pool1d(const Var& x, int64_t output_size);
Var adaptive_max_pool1d(const Var& x, int64_t output_size);
// x (N,C,H,W) -> (N,C,out_h,out_w)
Var adaptive_avg_pool2d(const Var& x, std::array<int64_t, 2> output_size);
Var adaptive_max_pool2d(const Var& x, std::array<int64_t, 2> output_size);

}  // namespace ssmkit::core
