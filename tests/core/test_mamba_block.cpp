// Mamba block: finite-difference gradients in double for the input and every parameter (with and
// without linear biases), official key names, and clear errors for bad shapes and missing keys.
#include "gradcheck.h"
#include "ssmkit/core/ssm/mamba_block.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::gradcheck;
using ssmkit::test::random_tensor;

namespace {

MambaParams random_params(const MambaConfig& cfg, uint64_t seed) {
  MambaParams p = MambaParams::zeros(cfg, DType::F64);
  uint64_t k = seed;
  for (auto& [key, t] : p.names()) {
    double scale = 1.0 / std::sqrt(static_cast<double>(t->size(-1)));
    Tensor r = random_tensor(t->shape(), ++k, -scale, scale);
    if (key == "A_log") r = random_tensor(t->shape(), k, -1.0, 1.0);
    if (key == "dt_proj.bias") r = random_tensor(t->shape(), k, -3.0, -1.0);
    if (key == "D") r = random_tensor(t->shape(), k, 0.5, 1.5);
    t->copy_from(r);
  }
  return p;
}

void check_block(const MambaConfig& cfg) {
  MambaParams p = random_params(cfg, 5);
  Tensor x = random_tensor({2, 6, cfg.d_model}, 1);
  Tensor w = random_tensor({2, 6, cfg.d_model}, 2);
  auto loss = [&] {
    Tensor out;
    mamba_block_forward(out, nullptr, x, p, cfg);
    return dot(out, w);
  };
  Tensor out, dx;
  MambaCache cache;
  mamba_block_forward(out, &cache, x, p, cfg);
  MambaParams g = MambaParams::zeros(cfg, DType::F64);
  mamba_block_backward(dx, g, w, cache, p, cfg);
  gradcheck(loss, x, dx, "hidden_states");
  auto pn = p.names();
  auto gn = g.names();
  ASSERT_EQ(pn.size(), gn.size());
  for (size_t i = 0; i < pn.size(); ++i) gradcheck(loss, *pn[i].second, *gn[i].second, pn[i].first);
}

}  // namespace

TEST(MambaBlock, GradcheckAllParameters) {
  MambaConfig cfg;
  cfg.d_model = 4;
  cfg.d_state = 3;
  cfg.d_conv = 3;
  cfg.dt_rank = 2;
  check_block(cfg);
}

TEST(MambaBlock, GradcheckWithLinearBiasesNoConvBias) {
  MambaConfig cfg;
  cfg.d_model = 3;
  cfg.d_state = 2;
  cfg.d_conv = 4;
  cfg.expand = 1;
  cfg.bias = true;
  cfg.conv_bias = false;
  check_block(cfg);
}

TEST(MambaBlock, OfficialKeysAndAutoRank) {
  MambaConfig cfg;
  cfg.d_model = 64;  // spec §2.5: d_inner 128, dt_rank 4, 32,640 parameters
  MambaParams p = MambaParams::zeros(cfg);
  int64_t count = 0;
  std::vector<std::string> keys;
  for (auto& [key, t] : p.names()) {
    keys.push_back(key);
    count += t->numel();
  }
  EXPECT_EQ(cfg.rank(), 4);
  EXPECT_EQ(count, 32640);
  EXPECT_EQ(keys, (std::vector<std::string>{"A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias",
                                            "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "out_proj.weight"}));
  EXPECT_EQ(p.x_proj_weight.shape(), (Shape{36, 128}));
}

TEST(MambaBlock, BadInputsGiveClearErrors) {
  MambaConfig cfg;
  cfg.d_model = 8;
  MambaParams p = MambaParams::zeros(cfg);
  Tensor out;
  try {
    mamba_block_forward(out, nullptr, Tensor::zeros({1, 5, 7}), p, cfg);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden must be (B,L,8)"), std::string::npos) << e.what();
  }
  p.x_proj_weight = Tensor::zeros({3, 16});
  try {
    mamba_block_forward(out, nullptr, Tensor::zeros({1, 5, 8}), p, cfg);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x_proj.weight has shape (3,16), expected (33,16)"), std::string::npos)
        << e.what();
  }
}

TEST(MambaBlock, StepAndChunkedForwardEqualOneShot) {
  MambaConfig cfg;
  cfg.d_model = 6;
  cfg.d_state = 4;
  cfg.d_conv = 4;
  cfg.dt_rank = 2;
  MambaParams p = random_params(cfg, 11);
  const int64_t B = 2, L = 9;
  Tensor x = random_tensor({B, L, cfg.d_model}, 3);
  Tensor full;
  mamba_block_forward(full, nullptr, x, p, cfg);
  // decode one token at a time
  MambaState st = MambaState::zeros(B, cfg, DType::F64);
  for (int64_t t = 0; t < L; ++t) {
    Tensor out;
    mamba_block_step(out, st, x.select(1, t).contiguous(), p, cfg);
    EXPECT_LT(max_abs_diff(out, full.select(1, t)), 1e-12) << "t=" << t;
  }
  // chunks of 3, 1 and 5 with carried state (chunk of 1 is shorter than d_conv - 1)
  MambaState cs = MambaState::zeros(B, cfg, DType::F64);
  int64_t t0 = 0;
  for (int64_t len : {3, 1, 5}) {
    Tensor out;
    mamba_block_forward(out, nullptr, x.slice(1, t0, t0 + len).contiguous(), p, cfg, &cs);
    EXPECT_LT(max_abs_diff(out, full.slice(1, t0, t0 + len)), 1e-12) << "chunk at " << t0;
    t0 += len;
  }
  EXPECT_LT(max_abs_diff(cs.ssm, st.ssm), 1e-12);
  EXPECT_LT(max_abs_diff(cs.conv, st.conv), 1e-12);
}
