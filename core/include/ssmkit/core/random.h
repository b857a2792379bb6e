// Seeded random numbers for dropout, initialisation and shuffling: xoshiro256** (Blackman & Vigna) seeded
// through splitmix64, uniform doubles in [0,1) from the top 53 bits, normals by Box-Muller (the second
// value of each pair is kept for the next call). state()/set_state() capture everything, so a resumed
// run draws exactly the numbers the uninterrupted one would have.
// Not here: PyTorch's Mersenne-Twister stream (seeds do not reproduce torch.rand values), thread safety
// (one Rng per thread; global_rng() is shared and unsynchronised unless a thread installs its own with
// ThreadRngScope, as data-parallel shards do).
#pragma once

#include <cstdint>
#include <vector>

namespace ssmkit::core {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { this->seed(seed); }

  void seed(uint64_t seed);  // resets the stream (and drops a pending normal)
  uint64_t next_u64();       // uniform over all 2^64 values
  void fill_u64(uint64_t* out, int64_t n);  // out[i] = the next n values of next_u64(), in order
  double uniform();          // uniform in [0, 1), 53 random bits
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }  // in [lo, hi)
  double normal();           // standard normal N(0, 1)
  double normal(double mean, double std) { return mean + std * normal(); }
  uint64_t below(uint64_t n);  // uniform in [0, n), unbiased (rejection); n > 0

  // The full state: the 4 xoshiro words, then whether a spare normal is pending and its bits (6 words).
  std::vector<uint64_t> state() const;
  void set_state(const std::vector<uint64_t>& state);  // throws Error unless 6 words, not all-zero generator

 private:
  uint64_t s_[4] = {0, 0, 0, 0};
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The process-wide default generator (initially seeded with PyTorch's default seed, 67280421310721), or
// the calling thread's own generator while a ThreadRngScope is alive on that thread.
Rng& global_rng();

// Makes global_rng() return `rng` on the calling thread for the scope's lifetime (other threads are not
// affected; scopes nest). Lets code that draws from global_rng() (dropout, drop path) run on several
// threads at once with a deterministic stream per thread.
class ThreadRngScope {
 public:
  explicit ThreadRngScope(Rng& rng);
  ~ThreadRngScope();
  ThreadRngScope(const ThreadRngScope&) = delete;
  ThreadRngScope& operator=(const ThreadRngScope&) = delete;

 private:
  Rng* prev_;
};
// Reseeds the default generator, like torch.manual_seed.
void manual_seed(uint64_t seed);

}  // namespace ssmkit::core
