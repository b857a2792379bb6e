// A standard vectorised exp to compare core's vec_exp against: SLEEF's Sleef_expf8_u10avx2 (1.0-ulp,
// 8 floats) and, where the CPU has AVX-512F, Sleef_expf16_u10avx512f, timed exactly as ExpBound_W1
// (W1's B*D*N*L exps on a reused 16 KB block, split over the OpenMP threads of the benchmark argument).
// Built only when CMake found libsleef (SSMKIT_BENCH_HAVE_SLEEF) on x86-64; registered only for the
// instruction sets this CPU runs. The SLEEF prototypes are declared here with their target attribute, so
// this file compiles for baseline x86-64 like the rest (sleef.h declares them only under -mavx2/-mavx512f).
#if defined(SSMKIT_BENCH_HAVE_SLEEF) && defined(__x86_64__)
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <vector>

#include "bench_util.h"

extern "C" {
__attribute__((target("avx2,fma"))) __m256 Sleef_expf8_u10avx2(__m256);
__attribute__((target("avx512f"))) __m512 Sleef_expf16_u10avx512f(__m512);
}

using namespace ssmkit::bench;

namespace {

constexpr int64_t kBlock = 4096;  // multiple of 16: no tails inside a block

__attribute__((target("avx2,fma"))) void exp_block_avx2(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, Sleef_expf8_u10avx2(_mm256_loadu_ps(x + i)));
}

__attribute__((target("avx512f"))) void exp_block_avx512(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, Sleef_expf16_u10avx512f(_mm512_loadu_ps(x + i)));
}

using ExpBlockFn = void (*)(const float*, float*, int64_t);

// W1's exp count, rounded down to whole blocks (at most kBlock - 1 fewer exps: < 0.02%).
void ExpBound_W1_sleef(benchmark::State& state, ExpBlockFn fn) {
  const int nth = set_threads(state);
  const int64_t n_exp = kW1.B * kW1.D * kW1.N * kW1.L;
  const int64_t n_blocks = n_exp / kBlock;
  const std::vector<float> in = uniform_buffer(kBlock, 7, -12.f, 0.f);
  std::vector<float> out(static_cast<size_t>(nth) * kBlock);
  WallTimer timer;
  timer.start();
  for (auto _ : state) {
#pragma omp parallel num_threads(nth)
    {
      const int ith = omp_get_thread_num(), nt = omp_get_num_threads();
      float* y = out.data() + static_cast<size_t>(ith) * kBlock;
      const int64_t b0 = n_blocks * ith / nt, b1 = n_blocks * (ith + 1) / nt;
      for (int64_t b = b0; b < b1; ++b) fn(in.data(), y, kBlock);
      benchmark::DoNotOptimize(y);
    }
    benchmark::ClobberMemory();
  }
  state.counters["Gexp/s"] = timer.rate(state, static_cast<double>(n_blocks * kBlock)) * 1e-9;
}

[[maybe_unused]] const bool kRegistered = [] {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    benchmark::RegisterBenchmark("ExpBound_W1_sleef", ExpBound_W1_sleef, &exp_block_avx2)
        ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  if (__builtin_cpu_supports("avx512f"))
    benchmark::RegisterBenchmark("ExpBound_W1_sleef512", ExpBound_W1_sleef, &exp_block_avx512)
        ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  return true;
}();

}  // namespace
#endif  // SSMKIT_BENCH_HAVE_SLEEF && __x86_64__
