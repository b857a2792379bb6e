// ssm-forecast: CSV time-series forecasting with ssmkit's models in the Time-Series-Library protocol.
// Subcommands train / eval / predict / bench / defaults; this file only declares the flags (CLI11) and
// dispatches to commands.cpp and bench.cpp. Exit codes as docs/conventions.md: 0 ok, 1 usage, 2 bad input,
// 3 internal error.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "forecast_app.h"

namespace {

using namespace ssm_forecast;

void add_common(CLI::App* s, CommonFlags& c, const char* out_help) {
  s->add_option("--threads", c.threads, "OpenMP threads (default: all cores)");
  s->add_option("--seed", c.seed, "random seed (model init, dropout, batch order)")->capture_default_str();
  s->add_flag("--json", c.json, "print the result as one JSON object on stdout");
  s->add_flag("--quiet", c.quiet, "no progress on stderr");
  if (out_help) s->add_option("--out", c.out, out_help);
}

// How the CSV is read (every subcommand that takes one).
void add_reading(CLI::App* s, DataFlags& d) {
  s->add_option("--csv", d.csv, "input CSV: a header row, a date/time column, numeric columns")->required();
  s->add_option("--date-col", d.date_col, "date/time column (default: detected)");
  s->add_option("--fill", d.fill, "missing cells: none (an error), ffill or linear")
      ->check(CLI::IsMember({"none", "ffill", "linear"}))
      ->capture_default_str();
  s->add_option("--freq", d.freq, "sampling frequency, e.g. h, 15min, D (default: inferred from the dates)");
  s->add_option("--sep", d.sep, "separator: ',' ';' or tab (default: detected)");
  s->add_flag("--loose-time", d.loose_time, "accept duplicated or unsorted timestamps (keep file order)");
}

void add_model_options(CLI::App* s, TrainFlags& t) {
  s->add_option("--lr", t.lr, "Adam learning rate (default: the model's recommendation, else 1e-4)");
  s->add_option("--epochs", t.epochs, "at most this many epochs (default 10)");
  s->add_option("--batch", t.batch, "batch size (default 32)");
  s->add_option("--patience", t.patience, "early stopping patience on the validation loss (0: off)")
      ->capture_default_str();
  s->add_option("--lradj", t.lradj, "lr schedule: type1 (halve every epoch), cosine, constant")
      ->check(CLI::IsMember({"type1", "cosine", "constant"}))
      ->capture_default_str();
  s->add_option("--drop-last", t.drop_last, "1: drop the partial last training batch (default: per model)");
  s->add_option("--d-model", t.d_model, "model width (model option d_model)");
  s->add_option("--d-ff", t.d_ff, "feed-forward width (model option d_ff)");
  s->add_option("--e-layers", t.e_layers, "encoder layers (model option e_layers)");
  s->add_option("--d-state", t.d_state, "SSM state size (model option d_state)");
  s->add_option("--dropout", t.dropout, "dropout (model option dropout)");
  s->add_option("--shards", t.shards,
                 "data-parallel shards per batch, trained at once on their own threads (default: one per thread); "
                 "results depend on the shard count, not on --threads; 1 = the plain loop")
      ->check(CLI::NonNegativeNumber);
  s->add_option("--log-every", t.log_every, "progress line every N steps (0: epoch ends only)")->capture_default_str();
  s->add_option("--config", t.config, "model options as JSON text or a .json file, e.g. '{\"d_model\":128}'");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Forecast CSV time series with state-space models (Chimera, S-Mamba, SiMBA, S4D) and baselines,\n"
      "trained and evaluated natively in C++ in the Time-Series-Library protocol.\n"
      "example: ssm-forecast train --csv ETTh1.csv --model dlinear --seq-len 96 --pred-len 96 --out m.safetensors"};
  app.require_subcommand(1);
  CommonFlags common;
  DataFlags data;
  TrainFlags train_flags;

  // train
  CLI::App* train =
      app.add_subcommand("train", "train a model (early stopping on validation), report val/test MSE/MAE");
  train->footer(
      "example: ssm-forecast train --csv ../shared/data/timeseries/ett/ETTh1.csv --model dlinear --seq-len 96 "
      "--pred-len 96 --out dlinear_etth1.safetensors --checkpoint run.safetensors\n"
      "Splits: ETTh*/ETTm* files 12/4/4 months, others 70/10/20; metrics on the standardized scale.\n"
      "Model defaults per dataset: ssm-forecast defaults");
  add_common(train, common, "model file to write (best validation weights; replaced atomically)");
  add_reading(train, data);
  train->add_option("--model", train_flags.model, "chimera, smamba, simba, s4d, dlinear or seasonal-naive")
      ->capture_default_str();
  train->add_option("--seq-len", data.seq_len, "look-back window L")->capture_default_str();
  train->add_option("--pred-len", data.pred_len, "horizon H")->capture_default_str();
  train->add_option("--label-len", data.label_len, "decoder start tokens (TSLib label_len)")->capture_default_str();
  train->add_option("--features", data.features, "M (all to all), S (target only), MS (all to target)")
      ->check(CLI::IsMember({"M", "S", "MS"}))
      ->capture_default_str();
  train->add_option("--target", data.target, "target column for S / MS (default: the last column)");
  train->add_option("--time-freq", data.time_freq, "frequency naming the time-mark features (TSLib --freq; 'auto')")
      ->capture_default_str();
  add_model_options(train, train_flags);
  train->add_option("--checkpoint", train_flags.checkpoint,
                    "training checkpoint written after every epoch (needed to --resume); best weights go to "
                    "<checkpoint stem>.best.safetensors");
  train->add_option(
      "--resume", train_flags.resume,
      "continue exactly from this training checkpoint (and keep writing it unless --checkpoint is given)");
  train->add_option("--stop-after", train_flags.stop_after, "stop after this many steps in total (resume later)");

  // eval
  std::string model_path, split = "test", plot;
  int64_t eval_batch = 32, drop_last_compat = 0, history = 0;
  CLI::App* eval = app.add_subcommand("eval", "test MSE/MAE of a model file in the protocol (all windows)");
  eval->footer(
      "example: ssm-forecast eval --model dlinear_etth1.safetensors --csv ../shared/data/timeseries/ett/ETTh1.csv "
      "--json");
  add_common(eval, common, nullptr);
  add_reading(eval, data);
  eval->add_option("--model", model_path, "model file written by ssm-forecast train")->required();
  eval->add_option("--split", split, "test or val")->check(CLI::IsMember({"test", "val"}))->capture_default_str();
  eval->add_option("--batch", eval_batch, "windows per forward pass (does not change the result)")
      ->capture_default_str();
  eval->add_option("--drop-last-compat", drop_last_compat,
                   "B > 0: count only the first floor(n/B)*B windows, as TSLib's test loader did before 2024-07");

  // predict
  CLI::App* predict = app.add_subcommand("predict", "forecast the pred-len steps after the last row of a CSV");
  predict->footer(
      "example: ssm-forecast predict --model dlinear_etth1.safetensors --csv recent.csv --out forecast.csv "
      "--plot forecast.png");
  add_common(predict, common, "forecast CSV (date column + the forecast columns; default: stdout)");
  add_reading(predict, data);
  predict->add_option("--model", model_path, "model file written by ssm-forecast train")->required();
  predict->add_option("--plot", plot, "PNG: recent history and the forecast, one panel per variable");
  predict->add_option("--history", history, "history rows in the plot (default: 2 x seq_len)");

  // bench
  BenchFlags bench_flags;
  std::string datasets, horizons, models, seeds;
  CLI::App* bench =
      app.add_subcommand("bench", "train and test every dataset x horizon x model x seed; protocol table");
  bench->footer(
      "example: ssm-forecast bench --data-dir ../shared/data/timeseries --datasets ETTh1,ETTm1 --horizons "
      "96,192,336,720 --models dlinear,smamba --seeds 2021,2022,2023 --out table.md --csv runs.csv\n"
      "Runs already in --csv are skipped, so an interrupted bench continues where it stopped; with "
      "--checkpoint-dir an interrupted run also continues from its last checkpoint, to the same result.");
  add_common(bench, common, "markdown table (mean +- std over seeds, with Avg rows)");
  bench->add_option("--data-dir", bench_flags.data_dir,
                    "folder with ett/, weather/, exchange_rate/ (default: $SSMKIT_DATA_DIR/timeseries or "
                    "../shared/data/timeseries)");
  bench->add_option("--datasets", datasets, "ETTh1,ETTh2,ETTm1,ETTm2,weather,exchange_rate or CSV paths")
      ->default_str("ETTh1,ETTm1,weather,exchange_rate");
  bench->add_option("--horizons", horizons, "pred-len values")->default_str("96,192,336,720");
  bench->add_option("--models", models, "models")->default_str("dlinear");
  bench->add_option("--seeds", seeds, "seeds (mean and std over them)")->default_str("2021,2022,2023");
  bench->add_option("--seq-len", bench_flags.seq_len, "look-back window")->capture_default_str();
  bench->add_option("--csv", bench_flags.csv, "per-run CSV (read first: runs already there are skipped)")
      ->capture_default_str();
  bench->add_option("--summary-csv", bench_flags.summary_csv, "the table as CSV (default: <csv stem>.summary.csv)");
  bench->add_option("--models-dir", bench_flags.models_dir, "keep every trained model file in this folder");
  bench->add_option("--checkpoint-dir", bench_flags.checkpoint_dir,
                    "training checkpoints, one per run (<dataset>_<H>_<model>_<seed>.train.safetensors); a run whose "
                    "checkpoint is there resumes from it exactly");
  bench->add_option("--checkpoint-every", bench_flags.checkpoint_every,
                    "with --checkpoint-dir: also checkpoint every N steps (0: epoch ends only)")
      ->capture_default_str();
  add_model_options(bench, bench_flags.train);

  CLI::App* defaults = app.add_subcommand("defaults", "print the recommended per-model settings");
  defaults->footer("example: ssm-forecast defaults");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  for (int i = 0; i < argc; ++i) common.command += (i ? " " : "") + std::string(argv[i]);
  if (common.threads > 0) omp_set_num_threads(common.threads);

  auto split_list = [](const std::string& s) {
    std::vector<std::string> out;
    size_t p = 0;
    while (p <= s.size()) {
      size_t q = s.find(',', p);
      if (q == std::string::npos) q = s.size();
      if (q > p) out.push_back(s.substr(p, q - p));
      p = q + 1;
    }
    return out;
  };
  try {
    if (train->parsed()) return run_train(common, data, train_flags);
    if (eval->parsed()) return run_eval(common, data, model_path, eval_batch, drop_last_compat, split);
    if (predict->parsed()) return run_predict(common, data, model_path, plot, history);
    if (defaults->parsed()) {
      std::printf("%s", recommended_defaults_table().c_str());
      return 0;
    }
    if (bench->parsed()) {
      if (!datasets.empty()) bench_flags.datasets = split_list(datasets);
      if (!models.empty()) bench_flags.models = split_list(models);
      if (!horizons.empty()) {
        bench_flags.horizons.clear();
        for (const auto& h : split_list(horizons)) bench_flags.horizons.push_back(std::stoll(h));
      }
      if (!seeds.empty()) {
        bench_flags.seeds.clear();
        for (const auto& s : split_list(seeds)) bench_flags.seeds.push_back(std::stoull(s));
      }
      return run_bench(common, bench_flags);
    }
  } catch (const std::invalid_argument&) {
    std::fprintf(stderr, "error: --horizons and --seeds take comma-separated integers\n");
    return 1;
  } catch (...) {
    return report_exception();
  }
  return 1;
}
