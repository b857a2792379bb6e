// The PVT-v2-style scaffold that GroupMamba and SiMBA share (../shared/specs/vision.md §1): the convolutional
// Stem (patch_embed1), the strided DownSamples (patch_embed2..4), the PVT2FFN channel mixer (fc1, depthwise
// 3x3 on the token map, GELU, fc2), the plain FFN of the class-token block, the LayerNorm helper, and the
// `_init_weights` rule both repositories apply to every submodule. Keys and child order are the official ones.
// Not here: the token mixers (groupmamba.h, simba.h) and EinFFT (einfft.h).
// Shapes: B batch, C channels, H x W token grid, L = H*W tokens in row-major order (h*W + w).
#pragma once

#include <cstdint>
#include <memory>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"
#include "ssmkit/vision/ops.h"

namespace ssmkit::vision {

using core::Var;

// patch_embed1: Conv 7x7 s2 p3 -> BN -> ReLU -> (Conv 3x3 p1 -> BN -> ReLU) x 2 -> proj Conv 3x3 s2 p1 (bias)
// -> tokens -> LayerNorm (eps 1e-5), all computed channels-last (conv2d_tokens, batch_norm_relu_tokens).
// Keys conv.{0,3,6}.weight, conv.{1,4,7}.* (BatchNorm), proj.*, norm.*.
class Stem : public core::Module {
 public:
  Stem(int64_t in_chans, int64_t hidden_dim, int64_t out_chans, core::Rng& rng);
  // x (B,in_chans,H0,W0) -> tokens (B,H*W,out_chans); H, W receive the token grid (about H0/4, W0/4).
  Var forward(const Var& x, int64_t& H, int64_t& W) const;

  std::shared_ptr<core::Module> conv;  // container "conv" of the six layers below
  std::shared_ptr<core::Conv2d> conv0, conv3, conv6, proj;
  std::shared_ptr<core::BatchNorm> bn1, bn4, bn7;
  std::shared_ptr<core::LayerNorm> norm;
};

// patch_embed2..4: proj Conv 3x3 s2 p1 (bias) -> tokens -> LayerNorm (eps 1e-5).
class DownSamples : public core::Module {
 public:
  DownSamples(int64_t in_chans, int64_t out_chans, core::Rng& rng);
  // x (B,in,H0,W0) -> tokens (B,H*W,out), H = ceil(H0/2), W = ceil(W0/2).
  Var forward(const Var& x, int64_t& H, int64_t& W) const;
  // The same on the stage's tokens: x (B,H0*W0,in) with H, W = H0, W0 on entry -> (B,H*W,out), H, W updated.
  Var forward_tokens(const Var& x, int64_t& H, int64_t& W) const;

  std::shared_ptr<core::Conv2d> proj;
  std::shared_ptr<core::LayerNorm> norm;
};

// DWConv: the depthwise 3x3 (padding 1, bias) of PVT2FFN, applied to the token map. Key dwconv.*.
class DWConv : public core::Module {
 public:
  DWConv(int64_t dim, core::Rng& rng);
  Var forward(const Var& x, int64_t H, int64_t W) const;  // (B,H*W,C) -> (B,H*W,C)
  std::shared_ptr<core::Conv2d> dwconv;
};

// PVT2FFN: fc1 (C -> hidden) -> DWConv -> GELU (erf) -> fc2 (hidden -> C). Keys fc1, dwconv.dwconv, fc2.
class PVT2FFN : public core::Module {
 public:
  PVT2FFN(int64_t in_features, int64_t hidden_features, core::Rng& rng);
  Var forward(const Var& x, int64_t H, int64_t W) const;  // (B,H*W,C) -> (B,H*W,C)
  std::shared_ptr<core::Linear> fc1, fc2;
  std::shared_ptr<DWConv> dwconv;
};

// FFN (class-token block): fc1 -> GELU -> fc2.
class FFN : public core::Module {
 public:
  FFN(int64_t in_features, int64_t hidden_features, core::Rng& rng);
  Var forward(const Var& x) const;  // (..., C) -> (..., C)
  std::shared_ptr<core::Linear> fc1, fc2;
};

// The repositories' `_init_weights`, applied to m and every submodule: Linear weight trunc_normal(std 0.02,
// bounds +-2), bias 0; LayerNorm weight 1, bias 0; Conv2d weight N(0, sqrt(2 / fan_out)) with
// fan_out = kH*kW*out/groups, bias 0. Other modules and bare parameters are left alone.
void pvt_init_(core::Module& m, core::Rng& rng);

// m(x) for an nn.LayerNorm module through layer_norm_lastdim (ops.h).
Var layer_norm(const core::LayerNorm& m, const Var& x);

// int(dim * ratio), as the repositories size their hidden layers.
int64_t hidden_size(int64_t dim, double ratio);

}  // namespace ssmkit::vision
