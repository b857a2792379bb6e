// Vision model workloads of the vision issue's speed targets: GroupMamba-T eval forward on 224x224 images
// (batch 1 and 8), SiMBA-S eval forward (batch 1), and one training step of each micro model on a
// Fashion-MNIST-shaped batch (128 x 1 x 32 x 32: forward in training mode with drop path 0.05, cross entropy
// with label smoothing 0.1, backward, AdamW lr 2e-3 weight decay 0.05), i.e. 1/469 of an epoch.
// Inputs are random; parameters are the factory's official initialization. The argument is the thread count.
// Leaves out data loading and augmentation (the epoch's other costs; small next to the step).
#include <benchmark/benchmark.h>

#include <algorithm>

#include "bench_util.h"
#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/train/data_parallel.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/vision/model.h"

using namespace ssmkit;
using namespace ssmkit::bench;

namespace {

std::shared_ptr<vision::VisionModel> build(const std::string& name, uint64_t seed) {
  static core::Rng rng(seed);
  vision::VisionModelOptions o;
  o.rng = &rng;
  return vision::make_vision_model(name, o);
}

// image (B,3,224,224) -> logits (B,1000), eval mode, no gradient recorded.
void eval_forward(benchmark::State& state, const std::string& name, int64_t B) {
  set_threads(state);
  auto m = build(name, 7);
  m->eval();
  const core::Tensor img = uniform_tensor({B, 3, 224, 224}, 11, -2, 2);
  core::NoGradGuard ng;
  for (auto _ : state) {
    core::Var y = m->forward(core::Var(img));
    benchmark::DoNotOptimize(y.value().raw());
  }
  state.SetItemsProcessed(state.iterations() * B);  // images
}

// image (128,1,32,32), labels (128): one AdamW step on the label-smoothed cross entropy, the batch cut into K
// data-parallel shards (core/train/data_parallel.h; `ssm-classify train --shards`; K = 1: the plain loop) run up
// to one per thread. The models come from the global generator, as ssm-classify builds them, so that drop path
// draws from each shard's own.
void train_step(benchmark::State& state, const std::string& name, int64_t K = 1) {
  set_threads(state);
  constexpr int64_t kB = 128;
  core::manual_seed(9);
  auto m = vision::make_vision_model(name, {});
  m->train();
  std::vector<std::shared_ptr<core::Module>> replicas;
  for (int64_t k = 1; k < K; ++k) replicas.push_back(vision::make_vision_model(name, {}));
  core::DataParallel dp(*m, std::move(replicas));
  core::AdamOptions ao = core::adamw_defaults();
  ao.weight_decay = 0.05;
  core::AdamW opt(core::single_param_group(*m, 2e-3), ao);
  const core::Tensor img = uniform_tensor({kB, 1, 32, 32}, 13, -1, 2);
  core::Tensor labels = core::Tensor::empty({kB}, core::DType::I64);
  for (int64_t i = 0; i < kB; ++i) labels.data<int64_t>()[i] = (i * 7) % 10;
  double last_loss = 0;
  WallTimer timer;
  timer.start();
  for (auto _ : state) {
    opt.zero_grad();
    last_loss = dp.step([&](int64_t k, core::Module& mk) {
      const auto [r0, r1] = core::shard_rows(kB, dp.shards(), k);
      const bool whole = K == 1;
      const core::Tensor x = whole ? img : img.slice(0, r0, r1).contiguous();
      const core::Tensor y = whole ? labels : labels.slice(0, r0, r1).contiguous();
      core::Var loss = core::cross_entropy(static_cast<vision::VisionModel&>(mk).forward(core::Var(x)), y, -100, 0.1);
      return core::backward_share(loss, r1 - r0, kB);
    });
    opt.step();
  }
  state.counters["loss"] = last_loss;
  // seconds per Fashion-MNIST epoch (469 steps of 128 images) at this step time
  state.counters["epoch_s"] = 469.0 * timer.seconds() / static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.SetItemsProcessed(state.iterations() * kB);  // images
}

void Vision_GroupMambaMicro_train_step_b128_shards2(benchmark::State& s) { train_step(s, "groupmamba-micro", 2); }
BENCHMARK(Vision_GroupMambaMicro_train_step_b128_shards2)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void Vision_GroupMambaT_fwd_b1(benchmark::State& s) { eval_forward(s, "groupmamba-t", 1); }
void Vision_GroupMambaT_fwd_b8(benchmark::State& s) { eval_forward(s, "groupmamba-t", 8); }
void Vision_SimbaS_fwd_b1(benchmark::State& s) { eval_forward(s, "simba-s", 1); }
void Vision_GroupMambaMicro_train_step_b128(benchmark::State& s) { train_step(s, "groupmamba-micro"); }
void Vision_SimbaMicro_train_step_b128(benchmark::State& s) { train_step(s, "simba-micro"); }

BENCHMARK(Vision_GroupMambaT_fwd_b1)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Vision_GroupMambaT_fwd_b8)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Vision_SimbaS_fwd_b1)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Vision_GroupMambaMicro_train_step_b128)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Vision_SimbaMicro_train_step_b128)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
