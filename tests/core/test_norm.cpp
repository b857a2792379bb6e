// Normalization ops: hand-computed values, batch_norm's running statistics against PyTorch's update formula,
// train vs eval, central-difference gradients in double for x, weight and bias of every norm (with and
// without the affine part), the kernels' accumulate/skip conventions, F32 vs F64, identical results on 1 and
// several threads, and shape errors.
#include <omp.h>

#include <cmath>
#include <functional>
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/norm.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;
using ssmkit::test::expect_near;
using ssmkit::test::f64;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using V = std::vector<Var>;

TEST(Norm, LayerNormByHand) {
  // row [1,2,3,4]: mean 2.5, biased var 1.25; row [2,2,2,2]: var 0 -> y = bias
  Var x(f64({2, 4}, {1, 2, 3, 4, 2, 2, 2, 2}));
  Var w(f64({4}, {1, 2, 1, 2})), b(f64({4}, {0, 0, 1, 1}));
  const double e = 1e-5, re = 1 / std::sqrt(1.25 + e);
  expect_near(layer_norm(x, {4}).value().to_double_vector(), {-1.5 * re, -0.5 * re, 0.5 * re, 1.5 * re, 0, 0, 0, 0},
              1e-14, "plain");
  expect_near(layer_norm(x, {4}, w, b, e).value().to_double_vector(),
              {-1.5 * re, -1.0 * re, 0.5 * re + 1, 3.0 * re + 1, 0, 0, 1, 1}, 1e-14, "affine");
  // normalized over the last two dims (2,4): all 8 values of one sample
  Var x3(f64({1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}));
  Tensor y, mean, rstd;
  layer_norm_forward(y, mean, rstd, x3.value(), {2, 4}, Tensor{}, Tensor{}, 0.0);
  EXPECT_EQ(mean.shape(), (Shape{1}));
  EXPECT_NEAR(mean.to_double_vector()[0], 4.5, 1e-14);
  EXPECT_NEAR(rstd.to_double_vector()[0], 1 / std::sqrt(5.25), 1e-14);
}

TEST(Norm, LayerNormGradients) {
  Tensor x = random_tensor({2, 3, 4}, 1, -2, 2), w = random_tensor({3, 4}, 2, 0.5, 1.5), b = random_tensor({3, 4}, 3);
  gradcheck_op([](const V& v) { return layer_norm(v[0], {3, 4}, v[1], v[2]); }, {x, w, b}, "layer_norm (3,4)");
  gradcheck_op([](const V& v) { return layer_norm(v[0], {4}, {}, v[1]); }, {x, random_tensor({4}, 4)},
               "layer_norm bias only");
  gradcheck_op([](const V& v) { return layer_norm(permute(v[0], {2, 0, 1}), {3}); }, {x}, "layer_norm strided");
}

TEST(Norm, KernelsAccumulateAndSkip) {
  Tensor x = random_tensor({3, 5}, 5), w = random_tensor({5}, 6), b = random_tensor({5}, 7), dy = random_tensor({3, 5}, 8);
  Tensor y, mean, rstd;
  layer_norm_forward(y, mean, rstd, x, {5}, w, b, 1e-5);
  Tensor dx1, dw1, db1;
  layer_norm_backward(&dx1, &dw1, &db1, dy, x, mean, rstd, w, {5});
  Tensor dx2 = dx1.clone(), dw2 = dw1.clone();
  layer_norm_backward(&dx2, &dw2, nullptr, dy, x, mean, rstd, w, {5});  // += into defined gradients
  for (size_t i = 0; i < 15; ++i) EXPECT_NEAR(dx2.to_double_vector()[i], 2 * dx1.to_double_vector()[i], 1e-14);
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(dw2.to_double_vector()[i], 2 * dw1.to_double_vector()[i], 1e-14);
  // db = sum of dy over rows
  for (int64_t c = 0; c < 5; ++c)
    EXPECT_NEAR(db1.to_double_vector()[c], dy.at<double>({0, c}) + dy.at<double>({1, c}) + dy.at<double>({2, c}), 1e-14);
  Tensor bad = Tensor::zeros({4}, DType::F64);
  expect_error([&] { layer_norm_backward(nullptr, &bad, nullptr, dy, x, mean, rstd, w, {5}); },
               "layer_norm_backward: dweight must be (5), got (4)");
  expect_error([&] { layer_norm_forward(y, mean, rstd, x, {4}, w, b, 1e-5); },
               "layer_norm_forward: normalized_shape (4) does not match the last dims of x (3,5)");
  expect_error([&] { layer_norm_forward(y, mean, rstd, x, {5}, bad, b, 1e-5); },
               "layer_norm_forward: weight must be (5), got (4)");
}

TEST(Norm, RmsNorm) {
  // mean(x^2) of [1,2,3,4] = 7.5
  Var x(f64({1, 4}, {1, 2, 3, 4})), w(f64({4}, {1, 2, 3, 4}));
  const double r = 1 / std::sqrt(7.5 + 1e-5);
  expect_near(rms_norm(x, w).value().to_double_vector(), {r, 4 * r, 9 * r, 16 * r}, 1e-14, "rms_norm");
  expect_near(rms_norm(x, {}, 0.0).value().to_double_vector(),
              {1 / std::sqrt(7.5), 2 / std::sqrt(7.5), 3 / std::sqrt(7.5), 4 / std::sqrt(7.5)}, 1e-14, "no weight");
  gradcheck_op([](const V& v) { return rms_norm(v[0], v[1]); },
               {random_tensor({2, 3, 5}, 9), random_tensor({5}, 10, 0.5, 1.5)}, "rms_norm");
  gradcheck_op([](const V& v) { return rms_norm(v[0]); }, {random_tensor({4, 3}, 11)}, "rms_norm no weight");
  expect_error([&] { rms_norm(x, Var(f64({3}, {1, 1, 1}))); }, "rms_norm_forward: weight must be (4), got (3)");
}

TEST(Norm, BatchNormRunningStatsFollowPyTorch) {
  // x (N=2, C=2, L=2). Channel 0 holds {1,2,3,4}: mean 2.5, biased var 1.25, unbiased 5/3.
  // Channel 1 holds {0,4,2,2}: mean 2, biased var 2, unbiased 8/3.
  Var x(f64({2, 2, 2}, {1, 2, 0, 4, 3, 4, 2, 2}));
  Tensor rm = f64({2}, {0, 1}), rv = f64({2}, {1, 2});
  const double eps = 1e-5;
  Var y = batch_norm(x, rm, rv, {}, {}, true, 0.1, eps);
  expect_near(rm.to_double_vector(), {0.9 * 0 + 0.1 * 2.5, 0.9 * 1 + 0.1 * 2}, 1e-14, "running_mean");
  expect_near(rv.to_double_vector(), {0.9 * 1 + 0.1 * 5.0 / 3, 0.9 * 2 + 0.1 * 8.0 / 3}, 1e-14, "running_var");
  const double r0 = 1 / std::sqrt(1.25 + eps), r1 = 1 / std::sqrt(2 + eps);
  expect_near(y.value().to_double_vector(),
              {-1.5 * r0, -0.5 * r0, -2 * r1, 2 * r1, 0.5 * r0, 1.5 * r0, 0, 0}, 1e-14, "train output");
  // a second step moves the statistics again (momentum 0.5 this time)
  batch_norm(x, rm, rv, {}, {}, true, 0.5, eps);
  expect_near(rm.to_double_vector(), {0.5 * 0.25 + 0.5 * 2.5, 0.5 * 1.1 + 0.5 * 2}, 1e-14, "running_mean 2");
  // eval: the running statistics normalize, nothing is updated
  const std::vector<double> rm_before = rm.to_double_vector(), rv_before = rv.to_double_vector();
  Var w(f64({2}, {2, 3})), b(f64({2}, {0.5, -1}));
  Var ye = batch_norm(x, rm, rv, w, b, false, 0.1, eps);
  EXPECT_EQ(rm.to_double_vector(), rm_before);
  EXPECT_EQ(rv.to_double_vector(), rv_before);
  std::vector<double> want;
  const std::vector<double> xs = x.value().to_double_vector();
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 2; ++c)
      for (int l = 0; l < 2; ++l)
        want.push_back((xs[n * 4 + c * 2 + l] - rm_before[c]) / std::sqrt(rv_before[c] + eps) * w.value().to_double_vector()[c] +
                       b.value().to_double_vector()[c]);
  expect_near(ye.value().to_double_vector(), want, 1e-13, "eval output");
  // F32 running stats with an F32 input
  Tensor rm32 = Tensor::zeros({2}, DType::F32), rv32 = Tensor::full({2}, 1.0, DType::F32);
  batch_norm(Var(x.value().to(DType::F32)), rm32, rv32, {}, {}, true);
  expect_near(rv32.to_double_vector(), {0.9 + 0.1 * 5.0 / 3, 0.9 + 0.1 * 8.0 / 3}, 1e-6, "running_var F32");
}

TEST(Norm, BatchNormGradients) {
  Tensor x = random_tensor({3, 2, 4}, 12), w = random_tensor({2}, 13, 0.5, 1.5), b = random_tensor({2}, 14);
  gradcheck_op([](const V& v) { return batch_norm(v[0], Tensor{}, Tensor{}, v[1], v[2], true); }, {x, w, b},
               "batch_norm train");
  Tensor rm = random_tensor({2}, 15), rv = random_tensor({2}, 16, 0.5, 2);
  gradcheck_op([rm, rv](const V& v) { return batch_norm(v[0], rm, rv, v[1], v[2], false); }, {x, w, b},
               "batch_norm eval");
  gradcheck_op([](const V& v) { return batch_norm(v[0], Tensor{}, Tensor{}, {}, {}, true); },
               {random_tensor({4, 3}, 17)}, "batch_norm (N,C) no affine");
  Var xv(x);
  expect_error([&] { batch_norm(xv, Tensor{}, Tensor{}, {}, {}, false); }, "batch_norm_forward: eval mode needs");
  expect_error([&] { batch_norm(Var(random_tensor({1, 2, 1}, 18)), Tensor{}, Tensor{}, {}, {}, true); },
               "expected more than 1 value per channel when training");
  expect_error([&] { batch_norm(xv, Tensor::zeros({3}, DType::F64), Tensor::zeros({3}, DType::F64), {}, {}, true); },
               "batch_norm_forward: running_mean must be (2), got (3)");
}

TEST(Norm, GroupNorm) {
  // x (1, 4, 1), 2 groups: {1,3} mean 2 var 1; {2,6} mean 4 var 4
  Var x(f64({1, 4, 1}, {1, 3, 2, 6}));
  Var w(f64({4}, {1, 2, 3, 4})), b(f64({4}, {0, 1, 0, 1}));
  const double r0 = 1 / std::sqrt(1 + 1e-5), r1 = 1 / std::sqrt(4 + 1e-5);
  expect_near(group_norm(x, 2, w, b).value().to_double_vector(), {-r0, 2 * r0 + 1, -2 * 3 * r1, 2 * 4 * r1 + 1},
              1e-14, "group_norm");
  // one group without affine = layer norm over (C, spatial)
  Tensor t = random_tensor({2, 4, 3}, 19);
  EXPECT_LT(max_abs_diff(group_norm(Var(t), 1).value(), layer_norm(Var(t), {4, 3}).value()), 1e-14);
  gradcheck_op([](const V& v) { return group_norm(v[0], 3, v[1], v[2]); },
               {random_tensor({2, 6, 3}, 20), random_tensor({6}, 21, 0.5, 1.5), random_tensor({6}, 22)}, "group_norm");
  gradcheck_op([](const V& v) { return group_norm(v[0], 2); }, {random_tensor({2, 4, 2, 2}, 23)},
               "group_norm 4-d no affine");
  expect_error([&] { group_norm(Var(t), 3); }, "group_norm_forward: num_groups 3 must divide the 4 channels");
}

TEST(Norm, LayerNorm2d) {
  Tensor x = random_tensor({2, 3, 2, 2}, 24), w = random_tensor({3}, 25, 0.5, 1.5), b = random_tensor({3}, 26);
  Var y = layer_norm_2d(Var(x), Var(w), Var(b));
  EXPECT_EQ(y.shape(), x.shape());
  // position (n=1, h=0, w=1) by hand over the 3 channels
  double m = 0, v = 0;
  for (int64_t c = 0; c < 3; ++c) m += x.at<double>({1, c, 0, 1}) / 3;
  for (int64_t c = 0; c < 3; ++c) v += (x.at<double>({1, c, 0, 1}) - m) * (x.at<double>({1, c, 0, 1}) - m) / 3;
  for (int64_t c = 0; c < 3; ++c)
    EXPECT_NEAR(y.value().at<double>({1, c, 0, 1}),
                (x.at<double>({1, c, 0, 1}) - m) / std::sqrt(v + 1e-5) * w.at<double>({c}) + b.at<double>({c}), 1e-13);
  gradcheck_op([](const V& v) { return layer_norm_2d(v[0], v[1], v[2]); }, {x, w, b}, "layer_norm_2d");
  expect_error([&] { layer_norm_2d(Var(random_tensor({3}, 27))); }, "layer_norm_2d: x must be (N,C,...)");
}

// The kernels' results do not depend on the thread count, and F32 follows F64.
TEST(Norm, ThreadCountAndDtype) {
  Tensor x = random_tensor({64, 3, 40, 40}, 28), dy = random_tensor({64, 3, 40, 40}, 29);
  Tensor w = random_tensor({40}, 30), b = random_tensor({40}, 31);
  auto run = [&](DType dt, int threads) {
    const int keep = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<Tensor> out;
    Tensor y, mean, rstd, dx, dw, db;
    layer_norm_forward(y, mean, rstd, x.to(dt), {40}, w.to(dt), b.to(dt), 1e-5);
    layer_norm_backward(&dx, &dw, &db, dy.to(dt), x.to(dt), mean, rstd, w.to(dt), {40});
    out = {y, dx, dw, db};
    Tensor gy, gm, gr, gdx, gdw, gdb;
    group_norm_forward(gy, gm, gr, x.to(dt), 3, Tensor{}, Tensor{}, 1e-5);
    group_norm_backward(&gdx, nullptr, nullptr, dy.to(dt), x.to(dt), gm, gr, Tensor{}, 3);
    out.push_back(gy);
    out.push_back(gdx);
    Tensor by, bm, br, bdx, bdw;
    batch_norm_forward(by, bm, br, x.to(dt), Tensor{}, Tensor{}, Tensor{}, Tensor{}, true);
    batch_norm_backward(&bdx, &bdw, nullptr, dy.to(dt), x.to(dt), bm, br, Tensor{}, true);
    out.push_back(by);
    out.push_back(bdx);
    out.push_back(bdw);
    omp_set_num_threads(keep);
    return out;
  };
  auto a = run(DType::F64, 1), c = run(DType::F64, 3), f = run(DType::F32, 3);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(max_abs_diff(a[i], c[i]), 0.0) << "output " << i << " differs between 1 and 3 threads";
    const double scale = std::max(1.0, max_abs(a[i]));
    EXPECT_LT(max_abs_diff(a[i], f[i]), 2e-4 * scale) << "output " << i << " F32 vs F64";
  }
}
