// The model factory and the micro configurations: names, parameter counts (groupmamba-micro is the issue's
// 1.21 M-parameter configuration), config JSON round trips (including the golden files' metadata form),
// forward shapes, a training step that reaches every parameter, and central differences in double on a few
// entries of every parameter kind in each block type of both micro models (stem convs and BatchNorms,
// downsampling, the GroupMamba layer with its four VSSS groups, PVT2FFN, the Mamba layer, EinFFT, the
// class-token blocks, norms and heads).
#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/loss.h"
#include "ssmkit/core/train/data_parallel.h"
#include "ssmkit/core/train/optimizer.h"
#include "ssmkit/vision/groupmamba.h"
#include "ssmkit/vision/model.h"
#include "ssmkit/vision/simba.h"

using namespace ssmkit;
using core::DType;
using core::Tensor;
using core::Var;
using test::expect_error;
using test::random_tensor;

namespace {

std::shared_ptr<vision::VisionModel> micro(const std::string& name, uint64_t seed) {
  static std::map<uint64_t, core::Rng> rngs;
  vision::VisionModelOptions o;
  o.rng = &rngs.emplace(seed, core::Rng(seed)).first->second;
  return vision::make_vision_model(name, o);
}

// Draws every parameter and BatchNorm statistic as the golden files do (weights N(0, 1/fan_in), norm scales
// 1 + 0.2 N, biases 0.1 N, running variances U(0.5, 1.5)), so that no path is near zero or the identity and
// the gradients are well above the central differences' rounding floor.
void randomize(vision::VisionModel& m, uint64_t seed) {
  core::Rng rng(seed);
  for (auto& [k, v] : m.named_parameters()) {
    Tensor& t = v.value();
    double* p = t.data<double>();
    const bool is_norm = k.find("norm") != std::string::npos || k.find("conv.1.") != std::string::npos ||
                         k.find("conv.4.") != std::string::npos || k.find("conv.7.") != std::string::npos;
    const int64_t fan_in = t.ndim() >= 2 && t.size(0) > 0 ? std::max<int64_t>(1, t.numel() / t.size(0)) : 1;
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (k.find("A_log") != std::string::npos) p[i] = std::log(rng.uniform(0.3, 4.0));
      else if (k.find("dt_proj") != std::string::npos && k.find("bias") != std::string::npos)
        p[i] = std::log(std::expm1(rng.uniform(0.01, 0.5)));
      else if (t.ndim() >= 2 && k.find("complex") == std::string::npos)
        p[i] = rng.normal() / std::sqrt(static_cast<double>(fan_in));
      else if (is_norm && k.find("weight") != std::string::npos) p[i] = 1.0 + 0.2 * rng.normal();
      else if (k.find("skip_scale") != std::string::npos || k.find(".D") != std::string::npos ||
               k.find("Ds") != std::string::npos)
        p[i] = 1.0 + 0.5 * rng.normal();
      else p[i] = (k.find("complex") != std::string::npos ? 0.3 : 0.1) * rng.normal();
    }
  }
  for (auto& [k, t] : m.named_buffers()) {
    if (k.find("running_mean") != std::string::npos)
      for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = 0.2 * rng.normal();
    if (k.find("running_var") != std::string::npos)
      for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = rng.uniform(0.5, 1.5);
  }
}

// Central differences on `per` entries (spread over the tensor) of each named parameter, in double, eval mode.
void fd_check(vision::VisionModel& m, const std::vector<std::string>& names, int per = 2) {
  m.to(DType::F64);
  m.eval();
  randomize(m, 99);
  const Tensor image = random_tensor({1, m.in_chans(), 32, 32}, 77);
  Var out = m.forward(Var(image));
  const Tensor w = random_tensor(out.shape(), 78);
  out.backward(w);
  auto loss = [&] {
    core::NoGradGuard ng;
    return test::dot(m.forward(Var(image)).value(), w);
  };
  std::map<std::string, Var> params;
  for (auto& [k, v] : m.named_parameters()) params.emplace(k, v);
  for (const auto& name : names) {
    auto it = params.find(name);
    ASSERT_TRUE(it != params.end()) << "no parameter " << name;
    Var p = it->second;
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    const Tensor g = p.grad().contiguous();
    const double gscale = std::max(core::max_abs(g), 1e-12);
    double* x = p.value().data<double>();
    const int64_t n = p.numel();
    for (int k = 0; k < per && k < n; ++k) {
      const int64_t i = (k * n) / per + (n > per ? (k * 7) % std::max<int64_t>(1, n / per) : 0);
      const double keep = x[i], eps = 1e-6;
      x[i] = keep + eps;
      const double lp = loss();
      x[i] = keep - eps;
      const double lm = loss();
      x[i] = keep;
      const double num = (lp - lm) / (2 * eps), ana = g.data<double>()[i];
      EXPECT_NEAR(num, ana, 1e-6 * gscale + 1e-5 * std::abs(num) + 1e-8) << name << "[" << i << "]";
    }
  }
}

}  // namespace

TEST(VisionModels, FactoryNamesAndMicroSizes) {
  auto names = vision::vision_model_names();
  EXPECT_EQ(names.size(), 11u);
  expect_error([] { vision::make_vision_model("groupmamba-x"); }, "unknown model \"groupmamba-x\"");
  expect_error([] { vision::make_vision_model("groupmamba-x"); }, "simba-micro");
  auto g = micro("groupmamba-micro", 1);
  auto s = micro("simba-micro", 2);
  EXPECT_EQ(g->num_parameters(), 1212650);  // the issue's 1.21 M official-class count
  EXPECT_EQ(s->num_parameters(), 1208826);
  for (auto* m : {g.get(), s.get()}) {
    EXPECT_LE(m->num_parameters(), 1500000);
    EXPECT_EQ(m->in_chans(), 1);
    EXPECT_EQ(m->num_classes(), 10);
    EXPECT_EQ(m->image_size, 32);
  }
  EXPECT_EQ(g->arch(), "groupmamba");
  EXPECT_EQ(s->arch(), "simba");
  EXPECT_EQ(g->name, "groupmamba-micro");
  // micro GroupMamba: no distillation head; micro SiMBA: no aux head, EinFFT mixers
  auto keys = [](const vision::VisionModel& m) {
    std::vector<std::string> k;
    for (auto& [n, t] : m.state_dict()) k.push_back(n);
    return k;
  };
  auto gk = keys(*g), sk = keys(*s);
  EXPECT_EQ(std::count(gk.begin(), gk.end(), "dist_head.weight"), 0);
  EXPECT_EQ(std::count(sk.begin(), sk.end(), "aux_head.weight"), 0);
  EXPECT_EQ(std::count(sk.begin(), sk.end(), "post_network.0.mlp.complex_weight_1"), 1);
  EXPECT_EQ(gk.back(), "head.bias");
}

TEST(VisionModels, OfficialInitialization) {
  auto stats = [](const Tensor& t) {
    std::vector<double> v = t.to_double_vector();
    double m = 0, q = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) q += (x - m) * (x - m);
    return std::pair<double, double>{m, std::sqrt(q / static_cast<double>(v.size()))};
  };
  std::map<std::string, Tensor> g, s;
  for (auto& [k, t] : micro("groupmamba-micro", 20)->state_dict()) g[k] = t;
  for (auto& [k, t] : micro("simba-micro", 21)->state_dict()) s[k] = t;
  // GroupMamba: Linear trunc_normal(0.02) and zero bias; Conv2d N(0, sqrt(2 / fan_out)); A = -1; D = 1
  EXPECT_NEAR(stats(g["block1.0.mlp.fc1.weight"]).second, 0.02, 0.002);
  EXPECT_EQ(core::max_abs(g["block1.0.mlp.fc1.bias"]), 0.0);
  EXPECT_NEAR(stats(g["block1.0.mlp.dwconv.dwconv.weight"]).second, std::sqrt(2.0 / 9.0), 0.03);
  EXPECT_NEAR(stats(g["block1.0.attn.mamba_g1.conv2d.weight"]).second, std::sqrt(2.0 / 9.0), 0.12);
  EXPECT_NEAR(stats(g["patch_embed1.conv.3.weight"]).second, std::sqrt(2.0 / (9.0 * 16)), 0.02);
  EXPECT_EQ(core::max_abs(g["block1.0.attn.mamba_g2.A_logs"]), 0.0);
  EXPECT_EQ(stats(g["block1.0.attn.mamba_g2.Ds"]), (std::pair<double, double>{1.0, 0.0}));
  EXPECT_EQ(stats(g["block1.0.attn.skip_scale"]).first, 1.0);
  EXPECT_EQ(stats(g["norm1.weight"]), (std::pair<double, double>{1.0, 0.0}));
  // SiMBA: Mamba's Linears re-drawn too (dt_proj.bias = 0); A_log = log(1..64) and D = 1 kept; EinFFT N(0,1)*0.02
  EXPECT_EQ(core::max_abs(s["block1.0.attn.mamba.dt_proj.bias"]), 0.0);
  EXPECT_NEAR(stats(s["block1.0.attn.mamba.in_proj.weight"]).second, 0.02, 0.002);
  EXPECT_FLOAT_EQ(s["block1.0.attn.mamba.A_log"].at<float>({3, 9}), std::log(10.0f));
  EXPECT_NEAR(stats(s["block3.0.mlp.complex_weight_1"]).second, 0.02, 0.002);
}

TEST(VisionModels, OptionsOverrideDefaults) {
  vision::VisionModelOptions o;
  o.num_classes = 7;
  o.in_chans = 3;
  o.drop_path_rate = 0.0;
  o.initialize = false;
  auto m = vision::make_vision_model("groupmamba-micro", o);
  EXPECT_EQ(m->num_classes(), 7);
  EXPECT_EQ(m->in_chans(), 3);
  o.num_classes = -1;
  expect_error([&] { vision::make_vision_model("simba-micro", o); }, "must not be negative");
}

TEST(VisionModels, ConfigJsonRoundTrip) {
  for (const char* name : {"groupmamba-micro", "simba-micro"}) {
    auto m = micro(name, 3);
    vision::VisionModelOptions o;
    o.initialize = false;
    auto r = vision::make_vision_model_from_config(m->config_json(), o);
    EXPECT_EQ(r->config_json(), m->config_json()) << name;
    EXPECT_EQ(r->image_size, 32) << name;
    auto a = m->state_dict(), b = r->state_dict();
    ASSERT_EQ(a.size(), b.size()) << name;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_EQ(a[i].second.shape(), b[i].second.shape()) << a[i].first;
    }
  }
  // the golden files' config metadata (official constructor arguments)
  auto g = vision::GroupMambaConfig::from_json(
      R"({"depths": [1, 1, 2, 1], "distillation": true, "drop_path_rate": 0.1, "embed_dims": [32, 48, 68, 88],
          "in_chans": 3, "mlp_ratios": [8, 8, 4, 4], "norm_layer": {"eps": 1e-06, "type": "LayerNorm"},
          "num_classes": 100, "num_stages": 4, "stem_hidden_dim": 16})");
  EXPECT_EQ(g.embed_dims, (std::vector<int64_t>{32, 48, 68, 88}));
  EXPECT_DOUBLE_EQ(g.norm_eps, 1e-6);
  auto s = vision::SimbaConfig::from_json(R"({"cm_type": "EinFFT", "sr_ratios": [4, 2, 1, 1], "token_label": false})");
  EXPECT_EQ(s.mixer, vision::SimbaMixer::EinFFT);
  EXPECT_FALSE(s.token_label);
  expect_error([] { vision::SimbaConfig::from_json(R"({"cm_type": "attention"})"); }, "cm_type");
  expect_error([] { vision::GroupMambaConfig::from_json(R"({"embed_dims": [30, 64, 128, 160]})"); },
               "embed_dims[0] = 30");
  expect_error([] { vision::GroupMambaConfig::from_json(R"({"depths": 3})"); }, "wrong type");
  expect_error([] { vision::make_vision_model_from_config(R"({"arch": "resnet"})"); }, "unknown arch \"resnet\"");
  expect_error([] { vision::make_vision_model_from_config("{not json"); }, "not valid JSON");
}

TEST(VisionModels, ForwardShapesAndBadImages) {
  for (const char* name : {"groupmamba-micro", "simba-micro"}) {
    auto m = micro(name, 4);
    m->eval();
    core::NoGradGuard ng;
    vision::VisionTrace tr;
    Var y = m->forward(Var(random_tensor({2, 1, 32, 32}, 5, -1, 1, DType::F32)), &tr);
    EXPECT_EQ(y.shape(), core::Shape({2, 10})) << name;
    EXPECT_EQ(tr.stem.shape(), core::Shape({2, 64, 32})) << name;      // 8x8 tokens after the stem
    EXPECT_EQ(tr.stage4_tokens.shape(), core::Shape({2, 1, 160})) << name;  // 1x1 grid at stage 4
    EXPECT_EQ(tr.features.shape(), core::Shape({2, 160})) << name;
    // odd sizes: 28x28 gives 7x7 -> 4x4 -> 2x2 -> 1x1 grids
    EXPECT_EQ(m->forward(Var(random_tensor({1, 1, 28, 28}, 6, -1, 1, DType::F32))).shape(), core::Shape({1, 10}));
    expect_error([&] { m->forward(Var(random_tensor({1, 3, 32, 32}, 6, -1, 1, DType::F32))); }, "(B,1,H,W)");
  }
}

TEST(VisionModels, EvalBatchSlicingChangesNothing) {
  for (const char* name : {"groupmamba-micro", "simba-micro"}) {
    auto m = micro(name, 15);
    m->eval();
    core::NoGradGuard ng;
    Var x(random_tensor({7, 1, 32, 32}, 16, -1, 1, DType::F32));
    m->slice_pixels = 0;
    vision::VisionTrace whole, sliced;
    Tensor a = m->forward(x, &whole).value();
    m->slice_pixels = 2 * 32 * 32;  // slices of 2, 2, 2, 1 images
    Tensor b = m->forward(x, &sliced).value();
    EXPECT_EQ(a.shape(), b.shape());
    EXPECT_LT(core::max_abs_diff(a, b), 1e-5) << name;
    EXPECT_LT(core::max_abs_diff(whole.stem.value(), sliced.stem.value()), 1e-5) << name;
    EXPECT_EQ(sliced.features.shape(), whole.features.shape()) << name;
  }
}

TEST(VisionModels, TrainingStepReachesEveryParameter) {
  for (const char* name : {"groupmamba-micro", "simba-micro"}) {
    auto m = micro(name, 8);
    m->train();
    Var y = m->forward(Var(random_tensor({2, 1, 32, 32}, 9, -1, 1, DType::F32)));
    core::mean(core::square(y)).backward();
    int64_t with_grad = 0, n = 0;
    for (auto& [k, v] : m->named_parameters()) {
      ++n;
      with_grad += v.grad().defined();
      EXPECT_TRUE(v.grad().defined()) << name << " " << k;
    }
    EXPECT_EQ(with_grad, n) << name;
  }
}

// Two data-parallel shards of a micro training step (float32, so the convolutions take oneDNN where built in;
// drop path on) give the same bits on one thread as on two: inside the shards oneDNN runs single-threaded, and primitives
// built for another thread count must not be reused there (a backward-weights primitive built for two threads
// waited forever for its second thread inside a shard). The plain step at two threads after one at one thread
// must also agree with its one-thread result to rounding (the primitives are rebuilt for the thread count).
TEST(VisionModels, DataParallelStepsSameBitsOnOneAndTwoThreads) {
  const int64_t B = 8;
  const Tensor x = random_tensor({B, 1, 32, 32}, 21, -1, 2, DType::F32);
  Tensor labels = Tensor::empty({B}, DType::I64);
  for (int64_t i = 0; i < B; ++i) labels.data<int64_t>()[i] = (i * 3) % 10;
  for (const char* name : {"groupmamba-micro", "simba-micro"}) {
    auto train = [&](int threads, int64_t K) {
      test::ScopedThreads t(threads);
      // Built from the global generator (as ssm-classify does), so that drop path draws from global_rng() at
      // each forward: each shard's own generator inside DataParallel::step.
      core::manual_seed(31);
      auto m = vision::make_vision_model(name, {});
      m->train();
      std::vector<std::shared_ptr<core::Module>> replicas;
      for (int64_t k = 1; k < K; ++k) replicas.push_back(vision::make_vision_model(name, {}));
      core::manual_seed(5);
      core::DataParallel dp(*m, std::move(replicas));
      core::AdamW opt(core::single_param_group(*m, 1e-3), core::adamw_defaults());
      std::vector<double> out;
      for (int step = 0; step < 2; ++step) {
        opt.zero_grad();
        out.push_back(dp.step([&](int64_t k, core::Module& mk) {
          const auto [r0, r1] = core::shard_rows(B, dp.shards(), k);
          Var logits = static_cast<vision::VisionModel&>(mk).forward(Var(x.slice(0, r0, r1).contiguous()));
          return core::backward_share(core::cross_entropy(logits, labels.slice(0, r0, r1).contiguous(), -100, 0.1),
                                      r1 - r0, B);
        }));
        opt.step();
      }
      for (const auto& [k, v] : m->named_parameters())
        for (double e : v.value().to_double_vector()) out.push_back(e);
      return out;
    };
    // In this order: the plain two-thread step first, so that any primitive built for two threads exists
    // when the shards run.
    const std::vector<double> plain2 = train(2, 1), two = train(2, 2), one = train(1, 2), plain1 = train(1, 1);
    ASSERT_EQ(one.size(), two.size());
    for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(one[i], two[i]) << name << " value " << i;
    for (size_t i = 0; i < plain1.size(); ++i)
      ASSERT_NEAR(plain1[i], plain2[i], 1e-4 * (1 + std::abs(plain1[i]))) << name << " value " << i;
  }
}

TEST(VisionModels, FiniteDifferencesGroupMambaMicro) {
  auto m = micro("groupmamba-micro", 10);
  fd_check(*m, {"patch_embed1.conv.0.weight",
                "patch_embed1.conv.1.weight",
                "patch_embed1.conv.4.bias",
                "patch_embed1.proj.weight",
                "patch_embed1.norm.weight",
                "patch_embed2.proj.weight",
                "block1.0.norm2.weight",
                "block1.0.attn.skip_scale",
                "block1.0.attn.fc1.weight",
                "block1.0.attn.fc2.bias",
                "block1.0.attn.norm.weight",
                "block1.0.attn.proj.weight",
                "block1.0.attn.mamba_g1.x_proj_weight",
                "block1.0.attn.mamba_g2.dt_projs_weight",
                "block1.0.attn.mamba_g2.dt_projs_bias",
                "block1.0.attn.mamba_g3.A_logs",
                "block1.0.attn.mamba_g4.Ds",
                "block1.0.attn.mamba_g1.out_norm.weight",
                "block1.0.attn.mamba_g2.in_proj.weight",
                "block1.0.attn.mamba_g3.conv2d.weight",
                "block1.0.attn.mamba_g4.conv2d.bias",
                "block1.0.attn.mamba_g4.out_proj.weight",
                "block1.0.mlp.fc1.weight",
                "block1.0.mlp.dwconv.dwconv.weight",
                "block1.0.mlp.fc2.bias",
                "block3.1.attn.mamba_g2.in_proj.weight",
                "block4.0.mlp.fc1.weight",
                "norm3.bias",
                "post_network.0.norm1.weight",
                "post_network.0.attn.mamba_g1.in_proj.weight",
                "post_network.0.mlp.fc1.weight",
                "norm4.weight",
                "head.weight"});
}

TEST(VisionModels, FiniteDifferencesSimbaMicro) {
  auto m = micro("simba-micro", 11);
  fd_check(*m, {"patch_embed1.conv.0.weight",
                "patch_embed1.conv.7.weight",
                "patch_embed1.proj.bias",
                "patch_embed3.proj.weight",
                "block1.0.norm2.weight",
                "block1.0.attn.norm.weight",
                "block1.0.attn.mamba.A_log",
                "block1.0.attn.mamba.D",
                "block1.0.attn.mamba.in_proj.weight",
                "block1.0.attn.mamba.conv1d.weight",
                "block1.0.attn.mamba.conv1d.bias",
                "block1.0.attn.mamba.x_proj.weight",
                "block1.0.attn.mamba.dt_proj.weight",
                "block1.0.attn.mamba.dt_proj.bias",
                "block1.0.attn.mamba.out_proj.weight",
                "block1.0.mlp.complex_weight_1",
                "block1.0.mlp.complex_weight_2",
                "block1.0.mlp.complex_bias_1",
                "block1.0.mlp.complex_bias_2",
                "block3.0.mlp.complex_weight_1",
                "norm1.weight",
                "post_network.0.attn.mamba.in_proj.weight",
                "post_network.0.mlp.complex_bias_2",
                "norm4.weight",
                "head.weight"});
}

TEST(VisionModels, GroupMambaNarrowerThan16HasZeroWidthAffinity) {
  // upstream builds Linear(C, C//16) even when C//16 == 0; the affinity is then sigmoid(fc2.bias)
  vision::GroupMambaConfig c = vision::GroupMambaConfig::micro();
  c.embed_dims = {8, 12, 16, 20};
  c.stem_hidden_dim = 8;
  c.drop_path_rate = 0;
  core::Rng rng(30);
  vision::GroupMamba m(c, rng);
  std::map<std::string, core::Shape> shapes;
  for (auto& [k, t] : m.state_dict()) shapes[k] = t.shape();
  EXPECT_EQ(shapes["block1.0.attn.fc1.weight"], core::Shape({0, 8}));
  EXPECT_EQ(shapes["block1.0.attn.fc2.weight"], core::Shape({8, 0}));
  EXPECT_EQ(shapes["block3.0.attn.fc1.weight"], core::Shape({1, 16}));
  fd_check(m, {"block1.0.attn.fc2.bias", "block2.0.attn.mamba_g3.in_proj.weight", "head.weight"});
}

TEST(VisionModels, GroupMambaDistillationAndSimbaTokenLabelHeads) {
  // small non-micro configurations exercise the other eval outputs
  vision::GroupMambaConfig gc = vision::GroupMambaConfig::micro();
  gc.distillation = true;
  core::Rng rng(12);
  vision::GroupMamba g(gc, rng);
  g.eval();
  core::NoGradGuard ng;
  Var x(random_tensor({2, 1, 32, 32}, 13, -1, 1, DType::F32));
  auto heads = g.forward_heads(x);
  Tensor want = core::mul_scalar(core::add(heads[0], heads[1]), 0.5).value();
  EXPECT_LT(core::max_abs_diff(g.forward(x).value(), want), 1e-6);

  vision::SimbaConfig sc = vision::SimbaConfig::micro();
  sc.token_label = true;
  vision::SiMBA s(sc, rng);
  s.eval();
  Var x2(random_tensor({2, 1, 64, 64}, 14, -1, 1, DType::F32));  // 2x2 tokens at stage 4
  auto dense = s.forward_dense(x2);
  ASSERT_EQ(dense[1].shape(), core::Shape({2, 4, 10}));
  Tensor y = s.forward(x2).value();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k = 0; k < 10; ++k) {
      double mx = -1e30;
      for (int64_t t = 0; t < 4; ++t) mx = std::max(mx, static_cast<double>(dense[1].value().at<float>({b, t, k})));
      EXPECT_NEAR(y.at<float>({b, k}), dense[0].value().at<float>({b, k}) + 0.5 * mx, 1e-5);
    }
}
