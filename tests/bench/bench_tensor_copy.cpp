// Strided copies: Tensor::contiguous() of a permuted view, the layout changes that autograd's permute runs
// forward and backward. Shapes: Chimera's per-head layout change on ETTh1 (batch 32, 7 variates, 12 patches,
// E 32: cell layout (B,V,T',E) <-> grid layout (B,E,V,T')), and a vision NCHW <-> NHWC change (batch 8, 96
// channels, 56 x 56). Float32; the benchmark argument is the thread count.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "ssmkit/core/tensor.h"

using namespace ssmkit::core;
using namespace ssmkit::bench;

namespace {

void permute_copy_case(benchmark::State& state, Shape shape, std::vector<int64_t> perm) {
  set_threads(state);
  const Tensor x = uniform_tensor(shape, 1, -1, 1);
  const Tensor view = x.permute(perm);
  Tensor y = Tensor::empty(view.shape());
  for (auto _ : state) {
    y.copy_from(view);
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4 * 2);  // read + write
}

}  // namespace

// (B,V,T',E) -> (B,E,V,T') and back
BENCHMARK_CAPTURE(permute_copy_case, Copy_CellToGrid_B32V7T12E32, Shape{32, 7, 12, 32},
                  std::vector<int64_t>{0, 3, 1, 2})
    ->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(permute_copy_case, Copy_GridToCell_B32E32V7T12, Shape{32, 32, 7, 12},
                  std::vector<int64_t>{0, 2, 3, 1})
    ->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
// NCHW -> NHWC and back
BENCHMARK_CAPTURE(permute_copy_case, Copy_NCHW_to_NHWC_B8C96S56, Shape{8, 96, 56, 56}, std::vector<int64_t>{0, 2, 3, 1})
    ->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(permute_copy_case, Copy_NHWC_to_NCHW_B8S56C96, Shape{8, 56, 56, 96}, std::vector<int64_t>{0, 3, 1, 2})
    ->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
