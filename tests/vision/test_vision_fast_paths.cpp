// The vision models' fast paths, each against a reference:
// - conv2d_tokens (conv_tokens.cpp) against core's NCHW conv2d on the models' geometries (7x7 stride 2 from one
//   channel, 3x3 stride 1 and 2, odd and non-square maps), one output by hand, float against double (forward
//   and backward), central differences in double, bad inputs;
// - batch_norm_relu_tokens against core's batch_norm + relu in training (running statistics too) and eval,
//   with central differences in both;
// - the float depthwise 3x3 kernels (dwconv_kernels.h) against their double path on every edge case (1-wide,
//   1-high maps, channel tails), and the float backward of the VSSS groups against the double one.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/conv.h"
#include "ssmkit/core/ops/norm.h"
#include "ssmkit/vision/ops.h"
#include "ssmkit/vision/vsss.h"

using namespace ssmkit;
using core::DType;
using core::Tensor;
using core::Var;
using test::expect_error;
using test::gradcheck_op;
using test::random_tensor;

namespace {

// conv2d_tokens through core's NCHW conv2d: tokens -> map -> conv -> tokens.
Tensor reference_conv(const Tensor& x, int64_t H, int64_t W, const Tensor& w, const Tensor& b, int64_t s, int64_t p) {
  core::NoGradGuard ng;
  Var m = vision::tokens_to_map(Var(x), H, W);
  return vision::map_to_tokens(core::conv2d(m, Var(w), b.defined() ? Var(b) : Var{}, {s, s}, {p, p})).value();
}

struct Geometry {
  int64_t B, H, W, C, O, K, S, P;
};

}  // namespace

TEST(ConvTokens, MatchesCoreConv2d) {
  const Geometry cases[] = {{3, 9, 7, 1, 5, 7, 2, 3},   // the gray stem's first conv, odd non-square map
                            {2, 6, 5, 4, 6, 3, 1, 1},   // stem 3x3
                            {2, 7, 8, 5, 3, 3, 2, 1},   // proj / DownSamples
                            {1, 1, 1, 6, 4, 3, 2, 1},   // a 1x1 map (the last DownSamples of the micro models)
                            {2, 4, 4, 3, 2, 2, 2, 0}};  // no padding
  uint64_t seed = 1;
  for (const Geometry& g : cases) {
    Tensor x = random_tensor({g.B, g.H * g.W, g.C}, seed++), w = random_tensor({g.O, g.C, g.K, g.K}, seed++);
    Tensor b = random_tensor({g.O}, seed++);
    for (bool with_bias : {true, false}) {
      core::NoGradGuard ng;
      int64_t OH = 0, OW = 0;
      Tensor y = vision::conv2d_tokens(Var(x), g.H, g.W, Var(w), with_bias ? Var(b) : Var{}, g.S, g.P, OH, OW).value();
      Tensor ref = reference_conv(x, g.H, g.W, w, with_bias ? b : Tensor{}, g.S, g.P);
      EXPECT_EQ(y.shape(), ref.shape()) << "K " << g.K << " S " << g.S;
      EXPECT_EQ(OH * OW, ref.size(1));
      EXPECT_LT(core::max_abs_diff(y, ref), 1e-12) << "K " << g.K << " S " << g.S;
      // float path against double
      Tensor y32 = vision::conv2d_tokens(Var(x.to(DType::F32)), g.H, g.W, Var(w.to(DType::F32)),
                                         with_bias ? Var(b.to(DType::F32)) : Var{}, g.S, g.P, OH, OW)
                       .value();
      EXPECT_LT(core::max_abs_diff(y32, ref), 1e-5);
    }
  }
}

TEST(ConvTokens, OneOutputByHand) {
  // 3x3 stride 2 padding 1 on a 3x3 map with 1 channel: output (0,0) reads x(0..1, 0..1) through taps (1..2, 1..2)
  Tensor x = test::f64({1, 9, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor w = test::f64({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor b = test::f64({1}, {0.5});
  core::NoGradGuard ng;
  int64_t OH = 0, OW = 0;
  Tensor y = vision::conv2d_tokens(Var(x), 3, 3, Var(w), Var(b), 2, 1, OH, OW).value();
  ASSERT_EQ(OH, 2);
  ASSERT_EQ(OW, 2);
  EXPECT_DOUBLE_EQ(y.at<double>({0, 0, 0}), 0.5 + 5 * 1 + 6 * 2 + 8 * 4 + 9 * 5);
  // output (1,1) is centred on x(2,2): taps (0..1, 0..1) read x(1..2, 1..2)
  EXPECT_DOUBLE_EQ(y.at<double>({0, 3, 0}), 0.5 + 1 * 5 + 2 * 6 + 4 * 8 + 5 * 9);
}

TEST(ConvTokens, Gradcheck) {
  for (const Geometry& g : {Geometry{2, 5, 4, 1, 3, 7, 2, 3}, Geometry{3, 4, 5, 3, 2, 3, 2, 1},
                            Geometry{2, 3, 3, 2, 3, 3, 1, 1}}) {
    double err = gradcheck_op(
        [&](const std::vector<Var>& v) {
          int64_t OH = 0, OW = 0;
          return vision::conv2d_tokens(v[0], g.H, g.W, v[1], v[2], g.S, g.P, OH, OW);
        },
        {random_tensor({g.B, g.H * g.W, g.C}, 11), random_tensor({g.O, g.C, g.K, g.K}, 12), random_tensor({g.O}, 13)},
        "conv2d_tokens");
    EXPECT_LT(err, 1e-8);
  }
}

TEST(ConvTokens, ManyImagesAcrossSlices) {
  // enough rows for several work units and weight-gradient slices: the sums must still equal core's
  const int64_t B = 40, H = 8, W = 8, C = 3, O = 5;
  Tensor x = random_tensor({B, H * W, C}, 21), w = random_tensor({O, C, 3, 3}, 22);
  Tensor g = random_tensor({B, H * W, O}, 23);
  Tensor dx, dw, db;
  vision::conv2d_tokens_backward(&dx, &dw, &db, g, x, H, W, w, 1, 1);
  Tensor rdx, rdw, rdb;
  core::conv2d_backward(&rdx, &rdw, &rdb, vision::tokens_to_map(Var(g), H, W).value(),
                        vision::tokens_to_map(Var(x), H, W).value(), w, core::ConvGeometry{1, 1, 1, 1, 1, 1, 1, 1, 1});
  EXPECT_LT(core::max_abs_diff(dx, vision::map_to_tokens(Var(rdx)).value()), 1e-11);
  EXPECT_LT(core::max_abs_diff(dw, rdw), 1e-10);
  EXPECT_LT(core::max_abs_diff(db, rdb), 1e-10);
}

TEST(ConvTokens, FloatBackwardMatchesDouble) {
  // the float path's own GEMM kernel (register tiles, zero-padded column tails) against the double path
  for (const Geometry& g : {Geometry{5, 9, 9, 1, 16, 7, 2, 3}, Geometry{3, 8, 6, 16, 32, 3, 2, 1},
                            Geometry{2, 5, 7, 3, 5, 3, 1, 1}, Geometry{9, 4, 4, 24, 40, 3, 2, 1}}) {
    Tensor x = random_tensor({g.B, g.H * g.W, g.C}, 61), w = random_tensor({g.O, g.C, g.K, g.K}, 62);
    const int64_t OH = (g.H + 2 * g.P - g.K) / g.S + 1, OW = (g.W + 2 * g.P - g.K) / g.S + 1;
    Tensor dy = random_tensor({g.B, OH * OW, g.O}, 63);
    Tensor dx, dw, db, dx32, dw32, db32;
    vision::conv2d_tokens_backward(&dx, &dw, &db, dy, x, g.H, g.W, w, g.S, g.P);
    vision::conv2d_tokens_backward(&dx32, &dw32, &db32, dy.to(DType::F32), x.to(DType::F32), g.H, g.W,
                                   w.to(DType::F32), g.S, g.P);
    EXPECT_LT(core::max_abs_diff(dx32, dx), 2e-5) << "C " << g.C << " O " << g.O;
    EXPECT_LT(core::max_abs_diff(dw32, dw), 1e-4) << "C " << g.C << " O " << g.O;
    EXPECT_LT(core::max_abs_diff(db32, db), 1e-4) << "C " << g.C << " O " << g.O;
  }
}

TEST(DwconvTokens, FloatKernelsMatchDouble) {
  struct Case {
    int64_t B, H, W, C;
  };
  // 8x8 with 128 channels and 6x9 with 40: the oneDNN path where built in (maps of 4 x 4 and more backward)
  for (const Case& k : {Case{2, 5, 7, 16}, Case{3, 1, 1, 8}, Case{2, 4, 1, 19}, Case{2, 1, 6, 13}, Case{1, 3, 3, 5},
                        Case{2, 8, 8, 128}, Case{1, 6, 9, 40}}) {
    Tensor x = random_tensor({k.B, k.H * k.W, k.C}, 71), w = random_tensor({k.C, 1, 3, 3}, 72);
    Tensor b = random_tensor({k.C}, 73), dy = random_tensor({k.B, k.H * k.W, k.C}, 74);
    Tensor y, y32, dx, dw, db, dx32, dw32, db32;
    vision::dwconv3x3_tokens_forward(y, x, k.H, k.W, w, b);
    vision::dwconv3x3_tokens_forward(y32, x.to(DType::F32), k.H, k.W, w.to(DType::F32), b.to(DType::F32));
    vision::dwconv3x3_tokens_backward(&dx, &dw, &db, dy, x, k.H, k.W, w);
    vision::dwconv3x3_tokens_backward(&dx32, &dw32, &db32, dy.to(DType::F32), x.to(DType::F32), k.H, k.W,
                                      w.to(DType::F32));
    const std::string at = std::to_string(k.H) + "x" + std::to_string(k.W) + " C " + std::to_string(k.C);
    EXPECT_LT(core::max_abs_diff(y32, y), 2e-6) << at;
    EXPECT_LT(core::max_abs_diff(dx32, dx), 2e-6) << at;
    EXPECT_LT(core::max_abs_diff(dw32, dw), 2e-5) << at;
    EXPECT_LT(core::max_abs_diff(db32, db), 2e-5) << at;
  }
}

TEST(BatchNormReluTokens, MatchesCoreInTrainingAndEval) {
  const int64_t B = 3, L = 10, C = 6;
  Tensor x = random_tensor({B, L, C}, 31, -2, 2), w = random_tensor({C}, 32, 0.5, 1.5), b = random_tensor({C}, 33);
  Tensor rm = random_tensor({C}, 34), rv = random_tensor({C}, 35, 0.5, 1.5);
  Tensor rm2 = rm.clone(), rv2 = rv.clone();
  core::NoGradGuard ng;
  for (bool training : {true, false}) {
    Tensor y = vision::batch_norm_relu_tokens(Var(x), rm, rv, Var(w), Var(b), training, 0.1, 1e-5).value();
    // core: (B*L, C) rows as (N, C) with no spatial dims
    Var ref = core::relu(core::batch_norm(Var(x.reshape({B * L, C})), rm2, rv2, Var(w), Var(b), training, 0.1, 1e-5));
    EXPECT_LT(core::max_abs_diff(y, ref.value().reshape({B, L, C})), 1e-12) << (training ? "training" : "eval");
    EXPECT_LT(core::max_abs_diff(rm, rm2), 1e-15);
    EXPECT_LT(core::max_abs_diff(rv, rv2), 1e-15);
  }
}

TEST(BatchNormReluTokens, Gradcheck) {
  for (bool training : {true, false}) {
    Tensor rm = random_tensor({4}, 41), rv = random_tensor({4}, 42, 0.5, 1.5);
    double err = gradcheck_op(
        [&](const std::vector<Var>& v) {
          return vision::batch_norm_relu_tokens(v[0], rm, rv, v[1], v[2], training, 0.1, 1e-5);
        },
        {random_tensor({2, 7, 4}, 43, -2, 2), random_tensor({4}, 44, 0.5, 1.5), random_tensor({4}, 45)},
        training ? "batch_norm_relu_tokens (training)" : "batch_norm_relu_tokens (eval)");
    EXPECT_LT(err, 1e-8);
  }
}

TEST(ConvTokens, BadInputs) {
  int64_t OH = 0, OW = 0;
  Var x(random_tensor({1, 12, 2}, 51)), w(random_tensor({3, 2, 3, 3}, 52));
  expect_error([&] { vision::conv2d_tokens(x, 3, 5, w, Var{}, 1, 1, OH, OW); }, "x must be (B,15,C)");
  expect_error([&] { vision::conv2d_tokens(x, 3, 4, Var(random_tensor({3, 1, 3, 3}, 53)), Var{}, 1, 1, OH, OW); },
               "weight must be (O,2,K,K)");
  expect_error([&] { vision::conv2d_tokens(x, 3, 4, w, Var(random_tensor({2}, 54)), 1, 1, OH, OW); },
               "bias must be (3)");
  expect_error([&] { vision::conv2d_tokens(x, 3, 4, Var(random_tensor({3, 2, 7, 7}, 55)), Var{}, 1, 1, OH, OW); },
               "smaller than the 7x7 kernel");
  expect_error([&] { vision::conv2d_tokens(x, 3, 4, w, Var{}, 0, 1, OH, OW); }, "stride must be >= 1");
  Tensor rm = Tensor::zeros({2}, DType::F64), rv = Tensor::full({3}, 1.0, DType::F64);
  Var bw(Tensor::full({2}, 1.0, DType::F64)), bb(Tensor::zeros({2}, DType::F64));
  expect_error([&] { vision::batch_norm_relu_tokens(x, rm, rv, bw, bb, true, 0.1, 1e-5); },
               "running_var must be a contiguous (2)");
  expect_error(
      [&] { vision::batch_norm_relu_tokens(Var(random_tensor({1, 1, 2}, 56)), rm, rm, bw, bb, true, 0.1, 1e-5); },
      "more than 1 value per channel");
}

// The four groups' parameters (width Cg, dt rank R), uniform in [-0.8, 0.8], seeds seed+1, seed+2, ... in order.
static std::vector<vision::VsssParams> random_vsss_params(int64_t Cg, int64_t R, uint64_t seed, DType dt) {
  std::vector<vision::VsssParams> p(4);
  for (auto& g : p) {
    const std::vector<core::Shape> shapes = {{1, R + 2, Cg}, {1, Cg, R}, {1, Cg}, {Cg, 1}, {Cg},    {Cg},
                                             {Cg},           {2 * Cg, Cg}, {Cg, 1, 3, 3}, {Cg}, {Cg, Cg}};
    auto l = g.list();
    for (size_t i = 0; i < l.size(); ++i) *l[i] = random_tensor(shapes[i], ++seed, -0.8, 0.8, dt);
  }
  return p;
}

TEST(Vsss, FloatBackwardMatchesDouble) {
  // group widths with and without a channel tail, a non-square grid, two sequences
  for (const int64_t Cg : {8, 13}) {
    const int64_t B = 2, H = 3, W = 5, R = 1;
    const std::vector<vision::VsssParams> p = random_vsss_params(Cg, R, 80, DType::F64);
    Tensor x = random_tensor({B, H * W, 4 * Cg}, 91), dy = random_tensor({B, H * W, 4 * Cg}, 92);
    auto run = [&](DType dt, std::vector<vision::VsssParams>& grads) {
      std::vector<vision::VsssParams> q = p;
      for (auto& g : q)
        for (Tensor* t : g.list()) *t = t->to(dt);
      vision::VsssCache cache;
      Tensor y, dx;
      vision::group_vsss_forward(y, &cache, x.to(dt), H, W, q);
      for (const auto& g : q) grads.push_back(vision::VsssParams::zeros_like(g));
      vision::group_vsss_backward(dx, grads, dy.to(dt), cache, q);
      return dx;
    };
    std::vector<vision::VsssParams> g64, g32;
    Tensor dx64 = run(DType::F64, g64), dx32 = run(DType::F32, g32);
    EXPECT_LT(core::max_abs_diff(dx32, dx64), 2e-5 * std::max(1.0, core::max_abs(dx64))) << "Cg " << Cg;
    for (size_t g = 0; g < 4; ++g) {
      auto a = g64[g].list(), b = g32[g].list();
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_LT(core::max_abs_diff(*b[i], *a[i]), 1e-4 * std::max(1.0, core::max_abs(*a[i])))
            << "Cg " << Cg << " group " << g << " parameter " << i;
    }
  }
}

// A scan whose input goes quiet (zero padding, a blank image region) lets its states decay through the
// denormal range, where every multiply takes a microcode assist; the scans flush denormals (core's
// FlushDenormals), so no state, output or gradient is denormal, and the caller's floating-point mode is left
// as it was. Input only in the first image row (plus the conv's halo): the row-major forward group then decays
// over ~2,200 quiet tokens, past e^-103 on every channel.
TEST(Vsss, QuietInputDecaysWithoutDenormals) {
  const int64_t B = 1, H = 48, W = 48, Cg = 8, R = 1;
  std::vector<vision::VsssParams> p = random_vsss_params(Cg, R, 300, DType::F32);
  for (auto& g : p) g.conv_bias = Tensor::zeros({Cg}, DType::F32);  // a quiet token stays quiet after the conv
  Tensor x = Tensor::zeros({B, H * W, 4 * Cg}, DType::F32);
  const Tensor first_row = random_tensor({B, W, 4 * Cg}, 399, -1, 1, DType::F32);
  std::copy(first_row.data<float>(), first_row.data<float>() + first_row.numel(), x.data<float>());
  const Tensor dy = random_tensor({B, H * W, 4 * Cg}, 398, -1, 1, DType::F32);
  const auto denormals = ssmkit::test::count_denormals;
  for (const int threads : {1, 2}) {
    ssmkit::test::ScopedThreads scope(threads);
    vision::VsssCache cache;
    Tensor y, dx;
    vision::group_vsss_forward(y, &cache, x, H, W, p);
    int64_t zero_states = 0;
    for (int64_t i = 0; i < cache.groups[0].h.numel(); ++i) zero_states += cache.groups[0].h.data<float>()[i] == 0.0f;
    EXPECT_GT(zero_states, 1000) << "the row-major group's states should decay all the way to zero";
    for (size_t g = 0; g < cache.groups.size(); ++g)
      for (const Tensor* t : {&cache.groups[g].h, &cache.groups[g].ys})
        EXPECT_EQ(denormals(*t), 0) << "group " << g << ", " << threads << " threads";
    EXPECT_EQ(denormals(y), 0);
    std::vector<vision::VsssParams> grads;
    for (const auto& g : p) grads.push_back(vision::VsssParams::zeros_like(g));
    vision::group_vsss_backward(dx, grads, dy, cache, p);
    EXPECT_EQ(denormals(dx), 0) << threads << " threads";
  }
  EXPECT_TRUE(ssmkit::test::thread_makes_denormals()) << "the caller's floating-point mode was changed";
}
