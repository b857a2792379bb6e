// Training an image classifier from scratch on the core engine: a named vision model, an in-memory dataset (idx
// files or ImageFolder), augmentation (random crop with zero padding, flip, random erasing) drawn from the
// Trainer's data RNG, AdamW with timm's weight-decay split, timm's warmup + cosine schedule stepped per update,
// cross-entropy with label smoothing, drop path from the global RNG; an optional test set (and validation
// split) evaluated after every epoch; a training checkpoint after every epoch (exact --resume, core::Trainer);
// a learning-curve CSV beside it; the final model file with full metadata (classifier.h), written atomically.
// Defaults are the Fashion-MNIST recipe for the micro models (92.95% with the official GroupMamba class
// in PyTorch): AdamW lr 2e-3, wd 0.05, 1 warmup epoch + cosine over 22 epochs, label smoothing 0.1, batch 128,
// pad-2 crop + flip, drop path 0.05.
// Not here: mixup/cutmix, EMA weights, distillation, multi-process data loading.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/vision/augment.h"
#include "ssmkit/vision/classifier.h"

namespace ssmkit::vision {

struct TrainClassifierOptions {
  std::string data;  // training set: idx folder/file (train split) or ImageFolder root
  std::string test;  // optional test set (idx: the t10k split), evaluated after every epoch
  std::string model = "groupmamba-micro";
  int64_t epochs = 22;
  int64_t batch = 128;
  double lr = 2e-3;            // peak learning rate
  double weight_decay = 0.05;  // AdamW, not applied to norms, biases, A_logs/Ds (timm's split)
  double warmup_epochs = 1;    // linear warmup from warmup_lr, per step
  double warmup_lr = 1e-6;
  double min_lr = 1e-5;  // the cosine's floor (timm CosineLRScheduler, t_in_epochs = false)
  double label_smoothing = 0.1;
  double drop_path = -1;         // < 0: the model's default (0.05 for the micro models)
  double clip_grad = 0;          // max global gradient norm (0: no clipping)
  // Data-parallel shards per batch (core/train/data_parallel.h), trained at once on their own threads; 0: one per
  // OpenMP thread, 1: the plain loop. The arithmetic depends on the shard count, not on the thread count
  // (BatchNorm normalizes each shard by its own statistics and keeps shard 0's running statistics, as PyTorch
  // DistributedDataParallel without SyncBatchNorm does).
  int64_t shards = 0;
  AugmentOptions augment;        // pad 2, flip, no erasing
  double val_split = 0;          // fraction of the training set held out for validation (seeded)
  uint64_t seed = 0;             // weights, drop path (global RNG) and data order/augmentation (seed + 1)
  std::string out;               // final model file (required)
  std::string checkpoint;        // training checkpoint; "" -> <out without .safetensors>.train.safetensors
  std::string resume;            // continue exactly from this training checkpoint
  int64_t checkpoint_every = 0;  // also checkpoint every N steps (0: at epoch ends only)
  int64_t stop_after = 0;        // stop (checkpointed) once this many steps are done in total; 0: never
  int64_t limit = 0;             // use only the first N training samples (0: all)
  int64_t test_limit = 0;        // use only the first N test samples (0: all)
  int64_t eval_batch = 500;
  int64_t log_every = 50;  // progress line every N steps
  bool quiet = false;
  std::string labels_file;  // class names overriding the dataset's
  std::string command;      // recorded in the checkpoints and the model file
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0, lr = 0;
  double val_accuracy = -1, test_accuracy = -1, test_loss = -1;  // -1: not evaluated
  double seconds = 0;       // training time of the epoch (steps only; for an epoch resumed mid-way,
                            // the part after the resume)
  double eval_seconds = 0;  // evaluation time after it
};

struct TrainClassifierResult {
  bool finished = false;  // all epochs done and the model file written
  int64_t epochs_done = 0, steps = 0, n_params = 0, train_samples = 0, steps_per_epoch = 0;
  double train_seconds = 0;          // steps only, summed over the epochs of the history (resumed runs included)
  std::vector<EpochRecord> history;  // one per finished epoch (also those of earlier runs of a resumed training)
  EvalResult test;                   // the last test evaluation (n == 0 when there is no test set)
  std::string checkpoint, history_csv, data_sha256;
};

// Runs (or resumes) a training; prints progress on stderr unless quiet. Throws Error naming the file or option
// at fault (unreadable data, a checkpoint from different settings: "--batch 64 but the checkpoint has 128").
TrainClassifierResult train_classifier(const TrainClassifierOptions& o);

}  // namespace ssmkit::vision
