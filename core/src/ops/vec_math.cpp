// Array versions of simd/vec_math-inl.h, compiled once per Highway target and dispatched at run time,
// plus the dispatch controls (simd_target, simd_force_target). Tails shorter than a vector go through
// a partial load/store so that every element uses the same formula.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/vec_math.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "simd/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {

template <class F>
HWY_INLINE void map_array(const float* x, float* y, int64_t n, F f) {
  const hn::ScalableTag<float> d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + V <= n; i += V) hn::StoreU(f(d, hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    const auto m = hn::FirstN(d, static_cast<size_t>(n - i));
    hn::BlendedStore(f(d, hn::MaskedLoad(m, d, x + i)), m, d, y + i);
  }
}

void ExpArray(const float* x, float* y, int64_t n) {
  map_array(x, y, n, [](auto d, auto v) { return FastExp(d, v); });
}
void SoftplusArray(const float* x, float* y, int64_t n) {
  map_array(x, y, n, [](auto d, auto v) { return Softplus(d, v); });
}
void SigmoidArray(const float* x, float* y, int64_t n) {
  map_array(x, y, n, [](auto d, auto v) { return Sigmoid(d, v); });
}
void SiluArray(const float* x, float* y, int64_t n) {
  map_array(x, y, n, [](auto d, auto v) { return Silu(d, v); });
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>
#include <string>
#include <vector>

#include "ssmkit/core/error.h"
#include "ssmkit/core/ops/vec_math.h"

namespace ssmkit::core {

HWY_EXPORT(ExpArray);
HWY_EXPORT(SoftplusArray);
HWY_EXPORT(SigmoidArray);
HWY_EXPORT(SiluArray);

void vec_exp(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(ExpArray)(x, y, n); }
void vec_softplus(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(SoftplusArray)(x, y, n); }
void vec_sigmoid(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(SigmoidArray)(x, y, n); }
void vec_silu(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(SiluArray)(x, y, n); }

// Double (the reference dtype): plain libm loops, the same functions.
void vec_exp(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}
void vec_softplus(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 20.0 ? x[i] : std::log1p(std::exp(x[i]));
}
void vec_sigmoid(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 1.0 / (1.0 + std::exp(-x[i]));
}
void vec_silu(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0 + std::exp(-x[i]));
}

std::string simd_target() {
  // The best target both compiled in and supported (what HWY_DYNAMIC_DISPATCH picks).
  const int64_t best = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(best & -best);
}

std::vector<std::string> simd_targets_available() {
  std::vector<std::string> out;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) out.emplace_back(hwy::TargetName(t));
  return out;
}

void simd_force_target(const std::string& name) {
  hwy::SetSupportedTargetsForTest(0);
  if (name.empty()) return;
  for (int64_t t : hwy::SupportedAndGeneratedTargets())
    if (name == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      return;
    }
  std::string have;
  for (const auto& s : simd_targets_available()) have += " " + s;
  SSMKIT_CHECK(false, "simd_force_target: path '", name, "' is not available here; available:", have);
}

}  // namespace ssmkit::core
#endif  // HWY_ONCE
