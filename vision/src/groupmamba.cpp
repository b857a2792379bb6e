// GroupMamba: configuration (JSON in the official constructor's argument names), the Modulated Group Mamba
// layer, Block_mamba, the class-token block and the network, built from core's SS2D and the scaffold in
// blocks.cpp. Follows Amshaker/GroupMamba @c1800ed classification/models/{groupmamba,ss2d,csms6s}.py.
// The official CrossScan_2/_4 backward reshapes with (H, W) where the forward used (W, H), which is only right
// for square maps; here every gradient is the exact adjoint of the forward (equal on square inputs).
#include "ssmkit/vision/groupmamba.h"

#include <nlohmann/json.hpp>

#include "pvt_config.h"
#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/vision/vsss.h"

namespace ssmkit::vision {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------------------
// Configuration

GroupMambaConfig GroupMambaConfig::tiny() { return GroupMambaConfig{}; }

GroupMambaConfig GroupMambaConfig::small() {
  GroupMambaConfig c;
  c.stem_hidden_dim = 64;
  c.embed_dims = {64, 128, 348, 512};
  c.depths = {3, 4, 16, 3};
  return c;
}

GroupMambaConfig GroupMambaConfig::base() {
  GroupMambaConfig c;
  c.stem_hidden_dim = 64;
  c.embed_dims = {96, 192, 424, 512};
  c.depths = {3, 6, 21, 3};
  return c;
}

GroupMambaConfig GroupMambaConfig::micro() {
  GroupMambaConfig c;
  detail::set_micro_scaffold(c);
  c.distillation = false;
  return c;
}

void GroupMambaConfig::validate() const {
  detail::validate_pvt_fields(*this, "GroupMambaConfig", [&](size_t i) {
    SSMKIT_CHECK(embed_dims[i] > 0 && embed_dims[i] % 4 == 0, "GroupMambaConfig: embed_dims[", i, "] = ",
                 embed_dims[i], " must be a positive multiple of 4 (four channel groups)");
    SSMKIT_CHECK(hidden_size(embed_dims[i], mlp_ratios[i]) > 0, "GroupMambaConfig: mlp_ratios[", i, "] = ",
                 mlp_ratios[i], " gives no hidden units");
  });
}

std::string GroupMambaConfig::to_json() const {
  json j = detail::pvt_fields_to_json(*this, "groupmamba");
  j["distillation"] = distillation;
  return j.dump();
}

GroupMambaConfig GroupMambaConfig::from_json(const std::string& text) {
  return detail::pvt_config_from_json<GroupMambaConfig>(
      text, "GroupMambaConfig", "groupmamba",
      [](const json& j, GroupMambaConfig& c) { c.distillation = j.value("distillation", c.distillation); });
}

// ---------------------------------------------------------------------------------------------------------
// Modules

GroupMambaLayer::GroupMambaLayer(int64_t d, core::Rng& rng) : dim(d) {
  SSMKIT_CHECK(d > 0 && d % 4 == 0, "GroupMambaLayer: dim ", d, " must be a positive multiple of 4");
  // own parameter first (that is where PyTorch's state_dict lists it), then the children in order
  skip_scale = register_parameter("skip_scale", core::Tensor::full({1}, 1.0));
  if (d >= 16) {
    fc1 = register_module("fc1", std::make_shared<core::Linear>(d, d / 16, true, rng));
    fc2 = register_module("fc2", std::make_shared<core::Linear>(d / 16, d, true, rng));
  } else {
    // C//16 == 0: PyTorch builds Linear(C, 0) and Linear(0, C); the affinity is then sigmoid(fc2.bias)
    auto f1 = register_module("fc1", std::make_shared<core::Module>());
    f1->register_parameter("weight", core::Tensor::zeros({0, d}));
    f1->register_parameter("bias", core::Tensor::zeros({0}));
    auto f2 = register_module("fc2", std::make_shared<core::Module>());
    f2->register_parameter("weight", core::Tensor::zeros({d, 0}));
    fc2_bias_only = f2->register_parameter("bias", core::Tensor::zeros({d}));
  }
  norm = register_module("norm", std::make_shared<core::LayerNorm>(core::Shape{d}, 1e-5));
  core::SS2DConfig sc;
  sc.d_model = d / 4;
  sc.d_state = 1;
  sc.ssm_ratio = 1.0;
  sc.d_conv = 3;
  sc.conv_bias = true;
  sc.n_directions = 1;
  sc.with_z = true;
  sc.norm_eps = 1e-5;
  for (int g = 1; g <= 4; ++g)
    mamba.push_back(register_module("mamba_g" + std::to_string(g), std::make_shared<core::SS2D>(sc, rng)));
  proj = register_module("proj", std::make_shared<core::Linear>(d, d, true, rng));
  for (const auto& m : mamba)
    for (const auto& kv : m->named_parameters()) group_params.push_back(kv.second);  // VsssParams order
}

Var GroupMambaLayer::forward(const Var& x, int64_t H, int64_t W) const {
  SSMKIT_CHECK(x.ndim() == 3 && x.size(1) == H * W && x.size(2) == dim, "GroupMambaLayer: x must be (B,", H * W, ",",
               dim, ") for a ", H, "x", W, " grid, got ", core::shape_str(x.shape()));
  Var xn = layer_norm(*norm, x);
  // channel affinity: sigmoid(fc2(relu(fc1(mean over tokens))))  (B,C)
  Var a = fc1 ? core::sigmoid(fc2->forward(core::relu(fc1->forward(core::mean(xn, {1})))))
              : core::sigmoid(core::expand(core::unsqueeze(fc2_bias_only, 0), {x.size(0), dim}));
  Var y = group_vsss(xn, H, W, group_params);  // the four VSSS groups, concatenated (B,L,C)
  y = modulate(y, skip_scale, xn, a);   // y * skip_scale * xn * a
  return proj->forward(layer_norm(*norm, y));
}

GroupMambaBlock::GroupMambaBlock(int64_t d, double mlp_ratio, double dp, double eps, core::Rng& r)
    : drop_path(dp), rng(&r == &core::global_rng() ? nullptr : &r) {
  norm2 = register_module("norm2", std::make_shared<core::LayerNorm>(core::Shape{d}, eps));
  attn = register_module("attn", std::make_shared<GroupMambaLayer>(d, r));
  mlp = register_module("mlp", std::make_shared<PVT2FFN>(d, hidden_size(d, mlp_ratio), r));
}

Var GroupMambaBlock::forward(const Var& x0, int64_t H, int64_t W) const {
  core::Rng& drng = rng ? *rng : core::global_rng();  // see the header
  Var x = core::add(x0, core::drop_path(attn->forward(x0, H, W), drop_path, training(), drng));
  return core::add(x, core::drop_path(mlp->forward(layer_norm(*norm2, x), H, W), drop_path, training(), drng));
}

GroupMambaClassBlock::GroupMambaClassBlock(int64_t d, double mlp_ratio, double eps, core::Rng& rng) {
  norm1 = register_module("norm1", std::make_shared<core::LayerNorm>(core::Shape{d}, eps));
  norm2 = register_module("norm2", std::make_shared<core::LayerNorm>(core::Shape{d}, eps));
  attn = register_module("attn", std::make_shared<GroupMambaLayer>(d, rng));
  mlp = register_module("mlp", std::make_shared<FFN>(d, hidden_size(d, mlp_ratio), rng));
}

Var GroupMambaClassBlock::forward(const Var& cls) const {
  Var c = core::add(cls, layer_norm(*norm1, attn->forward(cls, 1, 1)));
  return core::add(c, mlp->forward(layer_norm(*norm2, c)));
}

// ---------------------------------------------------------------------------------------------------------
// Network

GroupMamba::GroupMamba(const GroupMambaConfig& c, core::Rng& rng, bool initialize) : cfg(c) {
  cfg.validate();
  const auto& dims = cfg.embed_dims;
  int64_t total = 0;
  for (int64_t d : cfg.depths) total += d;
  int64_t cur = 0;
  blocks.resize(4);
  for (int i = 0; i < 4; ++i) {
    const std::string s = std::to_string(i + 1);
    if (i == 0)
      patch_embed1 = register_module("patch_embed1", std::make_shared<Stem>(cfg.in_chans, cfg.stem_hidden_dim, dims[0], rng));
    else
      downsamples.push_back(register_module("patch_embed" + s, std::make_shared<DownSamples>(dims[i - 1], dims[i], rng)));
    auto list = register_module("block" + s, std::make_shared<core::Module>());
    for (int64_t j = 0; j < cfg.depths[i]; ++j) {
      // torch.linspace(0, rate, total)[cur + j]
      const double dp = total > 1 ? cfg.drop_path_rate * static_cast<double>(cur + j) / static_cast<double>(total - 1) : 0.0;
      blocks[i].push_back(list->register_module(
          std::to_string(j), std::make_shared<GroupMambaBlock>(dims[i], cfg.mlp_ratios[i], dp, cfg.norm_eps, rng)));
    }
    cur += cfg.depths[i];
    norms.push_back(register_module("norm" + s, std::make_shared<core::LayerNorm>(core::Shape{dims[i]}, cfg.norm_eps)));
  }
  auto post_network = register_module("post_network", std::make_shared<core::Module>());
  post = post_network->register_module("0", std::make_shared<GroupMambaClassBlock>(dims[3], cfg.mlp_ratios[3],
                                                                                    cfg.norm_eps, rng));
  head = register_module("head", std::make_shared<core::Linear>(dims[3], cfg.num_classes, true, rng));
  if (cfg.distillation)
    dist_head = register_module("dist_head", std::make_shared<core::Linear>(dims[3], cfg.num_classes, true, rng));
  if (initialize) pvt_init_(*this, rng);
  crop_pct = 0.875;
}

Var GroupMamba::forward_features(const Var& image, VisionTrace* trace) const {
  SSMKIT_CHECK(image.ndim() == 4 && image.size(1) == cfg.in_chans, "GroupMamba: image must be (B,", cfg.in_chans,
               ",H,W), got ", core::shape_str(image.shape()));
  int64_t H = 0, W = 0;
  Var x;
  for (int i = 0; i < 4; ++i) {
    x = i == 0 ? patch_embed1->forward(image, H, W) : downsamples[static_cast<size_t>(i - 1)]->forward_tokens(x, H, W);
    if (i == 0 && trace) trace->stem = x;
    for (const auto& blk : blocks[static_cast<size_t>(i)]) x = blk->forward(x, H, W);
    if (i < 3) {
      x = layer_norm(*norms[static_cast<size_t>(i)], x);
      if (i == 0 && trace) trace->stage1 = x;  // the next DownSamples takes the tokens as they are
    } else if (trace) {
      trace->stage4_tokens = x;
    }
  }
  const int64_t B = x.size(0), C = x.size(2);
  Var cls = post->forward(core::mean(x, {1}, true));  // class token = mean of the stage-4 tokens
  Var f = layer_norm(*norms[3], core::reshape(cls, {B, C}));
  if (trace) trace->features = f;
  return f;
}

std::array<Var, 2> GroupMamba::forward_heads(const Var& image, VisionTrace* trace) const {
  Var f = forward_features(image, trace);
  return {head->forward(f), dist_head ? dist_head->forward(f) : Var{}};
}

std::string GroupMamba::config_json() const {
  json j = json::parse(cfg.to_json());
  j["image_size"] = image_size;
  return j.dump();
}

Var GroupMamba::forward(const Var& image, VisionTrace* trace) const {
  return forward_in_slices(image, trace, slice_pixels, !training(), [this](const Var& x, VisionTrace* t) {
    auto [h, d] = forward_heads(x, t);
    return d.defined() ? core::mul_scalar(core::add(h, d), 0.5) : h;
  });
}

}  // namespace ssmkit::vision
