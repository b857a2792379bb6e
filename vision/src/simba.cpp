// SiMBA: configuration (JSON in the official constructor's argument names), MambaLayer, Block_mamba, the
// class-token block and the network with its token-label head, on core's Mamba module and the scaffold in
// blocks.cpp. Follows badripatro/Simba @44865e4 classification/simba.py with mamba_ssm v1.2.0's Mamba.
#include "ssmkit/vision/simba.h"

#include <nlohmann/json.hpp>

#include "pvt_config.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/pool.h"
#include "ssmkit/core/ops/shape.h"

namespace ssmkit::vision {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------------------
// Configuration

SimbaConfig SimbaConfig::s() { return SimbaConfig{}; }

SimbaConfig SimbaConfig::b() {
  SimbaConfig c;
  c.stem_hidden_dim = 64;
  c.embed_dims = {64, 128, 320, 512};
  c.depths = {3, 4, 12, 3};
  return c;
}

SimbaConfig SimbaConfig::l() {
  SimbaConfig c;
  c.stem_hidden_dim = 64;
  c.embed_dims = {96, 192, 384, 512};
  c.depths = {3, 6, 18, 3};
  return c;
}

SimbaConfig SimbaConfig::micro() {
  SimbaConfig c;
  detail::set_micro_scaffold(c);
  c.token_label = false;
  c.mixer = SimbaMixer::EinFFT;
  return c;
}

void SimbaConfig::validate() const {
  detail::validate_pvt_fields(*this, "SimbaConfig", [&](size_t i) {
    SSMKIT_CHECK(embed_dims[i] > 0 && (mixer != SimbaMixer::EinFFT || embed_dims[i] % core::kEinFFTBlocks == 0),
                 "SimbaConfig: embed_dims[", i, "] = ", embed_dims[i],
                 " must be positive (and a multiple of 4 with the EinFFT mixer)");
    SSMKIT_CHECK(mixer != SimbaMixer::MLP || hidden_size(embed_dims[i], mlp_ratios[i]) > 0, "SimbaConfig: mlp_ratios[",
                 i, "] = ", mlp_ratios[i], " gives no hidden units");
  });
}

std::string SimbaConfig::to_json() const {
  json j = detail::pvt_fields_to_json(*this, "simba");
  j["token_label"] = token_label;
  j["cm_type"] = mixer == SimbaMixer::EinFFT ? "einfft" : "mlp";
  return j.dump();
}

SimbaConfig SimbaConfig::from_json(const std::string& text) {
  return detail::pvt_config_from_json<SimbaConfig>(text, "SimbaConfig", "simba", [](const json& j, SimbaConfig& c) {
    c.token_label = j.value("token_label", c.token_label);
    if (j.contains("cm_type")) {
      std::string t = j["cm_type"].get<std::string>();
      for (auto& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      SSMKIT_CHECK(t == "einfft" || t == "mlp", "SimbaConfig: cm_type must be \"einfft\" or \"mlp\", got \"", t, "\"");
      c.mixer = t == "einfft" ? SimbaMixer::EinFFT : SimbaMixer::MLP;
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// Modules

MambaLayer::MambaLayer(int64_t dim, core::Rng& rng) {
  norm = register_module("norm", std::make_shared<core::LayerNorm>(core::Shape{dim}, 1e-5));
  core::MambaConfig mc;
  mc.d_model = dim;
  mc.d_state = 64;
  mc.d_conv = 4;
  mc.expand = 2;
  mamba = register_module("mamba", std::make_shared<core::Mamba>(mc, rng));
}

Var MambaLayer::forward(const Var& x) const { return mamba->forward(layer_norm(*norm, x)); }

SimbaBlock::SimbaBlock(int64_t d, double mlp_ratio, SimbaMixer mixer, double dp, double eps, core::Rng& r)
    : drop_path(dp), rng(&r == &core::global_rng() ? nullptr : &r) {
  norm2 = register_module("norm2", std::make_shared<core::LayerNorm>(core::Shape{d}, eps));
  attn = register_module("attn", std::make_shared<MambaLayer>(d, r));
  if (mixer == SimbaMixer::EinFFT)
    einfft = register_module("mlp", std::make_shared<core::EinFFT>(d, r));
  else
    pvt_ffn = register_module("mlp", std::make_shared<PVT2FFN>(d, hidden_size(d, mlp_ratio), r));
}

Var SimbaBlock::forward(const Var& x0, int64_t H, int64_t W) const {
  core::Rng& drng = rng ? *rng : core::global_rng();  // see the header
  Var x = core::add(x0, core::drop_path(attn->forward(x0), drop_path, training(), drng));
  Var h = layer_norm(*norm2, x);
  h = einfft ? einfft->forward(h) : pvt_ffn->forward(h, H, W);
  return core::add(x, core::drop_path(h, drop_path, training(), drng));
}

SimbaClassBlock::SimbaClassBlock(int64_t d, double mlp_ratio, SimbaMixer mixer, double eps, core::Rng& rng) {
  norm2 = register_module("norm2", std::make_shared<core::LayerNorm>(core::Shape{d}, eps));
  attn = register_module("attn", std::make_shared<MambaLayer>(d, rng));
  if (mixer == SimbaMixer::EinFFT)
    einfft = register_module("mlp", std::make_shared<core::EinFFT>(d, rng));
  else
    ffn = register_module("mlp", std::make_shared<FFN>(d, hidden_size(d, mlp_ratio), rng));
}

Var SimbaClassBlock::forward(const Var& cls) const {
  Var c = core::add(cls, attn->forward(cls));
  Var h = layer_norm(*norm2, c);
  return core::add(c, einfft ? einfft->forward(h) : ffn->forward(h));
}

// ---------------------------------------------------------------------------------------------------------
// Network

SiMBA::SiMBA(const SimbaConfig& c, core::Rng& rng, bool initialize) : cfg(c) {
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
      const double dp = total > 1 ? cfg.drop_path_rate * static_cast<double>(cur + j) / static_cast<double>(total - 1) : 0.0;
      blocks[i].push_back(list->register_module(
          std::to_string(j),
          std::make_shared<SimbaBlock>(dims[i], cfg.mlp_ratios[i], cfg.mixer, dp, cfg.norm_eps, rng)));
    }
    cur += cfg.depths[i];
    norms.push_back(register_module("norm" + s, std::make_shared<core::LayerNorm>(core::Shape{dims[i]}, cfg.norm_eps)));
  }
  auto post_network = register_module("post_network", std::make_shared<core::Module>());
  post = post_network->register_module(
      "0", std::make_shared<SimbaClassBlock>(dims[3], cfg.mlp_ratios[3], cfg.mixer, cfg.norm_eps, rng));
  head = register_module("head", std::make_shared<core::Linear>(dims[3], cfg.num_classes, true, rng));
  if (cfg.token_label)
    aux_head = register_module("aux_head", std::make_shared<core::Linear>(dims[3], cfg.num_classes, true, rng));
  if (initialize) pvt_init_(*this, rng);
  crop_pct = 0.96;
}

Var SiMBA::forward_features(const Var& image, VisionTrace* trace) const {
  SSMKIT_CHECK(image.ndim() == 4 && image.size(1) == cfg.in_chans, "SiMBA: image must be (B,", cfg.in_chans,
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
  Var f = layer_norm(*norms[3], cfg.token_label ? core::concat({cls, x}, 1) : core::reshape(cls, {B, C}));
  if (trace) trace->features = f;
  return f;
}

std::array<Var, 2> SiMBA::forward_dense(const Var& image, VisionTrace* trace) const {
  Var f = forward_features(image, trace);
  if (!cfg.token_label) return {head->forward(f), Var{}};
  const int64_t T = f.size(1);
  return {head->forward(core::select(f, 1, 0)), aux_head->forward(core::slice(f, 1, 1, T))};
}

std::string SiMBA::config_json() const {
  json j = json::parse(cfg.to_json());
  j["image_size"] = image_size;
  return j.dump();
}

Var SiMBA::forward(const Var& image, VisionTrace* trace) const {
  return forward_in_slices(image, trace, slice_pixels, !training(), [this](const Var& x, VisionTrace* t) {
    auto [cls, aux] = forward_dense(x, t);
    if (!aux.defined()) return cls;
    // max over tokens: (B,L,K) -> (B,K,L) -> adaptive max pool to 1
    const int64_t B = aux.size(0), K = aux.size(2);
    Var m = core::reshape(core::adaptive_max_pool1d(core::contiguous(core::transpose(aux, 1, 2)), 1), {B, K});
    return core::add(cls, core::mul_scalar(m, 0.5));
  });
}

}  // namespace ssmkit::vision
