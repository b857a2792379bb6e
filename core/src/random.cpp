// xoshiro256** with splitmix64 seeding (reference: https://prng.di.unimi.it/xoshiro256starstar.c),
// Box-Muller normals, and the process-wide default generator.
#include "ssmkit/core/random.h"

#include <cmath>
#include <cstring>
#include <numbers>

#include "ssmkit/core/error.h"

namespace ssmkit::core {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

void Rng::seed(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& w : s_) w = splitmix64(x);  // never all zero: splitmix64 is a bijection of distinct inputs
  has_spare_ = false;
  spare_ = 0.0;
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void Rng::fill_u64(uint64_t* out, int64_t n) {
  // next_u64 with the state in registers: the same values, without a call and a state round trip each
  uint64_t s0 = s_[0], s1 = s_[1], s2 = s_[2], s3 = s_[3];
  for (int64_t i = 0; i < n; ++i) {
    out[i] = rotl(s1 * 5, 7) * 9;
    const uint64_t t = s1 << 17;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 45);
  }
  s_[0] = s0;
  s_[1] = s1;
  s_[2] = s2;
  s_[3] = s3;
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Box-Muller on u1 in (0,1] (so log is finite) and u2 in [0,1).
  const double u1 = 1.0 - uniform(), u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1)), theta = 2.0 * std::numbers::pi * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

uint64_t Rng::below(uint64_t n) {
  SSMKIT_CHECK(n > 0, "Rng::below: n must be positive");
  // Reject the top partial block of 2^64 so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x = next_u64();
  while (x >= limit) x = next_u64();
  return x % n;
}

std::vector<uint64_t> Rng::state() const {
  uint64_t spare_bits = 0;
  std::memcpy(&spare_bits, &spare_, sizeof spare_bits);
  return {s_[0], s_[1], s_[2], s_[3], has_spare_ ? 1u : 0u, spare_bits};
}

void Rng::set_state(const std::vector<uint64_t>& state) {
  SSMKIT_CHECK(state.size() == 6, "Rng::set_state: state must have 6 words (from Rng::state()), got ",
               state.size());
  SSMKIT_CHECK(state[0] | state[1] | state[2] | state[3], "Rng::set_state: the generator words are all zero");
  SSMKIT_CHECK(state[4] <= 1, "Rng::set_state: word 4 (spare flag) must be 0 or 1, got ", state[4]);
  for (int i = 0; i < 4; ++i) s_[i] = state[static_cast<size_t>(i)];
  has_spare_ = state[4] == 1;
  std::memcpy(&spare_, &state[5], sizeof spare_);
}

namespace {
thread_local Rng* t_thread_rng = nullptr;  // set by ThreadRngScope
}  // namespace

Rng& global_rng() {
  if (t_thread_rng != nullptr) return *t_thread_rng;
  static Rng rng(67280421310721ull);
  return rng;
}

ThreadRngScope::ThreadRngScope(Rng& rng) : prev_(t_thread_rng) { t_thread_rng = &rng; }
ThreadRngScope::~ThreadRngScope() { t_thread_rng = prev_; }

void manual_seed(uint64_t seed) { global_rng().seed(seed); }

}  // namespace ssmkit::core
