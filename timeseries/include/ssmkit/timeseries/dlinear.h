// DLinear (Zeng et al., "Are Transformers Effective for Time Series Forecasting?", AAAI 2023) as in
// thuml/Time-Series-Library models/DLinear.py: series_decomp (moving average of odd kernel k, the series
// replicate-padded by (k-1)/2 rows at both ends, AvgPool stride 1) into trend and seasonal parts, each mapped
// L -> H by a Linear along time (shared by all channels, or one per channel with individual), summed.
// State-dict keys as TSLib: Linear_Seasonal.{weight,bias}, Linear_Trend.{weight,bias} (individual:
// Linear_Seasonal.{c}.weight ...). Weights start at 1/L (TSLib), biases at nn.Linear's default.
// Not here: the classification / imputation heads of TSLib. Shapes: B batch, L seq_len, H pred_len, C channels.
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/timeseries/forecast_model.h"

namespace ssmkit::timeseries {

struct DLinearConfig {
  int64_t moving_avg = 25;  // odd kernel of the moving average (TSLib --moving_avg)
  bool individual = false;  // one pair of Linears per channel

  nlohmann::json to_json() const;  // {"moving_avg", "individual"}
  // Reads the options of a config (dims keys and "model" are skipped); unknown keys or bad values throw.
  static DLinearConfig from_json(const nlohmann::json& config);
};

// The moving-average decomposition: x (B,L,C) -> trend (B,L,C) (mean of the k rows centred on each row,
// edge rows repeated), seasonal = x - trend. k odd, >= 1.
struct SeriesDecomp {
  core::Var seasonal, trend;
};
SeriesDecomp series_decomp(const core::Var& x, int64_t kernel_size);

class DLinear : public ForecastModel {
 public:
  using Config = DLinearConfig;
  DLinear(const ForecastDims& dims, const DLinearConfig& cfg = {}, core::Rng& rng = core::global_rng());

  // x (B,L,C) -> (B,H,C); x_mark ignored.
  core::Var forward(const core::Var& x, const core::Var& x_mark = {}) const override;
  std::string model_name() const override { return "dlinear"; }
  nlohmann::json config() const override;

  DLinearConfig cfg;
  std::shared_ptr<core::Linear> Linear_Seasonal, Linear_Trend;  // L -> H (individual = false)
  std::vector<std::shared_ptr<core::Linear>> seasonal_c, trend_c;  // per channel (individual = true)
};

}  // namespace ssmkit::timeseries
