// The forecaster factory: one table, name -> maker, one line per model (a model M registers with
// {"name", &make<M>} given `using Config = ...` with a strict static from_json and a constructor
// M(dims, config, rng)). Also the private helpers of forecast_common.h (dims JSON, option reading,
// instance normalization). Not here: the models themselves (dlinear.cpp, seasonal_naive.cpp, ...).
#include "ssmkit/timeseries/forecast_model.h"

#include <cmath>

#include "forecast_common.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/timeseries/chimera.h"
#include "ssmkit/timeseries/dlinear.h"
#include "ssmkit/timeseries/s4d_forecaster.h"
#include "ssmkit/timeseries/seasonal_naive.h"
#include "ssmkit/timeseries/simba_ts.h"
#include "ssmkit/timeseries/smamba.h"

namespace ssmkit::timeseries {

using json = nlohmann::json;

namespace {

using Maker = std::shared_ptr<ForecastModel> (*)(const ForecastDims&, const json&, core::Rng&);

template <class M>
std::shared_ptr<ForecastModel> make(const ForecastDims& dims, const json& config, core::Rng& rng) {
  return std::make_shared<M>(dims, M::Config::from_json(config), rng);
}

struct Entry {
  const char* name;
  Maker make;
};

// clang-format off
const Entry kModels[] = {
    {"dlinear", &make<DLinear>},
    {"seasonal-naive", &make<SeasonalNaive>},
    {"s4d", &make<S4DForecaster>},
    {"smamba", &make<SMamba>},
    {"chimera", &make<Chimera>},
    {"simba", &make<SimbaTS>},
};
// clang-format on

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::vector<std::string> forecast_model_names() {
  std::vector<std::string> names;
  for (const auto& e : kModels) names.emplace_back(e.name);
  return names;
}

std::shared_ptr<ForecastModel> make_forecast_model(const std::string& name, const ForecastDims& dims,
                                                   const json& config, core::Rng& rng) {
  for (const auto& e : kModels)
    if (name == e.name) {
      detail::check_dims(dims, name);
      return e.make(dims, config, rng);
    }
  throw core::Error("make_forecast_model: unknown model \"" + name + "\"; expected one of " +
                    join(forecast_model_names()));
}

std::shared_ptr<ForecastModel> make_forecast_model_from_config(const json& config, core::Rng& rng) {
  SSMKIT_CHECK(config.is_object() && config.contains("model") && config["model"].is_string(),
               "make_forecast_model_from_config: config has no \"model\" name; expected one of ",
               join(forecast_model_names()), " (was it written by ForecastModel::config()?)");
  return make_forecast_model(config["model"].get<std::string>(), detail::dims_from_json(config), config, rng);
}

// --- private helpers (forecast_common.h) -----------------------------------------------------------------

namespace detail {

const std::vector<std::string>& dims_keys() {
  static const std::vector<std::string> keys = {"model", "seq_len", "pred_len", "enc_in", "n_marks", "period"};
  return keys;
}

json dims_to_json(const std::string& model, const ForecastDims& d) {
  return json{{"model", model},        {"seq_len", d.seq_len}, {"pred_len", d.pred_len},
              {"enc_in", d.n_channels}, {"n_marks", d.n_marks}, {"period", d.period}};
}

json config_json(const std::string& model, const ForecastDims& d, const json& options) {
  json j = dims_to_json(model, d);
  j.update(options);
  return j;
}

ForecastDims dims_from_json(const json& c) {
  ForecastDims d;
  auto get = [&](const char* key, int64_t* out) {
    SSMKIT_CHECK(c.contains(key), "make_forecast_model_from_config: config lacks \"", key,
                 "\"; expected the keys ForecastModel::config() writes (", join(dims_keys()), ", options)");
    SSMKIT_CHECK(c[key].is_number_integer(), "make_forecast_model_from_config: \"", key,
                 "\" must be an integer, got ", c[key].dump());
    *out = c[key].get<int64_t>();
  };
  get("seq_len", &d.seq_len);
  get("pred_len", &d.pred_len);
  get("enc_in", &d.n_channels);
  get("n_marks", &d.n_marks);
  get("period", &d.period);
  return d;
}

void check_dims(const ForecastDims& d, const std::string& model) {
  SSMKIT_CHECK(d.seq_len > 0 && d.pred_len > 0 && d.n_channels > 0 && d.period > 0 && d.n_marks >= 0, model,
               ": bad dims seq_len ", d.seq_len, ", pred_len ", d.pred_len, ", enc_in ", d.n_channels, ", period ",
               d.period, ", n_marks ", d.n_marks, "; expected all positive (n_marks >= 0)");
}

OptionReader::OptionReader(const json& config, std::string model, std::vector<std::string> known)
    : config_(config), model_(std::move(model)), known_(std::move(known)) {
  SSMKIT_CHECK(config_.is_object() || config_.is_null(), model_, " config: expected a JSON object, got ",
               config_.dump());
  if (!config_.is_object()) return;
  for (const auto& item : config_.items()) {
    bool ok = false;
    for (const auto& k : dims_keys()) ok = ok || item.key() == k;
    for (const auto& k : known_) ok = ok || item.key() == k;
    SSMKIT_CHECK(ok, model_, " config: unknown key \"", item.key(), "\"; expected one of ", join(known_),
                 " (or the dims keys ", join(dims_keys()), ")");
  }
}

void OptionReader::get(const char* key, int64_t* out) const {
  if (!config_.is_object() || !config_.contains(key)) return;
  const json& v = config_[key];
  SSMKIT_CHECK(v.is_number_integer(), model_, " config: \"", key, "\" must be an integer, got ", v.dump());
  *out = v.get<int64_t>();
}

void OptionReader::get(const char* key, double* out) const {
  if (!config_.is_object() || !config_.contains(key)) return;
  const json& v = config_[key];
  SSMKIT_CHECK(v.is_number(), model_, " config: \"", key, "\" must be a number, got ", v.dump());
  *out = v.get<double>();
}

void OptionReader::get(const char* key, bool* out) const {
  if (!config_.is_object() || !config_.contains(key)) return;
  const json& v = config_[key];
  SSMKIT_CHECK(v.is_boolean(), model_, " config: \"", key, "\" must be true or false, got ", v.dump());
  *out = v.get<bool>();
}

void OptionReader::get(const char* key, std::string* out) const {
  if (!config_.is_object() || !config_.contains(key)) return;
  const json& v = config_[key];
  SSMKIT_CHECK(v.is_string(), model_, " config: \"", key, "\" must be a string, got ", v.dump());
  *out = v.get<std::string>();
}

void OptionReader::require(bool ok, const char* key, const std::string& what) const {
  SSMKIT_CHECK(ok, model_, " config: \"", key, "\" ", what);
}

InstanceNorm instance_norm(const core::Var& x, double eps) {
  InstanceNorm n;
  n.mean = core::mean(x, {1}, true).detach();                                            // (B,1,C)
  core::Var xc = core::sub(x, n.mean);                                                   // (B,L,C)
  n.stdev = core::sqrt(core::add_scalar(core::mean(core::square(xc), {1}, true), eps));  // (B,1,C)
  n.xn = core::div(xc, n.stdev);
  return n;
}

core::Var instance_denorm(const core::Var& y, const InstanceNorm& n) {
  return core::add(core::mul(y, n.stdev), n.mean);
}

void check_forward_inputs(const core::Var& x, const core::Var& x_mark, const ForecastDims& d, bool uses_marks,
                          const std::string& model) {
  SSMKIT_CHECK(x.defined() && x.ndim() == 3 && x.size(1) == d.seq_len && x.size(2) == d.n_channels, model,
               ": x must be (B,", d.seq_len, ",", d.n_channels, ") (batch, seq_len, enc_in), got ",
               x.defined() ? core::shape_str(x.shape()) : std::string("undefined"));
  SSMKIT_CHECK(x.dtype() == core::DType::F32 || x.dtype() == core::DType::F64, model,
               ": x must be F32 or F64, got ", core::dtype_name(x.dtype()));
  if (!uses_marks || d.n_marks == 0) return;
  SSMKIT_CHECK(x_mark.defined() && x_mark.ndim() == 3 && x_mark.size(0) == x.size(0) &&
                   x_mark.size(1) == d.seq_len && x_mark.size(2) == d.n_marks,
               model, ": x_mark must be (", x.size(0), ",", d.seq_len, ",", d.n_marks,
               ") (batch, seq_len, n_marks), got ",
               x_mark.defined() ? core::shape_str(x_mark.shape()) : std::string("undefined"),
               " (build the model with n_marks 0 to run without time marks)");
  SSMKIT_CHECK(x_mark.dtype() == x.dtype(), model, ": x_mark dtype ", core::dtype_name(x_mark.dtype()),
               " differs from x's ", core::dtype_name(x.dtype()));
}

}  // namespace detail

}  // namespace ssmkit::timeseries
