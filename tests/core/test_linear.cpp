// linear_forward / linear_backward kernels (ops/linear.h, on gemm()): hand-computed values with and
// without bias, the accumulate contract (dW, db and a given dx are added into), finite-difference
// gradients in double, F32 against F64 on sizes past the BLAS's blocking, empty dimensions, and errors
// naming the argument at fault.
#include "gradcheck.h"
#include "ssmkit/core/ops/linear.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::expect_error;
using ssmkit::test::f64;
using ssmkit::test::gradcheck;
using ssmkit::test::random_tensor;

TEST(LinearKernel, HandComputedForwardAndBackward) {
  // x (2,2), W (3,2), b (3): y = x W^T + b
  const Tensor x = f64({2, 2}, {1, 2, 3, 4}), W = f64({3, 2}, {1, 0, 0, 1, 1, -1}), b = f64({3}, {10, 20, 30});
  Tensor y;
  linear_forward(y, x, W, b);
  EXPECT_EQ(y.to_double_vector(), (std::vector<double>{11, 22, 29, 13, 24, 29}));
  linear_forward(y, x, W, Tensor{});
  EXPECT_EQ(y.to_double_vector(), (std::vector<double>{1, 2, -1, 3, 4, -1}));
  // dy = ones: dx = dy W = row sums of W's columns, dW = dy^T x, db = column sums of dy
  const Tensor dy = Tensor::full({2, 3}, 1.0, DType::F64);
  Tensor dx, dW, db;
  linear_backward(&dx, dW, &db, dy, x, W);
  EXPECT_EQ(dx.to_double_vector(), (std::vector<double>{2, 0, 2, 0}));
  EXPECT_EQ(dW.to_double_vector(), (std::vector<double>{4, 6, 4, 6, 4, 6}));
  EXPECT_EQ(db.to_double_vector(), (std::vector<double>{2, 2, 2}));
  // a second backward adds into dW, db and the given dx
  linear_backward(&dx, dW, &db, dy, x, W);
  EXPECT_EQ(dx.to_double_vector(), (std::vector<double>{4, 0, 4, 0}));
  EXPECT_EQ(dW.to_double_vector(), (std::vector<double>{8, 12, 8, 12, 8, 12}));
  EXPECT_EQ(db.to_double_vector(), (std::vector<double>{4, 4, 4}));
}

TEST(LinearKernel, GradcheckWithLeadingDims) {
  Tensor x = random_tensor({2, 3, 4}, 1), W = random_tensor({5, 4}, 2), b = random_tensor({5}, 3);
  const Tensor w = random_tensor({2, 3, 5}, 4);
  auto loss = [&] {
    Tensor y;
    linear_forward(y, x, W, b);
    return dot(y, w);
  };
  Tensor dx, dW, db;
  linear_backward(&dx, dW, &db, w, x, W);
  gradcheck(loss, x, dx, "x");
  gradcheck(loss, W, dW, "weight");
  gradcheck(loss, b, db, "bias");
}

TEST(LinearKernel, Float32MatchesFloat64PastBlockSizes) {
  // 300 rows x 260 in -> 190 out: several of OpenBLAS's blocks in every dimension
  const Tensor x = random_tensor({3, 100, 260}, 5), W = random_tensor({190, 260}, 6), b = random_tensor({190}, 7);
  const Tensor dy = random_tensor({3, 100, 190}, 8);
  Tensor y64, y32, dx64, dx32, dW64, dW32, db64, db32;
  linear_forward(y64, x, W, b);
  linear_forward(y32, x.to(DType::F32), W.to(DType::F32), b.to(DType::F32));
  EXPECT_EQ(y32.dtype(), DType::F32);
  EXPECT_LT(max_abs_diff(y64, y32), 1e-4);
  linear_backward(&dx64, dW64, &db64, dy, x, W);
  linear_backward(&dx32, dW32, &db32, dy.to(DType::F32), x.to(DType::F32), W.to(DType::F32));
  EXPECT_LT(max_abs_diff(dx64, dx32), 1e-4);
  EXPECT_LT(max_abs_diff(dW64, dW32), 1e-3);  // sums over 300 rows
  EXPECT_LT(max_abs_diff(db64, db32), 1e-4);
}

TEST(LinearKernel, NonContiguousInputAndEmptyDims) {
  // a transposed (non-contiguous) input gives the result of its contiguous copy
  const Tensor xt = random_tensor({4, 3}, 9), W = random_tensor({2, 4}, 10);
  Tensor y1, y2;
  linear_forward(y1, xt.transpose(0, 1), W, Tensor{});
  linear_forward(y2, xt.transpose(0, 1).contiguous(), W, Tensor{});
  EXPECT_EQ(y1.to_double_vector(), y2.to_double_vector());
  // zero in-features: y = b; zero rows: empty result, gradients unchanged
  Tensor y;
  linear_forward(y, Tensor::zeros({2, 0}, DType::F64), Tensor::zeros({3, 0}, DType::F64), f64({3}, {1, 2, 3}));
  EXPECT_EQ(y.to_double_vector(), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  Tensor dx, dW, db;
  linear_backward(&dx, dW, &db, Tensor::zeros({0, 2}, DType::F64), Tensor::zeros({0, 4}, DType::F64), W);
  EXPECT_EQ(dx.shape(), Shape({0, 4}));
  EXPECT_EQ(dW.to_double_vector(), std::vector<double>(8, 0.0));
  EXPECT_EQ(db.to_double_vector(), std::vector<double>(2, 0.0));
}

TEST(LinearKernel, BadArgumentsNameTheProblem) {
  const Tensor x = random_tensor({2, 4}, 11), W = random_tensor({3, 4}, 12), dy = random_tensor({2, 3}, 13);
  Tensor y;
  expect_error([&] { linear_forward(y, x, random_tensor({3, 5}, 14), Tensor{}); },
               "linear_forward: input (2,4) does not end in the weight's in-features 5");
  expect_error([&] { linear_forward(y, x, W, random_tensor({4}, 15)); }, "linear_forward: bias must be (3)");
  expect_error([&] { linear_forward(y, x.to(DType::F32), W, Tensor{}); }, "must both be F32 or both F64");
  Tensor dW = Tensor::zeros({4, 3}, DType::F64), db;
  expect_error([&] { linear_backward(nullptr, dW, nullptr, dy, x, W); },
               "linear_backward: dW must be a contiguous (3,4)");
  Tensor dW_ok;
  expect_error([&] { linear_backward(nullptr, dW_ok, nullptr, random_tensor({2, 2}, 16), x, W); },
               "linear_backward: dy (2,2) does not match the output of input (2,4)");
  Tensor bad_db = Tensor::zeros({2}, DType::F64);
  expect_error([&] { linear_backward(nullptr, dW_ok, &bad_db, dy, x, W); },
               "linear_backward: db must be a contiguous (3)");
  Tensor bad_dx = Tensor::zeros({4, 2}, DType::F64);
  expect_error([&] { linear_backward(&bad_dx, dW_ok, nullptr, dy, x, W); },
               "linear_backward: dx must be a contiguous (2,4)");
}
