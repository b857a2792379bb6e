// S-Mamba (wzhwzhwzh0921/S-D-Mamba model/S_Mamba.py, layers/Mamba_EncDec.py EncoderLayer/Encoder,
// layers/Embed.py DataEmbedding_inverted) on core's Modules: core::Mamba (official init and keys, fused
// forward/backward) along the token axis, LayerNorm, the 1x1 Conv1d FFN computed as a Linear on (B,T,D) (same
// numbers, no transposes), dropout from core::global_rng(). Not here: the official class_strategy variants
// other than "projection", output_attention. Shapes: B batch, L seq_len, H pred_len, C channels, F marks,
// T = C + F tokens, D d_model.
#include "ssmkit/timeseries/smamba.h"

#include "forecast_common.h"
#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/matmul.h"
#include "ssmkit/core/ops/shape.h"

namespace ssmkit::timeseries {

using json = nlohmann::json;

namespace {
class ModuleList : public core::Module {};  // nn.ModuleList: children 0, 1, ...
}  // namespace

json SMambaConfig::to_json() const {
  return json{{"d_model", d_model}, {"d_ff", d_ff},       {"e_layers", e_layers},  {"d_state", d_state},
              {"dropout", dropout}, {"activation", activation}, {"use_norm", use_norm}};
}

SMambaConfig SMambaConfig::from_json(const json& config) {
  SMambaConfig c;
  detail::OptionReader r(config, "smamba",
                         {"d_model", "d_ff", "e_layers", "d_state", "dropout", "activation", "use_norm"});
  r.get("d_model", &c.d_model);
  r.get("d_ff", &c.d_ff);
  r.get("e_layers", &c.e_layers);
  r.get("d_state", &c.d_state);
  r.get("dropout", &c.dropout);
  r.get("activation", &c.activation);
  r.get("use_norm", &c.use_norm);
  r.require(c.d_model > 0, "d_model", "must be positive, got " + std::to_string(c.d_model));
  r.require(c.d_ff > 0, "d_ff", "must be positive, got " + std::to_string(c.d_ff));
  r.require(c.e_layers >= 0, "e_layers", "must be >= 0, got " + std::to_string(c.e_layers));
  r.require(c.d_state > 0, "d_state", "must be positive, got " + std::to_string(c.d_state));
  r.require(c.dropout >= 0 && c.dropout < 1, "dropout", "must be in [0, 1), got " + std::to_string(c.dropout));
  r.require(c.activation == "gelu" || c.activation == "relu", "activation",
            "must be \"gelu\" or \"relu\", got \"" + c.activation + "\"");
  return c;
}

// --- EncoderLayer ----------------------------------------------------------------------------------------

SMambaEncoderLayer::SMambaEncoderLayer(const SMambaConfig& cfg, core::Rng& rng)
    : dropout(cfg.dropout), gelu(cfg.activation == "gelu") {
  core::MambaConfig mc;
  mc.d_model = cfg.d_model;
  mc.d_state = cfg.d_state;
  mc.d_conv = 2;
  mc.expand = 1;
  attention = register_module("attention", std::make_shared<core::Mamba>(mc, rng));
  attention_r = register_module("attention_r", std::make_shared<core::Mamba>(mc, rng));
  conv1 = register_module("conv1", std::make_shared<core::Conv1d>(cfg.d_model, cfg.d_ff, 1, core::Conv1dOptions{}, rng));
  conv2 = register_module("conv2", std::make_shared<core::Conv1d>(cfg.d_ff, cfg.d_model, 1, core::Conv1dOptions{}, rng));
  norm1 = register_module("norm1", std::make_shared<core::LayerNorm>(core::Shape{cfg.d_model}));
  norm2 = register_module("norm2", std::make_shared<core::LayerNorm>(core::Shape{cfg.d_model}));
}

// x (B,T,D) -> (B,T,D)
core::Var SMambaEncoderLayer::forward(const core::Var& x) const {
  core::Var m = core::add(attention->forward(x), core::flip(attention_r->forward(core::flip(x, {1})), {1}));
  core::Var h = norm1->forward(core::add(x, m));
  // conv1/conv2 with kernel 1 over (B,D,T) == Linear over D on (B,T,D)
  const core::Var& w1 = conv1->weight;
  const core::Var& w2 = conv2->weight;
  core::Var y = core::linear(h, core::reshape(w1, {w1.size(0), w1.size(1)}), conv1->bias);  // (B,T,d_ff)
  y = core::dropout(gelu ? core::gelu(y) : core::relu(y), dropout, training());
  y = core::linear(y, core::reshape(w2, {w2.size(0), w2.size(1)}), conv2->bias);  // (B,T,D)
  y = core::dropout(y, dropout, training());
  return norm2->forward(core::add(h, y));
}

// --- the model -------------------------------------------------------------------------------------------

SMamba::SMamba(const ForecastDims& dims, const SMambaConfig& c, core::Rng& rng) : ForecastModel(dims), cfg(c) {
  detail::check_dims(dims, "smamba");
  auto emb = register_module("enc_embedding", std::make_shared<core::Module>());
  value_embedding =
      emb->register_module("value_embedding", std::make_shared<core::Linear>(dims.seq_len, cfg.d_model, true, rng));
  auto enc = register_module("encoder", std::make_shared<core::Module>());
  auto list = enc->register_module("attn_layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < cfg.e_layers; ++i)
    layers.push_back(list->register_module(std::to_string(i), std::make_shared<SMambaEncoderLayer>(cfg, rng)));
  encoder_norm = enc->register_module("norm", std::make_shared<core::LayerNorm>(core::Shape{cfg.d_model}));
  projector = register_module("projector", std::make_shared<core::Linear>(cfg.d_model, dims.pred_len, true, rng));
}

json SMamba::config() const { return detail::config_json(model_name(), dims_, cfg.to_json()); }

// x (B,L,C), x_mark (B,L,F) -> (B,H,C)
core::Var SMamba::forward(const core::Var& x, const core::Var& x_mark) const {
  detail::check_forward_inputs(x, x_mark, dims_, true, "smamba");
  const int64_t C = dims_.n_channels;
  detail::InstanceNorm n;
  core::Var xin = x;
  if (cfg.use_norm) {
    n = detail::instance_norm(x);
    xin = n.xn;
  }
  core::Var tokens = core::permute(xin, {0, 2, 1});  // (B,C,L)
  if (dims_.n_marks > 0) tokens = core::concat({tokens, core::permute(x_mark, {0, 2, 1})}, 1);  // (B,T,L)
  core::Var h = core::dropout(value_embedding->forward(tokens), cfg.dropout, training());       // (B,T,D)
  for (const auto& layer : layers) h = layer->forward(h);
  h = encoder_norm->forward(h);
  core::Var y = core::permute(projector->forward(h), {0, 2, 1});  // (B,H,T)
  if (dims_.n_marks > 0) y = core::slice(y, 2, 0, C);             // (B,H,C): the covariate tokens dropped
  return cfg.use_norm ? detail::instance_denorm(y, n) : y;
}

core::NamedTensors smamba_drop_unused_keys(const core::NamedTensors& official) {
  core::NamedTensors out;
  const std::string prefix = "encoder.attn_layers.";
  for (const auto& [key, t] : official) {
    bool unused = false;
    if (key.compare(0, prefix.size(), prefix) == 0) {
      const size_t dot = key.find('.', prefix.size());  // after the layer index
      if (dot != std::string::npos) {
        const std::string rest = key.substr(dot + 1);
        for (const char* m : {"man.", "man2.", "a."}) unused = unused || rest.compare(0, std::string(m).size(), m) == 0;
      }
    }
    if (!unused) out.emplace_back(key, t);
  }
  return out;
}

}  // namespace ssmkit::timeseries
