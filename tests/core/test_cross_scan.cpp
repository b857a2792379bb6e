// Cross-scan / cross-merge and the single-direction pair: hand-computed orders, inverse pairs,
// adjointness, and finite-difference gradients in double.
#include "gradcheck.h"
#include "ssmkit/core/ssm/cross_scan.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::gradcheck;
using ssmkit::test::random_tensor;

TEST(CrossScan, HandComputedOrders2x3) {
  // x = [[0,1,2],[3,4,5]] (H=2, W=3)
  Tensor x = Tensor::from_vector({1, 1, 2, 3}, std::vector<double>{0, 1, 2, 3, 4, 5});
  Tensor xs;
  cross_scan_forward(xs, x);
  const std::vector<std::vector<double>> want = {
      {0, 1, 2, 3, 4, 5}, {0, 3, 1, 4, 2, 5}, {5, 4, 3, 2, 1, 0}, {5, 2, 4, 1, 3, 0}};
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 6; ++l) EXPECT_EQ(xs.at<double>({0, k, 0, l}), want[k][l]) << "k=" << k << " l=" << l;
  // merging the four scans of x gives 4x
  Tensor y;
  cross_merge_forward(y, xs, 2, 3);
  for (int p = 0; p < 6; ++p) EXPECT_EQ(y.at<double>({0, 0, p}), 4.0 * p);
}

TEST(CrossScan, SingleDirectionPairsInvert) {
  for (auto [H, W] : {std::pair<int64_t, int64_t>{1, 1}, {3, 5}, {4, 4}, {7, 2}}) {
    Tensor x = random_tensor({2, 3, H, W}, 4, -1, 1, DType::F32);
    for (int k = 0; k < 4; ++k) {
      Tensor xs, y;
      direction_scan_forward(xs, x, static_cast<ScanDirection>(k));
      direction_merge_forward(y, xs, static_cast<ScanDirection>(k), H, W);
      EXPECT_EQ(max_abs_diff(y, x.view({2, 3, H * W})), 0.0) << H << "x" << W << " k=" << k;
    }
  }
}

TEST(CrossScan, BackwardIsAdjoint) {
  const int64_t H = 3, W = 5;
  Tensor x = random_tensor({2, 3, H, W}, 1), ys = random_tensor({2, 4, 3, H * W}, 2);
  Tensor xs, y, dx, dys;
  cross_scan_forward(xs, x);
  cross_scan_backward(dx, ys, H, W);
  EXPECT_NEAR(dot(xs, ys), dot(x, dx), 1e-12);
  Tensor yy = random_tensor({2, 3, H * W}, 3);
  cross_merge_forward(y, ys, H, W);
  cross_merge_backward(dys, yy, H, W);
  EXPECT_NEAR(dot(y, yy), dot(ys, dys), 1e-12);
}

TEST(CrossScan, GradcheckAllMaps) {
  const int64_t H = 2, W = 3;
  Tensor x = random_tensor({1, 2, H, W}, 5), ys = random_tensor({1, 4, 2, H * W}, 6);
  Tensor wxs = random_tensor({1, 4, 2, H * W}, 7), wy = random_tensor({1, 2, H * W}, 8);
  Tensor dx, dys;
  cross_scan_backward(dx, wxs, H, W);
  cross_merge_backward(dys, wy, H, W);
  gradcheck([&] { Tensor t; cross_scan_forward(t, x); return dot(t, wxs); }, x, dx, "cross_scan x");
  gradcheck([&] { Tensor t; cross_merge_forward(t, ys, H, W); return dot(t, wy); }, ys, dys, "cross_merge ys");
  for (int k = 0; k < 4; ++k) {
    auto dir = static_cast<ScanDirection>(k);
    Tensor w = random_tensor({1, 2, H * W}, 9 + k), g, gm;
    direction_scan_backward(g, w, dir, H, W);
    gradcheck([&] { Tensor t; direction_scan_forward(t, x, dir); return dot(t, w); }, x, g, "direction_scan");
    Tensor yv = random_tensor({1, 2, H * W}, 20 + k);
    direction_merge_backward(gm, w, dir, H, W);
    gradcheck([&] { Tensor t; direction_merge_forward(t, yv, dir, H, W); return dot(t, w); }, yv, gm, "direction_merge");
  }
}

TEST(CrossScan, GradientsAccumulateAndShapesAreChecked) {
  const int64_t H = 2, W = 2;
  Tensor g = random_tensor({1, 4, 1, 4}, 1), dx, dx2;
  cross_scan_backward(dx, g, H, W);
  dx2 = dx.clone();
  cross_scan_backward(dx2, g, H, W);
  EXPECT_NEAR(max_abs_diff(dx2, Tensor::from_vector({1, 1, 2, 2}, [&] {
                             std::vector<double> v = dx.to_double_vector();
                             for (double& e : v) e *= 2;
                             return v;
                           }())),
              0.0, 1e-15);
  Tensor bad = Tensor::zeros({1, 3, 1, 4});
  Tensor y;
  EXPECT_THROW(cross_merge_forward(y, bad, H, W), Error);
}
