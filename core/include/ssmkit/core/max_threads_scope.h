// MaxThreadsScope: while one is alive, the calling thread's next OpenMP parallel regions, and libraries that
// size their work by omp_get_max_threads() (oneDNN fixes a primitive's split when it creates it), see `n`
// threads; the previous count comes back when it is destroyed. Nothing changes when n already is the count.
#pragma once

#include <omp.h>

namespace ssmkit::core {

class MaxThreadsScope {
 public:
  explicit MaxThreadsScope(int n) : keep_(omp_get_max_threads()) {
    if (n != keep_) omp_set_num_threads(n);
  }
  ~MaxThreadsScope() {
    if (omp_get_max_threads() != keep_) omp_set_num_threads(keep_);
  }
  MaxThreadsScope(const MaxThreadsScope&) = delete;
  MaxThreadsScope& operator=(const MaxThreadsScope&) = delete;

 private:
  int keep_;
};

}  // namespace ssmkit::core
