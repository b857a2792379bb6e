// The vision kernels: channels-last depthwise conv against core's NCHW conv2d, the token transposes, the
// modulation product by hand, GroupMamba's fused VSSS groups against core::SS2D run per group (forward in
// double on a non-square grid, then every gradient by central differences), and bad inputs.
#include <complex>

#include "gradcheck.h"
#include "ssmkit/core/nn/ss2d.h"
#include "ssmkit/core/ops/conv.h"
#include "ssmkit/core/ops/elementwise.h"
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

// ---------------------------------------------------------------------------------------------------------
// Depthwise 3x3 on tokens, transposes, modulation

TEST(VisionOps, DwconvTokensMatchesCoreConv2d) {
  const int64_t B = 2, H = 3, W = 5, C = 7;
  Tensor x = random_tensor({B, H * W, C}, 1), w = random_tensor({C, 1, 3, 3}, 2), b = random_tensor({C}, 3);
  core::NoGradGuard ng;
  Var y = vision::dwconv3x3_tokens(Var(x), H, W, Var(w), Var(b));
  Var xm = vision::tokens_to_map(Var(x), H, W);
  Var ref = vision::map_to_tokens(core::conv2d(xm, Var(w), Var(b), {1, 1}, {1, 1}, {1, 1}, C));
  EXPECT_LT(core::max_abs_diff(y.value(), ref.value()), 1e-13);
  // one value by hand: token (h=0, w=0), channel 0 sees x at (0,0),(0,1),(1,0),(1,1) through taps 4,5,7,8
  auto X = [&](int64_t h, int64_t ww) { return x.at<double>({0, h * W + ww, 0}); };
  const double want = b.at<double>({0}) + w.at<double>({0, 0, 1, 1}) * X(0, 0) + w.at<double>({0, 0, 1, 2}) * X(0, 1) +
                      w.at<double>({0, 0, 2, 1}) * X(1, 0) + w.at<double>({0, 0, 2, 2}) * X(1, 1);
  EXPECT_NEAR(y.value().at<double>({0, 0, 0}), want, 1e-14);
}

TEST(VisionOps, DwconvTokensGradcheck) {
  const int64_t H = 4, W = 3;
  double err = gradcheck_op(
      [&](const std::vector<Var>& v) { return vision::dwconv3x3_tokens(v[0], H, W, v[1], v[2]); },
      {random_tensor({2, H * W, 5}, 4), random_tensor({5, 1, 3, 3}, 5), random_tensor({5}, 6)}, "dwconv3x3_tokens");
  EXPECT_LT(err, 1e-8);
}

TEST(VisionOps, TokenTransposes) {
  Tensor x = random_tensor({2, 3, 4, 5}, 7);
  Var t = vision::map_to_tokens(Var(x));
  ASSERT_EQ(t.shape(), core::Shape({2, 20, 3}));
  EXPECT_EQ(t.value().at<double>({1, 2 * 5 + 3, 2}), x.at<double>({1, 2, 2, 3}));
  EXPECT_EQ(vision::tokens_to_map(t, 4, 5).value().to_double_vector(), x.to_double_vector());
  gradcheck_op([](const std::vector<Var>& v) { return vision::map_to_tokens(v[0]); }, {x}, "map_to_tokens");
  gradcheck_op([](const std::vector<Var>& v) { return vision::tokens_to_map(v[0], 4, 5); },
               {random_tensor({2, 20, 3}, 8)}, "tokens_to_map");
}

TEST(VisionOps, ModulateByHandAndGradcheck) {
  // y * s * xn * a[b,c]
  Var y = test::var({1, 2, 2}, {1, 2, 3, 4}), s = test::var({1}, {0.5}), xn = test::var({1, 2, 2}, {2, 2, 2, 2});
  Var a = test::var({1, 2}, {1, 10});
  EXPECT_EQ(test::values(vision::modulate(y, s, xn, a)), (std::vector<double>{1, 20, 3, 40}));
  double err = gradcheck_op(
      [](const std::vector<Var>& v) { return vision::modulate(v[0], v[1], v[2], v[3]); },
      {random_tensor({2, 3, 4}, 9), random_tensor({1}, 10), random_tensor({2, 3, 4}, 11), random_tensor({2, 4}, 12)},
      "modulate");
  EXPECT_LT(err, 1e-8);
}

TEST(VisionOps, GeluFloatAgainstExactDouble) {
  // the float path's erf approximation (Abramowitz-Stegun 7.1.26) against std::erf in double, across the range
  std::vector<float> x, y(4001), g(4001), one(4001, 1.0f);
  for (int i = 0; i <= 4000; ++i) x.push_back(-10.0f + 0.005f * static_cast<float>(i));
  vision::gelu_forward(y.data(), x.data(), 4001);
  vision::gelu_backward(g.data(), one.data(), x.data(), 4001);
  double worst = 0, worst_g = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i], cdf = 0.5 * (1 + std::erf(v / std::sqrt(2.0)));
    const double pdf = std::exp(-0.5 * v * v) / std::sqrt(2 * 3.14159265358979323846);
    worst = std::max(worst, std::abs(y[i] - v * cdf) / std::max(1.0, std::abs(v)));
    worst_g = std::max(worst_g, std::abs(g[i] - (cdf + v * pdf)));
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_LT(worst_g, 5e-7);
  // double path: exact formula, gradient by central differences
  double err = gradcheck_op(
      [](const std::vector<Var>& v) { return vision::dwconv3x3_gelu_tokens(v[0], 2, 3, v[1], v[2]); },
      {random_tensor({2, 6, 4}, 13), random_tensor({4, 1, 3, 3}, 14), random_tensor({4}, 15)}, "dwconv3x3_gelu");
  EXPECT_LT(err, 1e-8);
}

// PVT2FFN's DWConv + GELU in float, with and without autograd (inference: the GELU in oneDNN's convolution
// epilogue where the library has oneDNN; training: our kernels, the pre-activation kept), against the double
// path (exact erf), on GroupMamba-T's stage-4 shape and one with a channel tail and no bias.
TEST(VisionOps, DwconvGeluFloatInferenceAndTrainingAgreeWithDouble) {
  struct Case { int64_t B, H, W, C; bool bias; };
  for (const Case& k : {Case{1, 7, 7, 1792, true}, Case{2, 5, 6, 37, false}}) {
    const Tensor x = random_tensor({k.B, k.H * k.W, k.C}, 41, -3, 3), w = random_tensor({k.C, 1, 3, 3}, 42);
    const Tensor b = k.bias ? random_tensor({k.C}, 43) : Tensor{};
    const Var b64 = k.bias ? Var(b) : Var(), b32 = k.bias ? Var(b.to(DType::F32)) : Var();
    Tensor ref;
    {
      core::NoGradGuard ng;
      ref = vision::dwconv3x3_gelu_tokens(Var(x), k.H, k.W, Var(w), b64).value();
    }
    Tensor infer;
    {
      core::NoGradGuard ng;
      infer = vision::dwconv3x3_gelu_tokens(Var(x.to(DType::F32)), k.H, k.W, Var(w.to(DType::F32)), b32).value();
    }
    Var xr(x.to(DType::F32), true);
    const Tensor train = vision::dwconv3x3_gelu_tokens(xr, k.H, k.W, Var(w.to(DType::F32)), b32).value();
    EXPECT_LT(core::max_abs_diff(infer, ref), 2e-5) << "inference, C " << k.C;
    EXPECT_LT(core::max_abs_diff(train, ref), 2e-5) << "training, C " << k.C;
  }
}

TEST(VisionOps, LayerNormLastDimMatchesCore) {
  Tensor x = random_tensor({3, 5, 37}, 16, -2, 3), w = random_tensor({37}, 17, 0.5, 1.5), b = random_tensor({37}, 18);
  core::NoGradGuard ng;
  Tensor ours = vision::layer_norm_lastdim(Var(x), Var(w), Var(b), 1e-6).value();
  Tensor ref = core::layer_norm(Var(x), {37}, Var(w), Var(b), 1e-6).value();
  EXPECT_LT(core::max_abs_diff(ours, ref), 1e-13);
  Tensor o32 = vision::layer_norm_lastdim(Var(x.to(DType::F32)), Var(w.to(DType::F32)), Var(b.to(DType::F32)), 1e-6)
                   .value();
  EXPECT_LT(core::max_abs_diff(o32, ref), 2e-6);
}

TEST(VisionOps, LayerNormLastDimGradcheck) {
  double err = gradcheck_op(
      [](const std::vector<Var>& v) { return vision::layer_norm_lastdim(v[0], v[1], v[2], 1e-5); },
      {random_tensor({2, 70, 9}, 19), random_tensor({9}, 20), random_tensor({9}, 21)}, "layer_norm_lastdim");
  EXPECT_LT(err, 1e-8);
}

// ---------------------------------------------------------------------------------------------------------
// GroupMamba's VSSS groups

namespace {

// Four SS2D blocks as GroupMamba builds them (d_state 1, ssm_ratio 1, one direction each), in double,
// with their parameters moved away from the identity-like init so every path matters.
struct Groups {
  core::Module holder;
  std::vector<std::shared_ptr<core::SS2D>> blocks;
  std::vector<Var> params;
  explicit Groups(int64_t Cg, uint64_t seed) {
    core::SS2DConfig cfg;
    cfg.d_model = Cg;
    cfg.d_state = 1;
    cfg.ssm_ratio = 1;
    cfg.n_directions = 1;
    core::Rng rng(seed);
    for (int k = 0; k < 4; ++k)
      blocks.push_back(holder.register_module("mamba_g" + std::to_string(k + 1), std::make_shared<core::SS2D>(cfg, rng)));
    holder.to(DType::F64);
    uint64_t s = seed * 100;
    for (auto& [name, v] : holder.named_parameters()) {
      Tensor r = random_tensor(v.shape(), ++s, -0.8, 0.8);
      if (name.find("A_logs") != std::string::npos) r = random_tensor(v.shape(), s, -1.0, 1.0);
      if (name.find("dt_projs_bias") != std::string::npos) r = random_tensor(v.shape(), s, -2.0, 0.0);
      v.value().copy_from(r);
      params.push_back(v);
    }
  }
};

}  // namespace

TEST(Vsss, FusedGroupsEqualCoreSS2DPerGroup) {
  const int64_t B = 2, H = 3, W = 5, Cg = 3;
  Groups g(Cg, 1);
  Tensor x = random_tensor({B, H * W, 4 * Cg}, 2);
  core::NoGradGuard ng;
  Var fused = vision::group_vsss(Var(x), H, W, g.params);
  Var ref = core::grouped_direction_scan(Var(x.reshape({B, H, W, 4 * Cg})), g.blocks);
  const double err = core::max_abs_diff(fused.value(), ref.value().reshape({B, H * W, 4 * Cg}));
  std::printf("group_vsss vs core SS2D per group: max |diff| %.3e\n", err);
  EXPECT_LT(err, 1e-12);
}

TEST(Vsss, FusedGroupsFloatMatchesDouble) {
  const int64_t B = 1, H = 7, W = 6, Cg = 16;
  Groups g(Cg, 3);
  Tensor x = random_tensor({B, H * W, 4 * Cg}, 4);
  core::NoGradGuard ng;
  Tensor y64 = vision::group_vsss(Var(x), H, W, g.params).value();
  std::vector<Var> p32;
  for (auto& v : g.params) p32.emplace_back(v.value().to(DType::F32));
  Tensor y32 = vision::group_vsss(Var(x.to(DType::F32)), H, W, p32).value();
  EXPECT_LT(core::max_abs_diff(y32, y64), 2e-5 * std::max(1.0, core::max_abs(y64)));
}

TEST(Vsss, GradcheckEveryInput) {
  const int64_t H = 2, W = 3, Cg = 2;  // non-square: column-major directions differ from a transpose
  Groups g(Cg, 5);
  std::vector<Tensor> inputs = {random_tensor({2, H * W, 4 * Cg}, 6)};
  for (auto& v : g.params) inputs.push_back(v.value().clone());
  double err = gradcheck_op(
      [&](const std::vector<Var>& v) {
        return vision::group_vsss(v[0], H, W, std::vector<Var>(v.begin() + 1, v.end()));
      },
      inputs, "group_vsss", 1e-6, 1e-7, 1e-5);
  EXPECT_LT(err, 1e-7);
}

TEST(Vsss, OneByOneMapAsTheClassBlockRunsIt) {
  Groups g(2, 7);
  Tensor x = random_tensor({3, 1, 8}, 8);
  core::NoGradGuard ng;
  Var fused = vision::group_vsss(Var(x), 1, 1, g.params);
  Var ref = core::grouped_direction_scan(Var(x.reshape({3, 1, 1, 8})), g.blocks);
  EXPECT_LT(core::max_abs_diff(fused.value(), ref.value().reshape({3, 1, 8})), 1e-13);
}

TEST(Vsss, BadInputs) {
  Groups g(2, 9);
  expect_error([&] { vision::group_vsss(Var(random_tensor({1, 6, 8}, 1)), 2, 2, g.params); }, "(B,4,C)");
  expect_error([&] { vision::group_vsss(Var(random_tensor({1, 4, 6}, 1)), 2, 2, g.params); }, "divisible by 4");
  std::vector<Var> short_list(g.params.begin(), g.params.end() - 1);
  expect_error([&] { vision::group_vsss(Var(random_tensor({1, 4, 8}, 1)), 2, 2, short_list); }, "44 parameters");
  std::vector<Var> bad = g.params;
  bad[3] = Var(random_tensor({3, 1}, 2));  // A_logs of group 1
  expect_error([&] { vision::group_vsss(Var(random_tensor({1, 4, 8}, 1)), 2, 2, bad); }, "group 1 A_logs");
}
