// Private: conv2d_tokens' float path through oneDNN's convolution primitives (direct JIT kernels on
// channels-last maps, which is what the token layout (B, H*W, C) is), when the vision library is built with
// oneDNN. conv_tokens.cpp falls back to its im2col + gemm path where these return false (no oneDNN, or a
// primitive oneDNN does not offer). Measured here against that path (one thread, ms, forward | backward):
// 16x16 maps 16 -> 16 channels at batch 128, 2.19 -> 1.46 | 4.97 -> 2.41; 112x112 32 -> 32 at batch 1,
// 2.06 -> 1.38 | 4.33 -> 2.93.
// Threads: OpenMP's; inside a parallel region a call runs on its own thread. Weight gradients are reduced by
// oneDNN over its threads, so (unlike the fallback) their last bits depend on the thread count.
#pragma once

#include <cstdint>

namespace ssmkit::vision::detail {

// Shapes: B batch, H x W input grid, C in channels, O out channels, K kernel side, S stride, P zero padding,
// G groups (C and O multiples of it; G = C = O: depthwise).
struct ConvGeometry {
  int64_t B, H, W, C, O, K, S, P;
  int64_t G = 1;
};

// y (B, OH*OW, O) = conv(x (B, H*W, C), w (O,C/G,K,K)) + bias (O) (null: none); gelu: GELU (erf form) of that
// in oneDNN's epilogue (an eltwise post-op: the output is written once; inference only, no backward primitives
// for it). False: not done.
bool onednn_conv_forward(float* y, const float* x, const float* w, const float* bias, const ConvGeometry& g,
                         bool gelu = false);

// dx (B, H*W, C) written (null: skipped) and dw (O,C/G,K,K) added into (null: skipped), from dy (B, OH*OW, O).
// False: nothing done.
bool onednn_conv_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                          const ConvGeometry& g);

}  // namespace ssmkit::vision::detail
