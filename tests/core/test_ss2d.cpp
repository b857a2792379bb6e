// Multi-direction scans: SS2D keys and shapes in the official order (spec §3.3 and
// ../shared/golden/models/groupmamba_tiny_keys.json), cross-scan core = sum of the four single-
// direction cores, finite differences through the SS2D block and GroupMamba's split, and the
// bidirectional wrapper's flip bookkeeping.
#include "gradcheck.h"
#include "ssmkit/core/nn/ss2d.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/shape.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::random_tensor;

TEST(SS2D, VMambaKeysAndShapes) {
  SS2DConfig cfg;
  cfg.d_model = 96;
  cfg.d_state = 1;
  cfg.ssm_ratio = 2;
  Rng rng(1);
  SS2D m(cfg, rng);
  std::vector<std::string> keys;
  for (auto& [k, t] : m.state_dict()) keys.push_back(k + shape_str(t.shape()));
  EXPECT_EQ(keys, (std::vector<std::string>{"x_proj_weight(4,8,192)", "dt_projs_weight(4,192,6)", "dt_projs_bias(4,192)",
                                            "A_logs(768,1)", "Ds(768)", "out_norm.weight(192)", "out_norm.bias(192)",
                                            "in_proj.weight(384,96)", "conv2d.weight(192,1,3,3)", "conv2d.bias(192)",
                                            "out_proj.weight(96,192)"}));
}

TEST(SS2D, CrossScanCoreIsSumOfSingleDirections) {
  const int64_t B = 2, Di = 3, H = 3, W = 4, N = 2, R = 1;
  Tensor x = random_tensor({B, Di, H, W}, 1), xw = random_tensor({4, R + 2 * N, Di}, 2, -0.5, 0.5);
  Tensor dtw = random_tensor({4, Di, R}, 3, -0.5, 0.5), dtb = random_tensor({4, Di}, 4, -3, -1);
  Tensor al = random_tensor({4 * Di, N}, 5, -1, 1), ds = random_tensor({4 * Di}, 6, 0.5, 1.5);
  NoGradGuard ng;
  std::vector<ScanDirection> all = {ScanDirection::RowMajor, ScanDirection::ColMajor, ScanDirection::RowMajorReversed,
                                    ScanDirection::ColMajorReversed};
  Tensor y4 = ss2d_core(Var(x), Var(xw), Var(dtw), Var(dtb), Var(al), Var(ds), all).value();
  Tensor sum = Tensor::zeros(y4.shape(), DType::F64);
  for (int64_t k = 0; k < 4; ++k) {
    Var yk = ss2d_core(Var(x), Var(xw.slice(0, k, k + 1).contiguous()), Var(dtw.slice(0, k, k + 1).contiguous()),
                       Var(dtb.slice(0, k, k + 1).contiguous()), Var(al.slice(0, k * Di, (k + 1) * Di).contiguous()),
                       Var(ds.slice(0, k * Di, (k + 1) * Di).contiguous()), {all[k]});
    sum.add_(yk.value());
  }
  EXPECT_LT(max_abs_diff(y4, sum), 1e-12);
}

static void gradcheck_module(Module& m, const std::function<Var(const Var&)>& fwd, const Shape& in_shape) {
  m.to(DType::F64);
  Tensor u = random_tensor(in_shape, 7);
  Var x(u, true);
  Var y = fwd(x);
  Tensor w = random_tensor(y.shape(), 8);
  y.backward(w);
  auto loss = [&] {
    NoGradGuard ng;
    return dot(fwd(Var(u)).value(), w);
  };
  ssmkit::test::gradcheck(loss, u, x.grad().clone(), "x");
  for (auto& [k, v] : m.named_parameters()) {
    ASSERT_TRUE(v.grad().defined()) << k;
    ssmkit::test::gradcheck(loss, v.value(), v.grad().clone(), k);
  }
}

TEST(SS2D, GradcheckBlockFourDirections) {
  SS2DConfig cfg;
  cfg.d_model = 3;
  cfg.d_state = 2;
  cfg.ssm_ratio = 1;
  Rng rng(2);
  SS2D m(cfg, rng);
  gradcheck_module(m, [&](const Var& x) { return m.forward(x); }, {1, 2, 3, 3});
}

TEST(SS2D, GradcheckGroupMambaSplitNoZ) {
  SS2DConfig cfg;
  cfg.d_model = 2;
  cfg.d_state = 1;
  cfg.ssm_ratio = 1;
  cfg.n_directions = 1;
  cfg.with_z = false;
  Rng rng(3);
  std::vector<std::shared_ptr<SS2D>> blocks;
  Module holder;
  for (int k = 0; k < 4; ++k) blocks.push_back(holder.register_module(std::to_string(k), std::make_shared<SS2D>(cfg, rng)));
  gradcheck_module(holder, [&](const Var& x) { return grouped_direction_scan(x, blocks); }, {1, 2, 3, 8});
}

TEST(SS2D, BidirectionalFlipBookkeeping) {
  // f = cumulative sum along dim 1 (causal): bidirectional(f, f) sees the whole sequence from both ends
  auto cumsum = [](const Var& v) {
    std::vector<Var> outs;
    Var acc;
    for (int64_t t = 0; t < v.size(1); ++t) {
      Var s = select(v, 1, t);
      acc = acc.defined() ? add(acc, s) : s;
      outs.push_back(acc);
    }
    return stack(outs, 1);
  };
  Tensor x = Tensor::from_vector({1, 3}, std::vector<double>{1, 2, 3});
  Var y = bidirectional(cumsum, cumsum, Var(x), 1);
  // forward cumsum [1,3,6] + flipped cumsum of [3,2,1] = [6,5,3]
  EXPECT_EQ(y.value().to_double_vector(), (std::vector<double>{7, 8, 9}));
}
