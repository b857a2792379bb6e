// Mamba modules: official state_dict keys and shapes, the golden mamba_block case through the Module
// (load by key, forward, backward), an end-to-end finite-difference check of every parameter of a
// 2-layer Mamba LM, and step / chunked inference equal to the forward.
#include <set>

#include "gradcheck.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/nn/mamba.h"
#include "ssmkit/core/ops/elementwise.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::random_tensor;

TEST(MambaModule, OfficialKeysInOrder) {
  MambaConfig cfg;
  cfg.d_model = 64;
  Rng rng(1);
  Mamba m(cfg, rng);
  std::vector<std::string> keys;
  for (auto& [k, t] : m.state_dict()) keys.push_back(k + shape_str(t.shape()));
  EXPECT_EQ(keys, (std::vector<std::string>{"A_log(128,16)", "D(128)", "in_proj.weight(256,64)",
                                            "conv1d.weight(128,1,4)", "conv1d.bias(128)", "x_proj.weight(36,128)",
                                            "dt_proj.weight(128,4)", "dt_proj.bias(128)", "out_proj.weight(64,128)"}));
  EXPECT_EQ(m.num_parameters(), 32640);
  // official init: A = -(n+1), D = 1, softplus(dt bias) in [dt_min, dt_max]
  EXPECT_EQ(m.A_log.value().at<float>({5, 3}), std::log(4.0f));
  EXPECT_EQ(m.D.value().at<float>({7}), 1.0f);
  for (double b : m.dt_proj->bias.value().to_double_vector()) {
    double dt = std::log1p(std::exp(b));
    EXPECT_GE(dt, 1e-3 * 0.999);
    EXPECT_LE(dt, 0.1 * 1.001);
  }
}

TEST(MambaModule, LMKeysWithTiedHead) {
  MambaLMConfig cfg;
  cfg.d_model = 16;
  cfg.n_layer = 2;
  cfg.vocab_size = 13;  // padded to 16
  Rng rng(2);
  MambaLMHeadModel lm(cfg, rng);
  std::set<std::string> keys;
  for (auto& [k, t] : lm.state_dict()) keys.insert(k);
  for (const char* k : {"backbone.embedding.weight", "backbone.layers.0.mixer.A_log", "backbone.layers.1.norm.weight",
                        "backbone.layers.1.mixer.out_proj.weight", "backbone.norm_f.weight", "lm_head.weight"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_EQ(lm.vocab_padded, 16);
  // tied: listed once among parameters, twice in the state_dict
  int64_t n_params = 0;
  for (auto& [k, v] : lm.named_parameters()) n_params += v.numel();
  EXPECT_EQ(n_params, lm.num_parameters());
  EXPECT_EQ(lm.state_dict().size(), lm.named_parameters().size() + 1);
}

TEST(MambaModule, GoldenBlockThroughModule) {
  SafetensorsFile f = load_safetensors(ssmkit::test::golden_file("core/mamba_block.safetensors"));
  MambaConfig cfg;
  cfg.d_model = std::stoll(f.meta("d_model"));
  cfg.d_state = std::stoll(f.meta("d_state"));
  cfg.d_conv = std::stoll(f.meta("d_conv"));
  cfg.expand = std::stoll(f.meta("expand"));
  cfg.dt_rank = std::stoll(f.meta("dt_rank"));
  Mamba m(cfg);
  NamedTensors params;
  for (auto& [k, t] : f.tensors)
    if (k.rfind("param.", 0) == 0) params.emplace_back(k.substr(6), t);
  LoadReport rep = m.load_state_dict(params, true, f.path);
  EXPECT_TRUE(rep.ok()) << rep.str();
  Var x(f.get("in.hidden_states").clone(), true);
  Var out = m.forward(x);
  const Tensor& ref = f.get("out.out");
  double err = max_abs_diff(out.value(), ref);
  std::printf("golden mamba_block via Module: out max err %.2e\n", err);
  EXPECT_LE(err, 1e-4 * std::max(1.0, max_abs(ref)));
  out.backward(f.get("gout.out"));
  auto check = [&](const std::string& name, const Tensor& got) {
    const Tensor& g = f.get("grad." + name);
    EXPECT_LE(max_abs_diff(got, g), 1e-4 * std::max(1.0, max_abs(g))) << name;
  };
  check("hidden_states", x.grad());
  for (auto& [k, v] : m.named_parameters()) check(k, v.grad());
}

TEST(MambaModule, LoadReportsEveryProblemByName) {
  MambaConfig cfg;
  cfg.d_model = 8;
  Mamba m(cfg);
  NamedTensors sd = m.state_dict();
  sd.erase(sd.begin());                                 // drop A_log
  sd.emplace_back("extra.weight", Tensor::zeros({2}));  // unexpected
  sd[0].second = Tensor::zeros({3});                    // D with a wrong shape
  try {
    m.load_state_dict(sd, true, "ckpt.safetensors");
    FAIL();
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("ckpt.safetensors"), std::string::npos) << w;
    EXPECT_NE(w.find("missing key: A_log"), std::string::npos) << w;
    EXPECT_NE(w.find("unexpected key: extra.weight"), std::string::npos) << w;
    EXPECT_NE(w.find("shape mismatch: D: source (3) vs module (16)"), std::string::npos) << w;
  }
  LoadReport rep = m.load_state_dict(sd, false);
  EXPECT_EQ(rep.missing.size(), 1u);
}

TEST(MambaModule, EndToEndGradcheckTwoLayerLM) {
  MambaLMConfig cfg;
  cfg.d_model = 4;
  cfg.n_layer = 2;
  cfg.vocab_size = 6;
  cfg.pad_vocab_size_multiple = 1;
  cfg.mixer.d_state = 2;
  cfg.mixer.d_conv = 3;
  cfg.mixer.expand = 2;
  Rng rng(3);
  MambaLMHeadModel lm(cfg, rng);
  lm.to(DType::F64);
  // perturb the norms away from 1 so that no path is an identity
  uint64_t seed = 40;
  for (auto& [k, v] : lm.named_parameters())
    if (k.find("norm") != std::string::npos) v.value().copy_from(random_tensor(v.shape(), ++seed, 0.5, 1.5));
  Tensor tokens = Tensor::empty({2, 5}, DType::I64);
  for (int64_t i = 0; i < 10; ++i) tokens.data<int64_t>()[i] = (i * 7 + 3) % 6;
  Tensor w = random_tensor({2, 5, 6}, 99);
  Var logits = lm.forward(tokens);
  logits.backward(w);
  auto loss = [&] {
    NoGradGuard ng;
    return dot(lm.forward(tokens).value(), w);
  };
  int checked = 0;
  for (auto& [k, v] : lm.named_parameters()) {
    ASSERT_TRUE(v.grad().defined()) << k;
    Tensor g = v.grad().clone();
    ssmkit::test::gradcheck(loss, v.value(), g, k, 1e-6, 1e-7, 1e-5);
    ++checked;
  }
  EXPECT_EQ(checked, 22);  // embedding + 2 x (9 mixer + norm) + norm_f
}

TEST(MambaModule, StepAndChunkMatchForward) {
  MambaConfig cfg;
  cfg.d_model = 8;
  Mamba m(cfg);
  Tensor x = random_tensor({1, 6, 8}, 5, -1, 1, DType::F32);
  Tensor full;
  {
    NoGradGuard ng;
    full = m.forward(Var(x)).value();
  }
  MambaState st = MambaState::zeros(1, cfg);
  for (int64_t t = 0; t < 6; ++t)
    EXPECT_LT(max_abs_diff(m.step(x.select(1, t).contiguous(), st), full.select(1, t)), 1e-5);
  MambaState cs = MambaState::zeros(1, cfg);
  Tensor a = m.forward_chunk(x.slice(1, 0, 2).contiguous(), cs), b = m.forward_chunk(x.slice(1, 2, 6).contiguous(), cs);
  EXPECT_LT(max_abs_diff(b, full.slice(1, 2, 6)), 1e-5);
}
