// conv1d / conv2d: hand-computed 1-D cases (plain, Mamba's causal depthwise k=4, padding "same" with an even
// kernel), the fast paths (im2col + GEMM, pointwise, depthwise) against the naive double reference across
// stride / padding / dilation / groups / odd sizes in F64 and F32, accumulation, thread-count independence of
// the weight gradient and of a lone GEMM that the BLAS threads, finite-difference gradients of the autograd
// ops, and shape errors.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/ops/conv.h"
#include "ssmkit/core/ops/elementwise.h"

using namespace ssmkit::core;
using ssmkit::test::error_of;
using ssmkit::test::expect_near;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using ssmkit::test::values;

namespace {

struct Case {
  int64_t N, C, O, H, W, KH, KW;
  ConvGeometry g;
  bool bias;
};

ConvGeometry geo(int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                 int64_t groups) {
  ConvGeometry g;
  g.stride_h = sh;
  g.stride_w = sw;
  g.pad_top = pt;
  g.pad_bottom = pb;
  g.pad_left = pl;
  g.pad_right = pr;
  g.dilation_h = dh;
  g.dilation_w = dw;
  g.groups = groups;
  return g;
}

}  // namespace

TEST(Conv, HandComputed1D) {
  // x = [1,2,3,4], w = [1,0,-1], b = 0.5, padding 1: padded [0,1,2,3,4,0], y[i] = p[i] - p[i+2] + 0.5.
  // dy = 1: dx[j] = sum of the taps that read j = [1,0,0,-1], dw[k] = sum_i p[i+k] = [6,10,9], db = 4.
  for (DType dt : {DType::F64, DType::F32}) {
    Var x(Tensor::from_vector({1, 1, 4}, std::vector<double>{1, 2, 3, 4}).to(dt), true);
    Var w(Tensor::from_vector({1, 1, 3}, std::vector<double>{1, 0, -1}).to(dt), true);
    Var b(Tensor::full({1}, 0.5, dt), true);
    Var y = conv1d(x, w, b, 1, 1);
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_EQ(y.shape(), (Shape{1, 1, 4}));
    expect_near(values(y), {-1.5, -1.5, -1.5, 3.5}, 1e-6, "y");
    sum(y).backward();
    expect_near(x.grad().to_double_vector(), {1, 0, 0, -1}, 1e-6, "dx");
    expect_near(w.grad().to_double_vector(), {6, 10, 9}, 1e-6, "dw");
    expect_near(b.grad().to_double_vector(), {4}, 1e-6, "db");
  }
  // stride 2, dilation 2, no padding: x = [1..7], w = [1,1]: taps (i, i+2) at i = 0,2,4 -> [4, 8, 12]
  Var x(Tensor::from_vector({1, 1, 7}, std::vector<double>{1, 2, 3, 4, 5, 6, 7}));
  Var w(Tensor::from_vector({1, 1, 2}, std::vector<double>{1, 1}));
  expect_near(values(conv1d(x, w, Var{}, 2, 0, 2)), {4, 8, 12}, 1e-12, "strided dilated");
}

TEST(Conv, MambaCausalDepthwiseConv1d) {
  // Mamba's Conv1d(D, D, k=4, groups=D, padding=3) then [..., :L]: y[t] = sum_k w[k] x[t+k-3].
  // Channel 0 has w = [0,0,0,1] (identity), channel 1 w = [1,1,1,1] (sum of the last 4 inputs).
  Var x(Tensor::from_vector({1, 2, 3}, std::vector<double>{1, 2, 3, 1, 2, 3}));
  Var w(Tensor::from_vector({2, 1, 4}, std::vector<double>{0, 0, 0, 1, 1, 1, 1, 1}));
  Var b(Tensor::from_vector({2}, std::vector<double>{0, 10}));
  Var y = conv1d(x, w, b, 1, 3, 1, 2);
  ASSERT_EQ(y.shape(), (Shape{1, 2, 6}));
  Tensor causal = y.value().slice(2, 0, 3);
  expect_near(causal.to_double_vector(), {1, 2, 3, 11, 13, 16}, 1e-12, "causal");
}

TEST(Conv, SamePaddingPutsTheExtraZeroOnTheRight) {
  // k = 4: total padding 3, left 1, right 2 (PyTorch). x = [1..5], w = [1,2,3,4]:
  //   padded [0,1,2,3,4,5,0,0] -> y = [20, 30, 40, 26, 14]
  Var x(Tensor::from_vector({1, 1, 5}, std::vector<double>{1, 2, 3, 4, 5}));
  Var w(Tensor::from_vector({1, 1, 4}, std::vector<double>{1, 2, 3, 4}));
  expect_near(values(conv1d(x, w, Var{}, 1, ConvPadding::Same)), {20, 30, 40, 26, 14}, 1e-12, "same 1d");
  EXPECT_EQ(conv1d(x, w, Var{}, 1, ConvPadding::Valid).shape(), (Shape{1, 1, 2}));
  // 2-D: a 2x2 kernel of ones on a 2x2 image keeps the size and sums the window below-right.
  Var x2(Tensor::from_vector({1, 1, 2, 2}, std::vector<double>{1, 2, 3, 4}));
  Var w2(Tensor::full({1, 1, 2, 2}, 1.0, DType::F64));
  expect_near(values(conv2d(x2, w2, Var{}, {1, 1}, ConvPadding::Same)), {10, 6, 7, 4}, 1e-12, "same 2d");
  // odd kernel with dilation 2: total 4, symmetric
  Var x3 = Var(random_tensor({2, 3, 7, 6}, 5));
  Var w3 = Var(random_tensor({4, 3, 3, 3}, 6));
  Var same = conv2d(x3, w3, Var{}, {1, 1}, ConvPadding::Same, {2, 2});
  Var explicit_pad = conv2d(x3, w3, Var{}, {1, 1}, {2, 2}, {2, 2});
  EXPECT_EQ(same.shape(), (Shape{2, 4, 7, 6}));
  EXPECT_LT(max_abs_diff(same.value(), explicit_pad.value()), 1e-14);
}

TEST(Conv, FastMatchesReference) {
  const std::vector<Case> cases = {
      {2, 4, 6, 7, 9, 3, 3, geo(1, 1, 1, 1, 1, 1, 1, 1, 1), true},    // plain 3x3, padding 1
      {3, 6, 4, 9, 8, 3, 2, geo(2, 1, 1, 1, 0, 1, 1, 2, 2), true},    // groups 2, stride, asym pad, dilation
      {2, 3, 5, 11, 10, 4, 4, geo(4, 4, 0, 0, 0, 0, 1, 1, 1), false}, // patch embedding: k = stride = 4
      {2, 8, 5, 5, 7, 1, 1, geo(1, 1, 0, 0, 0, 0, 1, 1, 1), true},    // pointwise 1x1
      {1, 4, 4, 6, 6, 1, 1, geo(2, 2, 0, 0, 0, 0, 1, 1, 1), true},    // strided 1x1 (im2col path)
      {2, 5, 5, 8, 9, 3, 3, geo(1, 1, 1, 1, 1, 1, 1, 1, 5), true},    // depthwise 3x3 (VMamba)
      {2, 3, 6, 7, 5, 3, 2, geo(2, 3, 2, 0, 1, 2, 2, 1, 3), true},    // depthwise, multiplier 2, odd geometry
      {3, 6, 6, 1, 13, 1, 4, geo(1, 1, 0, 0, 3, 3, 1, 1, 6), true},   // Mamba conv1d as H = 1
      {2, 6, 9, 1, 17, 1, 3, geo(1, 2, 0, 0, 2, 1, 1, 3, 3), true},   // grouped 1-D, stride, dilation
      {5, 8, 12, 17, 19, 3, 3, geo(1, 2, 1, 2, 0, 1, 1, 1, 4), true}, // bigger: threads engage
      {4, 16, 16, 23, 21, 3, 3, geo(1, 1, 1, 1, 1, 1, 1, 1, 16), true},
  };
  int ci = 0;
  for (const Case& c : cases) {
    const Tensor x64 = random_tensor({c.N, c.C, c.H, c.W}, 100 + ci);
    const Tensor w64 = random_tensor({c.O, c.C / c.g.groups, c.KH, c.KW}, 200 + ci);
    const Tensor b64 = c.bias ? random_tensor({c.O}, 300 + ci) : Tensor{};
    Tensor y_ref, dx_ref, dw_ref, db_ref;
    conv2d_ref_forward(y_ref, x64, w64, b64, c.g);
    const Tensor dy64 = random_tensor(y_ref.shape(), 400 + ci);
    conv2d_ref_backward(&dx_ref, &dw_ref, &db_ref, dy64, x64, w64, c.g);
    for (DType dt : {DType::F64, DType::F32}) {
      const double tol = dt == DType::F64 ? 1e-12 : 2e-5;
      const Tensor x = x64.to(dt), w = w64.to(dt), dy = dy64.to(dt);
      const Tensor b = c.bias ? b64.to(dt) : Tensor{};
      Tensor y, dx, dw, db;
      conv2d_forward(y, x, w, b, c.g);
      conv2d_backward(&dx, &dw, &db, dy, x, w, c.g);
      ASSERT_EQ(y.shape(), y_ref.shape()) << "case " << ci;
      EXPECT_EQ(y.dtype(), dt);
      const double ey = max_abs_diff(y, y_ref), edx = max_abs_diff(dx, dx_ref), edw = max_abs_diff(dw, dw_ref),
                   edb = max_abs_diff(db, db_ref);
      EXPECT_LE(ey, tol * std::max(1.0, max_abs(y_ref))) << "case " << ci;
      EXPECT_LE(edx, tol * std::max(1.0, max_abs(dx_ref))) << "case " << ci;
      EXPECT_LE(edw, tol * std::max(1.0, max_abs(dw_ref))) << "case " << ci;
      EXPECT_LE(edb, tol * std::max(1.0, max_abs(db_ref))) << "case " << ci;
      std::printf("case %d %s: max err y %.2e dx %.2e dw %.2e db %.2e\n", ci, dtype_name(dt), ey, edx, edw, edb);
      if (c.H == 1) {  // the 1-D kernels on the same problem
        const ConvGeometry g1 = c.g;
        Tensor y1, dx1, dw1, db1;
        conv1d_forward(y1, x.view({c.N, c.C, c.W}), w.view({c.O, c.C / c.g.groups, c.KW}), b, g1);
        conv1d_backward(&dx1, &dw1, &db1, dy.view({c.N, c.O, y.size(3)}), x.view({c.N, c.C, c.W}),
                        w.view({c.O, c.C / c.g.groups, c.KW}), g1);
        EXPECT_EQ(max_abs_diff(y1, y.view(y1.shape())), 0.0);
        EXPECT_EQ(max_abs_diff(dx1, dx.view(dx1.shape())), 0.0);
        EXPECT_EQ(max_abs_diff(dw1, dw.view(dw1.shape())), 0.0);
      }
    }
    ++ci;
  }
}

TEST(Conv, StridedInputsAndAccumulation) {
  const ConvGeometry g = geo(1, 2, 1, 1, 1, 1, 1, 1, 2);
  Tensor x = random_tensor({3, 2, 7, 4}, 11).permute({1, 3, 2, 0});  // a non-contiguous (2,4,7,3) view
  Tensor w = random_tensor({6, 2, 3, 2}, 12), b = random_tensor({6}, 13);
  Tensor y, y_ref;
  conv2d_forward(y, x, w, b, g);
  conv2d_ref_forward(y_ref, x, w, b, g);
  EXPECT_LT(max_abs_diff(y, y_ref), 1e-12);
  // gradients given on entry are accumulated into
  Tensor dy = random_tensor(y.shape(), 14);
  Tensor dx = Tensor::full(x.shape(), 1.0, DType::F64), dw = Tensor::full(w.shape(), 2.0, DType::F64),
         db = Tensor::full({6}, 3.0, DType::F64);
  Tensor dx_ref, dw_ref, db_ref;
  conv2d_backward(&dx, &dw, &db, dy, x, w, g);
  conv2d_ref_backward(&dx_ref, &dw_ref, &db_ref, dy, x, w, g);
  std::vector<double> a = dx.to_double_vector(), r = dx_ref.to_double_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], r[i] + 1.0, 1e-12);
  a = dw.to_double_vector();
  r = dw_ref.to_double_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], r[i] + 2.0, 1e-12);
  a = db.to_double_vector();
  r = db_ref.to_double_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], r[i] + 3.0, 1e-12);
  // skipped gradients stay untouched
  Tensor only_dw;
  conv2d_backward(nullptr, &only_dw, nullptr, dy, x, w, g);
  EXPECT_LT(max_abs_diff(only_dw, dw_ref), 1e-12);
}

TEST(Conv, WeightGradientDoesNotDependOnThreadCount) {
  const int prev = omp_get_max_threads();
  for (int64_t groups : {1, 8}) {  // the GEMM path and the depthwise path
    const ConvGeometry g = geo(1, 1, 1, 1, 1, 1, 1, 1, groups);
    const Tensor x = random_tensor({13, 8, 12, 11}, 21, -1, 1, DType::F32);
    const Tensor w = random_tensor({8, 8 / groups, 3, 3}, 22, -1, 1, DType::F32);
    Tensor y;
    conv2d_forward(y, x, w, Tensor{}, g);
    const Tensor dy = random_tensor(y.shape(), 23, -1, 1, DType::F32);
    std::vector<std::vector<double>> dws;
    for (int threads : {1, 3, 4}) {
      omp_set_num_threads(threads);
      Tensor dw;
      conv2d_backward(nullptr, &dw, nullptr, dy, x, w, g);
      dws.push_back(dw.to_double_vector());
    }
    omp_set_num_threads(prev);
    EXPECT_EQ(dws[0], dws[1]) << "groups " << groups;
    EXPECT_EQ(dws[0], dws[2]) << "groups " << groups;
  }
}

TEST(Conv, LoneGemmThreadedByTheBlas) {
  // One image and one group: the single GEMM per pass is threaded by the BLAS itself. S4D's output layer
  // shape in small (Conv1d 1x1, H -> 2H, with bias) and a 3x3 conv2d (im2col): reference values for every
  // thread count, and the same bits when a call is repeated (the BLAS may block the sums differently for
  // another thread count, as conv.h says).
  const int prev = omp_get_max_threads();
  struct Lone {
    Shape x, w;
    ConvGeometry g;
  };
  for (const Lone& c : {Lone{{1, 48, 1, 700}, {96, 48, 1, 1}, geo(1, 1, 0, 0, 0, 0, 1, 1, 1)},
                        Lone{{1, 16, 30, 31}, {40, 16, 3, 3}, geo(1, 1, 1, 1, 1, 1, 1, 1, 1)}}) {
    const Tensor x64 = random_tensor(c.x, 61), w64 = random_tensor(c.w, 62), b64 = random_tensor({c.w[0]}, 63);
    Tensor y_ref, dx_ref, dw_ref, db_ref;
    conv2d_ref_forward(y_ref, x64, w64, b64, c.g);
    const Tensor dy64 = random_tensor(y_ref.shape(), 64);
    conv2d_ref_backward(&dx_ref, &dw_ref, &db_ref, dy64, x64, w64, c.g);
    const Tensor x = x64.to(DType::F32), w = w64.to(DType::F32), b = b64.to(DType::F32), dy = dy64.to(DType::F32);
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      Tensor y, dx, dw, db, y2, dx2, dw2;
      conv2d_forward(y, x, w, b, c.g);
      conv2d_backward(&dx, &dw, &db, dy, x, w, c.g);
      EXPECT_LT(max_abs_diff(y, y_ref), 1e-4) << threads;
      EXPECT_LT(max_abs_diff(dx, dx_ref), 1e-4) << threads;
      EXPECT_LT(max_abs_diff(dw, dw_ref), 1e-3) << threads;  // sums over 700 / 930 positions
      EXPECT_LT(max_abs_diff(db, db_ref), 1e-3) << threads;
      conv2d_forward(y2, x, w, b, c.g);
      conv2d_backward(&dx2, &dw2, nullptr, dy, x, w, c.g);
      EXPECT_EQ(max_abs_diff(y, y2), 0.0) << threads;
      EXPECT_EQ(max_abs_diff(dx, dx2), 0.0) << threads;
      EXPECT_EQ(max_abs_diff(dw, dw2), 0.0) << threads;
    }
  }
  omp_set_num_threads(prev);
}

TEST(Conv, GradcheckConv2d) {
  using V = std::vector<Var>;
  // general grouped, strided, dilated, padded
  gradcheck_op([](const V& v) { return conv2d(v[0], v[1], v[2], {2, 1}, {1, 2}, {1, 2}, 2); },
               {random_tensor({2, 4, 5, 6}, 31), random_tensor({6, 2, 3, 2}, 32), random_tensor({6}, 33)}, "conv2d");
  // depthwise 3x3 with a channel multiplier, no bias
  gradcheck_op([](const V& v) { return conv2d(v[0], v[1], Var{}, {1, 1}, {1, 1}, {1, 1}, 3); },
               {random_tensor({2, 3, 4, 5}, 34), random_tensor({6, 1, 3, 3}, 35)}, "depthwise conv2d");
  // pointwise, unbatched input (C,H,W)
  gradcheck_op([](const V& v) { return conv2d(v[0], v[1], v[2]); },
               {random_tensor({3, 4, 3}, 36), random_tensor({2, 3, 1, 1}, 37), random_tensor({2}, 38)},
               "unbatched 1x1");
  // same padding with an even kernel
  gradcheck_op([](const V& v) { return conv2d(v[0], v[1], v[2], {1, 1}, ConvPadding::Same); },
               {random_tensor({1, 2, 4, 5}, 39), random_tensor({3, 2, 2, 4}, 40), random_tensor({3}, 41)},
               "same 2d");
}

TEST(Conv, GradcheckConv1d) {
  using V = std::vector<Var>;
  gradcheck_op([](const V& v) { return conv1d(v[0], v[1], v[2], 1, 3, 1, 4); },
               {random_tensor({2, 4, 7}, 51), random_tensor({4, 1, 4}, 52), random_tensor({4}, 53)},
               "mamba depthwise conv1d");
  gradcheck_op([](const V& v) { return conv1d(v[0], v[1], v[2], 2, 1, 2, 1); },
               {random_tensor({2, 3, 9}, 54), random_tensor({5, 3, 3}, 55), random_tensor({5}, 56)}, "conv1d");
  gradcheck_op([](const V& v) { return conv1d(v[0], v[1], Var{}, 1, ConvPadding::Same, 1, 2); },
               {random_tensor({4, 6}, 57), random_tensor({4, 2, 4}, 58)}, "unbatched same conv1d");
}

TEST(Conv, BadShapesThrow) {
  Var x(Tensor::zeros({2, 4, 5, 5}, DType::F64));
  Var w(Tensor::zeros({6, 2, 3, 3}, DType::F64));
  EXPECT_NE(error_of([&] { conv2d(x, w); }).find("expects input with 2 channels"), std::string::npos)
      << error_of([&] { conv2d(x, w); });
  EXPECT_NE(error_of([&] { conv2d(x, w, Var{}, {1, 1}, {0, 0}, {1, 1}, 4); }).find("divisible by groups"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, Var(Tensor::zeros({6, 4, 3}, DType::F64))); }).find("weight must be"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, w, Var(Tensor::zeros({5}, DType::F64)), {1, 1}, {0, 0}, {1, 1}, 2); })
                .find("bias must be (6)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, Var(Tensor::zeros({1, 4, 7, 3}, DType::F64))); }).find("smaller than the dilated"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, w, Var{}, {2, 1}, ConvPadding::Same, {1, 1}, 2); }).find("strided"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, w, Var{}, {0, 1}, {0, 0}, {1, 1}, 2); }).find("stride must be >= 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, Var(Tensor::zeros({6, 4, 3, 3}, DType::F32))); }).find("F32"), std::string::npos);
  EXPECT_NE(error_of([&] { conv1d(x, w); }).find("conv1d: input must be (N,C,L)"), std::string::npos);
  Tensor y;
  EXPECT_NE(error_of([&] { conv1d_forward(y, Tensor::zeros({1, 2, 5}), Tensor::zeros({2, 1, 3}), Tensor{},
                                          geo(2, 1, 0, 0, 0, 0, 1, 1, 2)); })
                .find("1-D geometry"),
            std::string::npos);
  Tensor dx;
  EXPECT_NE(error_of([&] {
              conv2d_backward(&dx, nullptr, nullptr, Tensor::zeros({2, 6, 4, 4}, DType::F64), x.value(), w.value(),
                              geo(1, 1, 0, 0, 0, 0, 1, 1, 2));
            }).find("dy must be (2,6,3,3)"),
            std::string::npos);
  EXPECT_EQ(conv_output_size(10, 3, 2, 1, 1, 2), 4);  // floor((10 + 2 - 4 - 1) / 2) + 1
}
