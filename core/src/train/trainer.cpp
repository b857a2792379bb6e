// Trainer: the epoch/step loop, stderr progress lines, atomic safetensors checkpoints (model state_dict,
// "optim."-prefixed optimizer state, JSON trainer state in the metadata) and exact resume, which rewinds
// data_rng to the interrupted epoch's start, replays on_epoch_begin (to rebuild the shuffle) and then
// restores every random state as it was at the checkpoint.
// Not here: anything about what a step computes.
#include "ssmkit/core/train/trainer.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "ssmkit/core/io/safetensors.h"

namespace ssmkit::core {

using nlohmann::json;

static constexpr const char* kOptimPrefix = "optim.";

Trainer::Trainer(Module& model, Optimizer& optimizer, TrainerOptions options)
    : model_(model), optimizer_(optimizer), options_(std::move(options)), data_rng_(options_.data_seed) {
  SSMKIT_CHECK(options_.epochs >= 0, "Trainer: epochs must be >= 0, got ", options_.epochs);
  SSMKIT_CHECK(options_.steps_per_epoch > 0, "Trainer: steps_per_epoch must be positive, got ",
               options_.steps_per_epoch);
  SSMKIT_CHECK(options_.batch_size > 0, "Trainer: batch_size must be positive, got ", options_.batch_size);
  SSMKIT_CHECK(options_.checkpoint_every >= 0 && options_.log_every >= 0,
               "Trainer: checkpoint_every and log_every must be >= 0, got ", options_.checkpoint_every, " and ",
               options_.log_every);
}

// ---------------------------------------------------------------------------------------------------------
// The loop

void Trainer::fit() {
  SSMKIT_CHECK(static_cast<bool>(step_fn), "Trainer::fit: step_fn is not set");
  stop_requested_ = false;
  fit_start_ = std::chrono::steady_clock::now();
  steps_this_fit_ = 0;
  const int64_t n_steps = options_.steps_per_epoch;
  while (epoch_ < options_.epochs) {
    if (replay_epoch_begin_) {
      // Resumed mid-epoch: rebuild what on_epoch_begin set up (the shuffle) from the epoch's starting data
      // RNG, then put every random state and lr back to the checkpoint's values.
      replay_epoch_begin_ = false;
      if (on_epoch_begin) {
        const std::vector<uint64_t> data_now = data_rng_.state(), global_now = global_rng().state();
        std::vector<double> lrs;
        for (size_t g = 0; g < optimizer_.n_groups(); ++g) lrs.push_back(optimizer_.lr(g));
        data_rng_.set_state(data_rng_epoch_start_);
        on_epoch_begin(epoch_);
        data_rng_.set_state(data_now);
        global_rng().set_state(global_now);
        for (size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, lrs[g]);
      }
    } else if (batch_ == 0) {
      data_rng_epoch_start_ = data_rng_.state();
      epoch_loss_sum_ = 0.0;
      if (on_epoch_begin) on_epoch_begin(epoch_);
    }
    while (batch_ < n_steps) {
      const double loss = step_fn(epoch_, batch_);
      ++batch_;
      ++global_step_;
      ++steps_this_fit_;
      epoch_loss_sum_ += loss;
      if (batch_ < n_steps) {  // the epoch end logs and checkpoints anyway
        if (options_.log_every > 0 && global_step_ % options_.log_every == 0) log_progress(false, 0.0);
        if (options_.checkpoint_every > 0 && global_step_ % options_.checkpoint_every == 0 &&
            !options_.checkpoint_path.empty())
          save_checkpoint(options_.checkpoint_path);
      }
      if (stop_requested_) return;
    }
    end_epoch();
    if (stop_requested_) return;
  }
}

void Trainer::end_epoch() {
  const double metric = on_epoch_end ? on_epoch_end(epoch_) : std::numeric_limits<double>::quiet_NaN();
  last_improved_ = false;
  if (!std::isnan(metric) &&
      (std::isnan(best_metric_) || (options_.maximize_metric ? metric > best_metric_ : metric < best_metric_))) {
    best_metric_ = metric;
    last_improved_ = true;
  }
  log_progress(true, metric);
  ++epoch_;
  batch_ = 0;
  epoch_loss_sum_ = 0.0;
  data_rng_epoch_start_ = data_rng_.state();  // the next epoch starts from here
  if (!options_.checkpoint_path.empty()) save_checkpoint(options_.checkpoint_path);
  if (last_improved_ && !options_.best_path.empty()) save_checkpoint(options_.best_path);
}

// ---------------------------------------------------------------------------------------------------------
// Progress

static std::string hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

void Trainer::log_progress(bool epoch_end, double metric) {
  if (options_.quiet) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_start_).count();
  const double steps_per_s = elapsed > 0 ? static_cast<double>(steps_this_fit_) / elapsed : 0.0;
  const int64_t remaining = options_.epochs * options_.steps_per_epoch - global_step_;
  const double eta = steps_per_s > 0 ? static_cast<double>(remaining) / steps_per_s : -1.0;
  const double mean_loss = batch_ > 0 ? epoch_loss_sum_ / static_cast<double>(batch_) : 0.0;
  const double samples_per_s = steps_per_s * static_cast<double>(options_.batch_size);
  const long long e = static_cast<long long>(epoch_ + 1), ne = static_cast<long long>(options_.epochs);
  if (!epoch_end) {
    std::fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.6g lr %.3g | %.1f samples/s | elapsed %s | eta %s\n",
                 e, ne, static_cast<long long>(batch_), static_cast<long long>(options_.steps_per_epoch), mean_loss,
                 optimizer_.lr(0), samples_per_s, hms(elapsed).c_str(), hms(eta).c_str());
  } else if (std::isnan(metric)) {
    std::fprintf(stderr, "epoch %lld/%lld done: loss %.6g lr %.3g | %.1f samples/s | elapsed %s | eta %s\n", e, ne,
                 mean_loss, optimizer_.lr(0), samples_per_s, hms(elapsed).c_str(), hms(eta).c_str());
  } else {
    std::fprintf(stderr, "epoch %lld/%lld done: loss %.6g metric %.6g%s lr %.3g | %.1f samples/s | elapsed %s | eta %s\n",
                 e, ne, mean_loss, metric, last_improved_ ? " (best)" : "", optimizer_.lr(0), samples_per_s,
                 hms(elapsed).c_str(), hms(eta).c_str());
  }
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints

json Trainer::trainer_state() const {
  json js;
  js["epoch"] = epoch_;
  js["batch"] = batch_;
  js["step"] = global_step_;
  js["epochs"] = options_.epochs;
  js["steps_per_epoch"] = options_.steps_per_epoch;
  js["rng"] = global_rng().state();
  js["data_rng"] = data_rng_.state();
  js["data_rng_epoch_start"] = data_rng_epoch_start_.empty() ? data_rng_.state() : data_rng_epoch_start_;
  js["epoch_loss_sum"] = epoch_loss_sum_;
  if (std::isnan(best_metric_))
    js["best_metric"] = nullptr;
  else
    js["best_metric"] = best_metric_;
  js["config"] = options_.config;
  return js;
}

void Trainer::save_checkpoint(const std::string& path) const {
  NamedTensors tensors = model_.state_dict();
  for (const auto& [k, t] : tensors)
    SSMKIT_CHECK(k.rfind(kOptimPrefix, 0) != 0, "Trainer::save_checkpoint: model key \"", k,
                 "\" collides with the optimizer prefix \"", kOptimPrefix, "\"");
  for (auto& [k, t] : optimizer_.state_dict()) tensors.emplace_back(kOptimPrefix + k, t);
  const Metadata metadata = {{"format", kCheckpointFormat},
                             {"format_version", kCheckpointVersion},
                             {"trainer_state", trainer_state().dump()}};
  save_safetensors(path, tensors, metadata);
}

// Checks that `source` loads into `m` strictly (keys and shapes), throwing as Module::load_state_dict
// would, but before anything is modified.
static void check_model_keys(const Module& m, const NamedTensors& source, const std::string& path) {
  std::map<std::string, Shape> src;
  for (const auto& [k, t] : source) src[k] = t.shape();
  LoadReport rep;
  std::map<std::string, bool> mine;
  for (const auto& [k, t] : m.state_dict()) {
    mine[k] = true;
    auto it = src.find(k);
    if (it == src.end())
      rep.missing.push_back(k);
    else if (it->second != t.shape())
      rep.mismatched.push_back(k + ": source " + shape_str(it->second) + " vs module " + shape_str(t.shape()));
  }
  for (const auto& [k, s] : src)
    if (!mine.count(k)) rep.unexpected.push_back(k);
  SSMKIT_CHECK(rep.ok(), path, ": the checkpoint's model state does not match the model:", rep.str());
}

void Trainer::resume(const std::string& path) {
  SafetensorsFile f = load_safetensors(path);  // validates the file; errors name it
  const std::string format = f.meta_or("format", "");
  SSMKIT_CHECK(format == kCheckpointFormat, path, ": not an ssmkit training checkpoint (metadata \"format\" is \"",
               format, "\", expected \"", kCheckpointFormat, "\"; write it with Trainer::save_checkpoint)");
  const std::string version = f.meta_or("format_version", "");
  SSMKIT_CHECK(version == kCheckpointVersion, path, ": training checkpoint format_version \"", version,
               "\" is not supported (this build reads \"", kCheckpointVersion, "\")");
  SSMKIT_CHECK(f.has_meta("trainer_state"), path, ": the checkpoint has no \"trainer_state\" metadata");

  // Trainer state, fully parsed and checked before anything changes.
  int64_t epoch = 0, batch = 0, step = 0;
  double loss_sum = 0.0, best = std::numeric_limits<double>::quiet_NaN();
  std::vector<uint64_t> rng, data, data_start;
  try {
    const json js = json::parse(f.meta("trainer_state"));
    epoch = js.at("epoch").get<int64_t>();
    batch = js.at("batch").get<int64_t>();
    step = js.at("step").get<int64_t>();
    rng = js.at("rng").get<std::vector<uint64_t>>();
    data = js.at("data_rng").get<std::vector<uint64_t>>();
    data_start = js.at("data_rng_epoch_start").get<std::vector<uint64_t>>();
    loss_sum = js.at("epoch_loss_sum").get<double>();
    if (!js.at("best_metric").is_null()) best = js.at("best_metric").get<double>();
  } catch (const json::exception& e) {
    throw Error(path + ": bad \"trainer_state\" metadata (" + e.what() + ")");
  }
  SSMKIT_CHECK(epoch >= 0 && step >= 0 && batch >= 0 && batch <= options_.steps_per_epoch, path,
               ": trainer_state has epoch ", epoch, ", batch ", batch, ", step ", step,
               " (batch must be within steps_per_epoch = ", options_.steps_per_epoch, ")");
  try {
    Rng probe;
    probe.set_state(rng);
    probe.set_state(data);
    probe.set_state(data_start);
  } catch (const Error& e) {
    throw Error(path + ": bad random state in trainer_state (" + e.what() + ")");
  }

  NamedTensors model_part, optim_part;
  for (const auto& [k, t] : f.tensors) {
    if (k.rfind(kOptimPrefix, 0) == 0)
      optim_part.emplace_back(k.substr(std::string(kOptimPrefix).size()), t);
    else
      model_part.emplace_back(k, t);
  }
  check_model_keys(model_, model_part, path);
  optimizer_.load_state_dict(optim_part, path);  // validates everything before changing anything
  model_.load_state_dict(model_part, true, path);

  global_rng().set_state(rng);
  data_rng_.set_state(data);
  data_rng_epoch_start_ = data_start;
  epoch_ = epoch;
  batch_ = batch;
  global_step_ = step;
  epoch_loss_sum_ = loss_sum;
  best_metric_ = best;
  last_improved_ = false;
  replay_epoch_begin_ = batch > 0;
}

}  // namespace ssmkit::core
