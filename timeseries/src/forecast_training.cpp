// The Time-Series-Library training loop on the core Trainer (exp/exp_long_term_forecasting.py train/vali/
// test; utils/tools.py adjust_learning_rate and EarlyStopping): shuffled batches from the trainer's data RNG,
// Adam + MSE on the loss channels' last H rows, per-epoch validation, early stopping with the best weights
// kept in memory and in a best-val training checkpoint (so --resume restores them and the patience count),
// lr schedule after each epoch, and test metrics on the best weights. Also evaluation and the forecast
// after the last row. Not here: model files (forecast_checkpoint.cpp), the models themselves.
#include "ssmkit/timeseries/forecast_training.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "ssmkit/core/error.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/parallel_tasks.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/train/data_parallel.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/core/train/schedule.h"
#include "ssmkit/core/train/trainer.h"
#include "ssmkit/timeseries/forecast_checkpoint.h"

namespace ssmkit::timeseries {

using core::Error;
using core::Tensor;
using core::Var;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Sets the model to eval mode for a scope and restores the previous mode.
struct EvalModeScope {
  explicit EvalModeScope(ForecastModel& m) : model(m), was_training(m.training()) { model.eval(); }
  ~EvalModeScope() { model.train(was_training); }
  ForecastModel& model;
  bool was_training;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Inference and metrics

int64_t season_period(const Frequency& f, int64_t seq_len) {
  int64_t p = 1;
  const int64_t step = frequency_micros(f);
  if (step > 0 && step < kMicrosPerDay && kMicrosPerDay % step == 0) {
    p = kMicrosPerDay / step;
  } else if (f.n == 1) {
    switch (f.unit) {
      case FreqUnit::Day:
        p = 7;
        break;
      case FreqUnit::BusinessDay:
        p = 5;
        break;
      case FreqUnit::Week:
        p = 52;
        break;
      case FreqUnit::MonthStart:
      case FreqUnit::MonthEnd:
        p = 12;
        break;
      case FreqUnit::QuarterStart:
      case FreqUnit::QuarterEnd:
        p = 4;
        break;
      default:
        p = 1;
    }
  }
  return std::clamp<int64_t>(p, 1, std::max<int64_t>(seq_len, 1));
}

ForecastDims forecast_dims(const ForecastData& data) {
  ForecastDims d;
  d.seq_len = data.options().seq_len;
  d.pred_len = data.options().pred_len;
  d.n_channels = data.n_channels();
  d.n_marks = data.n_marks();
  d.period = season_period(data.frequency(), d.seq_len);
  return d;
}

// x (B,L,C), x_mark (B,L,F) -> (B,H,C)
Tensor forecast_batch(const ForecastModel& model, const Tensor& x, const Tensor& x_mark) {
  core::NoGradGuard no_grad;
  const bool marks = model.uses_marks() && x_mark.defined() && x_mark.ndim() == 3 && x_mark.size(2) > 0;
  Var out = model.forward(Var(x), marks ? Var(x_mark) : Var());
  return out.value().contiguous();
}

json ForecastMetrics::to_json() const {
  return {
      {"mse", number_or_null(mse)}, {"mae", number_or_null(mae)}, {"rmse", number_or_null(rmse)}, {"windows", windows}};
}

namespace {

// Runs fn(batch_index, n_windows, sum_sq, sum_abs) over the first n windows of data, in order;
// sums are over the batch's H x N loss values (pred (B,H,C) against y's last H rows).
template <class Fn>
void for_each_eval_batch(ForecastModel& model, const WindowDataset& data, int64_t n, int64_t batch, Fn fn) {
  SSMKIT_CHECK(batch > 0, "evaluate: batch must be positive, got ", batch);
  const int64_t S = data.label_len(), H = data.pred_len(), C = data.n_channels();
  const int64_t off = data.target_offset(), N = data.n_targets();
  const ForecastDims& d = model.dims();
  SSMKIT_CHECK(d.seq_len == data.seq_len() && d.pred_len == H && d.n_channels == C, "evaluate: model ",
               model.model_name(), " is built for seq_len ", d.seq_len, ", pred_len ", d.pred_len, ", ", d.n_channels,
               " channels; the data has ", data.seq_len(), ", ", H, ", ", C);
  EvalModeScope eval_mode(model);
  // Batches run concurrently, one per thread (core::parallel_tasks: the same bits as one batch at a time);
  // their sums are handed to fn in batch order, so the result does not depend on the thread count.
  const int64_t n_batches = (n + batch - 1) / batch;
  std::vector<double> sqs(static_cast<size_t>(n_batches)), abs_(static_cast<size_t>(n_batches));
  core::parallel_tasks(n_batches, [&](int64_t b) {
    const int64_t i0 = b * batch, nb = std::min(batch, n - i0);
    std::vector<int64_t> idx(static_cast<size_t>(nb));
    for (int64_t k = 0; k < nb; ++k) idx[static_cast<size_t>(k)] = i0 + k;
    WindowBatch wb = data.batch(idx.data(), nb);
    Tensor out = forecast_batch(model, wb.x, wb.x_mark);  // (nb,H,C)
    SSMKIT_CHECK(out.ndim() == 3 && out.size(0) == nb && out.size(1) == H && out.size(2) == C, "evaluate: model ",
                 model.model_name(), " returned ", core::shape_str(out.shape()), "; expected (", nb, ",", H, ",",
                 C, ")");
    const float* p = out.data<float>();
    const float* y = wb.y.data<float>();  // (nb,S+H,C)
    double sq = 0.0, ab = 0.0;
    for (int64_t w = 0; w < nb; ++w)
      for (int64_t h = 0; h < H; ++h) {
        const float* ph = p + (w * H + h) * C + off;
        const float* yh = y + (w * (S + H) + S + h) * C + off;
        for (int64_t c = 0; c < N; ++c) {
          const double e = static_cast<double>(ph[c]) - static_cast<double>(yh[c]);
          sq += e * e;
          ab += std::abs(e);
        }
      }
    sqs[static_cast<size_t>(b)] = sq;
    abs_[static_cast<size_t>(b)] = ab;
  });
  for (int64_t b = 0; b < n_batches; ++b)
    fn(b, std::min(batch, n - b * batch), sqs[static_cast<size_t>(b)], abs_[static_cast<size_t>(b)]);
}

}  // namespace

ForecastMetrics evaluate(ForecastModel& model, const WindowDataset& data, int64_t batch, int64_t drop_last_compat) {
  SSMKIT_CHECK(drop_last_compat >= 0, "evaluate: drop_last_compat must be >= 0, got ", drop_last_compat);
  int64_t n = data.size();
  if (drop_last_compat > 0) n = n / drop_last_compat * drop_last_compat;
  ForecastMetrics m;
  m.windows = n;
  if (n <= 0) return m;
  double sq = 0.0, ab = 0.0;
  for_each_eval_batch(model, data, n, batch, [&](int64_t, int64_t, double s, double a) {
    sq += s;
    ab += a;
  });
  const double count = static_cast<double>(n * data.pred_len() * data.n_targets());
  m.mse = sq / count;
  m.mae = ab / count;
  m.rmse = std::sqrt(m.mse);
  return m;
}

double validation_loss(ForecastModel& model, const WindowDataset& data, int64_t batch) {
  const int64_t n = data.size();
  if (n <= 0) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0.0;
  int64_t batches = 0;
  const double per_window = static_cast<double>(data.pred_len() * data.n_targets());
  for_each_eval_batch(model, data, n, batch, [&](int64_t, int64_t nb, double s, double) {
    sum += s / (per_window * static_cast<double>(nb));
    ++batches;
  });
  return sum / static_cast<double>(batches);
}

// ---------------------------------------------------------------------------------------------------
// Learning-rate schedules

LrAdjust parse_lr_adjust(const std::string& name) {
  if (name == "type1") return LrAdjust::Type1;
  if (name == "cosine") return LrAdjust::Cosine;
  if (name == "constant") return LrAdjust::Constant;
  throw Error("lradj '" + name + "': unknown; expected type1 (halve every epoch), cosine or constant");
}

const char* lr_adjust_name(LrAdjust a) {
  return a == LrAdjust::Type1 ? "type1" : a == LrAdjust::Cosine ? "cosine" : "constant";
}

double lr_after_epoch(LrAdjust a, double lr0, int64_t epoch, int64_t epochs) {
  switch (a) {
    case LrAdjust::Type1:
      return core::tslib_type1_lr(lr0, epoch);
    case LrAdjust::Cosine:
      return lr0 / 2.0 *
             (1.0 + std::cos(static_cast<double>(epoch) / static_cast<double>(std::max<int64_t>(epochs, 1)) *
                             3.14159265358979323846));
    case LrAdjust::Constant:
      return lr0;
  }
  return lr0;
}

std::string best_checkpoint_path(const std::string& checkpoint) {
  const std::string ext = ".safetensors";
  if (checkpoint.size() > ext.size() && checkpoint.compare(checkpoint.size() - ext.size(), ext.size(), ext) == 0)
    return checkpoint.substr(0, checkpoint.size() - ext.size()) + ".best" + ext;
  return checkpoint + ".best";
}

// ---------------------------------------------------------------------------------------------------
// Training

namespace {

// The run settings a resumed checkpoint must share with the current call (stored in trainer_state.config).
json run_config(const ForecastModel& model, const ForecastData& data, const ForecastTrainOptions& o, int64_t steps) {
  return {{"task", "forecast"},
          {"model", model.config()},
          {"lr", o.lr},
          {"epochs", o.epochs},
          {"batch", o.batch},
          {"patience", o.patience},
          {"lradj", lr_adjust_name(o.lradj)},
          {"seed", o.seed},
          {"drop_last", o.drop_last},
          {"steps_per_epoch", steps},
          {"train_windows", data.split(Split::Train).size()},
          {"features", features_name(data.options().features)},
          {"channels", data.channels()}};
}

// Checks that the checkpoint at `path` was written by a run with the same settings.
void check_resume_config(const std::string& path, const json& want) {
  core::SafetensorsFile f = core::load_safetensors(path);
  json have;
  try {
    have = json::parse(f.meta_or("trainer_state", "{}")).value("config", json::object());
  } catch (const json::exception& e) {
    throw Error(path + ": bad \"trainer_state\" metadata (" + e.what() + ")");
  }
  for (const char* key : {"task", "model", "batch", "drop_last", "steps_per_epoch", "train_windows", "features",
                          "channels", "lr", "lradj", "epochs", "patience"}) {
    const json h = have.value(key, json());
    SSMKIT_CHECK(h == want.at(key), path, ": the checkpoint's run has ", key, " = ", h.dump(), "; expected ",
                 want.at(key).dump(), " (resume with the flags and data of the interrupted run)");
  }
}

}  // namespace

ForecastTrainResult train_forecaster(ForecastModel& model, const ForecastData& data, const ForecastTrainOptions& opt) {
  SSMKIT_CHECK(opt.batch > 0 && opt.epochs >= 0 && opt.patience >= 0 && opt.lr > 0 && opt.stop_after_steps >= 0,
               "train_forecaster: need batch > 0, epochs >= 0, patience >= 0, lr > 0; got batch ", opt.batch,
               ", epochs ", opt.epochs, ", patience ", opt.patience, ", lr ", opt.lr);
  SSMKIT_CHECK(opt.resume.empty() || !opt.checkpoint.empty(),
               "train_forecaster: --resume needs --checkpoint (where the continued run writes its checkpoints)");
  const Clock::time_point t_start = Clock::now();
  const WindowDataset train = data.split(Split::Train), val = data.split(Split::Val), test = data.split(Split::Test);
  const ForecastDims& d = model.dims();
  SSMKIT_CHECK(
      d.seq_len == data.options().seq_len && d.pred_len == data.options().pred_len && d.n_channels == data.n_channels(),
      data.table().path, ": model ", model.model_name(), " is built for seq_len ", d.seq_len, ", pred_len ", d.pred_len,
      ", ", d.n_channels, " channels; expected ", data.options().seq_len, ", ", data.options().pred_len, ", ",
      data.n_channels(), " (the data's)");
  const json preprocessing = forecast_preprocessing(data, opt.csv);
  const int64_t n = train.size(), B = opt.batch;
  const int64_t steps = opt.drop_last ? n / B : (n + B - 1) / B;
  SSMKIT_CHECK(steps > 0, data.table().path, ": ", n, " training windows make no full batch of ", B,
               " (drop_last); expected at least one batch (use a smaller --batch)");
  const int64_t S = data.options().label_len, H = data.options().pred_len;
  const int64_t off = data.target_offset(), N = data.n_targets();

  ForecastTrainResult r;
  r.steps_per_epoch = steps;
  std::vector<double> epoch_times;
  bool in_progress = true;

  const int64_t K = opt.shards > 0 ? opt.shards : std::max<int64_t>(1, omp_get_max_threads());
  auto training_json = [&]() {
    json hist = json::array();
    for (const EpochRecord& e : r.history)
      hist.push_back({{"epoch", e.epoch},
                      {"train_loss", number_or_null(e.train_loss)},
                      {"val_loss", number_or_null(e.val_loss)},
                      {"lr", e.lr},
                      {"seconds", e.seconds}});
    json t = {{"status", in_progress ? "in progress" : "complete"},
              {"date", utc_now()},
              {"seed", opt.seed},
              {"epochs", opt.epochs},
              {"epochs_done", r.epochs_done},
              {"best_epoch", r.best_epoch},
              {"early_stopped", r.early_stopped},
              {"optimizer",
               {{"name", "Adam"}, {"lr", opt.lr}, {"betas", {0.9, 0.999}}, {"eps", 1e-8}, {"weight_decay", 0.0}}},
              {"lradj", lr_adjust_name(opt.lradj)},
              {"batch", opt.batch},
              {"data_parallel_shards", K},
              {"patience", opt.patience},
              {"drop_last", opt.drop_last},
              {"loss", "mse"},
              {"steps_per_epoch", steps},
              {"best_val_loss", number_or_null(r.best_val_loss)},
              {"val", r.val.to_json()},
              {"test", r.test.to_json()},
              {"history", hist}};
    if (opt.training_extra.is_object())
      for (auto it = opt.training_extra.begin(); it != opt.training_extra.end(); ++it) t[it.key()] = it.value();
    return t;
  };
  auto finish = [&]() {
    in_progress = false;
    r.val = evaluate(model, val, B);
    if (opt.eval_test) r.test = evaluate(model, test, B);
    r.seconds = seconds_since(t_start);
    if (!epoch_times.empty()) {
      std::vector<double> t = epoch_times;
      std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
      r.epoch_seconds = t[t.size() / 2];
    }
    r.finished = true;
    r.training = training_json();
    if (!opt.out.empty()) save_forecaster(opt.out, model, preprocessing, r.training);
  };

  if (!model.trainable()) {  // nothing to fit: seasonal-naive
    finish();
    return r;
  }

  core::Adam optim(core::single_param_group(model, opt.lr));  // PyTorch defaults: betas (0.9, 0.999), eps 1e-8
  core::TrainerOptions to;
  to.epochs = opt.epochs;
  to.steps_per_epoch = steps;
  to.batch_size = B;
  to.checkpoint_path = opt.checkpoint;
  to.checkpoint_every = opt.checkpoint_every;
  to.best_path = opt.checkpoint.empty() ? "" : best_checkpoint_path(opt.checkpoint);
  to.log_every = 0;
  to.quiet = true;  // this loop prints its own lines (with the validation loss and the patience count)
  to.data_seed = opt.seed;
  to.config = run_config(model, data, opt, steps);
  core::Trainer trainer(model, optim, to);

  std::vector<int64_t> order(static_cast<size_t>(n));
  core::NamedTensors best;  // best-val weights (copies)
  auto keep_best = [&]() {
    best.clear();
    for (const auto& [k, t] : model.state_dict()) best.emplace_back(k, t.clone());
  };
  int64_t since_best = 0;       // epochs without improvement (TSLib EarlyStopping.counter)
  double epoch_loss_sum = 0.0;  // this epoch's step losses
  double resumed_loss_sum = 0.0;
  bool resumed_mid_epoch = false, budget_stop = false;
  Clock::time_point epoch_t0 = Clock::now();
  int64_t steps_this_call = 0;
  const double lr0 = opt.lr;

  if (!opt.resume.empty()) {
    check_resume_config(opt.resume, to.config);
    trainer.resume(opt.resume);
    const json st = trainer.trainer_state();
    resumed_loss_sum = st.value("epoch_loss_sum", 0.0);
    resumed_mid_epoch = trainer.batch() > 0;
    if (!std::isnan(trainer.best_metric())) {
      const std::string bp = best_checkpoint_path(opt.resume);
      core::SafetensorsFile bf = core::load_safetensors(bp);
      SSMKIT_CHECK(bf.meta_or("format", "") == core::kCheckpointFormat, bp,
                   ": not a training checkpoint; expected the best-val checkpoint written next to ", opt.resume);
      json bst;
      try {
        bst = json::parse(bf.meta("trainer_state"));
      } catch (const json::exception& e) {
        throw Error(bp + ": bad \"trainer_state\" metadata (" + e.what() + ")");
      }
      const double bm = bst.at("best_metric").is_number() ? bst.at("best_metric").get<double>() : NAN;
      SSMKIT_CHECK(bm == trainer.best_metric(), bp, ": best validation loss ", bm, " but ", opt.resume, " records ",
                   trainer.best_metric(), "; expected the best-val checkpoint of the same run");
      r.best_epoch = bst.at("epoch").get<int64_t>();
      r.best_val_loss = bm;
      core::NamedTensors w;
      for (const auto& [k, t] : bf.tensors)
        if (k.rfind("optim.", 0) != 0) w.emplace_back(k, t.clone());
      best = std::move(w);
      since_best = trainer.epoch() - r.best_epoch;
    }
    if (!opt.quiet)
      std::fprintf(stderr, "resumed from %s at epoch %lld step %lld (best val %.6g at epoch %lld)\n",
                   opt.resume.c_str(), static_cast<long long>(trainer.epoch() + 1),
                   static_cast<long long>(trainer.batch()), r.best_val_loss, static_cast<long long>(r.best_epoch));
  }
  r.early_stopped = opt.patience > 0 && r.best_epoch > 0 && since_best >= opt.patience;

  trainer.on_epoch_begin = [&](int64_t) {
    model.train();
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    for (int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
      std::swap(order[static_cast<size_t>(i)], order[trainer.data_rng().below(static_cast<uint64_t>(i + 1))]);
    epoch_loss_sum = resumed_mid_epoch ? resumed_loss_sum : 0.0;
    resumed_mid_epoch = false;
    epoch_t0 = Clock::now();
  };

  // Data-parallel shards: replicas of the model (rebuilt from its config; their values come from the model
  // before every step).
  std::vector<std::shared_ptr<core::Module>> replicas;
  for (int64_t k = 1; k < K; ++k) {
    core::Rng init_rng(0);  // the replica's own initial values are overwritten; global_rng() is left alone
    replicas.push_back(make_forecast_model_from_config(model.config(), init_rng));
  }
  core::DataParallel dp(model, std::move(replicas));

  trainer.step_fn = [&](int64_t epoch, int64_t b) {
    const int64_t i0 = b * B, nb = std::min(B, n - i0);
    optim.zero_grad();
    // Shard k: windows [r0, r1) of the batch; its mean MSE weighted by its share, so the shards' gradients
    // add up to the batch mean's (with one shard: the whole batch, weight 1, the plain loop).
    const double l = dp.step([&](int64_t k, core::Module& m) {
      const auto [r0, r1] = core::shard_rows(nb, dp.shards(), k);
      if (r1 <= r0) return 0.0;
      const ForecastModel& fm = static_cast<const ForecastModel&>(m);
      WindowBatch wb = train.batch(order.data() + i0 + r0, r1 - r0);
      const bool marks = fm.uses_marks() && wb.x_mark.size(2) > 0;
      Var out = fm.forward(Var(wb.x), marks ? Var(wb.x_mark) : Var());  // (nk,H,C)
      Var pred = core::slice(out, 2, off, off + N);                     // (nk,H,N)
      Tensor target = wb.y.slice(1, S, S + H).slice(2, off, off + N).contiguous();
      return core::backward_share(core::mse_loss(pred, Var(target)), r1 - r0, nb);
    });
    optim.step();
    SSMKIT_CHECK(std::isfinite(l), data.table().path, ": training diverged (loss ", l, " at epoch ", epoch + 1,
                 " step ", b + 1, "); expected a finite loss (lower --lr)");
    epoch_loss_sum += l;
    ++steps_this_call;
    const int64_t done = trainer.global_step() + 1;
    if (!opt.quiet && opt.log_every > 0 && (b + 1) % opt.log_every == 0 && b + 1 < steps) {
      const double el = seconds_since(t_start), per_step = el / static_cast<double>(steps_this_call);
      std::fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.6f | %.0f samples/s | elapsed %s | ETA %s\n",
                   static_cast<long long>(epoch + 1), static_cast<long long>(opt.epochs), static_cast<long long>(b + 1),
                   static_cast<long long>(steps), epoch_loss_sum / static_cast<double>(b + 1),
                   static_cast<double>(B) / per_step, hms(el).c_str(),
                   hms(per_step * static_cast<double>(opt.epochs * steps - done)).c_str());
    }
    if (opt.stop_after_steps > 0 && done >= opt.stop_after_steps) {
      budget_stop = true;
      trainer.request_stop();
    }
    return l;
  };

  trainer.on_epoch_end = [&](int64_t epoch) {
    const double train_secs = seconds_since(epoch_t0);
    EpochRecord e;
    e.epoch = epoch + 1;
    e.train_loss = epoch_loss_sum / static_cast<double>(steps);
    e.lr = optim.lr();
    e.seconds = train_secs;
    e.val_loss = validation_loss(model, val, B);
    e.improved = std::isfinite(e.val_loss) && (std::isnan(trainer.best_metric()) || e.val_loss < trainer.best_metric());
    epoch_times.push_back(train_secs);
    r.epochs_done = epoch + 1;
    if (e.improved) {
      keep_best();
      r.best_epoch = epoch + 1;
      r.best_val_loss = e.val_loss;
      since_best = 0;
    } else {
      ++since_best;
    }
    r.history.push_back(e);
    const bool stop = opt.patience > 0 && since_best >= opt.patience;
    if (e.improved && !opt.out.empty()) save_forecaster(opt.out, model, preprocessing, training_json());
    if (!opt.quiet) {
      const double el = seconds_since(t_start);
      const double per_step = steps_this_call > 0 ? el / static_cast<double>(steps_this_call) : 0.0;
      const int64_t left = stop ? 0 : (opt.epochs - epoch - 1) * steps;
      std::fprintf(
          stderr,
          "epoch %lld/%lld | train loss %.6f | val MSE %.6f%s | lr %.3g | %.2f s (%lld steps, %.0f samples/s)"
          " | elapsed %s | ETA %s\n",
          static_cast<long long>(epoch + 1), static_cast<long long>(opt.epochs), e.train_loss, e.val_loss,
          e.improved
              ? " (best)"
              : (" (no improvement " + std::to_string(since_best) + "/" + std::to_string(opt.patience) + ")").c_str(),
          e.lr, train_secs, static_cast<long long>(steps), train_secs > 0 ? static_cast<double>(n) / train_secs : 0.0,
          hms(el).c_str(), hms(per_step * static_cast<double>(left)).c_str());
    }
    if (stop) {
      r.early_stopped = true;
      if (!opt.quiet)
        std::fprintf(stderr, "early stopping: no validation improvement for %lld epochs (best %.6f at epoch %lld)\n",
                     static_cast<long long>(since_best), r.best_val_loss, static_cast<long long>(r.best_epoch));
      trainer.request_stop();
    } else {
      optim.set_lr(lr_after_epoch(opt.lradj, lr0, epoch + 1, opt.epochs));  // TSLib: after early stopping's check
    }
    return e.val_loss;
  };

  if (!r.early_stopped) trainer.fit();
  r.global_step = trainer.global_step();
  r.epochs_done = trainer.epoch();
  if (budget_stop && !r.early_stopped && trainer.epoch() < opt.epochs) {
    // Time-boxed: leave a checkpoint to resume from and return without the final evaluation.
    if (!opt.checkpoint.empty()) trainer.save_checkpoint(opt.checkpoint);
    r.seconds = seconds_since(t_start);
    return r;
  }
  if (!best.empty()) model.load_state_dict(best, true, "best-val weights");
  finish();
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Prediction

Forecast forecast_next(ForecastModel& model, const ForecastData& data) {
  const int64_t L = data.options().seq_len, H = data.options().pred_len, C = data.n_channels(), F = data.n_marks();
  const ForecastDims& d = model.dims();
  SSMKIT_CHECK(d.seq_len == L && d.pred_len == H && d.n_channels == C, data.table().path, ": model ",
               model.model_name(), " is built for seq_len ", d.seq_len, ", pred_len ", d.pred_len, ", ", d.n_channels,
               " channels; expected ", L, ", ", H, ", ", C, " (the data's)");
  Tensor x = Tensor::uninitialized({1, L, C});
  Tensor xm = F > 0 ? Tensor::zeros({1, L, F}) : Tensor();
  data.forecast_input(x.data<float>(), F > 0 ? xm.data<float>() : nullptr, nullptr, nullptr);
  Tensor out;
  {
    EvalModeScope eval_mode(model);
    out = forecast_batch(model, x, xm);  // (1,H,C)
  }
  const int64_t off = data.target_offset(), N = data.n_targets();
  std::vector<float> v(static_cast<size_t>(H * N));
  const float* p = out.data<float>();
  for (int64_t h = 0; h < H; ++h)
    for (int64_t c = 0; c < N; ++c) v[static_cast<size_t>(h * N + c)] = p[h * C + off + c];
  data.inverse_transform(v.data(), H, N);
  Forecast f;
  f.date_name = data.table().date_name.empty() ? "date" : data.table().date_name;
  f.times = data.future_times();
  f.dates = data.future_dates();
  f.columns.assign(data.channels().begin() + off, data.channels().begin() + off + N);
  f.values.assign(v.begin(), v.end());
  return f;
}

std::string forecast_csv(const Forecast& f) {
  std::string s = f.date_name;
  for (const auto& c : f.columns) s += "," + c;
  s += "\n";
  const size_t N = f.columns.size();
  char buf[40];
  for (size_t h = 0; h < f.dates.size(); ++h) {
    s += f.dates[h];
    for (size_t c = 0; c < N; ++c) {
      std::snprintf(buf, sizeof buf, ",%.7g", f.values[h * N + c]);
      s += buf;
    }
    s += "\n";
  }
  return s;
}

void write_forecast_csv(const std::string& path, const Forecast& f) {
  const std::string text = forecast_csv(f);
  core::write_file_atomic(path, text.data(), text.size());
}

}  // namespace ssmkit::timeseries
