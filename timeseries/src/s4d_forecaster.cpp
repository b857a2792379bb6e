// The channel-independent S4D forecaster (s4d_forecaster.h) on core's Modules and autograd ops; the block
// layout follows state-spaces/s4 example.py (prenorm: z = norm(x); z = s4d(z); z = dropout(z); x = x + z).
// Not here: S4D itself (core/nn/s4d.h). Shapes: B batch, L seq_len, H pred_len, C channels, D d_model,
// S = B*C series; activations are kept (S,D,L).
#include "ssmkit/timeseries/s4d_forecaster.h"

#include "forecast_common.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"

namespace ssmkit::timeseries {

using json = nlohmann::json;

namespace {

class ModuleList : public core::Module {};  // nn.ModuleList: children 0, 1, ...

// nn.LayerNorm(D) applied at every (s, l) of a channel-major x (S,D,L): statistics over dim 1, biased variance.
core::Var channel_layer_norm(const core::Var& x, const core::LayerNorm& norm) {
  const int64_t D = x.size(1);
  core::Var xc = core::sub(x, core::mean(x, {1}, true));                                        // (S,D,L)
  core::Var rstd = core::pow_scalar(core::add_scalar(core::mean(core::square(xc), {1}, true), norm.eps), -0.5);
  return core::add(core::mul(core::mul(xc, rstd), core::reshape(norm.weight, {1, D, 1})),
                   core::reshape(norm.bias, {1, D, 1}));
}

}  // namespace

json S4DForecasterConfig::to_json() const {
  return json{{"d_model", d_model}, {"n_layers", n_layers}, {"d_state", d_state}, {"dropout", dropout}};
}

S4DForecasterConfig S4DForecasterConfig::from_json(const json& config) {
  S4DForecasterConfig c;
  detail::OptionReader r(config, "s4d", {"d_model", "n_layers", "d_state", "dropout"});
  r.get("d_model", &c.d_model);
  r.get("n_layers", &c.n_layers);
  r.get("d_state", &c.d_state);
  r.get("dropout", &c.dropout);
  r.require(c.d_model > 0, "d_model", "must be positive, got " + std::to_string(c.d_model));
  r.require(c.n_layers >= 0, "n_layers", "must be >= 0, got " + std::to_string(c.n_layers));
  r.require(c.d_state > 0 && c.d_state % 2 == 0, "d_state",
            "must be positive and even (N/2 complex modes), got " + std::to_string(c.d_state));
  r.require(c.dropout >= 0 && c.dropout < 1, "dropout", "must be in [0, 1), got " + std::to_string(c.dropout));
  return c;
}

S4DForecaster::S4DForecaster(const ForecastDims& dims, const S4DForecasterConfig& c, core::Rng& rng)
    : ForecastModel(dims), cfg(c) {
  detail::check_dims(dims, "s4d");
  const int64_t D = cfg.d_model;
  encoder = register_module("encoder", std::make_shared<core::Linear>(1, D, true, rng));
  auto norm_list = register_module("norms", std::make_shared<ModuleList>());
  auto s4_list = register_module("s4_layers", std::make_shared<ModuleList>());
  core::S4DOptions so;
  so.d_state = cfg.d_state;
  so.dropout = cfg.dropout;
  so.transposed = true;  // (S,D,L)
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    norms.push_back(norm_list->register_module(std::to_string(i), std::make_shared<core::LayerNorm>(core::Shape{D})));
    s4_layers.push_back(s4_list->register_module(std::to_string(i), std::make_shared<core::S4D>(D, so, rng)));
  }
  decoder = register_module("decoder", std::make_shared<core::Linear>(dims.seq_len * D, dims.pred_len, true, rng));
}

json S4DForecaster::config() const { return detail::config_json(model_name(), dims_, cfg.to_json()); }

// x (B,L,C) -> (B,H,C). Activations stay channel-major (S,D,L), S4D's own layout, so that nothing is
// transposed: the 1 -> D embedding is a broadcast product and the LayerNorm over D is written with
// reductions over dim 1 (the same numbers as nn.LayerNorm on (S,L,D)).
core::Var S4DForecaster::forward(const core::Var& x, const core::Var& x_mark) const {
  detail::check_forward_inputs(x, x_mark, dims_, false, "s4d");
  const int64_t B = x.size(0), L = dims_.seq_len, C = dims_.n_channels, H = dims_.pred_len, D = cfg.d_model;
  detail::InstanceNorm n = detail::instance_norm(x);
  core::Var u = core::reshape(core::contiguous(core::permute(n.xn, {0, 2, 1})), {B * C, 1, L});  // (S,1,L)
  core::Var h = core::add(core::mul(core::reshape(encoder->weight, {1, D, 1}), u),
                          core::reshape(encoder->bias, {1, D, 1}));  // (S,D,L) = Linear(1->D) per step
  for (size_t i = 0; i < s4_layers.size(); ++i) {
    core::Var z = channel_layer_norm(h, *norms[i]);
    z = s4_layers[i]->forward(z);
    z = core::dropout(z, cfg.dropout, training());
    h = core::add(h, z);
  }
  core::Var y = decoder->forward(core::reshape(h, {B * C, D * L}));  // (S,H)
  y = core::permute(core::reshape(y, {B, C, H}), {0, 2, 1});         // (B,H,C)
  return detail::instance_denorm(y, n);
}

}  // namespace ssmkit::timeseries
