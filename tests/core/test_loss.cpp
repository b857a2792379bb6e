// Losses: hand-computed values (the numbers torch.nn.functional gives for the same inputs), agreement
// between equivalent forms (index vs probability targets, (N,C,d) vs flattened (N*d,C)), ignore_index,
// label smoothing, numerical stability, finite-difference gradients in double for every differentiable
// input and reduction, and argument errors.
#include <cmath>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/loss.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;
using ssmkit::test::f64;
using ssmkit::test::gradcheck_op;
using ssmkit::test::indices;
using ssmkit::test::random_tensor;
using V = std::vector<Var>;

namespace {

double scalar(const Var& v) {
  EXPECT_EQ(v.shape(), Shape{});
  return v.value().to_double_vector()[0];
}

const Reduction kAll[] = {Reduction::None, Reduction::Mean, Reduction::Sum};
std::string name_of(Reduction r) { return r == Reduction::None ? "none" : r == Reduction::Mean ? "mean" : "sum"; }

}  // namespace

TEST(Loss, MseAndL1Values) {
  Var x(f64({3}, {1, 2, 3})), t(f64({3}, {1, 0, 0}));
  EXPECT_DOUBLE_EQ(scalar(mse_loss(x, t)), 13.0 / 3);
  EXPECT_DOUBLE_EQ(scalar(mse_loss(x, t, Reduction::Sum)), 13.0);
  EXPECT_EQ(mse_loss(x, t, Reduction::None).value().to_double_vector(), (std::vector<double>{0, 4, 9}));
  EXPECT_DOUBLE_EQ(scalar(l1_loss(x, t)), 5.0 / 3);
  EXPECT_EQ(l1_loss(x, t, Reduction::None).value().to_double_vector(), (std::vector<double>{0, 2, 3}));
  // l1 gradient is sign(x - t), 0 where equal
  Var xg(f64({3}, {1, 2, -3}), true);
  l1_loss(xg, t, Reduction::Sum).backward();
  EXPECT_EQ(xg.grad().to_double_vector(), (std::vector<double>{0, 1, -1}));
  // empty mean is NaN, like PyTorch
  EXPECT_TRUE(std::isnan(scalar(mse_loss(Var(Tensor::zeros({0}, DType::F64)), Var(Tensor::zeros({0}, DType::F64))))));
}

TEST(Loss, MseAndL1Gradients) {
  Tensor x = random_tensor({3, 4}, 1), t = random_tensor({3, 4}, 2);
  for (Reduction r : kAll) {
    gradcheck_op([r](const V& v) { return mse_loss(v[0], v[1], r); }, {x, t}, "mse " + name_of(r));
    gradcheck_op([r](const V& v) { return l1_loss(v[0], v[1], r); }, {x, t}, "l1 " + name_of(r));
  }
}

TEST(Loss, CrossEntropyIndexValues) {
  // logits [[1,2,3],[1,1,1]], targets [2,0]: nll = lse(1,2,3) - 3 and log 3
  Var z(f64({2, 3}, {1, 2, 3, 1, 1, 1}));
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double nll0 = lse - 3, nll1 = std::log(3.0);
  EXPECT_NEAR(scalar(cross_entropy(z, indices({2}, {2, 0}))), (nll0 + nll1) / 2, 1e-14);
  EXPECT_NEAR(scalar(cross_entropy(z, indices({2}, {2, 0}), -100, 0.0, Reduction::Sum)), nll0 + nll1, 1e-14);
  Var none = cross_entropy(z, indices({2}, {2, 0}), -100, 0.0, Reduction::None);
  EXPECT_EQ(none.shape(), Shape({2}));
  EXPECT_NEAR(none.value().to_double_vector()[0], nll0, 1e-14);
  // label smoothing: (1-eps) nll + eps mean_c(-log p_c); mean_c(-log p_c) = lse - 2 for row 0, log 3 for row 1
  const double eps = 0.1;
  const double s0 = (1 - eps) * nll0 + eps * (lse - 2), s1 = (1 - eps) * nll1 + eps * std::log(3.0);
  EXPECT_NEAR(scalar(cross_entropy(z, indices({2}, {2, 0}), -100, eps)), (s0 + s1) / 2, 1e-14);
  // ignore_index: the ignored row adds nothing and the mean divides by the 1 remaining target
  EXPECT_NEAR(scalar(cross_entropy(z, indices({2}, {2, -100}))), nll0, 1e-14);
  EXPECT_NEAR(scalar(cross_entropy(z, indices({2}, {2, 7}), 7, eps)), s0, 1e-14);
  Var none_ig = cross_entropy(z, indices({2}, {-100, 0}), -100, eps, Reduction::None);
  EXPECT_EQ(none_ig.value().to_double_vector()[0], 0.0);
  EXPECT_NEAR(none_ig.value().to_double_vector()[1], s1, 1e-14);
  // all ignored: NaN for the mean (0/0), 0 for the sum
  EXPECT_TRUE(std::isnan(scalar(cross_entropy(z, indices({2}, {-100, -100})))));
  EXPECT_EQ(scalar(cross_entropy(z, indices({2}, {-100, -100}), -100, 0.0, Reduction::Sum)), 0.0);
  // ... and the gradient is zero, not NaN (PyTorch writes nothing for ignored targets)
  Var zg(z.value(), true);
  cross_entropy(zg, indices({2}, {-100, -100})).backward();
  EXPECT_EQ(max_abs(zg.grad()), 0.0);
  // unbatched (C) with a 0-d target
  EXPECT_NEAR(scalar(cross_entropy(Var(f64({3}, {1, 2, 3})), indices({}, {2}))), nll0, 1e-14);
  // stable for huge logits
  EXPECT_NEAR(scalar(cross_entropy(Var(f64({1, 2}, {1000, 0})), indices({1}, {1}))), 1000.0, 1e-9);
}

TEST(Loss, CrossEntropySpatialMatchesFlattened) {
  // logits (N,C,d1,d2) = (2,3,2,2) vs the same data as (N*d1*d2, C)
  Tensor z = random_tensor({2, 3, 2, 2}, 5, -2, 2);
  Tensor y = indices({2, 2, 2}, {0, 2, 1, 1, 2, 0, -100, 1});
  Var flat = reshape(permute(Var(z), {0, 2, 3, 1}), {8, 3});
  for (double eps : {0.0, 0.2}) {
    for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
      const double a = scalar(cross_entropy(Var(z), y, -100, eps, r));
      const double b = scalar(cross_entropy(flat, y.view({8}), -100, eps, r));
      EXPECT_NEAR(a, b, 1e-13) << "eps " << eps << " " << name_of(r);
    }
    Var none = cross_entropy(Var(z), y, -100, eps, Reduction::None);
    EXPECT_EQ(none.shape(), Shape({2, 2, 2}));
    const std::vector<double> nf = cross_entropy(flat, y.view({8}), -100, eps, Reduction::None).value().to_double_vector();
    EXPECT_EQ(none.value().to_double_vector().size(), nf.size());
    for (size_t i = 0; i < nf.size(); ++i) EXPECT_NEAR(none.value().to_double_vector()[i], nf[i], 1e-13);
  }
}

TEST(Loss, CrossEntropyProbabilityTargets) {
  // one-hot probabilities give the index loss, with and without label smoothing
  Tensor z = random_tensor({4, 5}, 6, -2, 2);
  Tensor onehot = Tensor::zeros({4, 5}, DType::F64);
  const std::vector<int64_t> cls = {3, 0, 4, 1};
  for (int64_t i = 0; i < 4; ++i) onehot.at<double>({i, cls[static_cast<size_t>(i)]}) = 1;
  for (double eps : {0.0, 0.3})
    for (Reduction r : {Reduction::Mean, Reduction::Sum})
      EXPECT_NEAR(scalar(cross_entropy(Var(z), Var(onehot), eps, r)),
                  scalar(cross_entropy(Var(z), indices({4}, cls), -100, eps, r)), 1e-13);
  // soft target by hand: -sum_c t_c log p_c with p = softmax([0, ln 3]) = (1/4, 3/4)
  Var l = cross_entropy(Var(f64({2}, {0, std::log(3.0)})), Var(f64({2}, {0.5, 0.5})));
  EXPECT_NEAR(scalar(l), -0.5 * std::log(0.25) - 0.5 * std::log(0.75), 1e-14);
  // (N,C,d): Mean divides by N*d
  Tensor z3 = random_tensor({2, 3, 4}, 7), t3 = random_tensor({2, 3, 4}, 8, 0, 1);
  EXPECT_NEAR(scalar(cross_entropy(Var(z3), Var(t3))) * 8,
              scalar(cross_entropy(Var(z3), Var(t3), 0.0, Reduction::Sum)), 1e-12);
  EXPECT_EQ(cross_entropy(Var(z3), Var(t3), 0.0, Reduction::None).shape(), Shape({2, 4}));
}

TEST(Loss, CrossEntropyGradients) {
  Tensor z = random_tensor({3, 4}, 9, -2, 2);
  Tensor y = indices({3}, {1, -100, 3});
  for (Reduction r : kAll)
    for (double eps : {0.0, 0.25})
      gradcheck_op([&, r, eps](const V& v) { return cross_entropy(v[0], y, -100, eps, r); }, {z},
                   "ce index " + name_of(r) + " eps " + std::to_string(eps));
  Tensor z4 = random_tensor({2, 3, 2, 3}, 10, -2, 2);
  Tensor y4 = indices({2, 2, 3}, {0, 1, 2, 2, 1, 0, 1, 1, -1, 0, 2, 2});
  gradcheck_op([&](const V& v) { return cross_entropy(v[0], y4, -1, 0.1); }, {z4}, "ce index spatial");
  gradcheck_op([&](const V& v) { return cross_entropy(v[0], y4, -1, 0.1, Reduction::None); }, {z4}, "ce spatial none");
  gradcheck_op([](const V& v) { return cross_entropy(v[0], indices({}, {2})); }, {random_tensor({4}, 11)}, "ce 1-d");
  // probability targets: gradients for both logits and target
  Tensor zp = random_tensor({2, 3, 2}, 12, -2, 2), tp = random_tensor({2, 3, 2}, 13, 0, 1);
  for (Reduction r : kAll)
    gradcheck_op([r](const V& v) { return cross_entropy(v[0], v[1], 0.2, r); }, {zp, tp}, "ce probs " + name_of(r));
}

TEST(Loss, BinaryCrossEntropyWithLogitsValues) {
  // x = 0, t = 1: log 2; x = 2, t = 0: softplus(2); huge |x| stays finite
  Var x(f64({4}, {0, 2, 100, -100})), t(f64({4}, {1, 0, 0, 1}));
  Var l = binary_cross_entropy_with_logits(x, t, {}, Reduction::None);
  const std::vector<double> v = l.value().to_double_vector();
  EXPECT_NEAR(v[0], std::log(2.0), 1e-15);
  EXPECT_NEAR(v[1], std::log1p(std::exp(2.0)), 1e-14);
  EXPECT_NEAR(v[2], 100.0, 1e-12);
  EXPECT_NEAR(v[3], 100.0, 1e-12);
  EXPECT_NEAR(scalar(binary_cross_entropy_with_logits(x, t)), (v[0] + v[1] + v[2] + v[3]) / 4, 1e-12);
  // pos_weight scales the positive term: x = 0, t = 1, pw = 3 -> 3 log 2; soft target t = 0.5 at x = 0:
  // 0.5 * 0 + (1 + 2 * 0.5) log 2
  Var x2(f64({1, 2}, {0, 0})), t2(f64({1, 2}, {1, 0.5}));
  Var l2 = binary_cross_entropy_with_logits(x2, t2, f64({2}, {3, 3}), Reduction::None);
  EXPECT_NEAR(l2.value().to_double_vector()[0], 3 * std::log(2.0), 1e-15);
  EXPECT_NEAR(l2.value().to_double_vector()[1], 2 * std::log(2.0), 1e-15);
  // weight multiplies each element
  Var l3 = binary_cross_entropy_with_logits(x2, t2, {}, Reduction::Sum, f64({2}, {2, 0}));
  EXPECT_NEAR(scalar(l3), 2 * std::log(2.0), 1e-15);
}

TEST(Loss, BinaryCrossEntropyWithLogitsGradients) {
  Tensor x = random_tensor({3, 4}, 14, -3, 3), t = random_tensor({3, 4}, 15, 0, 1);
  Tensor pw = random_tensor({4}, 16, 0.5, 3), w = random_tensor({3, 1}, 17, 0.5, 2);
  for (Reduction r : kAll) {
    gradcheck_op([r](const V& v) { return binary_cross_entropy_with_logits(v[0], v[1], {}, r); }, {x, t},
                 "bce " + name_of(r));
    gradcheck_op([&, r](const V& v) { return binary_cross_entropy_with_logits(v[0], v[1], pw, r, w); }, {x, t},
                 "bce pos_weight weight " + name_of(r));
  }
}

TEST(Loss, KlDivValuesAndGradients) {
  // KL(p || q) with p = (1/2, 1/2), q = (1/4, 3/4): 1/2 log 2 + 1/2 log(2/3)
  const double kl = 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3);
  Var logq(f64({1, 2}, {std::log(0.25), std::log(0.75)})), p(f64({1, 2}, {0.5, 0.5}));
  EXPECT_NEAR(scalar(kl_div(logq, p, Reduction::BatchMean)), kl, 1e-15);
  EXPECT_NEAR(scalar(kl_div(logq, p, Reduction::Sum)), kl, 1e-15);
  EXPECT_NEAR(scalar(kl_div(logq, p)), kl / 2, 1e-15);  // mean over elements
  Var logp(f64({1, 2}, {std::log(0.5), std::log(0.5)}));
  EXPECT_NEAR(scalar(kl_div(logq, logp, Reduction::BatchMean, true)), kl, 1e-15);
  // a zero target contributes 0 (0 log 0 = 0)
  Var onehot(f64({1, 2}, {1, 0}));
  EXPECT_NEAR(scalar(kl_div(logq, onehot, Reduction::Sum)), -std::log(0.25), 1e-15);
  // batchmean divides by size(0)
  Tensor x = random_tensor({3, 4}, 18, -3, -0.1), t = random_tensor({3, 4}, 19, 0.05, 1);
  EXPECT_NEAR(scalar(kl_div(Var(x), Var(t), Reduction::BatchMean)) * 3,
              scalar(kl_div(Var(x), Var(t), Reduction::Sum)), 1e-13);
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum, Reduction::BatchMean}) {
    gradcheck_op([r](const V& v) { return kl_div(v[0], v[1], r); }, {x, t}, "kl");
    gradcheck_op([r](const V& v) { return kl_div(v[0], v[1], r, true); }, {x, random_tensor({3, 4}, 26, -3, 0.5)}, "kl log_target");
  }
}

TEST(Loss, BadArgumentsThrow) {
  Var z(random_tensor({2, 3}, 20));
  expect_error([&] { cross_entropy(z, indices({2}, {0, 3})); }, "cross_entropy: target 3 at position 1 is out of range for 3 classes");
  expect_error([&] { cross_entropy(z, indices({3}, {0, 1, 2})); }, "cross_entropy: target (3) must be (2)");
  expect_error([&] { cross_entropy(z, Tensor::zeros({2}, DType::F64)); }, "target must be an I64 tensor");
  expect_error([&] { cross_entropy(z, indices({2}, {0, 1}), -100, 1.5); }, "label_smoothing must be in [0, 1]");
  expect_error([&] { cross_entropy(z, indices({2}, {0, 1}), -100, 0.0, Reduction::BatchMean); }, "BatchMean is only for kl_div");
  expect_error([&] { cross_entropy(z, Var(random_tensor({2, 4}, 21))); }, "cross_entropy: target (2,4) must have the shape of input (2,3)");
  expect_error([&] { cross_entropy(Var(Tensor::full({}, 1.0, DType::F64)), indices({}, {0})); }, "logits must be (C)");
  expect_error([&] { mse_loss(z, Var(random_tensor({3, 2}, 22))); }, "mse_loss: target (3,2) must have the shape of input (2,3)");
  expect_error([&] { l1_loss(z, Var(random_tensor({2, 3}, 23, 0, 1, DType::F32))); }, "l1_loss: input (F64) and target (F32) dtypes differ");
  expect_error([&] { binary_cross_entropy_with_logits(z, z, random_tensor({4}, 24)); },
               "binary_cross_entropy_with_logits: pos_weight (4) does not broadcast to the input shape (2,3)");
  expect_error([&] { kl_div(z, Var(random_tensor({6}, 25))); }, "kl_div: target (6)");
}
