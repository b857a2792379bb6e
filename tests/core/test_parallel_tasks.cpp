// parallel_tasks (core/parallel_tasks.h): every task runs once, on several threads when there are some; ops
// inside a task run single-threaded; a nested call runs its tasks in turn; the lowest task's exception comes
// out after all tasks ran.
#include <omp.h>

#include <atomic>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ssmkit/core/error.h"
#include "ssmkit/core/parallel_tasks.h"

using namespace ssmkit::core;

TEST(ParallelTasks, EveryTaskRunsOnce) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(3);
  std::vector<std::atomic<int>> hits(50);
  std::vector<int> inner_threads(50, -1);
  parallel_tasks(50, [&](int64_t i) {
    hits[static_cast<size_t>(i)]++;
    inner_threads[static_cast<size_t>(i)] = omp_in_parallel() ? 1 : omp_get_max_threads();
    // A nested call: its tasks run in turn on this thread.
    int nested = 0;
    parallel_tasks(4, [&](int64_t) { ++nested; });
    EXPECT_EQ(nested, 4);
  });
  omp_set_num_threads(prev);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "task " << i;
    EXPECT_EQ(inner_threads[static_cast<size_t>(i)], 1) << "task " << i << " saw more than one thread";
  }
  parallel_tasks(0, [](int64_t) { FAIL() << "no task expected"; });
}

TEST(ParallelTasks, LowestExceptionAfterAllTasks) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(2);
  std::atomic<int> ran{0};
  try {
    parallel_tasks(8, [&](int64_t i) {
      ++ran;
      if (i == 5 || i == 3) throw Error("task " + std::to_string(i));
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "task 3");
  }
  omp_set_num_threads(prev);
  EXPECT_EQ(ran.load(), 8);
}
