// Private helpers shared by the forecasters (timeseries/src only): the dims part of every model config
// ("model", "seq_len", "pred_len", "enc_in", "n_marks", "period"), strict reading of a model's option keys
// (unknown keys and bad values throw Error naming the key and listing the known ones), and the non-learned
// instance normalization of Non-stationary Transformer / RevIN that S-Mamba and the S4D forecaster share.
// Not here: the factory table (forecast_model.cpp). Shapes: B batch, L seq_len, C channels.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/timeseries/forecast_model.h"

namespace ssmkit::timeseries::detail {

// The keys ForecastModel::config() writes for every model; option readers skip them.
const std::vector<std::string>& dims_keys();
// {"model": name, "seq_len", "pred_len", "enc_in", "n_marks", "period"}
nlohmann::json dims_to_json(const std::string& model, const ForecastDims& d);
// ForecastModel::config() of a model with options: dims_to_json(model, d) with `options` (the model's
// config struct as JSON) merged in.
nlohmann::json config_json(const std::string& model, const ForecastDims& d, const nlohmann::json& options);
// The dims of a config written by dims_to_json; a missing or non-integer key throws Error naming it.
ForecastDims dims_from_json(const nlohmann::json& config);
// Throws Error unless seq_len, pred_len, enc_in, period > 0 and n_marks >= 0 (names `model`).
void check_dims(const ForecastDims& d, const std::string& model);

// Reads a model's options: config must be an object; every key must be a dims key or one of `known`,
// otherwise Error("<model> config: unknown key \"k\"; expected one of a, b, ...").
// The keys of a JSON object (a config's defaults, say), in its order: the `known` list of OptionReader.
inline std::vector<std::string> json_keys(const nlohmann::json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

class OptionReader {
 public:
  OptionReader(const nlohmann::json& config, std::string model, std::vector<std::string> known);
  // Sets *out from config[key] when present; a value of the wrong type throws Error naming the key.
  void get(const char* key, int64_t* out) const;
  void get(const char* key, double* out) const;
  void get(const char* key, bool* out) const;
  void get(const char* key, std::string* out) const;
  // Throws Error "<model> config: <key> <what>" unless ok (bad values: "must be positive, got 0").
  void require(bool ok, const char* key, const std::string& what) const;

 private:
  const nlohmann::json& config_;
  std::string model_;
  std::vector<std::string> known_;
};

// Instance normalization over time, per (sample, channel): x (B,L,C) -> xn (B,L,C), mean (B,1,C) (detached,
// as the official code), stdev (B,1,C) = sqrt(biased var + eps) (differentiable).
struct InstanceNorm {
  core::Var xn, mean, stdev;
};
InstanceNorm instance_norm(const core::Var& x, double eps = 1e-5);
// y (B,H,C) -> y * stdev + mean.
core::Var instance_denorm(const core::Var& y, const InstanceNorm& n);

// Checks x (B,L,C) against the dims and, when the model uses marks and F > 0, x_mark (B,L,F).
void check_forward_inputs(const core::Var& x, const core::Var& x_mark, const ForecastDims& d, bool uses_marks,
                          const std::string& model);

}  // namespace ssmkit::timeseries::detail
