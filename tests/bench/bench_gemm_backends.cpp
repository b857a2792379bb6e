// The float GEMM backends side by side on the models' product shapes, to back core's choice in gemm.cpp:
// core::gemm (the path it picks: tile kernel, oneDNN's sgemm, or OpenBLAS), OpenBLAS's cblas_sgemm and
// oneDNN's dnnl_sgemm called directly. Arguments: shape index (kShapes), backend (0 core, 1 OpenBLAS,
// 2 oneDNN), threads. The label names the shape; items are multiply-adds (items_per_second / 5e8 = GFLOP/s).
//   ssmkit-bench --benchmark_filter=GemmBackend
#include <benchmark/benchmark.h>

#include <omp.h>

#include <vector>

#include "bench_util.h"
#include "ssmkit/core/ops/gemm.h"

#ifdef SSMKIT_BENCH_HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef SSMKIT_BENCH_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

using namespace ssmkit;
using namespace ssmkit::bench;

namespace {

struct Product {
  const char* what;
  bool ta, tb;
  int64_t M, N, K;
};

// y = x W^T (forward, tb), dx = dy W (nn), dW = dy^T x (ta): rows x in -> out as the models run them
const Product kShapes[] = {
    {"GroupMamba-T stage-1 fc1 forward", false, true, 3136, 512, 64},
    {"GroupMamba-T stage-1 fc2 forward", false, true, 3136, 64, 512},
    {"GroupMamba-T stage-3 fc1 forward", false, true, 196, 1392, 348},
    {"GroupMamba-T stage-3 fc2 forward", false, true, 196, 348, 1392},
    {"S-Mamba in_proj forward, one shard", false, true, 176, 512, 256},
    {"S-Mamba in_proj dx, one shard", false, false, 176, 256, 512},
    {"W3 in_proj forward", false, true, 3136, 1536, 384},
    {"W3 in_proj weight gradient", true, false, 1536, 384, 3136},
    {"micro stage-1 fc1 weight gradient", true, false, 128, 32, 8192},
    {"micro stem conv as im2col", false, false, 256, 16, 144},
};
constexpr int kNumShapes = static_cast<int>(sizeof(kShapes) / sizeof(kShapes[0]));

void GemmBackend(benchmark::State& state) {
  const Product& p = kShapes[state.range(0)];
  const int64_t backend = state.range(1);
  state.SetLabel(p.what);
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const int64_t lda = p.ta ? p.M : p.K, ldb = p.tb ? p.K : p.N;
  const std::vector<float> A = uniform_buffer(p.M * p.K, 1, -1, 1), B = uniform_buffer(p.K * p.N, 2, -1, 1);
  std::vector<float> C(static_cast<size_t>(p.M * p.N));
  for (auto _ : state) {
    if (backend == 0) {
      core::gemm(p.ta, p.tb, p.M, p.N, p.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), p.N);
    } else if (backend == 1) {
#ifdef SSMKIT_BENCH_HAVE_CBLAS
      core::gemm_backend();  // OpenBLAS's kernels matched to the CPU first (blas_kernels.cpp)
      cblas_sgemm(CblasRowMajor, p.ta ? CblasTrans : CblasNoTrans, p.tb ? CblasTrans : CblasNoTrans, int(p.M),
                  int(p.N), int(p.K), 1.0f, A.data(), int(lda), B.data(), int(ldb), 0.0f, C.data(), int(p.N));
#else
      state.SkipWithError("built without OpenBLAS");
      break;
#endif
    } else {
#ifdef SSMKIT_BENCH_HAVE_ONEDNN
      dnnl_sgemm(p.ta ? 'T' : 'N', p.tb ? 'T' : 'N', p.M, p.N, p.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f,
                 C.data(), p.N);
#else
      state.SkipWithError("built without oneDNN");
      break;
#endif
    }
    benchmark::DoNotOptimize(C.data());
  }
  state.SetItemsProcessed(state.iterations() * p.M * p.N * p.K);
}

void shapes_backends_threads(benchmark::internal::Benchmark* b) {
  for (int s = 0; s < kNumShapes; ++s)
    for (int backend = 0; backend < 3; ++backend)
      for (int threads : {1, 2}) b->Args({s, backend, threads});
}

BENCHMARK(GemmBackend)->Apply(shapes_backends_threads)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
