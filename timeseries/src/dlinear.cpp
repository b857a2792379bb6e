// DLinear (thuml/Time-Series-Library models/DLinear.py, layers/Autoformer_EncDec.py series_decomp) on core's
// autograd ops: replicate pad -> avg_pool1d (stride 1) gives the trend, x - trend the seasonal part, and one
// Linear along time for each part. Not here: TSLib's non-forecasting tasks.
// Shapes: B batch, L seq_len, H pred_len, C channels, k moving-average kernel.
#include "ssmkit/timeseries/dlinear.h"

#include "forecast_common.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/pool.h"
#include "ssmkit/core/ops/shape.h"

namespace ssmkit::timeseries {

using json = nlohmann::json;

namespace {

// nn.ModuleList: children named 0, 1, ...
class ModuleList : public core::Module {};

}  // namespace

json DLinearConfig::to_json() const { return json{{"moving_avg", moving_avg}, {"individual", individual}}; }

DLinearConfig DLinearConfig::from_json(const json& config) {
  DLinearConfig c;
  detail::OptionReader r(config, "dlinear", {"moving_avg", "individual"});
  r.get("moving_avg", &c.moving_avg);
  r.get("individual", &c.individual);
  r.require(c.moving_avg >= 1 && c.moving_avg % 2 == 1, "moving_avg",
            "must be an odd kernel size >= 1, got " + std::to_string(c.moving_avg));
  return c;
}

// x (B,L,C) -> seasonal, trend (B,L,C)
SeriesDecomp series_decomp(const core::Var& x, int64_t k) {
  SSMKIT_CHECK(k >= 1 && k % 2 == 1, "series_decomp: kernel_size must be odd and >= 1, got ", k);
  SSMKIT_CHECK(x.ndim() == 3, "series_decomp: x must be (B,L,C), got ", core::shape_str(x.shape()));
  const int64_t p = (k - 1) / 2;
  core::Var xp = p > 0 ? core::pad(x, {0, 0, p, p}, "replicate") : x;                   // (B,L+2p,C)
  core::Var trend = core::avg_pool1d(core::transpose(xp, 1, 2), k, 1);                   // (B,C,L)
  SeriesDecomp d;
  d.trend = core::transpose(trend, 1, 2);                                                // (B,L,C)
  d.seasonal = core::sub(x, d.trend);
  return d;
}

DLinear::DLinear(const ForecastDims& dims, const DLinearConfig& c, core::Rng& rng) : ForecastModel(dims), cfg(c) {
  detail::check_dims(dims, "dlinear");
  const int64_t L = dims.seq_len, H = dims.pred_len;
  auto make = [&] {
    auto lin = std::make_shared<core::Linear>(L, H, true, rng);  // bias: nn.Linear's default init
    lin->weight.value().fill(1.0 / static_cast<double>(L));      // TSLib: (1/L) * ones
    return lin;
  };
  if (!cfg.individual) {
    Linear_Seasonal = register_module("Linear_Seasonal", make());
    Linear_Trend = register_module("Linear_Trend", make());
  } else {  // TSLib builds seasonal_c and trend_c interleaved per channel
    for (int64_t ch = 0; ch < dims.n_channels; ++ch) {
      seasonal_c.push_back(make());
      trend_c.push_back(make());
    }
    auto ls = register_module("Linear_Seasonal", std::make_shared<ModuleList>());
    auto lt = register_module("Linear_Trend", std::make_shared<ModuleList>());
    for (int64_t ch = 0; ch < dims.n_channels; ++ch) {
      ls->register_module(std::to_string(ch), seasonal_c[static_cast<size_t>(ch)]);
      lt->register_module(std::to_string(ch), trend_c[static_cast<size_t>(ch)]);
    }
  }
}

json DLinear::config() const { return detail::config_json(model_name(), dims_, cfg.to_json()); }

// x (B,L,C) -> (B,H,C)
core::Var DLinear::forward(const core::Var& x, const core::Var& x_mark) const {
  detail::check_forward_inputs(x, x_mark, dims_, false, "dlinear");
  SeriesDecomp d = series_decomp(x, cfg.moving_avg);
  core::Var s = core::transpose(d.seasonal, 1, 2), t = core::transpose(d.trend, 1, 2);  // (B,C,L)
  core::Var out;                                                                        // (B,C,H)
  if (!cfg.individual) {
    out = core::add(Linear_Seasonal->forward(s), Linear_Trend->forward(t));
  } else {
    std::vector<core::Var> per;
    for (int64_t ch = 0; ch < dims_.n_channels; ++ch) {
      const size_t i = static_cast<size_t>(ch);
      per.push_back(core::add(seasonal_c[i]->forward(core::select(s, 1, ch)),
                              trend_c[i]->forward(core::select(t, 1, ch))));  // (B,H)
    }
    out = core::stack(per, 1);
  }
  return core::transpose(out, 1, 2);  // (B,H,C)
}

}  // namespace ssmkit::timeseries
