// Helpers shared by the ssmkit-bench files: random tensors and buffers, the thread-count argument, and
// rate counters computed from the wall time of the timed loop (so a rate never depends on whether a
// benchmark was registered with UseRealTime: CPU time would count only the main OpenMP thread). The
// workload sizes of the performance issue (W1..W5) are defined here once, so every bound counts the same
// work as its workload.
#pragma once

#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::bench {

// W1 scan forward (B,D,N,L); W2 scan forward + backward; W3 Mamba block forward; W4 S4D layer;
// W5 Mamba block training step. M d_model, E d_inner, R dt_rank, N d_state, K d_conv.
struct ScanSize { int64_t B, D, N, L; };
inline constexpr ScanSize kW1{1, 1536, 16, 1024};
inline constexpr ScanSize kW2{8, 256, 16, 512};
struct BlockSize { int64_t B, L, M, E, N, R, K; };
inline constexpr BlockSize kW3{1, 3136, 384, 768, 16, 24, 4};
inline constexpr BlockSize kW5{8, 1024, 256, 512, 16, 16, 4};
struct S4DSize { int64_t B, H, N, L; };
inline constexpr S4DSize kW4{16, 256, 64, 4096};

// The benchmark argument is the OpenMP thread count (also OpenBLAS's, built with OpenMP).
inline int set_threads(const benchmark::State& state) {
  const int nth = static_cast<int>(state.range(0));
  omp_set_num_threads(nth);
  return nth;
}

inline std::vector<float> uniform_buffer(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

inline core::Tensor uniform_tensor(const core::Shape& s, uint32_t seed, float lo, float hi) {
  core::Tensor t = core::Tensor::empty(s);
  const std::vector<float> v = uniform_buffer(t.numel(), seed, lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = v[static_cast<size_t>(i)];
  return t;
}

// Wall-clock seconds spent inside the timed loop, for rate counters: start() before the loop, then
// rate(state, work per iteration) after it gives work per second.
class WallTimer {
 public:
  void start() { t0_ = std::chrono::steady_clock::now(); }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  double rate(const benchmark::State& state, double work_per_iter) const {
    const double s = seconds();
    return s > 0 ? work_per_iter * static_cast<double>(state.iterations()) / s : 0.0;
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace ssmkit::bench
