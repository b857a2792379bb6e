// matmul (torch.matmul semantics: batched, broadcast batch dims, 1-D promotion), linear and embedding:
// hand-computed values, a plain triple-loop oracle for broadcast batches, finite-difference gradients in
// double for every input, the frozen-weight path, deterministic scatter-add with repeated indices,
// padding_idx, and argument errors.
#include <algorithm>
#include <cmath>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/embedding.h"
#include "ssmkit/core/ops/matmul.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;
using ssmkit::test::f64;
using ssmkit::test::gradcheck_op;
using ssmkit::test::indices;
using ssmkit::test::random_tensor;
using V = std::vector<Var>;

TEST(Matmul, TwoByTwoValues) {
  Var a(f64({2, 2}, {1, 2, 3, 4})), b(f64({2, 2}, {5, 6, 7, 8}));
  EXPECT_EQ(matmul(a, b).value().to_double_vector(), (std::vector<double>{19, 22, 43, 50}));
  // non-contiguous operand (a transposed view)
  EXPECT_EQ(matmul(transpose(a, 0, 1), b).value().to_double_vector(), (std::vector<double>{26, 30, 38, 44}));
}

TEST(Matmul, BroadcastBatchesMatchTripleLoop) {
  // a (2,1,3,4), b (5,4,2) -> (2,5,3,2)
  Tensor a = random_tensor({2, 1, 3, 4}, 1), b = random_tensor({5, 4, 2}, 2);
  Tensor c = matmul_forward(a, b);
  ASSERT_EQ(c.shape(), Shape({2, 5, 3, 2}));
  double worst = 0;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j)
      for (int64_t r = 0; r < 3; ++r)
        for (int64_t s = 0; s < 2; ++s) {
          double want = 0;
          for (int64_t k = 0; k < 4; ++k) want += a.at<double>({i, 0, r, k}) * b.at<double>({j, k, s});
          worst = std::max(worst, std::abs(c.at<double>({i, j, r, s}) - want));
        }
  EXPECT_LT(worst, 1e-14);
}

TEST(Matmul, OneDimensionalOperands) {
  Var u(f64({3}, {1, 2, 3})), w(f64({3}, {4, 5, 6}));
  Var dot = matmul(u, w);
  EXPECT_EQ(dot.shape(), Shape{});
  EXPECT_EQ(dot.value().to_double_vector(), std::vector<double>{32});
  Var m(f64({2, 3}, {1, 0, 0, 0, 1, 1}));
  EXPECT_EQ(matmul(m, u).shape(), Shape({2}));
  EXPECT_EQ(matmul(m, u).value().to_double_vector(), (std::vector<double>{1, 5}));
  Var bt(random_tensor({4, 3, 2}, 3));
  EXPECT_EQ(matmul(u, bt).shape(), Shape({4, 2}));
  EXPECT_EQ(matmul(Var(random_tensor({4, 2, 3}, 4)), u).shape(), Shape({4, 2}));
}

TEST(Matmul, Gradients) {
  auto mm = [](const V& v) { return matmul(v[0], v[1]); };
  gradcheck_op(mm, {random_tensor({3, 4}, 5), random_tensor({4, 2}, 6)}, "2-D");
  gradcheck_op(mm, {random_tensor({2, 3, 4}, 7), random_tensor({2, 4, 5}, 8)}, "same batch");
  gradcheck_op(mm, {random_tensor({2, 1, 3, 4}, 9), random_tensor({5, 4, 2}, 10)}, "broadcast both");
  gradcheck_op(mm, {random_tensor({3, 4}, 11), random_tensor({2, 4, 5}, 12)}, "a broadcast");
  gradcheck_op(mm, {random_tensor({2, 2, 3, 4}, 13), random_tensor({4, 5}, 14)}, "b 2-D (folded)");
  gradcheck_op(mm, {random_tensor({4}, 15), random_tensor({4}, 16)}, "dot");
  gradcheck_op(mm, {random_tensor({4}, 17), random_tensor({3, 4, 2}, 18)}, "vector x batch");
  gradcheck_op(mm, {random_tensor({3, 2, 4}, 19), random_tensor({4}, 20)}, "batch x vector");
  gradcheck_op([](const V& v) { return matmul(transpose(v[0], 1, 2), v[1]); },
               {random_tensor({2, 4, 3}, 21), random_tensor({2, 4, 2}, 22)}, "transposed operand");
}

TEST(Matmul, Float32LargerThanBlocks) {
  // The BLAS's blocked GEMM path in F32 against the F64 result.
  Tensor a = random_tensor({3, 70, 130}, 23), b = random_tensor({130, 90}, 24);
  Tensor c64 = matmul_forward(a, b), c32 = matmul_forward(a.to(DType::F32), b.to(DType::F32));
  EXPECT_EQ(c32.dtype(), DType::F32);
  EXPECT_LT(max_abs_diff(c64, c32), 1e-4);
  Tensor bb = random_tensor({3, 130, 90}, 25);
  EXPECT_LT(max_abs_diff(matmul_forward(a, bb), matmul_forward(a.to(DType::F32), bb.to(DType::F32))), 1e-4);
}

TEST(Matmul, ThreadedBatchedBackwardMatchesPerBatch) {
  // a (4,40,50) one matrix per batch (threads), b (1,50,60) broadcast (accumulated in batch order)
  Tensor a = random_tensor({4, 40, 50}, 43), b = random_tensor({1, 50, 60}, 44), dc = random_tensor({4, 40, 60}, 45);
  Tensor da, db;
  matmul_backward(&da, &db, dc, a, b);
  ASSERT_EQ(da.shape(), a.shape());
  ASSERT_EQ(db.shape(), b.shape());
  Tensor db_want = Tensor::zeros({50, 60}, DType::F64);
  double worst = 0;
  for (int64_t i = 0; i < 4; ++i) {
    Tensor dai, dbi;
    matmul_backward(&dai, &dbi, dc.select(0, i), a.select(0, i), b.select(0, 0));
    worst = std::max(worst, max_abs_diff(da.select(0, i), dai));
    db_want.add_(dbi);
  }
  EXPECT_LT(worst, 1e-12);
  EXPECT_LT(max_abs_diff(db.select(0, 0), db_want), 1e-12);
}

TEST(Matmul, ManySmallBatchesOnThreadsMatchPerBatch) {
  // 64 batches of 16x16x16: threads over batches (each gemm on one thread), forward and backward
  Tensor a = random_tensor({64, 16, 16}, 46), b = random_tensor({64, 16, 16}, 47), dc = random_tensor({64, 16, 16}, 48);
  Tensor c = matmul_forward(a, b), da, db;
  matmul_backward(&da, &db, dc, a, b);
  double worst = 0;
  for (int64_t i = 0; i < 64; i += 9) {
    Tensor dai, dbi;
    matmul_backward(&dai, &dbi, dc.select(0, i), a.select(0, i), b.select(0, i));
    worst = std::max({worst, max_abs_diff(c.select(0, i), matmul_forward(a.select(0, i), b.select(0, i))),
                      max_abs_diff(da.select(0, i), dai), max_abs_diff(db.select(0, i), dbi)});
  }
  EXPECT_LT(worst, 1e-13);
}

TEST(Matmul, EmptyDimensions) {
  // k = 0: the product is all zeros; m = 0: an empty result; gradients of the right (empty) shapes
  Tensor c = matmul_forward(Tensor::zeros({2, 3, 0}, DType::F64), Tensor::zeros({2, 0, 4}, DType::F64));
  ASSERT_EQ(c.shape(), Shape({2, 3, 4}));
  EXPECT_EQ(max_abs(c), 0.0);
  EXPECT_EQ(matmul_forward(Tensor::zeros({0, 3}, DType::F64), random_tensor({3, 2}, 49)).shape(), Shape({0, 2}));
  Tensor da, db;
  matmul_backward(&da, &db, Tensor::zeros({2, 3, 4}, DType::F64), Tensor::zeros({2, 3, 0}, DType::F64),
                  Tensor::zeros({2, 0, 4}, DType::F64));
  EXPECT_EQ(da.shape(), Shape({2, 3, 0}));
  EXPECT_EQ(db.shape(), Shape({2, 0, 4}));
}

TEST(Matmul, BadShapesThrow) {
  Var a(random_tensor({2, 3}, 26));
  expect_error([&] { matmul(a, Var(random_tensor({4, 2}, 27))); }, "matmul: inner sizes differ: a (2,3) has k = 3, b (4,2) has k = 4");
  expect_error([&] { matmul(Var(random_tensor({2, 3, 4}, 28)), Var(random_tensor({3, 4, 5}, 29))); },
               "matmul: batch dims of (2,3,4) and (3,4,5) do not broadcast");
  expect_error([&] { matmul(a, Var(random_tensor({3, 2}, 30, -1, 1, DType::F32))); }, "matmul: operands must both be F32 or both F64");
  expect_error([&] { matmul(a, Var(Tensor::full({}, 1.0, DType::F64))); }, "matmul: operands must have at least 1 dim");
}

TEST(Linear, ValuesAndGradients) {
  Var x(f64({1, 2}, {1, 2})), W(f64({3, 2}, {1, 0, 0, 1, 1, 1})), b(f64({3}, {10, 20, 30}));
  EXPECT_EQ(linear(x, W, b).value().to_double_vector(), (std::vector<double>{11, 22, 33}));
  EXPECT_EQ(linear(x, W).value().to_double_vector(), (std::vector<double>{1, 2, 3}));
  Tensor xt = random_tensor({2, 3, 4}, 31), wt = random_tensor({5, 4}, 32), bt = random_tensor({5}, 33);
  gradcheck_op([](const V& v) { return linear(v[0], v[1], v[2]); }, {xt, wt, bt}, "linear");
  gradcheck_op([](const V& v) { return linear(v[0], v[1]); }, {xt, wt}, "linear no bias");
  // frozen weight: the x and bias gradients match the full path
  Tensor seed = random_tensor({2, 3, 5}, 34);
  Var x1(xt, true), w1(wt, true), b1(bt, true), x2(xt, true), w2(wt, false), b2(bt, true);
  linear(x1, w1, b1).backward(seed);
  linear(x2, w2, b2).backward(seed);
  EXPECT_FALSE(w2.grad().defined());
  EXPECT_LT(max_abs_diff(x1.grad(), x2.grad()), 1e-14);
  EXPECT_LT(max_abs_diff(b1.grad(), b2.grad()), 1e-14);
  expect_error([&] { linear(Var(random_tensor({2, 3}, 35)), Var(wt)); }, "does not end in the weight's in-features 4");
}

TEST(Embedding, ValuesAndScatterAdd) {
  Var W(f64({4, 2}, {0, 1, 10, 11, 20, 21, 30, 31}), true);
  Tensor idx = indices({2, 3}, {3, 1, 3, 0, 0, 2});
  Var y = embedding(W, idx);
  EXPECT_EQ(y.shape(), Shape({2, 3, 2}));
  EXPECT_EQ(y.value().to_double_vector(), (std::vector<double>{30, 31, 10, 11, 30, 31, 0, 1, 0, 1, 20, 21}));
  // gradient of sum(y * g): rows accumulate over repeated indices
  Tensor g = f64({2, 3, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  y.backward(g);
  EXPECT_EQ(W.grad().to_double_vector(), (std::vector<double>{16, 18, 3, 4, 11, 12, 6, 8}));
  // padding_idx: no gradient to that row (negative counts from V); I32 indices work too
  Var W2(W.value(), true);
  Tensor idx32 = indices({2, 3}, {3, 1, 3, 0, 0, 2}).to(DType::I32);
  embedding(W2, idx32, -1).backward(g);
  EXPECT_EQ(W2.grad().to_double_vector(), (std::vector<double>{16, 18, 3, 4, 11, 12, 0, 0}));
  // 0-d index -> (D)
  EXPECT_EQ(embedding(W, indices({}, {2})).value().to_double_vector(), (std::vector<double>{20, 21}));
}

TEST(Embedding, GradientAndLargeTableIsDeterministic) {
  Tensor idx = indices({5}, {1, 1, 0, 2, 1});
  gradcheck_op([&](const V& v) { return embedding(v[0], idx); }, {random_tensor({3, 4}, 36)}, "embedding");
  // (with padding_idx the padding row's gradient is zero by design, not the derivative: see ValuesAndScatterAdd)
  // threaded backward (many columns) equals a sequential accumulation
  const int64_t Vn = 50, D = 300, n = 400;
  Tensor big = Tensor::empty({n}, DType::I64);
  for (int64_t i = 0; i < n; ++i) big.data<int64_t>()[i] = (i * 7) % Vn;
  Tensor gw = random_tensor({n, D}, 38, -1, 1, DType::F32);
  Var Wb(random_tensor({Vn, D}, 39, -1, 1, DType::F32), true);
  embedding(Wb, big).backward(gw);
  Tensor want = Tensor::zeros({Vn, D}, DType::F32);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < D; ++d) want.data<float>()[((i * 7) % Vn) * D + d] += gw.data<float>()[i * D + d];
  EXPECT_EQ(max_abs_diff(Wb.grad(), want), 0.0);
}

TEST(Embedding, BadArgumentsThrow) {
  Var W(random_tensor({4, 2}, 40));
  expect_error([&] { embedding(W, indices({2}, {1, 4})); }, "embedding: index 4 at position 1 is out of range for a table of 4 rows");
  expect_error([&] { embedding(W, indices({1}, {-1})); }, "embedding: index -1");
  expect_error([&] { embedding(W, random_tensor({2}, 41)); }, "embedding: indices must be an I64 or I32 tensor, got F64");
  expect_error([&] { embedding(Var(random_tensor({4}, 42)), indices({1}, {0})); }, "embedding: weight must be (V,D), got (4)");
  expect_error([&] { embedding(W, indices({1}, {0}), 4); }, "embedding: padding_idx 4 must be within [-4, 4)");
}
