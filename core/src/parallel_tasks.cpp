// parallel_tasks (parallel_tasks.h): an OpenMP loop with dynamic scheduling, exceptions carried out of it.
#include "ssmkit/core/parallel_tasks.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <vector>

namespace ssmkit::core {

void parallel_tasks(int64_t n, const std::function<void(int64_t i)>& task) {
  if (n <= 0) return;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  auto run = [&](int64_t i) {
    try {
      task(i);
    } catch (...) {
      errors[static_cast<size_t>(i)] = std::current_exception();  // exceptions must not leave the region
    }
  };
  const int nth = omp_in_parallel() ? 1 : static_cast<int>(std::min<int64_t>(n, omp_get_max_threads()));
  if (nth > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int64_t i = 0; i < n; ++i) run(i);
  } else {
    for (int64_t i = 0; i < n; ++i) run(i);
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace ssmkit::core
