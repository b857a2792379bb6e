// Forecaster model files (docs/conventions.md "Checkpoints"): one safetensors file with the model's
// state_dict under its PyTorch keys and the metadata format = ssmkit.checkpoint, format_version = 1,
// model, ssmkit_version, config (ForecastModel::config()), preprocessing (channels, target, features
// mode, seq_len / label_len / pred_len, frequency, time marks, split rule, date column and format, CSV
// options, scaler mean / std) and training (command, data_sha256, seed, epochs, metrics, ...).
// Loading checks all of it and rebuilds the model through make_forecast_model_from_config. Also SHA-256.
// Not here: training checkpoints (core/train/trainer.h, format ssmkit.train_checkpoint).
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ssmkit/timeseries/csv_reader.h"
#include "ssmkit/timeseries/forecast_model.h"
#include "ssmkit/timeseries/protocol.h"
#include "ssmkit/timeseries/scaler.h"

namespace ssmkit::timeseries {

inline constexpr const char* kForecasterFormat = "ssmkit.checkpoint";
inline constexpr const char* kForecasterFormatVersion = "1";
inline constexpr const char* kSsmkitVersion = "0.1.0";  // project(ssmkit VERSION ...) in CMakeLists.txt

// The preprocessing JSON of a model trained on `data` read with `csv`:
// {"channels", "target", "features", "target_offset", "n_targets", "seq_len", "label_len", "pred_len",
//  "frequency", "time_enc", "time_freq", "n_marks", "period", "split", "date_column", "date_format",
//  "csv": {"separator", "fill", "strict_time", "day_first"}, "scaler": {"mean", "std"}, "rows", "source"}.
nlohmann::json forecast_preprocessing(const ForecastData& data, const CsvOptions& csv);

// Writes the model file atomically. `preprocessing` as forecast_preprocessing; `training` any JSON object.
void save_forecaster(const std::string& path, const ForecastModel& model, const nlohmann::json& preprocessing,
                     const nlohmann::json& training);

// A model file, checked and rebuilt.
struct LoadedForecaster {
  std::string path;
  std::shared_ptr<ForecastModel> model;  // in eval mode
  std::string model_name;
  nlohmann::json config, preprocessing, training;
  ProtocolOptions protocol;           // seq_len, label_len, pred_len, features, target, time_enc, time_freq,
                                      // freq and split rule as trained
  CsvOptions csv;                     // date column, separator, fill, strict_time, day_first as trained
  StandardScaler scaler;              // the train rows' statistics, channel order
  std::vector<std::string> channels;  // (C)
};

// Throws Error "<path>: <problem>; expected ... (hint)" for a file that is not safetensors, a training
// checkpoint or another program's file (format), a newer format_version, missing or malformed metadata,
// a config the factory rejects, or tensors that do not match the rebuilt model.
LoadedForecaster load_forecaster(const std::string& path);

// `csv_path` read and prepared as the model was trained: with_splits true gives the protocol splits with
// the scaler fitted on this file's train rows (eval); false gives the whole file scaled with the model's
// own scaler (predict). Channels must match the model's. `csv` overrides how the file is read (its
// date_col, separator, fill, strict_time); `freq` ("" = the file's own) the sampling frequency.
ForecastData forecaster_data(const LoadedForecaster& f, const std::string& csv_path, bool with_splits,
                             const CsvOptions& csv, const std::string& freq = "");

}  // namespace ssmkit::timeseries
