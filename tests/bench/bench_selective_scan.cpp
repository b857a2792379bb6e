// Selective-scan workloads of the performance issue: W1 forward (batch 1, D 1536, N 16, L 1024, softplus +
// delta_bias, D, z) and W2 forward + backward (batch 8, D 256, N 16, L 512), at 1 and 2 threads (the
// benchmark argument). Inputs are drawn once per size; each iteration runs the kernel only.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>

#include "ssmkit/core/ssm/selective_scan.h"

using namespace ssmkit::core;

namespace {

Tensor uniform(const Shape& s, std::mt19937& rng, float lo, float hi) {
  Tensor t = Tensor::empty(s);
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

ScanInputs make_inputs(int64_t B, int64_t D, int64_t N, int64_t L) {
  std::mt19937 rng(1);
  ScanInputs in;
  in.u = uniform({B, D, L}, rng, -1, 1);
  in.delta = uniform({B, D, L}, rng, -3, 0);
  in.A = uniform({D, N}, rng, -4, -0.3f);
  in.B = uniform({B, N, L}, rng, -1, 1);
  in.C = uniform({B, N, L}, rng, -1, 1);
  in.D = uniform({D}, rng, 0.5f, 1.5f);
  in.z = uniform({B, D, L}, rng, -2, 2);
  in.delta_bias = uniform({D}, rng, -4, -1);
  in.delta_softplus = true;
  return in;
}

void W1_scan_forward(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  const ScanInputs in = make_inputs(1, 1536, 16, 1024);
  Tensor y;
  for (auto _ : state) {
    selective_scan_forward(y, nullptr, nullptr, in);
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetItemsProcessed(state.iterations() * 1536 * 16 * 1024);  // state updates
}
BENCHMARK(W1_scan_forward)->Name("W1")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void W2_scan_forward_backward(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(0)));
  const ScanInputs in = make_inputs(8, 256, 16, 512);
  Tensor y;
  std::mt19937 rng(2);
  const Tensor dy = uniform({8, 256, 512}, rng, -1, 1);
  for (auto _ : state) {
    ScanSaved saved;
    selective_scan_forward(y, nullptr, &saved, in);
    ScanGrads g;
    selective_scan_backward(g, dy, Tensor{}, in, saved);
    benchmark::DoNotOptimize(g.du.raw());
  }
}
BENCHMARK(W2_scan_forward_backward)->Name("W2")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
