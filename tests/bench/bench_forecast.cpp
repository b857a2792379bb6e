// Time-series workloads of the forecasting issue's speed target: one S-Mamba training step in the ETTh1
// 96->96 setting of the official script (batch 32, 7 variables + 4 time-mark tokens, d_model 256, d_ff 256,
// d_state 2, e_layers 2; MSE on the forecast, backward, Adam lr 7e-5), i.e. 1/264 of a training epoch;
// and Chimera's step with its defaults (no marks, lr 1e-3). Inputs are random; parameters are the factory's
// initialization. Arguments: thread count, data-parallel shards (1: the plain step). Leaves out batching and
// the per-epoch validation.
// Forecast latency: Chimera's inference forward (eval mode, no autograd) on one window and on a batch of 32;
// arguments: thread count, batch.
#include <benchmark/benchmark.h>

#include <algorithm>

#include "bench_util.h"
#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/train/data_parallel.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/timeseries/forecast_model.h"

using namespace ssmkit;
using namespace ssmkit::bench;

namespace {

// The model of `name` for ETTh1 96 -> 96 (7 variables, n_marks time marks), the factory's initialization.
std::shared_ptr<timeseries::ForecastModel> etth1_model(const std::string& name, const nlohmann::json& config,
                                                       int64_t n_marks) {
  core::Rng rng(5);
  timeseries::ForecastDims dims;
  dims.seq_len = 96;
  dims.pred_len = 96;
  dims.n_channels = 7;
  dims.n_marks = n_marks;
  return timeseries::make_forecast_model(name, dims, config, rng);
}

// x (32,96,7), marks (32,96,4) -> forecast (32,96,7); one Adam step on the MSE.
void train_step(benchmark::State& state, const std::string& name, const nlohmann::json& config, int64_t n_marks,
                double lr, int64_t steps_per_epoch) {
  set_threads(state);
  constexpr int64_t kB = 32, kL = 96, kH = 96, kC = 7;
  auto m = etth1_model(name, config, n_marks);
  m->train();
  core::AdamOptions ao;
  core::Adam opt(core::single_param_group(*m, lr), ao);
  const core::Var x(uniform_tensor({kB, kL, kC}, 13, -2, 2), false);
  const core::Var marks(uniform_tensor({kB, kL, std::max<int64_t>(n_marks, 1)}, 17, -0.5, 0.5), false);
  const core::Var target(uniform_tensor({kB, kH, kC}, 19, -2, 2), false);
  // Data-parallel shards (core/train/data_parallel.h), as `ssm-forecast train --shards K` runs them.
  const int64_t K = state.range(1);
  std::vector<std::shared_ptr<core::Module>> replicas;
  for (int64_t k = 1; k < K; ++k) replicas.push_back(etth1_model(name, config, n_marks));
  core::DataParallel dp(*m, std::move(replicas));
  double last_loss = 0;
  WallTimer timer;
  timer.start();
  for (auto _ : state) {
    opt.zero_grad();
    last_loss = dp.step([&](int64_t k, core::Module& mk) {
      const auto [r0, r1] = core::shard_rows(kB, K, k);
      auto& fm = static_cast<const timeseries::ForecastModel&>(mk);
      auto rows = [&](const core::Var& v) { return K == 1 ? v : core::slice(v, 0, r0, r1); };
      return core::backward_share(core::mse_loss(fm.forward(rows(x), rows(marks)), rows(target)), r1 - r0, kB);
    });
    opt.step();
  }
  state.counters["loss"] = last_loss;
  // seconds per ETTh1 training epoch at this step time
  state.counters["epoch_s"] =
      static_cast<double>(steps_per_epoch) * timer.seconds() / static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.SetItemsProcessed(state.iterations() * kB);  // windows
}

void Forecast_SMamba_ETTh1_train_step(benchmark::State& s) {
  train_step(s, "smamba", {{"d_model", 256}, {"d_ff", 256}, {"d_state", 2}, {"e_layers", 2}}, 4, 7e-5, 264);
}
void Forecast_Chimera_ETTh1_train_step(benchmark::State& s) {
  train_step(s, "chimera", nlohmann::json::object(), 0, 1e-3, 265);
}

// x (B,96,7) -> forecast (B,96,7), inference: what `ssm-forecast predict` runs per window.
void predict(benchmark::State& state, const std::string& name, const nlohmann::json& config) {
  set_threads(state);
  const int64_t kB = state.range(1), kL = 96, kC = 7;
  auto m = etth1_model(name, config, 0);
  m->eval();
  core::NoGradGuard no_grad;
  const core::Var x(uniform_tensor({kB, kL, kC}, 13, -2, 2), false);
  const core::Var marks(uniform_tensor({kB, kL, 1}, 17, -0.5, 0.5), false);
  for (auto _ : state) benchmark::DoNotOptimize(m->forward(x, marks).value().raw());
  state.SetItemsProcessed(state.iterations() * kB);  // windows
}

void Forecast_Chimera_ETTh1_predict(benchmark::State& s) { predict(s, "chimera", nlohmann::json::object()); }

}  // namespace

BENCHMARK(Forecast_Chimera_ETTh1_predict)
    ->ArgsProduct({{1, 2}, {1, 32}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(Forecast_SMamba_ETTh1_train_step)
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({2, 1})
    ->Args({2, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(Forecast_Chimera_ETTh1_train_step)
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({2, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
