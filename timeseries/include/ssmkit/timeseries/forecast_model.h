// The common face of ssmkit's forecasters and the factory that builds them by name:
//   make_forecast_model("chimera" | "smamba" | "simba" | "s4d" | "dlinear" | "seasonal-naive", dims, config)
// Every model maps a window of scaled inputs to the next pred_len steps of every channel, on the scaled
// scale (TSLib's convention: the loss and the metrics then take channels target_offset() .. of the output).
// Configs round-trip through JSON (a checkpoint's `config` metadata), so a checkpoint rebuilds its model
// without knowing the flags that made it. Not here: data (protocol.h), training and metrics
// (forecast_training.h). Shapes: B batch, L seq_len, H pred_len, C channels, F time-mark features.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"

namespace ssmkit::timeseries {

// What every forecaster is built for; part of every model's config ("seq_len", "pred_len", "enc_in", "n_marks").
struct ForecastDims {
  int64_t seq_len = 96;   // L
  int64_t pred_len = 96;  // H
  int64_t n_channels = 7; // C (TSLib enc_in)
  int64_t n_marks = 0;    // F time-mark features per row (0: the model gets no marks)
  int64_t period = 24;    // rows per season (seasonal-naive, Chimera's lagged seasonal head): 24 hourly, 96 15-min, ...
};

class ForecastModel : public core::Module {
 public:
  // x (B,L,C) scaled values; x_mark (B,L,F) time marks, undefined when the model does not use them
  // (uses_marks() false) or F = 0 -> (B,H,C) scaled forecasts. Dropout is active in training mode.
  virtual core::Var forward(const core::Var& x, const core::Var& x_mark) const = 0;

  virtual std::string model_name() const = 0;   // as the factory spells it
  virtual nlohmann::json config() const = 0;    // {"model": name, dims..., every constructor argument}
  virtual bool uses_marks() const { return false; }
  virtual bool trainable() const { return true; }  // false: nothing to fit (seasonal-naive)

  const ForecastDims& dims() const { return dims_; }

 protected:
  explicit ForecastModel(const ForecastDims& dims) : dims_(dims) {}
  ForecastDims dims_;
};

// Builds a fresh model. `config` holds model options by name (the keys config() writes; "model" and the dims
// keys are ignored here); missing keys take the model's defaults, unknown keys or bad values throw Error
// naming the key and listing the known ones.
std::shared_ptr<ForecastModel> make_forecast_model(const std::string& name, const ForecastDims& dims,
                                                   const nlohmann::json& config = nlohmann::json::object(),
                                                   core::Rng& rng = core::global_rng());
// Rebuilds a model from ForecastModel::config() (the dims come from the config too).
std::shared_ptr<ForecastModel> make_forecast_model_from_config(const nlohmann::json& config,
                                                               core::Rng& rng = core::global_rng());
// The names make_forecast_model knows.
std::vector<std::string> forecast_model_names();

}  // namespace ssmkit::timeseries
