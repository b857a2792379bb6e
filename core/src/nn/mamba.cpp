// Mamba modules: registration in the official order, the official initialization, and forward through
// the fused block op; the LM wrapper with its pre-norm residual stack and tied head.
#include "ssmkit/core/nn/mamba.h"

#include <cmath>
#include <string>

#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/matmul.h"
#include "ssmkit/core/ops/norm.h"
#include "ssmkit/core/ssm/scan_ops.h"
#include "ssmkit/core/train/init.h"

namespace ssmkit::core {

Mamba::Mamba(const MambaConfig& c, Rng& rng, const MambaInit& init) : cfg(c) {
  SSMKIT_CHECK(cfg.d_model > 0 && cfg.d_state > 0 && cfg.d_conv > 0 && cfg.expand > 0, "Mamba: invalid config (d_model ",
               cfg.d_model, ", d_state ", cfg.d_state, ", d_conv ", cfg.d_conv, ", expand ", cfg.expand, ")");
  const int64_t E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state;
  // Own parameters first (that is where PyTorch's state_dict puts them), then the children in
  // the official construction order.
  Tensor a_log = Tensor::empty({E, N}), d = Tensor::empty({E});
  mamba_A_log_init_(a_log);
  mamba_D_init_(d);
  A_log = register_parameter("A_log", a_log);
  D = register_parameter("D", d);
  in_proj = register_module("in_proj", std::make_shared<Linear>(cfg.d_model, 2 * E, cfg.bias, rng));
  Conv1dOptions co;
  co.groups = E;
  co.padding = cfg.d_conv - 1;
  co.bias = cfg.conv_bias;
  conv1d = register_module("conv1d", std::make_shared<Conv1d>(E, E, cfg.d_conv, co, rng));
  x_proj = register_module("x_proj", std::make_shared<Linear>(E, R + 2 * N, false, rng));
  dt_proj = register_module("dt_proj", std::make_shared<Linear>(R, E, true, rng));
  mamba_dt_init_(dt_proj->weight.value(), dt_proj->bias.value(), rng, init.dt_scale,
                 init.dt_init_random ? "random" : "constant", init.dt_min, init.dt_max, init.dt_init_floor);
  out_proj = register_module("out_proj", std::make_shared<Linear>(E, cfg.d_model, cfg.bias, rng));
}

std::vector<Var> Mamba::param_list() const {
  std::vector<Var> v = {A_log, D, in_proj->weight};
  if (cfg.bias) v.push_back(in_proj->bias);
  v.push_back(conv1d->weight);
  if (cfg.conv_bias) v.push_back(conv1d->bias);
  v.push_back(x_proj->weight);
  v.push_back(dt_proj->weight);
  v.push_back(dt_proj->bias);
  v.push_back(out_proj->weight);
  if (cfg.bias) v.push_back(out_proj->bias);
  return v;
}

MambaParams Mamba::bind() const {
  std::vector<Tensor> values;
  for (const Var& v : param_list()) values.push_back(v.value());
  return MambaParams::bind(cfg, values);
}

Var Mamba::forward(const Var& hidden) const { return mamba_block(hidden, param_list(), cfg); }

Tensor Mamba::step(const Tensor& x, MambaState& state) const {
  Tensor out;
  mamba_block_step(out, state, x, bind(), cfg);
  return out;
}

Tensor Mamba::forward_chunk(const Tensor& hidden, MambaState& state) const {
  Tensor out;
  mamba_block_forward(out, nullptr, hidden, bind(), cfg, &state);
  return out;
}

RMSNorm::RMSNorm(int64_t d, double e) : eps(e) { weight = register_parameter("weight", Tensor::full({d}, 1.0)); }

Var RMSNorm::forward(const Var& x) const { return rms_norm(x, weight, eps); }

MambaBlockLayer::MambaBlockLayer(const MambaConfig& cfg, double eps, Rng& rng) {
  // official Block registers mixer before norm
  mixer = register_module("mixer", std::make_shared<Mamba>(cfg, rng));
  norm = register_module("norm", std::make_shared<RMSNorm>(cfg.d_model, eps));
}

MambaBackbone::MambaBackbone(const MambaLMConfig& cfg, Rng& rng) {
  const int64_t m = cfg.pad_vocab_size_multiple;
  const int64_t vocab = m > 1 ? (cfg.vocab_size + m - 1) / m * m : cfg.vocab_size;
  embedding = register_module("embedding", std::make_shared<Embedding>(vocab, cfg.d_model, std::nullopt, rng));
  auto list = std::make_shared<Module>();
  register_module("layers", list);
  MambaConfig mc = cfg.mixer;
  mc.d_model = cfg.d_model;
  for (int64_t i = 0; i < cfg.n_layer; ++i)
    layers.push_back(list->register_module(std::to_string(i), std::make_shared<MambaBlockLayer>(mc, cfg.norm_eps, rng)));
  norm_f = register_module("norm_f", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps));
}

Var MambaBackbone::forward(const Tensor& tokens) const {
  Var hidden = embedding->forward(tokens);
  Var residual;
  for (const auto& layer : layers) {
    residual = residual.defined() ? add(hidden, residual) : hidden;
    hidden = layer->mixer->forward(layer->norm->forward(residual));
  }
  residual = residual.defined() ? add(hidden, residual) : hidden;
  return norm_f->forward(residual);
}

MambaLMHeadModel::MambaLMHeadModel(const MambaLMConfig& c, Rng& rng) : cfg(c) {
  backbone = register_module("backbone", std::make_shared<MambaBackbone>(cfg, rng));
  // mixer_seq_simple._init_weights: embedding ~ N(0, 0.02); out_proj.weight (kaiming-uniform, as the
  // Linear default) divided by sqrt(n_residuals_per_layer * n_layer) with one residual per layer;
  // Linear biases other than dt_proj's are zero (Mamba's linears have none by default).
  normal_(backbone->embedding->weight.value(), rng, 0.0, 0.02);
  for (const auto& layer : backbone->layers) {
    Tensor& w = layer->mixer->out_proj->weight.value();
    float* p = w.data<float>();
    const float scale = 1.0f / std::sqrt(static_cast<float>(cfg.n_layer));
    for (int64_t i = 0; i < w.numel(); ++i) p[i] *= scale;
    for (const auto& lin : {layer->mixer->in_proj, layer->mixer->out_proj})
      if (lin->bias.defined()) lin->bias.value().fill(0.0);
  }
  vocab_padded = backbone->embedding->weight.size(0);
  auto head = std::make_shared<Module>();
  register_module("lm_head", head);
  lm_head_weight = head->register_parameter("weight", backbone->embedding->weight);
}

Var MambaLMHeadModel::forward(const Tensor& tokens) const {
  return linear(backbone->forward(tokens), lm_head_weight);
}

}  // namespace ssmkit::core
