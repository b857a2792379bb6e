// The SSM kernels as autograd ops: finite differences through the tape (including the scan's second
// output, the last state) and composition with elementwise ops.
#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ssm/scan_ops.h"

using namespace ssmkit::core;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using V = std::vector<Var>;

TEST(ScanOps, SelectiveScanWithLastStateAndH0) {
  const int64_t B = 2, D = 4, N = 3, L = 9;
  std::vector<Tensor> in = {random_tensor({B, D, L}, 1),          random_tensor({B, D, L}, 2, -1.5, 0.5),
                            random_tensor({D, N}, 3, -2, -0.2),    random_tensor({B, 2, N, L}, 4),
                            random_tensor({B, 2, N, L}, 5),        random_tensor({D}, 6, 0.5, 1.5),
                            random_tensor({B, D, L}, 7),           random_tensor({D}, 8, -0.5, 0.5),
                            random_tensor({B, D, N}, 9)};
  gradcheck_op(
      [](const V& v) {
        ScanVars s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], true};
        Var last;
        Var y = selective_scan(s, &last);
        // combine both outputs into one so that both gradients flow
        return add(sum(y, {2}), mul_scalar(sum(last, {2}), 0.7));
      },
      in, "selective_scan");
}

TEST(ScanOps, S4DKernelThenFFTConv) {
  const int64_t H = 3, M = 4, L = 12;
  std::vector<Tensor> in = {random_tensor({H}, 1, std::log(0.01), std::log(0.1)), random_tensor({H, M, 2}, 2),
                            random_tensor({H, M}, 3, -1, 0.5), random_tensor({H, M}, 4, 0, 4),
                            random_tensor({2, H, L}, 5), random_tensor({H}, 6)};
  gradcheck_op(
      [L](const V& v) {
        Var K = s4d_kernel(v[0], v[1], v[2], v[3], L);
        return fftconv(v[4], K, v[5]);
      },
      in, "s4d+fftconv");
}

TEST(ScanOps, CrossScanMergeAndDirections) {
  std::vector<Tensor> in = {random_tensor({1, 2, 3, 4}, 1)};
  gradcheck_op([](const V& v) { return cross_merge(mul(cross_scan(v[0]), cross_scan(v[0])), 3, 4); }, in, "cross");
  gradcheck_op(
      [](const V& v) {
        return direction_merge(square(direction_scan(v[0], ScanDirection::ColMajorReversed)),
                               ScanDirection::ColMajorReversed, 3, 4);
      },
      in, "direction");
}

TEST(ScanOps, MambaBlockOpMatchesKernelAndGradchecks) {
  MambaConfig cfg;
  cfg.d_model = 4;
  cfg.d_state = 2;
  cfg.d_conv = 3;
  cfg.expand = 1;
  cfg.dt_rank = 1;
  MambaParams p = MambaParams::zeros(cfg, DType::F64);
  std::vector<Tensor> in = {random_tensor({2, 5, 4}, 1)};
  uint64_t seed = 10;
  for (auto& [key, t] : p.names()) {
    Tensor r = random_tensor(t->shape(), ++seed, -0.5, 0.5);
    if (key == "dt_proj.bias") r = random_tensor(t->shape(), seed, -3, -1);
    in.push_back(r);
  }
  gradcheck_op(
      [&cfg](const V& v) { return mamba_block(v[0], V(v.begin() + 1, v.end()), cfg); }, in, "mamba_block op");
}
