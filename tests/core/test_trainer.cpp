// Trainer: a tiny linear regression (elementwise ops, AdamW with weight-decay groups, warmup + cosine lr
// per step, gradient clipping, shuffled mini-batches from data_rng, input noise from global_rng) trained
// straight through versus interrupted mid-epoch (and at an epoch end) and resumed from the checkpoint in
// a fresh model/optimizer/trainer: the parameters must be bit-identical. Also the checkpoint's keys and
// metadata, progress output, and errors for corrupt or mismatched checkpoints.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/train/init.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/core/train/schedule.h"
#include "ssmkit/core/train/trainer.h"

using namespace ssmkit::core;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSamples = 37, kIn = 4, kBatch = 5;
constexpr int64_t kStepsPerEpoch = (kSamples + kBatch - 1) / kBatch;  // 8, the last batch has 2 samples
constexpr int64_t kEpochs = 3;

// y = x . w + b, x (B, in) -> y (B). PyTorch default init from global_rng().
struct LinReg : Module {
  Var w, b;
  explicit LinReg(int64_t in) {
    w = register_parameter("weight", Tensor::zeros({1, in}));
    b = register_parameter("bias", Tensor::zeros({1}));
    default_init_(w.value(), b.value(), global_rng());
  }
  Var forward(const Var& x) const { return sum(x * w, {1}) + b; }
};

struct Data {
  Tensor x, y;  // (N, in), (N)
};
Data make_data() {
  Rng rng(2024);
  Data d{Tensor::empty({kSamples, kIn}), Tensor::empty({kSamples})};
  const float w_true[kIn] = {1.5f, -2.0f, 0.5f, 3.0f};
  for (int64_t i = 0; i < kSamples; ++i) {
    float acc = 0.3f;
    for (int64_t j = 0; j < kIn; ++j) {
      d.x.at<float>({i, j}) = static_cast<float>(rng.normal());
      acc += w_true[j] * d.x.at<float>({i, j});
    }
    d.y.at<float>({i}) = acc + 0.1f * static_cast<float>(rng.normal());
  }
  return d;
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("ssmkit_test_trainer_" + std::to_string(::getpid()) + "_" + name)).string();
}

// One complete training setup: model, optimizer, trainer and the hooks of a typical app.
struct Rig {
  Data data = make_data();
  std::unique_ptr<LinReg> model;
  std::unique_ptr<AdamW> opt;
  std::unique_ptr<Trainer> trainer;
  std::vector<int64_t> order;
  int64_t stop_after_step = -1;   // request_stop() once this many global steps are done
  int64_t stop_after_epoch = -1;  // request_stop() from on_epoch_end of this epoch

  explicit Rig(TrainerOptions o, uint64_t init_seed = 42) {
    manual_seed(init_seed);
    model = std::make_unique<LinReg>(kIn);
    opt = std::make_unique<AdamW>(default_param_groups(*model, 0.05, 0.05));
    o.epochs = kEpochs;
    o.steps_per_epoch = kStepsPerEpoch;
    o.batch_size = kBatch;
    o.data_seed = 7;
    trainer = std::make_unique<Trainer>(*model, *opt, o);
    trainer->on_epoch_begin = [this](int64_t) {
      order.resize(kSamples);
      std::iota(order.begin(), order.end(), 0);
      for (int64_t i = kSamples - 1; i > 0; --i)  // Fisher-Yates
        std::swap(order[static_cast<size_t>(i)],
                  order[trainer->data_rng().below(static_cast<uint64_t>(i + 1))]);
    };
    trainer->step_fn = [this](int64_t, int64_t batch) { return step(batch); };
    trainer->on_epoch_end = [this](int64_t epoch) {
      if (epoch == stop_after_epoch) trainer->request_stop();
      NoGradGuard ng;
      return mean(square(model->forward(Var(data.x)) - Var(data.y))).value().to_double_vector()[0];
    };
  }

  double step(int64_t batch) {
    CosineSchedule sched;
    sched.t_initial = static_cast<double>(kEpochs * kStepsPerEpoch);
    sched.warmup_t = 4;
    sched.warmup_lr_init = 1e-3;
    sched.lr_min = 1e-3;
    for (size_t g = 0; g < opt->n_groups(); ++g)
      opt->set_lr(g, cosine_lr(sched, opt->group(g).initial_lr, static_cast<double>(trainer->global_step())));
    const int64_t lo = batch * kBatch, hi = std::min(kSamples, lo + kBatch);
    Tensor xb = Tensor::empty({hi - lo, kIn}), yb = Tensor::empty({hi - lo});
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t s = order[static_cast<size_t>(i)];
      for (int64_t j = 0; j < kIn; ++j)  // input noise: a draw from the global generator
        xb.at<float>({i - lo, j}) = data.x.at<float>({s, j}) + 0.01f * static_cast<float>(global_rng().normal());
      yb.at<float>({i - lo}) = data.y.at<float>({s});
    }
    opt->zero_grad();
    Var loss = mean(square(model->forward(Var(xb)) - Var(yb)));
    loss.backward();
    clip_grad_norm_(opt->parameters(), 5.0);
    opt->step();
    if (trainer->global_step() + 1 == stop_after_step) trainer->request_stop();
    return loss.value().to_double_vector()[0];
  }

  std::vector<double> params() const {
    std::vector<double> p = model->w.value().to_double_vector();
    p.push_back(model->b.value().to_double_vector()[0]);
    return p;
  }
};

TrainerOptions quiet_options(const std::string& ckpt = "", int64_t every = 0) {
  TrainerOptions o;
  o.quiet = true;
  o.checkpoint_path = ckpt;
  o.checkpoint_every = every;
  o.config = {{"model", "linreg"}, {"lr", 0.05}};
  return o;
}

std::vector<double> uninterrupted() {
  Rig a(quiet_options());
  a.trainer->fit();
  EXPECT_EQ(a.trainer->global_step(), kEpochs * kStepsPerEpoch);
  EXPECT_EQ(a.trainer->epoch(), kEpochs);
  return a.params();
}

}  // namespace

TEST(Trainer, LossFallsAndRunIsDeterministic) {
  Rig a(quiet_options());
  double first = NAN, last = NAN;
  auto step = a.trainer->step_fn;
  a.trainer->step_fn = [&](int64_t e, int64_t b) {
    double l = step(e, b);
    if (std::isnan(first)) first = l;
    last = l;
    return l;
  };
  a.trainer->fit();
  EXPECT_LT(last, first);
  EXPECT_FALSE(std::isnan(a.trainer->best_metric()));
  EXPECT_EQ(a.params(), uninterrupted());  // same seeds, same bits
}

TEST(Trainer, ResumeMidEpochIsBitIdentical) {
  const std::vector<double> want = uninterrupted();
  const std::string path = temp_path("mid.safetensors");
  {
    Rig b(quiet_options(path, 5));
    b.stop_after_step = 13;  // "crash" after step 13; the last checkpoint is at step 10 (epoch 1, batch 2)
    b.trainer->fit();
    EXPECT_EQ(b.trainer->global_step(), 13);
    EXPECT_NE(b.params(), want);
  }
  Rig c(quiet_options(path, 5), /*init_seed=*/999);  // different init and global RNG state: resume fixes both
  c.trainer->resume(path);
  EXPECT_EQ(c.trainer->epoch(), 1);
  EXPECT_EQ(c.trainer->batch(), 2);
  EXPECT_EQ(c.trainer->global_step(), 10);
  c.trainer->fit();
  EXPECT_EQ(c.params(), want);
  fs::remove(path);
}

TEST(Trainer, ResumeAtEpochEndIsBitIdentical) {
  const std::vector<double> want = uninterrupted();
  const std::string path = temp_path("epoch.safetensors");
  double best = NAN;
  {
    Rig b(quiet_options(path));
    b.stop_after_epoch = 0;  // stops after the epoch-0 checkpoint
    b.trainer->fit();
    EXPECT_EQ(b.trainer->epoch(), 1);
    best = b.trainer->best_metric();
  }
  Rig c(quiet_options(path), 5);
  c.trainer->resume(path);
  EXPECT_EQ(c.trainer->epoch(), 1);
  EXPECT_EQ(c.trainer->batch(), 0);
  EXPECT_EQ(c.trainer->best_metric(), best);
  c.trainer->fit();
  EXPECT_EQ(c.params(), want);
  fs::remove(path);
}

TEST(Trainer, CheckpointIsSafetensorsWithKeysAndMetadata) {
  const std::string path = temp_path("keys.safetensors");
  Rig a(quiet_options(path, 3));
  a.stop_after_step = 3;
  a.trainer->fit();
  SafetensorsFile f = load_safetensors(path);
  std::vector<std::string> keys;
  for (const auto& [k, t] : f.tensors) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"bias", "optim.bias.exp_avg", "optim.bias.exp_avg_sq", "optim.bias.step",
                                            "optim.param_groups.lr", "optim.weight.exp_avg",
                                            "optim.weight.exp_avg_sq", "optim.weight.step", "weight"}));
  EXPECT_EQ(f.get("weight").to_double_vector(), a.model->w.value().to_double_vector());
  EXPECT_EQ(f.get("optim.weight.step").to_double_vector(), (std::vector<double>{3.0}));
  EXPECT_EQ(f.get("optim.param_groups.lr").shape(), (Shape{2}));
  EXPECT_EQ(f.meta("format"), kCheckpointFormat);
  EXPECT_EQ(f.meta("format_version"), kCheckpointVersion);
  const nlohmann::json js = nlohmann::json::parse(f.meta("trainer_state"));
  EXPECT_EQ(js.at("epoch").get<int64_t>(), 0);
  EXPECT_EQ(js.at("batch").get<int64_t>(), 3);
  EXPECT_EQ(js.at("step").get<int64_t>(), 3);
  EXPECT_EQ(js.at("rng").get<std::vector<uint64_t>>(), global_rng().state());
  EXPECT_EQ(js.at("data_rng").get<std::vector<uint64_t>>(), a.trainer->data_rng().state());
  EXPECT_EQ(js.at("data_rng_epoch_start").size(), 6u);
  EXPECT_TRUE(js.at("best_metric").is_null());  // no epoch finished yet
  EXPECT_EQ(js.at("config").at("model"), "linreg");
  EXPECT_DOUBLE_EQ(js.at("config").at("lr").get<double>(), 0.05);
  fs::remove(path);
}

TEST(Trainer, BestCheckpointAndProgressLines) {
  const std::string best = temp_path("best.safetensors");
  TrainerOptions o = quiet_options();
  o.quiet = false;
  o.log_every = 3;
  o.best_path = best;
  Rig a(o);
  testing::internal::CaptureStderr();
  a.trainer->fit();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("epoch 1/3 step 3/8 loss"), std::string::npos) << err;
  EXPECT_NE(err.find("samples/s"), std::string::npos) << err;
  EXPECT_NE(err.find("eta"), std::string::npos) << err;
  EXPECT_NE(err.find("epoch 3/3 done"), std::string::npos) << err;
  EXPECT_NE(err.find("(best)"), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(best));
  fs::remove(best);

  Rig q(quiet_options());
  testing::internal::CaptureStderr();
  q.trainer->fit();
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(Trainer, CorruptOrForeignCheckpointsThrowNamingTheFile) {
  const std::string good = temp_path("good.safetensors");
  Rig a(quiet_options(good));
  a.stop_after_epoch = 0;
  a.trainer->fit();
  std::vector<char> bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto expect_error = [](Trainer& t, const std::string& path, const std::string& needle) {
    try {
      t.resume(path);
      FAIL() << "expected Error for " << path;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  Rig b(quiet_options(), 3);
  const std::vector<double> before = b.params();

  const std::string truncated = temp_path("truncated.safetensors");
  {
    std::ofstream out(truncated, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expect_error(*b.trainer, truncated, "");
  const std::string garbage = temp_path("garbage.safetensors");
  {
    std::ofstream out(garbage, std::ios::binary);
    out << "this is not a checkpoint at all";
  }
  expect_error(*b.trainer, garbage, "");
  expect_error(*b.trainer, temp_path("missing.safetensors"), "");

  // A valid safetensors file that is not a training checkpoint.
  const std::string weights = temp_path("weights.safetensors");
  save_module(weights, *b.model);
  expect_error(*b.trainer, weights, "not an ssmkit training checkpoint");

  // Bad trainer state JSON.
  const std::string badjson = temp_path("badjson.safetensors");
  {
    SafetensorsFile f = load_safetensors(good);
    Metadata md = f.metadata;
    for (auto& [k, v] : md)
      if (k == "trainer_state") v = "{\"epoch\": 1";
    save_safetensors(badjson, f.tensors, md);
  }
  expect_error(*b.trainer, badjson, "trainer_state");

  // A model whose shapes do not match: the error names the key; nothing is modified.
  manual_seed(1);
  LinReg wide(kIn + 1);
  AdamW opt(default_param_groups(wide, 0.05, 0.05));
  TrainerOptions o = quiet_options();
  o.steps_per_epoch = kStepsPerEpoch;
  Trainer t(wide, opt, o);
  const std::vector<double> wide_before = wide.w.value().to_double_vector();
  expect_error(t, good, "weight");
  EXPECT_EQ(wide.w.value().to_double_vector(), wide_before);
  EXPECT_EQ(t.global_step(), 0);

  EXPECT_EQ(b.params(), before);  // failed resumes changed nothing
  EXPECT_EQ(b.trainer->global_step(), 0);
  for (const auto& p : {good, truncated, garbage, weights, badjson}) fs::remove(p);
}

TEST(Trainer, BadOptionsThrow) {
  manual_seed(1);
  LinReg m(2);
  SGD opt(single_param_group(m, 0.1));
  TrainerOptions o;
  EXPECT_THROW(Trainer(m, opt, o), Error);  // steps_per_epoch 0
  o.steps_per_epoch = 2;
  Trainer t(m, opt, o);
  EXPECT_THROW(t.fit(), Error);  // no step_fn
}
