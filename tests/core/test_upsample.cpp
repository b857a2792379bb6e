// Resizing: 2x2 -> 4x4 bilinear by hand with align_corners false and true, downsampling, 1-D linear, nearest
// (2x, non-integer sizes, and the scale_factor that PyTorch keeps for the source index), interpolate's
// options, F32, finite-difference gradients in double, and argument errors.
#include <functional>
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/upsample.h"

using namespace ssmkit::core;
using ssmkit::test::error_of;
using ssmkit::test::expect_near;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using ssmkit::test::values;
using ssmkit::test::var;

TEST(Upsample, Bilinear2x2To4x4AlignCornersFalse) {
  // scale 1/2: src = (dst + 0.5)/2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (upper index clamped), so
  // each axis maps [a, b] to [a, 0.75a + 0.25b, 0.25a + 0.75b, b].
  const std::vector<double> want = {1,   1.25, 1.75, 2,    //
                                    1.5, 1.75, 2.25, 2.5,  //
                                    2.5, 2.75, 3.25, 3.5,  //
                                    3,   3.25, 3.75, 4};
  for (DType dt : {DType::F64, DType::F32}) {
    Var x(Tensor::from_vector({1, 1, 2, 2}, std::vector<double>{1, 2, 3, 4}).to(dt));
    Var y = upsample_bilinear2d(x, {4, 4}, false);
    EXPECT_EQ(y.dtype(), dt);
    expect_near(values(y), want, 1e-6, "align false");
    expect_near(values(interpolate(x, {.scale_factor = {2.0}, .mode = InterpMode::Bilinear})), want, 1e-6,
                "interpolate scale 2");
  }
}

TEST(Upsample, Bilinear2x2To4x4AlignCornersTrue) {
  // src = dst * (2-1)/(4-1) = 0, 1/3, 2/3, 1: each axis maps [a, b] to [a, (2a+b)/3, (a+2b)/3, b].
  const double t = 1.0 / 3;
  const std::vector<double> want = {1,         1 + t,     1 + 2 * t, 2,          //
                                    1 + 2 * t, 2,         2 + t,     2 + 2 * t,  //
                                    2 + t,     2 + 2 * t, 3,         3 + t,      //
                                    3,         3 + t,     3 + 2 * t, 4};
  Var x = var({1, 1, 2, 2}, {1, 2, 3, 4});
  expect_near(values(upsample_bilinear2d(x, {4, 4}, true)), want, 1e-14, "align true");
  expect_near(values(interpolate(x, {.size = {4, 4}, .mode = InterpMode::Bilinear, .align_corners = true})), want,
              1e-14, "interpolate");
}

TEST(Upsample, DownsamplingAndLinear1d) {
  // 4 -> 2 with align_corners false: src = 2*dst + 0.5, the mean of each pair
  expect_near(values(upsample_bilinear2d(var({1, 1, 1, 4}, {1, 2, 3, 4}), {1, 2}, false)), {1.5, 3.5}, 1e-15,
              "4->2");
  // 1-D linear on (N,C,L)
  Var x = var({1, 1, 2}, {1, 2});
  expect_near(values(upsample_linear1d(x, 4, false)), {1, 1.25, 1.75, 2}, 1e-15, "linear");
  expect_near(values(interpolate(x, {.size = {3}, .mode = InterpMode::Linear, .align_corners = true})), {1, 1.5, 2},
              1e-15, "linear align");
  // align_corners with one output: everything reads the first input
  expect_near(values(upsample_linear1d(x, 1, true)), {1}, 0, "one output");
}

TEST(Upsample, Nearest) {
  // 2x: each value repeated
  Var x = var({1, 1, 2, 2}, {1, 2, 3, 4}, true);
  Var y = upsample_nearest2d(x, {4, 4});
  EXPECT_EQ(values(y), (std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
  sum(y).backward();
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{4, 4, 4, 4}));
  // 3 -> 5 by size: src = floor(dst * 3/5) = 0,0,1,1,2
  Var r = var({1, 1, 3}, {10, 20, 30});
  EXPECT_EQ(values(interpolate(r, {.size = {5}})), (std::vector<double>{10, 10, 20, 20, 30}));
  // 3 -> 2: src = floor(dst * 1.5) = 0, 1
  EXPECT_EQ(values(upsample_nearest1d(r, 2)), (std::vector<double>{10, 20}));
  // scale_factor 1.7 on 4: output floor(6.8) = 6, and PyTorch indexes with 1/1.7, not 4/6:
  //   floor(dst / 1.7) = 0,0,1,1,2,2 whereas size 6 alone gives floor(dst * 2/3) = 0,0,1,2,2,3
  Var q = var({1, 1, 4}, {0, 1, 2, 3});
  EXPECT_EQ(values(interpolate(q, {.scale_factor = {1.7}})), (std::vector<double>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(values(interpolate(q, {.size = {6}})), (std::vector<double>{0, 0, 1, 2, 2, 3}));
  // 2-D with different factors per axis
  Var z = interpolate(x, {.scale_factor = {1.0, 3.0}});
  EXPECT_EQ(z.shape(), (Shape{1, 1, 2, 6}));
  EXPECT_EQ(values(z), (std::vector<double>{1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4}));
}

TEST(Upsample, Gradcheck) {
  using V = std::vector<Var>;
  const Tensor x = random_tensor({2, 3, 4, 5}, 1);
  for (bool ac : {false, true}) {
    gradcheck_op([ac](const V& v) { return upsample_bilinear2d(v[0], {7, 9}, ac); }, {x}, "bilinear up");
    gradcheck_op([ac](const V& v) { return upsample_bilinear2d(v[0], {3, 2}, ac); }, {x}, "bilinear down");
    gradcheck_op([ac](const V& v) { return upsample_linear1d(v[0], 11, ac); }, {random_tensor({2, 3, 4}, 2)},
                 "linear");
  }
  gradcheck_op([](const V& v) { return upsample_bilinear2d(v[0], {6, 11}, false, {1.5, 2.3}); }, {x},
               "bilinear with scales");
  gradcheck_op([](const V& v) { return upsample_nearest2d(v[0], {7, 3}); }, {x}, "nearest");
  gradcheck_op([](const V& v) { return interpolate(v[0], {.scale_factor = {1.7}}); }, {random_tensor({1, 2, 5}, 3)},
               "nearest 1d scale");
}

TEST(Upsample, BadArgumentsThrow) {
  Var x(Tensor::zeros({1, 2, 3, 3}, DType::F64));
  EXPECT_NE(error_of([&] { interpolate(x, {.size = {4, 4}, .align_corners = true}); }).find("align_corners"),
            std::string::npos);
  EXPECT_NE(error_of([&] { interpolate(x, {.size = {4, 4}, .mode = InterpMode::Linear}); }).find("3-D input"),
            std::string::npos);
  EXPECT_NE(error_of([&] { interpolate(x, {.size = {4, 4}, .scale_factor = {2.0}}); }).find("exactly one"),
            std::string::npos);
  EXPECT_NE(error_of([&] { interpolate(x, {.size = {4, 4, 4}}); }).find("size needs 1 or 2 values"),
            std::string::npos);
  EXPECT_NE(error_of([&] { interpolate(x, {.scale_factor = {0.2}}); }).find("sizes must be > 0"), std::string::npos);
  EXPECT_NE(error_of([&] { upsample_bilinear2d(Var(Tensor::zeros({2, 3, 3}, DType::F64)), {4, 4}, false); })
                .find("(N,C,H,W)"),
            std::string::npos);
}
