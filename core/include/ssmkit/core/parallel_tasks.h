// Coarse-grained parallelism: n independent tasks (data-parallel shards, evaluation batches), one at a time
// per OpenMP thread, handed out in order as threads come free. Inside a task an active parallel region is
// open, so core's ops run single-threaded there; since no op's arithmetic depends on the thread count, a task
// computes the same bits as it would alone on all threads.
#pragma once

#include <cstdint>
#include <functional>

namespace ssmkit::core {

// Runs task(i) for i in [0, n) on up to omp_get_max_threads() threads (in turn, on the calling thread, when
// that is 1 or a parallel region is already active). Every task runs even when one throws; then the exception
// of the lowest i is rethrown.
void parallel_tasks(int64_t n, const std::function<void(int64_t i)>& task);

}  // namespace ssmkit::core
