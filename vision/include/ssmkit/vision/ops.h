// Channels-last kernels the vision models run on token tensors (B, L = H*W, C), each a forward/backward pair
// plus an autograd op, F32 or F64:
//   map_to_tokens / tokens_to_map   (B,C,H,W) <-> (B,H*W,C), cache-blocked transposes (each the other's backward)
//   dwconv3x3_tokens                depthwise 3x3 convolution, padding 1, with bias, on the token map: the
//                                   DWConv of PVT2FFN and the conv2d of the VSSS groups, without NCHW copies;
//                                   optionally followed by GELU (PVT2FFN's act) in the same op
//   gelu_forward / gelu_backward    the exact (erf) GELU on arrays: F32 through core's SIMD exp and the
//                                   Abramowitz-Stegun 7.1.26 erf (|error| < 1.5e-7), F64 with std::erf
//   modulate                        GroupMamba's y * skip_scale * xn * a[b,c] (spec §2.2 steps 5-6)
//   layer_norm_lastdim              nn.LayerNorm over the last dim with weight and bias, statistics in the
//                                   input's precision with 8 partial sums (core's layer_norm sums serially in
//                                   double: exact to the last bit, but several times slower on the token rows)
//   conv2d_tokens                   nn.Conv2d (square kernel, stride, zero padding, no groups) from tokens to
//                                   tokens: im2col rows of the whole batch + gemm() (conv_tokens.cpp), for the
//                                   stem and the DownSamples
//   batch_norm_relu_tokens          nn.BatchNorm2d then ReLU on tokens (statistics over every row, running
//                                   statistics updated in training as PyTorch does)
// Not here: groups and dilations of the general convolution (core/ops/conv.h has them on NCHW tensors).
// Shapes: B batch, C channels, H x W grid, L = H*W tokens in row-major order (h*W + w).
#pragma once

#include <cstdint>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::vision {

// ---------------------------------------------------------------------------------------------------------
// Tensor kernels (outputs allocated; gradients written, parameter gradients added into when defined)

// x (B,C,L) -> y (B,L,C); also the backward of the other direction.
void transpose_cl_forward(core::Tensor& y, const core::Tensor& x);

// x (B,H*W,C), w (C,1,3,3), b (C) or undefined -> y (B,H*W,C)
void dwconv3x3_tokens_forward(core::Tensor& y, const core::Tensor& x, int64_t H, int64_t W, const core::Tensor& w,
                              const core::Tensor& b);
// dy (B,H*W,C) -> dx (B,H*W,C) (written, when non-null), dw (C,1,3,3), db (C) (added into when defined, else
// allocated; nullptr skips).
void dwconv3x3_tokens_backward(core::Tensor* dx, core::Tensor* dw, core::Tensor* db, const core::Tensor& dy,
                               const core::Tensor& x, int64_t H, int64_t W, const core::Tensor& w);

// x (B,H*W,C), w (O,C,K,K), b (O) or undefined -> y (B,OH*OW,O), OH = (H + 2 pad - K) / stride + 1 (OW alike).
void conv2d_tokens_forward(core::Tensor& y, const core::Tensor& x, int64_t H, int64_t W, const core::Tensor& w,
                           const core::Tensor& b, int64_t stride, int64_t pad);
// dy (B,OH*OW,O) -> dx (B,H*W,C) (written, when non-null), dw (O,C,K,K), db (O) (added into when defined,
// else allocated; nullptr skips).
void conv2d_tokens_backward(core::Tensor* dx, core::Tensor* dw, core::Tensor* db, const core::Tensor& dy,
                            const core::Tensor& x, int64_t H, int64_t W, const core::Tensor& w, int64_t stride,
                            int64_t pad);

// y[i] = x[i] Phi(x[i]) over n values (y may equal x).
void gelu_forward(float* y, const float* x, int64_t n);
void gelu_forward(double* y, const double* x, int64_t n);
// dx[i] = dy[i] (Phi(x[i]) + x[i] phi(x[i])) over n values (dx may equal dy).
void gelu_backward(float* dx, const float* dy, const float* x, int64_t n);
void gelu_backward(double* dx, const double* dy, const double* x, int64_t n);

// ---------------------------------------------------------------------------------------------------------
// Autograd ops

core::Var map_to_tokens(const core::Var& x);                        // (B,C,H,W) -> (B,H*W,C)
core::Var tokens_to_map(const core::Var& x, int64_t H, int64_t W);  // (B,H*W,C) -> (B,C,H,W)
// x (B,H*W,C), w (C,1,3,3), b (C) or undefined -> (B,H*W,C)
core::Var dwconv3x3_tokens(const core::Var& x, int64_t H, int64_t W, const core::Var& w, const core::Var& b);
// GELU(dwconv3x3_tokens(x, H, W, w, b)), keeping only the pre-activation for the backward.
core::Var dwconv3x3_gelu_tokens(const core::Var& x, int64_t H, int64_t W, const core::Var& w, const core::Var& b);
// x (..., C), weight/bias (C) -> (x - mean) / sqrt(var + eps) * weight + bias (..., C)
core::Var layer_norm_lastdim(const core::Var& x, const core::Var& weight, const core::Var& bias, double eps);
// x (B,H*W,C), w (O,C,K,K), b (O) or undefined -> (B,OH*OW,O); OH, OW receive the output grid.
core::Var conv2d_tokens(const core::Var& x, int64_t H, int64_t W, const core::Var& w, const core::Var& b,
                        int64_t stride, int64_t pad, int64_t& OH, int64_t& OW);
// x (..., C), running_mean/running_var (C) (updated in place when training), weight/bias (C) ->
// relu(batch_norm(x)) (..., C), the statistics taken over all rows (batch statistics, biased variance, in
// training; the running ones in eval).
core::Var batch_norm_relu_tokens(const core::Var& x, core::Tensor running_mean, core::Tensor running_var,
                                 const core::Var& weight, const core::Var& bias, bool training, double momentum,
                                 double eps);
// y, xn (B,L,C), s (1), a (B,C) -> y * s * xn * a[b,c] (B,L,C)
core::Var modulate(const core::Var& y, const core::Var& s, const core::Var& xn, const core::Var& a);

}  // namespace ssmkit::vision
