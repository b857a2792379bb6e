// Selective-scan workloads of the performance issue: W1 forward (batch 1, D 1536, N 16, L 1024, softplus +
// delta_bias, D, z) and W2 forward + backward (batch 8, D 256, N 16, L 512, all gradients), at 1 and 2
// threads (the benchmark argument). Inputs are drawn once per size; each iteration runs the kernels only.
// Their limits (ExpBound_W1, ExpBound_W2) are in bench_bounds.cpp.
#include <benchmark/benchmark.h>

#include "bench_util.h"
#include "ssmkit/core/ssm/selective_scan.h"

using namespace ssmkit::core;
using namespace ssmkit::bench;

namespace {

// u, delta, z (B,D,L); A (D,N); B, C (B,N,L); D, delta_bias (D).
ScanInputs make_inputs(const ScanSize& s) {
  ScanInputs in;
  in.u = uniform_tensor({s.B, s.D, s.L}, 1, -1, 1);
  in.delta = uniform_tensor({s.B, s.D, s.L}, 2, -3, 0);
  in.A = uniform_tensor({s.D, s.N}, 3, -4, -0.3f);
  in.B = uniform_tensor({s.B, s.N, s.L}, 4, -1, 1);
  in.C = uniform_tensor({s.B, s.N, s.L}, 5, -1, 1);
  in.D = uniform_tensor({s.D}, 6, 0.5f, 1.5f);
  in.z = uniform_tensor({s.B, s.D, s.L}, 7, -2, 2);
  in.delta_bias = uniform_tensor({s.D}, 8, -4, -1);
  in.delta_softplus = true;
  return in;
}

void W1_scan_forward(benchmark::State& state) {
  set_threads(state);
  const ScanSize s = kW1;
  const ScanInputs in = make_inputs(s);
  Tensor y;
  for (auto _ : state) {
    selective_scan_forward(y, nullptr, nullptr, in);
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetItemsProcessed(state.iterations() * s.B * s.D * s.N * s.L);  // state updates
}
BENCHMARK(W1_scan_forward)->Name("W1")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void W2_scan_forward_backward(benchmark::State& state) {
  set_threads(state);
  const ScanSize s = kW2;
  const ScanInputs in = make_inputs(s);
  const Tensor dy = uniform_tensor({s.B, s.D, s.L}, 9, -1, 1);
  Tensor y;
  for (auto _ : state) {
    ScanSaved saved;
    selective_scan_forward(y, nullptr, &saved, in);
    ScanGrads g;
    selective_scan_backward(g, dy, Tensor{}, in, saved);
    benchmark::DoNotOptimize(g.du.raw());
  }
  state.SetItemsProcessed(state.iterations() * s.B * s.D * s.N * s.L);  // state updates (forward)
}
BENCHMARK(W2_scan_forward_backward)->Name("W2")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
