// Resizing with PyTorch's semantics (torch.nn.functional.interpolate): mode 'nearest' (src = floor(dst * scale)
// computed in float, clamped to in-1; the legacy OpenCV rule, not 'nearest-exact'), 'linear' on (N,C,L) and
// 'bilinear' on (N,C,H,W) with align_corners true (src = dst * (in-1)/(out-1)) or false
// (src = (dst + 0.5) * scale - 0.5, negative sources clamped to 0). scale is 1/scale_factor when a scale factor
// was given, else in/out, exactly as PyTorch passes it to its kernels. Forward and backward.
// Shapes: N batch, C channels, H x W image (1-D: L); kernels resize the last two axes of any (..., H, W).
// Not here: bicubic, trilinear, area, nearest-exact, antialias, recompute_scale_factor.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// ------------------------------------------------------------------------------------------------------
// Tensor kernels on (..., H, W), F32 or F64, any strides. `scale_h`/`scale_w` are the user's scale factors
// (output/input) or <= 0 for none, like PyTorch's scales_h/scales_w. Backward accumulates into dx (+=)
// when defined, else allocates it. Threads: one (…) plane per iteration (deterministic scatters).

// x (...,H,W) -> y (...,out_h,out_w)
void upsample_nearest2d_forward(Tensor& y, const Tensor& x, int64_t out_h, int64_t out_w, double scale_h = 0,
                                double scale_w = 0);
// dy (...,out_h,out_w) -> dx (x_shape)
void upsample_nearest2d_backward(Tensor& dx, const Tensor& dy, const Shape& x_shape, double scale_h = 0,
                                 double scale_w = 0);
// x (...,H,W) -> y (...,out_h,out_w)
void upsample_bilinear2d_forward(Tensor& y, const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners,
                                 double scale_h = 0, double scale_w = 0);
// dy (...,out_h,out_w) -> dx (x_shape)
void upsample_bilinear2d_backward(Tensor& dx, const Tensor& dy, const Shape& x_shape, bool align_corners,
                                  double scale_h = 0, double scale_w = 0);

// ------------------------------------------------------------------------------------------------------
// Autograd ops.

// x (N,C,L) -> (N,C,out_l)
Var upsample_nearest1d(const Var& x, int64_t out_l, double scale = 0);
Var upsample_linear1d(const Var& x, int64_t out_l, bool align_corners, double scale = 0);
// x (N,C,H,W) -> (N,C,out_h,out_w); size and scales as {h, w}
Var upsample_nearest2d(const Var& x, std::array<int64_t, 2> size, std::array<double, 2> scales = {0, 0});
Var upsample_bilinear2d(const Var& x, std::array<int64_t, 2> size, bool align_corners,
                        std::array<double, 2> scales = {0, 0});

enum class InterpMode { Nearest, Linear, Bilinear };

// F.interpolate's keyword arguments. Give exactly one of `size` and `scale_factor`, each with one value per
// spatial dim (or a single value for all of them). With scale_factor the output size is
// floor(in * scale_factor) and the scale factor itself drives the source index, as in PyTorch.
// align_corners must stay false for Nearest (PyTorch rejects it there).
struct InterpolateOptions {
  std::vector<int64_t> size = {};          // (defaults spelled out so designated initializers need no others)
  std::vector<double> scale_factor = {};
  InterpMode mode = InterpMode::Nearest;
  bool align_corners = false;
};

// x (N,C,L) for Nearest/Linear, (N,C,H,W) for Nearest/Bilinear -> same rank, resized. Example:
//   interpolate(x, {.scale_factor = {2.0}, .mode = InterpMode::Bilinear, .align_corners = true})
Var interpolate(const Var& x, const InterpolateOptions& options);

}  // namespace ssmkit::core
