// The classifier training run on core::Trainer: data loading and hashing, model and optimizer, the per-step
// schedule, augmented batches from the trainer's data RNG, per-epoch evaluation and learning-curve CSV, settings
// checks on --resume, and the final model file.
// Resume exactness: the shuffle is drawn in on_epoch_begin from data_rng (replayed by the Trainer), augmentation
// draws from data_rng in step order, drop path from the global RNG, the lr is a function of the global step; all
// of them are in the checkpoint, so a resumed run ends with bit-identical weights.
#include "ssmkit/vision/classifier_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <omp.h>

#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/train/data_parallel.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/core/train/schedule.h"
#include "ssmkit/core/train/trainer.h"

namespace ssmkit::vision {

using core::Tensor;
using core::Var;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string strip_suffix(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0
             ? s.substr(0, s.size() - suffix.size())
             : s;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// The flag a config key comes from, for messages.
std::string flag_of(const std::string& key) {
  if (key == "data_sha256") return "the training data (--data)";
  if (key == "model_config" || key == "preprocessing") return "the model configuration (" + key + ")";
  std::string f = "--" + key;
  std::replace(f.begin(), f.end(), '_', '-');
  return f;
}

const char* kHistoryHeader =
    "epoch,train_loss,train_accuracy,val_accuracy,test_accuracy,test_loss,lr,seconds,eval_seconds";

void write_history(const std::string& path, const std::vector<EpochRecord>& h) {
  std::ostringstream os;
  os.precision(8);
  os << kHistoryHeader << "\n";
  for (const auto& r : h)
    os << r.epoch << "," << r.train_loss << "," << r.train_accuracy << "," << r.val_accuracy << "," << r.test_accuracy
       << "," << r.test_loss << "," << r.lr << "," << r.seconds << "," << r.eval_seconds << "\n";
  const std::string s = os.str();
  core::write_file_atomic(path, s.data(), s.size());
}

// The rows of an earlier run's history up to `epochs_done` (a missing or foreign file gives none).
std::vector<EpochRecord> read_history(const std::string& path, int64_t epochs_done) {
  std::vector<EpochRecord> out;
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line) || line != kHistoryHeader) return out;
  while (std::getline(in, line)) {
    std::vector<double> v;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) {
      try {
        v.push_back(std::stod(cell));
      } catch (const std::exception&) {
        v.push_back(-1);
      }
    }
    if (v.size() != 9) continue;
    EpochRecord r;
    r.epoch = static_cast<int64_t>(v[0]);
    r.train_loss = v[1], r.train_accuracy = v[2], r.val_accuracy = v[3], r.test_accuracy = v[4], r.test_loss = v[5];
    r.lr = v[6], r.seconds = v[7], r.eval_seconds = v[8];
    if (r.epoch >= 1 && r.epoch <= epochs_done) out.push_back(r);
  }
  return out;
}

}  // namespace

TrainClassifierResult train_classifier(const TrainClassifierOptions& o) {
  SSMKIT_CHECK(!o.data.empty(), "train: no training data; expected --data DIR (idx files or an ImageFolder root)");
  SSMKIT_CHECK(!o.out.empty(), "train: no output file; expected --out MODEL.safetensors");
  SSMKIT_CHECK(o.epochs > 0 && o.batch > 0, "train: --epochs and --batch must be positive, got ", o.epochs, " and ",
               o.batch);
  SSMKIT_CHECK(o.lr > 0 && o.weight_decay >= 0 && o.warmup_epochs >= 0 && o.warmup_lr >= 0 && o.min_lr >= 0,
               "train: --lr must be positive and --weight-decay, --warmup-epochs, --warmup-lr, --min-lr not negative");
  SSMKIT_CHECK(o.label_smoothing >= 0 && o.label_smoothing < 1, "train: --label-smoothing must be in [0, 1), got ",
               o.label_smoothing);
  SSMKIT_CHECK(o.val_split >= 0 && o.val_split < 1, "train: --val-split must be in [0, 1), got ", o.val_split);
  SSMKIT_CHECK(o.limit >= 0 && o.test_limit >= 0 && o.stop_after >= 0 && o.checkpoint_every >= 0 && o.eval_batch > 0,
               "train: --limit, --test-limit, --stop-after and --checkpoint-every must not be negative");
  SSMKIT_CHECK(o.shards >= 0, "train: --shards must not be negative, got ", o.shards);
  const int64_t n_shards = o.shards > 0 ? o.shards : std::max<int64_t>(1, omp_get_max_threads());
  o.augment.validate();
  TrainClassifierResult res;
  const bool verbose = !o.quiet;

  // Model first (its preprocessing decides how the data are prepared), from the seed.
  core::manual_seed(o.seed);
  VisionModelOptions mo;
  if (o.drop_path >= 0) mo.drop_path_rate = o.drop_path;
  std::shared_ptr<VisionModel> model = make_vision_model(o.model, mo);
  const Preprocess pre = default_preprocess(*model);
  const json model_config = json::parse(model->config_json());

  // Data.
  const auto t_load = Clock::now();
  auto load_progress = [&](const std::string& what) {
    return std::function<void(int64_t, int64_t)>(
        [verbose, what, last = int64_t{-1}](int64_t done, int64_t total) mutable {
          if (!verbose || total < 1000) return;
          const int64_t pct = done * 100 / total;
          if (pct / 10 != last / 10 || done == total)
            std::fprintf(stderr, "loading %s: %lld/%lld images\n", what.c_str(), static_cast<long long>(done),
                         static_cast<long long>(total));
          last = pct;
        });
  };
  ImageDataset train = open_image_dataset(o.data, "train", pre, load_progress(o.data));
  if (!o.labels_file.empty()) {
    const std::vector<std::string> names = read_label_file(o.labels_file);
    SSMKIT_CHECK(names.size() >= train.classes.size(), o.labels_file, ": ", names.size(), " class names but ", o.data,
                 " has ", train.classes.size(), " classes; expected one name per class");
    train.classes = names;
  }
  res.data_sha256 = dataset_sha256(train);
  if (o.limit > 0 && o.limit < train.size()) {
    std::vector<int64_t> idx(static_cast<size_t>(o.limit));
    std::iota(idx.begin(), idx.end(), 0);
    train = subset(train, idx);
  }
  ImageDataset val;
  if (o.val_split > 0) std::tie(train, val) = split_dataset(train, o.val_split, o.seed ^ 0x7a11dULL);
  ImageDataset test;
  if (!o.test.empty()) {
    test = open_image_dataset(o.test, "test", pre, load_progress(o.test));
    if (o.test_limit > 0 && o.test_limit < test.size()) {
      std::vector<int64_t> idx(static_cast<size_t>(o.test_limit));
      std::iota(idx.begin(), idx.end(), 0);
      test = subset(test, idx);
    }
  }
  const int64_t K = train.num_classes();
  SSMKIT_CHECK(K >= 2, o.data, ": ", K, " class(es); expected at least 2");
  SSMKIT_CHECK(test.size() == 0 || test.num_classes() <= K, o.test, ": ", test.num_classes(),
               " classes, the training set has ", K);
  if (verbose)
    std::fprintf(stderr, "data: %lld training images (%lld classes)%s%s, prepared in %.1f s\n",
                 static_cast<long long>(train.size()), static_cast<long long>(K),
                 val.size() ? (", " + std::to_string(val.size()) + " validation").c_str() : "",
                 test.size() ? (", " + std::to_string(test.size()) + " test").c_str() : "", seconds_since(t_load));

  // The model's head must match the classes: rebuild (same seed) when the name's default differs.
  if (model->num_classes() != K) {
    core::manual_seed(o.seed);
    mo.num_classes = K;
    model = make_vision_model(o.model, mo);
  }
  model->train();
  res.n_params = model->num_parameters();
  res.train_samples = train.size();

  core::AdamW optim(core::default_param_groups(*model, o.weight_decay, o.lr));
  const int64_t U = (train.size() + o.batch - 1) / o.batch;  // all samples every epoch (no drop_last)
  res.steps_per_epoch = U;
  core::CosineSchedule sched;
  sched.t_initial = static_cast<double>(o.epochs * U);
  sched.warmup_t = o.warmup_epochs * static_cast<double>(U);
  sched.warmup_lr_init = o.warmup_lr;
  sched.lr_min = o.min_lr;

  const json run_config = {{"task", "classify"},
                           {"model", o.model},
                           {"model_config", model->config_json()},
                           {"preprocessing", json::parse(pre.to_json())},
                           {"labels", train.classes},
                           {"data_sha256", res.data_sha256},
                           {"train_samples", train.size()},
                           {"epochs", o.epochs},
                           {"batch", o.batch},
                           {"lr", o.lr},
                           {"weight_decay", o.weight_decay},
                           {"warmup_epochs", o.warmup_epochs},
                           {"warmup_lr", o.warmup_lr},
                           {"min_lr", o.min_lr},
                           {"label_smoothing", o.label_smoothing},
                           {"drop_path", model_config.value("drop_path_rate", 0.0)},
                           {"clip_grad", o.clip_grad},
                           {"shards", n_shards},
                           {"pad", o.augment.pad},
                           {"flip", o.augment.flip},
                           {"erase_prob", o.augment.erase_prob},
                           {"erase_mode", o.augment.erase_mode},
                           {"val_split", o.val_split},
                           {"limit", o.limit},
                           {"seed", o.seed},
                           {"command", o.command}};

  core::TrainerOptions to;
  to.epochs = o.epochs;
  to.steps_per_epoch = U;
  to.batch_size = o.batch;
  to.checkpoint_path = !o.checkpoint.empty() ? o.checkpoint
                       : !o.resume.empty()   ? o.resume
                                             : strip_suffix(o.out, ".safetensors") + ".train.safetensors";
  to.checkpoint_every = o.checkpoint_every;
  to.log_every = o.log_every;
  to.quiet = o.quiet;
  to.maximize_metric = true;
  to.data_seed = o.seed + 1;
  to.config = run_config;
  core::Trainer trainer(*model, optim, to);
  res.checkpoint = to.checkpoint_path;
  res.history_csv = strip_suffix(to.checkpoint_path, ".safetensors") + ".history.csv";

  if (!o.resume.empty()) {
    // Same settings or nothing: a resumed run must be the run that wrote the checkpoint.
    const core::SafetensorsFile f = core::load_safetensors(o.resume);
    json saved;
    try {
      saved = json::parse(f.meta_or("trainer_state", "{}")).value("config", json::object());
    } catch (const json::exception& e) {
      throw core::Error(o.resume + ": bad trainer_state metadata (" + e.what() + ")");
    }
    SSMKIT_CHECK(saved.value("task", "") == "classify", o.resume,
                 ": not a training checkpoint of ssm-classify train; expected the .train.safetensors file it writes");
    std::string diffs;
    if (!saved.contains("shards")) saved["shards"] = 1;  // written before shards existed: the plain loop
    for (const auto& [k, v] : run_config.items()) {
      if (k == "command") continue;
      if (!saved.contains(k) || saved[k] != v)
        diffs += std::string(diffs.empty() ? "" : "; ") + flag_of(k) + " is " + v.dump() + " here but " +
                 (saved.contains(k) ? saved[k].dump() : "absent") + " in the checkpoint";
    }
    SSMKIT_CHECK(diffs.empty(), o.resume, ": this run's settings differ from the checkpoint's: ", diffs,
                 " (a resumed run continues the same training; repeat its command with --resume)");
    trainer.resume(o.resume);
    res.history = read_history(res.history_csv, trainer.epoch());
    if (verbose)
      std::fprintf(stderr, "resumed from %s at epoch %lld, step %lld\n", o.resume.c_str(),
                   static_cast<long long>(trainer.epoch() + 1), static_cast<long long>(trainer.global_step()));
  }

  // Per-epoch state.
  std::vector<int64_t> order(static_cast<size_t>(train.size()));
  const int64_t* labels = train.labels.data<int64_t>();
  double epoch_correct = 0, epoch_seen = 0;
  auto epoch_start = Clock::now();

  trainer.on_epoch_begin = [&](int64_t) {
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = train.size() - 1; i > 0; --i)
      std::swap(order[static_cast<size_t>(i)], order[trainer.data_rng().below(static_cast<uint64_t>(i + 1))]);
    epoch_correct = epoch_seen = 0;
    epoch_start = Clock::now();
  };
  // Data-parallel shards: replicas of the model built from the same options under a throwaway generator (the
  // global stream is left alone; their values come from the model before every step, and their drop path draws
  // from global_rng() at each forward, i.e. from their shard's generator).
  std::vector<std::shared_ptr<core::Module>> replicas;
  for (int64_t k = 1; k < n_shards; ++k) {
    core::Rng init_rng(0);
    core::ThreadRngScope scope(init_rng);
    replicas.push_back(make_vision_model(o.model, mo));
  }
  core::DataParallel dp(*model, std::move(replicas));
  std::vector<int64_t> shard_correct(static_cast<size_t>(n_shards));

  trainer.step_fn = [&](int64_t, int64_t b) {
    optim.set_lr(core::cosine_lr(sched, o.lr, static_cast<double>(trainer.global_step())));
    const int64_t b0 = b * o.batch, B = std::min(o.batch, train.size() - b0);
    const int64_t* idx = order.data() + b0;
    const Tensor x = augment_batch(train, idx, B, pre, o.augment, trainer.data_rng());
    Tensor y = Tensor::uninitialized({B}, core::DType::I64);
    for (int64_t i = 0; i < B; ++i) y.data<int64_t>()[i] = labels[idx[i]];
    optim.zero_grad();
    // Shard k: images [r0, r1) of the batch, its mean loss weighted by its share (one shard: the whole batch,
    // weight 1, the plain loop).
    const double step_loss = dp.step([&](int64_t k, core::Module& mk) {
      const auto [r0, r1] = core::shard_rows(B, dp.shards(), k);
      shard_correct[static_cast<size_t>(k)] = 0;
      if (r1 <= r0) return 0.0;
      const bool whole = r0 == 0 && r1 == B;
      const Tensor xk = whole ? x : x.slice(0, r0, r1).contiguous(), yk = whole ? y : y.slice(0, r0, r1).contiguous();
      const Var logits = static_cast<VisionModel&>(mk).forward(Var(xk));
      const double share = core::backward_share(core::cross_entropy(logits, yk, -100, o.label_smoothing), r1 - r0, B);
      const float* lg = logits.value().data<float>();
      for (int64_t i = 0; i < r1 - r0; ++i)
        shard_correct[static_cast<size_t>(k)] +=
            (std::max_element(lg + i * K, lg + (i + 1) * K) - (lg + i * K)) == yk.data<int64_t>()[i];
      return share;
    });
    if (o.clip_grad > 0) core::clip_grad_norm_(optim.parameters(), o.clip_grad);
    optim.step();
    for (int64_t c : shard_correct) epoch_correct += static_cast<double>(c);
    epoch_seen += static_cast<double>(B);
    // --stop-after: mid-epoch here; at an epoch's last step the epoch end (evaluation, checkpoint) runs first
    if (o.stop_after > 0 && trainer.global_step() + 1 >= o.stop_after && trainer.batch() + 1 < U) trainer.request_stop();
    return step_loss;
  };
  trainer.on_epoch_end = [&](int64_t epoch) {
    EpochRecord r;
    r.epoch = epoch + 1;
    r.seconds = seconds_since(epoch_start);
    r.lr = optim.lr();
    r.train_accuracy = epoch_seen > 0 ? epoch_correct / epoch_seen : 0;
    const auto t_eval = Clock::now();
    double metric = std::nan("");
    if (val.size() > 0) {
      r.val_accuracy = evaluate_classifier(*model, val, pre, o.eval_batch).accuracy();
      metric = r.val_accuracy;
    }
    if (test.size() > 0) {
      res.test = evaluate_classifier(*model, test, pre, o.eval_batch);
      r.test_accuracy = res.test.accuracy();
      r.test_loss = res.test.mean_loss();
      if (val.size() == 0) metric = r.test_accuracy;
    }
    r.eval_seconds = seconds_since(t_eval);
    // the epoch's mean step loss, from the Trainer's running sum (restored on a mid-epoch resume)
    r.train_loss = trainer.trainer_state().value("epoch_loss_sum", 0.0) /
                   static_cast<double>(std::max<int64_t>(1, trainer.batch()));
    res.history.push_back(r);
    write_history(res.history_csv, res.history);
    if (verbose) {
      std::fprintf(stderr, "epoch %lld/%lld: train loss %.4f acc %.4f", static_cast<long long>(r.epoch),
                   static_cast<long long>(o.epochs), r.train_loss, r.train_accuracy);
      if (r.val_accuracy >= 0) std::fprintf(stderr, " | val acc %.4f", r.val_accuracy);
      if (r.test_accuracy >= 0) std::fprintf(stderr, " | test acc %.4f loss %.4f", r.test_accuracy, r.test_loss);
      std::fprintf(stderr, " | %.1f s train, %.1f s eval\n", r.seconds, r.eval_seconds);
    }
    epoch_start = Clock::now();
    if (o.stop_after > 0 && trainer.global_step() >= o.stop_after) trainer.request_stop();
    return metric;
  };

  trainer.fit();
  res.steps = trainer.global_step();
  res.epochs_done = trainer.epoch();
  for (const auto& r : res.history) res.train_seconds += r.seconds;
  if (trainer.epoch() < o.epochs) {  // stopped early (--stop-after): keep the exact position
    trainer.save_checkpoint(to.checkpoint_path);
    if (verbose)
      std::fprintf(stderr, "stopped after step %lld; continue with --resume %s\n", static_cast<long long>(res.steps),
                   to.checkpoint_path.c_str());
    return res;
  }
  if (test.size() > 0 && res.test.n == 0) res.test = evaluate_classifier(*model, test, pre, o.eval_batch);

  json training = {{"command", o.command},
                   {"data", o.data},
                   {"data_sha256", res.data_sha256},
                   {"train_samples", train.size()},
                   {"seed", o.seed},
                   {"epochs", o.epochs},
                   {"steps", res.steps},
                   {"date", utc_now()},
                   {"train_seconds", res.train_seconds},
                   {"recipe", run_config}};
  training["recipe"].erase("model_config");
  training["recipe"].erase("preprocessing");
  training["recipe"].erase("labels");
  training["recipe"].erase("command");
  if (!res.history.empty()) {
    training["train_loss"] = res.history.back().train_loss;
    training["train_accuracy"] = res.history.back().train_accuracy;
    if (res.history.back().val_accuracy >= 0) training["val_accuracy"] = res.history.back().val_accuracy;
  }
  if (res.test.n > 0) {
    training["test"] = o.test;
    training["test_samples"] = res.test.n;
    training["test_accuracy"] = res.test.accuracy();
    training["test_loss"] = res.test.mean_loss();
  }
  model->eval();
  save_classifier(o.out, *model, o.model, pre, train.classes, training);
  res.finished = true;
  if (verbose)
    std::fprintf(stderr, "wrote %s (%lld parameters%s)\n", o.out.c_str(), static_cast<long long>(res.n_params),
                 res.test.n > 0 ? (", test accuracy " + std::to_string(res.test.accuracy())).c_str() : "");
  return res;
}

}  // namespace ssmkit::vision
