// The seasonal-naive forecaster: out[b,h,c] = x[b, L - period + (h mod period), c], as one index_select along
// time (so it is also differentiable in x). No parameters. Shapes: B batch, L seq_len, H pred_len, C channels.
#include "ssmkit/timeseries/seasonal_naive.h"

#include "forecast_common.h"
#include "ssmkit/core/ops/shape.h"

namespace ssmkit::timeseries {

using json = nlohmann::json;

SeasonalNaiveConfig SeasonalNaiveConfig::from_json(const json& config) {
  detail::OptionReader r(config, "seasonal-naive", {});
  return {};
}

SeasonalNaive::SeasonalNaive(const ForecastDims& dims, const SeasonalNaiveConfig&, core::Rng&) : ForecastModel(dims) {
  detail::check_dims(dims, "seasonal-naive");
  SSMKIT_CHECK(dims.period <= dims.seq_len, "seasonal-naive: period ", dims.period, " exceeds seq_len ", dims.seq_len,
               "; expected period <= seq_len (the input must hold one full season)");
}

json SeasonalNaive::config() const { return detail::dims_to_json(model_name(), dims_); }

// x (B,L,C) -> (B,H,C)
core::Var SeasonalNaive::forward(const core::Var& x, const core::Var& x_mark) const {
  detail::check_forward_inputs(x, x_mark, dims_, false, "seasonal-naive");
  const int64_t L = dims_.seq_len, H = dims_.pred_len, P = dims_.period;
  core::Tensor idx = core::Tensor::empty({H}, core::DType::I64);
  int64_t* ip = idx.data<int64_t>();
  for (int64_t h = 0; h < H; ++h) ip[h] = L - P + h % P;
  return core::index_select(x, 1, idx);
}

}  // namespace ssmkit::timeseries
