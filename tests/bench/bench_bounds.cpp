// The limits the workloads are measured against, on this CPU, with the same thread counts (benchmark arg):
//   ExpBound_Wk  vec_exp over exactly as many floats as workload k exponentiates (W1: B*D*N*L; W2: twice
//                that, forward + the backward's recompute; W3: B*E*N*L; W5: 2*B*E*N*L), on a 16 KB block
//                kept in L1 so it measures exp throughput, not memory.
//   GEMM_W3, GEMM_W5  every matmul of the W3 forward / of the W5 forward + backward (dX and dW) through
//                core's gemm(); GEMM_peak one 2048^3 sgemm (the machine's GEMM rate).
//   FFT_W4       FFTW (fftw3f, FFTW_ESTIMATE plans) for W4: B*H r2c of length 2L, H kernel
//                r2c, B*H c2r, OpenMP over sequences (one plan, new-array execute).
// Leaves out the elementwise work around the GEMMs and FFTs (conv, gating, spectrum products).
#include <benchmark/benchmark.h>
#include <fftw3.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "bench_util.h"
#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/ops/vec_math.h"
#include "ssmkit/core/ssm/fftconv.h"

using namespace ssmkit::core;
using namespace ssmkit::bench;

namespace {

// ---------------------------------------------------------------------------------------------------------
// exp throughput

constexpr int64_t kExpBlock = 4096;  // 16 KB of floats per call, reused (L1-resident)

int64_t exp_count(const char* workload) {
  const std::string w = workload;
  if (w == "W1") return kW1.B * kW1.D * kW1.N * kW1.L;
  if (w == "W2") return 2 * kW2.B * kW2.D * kW2.N * kW2.L;
  if (w == "W3") return kW3.B * kW3.E * kW3.N * kW3.L;
  return 2 * kW5.B * kW5.E * kW5.N * kW5.L;  // W5
}

// Splits n_exp exps over the threads in kExpBlock calls of vec_exp (one partial call for the remainder).
void ExpBound(benchmark::State& state, const char* workload) {
  const int nth = set_threads(state);
  const int64_t n_exp = exp_count(workload);
  const std::vector<float> in = uniform_buffer(kExpBlock, 7, -12.f, 0.f);  // delta*A is <= 0
  std::vector<float> out(static_cast<size_t>(nth) * kExpBlock);
  const int64_t n_blocks = n_exp / kExpBlock, tail = n_exp % kExpBlock;
  WallTimer timer;
  timer.start();
  for (auto _ : state) {
#pragma omp parallel num_threads(nth)
    {
      const int ith = omp_get_thread_num(), nt = omp_get_num_threads();
      float* y = out.data() + static_cast<size_t>(ith) * kExpBlock;
      const int64_t b0 = n_blocks * ith / nt, b1 = n_blocks * (ith + 1) / nt;
      for (int64_t b = b0; b < b1; ++b) vec_exp(in.data(), y, kExpBlock);
      if (ith == nt - 1 && tail > 0) vec_exp(in.data(), y, tail);
      benchmark::DoNotOptimize(y);
    }
    benchmark::ClobberMemory();
  }
  state.counters["Gexp/s"] = timer.rate(state, static_cast<double>(n_exp)) * 1e-9;
  state.counters["n_exp"] = static_cast<double>(n_exp);
  state.SetLabel(simd_target());
}
BENCHMARK_CAPTURE(ExpBound, W1, "W1")->Name("ExpBound_W1")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(ExpBound, W2, "W2")->Name("ExpBound_W2")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(ExpBound, W3, "W3")->Name("ExpBound_W3")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(ExpBound, W5, "W5")->Name("ExpBound_W5")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---------------------------------------------------------------------------------------------------------
// GEMM rate. Row-major C (M,N) = op(A) (M,K) op(B) (K,N); A stored (M,K) or (K,M) when ta, B (K,N) or
// (N,K) when tb.

struct GemmShape {
  bool ta, tb;
  int64_t M, N, K;
};

struct GemmBufs {
  std::vector<float> A, B, C;
};

// A linear layer y (rows,out) = x (rows,in) W^T, W (out,in): forward, dX = dY W, dW = dY^T X.
void add_linear(std::vector<GemmShape>& v, int64_t rows, int64_t in, int64_t out, bool backward) {
  v.push_back({false, true, rows, out, in});
  if (backward) {
    v.push_back({false, false, rows, in, out});
    v.push_back({true, false, out, in, rows});
  }
}

std::vector<GemmShape> block_gemms(const BlockSize& s, bool backward) {
  const int64_t rows = s.B * s.L;
  std::vector<GemmShape> v;
  add_linear(v, rows, s.M, 2 * s.E, backward);        // in_proj
  add_linear(v, rows, s.E, s.R + 2 * s.N, backward);  // x_proj
  add_linear(v, rows, s.R, s.E, backward);            // dt_proj
  add_linear(v, rows, s.E, s.M, backward);            // out_proj
  return v;
}

void GemmSet(benchmark::State& state, const std::vector<GemmShape>& shapes) {
  set_threads(state);
  std::vector<GemmBufs> bufs;
  double flops = 0;
  uint32_t seed = 11;
  for (const GemmShape& g : shapes) {
    bufs.push_back({uniform_buffer(g.M * g.K, seed, -1, 1), uniform_buffer(g.K * g.N, seed + 1, -1, 1),
                    std::vector<float>(static_cast<size_t>(g.M * g.N))});
    seed += 2;
    flops += 2.0 * static_cast<double>(g.M) * static_cast<double>(g.N) * static_cast<double>(g.K);
  }
  WallTimer timer;
  timer.start();
  for (auto _ : state) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const GemmShape& g = shapes[i];
      GemmBufs& b = bufs[i];
      gemm(g.ta, g.tb, g.M, g.N, g.K, 1.0f, b.A.data(), g.ta ? g.M : g.K, b.B.data(), g.tb ? g.K : g.N, 0.0f,
           b.C.data(), g.N);
      benchmark::DoNotOptimize(b.C.data());
    }
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = timer.rate(state, flops) * 1e-9;
  state.counters["GFLOP"] = flops * 1e-9;
  state.SetLabel(gemm_backend());
}
BENCHMARK_CAPTURE(GemmSet, W3, block_gemms(kW3, false))
    ->Name("GEMM_W3")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(GemmSet, W5, block_gemms(kW5, true))
    ->Name("GEMM_W5")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(GemmSet, peak, std::vector<GemmShape>{{false, false, 2048, 2048, 2048}})
    ->Name("GEMM_peak")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---------------------------------------------------------------------------------------------------------
// FFTW for W4: the transforms of the FFT convolution, with the copy-in (zero padding) and copy-out of each
// sequence, as the real convolution does; no spectrum product.

struct FftwBuf {
  void* p;
  explicit FftwBuf(size_t bytes) : p(fftwf_malloc(bytes)) { std::memset(p, 0, bytes); }
  ~FftwBuf() { fftwf_free(p); }
  FftwBuf(const FftwBuf&) = delete;
  FftwBuf& operator=(const FftwBuf&) = delete;
  float* f() { return static_cast<float*>(p); }
  fftwf_complex* c() { return static_cast<fftwf_complex*>(p); }
};

void FFT_W4(benchmark::State& state, unsigned flags) {
  const int nth = set_threads(state);
  const S4DSize s = kW4;
  const int64_t n = fftconv_size(s.L), nc = n / 2 + 1, n_seq = s.B * s.H;
  const std::vector<float> u = uniform_buffer(n_seq * s.L, 9, -1, 1);
  const std::vector<float> k = uniform_buffer(s.H * s.L, 10, -1, 1);
  std::vector<float> y(static_cast<size_t>(n_seq * s.L));
  // Per-thread padded real buffer and spectrum; the kernel spectra (H, nc) shared.
  std::vector<std::unique_ptr<FftwBuf>> real, spec;
  for (int t = 0; t < nth; ++t) {
    real.push_back(std::make_unique<FftwBuf>(static_cast<size_t>(n) * sizeof(float)));
    spec.push_back(std::make_unique<FftwBuf>(static_cast<size_t>(nc) * sizeof(fftwf_complex)));
  }
  const int64_t k_stride = (nc + 3) / 4 * 4;  // keeps every kernel spectrum 32-byte aligned, as planned
  FftwBuf kspec(static_cast<size_t>(s.H * k_stride) * sizeof(fftwf_complex));
  fftwf_plan p_r2c, p_c2r;
  {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    p_r2c = fftwf_plan_dft_r2c_1d(static_cast<int>(n), real[0]->f(), spec[0]->c(), flags);
    p_c2r = fftwf_plan_dft_c2r_1d(static_cast<int>(n), spec[0]->c(), real[0]->f(), flags);
  }
  WallTimer timer;
  timer.start();
  for (auto _ : state) {
#pragma omp parallel num_threads(nth)
    {
      const int ith = omp_get_thread_num();
      float* r = real[static_cast<size_t>(ith)]->f();
      fftwf_complex* c = spec[static_cast<size_t>(ith)]->c();
#pragma omp for schedule(static)
      for (int64_t h = 0; h < s.H; ++h) {  // kernel spectra
        std::memcpy(r, &k[static_cast<size_t>(h * s.L)], static_cast<size_t>(s.L) * sizeof(float));
        std::fill(r + s.L, r + n, 0.f);
        fftwf_execute_dft_r2c(p_r2c, r, kspec.c() + h * k_stride);
      }
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n_seq; ++i) {  // forward, inverse
        std::memcpy(r, &u[static_cast<size_t>(i * s.L)], static_cast<size_t>(s.L) * sizeof(float));
        std::fill(r + s.L, r + n, 0.f);
        fftwf_execute_dft_r2c(p_r2c, r, c);
        fftwf_execute_dft_c2r(p_c2r, c, r);
        std::memcpy(&y[static_cast<size_t>(i * s.L)], r, static_cast<size_t>(s.L) * sizeof(float));
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["transforms/s"] = timer.rate(state, static_cast<double>(2 * n_seq + s.H));
  state.counters["fft_len"] = static_cast<double>(n);
  {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    fftwf_destroy_plan(p_r2c);
    fftwf_destroy_plan(p_c2r);
  }
}
BENCHMARK_CAPTURE(FFT_W4, estimate, FFTW_ESTIMATE)
    ->Name("FFT_W4")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
// FFTW_MEASURE plans, as core's fftconv uses for long F32 transforms: W4's FFT bound.
BENCHMARK_CAPTURE(FFT_W4, measure, FFTW_MEASURE)
    ->Name("FFT_W4_measure")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
