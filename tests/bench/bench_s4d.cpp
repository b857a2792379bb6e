// S4D workload of the performance issue: W4, the S4D layer (state-spaces/s4 models/s4/s4d.py) forward in
// eval mode without gradient recording: batch 16, H 256, N 64, L 4096, input (B,H,L). Each iteration
// evaluates the modes, runs the convolution + D skip (as S4D's recurrence: the inference path's choice for
// N/2 = 32 modes), GELU, Conv1d 1x1 and GLU.
// The benchmark argument is the thread count. Leaves out the backward and the recurrent step.
#include <benchmark/benchmark.h>

#include "bench_util.h"
#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/nn/s4d.h"

using namespace ssmkit::core;
using namespace ssmkit::bench;

namespace {

// u (16,256,4096) -> y (16,256,4096).
void W4_s4d_forward(benchmark::State& state) {
  set_threads(state);
  const S4DSize s = kW4;
  Rng rng(4);
  S4DOptions opt;
  opt.d_state = s.N;
  S4D layer(s.H, opt, rng);
  layer.eval();
  NoGradGuard no_grad;
  const Var u(uniform_tensor({s.B, s.H, s.L}, 41, -1, 1), false);
  for (auto _ : state) {
    Var y = layer.forward(u, rng);
    benchmark::DoNotOptimize(y.value().raw());
  }
  state.SetItemsProcessed(state.iterations() * s.B * s.H * s.L);  // outputs
}
BENCHMARK(W4_s4d_forward)->Name("W4")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
