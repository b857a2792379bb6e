// SiMBA-TS forecaster (reconstructed; simba_ts.h says from what): options and their JSON, the block (Mamba
// sequence mixer and EinFFT channel mixer, pre-norm residual) on core's Mamba and EinFFT Modules, and the model
// (instance norm, variate or patch tokens, head, de-normalization). Composed from core's autograd ops only.
// Not here: SiMBA's vision scaffold. Shapes: B batch, L seq_len, H pred_len, C channels, F marks, T tokens,
// P patch_len, P' patches, D d_model.
#include "ssmkit/timeseries/simba_ts.h"

#include <algorithm>

#include "forecast_common.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/shape.h"

namespace ssmkit::timeseries {

using json = nlohmann::json;

namespace {
class ModuleList : public core::Module {};  // nn.ModuleList: children 0, 1, ...
}  // namespace

json SimbaTSConfig::to_json() const {
  return json{{"d_model", d_model},     {"e_layers", e_layers},         {"d_state", d_state},
              {"d_conv", d_conv},       {"expand", expand},             {"tokens", tokens},
              {"patch_len", patch_len}, {"patch_stride", patch_stride}, {"bidirectional", bidirectional},
              {"use_marks", use_marks}, {"revin", revin},               {"dropout", dropout}};
}

SimbaTSConfig SimbaTSConfig::from_json(const json& config) {
  SimbaTSConfig c;
  detail::OptionReader r(config, "simba", detail::json_keys(c.to_json()));
  r.get("d_model", &c.d_model);
  r.get("e_layers", &c.e_layers);
  r.get("d_state", &c.d_state);
  r.get("d_conv", &c.d_conv);
  r.get("expand", &c.expand);
  r.get("tokens", &c.tokens);
  r.get("patch_len", &c.patch_len);
  r.get("patch_stride", &c.patch_stride);
  r.get("bidirectional", &c.bidirectional);
  r.get("use_marks", &c.use_marks);
  r.get("revin", &c.revin);
  r.get("dropout", &c.dropout);
  r.require(c.d_model > 0 && c.d_model % core::kEinFFTBlocks == 0, "d_model",
            "must be a positive multiple of 4 (EinFFT's blocks), got " + std::to_string(c.d_model));
  r.require(c.e_layers >= 0, "e_layers", "must be >= 0, got " + std::to_string(c.e_layers));
  r.require(c.d_state > 0, "d_state", "must be positive, got " + std::to_string(c.d_state));
  r.require(c.d_conv > 0, "d_conv", "must be positive, got " + std::to_string(c.d_conv));
  r.require(c.expand > 0, "expand", "must be positive, got " + std::to_string(c.expand));
  r.require(c.tokens == "variate" || c.tokens == "patch", "tokens",
            "must be \"variate\" or \"patch\", got \"" + c.tokens + "\"");
  r.require(c.patch_len > 0, "patch_len", "must be positive, got " + std::to_string(c.patch_len));
  r.require(c.patch_stride > 0, "patch_stride", "must be positive, got " + std::to_string(c.patch_stride));
  r.require(!(c.use_marks && c.tokens == "patch"), "use_marks",
            "needs tokens \"variate\" (time marks join as extra variate tokens); set use_marks false for patch tokens");
  r.require(c.dropout >= 0 && c.dropout < 1, "dropout", "must be in [0, 1), got " + std::to_string(c.dropout));
  return c;
}

// --- block -----------------------------------------------------------------------------------------------

SimbaTSLayer::SimbaTSLayer(const SimbaTSConfig& cfg, core::Rng& rng) : dropout(cfg.dropout) {
  core::MambaConfig mc;
  mc.d_model = cfg.d_model;
  mc.d_state = cfg.d_state;
  mc.d_conv = cfg.d_conv;
  mc.expand = cfg.expand;
  norm1 = register_module("norm1", std::make_shared<core::LayerNorm>(core::Shape{cfg.d_model}));
  mamba = register_module("mamba", std::make_shared<core::Mamba>(mc, rng));
  if (cfg.bidirectional) mamba_r = register_module("mamba_r", std::make_shared<core::Mamba>(mc, rng));
  norm2 = register_module("norm2", std::make_shared<core::LayerNorm>(core::Shape{cfg.d_model}));
  einfft = register_module("einfft", std::make_shared<core::EinFFT>(cfg.d_model, rng));
}

// x (B,T,D) -> (B,T,D)
core::Var SimbaTSLayer::forward(const core::Var& x) const {
  core::Var u = norm1->forward(x);
  core::Var m = mamba->forward(u);
  if (mamba_r) m = core::add(m, core::flip(mamba_r->forward(core::flip(u, {1})), {1}));
  core::Var h = core::add(x, core::dropout(m, dropout, training()));
  return core::add(h, core::dropout(einfft->forward(norm2->forward(h)), dropout, training()));
}

// --- the model -------------------------------------------------------------------------------------------

SimbaTS::SimbaTS(const ForecastDims& dims, const SimbaTSConfig& c, core::Rng& rng) : ForecastModel(dims), cfg(c) {
  detail::check_dims(dims, "simba");
  const int64_t L = dims.seq_len;
  int64_t head_in = cfg.d_model;
  if (cfg.tokens == "patch") {
    const int64_t P = cfg.patch_len, S = cfg.patch_stride;
    SSMKIT_CHECK(P <= L, "simba config: \"patch_len\" ", P, " exceeds seq_len ", L, "; expected patch_len <= seq_len");
    n_tokens_ = (L - P) / S + 2;  // PatchTST patches + one from the end padding
    patch_index_ = core::Tensor::empty({n_tokens_ * P}, core::DType::I64);
    int64_t* idx = patch_index_.data<int64_t>();
    for (int64_t t = 0; t < n_tokens_; ++t)
      for (int64_t p = 0; p < P; ++p) idx[t * P + p] = std::min(t * S + p, L - 1);
    head_in = n_tokens_ * cfg.d_model;
    embed = register_module("embed", std::make_shared<core::Linear>(P, cfg.d_model, true, rng));
  } else {
    n_tokens_ = dims.n_channels + (cfg.use_marks ? dims.n_marks : 0);
    embed = register_module("embed", std::make_shared<core::Linear>(L, cfg.d_model, true, rng));
  }
  auto list = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < cfg.e_layers; ++i)
    layers.push_back(list->register_module(std::to_string(i), std::make_shared<SimbaTSLayer>(cfg, rng)));
  norm = register_module("norm", std::make_shared<core::LayerNorm>(core::Shape{cfg.d_model}));
  head = register_module("head", std::make_shared<core::Linear>(head_in, dims.pred_len, true, rng));
}

json SimbaTS::config() const { return detail::config_json(model_name(), dims_, cfg.to_json()); }

// x (B,L,C), x_mark (B,L,F) -> (B,H,C)
core::Var SimbaTS::forward(const core::Var& x, const core::Var& x_mark) const {
  detail::check_forward_inputs(x, x_mark, dims_, cfg.use_marks, "simba");
  const int64_t B = x.size(0), C = dims_.n_channels, Dm = cfg.d_model;
  detail::InstanceNorm n;
  core::Var xin = x;
  if (cfg.revin) {
    n = detail::instance_norm(x);
    xin = n.xn;
  }
  core::Var xt = core::permute(xin, {0, 2, 1});  // (B,C,L)
  core::Var y;                                   // (B,C,H)
  if (cfg.tokens == "patch") {
    const int64_t Tp = n_tokens_, P = cfg.patch_len;
    core::Var patches = core::reshape(core::index_select(xt, 2, patch_index_), {B * C, Tp, P});  // (B·C,P',P)
    core::Var h = core::dropout(embed->forward(patches), cfg.dropout, training());              // (B·C,P',D)
    for (const auto& layer : layers) h = layer->forward(h);
    h = core::reshape(norm->forward(h), {B, C, Tp * Dm});
    y = head->forward(h);
  } else {
    core::Var tokens = xt;
    if (cfg.use_marks && dims_.n_marks > 0)
      tokens = core::concat({xt, core::permute(x_mark, {0, 2, 1})}, 1);  // (B,T,L): marks as extra tokens
    core::Var h = core::dropout(embed->forward(tokens), cfg.dropout, training());  // (B,T,D)
    for (const auto& layer : layers) h = layer->forward(h);
    y = head->forward(norm->forward(h));                               // (B,T,H)
    if (n_tokens_ > C) y = core::slice(y, 1, 0, C);                    // the mark tokens dropped
  }
  y = core::permute(y, {0, 2, 1});  // (B,H,C)
  return cfg.revin ? detail::instance_denorm(y, n) : y;
}

}  // namespace ssmkit::timeseries
