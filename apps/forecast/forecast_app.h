// ssm-forecast's internal interface between its files: the flags each subcommand collects, the per-model
// recommended defaults (lr, batch, epochs, model options from the official scripts), the commands
// themselves and the PNG plot. The math lives in ssmkit::timeseries; these files only wire flags to it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ssmkit/timeseries/csv_reader.h"
#include "ssmkit/timeseries/protocol.h"

namespace ssm_forecast {

// Flags every subcommand has.
struct CommonFlags {
  int threads = 0;  // 0: all cores
  uint64_t seed = 2021;
  bool json = false;
  bool quiet = false;
  std::string out;
  std::string command;  // the full command line, for the model file and --json
};

// How a CSV file is read and windowed.
struct DataFlags {
  std::string csv;
  std::string features = "M";
  std::string target;  // "": the last column
  std::string date_col;
  std::string fill = "none";
  std::string freq;         // "": inferred
  std::string sep;          // "": detected; ",", ";", "tab"
  bool loose_time = false;  // keep duplicated / unsorted timestamps (weather.csv repeats one)
  std::string time_freq = "h";
  int64_t seq_len = 96, label_len = 48, pred_len = 96;
};

ssmkit::timeseries::CsvOptions csv_options(const DataFlags& d);
ssmkit::timeseries::ProtocolOptions protocol_options(const DataFlags& d);

// Training settings; a negative / empty value means "not given" (the recommended default applies).
struct TrainFlags {
  std::string model = "dlinear";
  double lr = -1;
  int64_t epochs = -1, batch = -1, patience = 3;
  std::string lradj = "type1";
  int drop_last = -1;  // -1: the model's recommendation
  int64_t d_model = -1, d_ff = -1, e_layers = -1, d_state = -1;
  double dropout = -1;
  std::string config;  // JSON text or a .json file
  std::string resume, checkpoint;
  int64_t stop_after = 0;
  int64_t log_every = 100;
  int64_t shards = 0;  // data-parallel shards per batch; 0: one per thread
};

// Recommended settings for a model on a dataset (file stem: ETTh1, ETTm1, weather, exchange_rate, ...)
// at a horizon, from the official scripts; flags override them.
struct Recommendation {
  double lr = 1e-4;  // TSLib run.py default
  int64_t batch = 32;
  int64_t epochs = 10;
  bool drop_last = false;  // TSLib since bdec492; S-Mamba's own loader drops the last train batch
  nlohmann::json config = nlohmann::json::object();
  std::string source;  // where the numbers come from
};
Recommendation recommended_defaults(const std::string& model, const std::string& dataset, int64_t pred_len);
// The table as text (for --help and `ssm-forecast defaults`).
std::string recommended_defaults_table();

// The model config of `model`: recommendation < --config < explicit model flags (--e-layers is the S4D
// forecaster's n_layers).
nlohmann::json model_config(const std::string& model, const Recommendation& rec, const TrainFlags& t);

// Subcommands; each returns the exit code (0 ok, 2 bad input, 3 internal), printing `error: ...` itself.
int run_train(const CommonFlags& c, const DataFlags& d, const TrainFlags& t);
int run_eval(const CommonFlags& c, const DataFlags& d, const std::string& model_path, int64_t batch,
             int64_t drop_last_compat, const std::string& split);
int run_predict(const CommonFlags& c, const DataFlags& d, const std::string& model_path, const std::string& plot,
                int64_t history);

struct BenchFlags {
  std::string data_dir;
  std::vector<std::string> datasets = {"ETTh1", "ETTm1", "weather", "exchange_rate"};
  std::vector<int64_t> horizons = {96, 192, 336, 720};
  std::vector<std::string> models = {"dlinear"};
  std::vector<uint64_t> seeds = {2021, 2022, 2023};
  std::string csv = "bench.csv";  // one row per run; runs already there are skipped (resume)
  std::string summary_csv;        // mean / std table as CSV ("": next to csv, <stem>.summary.csv)
  std::string models_dir;         // save each trained model there ("": not kept)
  std::string checkpoint_dir;     // training checkpoint per run there, resumed if present ("": none)
  int64_t checkpoint_every = 200; // steps between checkpoints (besides epoch ends) when checkpoint_dir is set
  int64_t seq_len = 96;
  TrainFlags train;  // lr / epochs / ... overrides for every run
};
int run_bench(const CommonFlags& c, const BenchFlags& b);

// One panel per variable: the last history points and the forecast after them, dates on the x axis.
struct PlotSeries {
  std::string name;
  std::vector<double> history;   // (Th)
  std::vector<double> forecast;  // (H)
};
// Writes a PNG atomically; throws ssmkit::core::Error naming the path when encoding fails.
void write_forecast_png(const std::string& path, const std::string& title,
                        const std::vector<std::string>& history_dates, const std::vector<std::string>& forecast_dates,
                        const std::vector<PlotSeries>& series);

// Prints "error: <what>" on stderr and returns the exit code for the exception in flight (2 for
// ssmkit::core::Error, 3 otherwise). Call from a catch block.
int report_exception();

}  // namespace ssm_forecast
