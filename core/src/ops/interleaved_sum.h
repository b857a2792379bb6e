// sum8: the sum of f(0) .. f(n-1) in double with 8 interleaved partial sums, combined in a fixed order.
// Independent chains vectorize without reassociation, so the result is the same on every thread count and
// does not wait on one add's latency per element. Inline into the (multi-versioned) kernels that use it.
#pragma once

#include <cstdint>

namespace ssmkit::core {

template <class F>
[[gnu::always_inline]] inline double sum8(int64_t n, F&& f) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += f(i + j);
  double t = 0;
  for (; i < n; ++i) t += f(i);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

}  // namespace ssmkit::core
