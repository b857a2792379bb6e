// Rng (xoshiro256** seeded by splitmix64): reference seeding words, determinism, exact resume through
// state()/set_state() (a pending Box-Muller normal included), moments of uniform/normal/below, the global
// generator. Dropout family: identity cases, p = 1, mask statistics (kept fraction, mean preserved),
// tied masks over channels / samples, gradients, errors.
#include <cmath>
#include <set>

#include "gradcheck.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/random.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using V = std::vector<Var>;

TEST(Rng, SeedingMatchesSplitmix64Reference) {
  // splitmix64 from seed 0 (the reference generator's first four outputs) fills the state.
  Rng r(0);
  const std::vector<uint64_t> s = r.state();
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s[0], 0xE220A8397B1DCDAFull);
  EXPECT_EQ(s[1], 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(s[2], 0x06C45D188009454Full);
  EXPECT_EQ(s[3], 0xF88BB8A8724C81ECull);
  // xoshiro256** output: rotl(s1 * 5, 7) * 9
  const uint64_t m = s[1] * 5;
  EXPECT_EQ(r.next_u64(), ((m << 7) | (m >> 57)) * 9);
}

TEST(Rng, DeterministicAndResumable) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    differs = differs || x != c.next_u64();
  }
  EXPECT_TRUE(differs);
  // Save mid-pair of Box-Muller normals: the resumed stream must reproduce the pending one too.
  a.normal();
  const std::vector<uint64_t> saved = a.state();
  std::vector<double> first;
  for (int i = 0; i < 5; ++i) first.push_back(a.normal());
  for (int i = 0; i < 5; ++i) first.push_back(a.uniform());
  Rng resumed(7);
  resumed.set_state(saved);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(resumed.normal(), first[static_cast<size_t>(i)]);
  for (int i = 5; i < 10; ++i) EXPECT_EQ(resumed.uniform(), first[static_cast<size_t>(i)]);
  // seed() resets everything, pending normal included
  a.seed(42);
  b.seed(42);
  b.normal();
  b.seed(42);
  EXPECT_EQ(a.normal(), b.normal());
  expect_error([&] { resumed.set_state({1, 2, 3}); }, "Rng::set_state: state must have 6 words");
  expect_error([&] { resumed.set_state({0, 0, 0, 0, 0, 0}); }, "all zero");
}

TEST(Rng, Moments) {
  Rng r(123);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0, umin = 1, umax = 0;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    su += u;
    umin = std::min(umin, u);
    umax = std::max(umax, u);
    const double z = r.normal();
    sn += z;
    sn2 += z * z;
  }
  EXPECT_GE(umin, 0.0);
  EXPECT_LT(umax, 1.0);
  EXPECT_NEAR(su / n, 0.5, 0.005);         // sd of the mean 0.00065
  EXPECT_NEAR(sn / n, 0.0, 0.012);         // sd 0.0022
  EXPECT_NEAR(sn2 / n, 1.0, 0.016);        // sd 0.0032
  EXPECT_NEAR(r.normal(3.0, 0.0), 3.0, 0);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) ++counts[r.below(7)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);  // sd 93
  expect_error([&] { r.below(0); }, "Rng::below");
}

TEST(Rng, GlobalGeneratorFollowsManualSeed) {
  manual_seed(99);
  const uint64_t x = global_rng().next_u64();
  EXPECT_EQ(x, Rng(99).next_u64());
  manual_seed(99);
  EXPECT_EQ(global_rng().next_u64(), x);
}

TEST(Dropout, IdentityAndExtremes) {
  Var x(random_tensor({4, 5}, 1), true);
  Rng r(1);
  EXPECT_EQ(dropout(x, 0.5, false, r).node(), x.node());  // eval: x itself
  EXPECT_EQ(dropout(x, 0.0, true, r).node(), x.node());
  EXPECT_EQ(dropout_channels(x, 0.5, false, r).node(), x.node());
  EXPECT_EQ(drop_path(x, 0.5, false, r).node(), x.node());
  EXPECT_EQ(drop_path(x).node(), x.node());  // timm defaults: p = 0, not training
  Var z = dropout(x, 1.0, true, r);
  EXPECT_EQ(max_abs(z.value()), 0.0);
  sum(z).backward();
  EXPECT_EQ(max_abs(x.grad()), 0.0);
  EXPECT_EQ(max_abs(drop_path(x, 1.0, true, r).value()), 0.0);
  EXPECT_EQ(max_abs(dropout_channels(x, 1.0, true, r).value()), 0.0);
}

TEST(Dropout, StatisticsAndScaling) {
  const int64_t n = 200000;
  const double p = 0.3;
  Rng r(2024);
  Var x(Tensor::full({n}, 1.0, DType::F32));
  Var y = dropout(x, p, true, r);
  EXPECT_EQ(y.dtype(), DType::F32);
  const std::vector<double> v = y.value().to_double_vector();
  int64_t kept = 0;
  double total = 0;
  for (double e : v) {
    if (e != 0) {
      ++kept;
      EXPECT_NEAR(e, 1 / (1 - p), 1e-6);
    }
    total += e;
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 1 - p, 0.005);  // sd 0.001
  EXPECT_NEAR(total / n, 1.0, 0.01);                         // mean preserved
  // the same seed gives the same mask; the next draw a different one
  Rng r1(5), r2(5);
  Var a = dropout(x, 0.5, true, r1), b = dropout(x, 0.5, true, r2), c = dropout(x, 0.5, true, r1);
  EXPECT_EQ(max_abs_diff(a.value(), b.value()), 0.0);
  EXPECT_GT(max_abs_diff(a.value(), c.value()), 0.0);
}

// The mask is drawn in blocks of the generator's values, the same stream as one uniform() per element in order
// (so seeds give the masks they always gave), and the generator ends in the same state.
TEST(Dropout, MaskFollowsOneUniformPerElement) {
  const int64_t n = 2500;  // two whole blocks and a partial one
  const double p = 0.4;
  Rng r(77), ref(77);
  Var x(Tensor::full({n}, 1.0, DType::F64));
  const std::vector<double> v = dropout(x, p, true, r).value().to_double_vector();
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(v[static_cast<size_t>(i)], ref.uniform() < 1 - p ? 1 / (1 - p) : 0.0) << "element " << i;
  EXPECT_EQ(r.next_u64(), ref.next_u64());
  Rng a(3), b(3);
  std::vector<uint64_t> bulk(1500);
  a.fill_u64(bulk.data(), 1500);
  for (uint64_t u : bulk) ASSERT_EQ(u, b.next_u64());
  EXPECT_EQ(a.state(), b.state());
}

TEST(Dropout, ChannelsAndSamplesAreDroppedWhole) {
  Rng r(3);
  // (N,C,L) = (64,64,8): each (n,c) row all zero or all 2 (p = 0.5), about half kept
  Var x(Tensor::full({64, 64, 8}, 1.0, DType::F64));
  std::vector<double> v = dropout_channels(x, 0.5, true, r).value().to_double_vector();
  int64_t kept = 0;
  for (int64_t g = 0; g < 64 * 64; ++g) {
    std::set<double> vals(v.begin() + g * 8, v.begin() + g * 8 + 8);
    ASSERT_EQ(vals.size(), 1u);
    EXPECT_TRUE(*vals.begin() == 0.0 || *vals.begin() == 2.0);
    kept += *vals.begin() != 0.0;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 4096, 0.5, 0.04);  // sd 0.0078
  // (N,C,H,W): whole H*W planes; unbatched (C,L): whole rows
  v = dropout_channels(Var(Tensor::full({2, 3, 4, 5}, 1.0, DType::F64)), 0.5, true, r).value().to_double_vector();
  for (int64_t g = 0; g < 6; ++g) EXPECT_EQ(std::set<double>(v.begin() + g * 20, v.begin() + g * 20 + 20).size(), 1u);
  v = dropout_channels(Var(Tensor::full({10, 6}, 1.0, DType::F64)), 0.5, true, r).value().to_double_vector();
  for (int64_t g = 0; g < 10; ++g) EXPECT_EQ(std::set<double>(v.begin() + g * 6, v.begin() + g * 6 + 6).size(), 1u);
  // drop_path: (N, ...) whole samples, scaled by 1/keep or not
  Var s(Tensor::full({2000, 3, 2}, 1.0, DType::F64));
  v = drop_path(s, 0.25, true, r).value().to_double_vector();
  kept = 0;
  for (int64_t g = 0; g < 2000; ++g) {
    std::set<double> vals(v.begin() + g * 6, v.begin() + g * 6 + 6);
    ASSERT_EQ(vals.size(), 1u);
    EXPECT_TRUE(*vals.begin() == 0.0 || std::abs(*vals.begin() - 1 / 0.75) < 1e-15);
    kept += *vals.begin() != 0.0;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 2000, 0.75, 0.05);  // sd 0.0097
  v = drop_path(s, 0.25, true, r, false).value().to_double_vector();
  for (double e : v) EXPECT_TRUE(e == 0.0 || e == 1.0);
}

TEST(Dropout, Gradients) {
  // A fresh generator with a fixed seed inside fn gives the same mask on every evaluation.
  Tensor x = random_tensor({3, 4, 5}, 4);
  gradcheck_op([](const V& v) { Rng r(11); return dropout(v[0], 0.4, true, r); }, {x}, "dropout");
  gradcheck_op([](const V& v) { Rng r(12); return dropout_channels(v[0], 0.5, true, r); }, {x}, "dropout_channels");
  gradcheck_op([](const V& v) { Rng r(13); return drop_path(v[0], 0.5, true, r); }, {x}, "drop_path");
  gradcheck_op([](const V& v) { Rng r(14); return drop_path(v[0], 0.5, true, r, false); }, {x}, "drop_path unscaled");
  // the gradient is the mask: y / x
  Var xv(Tensor::full({1000}, 2.0, DType::F64), true);
  Rng r(15);
  Var y = dropout(xv, 0.2, true, r);
  sum(y).backward();
  const std::vector<double> yv = y.value().to_double_vector(), gv = xv.grad().to_double_vector();
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_DOUBLE_EQ(gv[i], yv[i] / 2);
}

TEST(Dropout, BadArgumentsThrow) {
  Var x(random_tensor({4}, 5));
  Rng r(1);
  expect_error([&] { dropout(x, 1.5, true, r); }, "dropout: probability p must be in [0, 1], got 1.5");
  expect_error([&] { dropout(x, -0.1, true, r); }, "dropout: probability p");
  expect_error([&] { dropout_channels(x, 0.5, true, r); }, "dropout_channels: input must be (N,C,*) or unbatched (C,L), got (4)");
  expect_error([&] { drop_path(Var(Tensor::full({}, 1.0, DType::F64)), 0.5, true, r); }, "drop_path: input must have a batch dimension");
  expect_error([&] { dropout(Var(Tensor::zeros({3}, DType::I64)), 0.5, true, r); }, "dropout: input must be F32 or F64");
}
