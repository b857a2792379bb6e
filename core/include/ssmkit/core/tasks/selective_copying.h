// The selective-copying task of the Mamba paper (Gu & Dao 2023, §4.1.1): a context of `context_len`
// tokens holds `n_memorize` data tokens at random positions among noise tokens; after it come
// `n_memorize` marker tokens, at which the model must output the data tokens in their order. Solving it
// needs content-aware (selective) state updates, so it is the standard sanity check that a Mamba stack
// and its training engine work. Token ids: 0 noise, 1..n_symbols data, n_symbols + 1 marker.
// The trainer here is a small end-to-end use of the engine: MambaLMHeadModel, cross-entropy on the
// marker positions, AdamW with warmup + cosine, exact --resume from checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/core/random.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

struct SelectiveCopyingTask {
  int64_t context_len = 64;  // tokens before the markers
  int64_t n_memorize = 8;    // data tokens to copy
  int64_t n_symbols = 8;     // distinct data tokens
  int64_t vocab_size() const { return n_symbols + 2; }
  int64_t seq_len() const { return context_len + n_memorize; }
};

// tokens (B, seq_len) I64 and targets (B, seq_len) I64: the data tokens at the marker positions, -100
// (ignored by cross_entropy) elsewhere. Draws from rng.
void make_selective_copying_batch(Tensor& tokens, Tensor& targets, const SelectiveCopyingTask& task, int64_t batch,
                                  Rng& rng);

struct SelectiveCopyingOptions {
  SelectiveCopyingTask task;
  int64_t d_model = 64, n_layer = 2, d_state = 16;
  int64_t steps = 4000, batch = 32;
  double lr = 2e-3, weight_decay = 0.1;
  int64_t warmup_steps = 200;
  int64_t eval_every = 200;    // steps per "epoch": evaluation, curve row and checkpoint
  int64_t eval_batches = 8;    // fixed held-out batches (seeded apart from training data)
  uint64_t seed = 0;
  std::string checkpoint;      // checkpoint path ("" = none); --resume continues from it
  bool resume = false;
  int64_t stop_after = 0;      // stop (after the evaluation and checkpoint) once this many steps are done; 0 = never
  std::string curve_csv;       // step,train_loss,eval_loss,eval_accuracy,lr,seconds ("" = none)
  std::string model_out;       // final model (state_dict, official MambaLMHeadModel keys) ("" = none)
  bool quiet = false;
  std::string command;         // recorded in the checkpoints
};

struct SelectiveCopyingResult {
  int64_t steps = 0;
  double train_loss = 0, eval_loss = 0, eval_accuracy = 0, seconds = 0;
  int64_t n_params = 0;
};

SelectiveCopyingResult train_selective_copying(const SelectiveCopyingOptions& opt);

}  // namespace ssmkit::core
