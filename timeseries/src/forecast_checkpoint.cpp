// Forecaster model files: the preprocessing JSON, save (safetensors + conventions.md metadata, atomic),
// load with every check (format, version, JSON, config through the factory, tensors vs the rebuilt model),
// the data a loaded model evaluates or predicts on (data_sha256 comes from core/io/sha256.h).
// Not here: training checkpoints (core Trainer), what the training JSON holds (forecast_training.cpp).
#include "ssmkit/timeseries/forecast_checkpoint.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "ssmkit/core/error.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/train/trainer.h"
#include "ssmkit/timeseries/forecast_training.h"

namespace ssmkit::timeseries {

using core::Error;
using nlohmann::json;

namespace {

const char* rule_key(SplitRule r) {
  switch (r) {
    case SplitRule::EttHour:
      return "ett_hour";
    case SplitRule::EttMinute:
      return "ett_minute";
    case SplitRule::Custom:
      return "custom";
    case SplitRule::Auto:
      break;
  }
  return "auto";
}

SplitRule rule_from_key(const std::string& k, const std::string& path) {
  if (k == "ett_hour") return SplitRule::EttHour;
  if (k == "ett_minute") return SplitRule::EttMinute;
  if (k == "custom") return SplitRule::Custom;
  if (k == "auto") return SplitRule::Auto;
  throw Error(path + ": preprocessing.split \"" + k + "\" is unknown; expected ett_hour, ett_minute or custom");
}

const char* fill_name(FillMethod m) {
  return m == FillMethod::Ffill ? "ffill" : m == FillMethod::Linear ? "linear" : "none";
}

std::string separator_name(char c) { return c == 0 ? "" : std::string(1, c); }

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Preprocessing and save

json forecast_preprocessing(const ForecastData& data, const CsvOptions& csv) {
  const ProtocolOptions& o = data.options();
  const CsvTable& t = data.table();
  json sc = {{"mean", data.scaler().mean}, {"std", data.scaler().scale}};
  return {{"channels", data.channels()},
          {"target", data.target()},
          {"features", features_name(o.features)},
          {"target_offset", data.target_offset()},
          {"n_targets", data.n_targets()},
          {"seq_len", o.seq_len},
          {"label_len", o.label_len},
          {"pred_len", o.pred_len},
          {"frequency", frequency_name(data.frequency())},
          {"time_enc", o.time_enc},
          {"time_freq", frequency_name(data.mark_frequency())},
          {"n_marks", data.n_marks()},
          {"period", season_period(data.frequency(), o.seq_len)},
          {"split", rule_key(data.rule())},
          {"scale", o.scale},
          {"date_column", t.date_name},
          {"date_format", t.date_format.describe()},
          {"csv",
           {{"separator", separator_name(t.separator)},
            {"fill", fill_name(csv.fill)},
            {"strict_time", csv.strict_time},
            {"day_first", csv.day_first}}},
          {"scaler", sc},
          {"rows", t.rows()},
          {"source", std::filesystem::path(t.path).filename().string()}};
}

void save_forecaster(const std::string& path, const ForecastModel& model, const json& preprocessing,
                     const json& training) {
  SSMKIT_CHECK(!path.empty(), "save_forecaster: empty output path");
  const core::Metadata meta = {{"format", kForecasterFormat},     {"format_version", kForecasterFormatVersion},
                               {"model", model.model_name()},     {"ssmkit_version", kSsmkitVersion},
                               {"config", model.config().dump()}, {"preprocessing", preprocessing.dump()},
                               {"training", training.dump()}};
  core::save_safetensors(path, model.state_dict(), meta);
}

// ---------------------------------------------------------------------------------------------------
// Load

namespace {

json parse_meta_json(const core::SafetensorsFile& f, const std::string& key) {
  SSMKIT_CHECK(f.has_meta(key), f.path, ": no \"", key, "\" metadata; expected an ssmkit forecaster file ",
               "(written by ssm-forecast train)");
  try {
    json j = json::parse(f.meta(key));
    SSMKIT_CHECK(j.is_object(), f.path, ": metadata \"", key, "\" is not a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(f.path + ": metadata \"" + key + "\" is not valid JSON (" + e.what() + ")");
  }
}

template <class T>
T field(const json& j, const char* key, const std::string& path, const char* what) {
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error(path + ": " + what + "." + key + " is missing or malformed (" + e.what() + ")");
  }
}

}  // namespace

LoadedForecaster load_forecaster(const std::string& path) {
  core::SafetensorsFile f = core::load_safetensors(path);  // errors name the file
  const std::string format = f.meta_or("format", "");
  if (format != kForecasterFormat) {
    std::string hint = format == core::kCheckpointFormat
                           ? "this is a training checkpoint: continue it with train --resume, or use the --out file"
                           : "was it written by another program?";
    throw Error(path + ": metadata \"format\" is \"" + format + "\"; expected \"" + kForecasterFormat + "\" (" + hint +
                ")");
  }
  const std::string version = f.meta_or("format_version", "");
  SSMKIT_CHECK(version == kForecasterFormatVersion, path, ": format_version \"", version,
               "\" is not supported; expected \"", kForecasterFormatVersion, "\" (written by a newer ssmkit?)");

  LoadedForecaster out;
  out.path = path;
  out.config = parse_meta_json(f, "config");
  out.preprocessing = parse_meta_json(f, "preprocessing");
  out.training = f.has_meta("training") ? parse_meta_json(f, "training") : json::object();
  out.model_name = f.meta_or("model", "");
  const json& p = out.preprocessing;

  // Preprocessing -> protocol, CSV options, scaler.
  ProtocolOptions& o = out.protocol;
  o.seq_len = field<int64_t>(p, "seq_len", path, "preprocessing");
  o.label_len = field<int64_t>(p, "label_len", path, "preprocessing");
  o.pred_len = field<int64_t>(p, "pred_len", path, "preprocessing");
  try {
    o.features = parse_features(field<std::string>(p, "features", path, "preprocessing"));
  } catch (const Error& e) {
    throw Error(path + ": preprocessing.features: " + e.what());
  }
  o.target = field<std::string>(p, "target", path, "preprocessing");
  o.time_enc = field<int>(p, "time_enc", path, "preprocessing");
  o.time_freq = field<std::string>(p, "time_freq", path, "preprocessing");
  o.freq = field<std::string>(p, "frequency", path, "preprocessing");
  o.rule = rule_from_key(field<std::string>(p, "split", path, "preprocessing"), path);
  if (p.contains("scale")) o.scale = field<bool>(p, "scale", path, "preprocessing");
  out.channels = field<std::vector<std::string>>(p, "channels", path, "preprocessing");
  out.csv.date_col = field<std::string>(p, "date_column", path, "preprocessing");
  if (p.contains("csv")) {
    const json& c = p.at("csv");
    const std::string sep = field<std::string>(c, "separator", path, "preprocessing.csv");
    out.csv.separator = sep.empty() ? 0 : sep[0];
    out.csv.fill = parse_fill_method(field<std::string>(c, "fill", path, "preprocessing.csv"));
    out.csv.strict_time = field<bool>(c, "strict_time", path, "preprocessing.csv");
    out.csv.day_first = field<bool>(c, "day_first", path, "preprocessing.csv");
  }
  const json sc = p.contains("scaler") ? p.at("scaler") : json();
  out.scaler.mean = field<std::vector<double>>(sc, "mean", path, "preprocessing.scaler");
  out.scaler.scale = field<std::vector<double>>(sc, "std", path, "preprocessing.scaler");
  const size_t C = out.channels.size();
  SSMKIT_CHECK(C > 0 && out.scaler.mean.size() == C && out.scaler.scale.size() == C, path, ": preprocessing has ", C,
               " channels but a scaler of ", out.scaler.mean.size(), " means and ", out.scaler.scale.size(),
               " stds; expected one of each per channel");
  for (size_t c = 0; c < C; ++c)
    SSMKIT_CHECK(out.scaler.scale[c] > 0, path, ": preprocessing.scaler.std[", c, "] = ", out.scaler.scale[c],
                 "; expected a positive number");

  // The model, rebuilt from its config (a private RNG: the weights are overwritten just below).
  core::Rng rng(0);
  try {
    out.model = make_forecast_model_from_config(out.config, rng);
  } catch (const Error& e) {
    throw Error(path + ": config: " + e.what());
  }
  SSMKIT_CHECK(out.model_name.empty() || out.model_name == out.model->model_name(), path, ": metadata model \"",
               out.model_name, "\" but the config builds \"", out.model->model_name(), "\"");
  out.model_name = out.model->model_name();
  const ForecastDims& d = out.model->dims();
  SSMKIT_CHECK(d.seq_len == o.seq_len && d.pred_len == o.pred_len && d.n_channels == static_cast<int64_t>(C), path,
               ": config has seq_len ", d.seq_len, ", pred_len ", d.pred_len, ", enc_in ", d.n_channels,
               " but preprocessing has ", o.seq_len, ", ", o.pred_len, ", ", C, " channels; expected them equal");
  out.model->load_state_dict(f.tensors, true, path);  // strict; errors list every bad key
  out.model->eval();
  return out;
}

ForecastData forecaster_data(const LoadedForecaster& f, const std::string& csv_path, bool with_splits,
                             const CsvOptions& csv, const std::string& freq) {
  CsvTable table = read_csv(csv_path, csv);
  std::string want;
  for (const auto& c : f.channels) want += (want.empty() ? "" : ",") + c;
  for (const auto& c : f.channels)
    SSMKIT_CHECK(std::find(table.columns.begin(), table.columns.end(), c) != table.columns.end(), csv_path,
                 ": no column '", c, "'; expected the columns the model ", f.path, " was trained on (", want, ")");
  ProtocolOptions o = f.protocol;
  o.splits = with_splits;
  o.freq = freq;
  // The split rule as trained (resolved from the training file's name or given), not this file's name.
  ForecastData data = with_splits ? ForecastData(std::move(table), o) : ForecastData(std::move(table), o, &f.scaler);
  std::string got;
  for (const auto& c : data.channels()) got += (got.empty() ? "" : ",") + c;
  SSMKIT_CHECK(want == got, csv_path, ": channels ", got, " (", features_name(o.features), " mode); expected ", want,
               " as the model ", f.path, " was trained on (same columns, same target)");
  return data;
}

}  // namespace ssmkit::timeseries
