// Activations: closed-form and hand-computed values (PyTorch's outputs for the same inputs), numerical
// stability of the softmax family, finite-difference gradients of every op in double, F32 against F64,
// the F32 SIMD kernels of gelu and glu (forward and backward) on every compiled target against double
// formulas, with odd sizes for the tails, and argument errors.
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>

#include "gradcheck.h"
#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/vec_math.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using V = std::vector<Var>;

namespace {

Var vec(std::vector<double> v) { return Var(Tensor::from_vector({static_cast<int64_t>(v.size())}, v)); }

void expect_near_all(const Var& y, const std::vector<double>& want, double tol) {
  std::vector<double> got = y.value().to_double_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

}  // namespace

TEST(Activation, PointwiseValues) {
  const double tol = 1e-12;
  expect_near_all(relu(vec({-1, 0, 2.5})), {0, 0, 2.5}, 0);
  expect_near_all(sigmoid(vec({0, 2, -800})), {0.5, 1 / (1 + std::exp(-2.0)), 0}, tol);
  expect_near_all(tanh(vec({0, 1})), {0, std::tanh(1.0)}, tol);
  // torch.nn.functional.gelu(torch.tensor([1., -0.5], dtype=torch.float64)) and approximate='tanh'
  expect_near_all(gelu(vec({1, -0.5})), {0.8413447460685429, -0.15426876936299344}, tol);
  expect_near_all(gelu(vec({1, -0.5}), "tanh"), {0.8411919906082768, -0.15428599017485606}, tol);
  expect_near_all(silu(vec({1, -2})), {0.7310585786300049, -2 / (1 + std::exp(2.0))}, tol);
  // softplus: log1p(exp(beta x)) / beta, and x where beta x > threshold
  expect_near_all(softplus(vec({1, 0, 30, -50})), {1.3132616875182228, std::log(2.0), 30, std::exp(-50.0)}, tol);
  expect_near_all(softplus(vec({5, 15}), 2.0), {std::log1p(std::exp(10.0)) / 2, 15}, tol);
  expect_near_all(softplus(vec({0.6, 0.4}), 2.0, 1.0), {0.6, std::log1p(std::exp(0.8)) / 2}, tol);
  expect_near_all(softshrink(vec({-1, -0.3, 0.5, 0.7})), {-0.5, 0, 0, 0.2}, tol);
  expect_near_all(softshrink(vec({-1, 2}), 1.5), {0, 0.5}, tol);
}

TEST(Activation, SoftmaxValuesAndStability) {
  expect_near_all(softmax(vec({1, 2, 3}), 0), {0.09003057317038046, 0.24472847105479767, 0.6652409557748219}, 1e-12);
  expect_near_all(softmax(vec({1000, 1000}), -1), {0.5, 0.5}, 1e-15);
  expect_near_all(log_softmax(vec({1000, 0}), 0), {0, -1000}, 1e-12);
  expect_near_all(log_softmax(vec({-1000, -1000}), 0), {-std::log(2.0), -std::log(2.0)}, 1e-12);
  // Along a middle dimension every (i, :, k) sums to 1, and log_softmax = log(softmax).
  Var x(random_tensor({2, 3, 4}, 11, -3, 3));
  std::vector<double> s = softmax(x, 1).value().to_double_vector();
  std::vector<double> ls = log_softmax(x, 1).value().to_double_vector();
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t k = 0; k < 4; ++k) {
      double total = 0;
      for (int64_t j = 0; j < 3; ++j) total += s[static_cast<size_t>(i * 12 + j * 4 + k)];
      EXPECT_NEAR(total, 1.0, 1e-14);
    }
  for (size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(std::log(s[i]), ls[i], 1e-13);
  // 0-d input: softmax is 1, like PyTorch.
  EXPECT_EQ(softmax(Var(Tensor::full({}, 3.0, DType::F64)), 0).value().to_double_vector(), std::vector<double>{1});
}

TEST(Activation, GluValues) {
  // x (2, 4) along dim 1: a = x[:, :2], b = x[:, 2:]
  Var x(Tensor::from_vector({2, 4}, std::vector<double>{1, 2, 0, std::log(3.0), -1, 4, 100, -100}));
  Var y = glu(x, 1);
  EXPECT_EQ(y.shape(), Shape({2, 2}));
  expect_near_all(y, {0.5, 2 * 0.75, -1, 0}, 1e-12);
  // along dim 0 of a (4, 1)
  expect_near_all(glu(Var(Tensor::from_vector({4, 1}, std::vector<double>{3, 5, 0, 0})), 0), {1.5, 2.5}, 1e-15);
}

TEST(Activation, GradientsOfPointwiseOps) {
  Tensor x = random_tensor({3, 7}, 21, -3, 3);
  gradcheck_op([](const V& v) { return relu(v[0]); }, {x}, "relu");
  gradcheck_op([](const V& v) { return gelu(v[0]); }, {x}, "gelu");
  gradcheck_op([](const V& v) { return gelu(v[0], "tanh"); }, {x}, "gelu tanh");
  gradcheck_op([](const V& v) { return silu(v[0]); }, {x}, "silu");
  gradcheck_op([](const V& v) { return sigmoid(v[0]); }, {x}, "sigmoid");
  gradcheck_op([](const V& v) { return tanh(v[0]); }, {x}, "tanh");
  gradcheck_op([](const V& v) { return softplus(v[0]); }, {x}, "softplus");
  gradcheck_op([](const V& v) { return softplus(v[0], 2.0, 3.0); }, {x}, "softplus beta threshold");
  gradcheck_op([](const V& v) { return softplus(v[0], -1.5); }, {x}, "softplus negative beta");
  gradcheck_op([](const V& v) { return softshrink(v[0], 0.7); }, {x}, "softshrink");
  // relu'(0) = 0 and softshrink'(+-lambd) = 0, as in PyTorch
  Var z(Tensor::zeros({1}, DType::F64), true);
  sum(relu(z)).backward();
  EXPECT_EQ(z.grad().to_double_vector(), (std::vector<double>{0}));
  Var k(Tensor::from_vector({3}, std::vector<double>{0.5, -0.5, 0.6}), true);
  sum(softshrink(k)).backward();
  EXPECT_EQ(k.grad().to_double_vector(), (std::vector<double>{0, 0, 1}));
}

TEST(Activation, GradientsAlongADimension) {
  Tensor x = random_tensor({2, 3, 4}, 31, -2, 2);
  for (int64_t dim : {0, 1, 2, -1}) {
    const std::string d = " dim " + std::to_string(dim);
    gradcheck_op([dim](const V& v) { return softmax(v[0], dim); }, {x}, "softmax" + d);
    gradcheck_op([dim](const V& v) { return log_softmax(v[0], dim); }, {x}, "log_softmax" + d);
  }
  Tensor e = random_tensor({2, 4, 6}, 32, -2, 2);
  for (int64_t dim : {0, 1, 2, -1})
    gradcheck_op([dim](const V& v) { return glu(v[0], dim); }, {e}, "glu dim " + std::to_string(dim));
  // composition: softmax feeding another op (non-contiguous gradient path through permute)
  gradcheck_op([](const V& v) { return permute(softmax(v[0], 1), {2, 0, 1}); }, {x}, "softmax then permute");
}

TEST(Activation, Float32MatchesFloat64) {
  Tensor x64 = random_tensor({6, 33}, 41, -4, 4);
  Var a(x64), b(x64.to(DType::F32));
  EXPECT_LT(max_abs_diff(gelu(a).value(), gelu(b).value()), 1e-6);
  EXPECT_LT(max_abs_diff(gelu(a, "tanh").value(), gelu(b, "tanh").value()), 1e-6);
  EXPECT_LT(max_abs_diff(silu(a).value(), silu(b).value()), 1e-6);
  EXPECT_LT(max_abs_diff(softplus(a).value(), softplus(b).value()), 1e-6);
  EXPECT_LT(max_abs_diff(softmax(a, 1).value(), softmax(b, 1).value()), 1e-6);
  EXPECT_LT(max_abs_diff(log_softmax(a, 0).value(), log_softmax(b, 0).value()), 1e-5);
  EXPECT_LT(max_abs_diff(glu(a, 0).value(), glu(b, 0).value()), 1e-5);
  EXPECT_EQ(softmax(b, 1).dtype(), DType::F32);
  EXPECT_LT(max_abs_diff(sigmoid(a).value(), sigmoid(b).value()), 1e-6);
  // gradients of the F32 SIMD paths (silu, sigmoid, gelu) against the F64 loops, saturated tails included;
  // 6 x 37 values: whole vectors and a tail
  Tensor xg = random_tensor({6, 37}, 42, -6, 6);
  for (int64_t i = 0; i < 8; ++i) xg.data<double>()[i * 23] = (i % 2 ? -1.0 : 1.0) * (15.0 + 30.0 * i);
  const Tensor w = random_tensor({6, 37}, 43, -1, 1);
  for (const char* op : {"silu", "sigmoid", "gelu"}) {
    std::vector<Tensor> grads;
    for (DType dt : {DType::F64, DType::F32}) {
      Var v(xg.to(dt), true);
      Var y = std::string(op) == "silu" ? silu(v) : std::string(op) == "sigmoid" ? sigmoid(v) : gelu(v);
      y.backward(w.to(dt));
      ASSERT_EQ(v.grad().dtype(), dt) << op;
      grads.push_back(v.grad());
    }
    EXPECT_LT(max_abs_diff(grads[0], grads[1]), 2e-6) << op;
  }
}

TEST(Activation, BadArgumentsThrow) {
  Var x(random_tensor({2, 3}, 51));
  expect_error([&] { gelu(x, "erf"); }, "gelu: approximate");
  expect_error([&] { softmax(x, 2); }, "softmax: dim 2 out of range for shape (2,3)");
  expect_error([&] { log_softmax(x, -3); }, "log_softmax: dim -3");
  expect_error([&] { glu(x, 1); }, "glu: halving dimension must be even");
  expect_error([&] { glu(Var(Tensor::full({}, 1.0, DType::F64))); }, "glu: input must have at least one dimension");
  expect_error([&] { softshrink(x, -0.1); }, "softshrink: lambd must be >= 0");
  expect_error([&] { softplus(x, 0.0); }, "softplus: beta must be nonzero");
  expect_error([&] { relu(Var(Tensor::zeros({3}, DType::I64))); }, "relu: input must be F32 or F64");
  expect_error([&] { softmax_backward(Tensor::zeros({3}, DType::F64), Tensor::zeros({2}, DType::F64), 0); },
               "softmax_backward: gradient (3)");
}

namespace {

// x Phi(x) and its derivative Phi(x) + x phi(x), in double.
double gelu_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double gelu_grad_ref(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi);
}

}  // namespace

TEST(Activation, GeluFloat32KernelOnEveryTarget) {
  // Dense grid over [-14, 14] (both regions of the erf split, the far negative tail where 1 + erf(x/sqrt 2)
  // in float would round to 0, and the clamp), plus special values; 10007 values so the tail runs.
  const int64_t n = 10007;
  std::vector<double> xs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) xs[static_cast<size_t>(i)] = -14.0 + 28.0 * static_cast<double>(i) / (n - 1);
  xs[0] = 0.0;
  xs[1] = -0.0;
  xs[2] = 1e-30;
  xs[3] = -std::sqrt(2.0);  // t = 1 exactly: the region boundary
  const Tensor x = Tensor::from_vector({n}, xs).to(DType::F32);
  const std::vector<double> xf = x.to_double_vector();  // the float inputs
  const Tensor seed = random_tensor({n}, 61, -1, 1, DType::F32);
  const std::vector<double> w = seed.to_double_vector();
  for (const std::string& target : simd_targets_available()) {
    simd_force_target(target);
    Var v(x, true);
    Var y = gelu(v);
    y.backward(seed);
    const std::vector<double> got = y.value().to_double_vector(), grad = v.grad().to_double_vector();
    double worst_abs = 0, worst_rel_tail = 0, worst_grad = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double r = gelu_ref(xf[i]), e = std::abs(got[i] - r);
      worst_abs = std::max(worst_abs, e / std::max(1.0, std::abs(r)));
      if (xf[i] < -1.5 && xf[i] > -13) worst_rel_tail = std::max(worst_rel_tail, e / std::abs(r));
      const double g = w[i] * gelu_grad_ref(xf[i]);
      worst_grad = std::max(worst_grad, std::abs(grad[i] - g) / std::max(1.0, std::abs(g)));
    }
    std::printf("gelu F32 %s: max err %.2g (rel to max(1,|y|)), negative tail rel %.2g, grad %.2g\n",
                target.c_str(), worst_abs, worst_rel_tail, worst_grad);
    EXPECT_LT(worst_abs, 4e-7) << target;        // about 2 float ulps
    // relative accuracy kept down to x = -13 (2.6e-7 where FMA splits x^2 exactly; 3.9e-6 on the portable
    // path, whose exp(-x^2/2) carries x^2's rounding); PyTorch's float formula has none left below x = -5.5
    EXPECT_LT(worst_rel_tail, 5e-6) << target;
    EXPECT_LT(worst_grad, 1e-6) << target;
    EXPECT_EQ(got[0], 0.0) << target;
    EXPECT_EQ(gelu(Var(Tensor::from_vector({1}, std::vector<double>{-20}).to(DType::F32))).value().at<float>({0}),
              0.0f);
  }
  simd_force_target("");
  // inf and nan as PyTorch: gelu(inf) = inf, gelu(-inf) = nan (-inf * 0), gelu(nan) = nan
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> sp =
      gelu(Var(Tensor::from_vector({3}, std::vector<double>{inf, -inf, std::nan("")}).to(DType::F32)))
          .value()
          .to_double_vector();
  EXPECT_EQ(sp[0], inf);
  EXPECT_TRUE(std::isnan(sp[1]));
  EXPECT_TRUE(std::isnan(sp[2]));
}

TEST(Activation, GluFloat32KernelOnEveryTarget) {
  // (3, 2*37, 5) along dim 1: rows of 185 floats (vector tails), and along the last dim (rows of 2 * 1).
  const Tensor x = random_tensor({3, 74, 5}, 71, -6, 6, DType::F32);
  const Tensor seed = random_tensor({3, 37, 5}, 72, -1, 1, DType::F32);
  const Tensor x64 = x.to(DType::F64);
  Var r64(x64, true);
  Var y64 = glu(r64, 1);
  y64.backward(seed.to(DType::F64));
  for (const std::string& target : simd_targets_available()) {
    simd_force_target(target);
    Var v(x, true);
    Var y = glu(v, 1);
    y.backward(seed);
    const double ey = max_abs_diff(y.value().to(DType::F64), y64.value());
    const double eg = max_abs_diff(v.grad().to(DType::F64), r64.grad());
    std::printf("glu F32 %s: y %.2g, grad %.2g\n", target.c_str(), ey, eg);
    EXPECT_LT(ey, 3e-6) << target;  // |y| < 6: about 2 float ulps
    EXPECT_LT(eg, 3e-6) << target;
    Tensor xl = random_tensor({4, 3, 2}, 73, -3, 3, DType::F32);
    EXPECT_LT(max_abs_diff(glu(Var(xl), -1).value().to(DType::F64), glu(Var(xl.to(DType::F64)), -1).value()), 1e-6)
        << target;
  }
  simd_force_target("");
}
