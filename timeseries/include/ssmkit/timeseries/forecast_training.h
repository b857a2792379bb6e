// Training, evaluation and prediction of a ForecastModel in the Time-Series-Library protocol
// (exp/exp_long_term_forecasting.py, utils/tools.py, utils/metrics.py; spec timeseries.md §5.5-5.7):
// Adam, MSE on the last H rows of the loss channels, batch 32 shuffled, validation = mean of per-batch
// MSE, early stopping on it with the best-val weights kept, lr `type1` (or cosine / constant), test
// metrics over every window on the scaled data; and the forecast after a file's last row in original units.
// Not here: model files (forecast_checkpoint.h), models (forecast_model.h), data (protocol.h).
// Shapes: B batch, L seq_len, S label_len, H pred_len, C channels, N loss channels (n_targets), F marks.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"
#include "ssmkit/timeseries/csv_reader.h"
#include "ssmkit/timeseries/forecast_model.h"
#include "ssmkit/timeseries/frequency.h"
#include "ssmkit/timeseries/protocol.h"

namespace ssmkit::timeseries {

// ---------------------------------------------------------------------------------------------------
// Inference and metrics

// Rows per season for a sampling frequency, as ForecastDims::period: one day of rows for sub-daily steps
// that divide a day (24 hourly, 96 at 15 min, 144 at 10 min), 7 daily, 5 business-daily, 52 weekly,
// 12 monthly, 4 quarterly, 1 otherwise; then clamped to [1, seq_len] (seasonal-naive needs a whole season
// inside the input window).
int64_t season_period(const Frequency& f, int64_t seq_len);

// The dims a model needs for `data`: its seq_len / pred_len, C channels, F marks and season_period.
ForecastDims forecast_dims(const ForecastData& data);

// No-grad forward of one batch: x (B,L,C), x_mark (B,L,F) (passed only when model.uses_marks() and
// F > 0) -> (B,H,C) scaled forecasts. The model's train/eval mode is left as it is.
core::Tensor forecast_batch(const ForecastModel& model, const core::Tensor& x, const core::Tensor& x_mark);

// MSE / MAE / RMSE over windows x H steps x N loss channels (channels target_offset() ..), scaled scale.
struct ForecastMetrics {
  double mse = std::numeric_limits<double>::quiet_NaN();
  double mae = std::numeric_limits<double>::quiet_NaN();
  double rmse = std::numeric_limits<double>::quiet_NaN();
  int64_t windows = 0;             // windows evaluated
  nlohmann::json to_json() const;  // {"mse", "mae", "rmse", "windows"} (NaN as null)
};

// Every window of `data` in order, `batch` at a time, in eval mode (restored afterwards), no grad.
// drop_last_compat B > 0 reproduces the legacy TSLib test loader (drop_last=True with batch B, before
// commit bdec492): only the first floor(n / B) * B windows count. Sums in double.
ForecastMetrics evaluate(ForecastModel& model, const WindowDataset& data, int64_t batch = 32,
                         int64_t drop_last_compat = 0);

// TSLib's vali(): the mean over batches (in order, `batch` windows each, the last one partial) of each
// batch's MSE. TSLib's val loader also shuffles, which changes only which windows share the partial batch.
double validation_loss(ForecastModel& model, const WindowDataset& data, int64_t batch = 32);

// ---------------------------------------------------------------------------------------------------
// Training

// TSLib adjust_learning_rate: type1 halves after every epoch from the second on; cosine is
// lr0/2 (1 + cos(pi e / epochs)) after epoch e; constant never changes.
enum class LrAdjust : uint8_t { Type1, Cosine, Constant };
LrAdjust parse_lr_adjust(const std::string& name);  // "type1", "cosine", "constant"; throws otherwise
const char* lr_adjust_name(LrAdjust a);
// The lr set after finishing 1-based `epoch` of `epochs` (TSLib calls adjust_learning_rate(epoch + 1)).
double lr_after_epoch(LrAdjust a, double lr0, int64_t epoch, int64_t epochs);

struct ForecastTrainOptions {
  double lr = 1e-4;      // Adam lr (beta 0.9/0.999, eps 1e-8, no weight decay); TSLib run.py default
  int64_t epochs = 10;   // at most
  int64_t batch = 32;    // training (and validation / test) batch
  int64_t patience = 3;  // early stopping on validation loss; 0 = never stop early
  LrAdjust lradj = LrAdjust::Type1;
  uint64_t seed = 2021;          // order of the training windows (the trainer's data_rng); model init and dropout
                                 // draw from global_rng(), which the caller seeds (core::manual_seed)
  bool drop_last = false;        // drop the partial last training batch (TSLib before bdec492, S-Mamba's code)
  bool eval_test = true;         // measure the test split with the best weights at the end
  std::string checkpoint;        // training checkpoint after every epoch ("" = none; needed for a later resume);
                                 // the best-val weights go to best_checkpoint_path(checkpoint)
  int64_t checkpoint_every = 0;  // also every N steps (0 = epoch ends only)
  std::string resume;            // training checkpoint to continue from exactly (its best file must exist)
  std::string out;               // model file (save_forecaster): written at every validation improvement and
                                 // once more at the end with the final metrics ("" = none)
  CsvOptions csv;                // how the data was read (recorded in the model file's preprocessing)
  nlohmann::json training_extra = nlohmann::json::object();  // merged into the model file's "training" JSON
                                                             // (command, data_sha256, ...)
  int64_t stop_after_steps = 0;  // return once this many steps are done in total, saving the checkpoint
                                 // (time-boxed runs, resume tests); 0 = train to the end
  int64_t log_every = 100;       // progress line every N steps on stderr (0: epoch ends only)
  bool quiet = false;            // nothing on stderr
  int64_t shards = 1;            // data-parallel shards per batch (core/train/data_parallel.h): each step's
                                 // batch is cut into this many parts, trained at once on their own threads
                                 // and their gradients summed. The arithmetic depends on it (not on the thread
                                 // count); 1 = the plain loop. 0 = one per OpenMP thread.
};

// Where the best-val training checkpoint of `checkpoint` lives: "run.safetensors" -> "run.best.safetensors".
std::string best_checkpoint_path(const std::string& checkpoint);

struct EpochRecord {
  int64_t epoch = 0;        // 1-based
  double train_loss = 0.0;  // mean of the epoch's step losses
  double val_loss = 0.0;    // validation_loss
  double lr = 0.0;          // lr the epoch trained with
  double seconds = 0.0;     // training time of the epoch (without validation)
  bool improved = false;
};

struct ForecastTrainResult {
  ForecastMetrics val, test;  // of the best-val weights, every window (test only with eval_test)
  double best_val_loss = std::numeric_limits<double>::quiet_NaN();  // early stopping's metric
  int64_t best_epoch = 0;                                           // 1-based epoch of best_val_loss (0: none)
  int64_t epochs_done = 0;                                          // epochs completed (including any before a resume)
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;
  bool early_stopped = false;
  bool finished = false;             // false when stop_after_steps cut the run short
  std::vector<EpochRecord> history;  // the epochs this call ran
  double seconds = 0.0;              // wall time of this call
  double epoch_seconds = 0.0;        // median training time per epoch in this call (0 when none completed)
  nlohmann::json training;           // the "training" JSON written into the model file
};

// Trains `model` on data.split(Train), early-stopping on data.split(Val); at the end the model holds the
// best-val weights (the last ones when no epoch completed) and, with eval_test, test is measured on them.
// A model with trainable() false (seasonal-naive) is only evaluated. Errors name the file at fault.
ForecastTrainResult train_forecaster(ForecastModel& model, const ForecastData& data,
                                     const ForecastTrainOptions& options);

// ---------------------------------------------------------------------------------------------------
// Prediction

// The H steps after the last row of a file: dates continued at data.frequency() and written like the
// file's dates, the loss channels' values in original units.
struct Forecast {
  std::string date_name;             // the file's date column header
  std::vector<Micros> times;         // (H)
  std::vector<std::string> dates;    // (H)
  std::vector<std::string> columns;  // (N) loss channel names (data.channels() from target_offset())
  std::vector<double> values;        // (H, N) row-major, original units
};

// x = the last L rows (data may come without splits, scaled with a checkpoint's scaler) -> Forecast.
Forecast forecast_next(ForecastModel& model, const ForecastData& data);

// CSV text: header "<date_name>,<columns...>", one row per step, values with 7 significant digits.
std::string forecast_csv(const Forecast& f);
// forecast_csv written atomically.
void write_forecast_csv(const std::string& path, const Forecast& f);

}  // namespace ssmkit::timeseries
