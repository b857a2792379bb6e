// Selective copying: batch generator and the training run (model, loss, optimizer, schedule, evaluation,
// learning curve, checkpoints) on the core engine.
#include "ssmkit/core/tasks/selective_copying.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/nn/mamba.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/core/train/schedule.h"
#include "ssmkit/core/train/trainer.h"

namespace ssmkit::core {

void make_selective_copying_batch(Tensor& tokens, Tensor& targets, const SelectiveCopyingTask& t, int64_t batch,
                                  Rng& rng) {
  SSMKIT_CHECK(t.n_memorize > 0 && t.n_memorize <= t.context_len && t.n_symbols > 0 && batch > 0,
               "selective copying: need 0 < n_memorize <= context_len and n_symbols > 0, got n_memorize ",
               t.n_memorize, ", context_len ", t.context_len, ", n_symbols ", t.n_symbols);
  const int64_t L = t.seq_len(), M = t.n_memorize;
  tokens = Tensor::zeros({batch, L}, DType::I64);
  targets = Tensor::full({batch, L}, -100.0, DType::I64);
  int64_t* tok = tokens.data<int64_t>();
  int64_t* tgt = targets.data<int64_t>();
  std::vector<int64_t> pos(static_cast<size_t>(t.context_len));
  for (int64_t b = 0; b < batch; ++b) {
    // choose M distinct positions (partial Fisher-Yates), then keep them in order
    for (int64_t i = 0; i < t.context_len; ++i) pos[i] = i;
    for (int64_t i = 0; i < M; ++i) std::swap(pos[i], pos[i + static_cast<int64_t>(rng.below(t.context_len - i))]);
    std::sort(pos.begin(), pos.begin() + M);
    for (int64_t i = 0; i < M; ++i) {
      const int64_t sym = 1 + static_cast<int64_t>(rng.below(t.n_symbols));
      tok[b * L + pos[i]] = sym;
      tok[b * L + t.context_len + i] = t.n_symbols + 1;  // marker
      tgt[b * L + t.context_len + i] = sym;
    }
  }
}

namespace {

// Mean loss and token accuracy at the marker positions.
std::pair<double, double> evaluate(const MambaLMHeadModel& model, const std::vector<std::pair<Tensor, Tensor>>& data) {
  NoGradGuard ng;
  double loss = 0, correct = 0, total = 0;
  for (const auto& [tokens, targets] : data) {
    Var logits = model.forward(tokens);  // (B,L,V)
    const int64_t V = logits.size(2);
    Var flat = reshape(logits, {-1, V});
    loss += cross_entropy(flat, targets.reshape({-1})).value().to_double_vector()[0];
    const float* lg = flat.value().data<float>();
    const int64_t* tg = targets.data<int64_t>();
    for (int64_t i = 0; i < flat.size(0); ++i) {
      if (tg[i] < 0) continue;
      const float* row = lg + i * V;
      correct += (std::max_element(row, row + V) - row) == tg[i];
      total += 1;
    }
  }
  return {loss / static_cast<double>(data.size()), correct / std::max(1.0, total)};
}

}  // namespace

SelectiveCopyingResult train_selective_copying(const SelectiveCopyingOptions& opt) {
  SSMKIT_CHECK(opt.steps > 0 && opt.batch > 0 && opt.eval_every > 0, "selective copying: steps, batch and eval_every must be positive");
  manual_seed(opt.seed);
  MambaLMConfig cfg;
  cfg.d_model = opt.d_model;
  cfg.n_layer = opt.n_layer;
  cfg.vocab_size = opt.task.vocab_size();
  cfg.mixer.d_state = opt.d_state;
  MambaLMHeadModel model(cfg, global_rng());

  AdamW optim(default_param_groups(model, opt.weight_decay, opt.lr));
  CosineSchedule sched;
  sched.t_initial = static_cast<double>(opt.steps);
  sched.warmup_t = static_cast<double>(opt.warmup_steps);
  sched.lr_min = opt.lr * 0.01;

  // Held-out batches, drawn from their own stream so they never change with training settings.
  Rng eval_rng(opt.seed ^ 0x5e1ec71feULL);
  std::vector<std::pair<Tensor, Tensor>> eval_data(static_cast<size_t>(opt.eval_batches));
  for (auto& [tok, tgt] : eval_data) make_selective_copying_batch(tok, tgt, opt.task, opt.batch, eval_rng);

  TrainerOptions to;
  to.steps_per_epoch = opt.eval_every;
  to.epochs = (opt.steps + opt.eval_every - 1) / opt.eval_every;
  to.batch_size = opt.batch;
  to.checkpoint_path = opt.checkpoint;
  to.quiet = opt.quiet;
  to.data_seed = opt.seed + 1;
  to.log_every = opt.eval_every / 2;
  to.maximize_metric = true;
  to.config = {{"task", "selective_copying"},
               {"context_len", opt.task.context_len},
               {"n_memorize", opt.task.n_memorize},
               {"n_symbols", opt.task.n_symbols},
               {"d_model", opt.d_model},
               {"n_layer", opt.n_layer},
               {"d_state", opt.d_state},
               {"steps", opt.steps},
               {"batch", opt.batch},
               {"lr", opt.lr},
               {"weight_decay", opt.weight_decay},
               {"warmup_steps", opt.warmup_steps},
               {"seed", opt.seed},
               {"command", opt.command}};
  Trainer trainer(model, optim, to);

  // Learning curve: rows kept in memory and rewritten atomically after each evaluation.
  std::vector<std::string> curve;
  const std::string header = "step,train_loss,eval_loss,eval_accuracy,lr,seconds";
  if (opt.resume) {
    SSMKIT_CHECK(!opt.checkpoint.empty(), "selective copying: --resume needs a checkpoint path");
    trainer.resume(opt.checkpoint);
    if (!opt.curve_csv.empty()) {  // keep the rows up to the resumed step
      std::ifstream in(opt.curve_csv);
      std::string line;
      while (std::getline(in, line))
        if (line != header && !line.empty() && std::stoll(line.substr(0, line.find(','))) <= trainer.global_step())
          curve.push_back(line);
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  double window_loss = 0;
  int64_t window_n = 0;
  SelectiveCopyingResult res;

  trainer.step_fn = [&](int64_t, int64_t) {
    optim.set_lr(cosine_lr(sched, opt.lr, static_cast<double>(trainer.global_step())));
    Tensor tokens, targets;
    make_selective_copying_batch(tokens, targets, opt.task, opt.batch, trainer.data_rng());
    Var logits = model.forward(tokens);
    Var loss = cross_entropy(reshape(logits, {-1, logits.size(2)}), targets.reshape({-1}));
    optim.zero_grad();
    loss.backward();
    clip_grad_norm_(optim.parameters(), 1.0);
    optim.step();
    const double l = loss.value().to_double_vector()[0];
    window_loss += l;
    ++window_n;
    return l;
  };
  trainer.on_epoch_end = [&](int64_t) {
    auto [eval_loss, acc] = evaluate(model, eval_data);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.train_loss = window_n ? window_loss / static_cast<double>(window_n) : 0.0;
    res.eval_loss = eval_loss;
    res.eval_accuracy = acc;
    std::ostringstream row;
    row << trainer.global_step() << "," << res.train_loss << "," << eval_loss << "," << acc << "," << optim.lr() << ","
        << secs;
    curve.push_back(row.str());
    window_loss = 0;
    window_n = 0;
    if (!opt.curve_csv.empty()) {
      std::string text = header + "\n";
      for (const auto& r : curve) text += r + "\n";
      write_file_atomic(opt.curve_csv, text.data(), text.size());
    }
    if (!opt.quiet)
      std::fprintf(stderr, "eval at step %lld: loss %.4f, accuracy %.4f\n", static_cast<long long>(trainer.global_step()),
                   eval_loss, acc);
    if (opt.stop_after > 0 && trainer.global_step() >= opt.stop_after) trainer.request_stop();
    return acc;
  };
  trainer.fit();

  res.steps = trainer.global_step();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.n_params = model.num_parameters();
  if (!opt.model_out.empty()) {
    nlohmann::json config = to.config;
    save_module(opt.model_out, model,
                {{"format", "ssmkit.checkpoint"},
                 {"format_version", "1"},
                 {"model", "mamba-lm"},
                 {"config", config.dump()},
                 {"training", nlohmann::json{{"command", opt.command},
                                             {"steps", res.steps},
                                             {"eval_accuracy", res.eval_accuracy},
                                             {"eval_loss", res.eval_loss}}
                                  .dump()}});
  }
  return res;
}

}  // namespace ssmkit::core
