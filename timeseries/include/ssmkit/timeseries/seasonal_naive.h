// The seasonal-naive forecaster: the last observed season repeated, y[h] = x[L - period + (h mod period)]
// for every channel (period from ForecastDims). No parameters, nothing to train (trainable() false); it is
// the floor any learned model must beat. Not here: the plain naive (last value) forecaster, which is
// seasonal-naive with period 1. Shapes: B batch, L seq_len, H pred_len, C channels.
#pragma once

#include <nlohmann/json.hpp>

#include "ssmkit/timeseries/forecast_model.h"

namespace ssmkit::timeseries {

struct SeasonalNaiveConfig {
  nlohmann::json to_json() const { return nlohmann::json::object(); }  // no options
  static SeasonalNaiveConfig from_json(const nlohmann::json& config);   // throws on any option key
};

class SeasonalNaive : public ForecastModel {
 public:
  using Config = SeasonalNaiveConfig;
  // period must be in [1, seq_len].
  SeasonalNaive(const ForecastDims& dims, const SeasonalNaiveConfig& cfg = {}, core::Rng& rng = core::global_rng());

  // x (B,L,C) -> (B,H,C); x_mark ignored. Differentiable in x (a gather), though nothing is trained.
  core::Var forward(const core::Var& x, const core::Var& x_mark = {}) const override;
  std::string model_name() const override { return "seasonal-naive"; }
  nlohmann::json config() const override;
  bool trainable() const override { return false; }
};

}  // namespace ssmkit::timeseries
