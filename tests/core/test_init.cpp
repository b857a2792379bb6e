// Initializers: fans and gains against torch.nn.init's definitions, sample statistics (mean, std, bounds)
// of every distribution on large tensors with tolerances of several standard errors, truncation bounds,
// PyTorch's default Linear/Conv bounds, and Mamba's dt_proj / A_log / D inits (softplus(bias) lands in
// [dt_min, dt_max], floor respected).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "ssmkit/core/train/init.h"

using namespace ssmkit::core;

namespace {

struct Stats {
  double mean = 0, std = 0, min = 0, max = 0;
};
Stats stats_of(const Tensor& t) {
  std::vector<double> v = t.to_double_vector();
  Stats s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(ss / static_cast<double>(v.size()));
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

}  // namespace

TEST(Init, FanInFanOut) {
  Fans f = calculate_fan_in_and_fan_out({8, 4});  // Linear(4, 8).weight
  EXPECT_EQ(f.fan_in, 4);
  EXPECT_EQ(f.fan_out, 8);
  f = calculate_fan_in_and_fan_out({16, 3, 5, 5});  // Conv2d(3, 16, 5)
  EXPECT_EQ(f.fan_in, 75);
  EXPECT_EQ(f.fan_out, 400);
  f = calculate_fan_in_and_fan_out({256, 1, 4});  // Mamba's depthwise conv1d
  EXPECT_EQ(f.fan_in, 4);
  EXPECT_EQ(f.fan_out, 1024);
  try {
    calculate_fan_in_and_fan_out({8});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than 2 dimensions"), std::string::npos) << e.what();
  }
}

TEST(Init, Gains) {
  EXPECT_DOUBLE_EQ(calculate_gain("linear"), 1.0);
  EXPECT_DOUBLE_EQ(calculate_gain("conv2d"), 1.0);
  EXPECT_DOUBLE_EQ(calculate_gain("sigmoid"), 1.0);
  EXPECT_DOUBLE_EQ(calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(calculate_gain("leaky_relu"), std::sqrt(2.0 / (1.0 + 0.01 * 0.01)));
  EXPECT_DOUBLE_EQ(calculate_gain("leaky_relu", 0.0), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(calculate_gain("selu"), 0.75);
  EXPECT_THROW(calculate_gain("gelu"), Error);
}

TEST(Init, UniformAndNormalStatistics) {
  const int64_t n = 200000;  // standard error of the mean ~ std / 450
  Rng rng(1);
  Tensor u = Tensor::empty({n});
  uniform_(u, rng, -3.0, 1.0);
  Stats s = stats_of(u);
  EXPECT_GE(s.min, -3.0);
  EXPECT_LT(s.max, 1.0);
  EXPECT_NEAR(s.mean, -1.0, 0.02);
  EXPECT_NEAR(s.std, 4.0 / std::sqrt(12.0), 0.01);

  Tensor g = Tensor::empty({n}, DType::F64);
  normal_(g, rng, 2.0, 0.5);
  s = stats_of(g);
  EXPECT_NEAR(s.mean, 2.0, 0.005);
  EXPECT_NEAR(s.std, 0.5, 0.005);

  Tensor c = Tensor::empty({3, 2});
  constant_(c, 0.25);
  EXPECT_EQ(c.to_double_vector(), std::vector<double>(6, 0.25));
  ones_(c);
  EXPECT_EQ(c.to_double_vector(), std::vector<double>(6, 1.0));
  zeros_(c);
  EXPECT_EQ(c.to_double_vector(), std::vector<double>(6, 0.0));
  EXPECT_THROW(uniform_(c, rng, 1.0, 0.0), Error);
  EXPECT_THROW(normal_(c, rng, 0.0, -1.0), Error);
  Tensor ints = Tensor::empty({3}, DType::I64);
  EXPECT_THROW(uniform_(ints, rng), Error);
}

TEST(Init, SameSeedSameValuesAnyDtypeAndStrides) {
  Rng a(7), b(7), c(7);
  Tensor t32 = Tensor::empty({4, 5}), t64 = Tensor::empty({4, 5}, DType::F64);
  normal_(t32, a);
  normal_(t64, b);
  EXPECT_LT(max_abs_diff(t32, t64), 1e-6);
  // A transposed (non-contiguous) view is filled in its own row-major order.
  Tensor base = Tensor::empty({5, 4}, DType::F64);
  Tensor view = base.transpose(0, 1);  // (4, 5)
  normal_(view, c);
  EXPECT_EQ(view.to_double_vector(), t64.to_double_vector());
}

TEST(Init, Erfinv) {
  for (double x : {-0.999999, -0.9, -0.5, -1e-8, 1e-3, 0.3, 0.7, 0.99, 0.9999999999}) {
    EXPECT_NEAR(std::erf(erfinv(x)), x, 2e-16 * std::max(1.0, 1.0 / (1.0 - std::abs(x)) * 1e-6)) << x;
  }
  EXPECT_NEAR(erfinv(0.5), 0.47693627620446987, 1e-15);
  EXPECT_EQ(erfinv(0.0), 0.0);
  EXPECT_TRUE(std::isinf(erfinv(1.0)));
  EXPECT_TRUE(std::isnan(erfinv(1.5)));
}

TEST(Init, TruncNormalStaysInBounds) {
  const int64_t n = 200000;
  Rng rng(3);
  // Standard normal truncated to [-2, 2]: std = sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2))) = 0.87963.
  Tensor t = Tensor::empty({n}, DType::F64);
  trunc_normal_(t, rng);
  Stats s = stats_of(t);
  EXPECT_GE(s.min, -2.0);
  EXPECT_LE(s.max, 2.0);
  EXPECT_LT(s.min, -1.99);  // the tails are reached
  EXPECT_GT(s.max, 1.99);
  EXPECT_NEAR(s.mean, 0.0, 0.01);
  EXPECT_NEAR(s.std, 0.8796256610342398, 0.005);
  // timm's usual call trunc_normal_(w, std=.02): bounds +-2 are absolute, so this is a plain N(0, 0.02^2).
  Tensor w = Tensor::empty({n});
  trunc_normal_(w, rng, 0.0, 0.02);
  s = stats_of(w);
  EXPECT_NEAR(s.std, 0.02, 0.0002);
  // A one-sided window far from the mean: all samples inside [0.5, 0.6].
  Tensor x = Tensor::empty({10000});
  trunc_normal_(x, rng, 0.0, 0.1, 0.5, 0.6);
  s = stats_of(x);
  EXPECT_GE(s.min, 0.5f);
  EXPECT_LE(s.max, 0.6f);
  EXPECT_LT(s.mean, 0.53);  // mass piles up near the bound closest to the mean
  EXPECT_THROW(trunc_normal_(x, rng, 0.0, 1.0, 1.0, -1.0), Error);
}

TEST(Init, KaimingAndXavier) {
  Rng rng(5);
  Tensor w = Tensor::empty({512, 256});  // fan_in 256, fan_out 512
  kaiming_uniform_(w, rng);             // a = 0 -> gain sqrt(2), bound sqrt(6 / 256)
  Stats s = stats_of(w);
  const double bound = std::sqrt(6.0 / 256.0);
  EXPECT_LE(s.max, bound);
  EXPECT_GE(s.min, -bound);
  EXPECT_NEAR(s.std, std::sqrt(2.0 / 256.0), 0.01 * std::sqrt(2.0 / 256.0));
  kaiming_normal_(w, rng, 0.0, "fan_out", "relu");
  s = stats_of(w);
  EXPECT_NEAR(s.std, std::sqrt(2.0 / 512.0), 0.01 * std::sqrt(2.0 / 512.0));
  EXPECT_NEAR(s.mean, 0.0, 0.001);
  kaiming_normal_(w, rng, 0.0, "fan_in", "linear");
  EXPECT_NEAR(stats_of(w).std, std::sqrt(1.0 / 256.0), 0.01 * std::sqrt(1.0 / 256.0));
  EXPECT_THROW(kaiming_uniform_(w, rng, 0.0, "fan_avg"), Error);
  Tensor v = Tensor::empty({5});
  EXPECT_THROW(kaiming_uniform_(v, rng), Error);  // no fans for 1-D

  xavier_uniform_(w, rng);
  s = stats_of(w);
  const double xb = std::sqrt(6.0 / (256.0 + 512.0));
  EXPECT_LE(s.max, xb);
  EXPECT_GE(s.min, -xb);
  EXPECT_GT(s.max, 0.99 * xb);
  xavier_normal_(w, rng, 2.0);
  EXPECT_NEAR(stats_of(w).std, 2.0 * std::sqrt(2.0 / 768.0), 0.01 * 2.0 * std::sqrt(2.0 / 768.0));
}

TEST(Init, PyTorchDefaultLinearAndConv) {
  Rng rng(11);
  // Conv1d(32, 64, 3): fan_in 96, weight and bias U(+-1/sqrt(96)).
  Tensor w = Tensor::empty({64, 32, 3}), b = Tensor::empty({64});
  default_init_(w, b, rng);
  const double bound = 1.0 / std::sqrt(96.0);
  Stats s = stats_of(w);
  EXPECT_LE(s.max, bound);
  EXPECT_GE(s.min, -bound);
  EXPECT_GT(s.max, 0.98 * bound);
  EXPECT_NEAR(s.std, bound / std::sqrt(3.0), 0.05 * bound);
  s = stats_of(b);
  EXPECT_LE(s.max, bound);
  EXPECT_GE(s.min, -bound);
  // Linear without bias.
  Tensor lw = Tensor::empty({10, 1000}), none;
  default_init_(lw, none, rng);
  EXPECT_LE(stats_of(lw).max, 1.0 / std::sqrt(1000.0));
  Tensor bad = Tensor::empty({63});
  EXPECT_THROW(default_init_(w, bad, rng), Error);
}

TEST(Init, MambaDtProj) {
  Rng rng(13);
  const int64_t d_inner = 4096, dt_rank = 8;
  Tensor w = Tensor::empty({d_inner, dt_rank}), b = Tensor::empty({d_inner});
  mamba_dt_init_(w, b, rng);  // dt_scale 1, random, dt in [1e-3, 1e-1]
  const double r = 1.0 / std::sqrt(8.0);
  Stats s = stats_of(w);
  EXPECT_LE(s.max, r);
  EXPECT_GE(s.min, -r);
  EXPECT_GT(s.max, 0.99 * r);
  std::vector<double> bias = b.to_double_vector();
  double log_mean = 0;
  for (double x : bias) {
    const double dt = std::log1p(std::exp(x));  // softplus
    EXPECT_GE(dt, 1e-3 * (1 - 1e-5));
    EXPECT_LE(dt, 1e-1 * (1 + 1e-5));
    log_mean += std::log(dt);
  }
  log_mean /= static_cast<double>(bias.size());
  // log dt ~ U[log 1e-3, log 1e-1]: mean log(1e-2), std (log 100) / sqrt(12) / sqrt(4096) = 0.021.
  EXPECT_NEAR(log_mean, std::log(1e-2), 0.1);

  // Constant weight, and the floor: with dt_min below dt_init_floor many draws are clamped to it.
  Tensor w2 = Tensor::empty({d_inner, dt_rank}, DType::F64), b2 = Tensor::empty({d_inner}, DType::F64);
  mamba_dt_init_(w2, b2, rng, 2.0, "constant", 1e-6, 1e-1, 1e-4);
  EXPECT_LT(max_abs_diff(w2, Tensor::full(w2.shape(), 2.0 * r, DType::F64)), 1e-15);
  int at_floor = 0;
  for (double x : b2.to_double_vector()) {
    const double dt = std::log1p(std::exp(x));
    EXPECT_GE(dt, 1e-4 * (1 - 1e-9));
    if (std::abs(dt - 1e-4) < 1e-12) ++at_floor;
  }
  EXPECT_GT(at_floor, d_inner / 10);  // P(dt < 1e-4) = 2/5

  // VMamba layout: weight (K, d_inner, dt_rank), bias (K, d_inner).
  Tensor wk = Tensor::empty({4, 16, 6}), bk = Tensor::empty({4, 16});
  mamba_dt_init_(wk, bk, rng);
  EXPECT_LE(stats_of(wk).max, 1.0 / std::sqrt(6.0));
  Tensor bad = Tensor::empty({4, 15});
  EXPECT_THROW(mamba_dt_init_(wk, bad, rng), Error);
  EXPECT_THROW(mamba_dt_init_(wk, bk, rng, 1.0, "uniform"), Error);
}

TEST(Init, MambaALogAndD) {
  Tensor a = Tensor::empty({3, 4});
  mamba_A_log_init_(a);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t n = 0; n < 4; ++n) EXPECT_FLOAT_EQ(a.at<float>({c, n}), std::log(static_cast<float>(n + 1)));
  Tensor d = Tensor::empty({3}, DType::F64);
  mamba_D_init_(d);
  EXPECT_EQ(d.to_double_vector(), std::vector<double>(3, 1.0));
}
