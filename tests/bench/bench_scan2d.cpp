// The 2-D selective scan (Chimera's operator) alone, at the shapes of Chimera's ETTh1 training step: batch 32,
// 7 variates, 12 patches; the shipped width (D 16, N 4) and a wide one (D 64, N 16). Softplus steps with
// biases, a skip term, lag 1. Forward alone (inference) and forward + backward (all gradients), at 1 and 2
// threads (the benchmark argument). Inputs are drawn once per size; each iteration runs the kernels only.
#include <benchmark/benchmark.h>

#include "bench_util.h"
#include "ssmkit/core/ssm/scan2d.h"

using namespace ssmkit::core;
using namespace ssmkit::bench;

namespace {

struct Scan2dSize {
  int64_t B, D, V, T, N;
};
constexpr Scan2dSize kShipped{32, 16, 7, 12, 4};
constexpr Scan2dSize kWide{32, 64, 7, 12, 16};

Scan2dInputs make_inputs(const Scan2dSize& s) {
  Scan2dInputs in;
  const Shape xs{s.B, s.D, s.V, s.T}, as{s.D, s.N}, bc{s.B, s.V, s.T, s.N};
  in.x = uniform_tensor(xs, 1, -1, 1);
  in.delta1 = uniform_tensor(xs, 2, -3, 0);
  in.delta2 = uniform_tensor(xs, 3, -3, 0);
  in.A1 = uniform_tensor(as, 4, -4, -0.3f);
  in.A2 = uniform_tensor(as, 5, -4, -0.3f);
  in.A3 = uniform_tensor(as, 6, -4, -0.3f);
  in.A4 = uniform_tensor(as, 7, -4, -0.3f);
  in.B1 = uniform_tensor(bc, 8, -1, 1);
  in.B2 = uniform_tensor(bc, 9, -1, 1);
  in.C1 = uniform_tensor(bc, 10, -1, 1);
  in.C2 = uniform_tensor(bc, 11, -1, 1);
  in.Dskip = uniform_tensor({s.D}, 12, 0.5f, 1.5f);
  in.delta_bias1 = uniform_tensor({s.D}, 13, -4, -1);
  in.delta_bias2 = uniform_tensor({s.D}, 14, -4, -1);
  in.opt.delta_softplus = true;
  return in;
}

void scan2d_forward_case(benchmark::State& state, Scan2dSize s) {
  set_threads(state);
  const Scan2dInputs in = make_inputs(s);
  Tensor y;
  for (auto _ : state) {
    scan2d_forward(y, nullptr, in);
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetItemsProcessed(state.iterations() * s.B * s.D * s.V * s.T * s.N);  // cells × states
}

void scan2d_forward_backward_case(benchmark::State& state, Scan2dSize s) {
  set_threads(state);
  const Scan2dInputs in = make_inputs(s);
  const Tensor dy = uniform_tensor(in.x.shape(), 15, -1, 1);
  Tensor y;
  for (auto _ : state) {
    Scan2dSaved saved;
    scan2d_forward(y, &saved, in);
    Scan2dGrads g;
    scan2d_backward(g, dy, in, saved);
    benchmark::DoNotOptimize(g.dx.raw());
  }
  state.SetItemsProcessed(state.iterations() * s.B * s.D * s.V * s.T * s.N);
}

BENCHMARK_CAPTURE(scan2d_forward_case, shipped, kShipped)
    ->Name("Scan2d_fwd_D16_N4")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(scan2d_forward_backward_case, shipped, kShipped)
    ->Name("Scan2d_fwd_bwd_D16_N4")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(scan2d_forward_case, wide, kWide)
    ->Name("Scan2d_fwd_D64_N16")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(scan2d_forward_backward_case, wide, kWide)
    ->Name("Scan2d_fwd_bwd_D64_N16")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
