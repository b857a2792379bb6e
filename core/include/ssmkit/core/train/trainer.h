// Trainer: the epoch/step loop every app shares, without owning the model's math. The caller supplies a
// step function (forward, backward, optimizer step for one batch; returns the loss) and optional epoch
// hooks; the trainer counts epochs and steps, prints progress on stderr, writes checkpoints (model
// state_dict + "optim." optimizer state + JSON trainer state in the metadata, atomically) and resumes
// from one exactly: a run interrupted after k steps and resumed ends with bit-identical parameters.
// Not here: data loading, losses, evaluation, early-stopping policy (hooks do those; see request_stop()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/train/optimizer.h"

namespace ssmkit::core {

// The metadata of a training checkpoint: "format" = kCheckpointFormat, "format_version" =
// kCheckpointVersion, "trainer_state" = JSON {epoch, step, batch, epochs, steps_per_epoch, rng,
// data_rng, data_rng_epoch_start, epoch_loss_sum, best_metric (null when none), config}.
inline constexpr const char* kCheckpointFormat = "ssmkit.train_checkpoint";
inline constexpr const char* kCheckpointVersion = "1";

struct TrainerOptions {
  int64_t epochs = 1;                // epochs to train in total (fit() stops at this epoch count)
  int64_t steps_per_epoch = 0;       // batches per epoch (> 0)
  int64_t batch_size = 1;            // samples per step, for the throughput figure only
  std::string checkpoint_path;       // where checkpoints go ("" = none)
  int64_t checkpoint_every = 0;      // also checkpoint after every N global steps (0 = epoch ends only)
  std::string best_path;             // where to save a checkpoint whenever the metric improves ("" = never)
  bool maximize_metric = false;      // the epoch-end metric improves when it grows (accuracy) not shrinks (loss)
  int64_t log_every = 50;            // progress line every N steps (plus one per epoch end); 0 = epoch ends
  bool quiet = false;                // no progress output at all
  uint64_t data_seed = 0;            // seed of data_rng()
  nlohmann::json config;             // stored verbatim in checkpoints (the run's configuration)
};

class Trainer {
 public:
  // The model and optimizer must outlive the trainer.
  Trainer(Module& model, Optimizer& optimizer, TrainerOptions options);

  // Hooks. step_fn is required; the others are optional.
  // on_epoch_begin(epoch): start-of-epoch work, e.g. shuffle the sample order with data_rng() or set a
  //   per-epoch lr. It must depend only on `epoch`, data_rng() and state the checkpoint restores: a resumed
  //   run replays it (with data_rng rewound to the epoch's start) to rebuild a mid-epoch shuffle.
  // step_fn(epoch, batch): trains on batch `batch` of epoch `epoch` (0-based) and returns its loss. Random
  //   draws must come from global_rng() or data_rng(); both are checkpointed.
  // on_epoch_end(epoch): after the last batch; returns a validation metric (NaN for none). Runs before the
  //   epoch-end checkpoint, so lr changes made here (TSLib's halving) are saved with it.
  std::function<void(int64_t epoch)> on_epoch_begin;
  std::function<double(int64_t epoch, int64_t batch)> step_fn;
  std::function<double(int64_t epoch)> on_epoch_end;

  // Trains from the current position (0, 0 or where resume() left it) to options.epochs. Returns early,
  // after the current step or epoch end, when a hook called request_stop().
  void fit();
  // Asks fit() to return after the current step (or, from on_epoch_end, after the epoch-end checkpoint).
  void request_stop() { stop_requested_ = true; }

  // Writes a checkpoint of the current position to `path` (atomically).
  void save_checkpoint(const std::string& path) const;
  // Restores model, optimizer, global_rng(), data_rng(), epoch, step and best metric from a checkpoint
  // written by save_checkpoint. Throws Error naming `path` on any defect (not safetensors, wrong format,
  // keys or shapes that do not match, bad trainer state); nothing is modified in that case.
  void resume(const std::string& path);

  int64_t epoch() const { return epoch_; }              // 0-based epoch in progress (or next)
  int64_t batch() const { return batch_; }              // batches done in that epoch
  int64_t global_step() const { return global_step_; }  // steps done in total
  double best_metric() const { return best_metric_; }   // NaN until a metric was reported
  bool last_improved() const { return last_improved_; } // the latest on_epoch_end metric was a new best
  Rng& data_rng() { return data_rng_; }
  const TrainerOptions& options() const { return options_; }

  // The checkpoint's trainer state (the "trainer_state" metadata value), e.g. for logging.
  nlohmann::json trainer_state() const;

 private:
  void log_progress(bool epoch_end, double metric);
  void end_epoch();

  Module& model_;
  Optimizer& optimizer_;
  TrainerOptions options_;
  Rng data_rng_;

  int64_t epoch_ = 0, batch_ = 0, global_step_ = 0;
  double epoch_loss_sum_ = 0.0;  // sum of this epoch's step losses (for the running mean)
  double best_metric_ = std::numeric_limits<double>::quiet_NaN();
  bool last_improved_ = false;
  bool stop_requested_ = false;
  std::vector<uint64_t> data_rng_epoch_start_;  // data_rng state before this epoch's on_epoch_begin
  bool replay_epoch_begin_ = false;              // resumed mid-epoch: fit() must replay on_epoch_begin

  // Progress accounting for this fit() call.
  std::chrono::steady_clock::time_point fit_start_;
  int64_t steps_this_fit_ = 0;
};

}  // namespace ssmkit::core
