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

TEST(Autograd, BroadcastingValuesForEveryStrideOfTheLastDim) {
  // The row loops: both operands contiguous along the row, one repeated (stride 0) either side, and a strided one
  // (a transposed view, stride 3) that takes the general loop.
  const Tensor t = random_tensor({4, 3}, 21), r = random_tensor({3}, 22), col = random_tensor({4, 1}, 23);
  const Tensor tt = t.transpose(0, 1);  // (3,4), last-dim stride 3
  const std::vector<double> vt = t.to_double_vector(), vr = r.to_double_vector(), vc = col.to_double_vector();
  std::vector<double> want_row(12), want_col(12), want_tt(12);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      want_row[static_cast<size_t>(i * 3 + j)] = vt[static_cast<size_t>(i * 3 + j)] * vr[static_cast<size_t>(j)];
      want_col[static_cast<size_t>(i * 3 + j)] = vc[static_cast<size_t>(i)] - vt[static_cast<size_t>(i * 3 + j)];
    }
  for (int64_t j = 0; j < 3; ++j)
    for (int64_t i = 0; i < 4; ++i)
      want_tt[static_cast<size_t>(j * 4 + i)] = vt[static_cast<size_t>(i * 3 + j)] + vc[static_cast<size_t>(i)];
  EXPECT_EQ(mul(Var(t), Var(r)).value().to_double_vector(), want_row);                        // strides 1, 1
  EXPECT_EQ(sub(Var(col), Var(t)).value().to_double_vector(), want_col);                      // strides 0, 1
  EXPECT_EQ(add(Var(tt), Var(col.view({4}))).value().to_double_vector(), want_tt);            // strides 3, 1
  EXPECT_EQ(add(Var(col.view({4})), Var(tt)).value().to_double_vector(), want_tt);            // strides 1, 3
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

// sum_to's block path (one run of adjacent summed dims, threaded for large inputs) adds in the same order as
// the plain loop, so it matches a serial reference to the bit; other patterns take the generic loop.
TEST(Autograd, BlockReductionsMatchSerialLoopsExactly) {
  const int64_t A = 3, Rn = 257, C = 300;  // A*R*C > 2^16: the threaded path
  Tensor t = random_tensor({A, Rn, C}, 11).to(DType::F32);
  const std::vector<float> v = [&] {
    std::vector<double> d = t.to_double_vector();
    return std::vector<float>(d.begin(), d.end());
  }();
  auto at = [&](int64_t a, int64_t r, int64_t c) { return v[static_cast<size_t>((a * Rn + r) * C + c)]; };
  // (A, R, C) -> (A, 1, C): the middle dim
  std::vector<double> mid(static_cast<size_t>(A * C)), lead(static_cast<size_t>(C)), tail(static_cast<size_t>(A));
  for (int64_t a = 0; a < A; ++a)
    for (int64_t c = 0; c < C; ++c) {
      float s = 0;
      for (int64_t r = 0; r < Rn; ++r) s += at(a, r, c);
      mid[static_cast<size_t>(a * C + c)] = s;
    }
  for (int64_t c = 0; c < C; ++c) {  // (A, R, C) -> (C): the leading dims, a bias gradient
    float s = 0;
    for (int64_t a = 0; a < A; ++a)
      for (int64_t r = 0; r < Rn; ++r) s += at(a, r, c);
    lead[static_cast<size_t>(c)] = s;
  }
  for (int64_t a = 0; a < A; ++a) {  // (A, R, C) -> (A, 1, 1): the trailing dims
    float s = 0;
    for (int64_t r = 0; r < Rn; ++r)
      for (int64_t c = 0; c < C; ++c) s += at(a, r, c);
    tail[static_cast<size_t>(a)] = s;
  }
  EXPECT_EQ(sum_to(t, {A, 1, C}).to_double_vector(), mid);
  EXPECT_EQ(sum_to(t, {C}).to_double_vector(), lead);
  EXPECT_EQ(sum_to(t, {A, 1, 1}).to_double_vector(), tail);
  EXPECT_EQ(sum_to(t.view({A, 1, Rn, C}), {A, 1, 1, C}).to_double_vector(), mid);  // a neutral size-1 dim
  // a non-contiguous input: (C, R, A) permuted back to (A, R, C)
  Tensor tp = t.permute({2, 1, 0}).contiguous().permute({2, 1, 0});
  EXPECT_EQ(sum_to(tp, {A, 1, C}).to_double_vector(), mid);
  // two summed runs (dims 0 and 2): the outer run first (over a, for every (r, c)), then the inner one
  std::vector<double> outer_inner(static_cast<size_t>(Rn));
  for (int64_t r = 0; r < Rn; ++r) {
    float s = 0;
    for (int64_t c = 0; c < C; ++c) {
      float sa = 0;
      for (int64_t a = 0; a < A; ++a) sa += at(a, r, c);
      s += sa;
    }
    outer_inner[static_cast<size_t>(r)] = s;
  }
  EXPECT_EQ(sum_to(t, {1, Rn, 1}).to_double_vector(), outer_inner);
  // the backward of a block sum repeats the gradient over the summed dim
  Var x(t, true);
  Tensor g = random_tensor({A, 1, C}, 12).to(DType::F32);
  sum(x, {1}, true).backward(g);
  const std::vector<double> gx = x.grad().to_double_vector(), gv = g.to_double_vector();
  for (int64_t a = 0; a < A; ++a)
    for (int64_t r = 0; r < Rn; r += 64)
      for (int64_t c = 0; c < C; ++c)
        ASSERT_EQ(gx[static_cast<size_t>((a * Rn + r) * C + c)], gv[static_cast<size_t>(a * C + c)]);
}
