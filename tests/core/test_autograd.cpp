// Autograd engine and elementwise ops: finite-difference checks of every op (broadcasting included),
// gradient accumulation, no_grad, graph freeing and multi-output ops.
#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"

using namespace ssmkit::core;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;

TEST(Autograd, BinaryOpsWithBroadcasting) {
  using V = std::vector<Var>;
  Tensor a = random_tensor({2, 3, 4}, 1), b = random_tensor({3, 1}, 2), c = random_tensor({4}, 3);
  Tensor pos = random_tensor({3, 1}, 4, 0.5, 2.0);
  gradcheck_op([](const V& v) { return add(v[0], v[1]); }, {a, b}, "add");
  gradcheck_op([](const V& v) { return sub(v[0], v[1]); }, {a, c}, "sub");
  gradcheck_op([](const V& v) { return mul(v[0], v[1]); }, {b, a}, "mul");
  gradcheck_op([](const V& v) { return div(v[0], v[1]); }, {a, pos}, "div");
  gradcheck_op([](const V& v) { return v[0] * v[0] + v[0]; }, {a}, "reuse");  // accumulation over uses
}

TEST(Autograd, UnaryScalarAndReductions) {
  using V = std::vector<Var>;
  Tensor a = random_tensor({3, 5}, 5), p = random_tensor({3, 5}, 6, 0.5, 2.0);
  gradcheck_op([](const V& v) { return add_scalar(mul_scalar(v[0], 3.0), 1.0); }, {a}, "scalar");
  gradcheck_op([](const V& v) { return pow_scalar(v[0], 1.5); }, {p}, "pow");
  gradcheck_op([](const V& v) { return exp(v[0]); }, {a}, "exp");
  gradcheck_op([](const V& v) { return log(v[0]); }, {p}, "log");
  gradcheck_op([](const V& v) { return sqrt(v[0]); }, {p}, "sqrt");
  gradcheck_op([](const V& v) { return square(v[0]); }, {a}, "square");
  gradcheck_op([](const V& v) { return abs(v[0]); }, {a}, "abs");
  gradcheck_op([](const V& v) { return -v[0]; }, {a}, "neg");
  gradcheck_op([](const V& v) { return sum(v[0]); }, {a}, "sum all");
  gradcheck_op([](const V& v) { return mean(v[0]); }, {a}, "mean all");
  Tensor t = random_tensor({2, 3, 4}, 7);
  gradcheck_op([](const V& v) { return sum(v[0], {1}); }, {t}, "sum dim");
  gradcheck_op([](const V& v) { return mean(v[0], {0, 2}, true); }, {t}, "mean keepdim");
  gradcheck_op([](const V& v) { return reshape(permute(v[0], {2, 0, 1}), {4, -1}); }, {t}, "views");
  gradcheck_op([](const V& v) { return transpose(v[0], 0, -1); }, {t}, "transpose");
}

TEST(Autograd, ValuesOfOps) {
  Var a(Tensor::from_vector({2, 2}, std::vector<double>{1, 2, 3, 4}));
  Var b(Tensor::from_vector({2}, std::vector<double>{10, 20}));
  EXPECT_EQ((a + b).value().to_double_vector(), (std::vector<double>{11, 22, 13, 24}));
  EXPECT_EQ(sum(a, {0}).value().to_double_vector(), (std::vector<double>{4, 6}));
  EXPECT_EQ(mean(a).value().to_double_vector(), (std::vector<double>{2.5}));
  EXPECT_THROW(add(a, Var(Tensor::zeros({3}, DType::F64))), Error);
}

TEST(Autograd, LeavesAccumulateAcrossBackwardCalls) {
  Var x(Tensor::from_vector({3}, std::vector<double>{1, 2, 3}), true);
  sum(square(x)).backward();
  sum(square(x)).backward();
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{4, 8, 12}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, NoGradRecordsNothing) {
  Var x(Tensor::from_vector({3}, std::vector<double>{1, 2, 3}), true);
  Var y;
  {
    NoGradGuard ng;
    y = square(x);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.node()->inputs.empty());
  EXPECT_THROW(sum(y).backward(), Error);
  EXPECT_TRUE(grad_enabled());
}

TEST(Autograd, BackwardFreesTheGraph) {
  Var x(Tensor::from_vector({3}, std::vector<double>{1, 2, 3}), true);
  Var h = exp(x);
  std::weak_ptr<Node> weak = h.node();
  Var loss = sum(h);
  h = Var{};
  EXPECT_FALSE(weak.expired());  // kept alive by the loss's graph
  loss.backward();
  EXPECT_TRUE(weak.expired());   // freed once its backward ran
  EXPECT_THROW(loss.backward(), Error);
}

TEST(Autograd, MultiOutputOpRunsBackwardOnce) {
  Var x(Tensor::from_vector({2}, std::vector<double>{1, 2}), true);
  int calls = 0;
  std::vector<Var> outs = make_results(
      {x.value().clone(), x.value().clone()}, {x},
      [&calls](const std::vector<Tensor>& g, const std::vector<bool>&) {
        ++calls;
        Tensor s = Tensor::zeros({2}, DType::F64);
        for (const Tensor& t : g)
          if (t.defined()) s.add_(t);
        return std::vector<Tensor>{s};
      },
      "duplicate");
  sum(add(mul_scalar(outs[0], 2.0), outs[1])).backward();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{3, 3}));
}
