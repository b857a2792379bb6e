// EinFFT (SiMBA's channel mixer) forward at the shapes of one SiMBA-S eval forward at batch 1: per stage the
// (tokens, channels) of its blocks, times the stage's depth (56x56 x 64 x 3, 28x28 x 128 x 4, 14x14 x 320 x 12,
// 7x7 x 512 x 3). Parameters N(0, 0.02) as the module draws them; inputs uniform. The argument is the
// thread count. What the mixer costs inside Vision_SimbaS_fwd_b1 (docs/performance.md).
#include <benchmark/benchmark.h>

#include "bench_util.h"
#include "ssmkit/core/nn/einfft.h"

using namespace ssmkit;
using namespace ssmkit::bench;

namespace {

struct Stage {
  int64_t tokens, channels, depth;
};
constexpr Stage kSimbaS[] = {{3136, 64, 3}, {784, 128, 4}, {196, 320, 12}, {49, 512, 3}};

void EinFFT_SimbaS_fwd_b1(benchmark::State& state) {
  set_threads(state);
  struct Case {
    core::Tensor x, w1, b1, w2, b2, y;
    int64_t depth;
  };
  std::vector<Case> cases;
  uint32_t seed = 3;
  for (const Stage& s : kSimbaS) {
    const int64_t bs = s.channels / core::kEinFFTBlocks;
    Case c;
    c.x = uniform_tensor({1, s.tokens, s.channels}, seed++, -1, 1);
    c.w1 = uniform_tensor({2, core::kEinFFTBlocks, bs, bs}, seed++, -0.035f, 0.035f);
    c.b1 = uniform_tensor({2, core::kEinFFTBlocks, bs}, seed++, -0.035f, 0.035f);
    c.w2 = uniform_tensor({2, core::kEinFFTBlocks, bs, bs}, seed++, -0.035f, 0.035f);
    c.b2 = uniform_tensor({2, core::kEinFFTBlocks, bs}, seed++, -0.035f, 0.035f);
    c.depth = s.depth;
    cases.push_back(c);
  }
  for (auto _ : state)
    for (Case& c : cases)
      for (int64_t i = 0; i < c.depth; ++i) {
        core::einfft_forward(c.y, nullptr, c.x, c.w1, c.b1, c.w2, c.b2);
        benchmark::DoNotOptimize(c.y.raw());
      }
}

}  // namespace

BENCHMARK(EinFFT_SimbaS_fwd_b1)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
