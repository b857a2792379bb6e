// A channel-independent S4D forecaster: each channel's window is instance-normalized (mean and std over L,
// eps 1e-5, not learned; undone at the end), embedded per step by Linear(1 -> d_model), run through n_layers
// pre-norm residual blocks [LayerNorm, S4D along time (core/nn/s4d.h, state-spaces/s4 s4d.py), dropout,
// + residual] as in state-spaces/s4 example.py, then flattened (d_model-major: index d*L + t) and mapped to H
// by a Linear (L*d_model -> H). Keys: encoder.*, norms.{i}.*, s4_layers.{i}.* (official S4D keys), decoder.*.
// Not here: cross-channel mixing, time marks. Shapes: B batch, L seq_len, H pred_len, C channels, D d_model.
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/s4d.h"
#include "ssmkit/timeseries/forecast_model.h"

namespace ssmkit::timeseries {

struct S4DForecasterConfig {
  int64_t d_model = 64;   // D
  int64_t n_layers = 2;
  int64_t d_state = 64;   // N of each S4D layer (N/2 complex modes); even
  double dropout = 0.1;   // inside each S4D layer (DropoutNd after its GELU) and after it (element-wise)

  nlohmann::json to_json() const;  // {"d_model", "n_layers", "d_state", "dropout"}
  static S4DForecasterConfig from_json(const nlohmann::json& config);  // unknown keys / bad values throw
};

class S4DForecaster : public ForecastModel {
 public:
  using Config = S4DForecasterConfig;
  S4DForecaster(const ForecastDims& dims, const S4DForecasterConfig& cfg = {}, core::Rng& rng = core::global_rng());

  // x (B,L,C) -> (B,H,C); x_mark ignored. Dropout draws from core::global_rng() in training mode.
  core::Var forward(const core::Var& x, const core::Var& x_mark = {}) const override;
  std::string model_name() const override { return "s4d"; }
  nlohmann::json config() const override;

  S4DForecasterConfig cfg;
  std::shared_ptr<core::Linear> encoder;                  // 1 -> D
  std::vector<std::shared_ptr<core::LayerNorm>> norms;    // (D)
  std::vector<std::shared_ptr<core::S4D>> s4_layers;      // D channels along L
  std::shared_ptr<core::Linear> decoder;                  // D*L -> H (input index d*L + t)
};

}  // namespace ssmkit::timeseries
