// Convolutions with PyTorch's semantics (torch.nn.functional.conv1d / conv2d): zero padding, stride,
// dilation, groups, optional bias, and padding="same" (stride 1; an even kernel puts the extra zero on the
// right/bottom, as PyTorch does). Output size per axis: floor((in + pad_before + pad_after - d(k-1) - 1)/s) + 1.
// Shapes: N batch, C input channels, O output channels, G groups, H x W image (1-D: L), kH x kW kernel (1-D: K).
//   conv2d: x (N,C,H,W), w (O,C/G,kH,kW), b (O) or undefined -> y (N,O,OH,OW);  conv1d: x (N,C,L), w (O,C/G,K)
// Not here: transposed convolutions, 3-D convolutions, padding modes other than zeros.
#pragma once

#include <array>
#include <cstdint>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// Geometry of one convolution. The 2-D kernels use every field; the 1-D kernels use the *_w fields and the
// pad_left/pad_right pair for the length axis (the *_h fields must keep their defaults).
struct ConvGeometry {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // zeros; asymmetric only for "same"
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// PyTorch's padding strings.
enum class ConvPadding { Valid, Same };

// Output length along one axis: floor((in + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1.
int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before, int64_t pad_after,
                         int64_t dilation);

// ------------------------------------------------------------------------------------------------------
// Tensor kernels. F32 or F64 (all operands one dtype), any strides. Shapes are checked here.
// Depthwise convolutions (C/G == 1, the Mamba conv1d and VMamba 3x3 case) take a direct loop; the rest
// run im2col + one gemm() (OpenBLAS) per (image, group). Threads: forward over N*G (depthwise: N*O); backward
// over fixed batch chunks x groups with one dw partial per chunk, summed in chunk order (depthwise: dx over
// input planes, dw over output channels). Results are run-to-run deterministic and, except where a lone
// (image, group) GEMM is threaded by the BLAS itself, the same for every thread count.

// x (N,C,H,W), w (O,C/G,kH,kW), b (O) or undefined -> y (N,O,OH,OW) (allocated, or overwritten when it
// already has that shape and dtype and is contiguous).
void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeometry& g);
// dy (N,O,OH,OW) -> dx (N,C,H,W), dw (O,C/G,kH,kW), db (O). Pass nullptr to skip a gradient; a defined
// tensor is accumulated into (+=), an undefined one is allocated.
void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ConvGeometry& g);

// x (N,C,L), w (O,C/G,K), b (O) or undefined -> y (N,O,OL). Same conventions as conv2d_forward.
void conv1d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeometry& g);
// dy (N,O,OL) -> dx (N,C,L), dw (O,C/G,K), db (O). Same conventions as conv2d_backward.
void conv1d_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ConvGeometry& g);

// Reference: the direct 7-loop sums in double (end of core/src/ops/conv.cpp); outputs F64 when allocated.
// The oracle for the fast paths, 2-D only (view a 1-D problem as H = 1).
void conv2d_ref_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeometry& g);
void conv2d_ref_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                         const ConvGeometry& g);

// ------------------------------------------------------------------------------------------------------
// Autograd ops, PyTorch's functional signatures. `b` may be an undefined Var (no bias). Unbatched inputs
// ((C,L) for conv1d, (C,H,W) for conv2d) give unbatched outputs, as in PyTorch.

// x (N,C,L), w (O,C/G,K), b (O) -> (N,O,OL)
Var conv1d(const Var& x, const Var& w, const Var& b = Var{}, int64_t stride = 1, int64_t padding = 0,
           int64_t dilation = 1, int64_t groups = 1);
Var conv1d(const Var& x, const Var& w, const Var& b, int64_t stride, ConvPadding padding, int64_t dilation = 1,
           int64_t groups = 1);
// x (N,C,H,W), w (O,C/G,kH,kW), b (O) -> (N,O,OH,OW); stride, padding, dilation as {h, w}
Var conv2d(const Var& x, const Var& w, const Var& b = Var{}, std::array<int64_t, 2> stride = {1, 1},
           std::array<int64_t, 2> padding = {0, 0}, std::array<int64_t, 2> dilation = {1, 1}, int64_t groups = 1);
Var conv2d(const Var& x, const Var& w, const Var& b, std::array<int64_t, 2> stride, ConvPadding padding,
           std::array<int64_t, 2> dilation = {1, 1}, int64_t groups = 1);

}  // namespace ssmkit::core
