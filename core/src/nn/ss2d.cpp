// SS2D: the K-direction core as composed autograd ops (scan order maps, batched projections, one grouped
// selective scan, merge), the block module with VMamba's parameter names and initialization, the
// GroupMamba channel-group split, and the bidirectional wrapper.
#include "ssmkit/core/nn/ss2d.h"

#include <cmath>

#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/matmul.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/ssm/scan_ops.h"
#include "ssmkit/core/train/init.h"

namespace ssmkit::core {

Var ss2d_core(const Var& x, const Var& x_proj_weight, const Var& dt_projs_weight, const Var& dt_projs_bias,
              const Var& A_logs, const Var& Ds, const std::vector<ScanDirection>& dirs) {
  SSMKIT_CHECK(x.ndim() == 4, "ss2d_core: x must be (B,Di,H,W), got ", shape_str(x.shape()));
  const int64_t B = x.size(0), Di = x.size(1), H = x.size(2), W = x.size(3), L = H * W;
  const int64_t K = static_cast<int64_t>(dirs.size());
  SSMKIT_CHECK(K == 4 || K == 1, "ss2d_core: 4 directions (cross-scan) or 1, got ", K);
  SSMKIT_CHECK(x_proj_weight.ndim() == 3 && x_proj_weight.size(0) == K && x_proj_weight.size(2) == Di,
               "ss2d_core: x_proj_weight must be (", K, ",R+2N,", Di, "), got ", shape_str(x_proj_weight.shape()));
  SSMKIT_CHECK(A_logs.ndim() == 2 && A_logs.size(0) == K * Di, "ss2d_core: A_logs must be (", K * Di,
               ",N), got ", shape_str(A_logs.shape()));
  const int64_t N = A_logs.size(1), R = dt_projs_weight.size(2);
  SSMKIT_CHECK(x_proj_weight.size(1) == R + 2 * N, "ss2d_core: x_proj_weight rows ", x_proj_weight.size(1),
               " != dt_rank + 2 d_state = ", R + 2 * N);
  if (K == 4)
    for (int k = 0; k < 4; ++k)
      SSMKIT_CHECK(dirs[k] == static_cast<ScanDirection>(k), "ss2d_core: 4 directions must be in CrossScan order");
  Var xs = K == 4 ? cross_scan(x) : reshape(direction_scan(x, dirs[0]), {B, 1, Di, L});  // (B,K,Di,L)
  Var x_dbl = matmul(unsqueeze(x_proj_weight, 0), xs);                                     // (B,K,R+2N,L)
  Var dt_in = slice(x_dbl, 2, 0, R);
  Var Bs = contiguous(slice(x_dbl, 2, R, R + N));      // (B,K,N,L): group k = direction k
  Var Cs = contiguous(slice(x_dbl, 2, R + N, R + 2 * N));
  Var dts = matmul(unsqueeze(dt_projs_weight, 0), dt_in);  // (B,K,Di,L)
  ScanVars s;
  s.u = reshape(xs, {B, K * Di, L});
  s.delta = reshape(dts, {B, K * Di, L});
  s.A = neg(exp(A_logs));
  s.B = Bs;
  s.C = Cs;
  s.D = Ds;
  s.delta_bias = reshape(dt_projs_bias, {K * Di});
  s.delta_softplus = true;
  Var ys = reshape(selective_scan(s), {B, K, Di, L});
  return K == 4 ? cross_merge(ys, H, W) : direction_merge(reshape(ys, {B, Di, L}), dirs[0], H, W);
}

SS2D::SS2D(const SS2DConfig& c, Rng& rng) : cfg(c) {
  const int64_t C = cfg.d_model, Di = cfg.d_inner(), N = cfg.d_state, R = cfg.rank(), K = cfg.n_directions;
  SSMKIT_CHECK(C > 0 && Di > 0 && N > 0 && (K == 4 || K == 1), "SS2D: invalid config (d_model ", C, ", d_inner ", Di,
               ", d_state ", N, ", directions ", K, ")");
  // Own parameters (first in the state_dict), initialized as VMamba's "v0": per direction a default
  // nn.Linear(Di, R+2N) weight and Mamba's dt init; A_logs = log(1..N); Ds = 1.
  Tensor xw = Tensor::empty({K, R + 2 * N, Di}), dtw = Tensor::empty({K, Di, R}), dtb = Tensor::empty({K, Di});
  for (int64_t k = 0; k < K; ++k) {
    Tensor w = xw.select(0, k), none;
    default_init_(w, none, rng);
    Tensor dw = dtw.select(0, k), db = dtb.select(0, k);
    mamba_dt_init_(dw, db, rng);
  }
  Tensor al = Tensor::empty({K * Di, N}), ds = Tensor::empty({K * Di});
  mamba_A_log_init_(al);
  mamba_D_init_(ds);
  x_proj_weight = register_parameter("x_proj_weight", xw);
  dt_projs_weight = register_parameter("dt_projs_weight", dtw);
  dt_projs_bias = register_parameter("dt_projs_bias", dtb);
  A_logs = register_parameter("A_logs", al);
  Ds = register_parameter("Ds", ds);
  // children in VMamba's registration order: out_norm, in_proj, conv2d, out_proj
  out_norm = register_module("out_norm", std::make_shared<LayerNorm>(Shape{Di}, cfg.norm_eps));
  in_proj = register_module("in_proj", std::make_shared<Linear>(C, cfg.with_z ? 2 * Di : Di, false, rng));
  if (cfg.d_conv > 1) {
    Conv2dOptions co;
    co.groups = Di;
    co.padding = {(cfg.d_conv - 1) / 2, (cfg.d_conv - 1) / 2};
    co.bias = cfg.conv_bias;
    conv2d = register_module("conv2d", std::make_shared<Conv2d>(Di, Di, std::array<int64_t, 2>{cfg.d_conv, cfg.d_conv}, co, rng));
  }
  out_proj = register_module("out_proj", std::make_shared<Linear>(Di, C, false, rng));
}

Var SS2D::forward(const Var& x_in, ScanDirection direction) const {
  SSMKIT_CHECK(x_in.ndim() == 4 && x_in.size(3) == cfg.d_model, "SS2D: input must be (B,H,W,", cfg.d_model, "), got ",
               shape_str(x_in.shape()));
  const int64_t B = x_in.size(0), H = x_in.size(1), W = x_in.size(2), Di = cfg.d_inner();
  Var xz = in_proj->forward(x_in);  // (B,H,W,2Di) or (B,H,W,Di)
  Var x = cfg.with_z ? slice(xz, 3, 0, Di) : xz;
  Var x_cf = contiguous(permute(x, {0, 3, 1, 2}));  // (B,Di,H,W)
  if (conv2d) x_cf = conv2d->forward(x_cf);
  x_cf = silu(x_cf);
  std::vector<ScanDirection> dirs;
  if (cfg.n_directions == 4)
    dirs = {ScanDirection::RowMajor, ScanDirection::ColMajor, ScanDirection::RowMajorReversed,
            ScanDirection::ColMajorReversed};
  else
    dirs = {direction};
  Var y = ss2d_core(x_cf, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, dirs);  // (B,Di,L)
  y = out_norm->forward(reshape(transpose(y, 1, 2), {B, H, W, Di}));
  if (cfg.with_z) y = mul(y, silu(slice(xz, 3, Di, 2 * Di)));
  return out_proj->forward(y);
}

Var grouped_direction_scan(const Var& x, const std::vector<std::shared_ptr<SS2D>>& blocks) {
  SSMKIT_CHECK(blocks.size() == 4, "grouped_direction_scan: 4 blocks (one per direction), got ", blocks.size());
  SSMKIT_CHECK(x.ndim() == 4 && x.size(3) % 4 == 0, "grouped_direction_scan: x must be (B,H,W,C) with C divisible by 4, got ",
               shape_str(x.shape()));
  std::vector<Var> parts = chunk(x, 4, 3), outs;
  for (int k = 0; k < 4; ++k) outs.push_back(blocks[k]->forward(contiguous(parts[k]), static_cast<ScanDirection>(k)));
  return concat(outs, 3);
}

Var bidirectional(const std::function<Var(const Var&)>& fwd, const std::function<Var(const Var&)>& bwd, const Var& x,
                  int64_t dim) {
  return add(fwd(x), flip(bwd(flip(x, {dim})), {dim}));
}

}  // namespace ssmkit::core
