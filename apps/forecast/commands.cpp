// ssm-forecast train / eval / predict: flags -> ssmkit::timeseries calls -> results on stdout (text or
// --json), progress on stderr, errors as one "error: <file>:..." line with exit code 2 (3 for bugs).
// Not here: the math (forecast_training.cpp), the bench loop (bench.cpp), drawing (plot.cpp).
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "forecast_app.h"
#include "ssmkit/core/error.h"
#include "ssmkit/core/io/sha256.h"
#include "ssmkit/core/random.h"
#include "ssmkit/timeseries/forecast_checkpoint.h"
#include "ssmkit/timeseries/forecast_training.h"

namespace ssm_forecast {

using namespace ssmkit::timeseries;
using nlohmann::json;
using ssmkit::core::Error;

int report_exception() {
  try {
    throw;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const json::exception& e) {
    std::fprintf(stderr, "error: bad JSON: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: internal error: %s (please report it with the command)\n", e.what());
    return 3;
  } catch (...) {
    std::fprintf(stderr, "error: internal error (please report it with the command)\n");
    return 3;
  }
}

CsvOptions csv_options(const DataFlags& d) {
  CsvOptions o;
  o.date_col = d.date_col;
  o.fill = parse_fill_method(d.fill);
  o.strict_time = !d.loose_time;
  if (d.sep == "tab" || d.sep == "\\t" || d.sep == "\t")
    o.separator = '\t';
  else if (d.sep == "," || d.sep == ";")
    o.separator = d.sep[0];
  else
    SSMKIT_CHECK(d.sep.empty(), "--sep '", d.sep, "': unknown; expected ',', ';' or tab");
  return o;
}

ProtocolOptions protocol_options(const DataFlags& d) {
  ProtocolOptions o;
  o.seq_len = d.seq_len;
  o.label_len = std::min(d.label_len, d.seq_len);
  o.pred_len = d.pred_len;
  o.features = parse_features(d.features);
  o.target = d.target;
  o.freq = d.freq;
  o.time_freq = d.time_freq;
  return o;
}

json model_config(const std::string& model, const Recommendation& rec, const TrainFlags& t) {
  json cfg = rec.config.is_object() ? rec.config : json::object();
  if (!t.config.empty()) {
    std::string text = t.config;
    const bool looks_json = text.find('{') != std::string::npos;
    if (!looks_json) {
      std::ifstream in(t.config);
      SSMKIT_CHECK(in.good(), t.config, ": cannot read --config; expected JSON text or a readable .json file");
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    json extra;
    try {
      extra = json::parse(text);
    } catch (const json::exception& e) {
      throw Error((looks_json ? std::string("--config") : t.config) + ": not valid JSON (" + e.what() + ")");
    }
    SSMKIT_CHECK(extra.is_object(), "--config: expected a JSON object of model options, got ", extra.dump());
    for (auto it = extra.begin(); it != extra.end(); ++it) cfg[it.key()] = it.value();
  }
  if (t.d_model > 0) cfg["d_model"] = t.d_model;
  if (t.d_ff > 0) cfg["d_ff"] = t.d_ff;
  if (t.e_layers > 0) cfg[model == "s4d" ? "n_layers" : "e_layers"] = t.e_layers;  // the S4D forecaster's name
  if (t.d_state > 0) cfg["d_state"] = t.d_state;
  if (t.dropout >= 0) cfg["dropout"] = t.dropout;
  return cfg;
}

namespace {

std::string stem_of(const std::string& path) { return std::filesystem::path(path).stem().string(); }

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// train

int run_train(const CommonFlags& c, const DataFlags& d, const TrainFlags& t) {
  try {
    SSMKIT_CHECK(!c.out.empty() || !t.checkpoint.empty() || c.json,
                 "train: nothing would be kept; expected --out "
                 "model.safetensors (or --json to only measure)");
    const CsvOptions csv = csv_options(d);
    const ProtocolOptions proto = protocol_options(d);
    ForecastData data = ForecastData::load(d.csv, csv, proto);
    const Recommendation rec = recommended_defaults(t.model, stem_of(d.csv), d.pred_len);
    const json cfg = model_config(t.model, rec, t);

    ssmkit::core::manual_seed(c.seed);  // model init and dropout (TSLib fix_seed before building the model)
    auto model = make_forecast_model(t.model, forecast_dims(data), cfg, ssmkit::core::global_rng());

    ForecastTrainOptions o;
    o.lr = t.lr > 0 ? t.lr : rec.lr;
    o.epochs = t.epochs >= 0 ? t.epochs : rec.epochs;
    o.batch = t.batch > 0 ? t.batch : rec.batch;
    o.patience = t.patience;
    o.lradj = parse_lr_adjust(t.lradj);
    o.seed = c.seed;
    o.drop_last = t.drop_last >= 0 ? t.drop_last != 0 : rec.drop_last;
    o.checkpoint = t.checkpoint.empty() ? t.resume : t.checkpoint;  // a resumed run goes on writing there
    o.resume = t.resume;
    o.out = c.out;
    o.csv = csv;
    o.stop_after_steps = t.stop_after;
    o.log_every = t.log_every;
    o.shards = t.shards;
    o.quiet = c.quiet;
    const std::string sha = ssmkit::core::sha256_file(d.csv);
    o.training_extra = {{"command", c.command}, {"data_sha256", sha}, {"data_file", d.csv}};
    if (!c.quiet)
      std::fprintf(
          stderr,
          "%s on %s: %s, %lld channels, %lld -> %lld, split %s, train/val/test windows %lld/%lld/%lld, "
          "%lld parameters; lr %.3g, batch %lld, epochs %lld, %s%s\n",
          t.model.c_str(), d.csv.c_str(), features_name(proto.features), static_cast<long long>(data.n_channels()),
          static_cast<long long>(d.seq_len), static_cast<long long>(d.pred_len), split_rule_name(data.rule()),
          static_cast<long long>(data.split(Split::Train).size()),
          static_cast<long long>(data.split(Split::Val).size()), static_cast<long long>(data.split(Split::Test).size()),
          static_cast<long long>(model->num_parameters()), o.lr, static_cast<long long>(o.batch),
          static_cast<long long>(o.epochs), cfg.dump().c_str(),
          rec.source.empty() ? "" : (" (defaults: " + rec.source + ")").c_str());

    ForecastTrainResult r = train_forecaster(*model, data, o);
    if (!r.finished) {
      if (!c.quiet)
        std::fprintf(stderr, "stopped after %lld steps; continue with --resume %s\n",
                     static_cast<long long>(r.global_step), t.checkpoint.c_str());
      if (c.json)
        std::printf("%s\n", json{{"command", c.command},
                                 {"model", t.model},
                                 {"metrics", {{"finished", false}, {"steps", r.global_step}}},
                                 {"results", json::array()}}
                                .dump(2)
                                .c_str());
      return 0;
    }
    if (c.json) {
      json j = {{"command", c.command},
                {"model", t.model},
                {"metrics",
                 {{"val", r.val.to_json()},
                  {"test", r.test.to_json()},
                  {"best_val_loss", r.best_val_loss},
                  {"best_epoch", r.best_epoch},
                  {"epochs_done", r.epochs_done},
                  {"early_stopped", r.early_stopped},
                  {"steps_per_epoch", r.steps_per_epoch},
                  {"epoch_seconds", r.epoch_seconds},
                  {"seconds", r.seconds},
                  {"parameters", model->num_parameters()},
                  {"lr", o.lr},
                  {"config", model->config()}}},
                {"results", r.training.value("history", json::array())}};
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s %s %s %lld->%lld: best epoch %lld of %lld%s, %.2f s/epoch\n", t.model.c_str(),
                  stem_of(d.csv).c_str(), features_name(proto.features), static_cast<long long>(d.seq_len),
                  static_cast<long long>(d.pred_len), static_cast<long long>(r.best_epoch),
                  static_cast<long long>(r.epochs_done), r.early_stopped ? " (early stop)" : "", r.epoch_seconds);
      std::printf("val  MSE %s MAE %s (%lld windows)\n", fmt(r.val.mse).c_str(), fmt(r.val.mae).c_str(),
                  static_cast<long long>(r.val.windows));
      std::printf("test MSE %s MAE %s (%lld windows)\n", fmt(r.test.mse).c_str(), fmt(r.test.mae).c_str(),
                  static_cast<long long>(r.test.windows));
      if (!c.out.empty()) std::printf("wrote %s\n", c.out.c_str());
    }
    return 0;
  } catch (...) {
    return report_exception();
  }
}

// ---------------------------------------------------------------------------------------------------
// eval

namespace {

// How the CSV is read for a model file: as trained, unless flags say otherwise.
CsvOptions reading_for(const LoadedForecaster& f, const DataFlags& d) {
  CsvOptions o = f.csv;
  if (!d.date_col.empty()) o.date_col = d.date_col;
  if (d.fill != "none") o.fill = parse_fill_method(d.fill);
  if (d.loose_time) o.strict_time = false;
  if (!d.sep.empty()) o.separator = csv_options(d).separator;
  return o;
}

}  // namespace

int run_eval(const CommonFlags& c, const DataFlags& d, const std::string& model_path, int64_t batch,
             int64_t drop_last_compat, const std::string& split) {
  try {
    SSMKIT_CHECK(split == "test" || split == "val", "--split '", split, "': expected test or val");
    LoadedForecaster f = load_forecaster(model_path);
    ForecastData data = forecaster_data(f, d.csv, true, reading_for(f, d), d.freq);
    // The scaler is refitted on this file's train rows (the protocol); say so when it is not the model's.
    double worst = 0.0;
    for (size_t k = 0; k < f.scaler.mean.size(); ++k)
      worst = std::max({worst, std::abs(data.scaler().mean[k] - f.scaler.mean[k]) / f.scaler.scale[k],
                        std::abs(data.scaler().scale[k] / f.scaler.scale[k] - 1.0)});
    if (worst > 1e-6 && !c.quiet)
      std::fprintf(stderr,
                   "note: %s: the train rows' statistics differ from the model's (by %.3g); is this the "
                   "file the model was trained on?\n",
                   d.csv.c_str(), worst);
    const WindowDataset w = data.split(split == "test" ? Split::Test : Split::Val);
    ForecastMetrics m = evaluate(*f.model, w, batch, drop_last_compat);
    if (c.json) {
      json j = {{"command", c.command},
                {"model", f.model_name},
                {"metrics", m.to_json()},
                {"results",
                 {{{"split", split},
                   {"seq_len", f.protocol.seq_len},
                   {"pred_len", f.protocol.pred_len},
                   {"features", features_name(f.protocol.features)},
                   {"drop_last_compat", drop_last_compat}}}}};
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s %s %s %lld->%lld %s MSE %s MAE %s RMSE %s (%lld windows%s)\n", f.model_name.c_str(),
                  stem_of(d.csv).c_str(), features_name(f.protocol.features),
                  static_cast<long long>(f.protocol.seq_len), static_cast<long long>(f.protocol.pred_len),
                  split.c_str(), fmt(m.mse).c_str(), fmt(m.mae).c_str(), fmt(m.rmse).c_str(),
                  static_cast<long long>(m.windows),
                  drop_last_compat > 0 ? (", drop_last " + std::to_string(drop_last_compat)).c_str() : "");
    }
    return 0;
  } catch (...) {
    return report_exception();
  }
}

// ---------------------------------------------------------------------------------------------------
// predict

int run_predict(const CommonFlags& c, const DataFlags& d, const std::string& model_path, const std::string& plot,
                int64_t history) {
  try {
    LoadedForecaster f = load_forecaster(model_path);
    ForecastData data = forecaster_data(f, d.csv, false, reading_for(f, d), d.freq);
    if (!f.protocol.freq.empty() && frequency_name(data.frequency()) != f.protocol.freq && !c.quiet)
      std::fprintf(stderr, "note: %s: sampling frequency %s, but the model was trained on %s data\n", d.csv.c_str(),
                   frequency_name(data.frequency()).c_str(), f.protocol.freq.c_str());
    Forecast fc = forecast_next(*f.model, data);
    if (!c.out.empty()) write_forecast_csv(c.out, fc);

    if (!plot.empty()) {
      const CsvTable& t = data.table();
      const int64_t T = t.rows();
      const int64_t Th = std::min(T, history > 0 ? history : 2 * f.protocol.seq_len);
      std::vector<std::string> hist_dates;
      for (int64_t r = T - Th; r < T; ++r)
        hist_dates.push_back(format_datetime(t.times[static_cast<size_t>(r)], t.date_format));
      std::vector<PlotSeries> series;
      const size_t N = fc.columns.size();
      for (size_t k = 0; k < N; ++k) {
        PlotSeries s;
        s.name = fc.columns[k];
        const int64_t col = t.column_index(s.name);
        for (int64_t r = T - Th; r < T; ++r) s.history.push_back(t.at(r, col));
        for (size_t h = 0; h < fc.dates.size(); ++h) s.forecast.push_back(fc.values[h * N + k]);
        series.push_back(std::move(s));
      }
      write_forecast_png(plot,
                         f.model_name + ": " + std::to_string(fc.dates.size()) + " steps after " +
                             std::filesystem::path(d.csv).filename().string(),
                         hist_dates, fc.dates, series);
    }

    if (c.json) {
      json rows = json::array();
      for (size_t h = 0; h < fc.dates.size(); ++h) {
        json row = {{fc.date_name, fc.dates[h]}};
        for (size_t k = 0; k < fc.columns.size(); ++k) row[fc.columns[k]] = fc.values[h * fc.columns.size() + k];
        rows.push_back(row);
      }
      json j = {{"command", c.command},
                {"model", f.model_name},
                {"metrics", {{"steps", fc.dates.size()}, {"columns", fc.columns}}},
                {"results", rows}};
      std::printf("%s\n", j.dump(2).c_str());
    } else if (c.out.empty()) {
      std::printf("%s", forecast_csv(fc).c_str());
    } else {
      std::printf("wrote %s (%zu steps of %zu columns, %s .. %s)%s%s\n", c.out.c_str(), fc.dates.size(),
                  fc.columns.size(), fc.dates.front().c_str(), fc.dates.back().c_str(), plot.empty() ? "" : " and ",
                  plot.c_str());
    }
    return 0;
  } catch (...) {
    return report_exception();
  }
}

}  // namespace ssm_forecast
