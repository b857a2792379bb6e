// Dispatched float math (ops/vec_math.h) on every SIMD path this CPU runs: exp, softplus, sigmoid and
// silu against double-precision std:: formulas over their useful ranges, every tail length, in-place
// use, and the dispatch controls (forcing a path, refusing an unknown one).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gradcheck.h"
#include "ssmkit/core/ops/vec_math.h"

using namespace ssmkit::core;

namespace {

// Runs f once per available SIMD path (restoring the default afterwards).
template <class F>
void on_every_path(F f) {
  const auto targets = simd_targets_available();
  ASSERT_FALSE(targets.empty());
  for (const auto& t : targets) {
    simd_force_target(t);
    EXPECT_EQ(simd_target(), t);
    SCOPED_TRACE("SIMD path " + t);
    f();
  }
  simd_force_target("");
}

std::vector<float> linspace(float lo, float hi, int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n - 1);
  return v;
}

// Max relative error of fn(x) against ref(x) (relative to max(|ref|, floor)); fn: the float kernel.
template <class Ref>
double max_rel_error(void (*fn)(const float*, float*, int64_t), Ref ref, const std::vector<float>& x, double floor) {
  std::vector<float> y(x.size());
  fn(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = ref(static_cast<double>(x[i]));
    worst = std::max(worst, std::abs(static_cast<double>(y[i]) - r) / std::max(std::abs(r), floor));
  }
  return worst;
}

}  // namespace

TEST(VecMath, ExpAccuracyOnEveryPath) {
  on_every_path([] {
    const auto x = linspace(-87.0f, 87.0f, 200001);
    EXPECT_LT(max_rel_error(vec_exp, [](double v) { return std::exp(v); }, x, 0.0), 3e-7);
    // exact at 0, and the clamp: far below -87 gives a tiny number, never garbage, and never a denormal (a
    // denormal decay costs a microcode assist in every multiply that reads it: a scan ran 17x slower); above 87
    // the result stays e^87 (finite)
    std::vector<float> edge{0.0f, -1000.0f, -88.5f, 1.0f, -87.2f, 1000.0f};
    vec_exp(edge.data(), edge.data(), 6);  // in place
    EXPECT_EQ(edge[0], 1.0f);
    EXPECT_LT(edge[1], 1e-37f);
    for (const float v : {edge[1], edge[2], edge[4]}) EXPECT_GE(v, std::numeric_limits<float>::min()) << v;
    EXPECT_NEAR(edge[5], std::exp(87.0), 3e-7 * std::exp(87.0));
    EXPECT_NEAR(edge[3], std::exp(1.0), 3e-7 * std::exp(1.0));
  });
}

TEST(VecMath, ExpSameBitsOnTheFmaPaths) {
  // AVX-512 clamps and scales with its own instructions (vrangeps, vscalefps): its results must be AVX2's,
  // bit for bit (both fuse their multiply-adds; the portable path rounds them twice and may differ in the last
  // bit). Skipped where the CPU lacks either path.
  const auto targets = simd_targets_available();
  if (std::find(targets.begin(), targets.end(), "AVX3") == targets.end() ||
      std::find(targets.begin(), targets.end(), "AVX2") == targets.end())
    GTEST_SKIP() << "needs both the AVX3 and AVX2 paths";
  const auto x = linspace(-200.0f, 200.0f, 40001);
  std::vector<float> y3(x.size()), y2(x.size());
  simd_force_target("AVX3");
  vec_exp(x.data(), y3.data(), static_cast<int64_t>(x.size()));
  simd_force_target("AVX2");
  vec_exp(x.data(), y2.data(), static_cast<int64_t>(x.size()));
  simd_force_target("");
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y3[i], y2[i]) << "at x = " << x[i];
}

TEST(VecMath, SoftplusSigmoidSiluAccuracyOnEveryPath) {
  on_every_path([] {
    const auto x = linspace(-30.0f, 40.0f, 70001);
    EXPECT_LT(max_rel_error(vec_softplus, [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); }, x, 1e-30),
              2e-6);
    EXPECT_LT(max_rel_error(vec_sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }, x, 1e-30), 1e-6);
    EXPECT_LT(max_rel_error(vec_silu, [](double v) { return v / (1 + std::exp(-v)); }, x, 1e-6), 1e-6);
    // PyTorch's threshold: above 20 softplus returns x itself
    float big = 25.5f, out = 0;
    vec_softplus(&big, &out, 1);
    EXPECT_EQ(out, 25.5f);
  });
}

TEST(VecMath, EveryLengthAndTail) {
  on_every_path([] {
    for (int n = 0; n <= 40; ++n) {
      std::vector<float> x(static_cast<size_t>(n) + 1, 7.0f), y(static_cast<size_t>(n) + 1, -5.0f);
      for (int i = 0; i < n; ++i) x[static_cast<size_t>(i)] = 0.1f * static_cast<float>(i) - 2.0f;
      vec_exp(x.data(), y.data(), n);
      for (int i = 0; i < n; ++i)
        EXPECT_NEAR(y[static_cast<size_t>(i)], std::exp(x[static_cast<size_t>(i)]), 1e-6 * std::exp(2.0)) << n;
      EXPECT_EQ(y[static_cast<size_t>(n)], -5.0f) << "wrote past the end, n=" << n;
    }
  });
}

TEST(VecMath, DispatchControls) {
  const auto targets = simd_targets_available();
  EXPECT_EQ(simd_target(), targets.front());  // the best path by default
  const std::string msg = ssmkit::test::error_of([] { simd_force_target("NOT_A_CPU"); });
  EXPECT_NE(msg.find("NOT_A_CPU"), std::string::npos) << msg;
  EXPECT_NE(msg.find(targets.front()), std::string::npos) << msg;  // lists what is available
  simd_force_target("");
  EXPECT_EQ(simd_target(), targets.front());
}
