// The shared PVT-v2 scaffold (Stem, DownSamples, DWConv, PVT2FFN, FFN) built on core's layers and ops, and
// the `_init_weights` rule of Amshaker/GroupMamba and badripatro/Simba (identical in both repositories).
// Everything runs channels-last on the tokens (ops.h): the stem's and DownSamples' convolutions and batch
// norms (conv2d_tokens, batch_norm_relu_tokens) and PVT2FFN's DWConv, so no NCHW map is ever built.
#include "ssmkit/vision/blocks.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/train/init.h"

namespace ssmkit::vision {

using core::Conv2d;
using core::Conv2dOptions;
using core::LayerNorm;
using core::Linear;

Var layer_norm(const core::LayerNorm& m, const Var& x) { return layer_norm_lastdim(x, m.weight, m.bias, m.eps); }

int64_t hidden_size(int64_t dim, double ratio) {
  return static_cast<int64_t>(static_cast<double>(dim) * ratio);
}

// ---------------------------------------------------------------------------------------------------------
// Stem and DownSamples

static std::shared_ptr<Conv2d> make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, bool bias,
                                         int64_t groups, core::Rng& rng) {
  Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = {pad, pad};
  o.bias = bias;
  o.groups = groups;
  return std::make_shared<Conv2d>(in, out, std::array<int64_t, 2>{k, k}, o, rng);
}

Stem::Stem(int64_t in_chans, int64_t hidden, int64_t out_chans, core::Rng& rng) {
  SSMKIT_CHECK(in_chans > 0 && hidden > 0 && out_chans > 0, "Stem: channels must be positive, got in ", in_chans,
               ", hidden ", hidden, ", out ", out_chans);
  conv = register_module("conv", std::make_shared<core::Module>());
  conv0 = conv->register_module("0", make_conv(in_chans, hidden, 7, 2, 3, false, 1, rng));
  bn1 = conv->register_module("1", std::make_shared<core::BatchNorm>(hidden));
  conv3 = conv->register_module("3", make_conv(hidden, hidden, 3, 1, 1, false, 1, rng));
  bn4 = conv->register_module("4", std::make_shared<core::BatchNorm>(hidden));
  conv6 = conv->register_module("6", make_conv(hidden, hidden, 3, 1, 1, false, 1, rng));
  bn7 = conv->register_module("7", std::make_shared<core::BatchNorm>(hidden));
  proj = register_module("proj", make_conv(hidden, out_chans, 3, 2, 1, true, 1, rng));
  norm = register_module("norm", std::make_shared<LayerNorm>(core::Shape{out_chans}, 1e-5));
}

namespace {

// A Conv2d module (square kernel, equal strides and paddings, no groups: what the scaffold builds) on tokens.
// H, W: the input grid in, the output grid out.
Var conv_tokens(const Conv2d& c, const Var& x, int64_t& H, int64_t& W) {
  int64_t OH = 0, OW = 0;
  Var y = conv2d_tokens(x, H, W, c.weight, c.bias, c.opt.stride[0], c.opt.padding[0], OH, OW);
  H = OH;
  W = OW;
  return y;
}

// relu(bn(x)) on tokens, counting the batch as nn.BatchNorm2d does in training.
Var bn_relu_tokens(const core::BatchNorm& bn, const Var& x) {
  if (bn.training()) bn.buffer("num_batches_tracked").data<int64_t>()[0] += 1;
  return batch_norm_relu_tokens(x, bn.buffer("running_mean"), bn.buffer("running_var"), bn.weight, bn.bias,
                                bn.training(), bn.momentum, bn.eps);
}

}  // namespace

Var Stem::forward(const Var& x, int64_t& H, int64_t& W) const {
  SSMKIT_CHECK(x.ndim() == 4 && x.size(1) == conv0->weight.size(1), "Stem: image must be (B,",
               conv0->weight.size(1), ",H,W), got ", core::shape_str(x.shape()));
  // channels-last throughout (conv2d_tokens, batch_norm_relu_tokens); a gray image already is its token map
  const int64_t B = x.size(0);
  H = x.size(2);
  W = x.size(3);
  Var h = x.size(1) == 1 ? core::reshape(x, {B, H * W, 1}) : map_to_tokens(x);
  h = bn_relu_tokens(*bn1, conv_tokens(*conv0, h, H, W));
  h = bn_relu_tokens(*bn4, conv_tokens(*conv3, h, H, W));
  h = bn_relu_tokens(*bn7, conv_tokens(*conv6, h, H, W));
  return layer_norm(*norm, conv_tokens(*proj, h, H, W));
}

DownSamples::DownSamples(int64_t in_chans, int64_t out_chans, core::Rng& rng) {
  proj = register_module("proj", make_conv(in_chans, out_chans, 3, 2, 1, true, 1, rng));
  norm = register_module("norm", std::make_shared<LayerNorm>(core::Shape{out_chans}, 1e-5));
}

Var DownSamples::forward(const Var& x, int64_t& H, int64_t& W) const {
  SSMKIT_CHECK(x.ndim() == 4, "DownSamples: x must be (B,C,H,W), got ", core::shape_str(x.shape()));
  H = x.size(2);
  W = x.size(3);
  return forward_tokens(map_to_tokens(x), H, W);
}

Var DownSamples::forward_tokens(const Var& x, int64_t& H, int64_t& W) const {
  return layer_norm(*norm, conv_tokens(*proj, x, H, W));
}

// ---------------------------------------------------------------------------------------------------------
// Channel mixers

DWConv::DWConv(int64_t dim, core::Rng& rng) { dwconv = register_module("dwconv", make_conv(dim, dim, 3, 1, 1, true, dim, rng)); }

Var DWConv::forward(const Var& x, int64_t H, int64_t W) const {
  return dwconv3x3_tokens(x, H, W, dwconv->weight, dwconv->bias);
}

PVT2FFN::PVT2FFN(int64_t in_features, int64_t hidden, core::Rng& rng) {
  fc1 = register_module("fc1", std::make_shared<Linear>(in_features, hidden, true, rng));
  dwconv = register_module("dwconv", std::make_shared<DWConv>(hidden, rng));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, in_features, true, rng));
}

Var PVT2FFN::forward(const Var& x, int64_t H, int64_t W) const {
  // DWConv and GELU in one channels-last op
  const auto& c = dwconv->dwconv;
  return fc2->forward(dwconv3x3_gelu_tokens(fc1->forward(x), H, W, c->weight, c->bias));
}

FFN::FFN(int64_t in_features, int64_t hidden, core::Rng& rng) {
  fc1 = register_module("fc1", std::make_shared<Linear>(in_features, hidden, true, rng));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, in_features, true, rng));
}

Var FFN::forward(const Var& x) const { return fc2->forward(core::gelu(fc1->forward(x))); }

// ---------------------------------------------------------------------------------------------------------
// Initialization

// timm's trunc_normal_(std=.02) truncates at +-2, i.e. +-100 standard deviations: the same law as a normal
// draw clamped there, which costs a fraction of the inverse-CDF draw (23 M weights in GroupMamba-T).
static void trunc_normal_002_(core::Tensor& w, core::Rng& rng) {
  if (w.dtype() != core::DType::F32 || !w.is_contiguous()) {
    core::trunc_normal_(w, rng, 0.0, 0.02, -2.0, 2.0);
    return;
  }
  float* p = w.data<float>();
  for (int64_t i = 0; i < w.numel(); ++i) p[i] = static_cast<float>(std::clamp(0.02 * rng.normal(), -2.0, 2.0));
}

static void init_one(core::Module& m, core::Rng& rng) {
  if (auto* lin = dynamic_cast<Linear*>(&m)) {
    trunc_normal_002_(lin->weight.value(), rng);
    if (lin->bias.defined()) core::zeros_(lin->bias.value());
  } else if (auto* ln = dynamic_cast<LayerNorm*>(&m)) {
    if (ln->weight.defined()) core::ones_(ln->weight.value());
    if (ln->bias.defined()) core::zeros_(ln->bias.value());
  } else if (auto* cv = dynamic_cast<Conv2d*>(&m)) {
    const core::Shape& s = cv->weight.shape();  // (O, I/G, kH, kW)
    const int64_t fan_out = s[2] * s[3] * s[0] / cv->opt.groups;
    core::normal_(cv->weight.value(), rng, 0.0, std::sqrt(2.0 / static_cast<double>(fan_out)));
    if (cv->bias.defined()) core::zeros_(cv->bias.value());
  }
}

void pvt_init_(core::Module& m, core::Rng& rng) {
  init_one(m, rng);
  for (auto& [name, child] : m.named_children()) pvt_init_(*child, rng);
}

}  // namespace ssmkit::vision
