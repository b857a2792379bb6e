// Mamba block workloads of the performance issue: W3 inference forward (d_model 384, expand 2, d_state 16,
// d_conv 4, dt_rank 24, L 3136, batch 1) through mamba_block_forward, and W5 one training step (d_model 256,
// L 1024, batch 8: forward, loss = mean(out^2), backward, AdamW) through the nn::Mamba module with autograd.
// Parameters are initialised as the official mamba_simple.Mamba does (nn::Mamba's constructor). The
// benchmark argument is the thread count. Leaves out the LM wrapper (embedding, norms, head).
#include <benchmark/benchmark.h>

#include "bench_util.h"
#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/nn/mamba.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ssm/mamba_block.h"
#include "ssmkit/core/train/optimizer.h"

using namespace ssmkit::core;
using namespace ssmkit::bench;

namespace {

MambaConfig block_config(const BlockSize& s) {
  MambaConfig cfg;
  cfg.d_model = s.M;
  cfg.d_state = s.N;
  cfg.d_conv = s.K;
  cfg.expand = s.E / s.M;
  cfg.dt_rank = s.R;
  return cfg;
}

// hidden (1,3136,384) -> out (1,3136,384), inference (no cache).
void W3_mamba_forward(benchmark::State& state) {
  set_threads(state);
  const BlockSize s = kW3;
  Rng rng(3);
  const Mamba m(block_config(s), rng);
  const MambaParams p = m.bind();
  const Tensor hidden = uniform_tensor({s.B, s.L, s.M}, 31, -1, 1);
  Tensor out;
  for (auto _ : state) {
    mamba_block_forward(out, nullptr, hidden, p, m.cfg);
    benchmark::DoNotOptimize(out.raw());
  }
  state.SetItemsProcessed(state.iterations() * s.B * s.L);  // tokens
}
BENCHMARK(W3_mamba_forward)->Name("W3")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// hidden (8,1024,256): forward, mean(out^2), backward, AdamW step (PyTorch defaults, weight decay 0.01).
void W5_mamba_train_step(benchmark::State& state) {
  set_threads(state);
  const BlockSize s = kW5;
  Rng rng(5);
  Mamba m(block_config(s), rng);
  AdamW opt(single_param_group(m, 1e-4));
  const Var hidden(uniform_tensor({s.B, s.L, s.M}, 51, -1, 1), false);
  double last_loss = 0;
  for (auto _ : state) {
    opt.zero_grad();
    Var loss = mean(square(m.forward(hidden)));
    loss.backward();
    opt.step();
    last_loss = static_cast<double>(loss.value().data<float>()[0]);
  }
  state.counters["loss"] = last_loss;
  state.SetItemsProcessed(state.iterations() * s.B * s.L);  // tokens
}
BENCHMARK(W5_mamba_train_step)->Name("W5")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
