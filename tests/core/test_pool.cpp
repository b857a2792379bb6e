// Pooling: values by hand for max pooling (ties route to the first maximum, -inf padding, dilation, ceil_mode),
// average pooling (count_include_pad both ways, ceil_mode windows clipped at in + pad), adaptive average and
// max pooling with non-divisible and upsampling bins, global pooling, F32 and strided inputs, finite-difference
// gradients in double, and shape errors.
#include <functional>
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/pool.h"

using namespace ssmkit::core;
using ssmkit::test::error_of;
using ssmkit::test::expect_near;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using ssmkit::test::values;
using ssmkit::test::var;

TEST(Pool, MaxPool2dByHandWithTies) {
  Var x = var({1, 1, 4, 4}, {1, 2, 5, 3,  //
                             4, 0, 1, 2,  //
                             7, 8, 6, 6,  //
                             2, 9, 6, 1},
              true);
  Var y = max_pool2d(x, {2, 2});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(values(y), (std::vector<double>{4, 5, 9, 6}));
  // the bottom-right window holds three 6s: the first in window order, (2,2), takes the gradient
  y.backward(Tensor::from_vector({1, 1, 2, 2}, std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 3, 0, 0}));
  // the kernel's indices are PyTorch's return_indices (flat h*W + w in each plane)
  Tensor yt, idx;
  PoolGeometry g;
  g.kernel_h = g.kernel_w = g.stride_h = g.stride_w = 2;
  max_pool2d_forward(yt, &idx, x.value(), g);
  EXPECT_EQ(idx.to_double_vector(), (std::vector<double>{4, 2, 13, 10}));
}

TEST(Pool, MaxPool1dTiesPaddingDilationCeil) {
  // overlapping windows over a tie: [2,7,7,1], k2 s1 -> [7,7,7]; gradient to the first 7 twice, the second once
  Var x = var({1, 1, 4}, {2, 7, 7, 1}, true);
  Var y = max_pool1d(x, 2, 1);
  EXPECT_EQ(values(y), (std::vector<double>{7, 7, 7}));
  sum(y).backward();
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{0, 2, 1, 0}));
  // padding is -inf, not zero: [-1,-2,-3], k3 s1 p1 -> [-1,-1,-2]
  EXPECT_EQ(values(max_pool1d(var({1, 1, 3}, {-1, -2, -3}), 3, 1, 1)), (std::vector<double>{-1, -1, -2}));
  // dilation 2: windows (0,2) (1,3) (2,4) (3,5)
  EXPECT_EQ(values(max_pool1d(var({1, 1, 6}, {1, 9, 2, 8, 3, 7}), 2, 1, 0, 2)), (std::vector<double>{2, 9, 3, 8}));
  // ceil_mode keeps the partial last window; stride defaults to the kernel size
  Var z = var({1, 1, 5}, {1, 5, 2, 4, 3});
  EXPECT_EQ(values(max_pool1d(z, 2)), (std::vector<double>{5, 4}));
  EXPECT_EQ(values(max_pool1d(z, 2, 0, 0, 1, true)), (std::vector<double>{5, 4, 3}));
  // unbatched (C,L)
  EXPECT_EQ(max_pool1d(var({2, 5}, {1, 2, 3, 4, 5, 5, 4, 3, 2, 1}), 2).shape(), (Shape{2, 2}));
}

TEST(Pool, OutputSizes) {
  EXPECT_EQ(pool_output_size(5, 2, 2, 0, 1, false), 2);
  EXPECT_EQ(pool_output_size(5, 2, 2, 0, 1, true), 3);
  EXPECT_EQ(pool_output_size(6, 3, 2, 0, 1, true), 3);
  EXPECT_EQ(pool_output_size(6, 3, 2, 0, 1, false), 2);
  // ceil mode drops a last window that would start in the right padding: (4-1)*2 = 6 >= 5 + 1
  EXPECT_EQ(pool_output_size(5, 2, 2, 1, 1, true), 3);
  EXPECT_EQ(pool_output_size(112, 3, 2, 1, 1, false), 56);  // ResNet stem
  // adaptive bins [floor(i*in/out), ceil((i+1)*in/out))
  EXPECT_EQ(adaptive_pool_start(1, 5, 3), 1);
  EXPECT_EQ(adaptive_pool_end(0, 5, 3), 2);
  EXPECT_EQ(adaptive_pool_end(1, 5, 3), 4);
  EXPECT_EQ(adaptive_pool_start(2, 5, 3), 3);
  EXPECT_EQ(adaptive_pool_start(2, 2, 3), 1);
  EXPECT_EQ(adaptive_pool_end(0, 2, 3), 1);
}

TEST(Pool, AvgPoolByHand) {
  Var x = var({1, 1, 5}, {1, 2, 3, 4, 5});
  // k3 s2 p1: windows [-1,1] [1,3] [3,5]; padded zeros count unless count_include_pad = false
  expect_near(values(avg_pool1d(x, 3, 2, 1)), {1, 3, 3}, 1e-15, "include pad");
  expect_near(values(avg_pool1d(x, 3, 2, 1, false, false)), {1.5, 3, 4.5}, 1e-15, "exclude pad");
  // ceil_mode: the last window [4,6) is clipped at in + pad = 5, so its divisor is 1
  expect_near(values(avg_pool1d(x, 2, 2, 0, true)), {1.5, 3.5, 5}, 1e-15, "ceil");
  // ceil_mode with padding: x = [1..6], k3 s2 p1 -> windows [-1,2) [1,4) [3,6) [5,7) (the last clipped at 7)
  Var x6 = var({1, 1, 6}, {1, 2, 3, 4, 5, 6});
  expect_near(values(avg_pool1d(x6, 3, 2, 1, true, true)), {1, 3, 5, 3}, 1e-15, "ceil pad include");
  expect_near(values(avg_pool1d(x6, 3, 2, 1, true, false)), {1.5, 3, 5, 6}, 1e-15, "ceil pad exclude");
  // 2-D: 2x2 blocks of a 4x4 ramp
  std::vector<double> r(16);
  for (int i = 0; i < 16; ++i) r[static_cast<size_t>(i)] = i;
  Var x2 = var({1, 1, 4, 4}, r, true);
  Var y2 = avg_pool2d(x2, {2, 2});
  expect_near(values(y2), {2.5, 4.5, 10.5, 12.5}, 1e-15, "2x2 blocks");
  sum(y2).backward();
  for (double g : x2.grad().to_double_vector()) EXPECT_DOUBLE_EQ(g, 0.25);
}

TEST(Pool, AdaptiveByHand) {
  // 5 -> 3 bins [0,2) [1,4) [3,5); 2 -> 3 bins [0,1) [0,2) [1,2)
  expect_near(values(adaptive_avg_pool1d(var({1, 1, 5}, {1, 2, 3, 4, 5}), 3)), {1.5, 3, 4.5}, 1e-15, "5->3");
  expect_near(values(adaptive_avg_pool1d(var({1, 1, 2}, {1, 2}), 3)), {1, 1.5, 2}, 1e-15, "2->3");
  expect_near(values(adaptive_max_pool1d(var({1, 1, 5}, {3, 1, 4, 1, 5}), 2)), {4, 5}, 0, "max 5->2");
  // 3x3 ramp 1..9 -> 2x2: overlapping 2x2 bins
  Var x = var({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, true);
  expect_near(values(adaptive_avg_pool2d(x, {2, 2})), {3, 4, 6, 7}, 1e-15, "avg 3x3->2x2");
  expect_near(values(adaptive_max_pool2d(x, {2, 2})), {5, 6, 8, 9}, 0, "max 3x3->2x2");
  // global average pooling
  Var gap = adaptive_avg_pool2d(x, {1, 1});
  EXPECT_EQ(gap.shape(), (Shape{1, 1, 1, 1}));
  expect_near(values(gap), {5}, 1e-15, "global");
  sum(gap).backward();
  for (double g : x.grad().to_double_vector()) EXPECT_NEAR(g, 1.0 / 9, 1e-15);
  // ties in adaptive max: each bin's first element takes the gradient
  Var ones = var({1, 1, 3, 3}, std::vector<double>(9, 1.0), true);
  sum(adaptive_max_pool2d(ones, {2, 2})).backward();
  EXPECT_EQ(ones.grad().to_double_vector(), (std::vector<double>{1, 1, 0, 1, 1, 0, 0, 0, 0}));
}

TEST(Pool, Float32AndStridedInputs) {
  const Tensor x64 = random_tensor({2, 3, 7, 9}, 1);
  const Tensor xs = random_tensor({9, 3, 7, 2}, 1).permute({3, 1, 2, 0});  // non-contiguous (2,3,7,9)
  for (int k = 0; k < 2; ++k) {
    Var a(x64), b(x64.to(DType::F32)), c(xs);
    auto f = [k](const Var& v) {
      return k == 0 ? max_pool2d(v, {3, 2}, {2, 2}, {1, 1}, {1, 1}, true) : avg_pool2d(v, {3, 3}, {2, 1}, {1, 0});
    };
    Var ya = f(a), yb = f(b), yc = f(c);
    EXPECT_EQ(yb.dtype(), DType::F32);
    EXPECT_LT(max_abs_diff(ya.value(), yb.value()), 1e-6);
    // the strided input is a different tensor; compare it with its contiguous copy
    EXPECT_EQ(max_abs_diff(yc.value(), f(Var(xs.contiguous())).value()), 0.0);
  }
}

TEST(Pool, Gradcheck) {
  using V = std::vector<Var>;
  const Tensor x = random_tensor({2, 3, 7, 6}, 11);
  gradcheck_op([](const V& v) { return max_pool2d(v[0], {3, 2}, {2, 2}, {1, 1}, {1, 2}, true); }, {x}, "max_pool2d");
  gradcheck_op([](const V& v) { return avg_pool2d(v[0], {3, 3}, {2, 2}, {1, 1}, true, true); }, {x},
               "avg_pool2d include pad");
  gradcheck_op([](const V& v) { return avg_pool2d(v[0], {2, 3}, {1, 2}, {1, 1}, false, false); }, {x},
               "avg_pool2d exclude pad");
  gradcheck_op([](const V& v) { return adaptive_avg_pool2d(v[0], {3, 4}); }, {x}, "adaptive_avg_pool2d");
  gradcheck_op([](const V& v) { return adaptive_avg_pool2d(v[0], {9, 4}); }, {x}, "adaptive_avg_pool2d up");
  gradcheck_op([](const V& v) { return adaptive_max_pool2d(v[0], {4, 5}); }, {x}, "adaptive_max_pool2d");
  const Tensor x1 = random_tensor({2, 3, 11}, 12);
  gradcheck_op([](const V& v) { return max_pool1d(v[0], 3, 2, 1, 2); }, {x1}, "max_pool1d");
  gradcheck_op([](const V& v) { return avg_pool1d(v[0], 4, 3, 2, true, false); }, {x1}, "avg_pool1d");
  gradcheck_op([](const V& v) { return adaptive_avg_pool1d(v[0], 4); }, {x1}, "adaptive_avg_pool1d");
  gradcheck_op([](const V& v) { return adaptive_max_pool1d(v[0], 4); }, {x1}, "adaptive_max_pool1d");
  gradcheck_op([](const V& v) { return avg_pool2d(v[0], {2, 2}); }, {random_tensor({3, 4, 5}, 13)}, "unbatched");
}

TEST(Pool, BadArgumentsThrow) {
  Var x(Tensor::zeros({1, 2, 5, 5}, DType::F64));
  EXPECT_NE(error_of([&] { max_pool2d(x, {2, 2}, {0, 0}, {2, 0}); }).find("half the kernel size"), std::string::npos);
  EXPECT_NE(error_of([&] { avg_pool2d(x, {6, 2}); }).find("too small"), std::string::npos);
  EXPECT_NE(error_of([&] { max_pool2d(x, {0, 2}); }).find("kernel_size must be > 0"), std::string::npos);
  EXPECT_NE(error_of([&] { max_pool2d(Var(Tensor::zeros({5, 5}, DType::F64)), {2, 2}); }).find("(N,C,H,W) or (C,H,W)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { max_pool1d(x, 2); }).find("max_pool1d: input must be (N,C,L)"), std::string::npos);
  EXPECT_NE(error_of([&] { adaptive_avg_pool2d(x, {0, 2}); }).find("output_size must be >= 1"), std::string::npos);
  Tensor dx;
  PoolGeometry g;
  g.kernel_h = g.kernel_w = g.stride_h = g.stride_w = 2;
  EXPECT_NE(error_of([&] { avg_pool2d_backward(dx, Tensor::zeros({1, 2, 3, 3}, DType::F64), {1, 2, 5, 5}, g); })
                .find("dy must be (1,2,2,2)"),
            std::string::npos);
}
