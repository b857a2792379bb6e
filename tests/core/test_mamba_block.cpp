// Mamba block: finite-difference gradients in double for the input and every parameter (with and
// without linear biases, every conv width path), batch elements independent of each other, F32 against
// F64, the inference path against the training path, official key names, and clear errors for bad
// shapes, dtypes and gradient buffers.
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

void check_block(const MambaConfig& cfg, int64_t L = 6) {
  MambaParams p = random_params(cfg, 5);
  Tensor x = random_tensor({2, L, cfg.d_model}, 1);
  Tensor w = random_tensor({2, L, cfg.d_model}, 2);
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

TEST(MambaBlock, GradcheckEveryConvWidth) {
  // d_conv 2 and 3 take fixed-width conv kernels, 5 the run-time width; L = 3 < d_conv - 1 for 5
  MambaConfig cfg;
  cfg.d_model = 3;
  cfg.d_state = 2;
  cfg.expand = 1;
  cfg.dt_rank = 1;
  for (int64_t k : {2, 5}) {
    cfg.d_conv = k;
    check_block(cfg, k == 5 ? 3 : 6);
  }
}

TEST(MambaBlock, BatchElementsAreIndependent) {
  // A batch of 3 gives each element's own output and input gradient; parameter gradients add up.
  MambaConfig cfg;
  cfg.d_model = 5;
  cfg.d_state = 3;
  cfg.dt_rank = 2;
  cfg.bias = true;
  const MambaParams p = random_params(cfg, 7);
  const int64_t B = 3, L = 11;
  const Tensor x = random_tensor({B, L, cfg.d_model}, 8), dout = random_tensor({B, L, cfg.d_model}, 9);
  Tensor out, dx;
  MambaCache cache;
  mamba_block_forward(out, &cache, x, p, cfg);
  MambaParams g = MambaParams::zeros(cfg, DType::F64), g_sum = MambaParams::zeros(cfg, DType::F64);
  mamba_block_backward(dx, g, dout, cache, p, cfg);
  for (int64_t b = 0; b < B; ++b) {
    Tensor ob, dxb;
    MambaCache cb;
    mamba_block_forward(ob, &cb, x.slice(0, b, b + 1).contiguous(), p, cfg);
    mamba_block_backward(dxb, g_sum, dout.slice(0, b, b + 1).contiguous(), cb, p, cfg);
    EXPECT_LT(max_abs_diff(ob, out.slice(0, b, b + 1)), 1e-13) << "out, batch element " << b;
    EXPECT_LT(max_abs_diff(dxb, dx.slice(0, b, b + 1)), 1e-13) << "dhidden, batch element " << b;
  }
  auto gn = g.names(), sn = g_sum.names();
  for (size_t i = 0; i < gn.size(); ++i) EXPECT_LT(max_abs_diff(*gn[i].second, *sn[i].second), 1e-12) << gn[i].first;
}

// L 70: the channel-major path; L 11 with a batch of 2: the token-major one (its F32 scan reads token rows).
class MambaBlockPaths : public ::testing::TestWithParam<int64_t> {};
INSTANTIATE_TEST_SUITE_P(Lengths, MambaBlockPaths, ::testing::Values(70, 11));

TEST_P(MambaBlockPaths, Float32MatchesFloat64AndInferencePathMatchesTraining) {
  const int64_t L = GetParam();
  MambaConfig cfg;
  cfg.d_model = 24;  // E 48, R 2, N 16
  const MambaParams p64 = random_params(cfg, 13);
  MambaParams p32 = MambaParams::zeros(cfg, DType::F32);
  {
    MambaParams src = p64;
    auto dst = p32.names(), from = src.names();
    for (size_t i = 0; i < dst.size(); ++i) dst[i].second->copy_from(*from[i].second);
  }
  const Tensor x = random_tensor({2, L, cfg.d_model}, 14), dout = random_tensor({2, L, cfg.d_model}, 15);
  Tensor o64, o32, o_inf, dx64, dx32;
  MambaCache c64, c32;
  mamba_block_forward(o64, &c64, x, p64, cfg);
  mamba_block_forward(o32, &c32, x.to(DType::F32), p32, cfg);
  mamba_block_forward(o_inf, nullptr, x.to(DType::F32), p32, cfg);  // no cache: SiLU in place
  EXPECT_EQ(o32.dtype(), DType::F32);
  EXPECT_LT(max_abs_diff(o64, o32), 1e-5 * std::max(1.0, max_abs(o64)));
  EXPECT_EQ(max_abs_diff(o32, o_inf), 0.0);
  MambaParams g64 = MambaParams::zeros(cfg, DType::F64), g32 = MambaParams::zeros(cfg, DType::F32);
  mamba_block_backward(dx64, g64, dout, c64, p64, cfg);
  mamba_block_backward(dx32, g32, dout.to(DType::F32), c32, p32, cfg);
  EXPECT_LT(max_abs_diff(dx64, dx32), 1e-4 * std::max(1.0, max_abs(dx64)));
  auto a = g64.names(), b = g32.names();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LT(max_abs_diff(*a[i].second, *b[i].second), 1e-4 * std::max(1.0, max_abs(*a[i].second))) << a[i].first;
  // F32 in chunks with a carried state gives the one-shot output (chunks of 1 and 2: shorter than d_conv - 1)
  MambaState st = MambaState::zeros(2, cfg, DType::F32);
  const Tensor x32 = x.to(DType::F32);
  for (int64_t t0 = 0, k = 0; t0 < L; ++k) {
    const int64_t len = std::min(L - t0, k % 3 == 0 ? int64_t(1) : (k % 3 == 1 ? int64_t(2) : int64_t(7)));
    Tensor out;
    mamba_block_forward(out, nullptr, x32.slice(1, t0, t0 + len).contiguous(), p32, cfg, &st);
    EXPECT_LT(max_abs_diff(out, o32.slice(1, t0, t0 + len)), 1e-5 * std::max(1.0, max_abs(o32))) << "at " << t0;
    t0 += len;
  }
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
  // backward: a gradient buffer that cannot be added into, and a forward that kept no cache
  MambaConfig small;
  small.d_model = 4;
  const MambaParams q = random_params(small, 3);
  const Tensor x = random_tensor({1, 5, 4}, 4);
  MambaCache cache;
  mamba_block_forward(out, &cache, x, q, small);
  MambaParams g = MambaParams::zeros(small, DType::F64);
  g.in_proj_weight = Tensor::zeros({4, 16}, DType::F64).transpose(0, 1);
  Tensor dx;
  try {
    mamba_block_backward(dx, g, x, cache, q, small);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient in_proj.weight must be a contiguous F64 tensor"), std::string::npos)
        << e.what();
  }
  MambaParams g_ok = MambaParams::zeros(small, DType::F64);
  try {
    mamba_block_backward(dx, g_ok, x, MambaCache{}, q, small);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<no forward cache>"), std::string::npos) << e.what();
  }
  {  // a short-sequence batch (token-major path) whose cache lost its in_proj output
    const Tensor xs = random_tensor({2, 5, 4}, 5);
    MambaCache cs;
    mamba_block_forward(out, &cs, xs, q, small);
    cs.xz = Tensor{};
    MambaParams gs = MambaParams::zeros(small, DType::F64);
    try {
      mamba_block_backward(dx, gs, xs, cs, q, small);
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the cache was not filled by mamba_block_forward"), std::string::npos) << e.what();
    }
  }
  try {
    MambaParams bad = q;
    bad.D = Tensor::zeros({8});  // F32 among F64 parameters
    mamba_block_forward(out, nullptr, x, bad, small);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parameter D has dtype F32, in_proj.weight has F64"), std::string::npos)
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
