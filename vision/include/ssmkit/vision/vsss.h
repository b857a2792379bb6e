// GroupMamba's four VSSS groups (mamba_g1..g4 of a GroupMambaLayer: VMamba SS2D blocks with d_state 1,
// ssm_ratio 1, d_conv 3, one scan direction each; ../shared/specs/vision.md §2.1) as one fused op with an
// explicit forward and backward, llm.c style. Per group g (channels [g*Cg, (g+1)*Cg) of the input tokens):
//   (x, z) = x_g in_proj^T;  u = SiLU(dwconv3x3(x) + b);  [dt_in | B | C] = u x_proj^T;
//   delta = softplus(dt_in dt_proj^T + dt_bias);  h_l = exp(delta_l A) h_{l-1} + delta_l B_l u_l,
//   y_l = C_l h_l + D u_l along direction g (row-major, column-major, reversed row-major, reversed column-major),
//   written back at each token's row-major position;  out_g = (LN(y) * SiLU(z)) out_proj^T.
// With d_state 1 the scan is one scalar recurrence per channel: the forward keeps every state (B,L,Cg) and
// the backward runs the adjoint recurrence directly, no recomputation. The result equals core::SS2D run per
// group (GroupMamba's chunk / concat), which the tests check, without the copies that composition costs.
// Not here: d_state > 1, several directions per group (core/nn/ss2d.h has the general SS2D).
// Shapes: B batch, H x W grid, L = H*W, C = 4*Cg channels, R dt_rank; tokens (B,L,C) channels last.
#pragma once

#include <cstdint>
#include <vector>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::vision {

constexpr int kVsssGroups = 4;
constexpr int kVsssParams = 11;  // per group, in state_dict order (see VsssParams)

// One group's parameters under their official names, in state_dict order.
struct VsssParams {
  core::Tensor x_proj_weight;    // (1, R+2, Cg)  rows dt_in (R), B, C
  core::Tensor dt_projs_weight;  // (1, Cg, R)
  core::Tensor dt_projs_bias;    // (1, Cg)
  core::Tensor A_logs;           // (Cg, 1)      A = -exp(A_logs)
  core::Tensor Ds;               // (Cg)
  core::Tensor out_norm_weight;  // (Cg)         out_norm.weight
  core::Tensor out_norm_bias;    // (Cg)         out_norm.bias
  core::Tensor in_proj_weight;   // (2Cg, Cg)    in_proj.weight (no bias)
  core::Tensor conv_weight;      // (Cg, 1, 3, 3) conv2d.weight
  core::Tensor conv_bias;        // (Cg)         conv2d.bias
  core::Tensor out_proj_weight;  // (Cg, Cg)     out_proj.weight (no bias)

  std::vector<core::Tensor*> list();  // the 11 fields in the order above
  // Zero tensors shaped like `like` (gradient accumulators).
  static VsssParams zeros_like(const VsssParams& like);
};

// What the forward keeps for the backward, per group (all (B,L,·), the input's dtype).
struct VsssCache {
  core::Tensor x;  // (B,L,C) the input
  int64_t H = 0, W = 0;
  struct Group {
    core::Tensor xz;     // (B,L,2Cg) in_proj output
    core::Tensor xc;     // (B,L,Cg)  conv output before SiLU
    core::Tensor u;      // (B,L,Cg)  scan input
    core::Tensor xdbl;   // (B,L,R+2) dt_in, B, C
    core::Tensor delta;  // (B,L,Cg)  after softplus
    core::Tensor h;      // (B,L,Cg)  scan states at each token
    core::Tensor ys;     // (B,L,Cg)  scan output
    core::Tensor mean, rstd;  // (B,L) out_norm statistics
    core::Tensor yg;     // (B,L,Cg)  out_proj input
  };
  std::vector<Group> groups;
};

// x (B,H*W,C) -> y (B,H*W,C). p holds the 4 groups' parameters. F32 or F64. Fills *cache when non-null.
void group_vsss_forward(core::Tensor& y, VsssCache* cache, const core::Tensor& x, int64_t H, int64_t W,
                        const std::vector<VsssParams>& p);
// dy (B,H*W,C) -> dx (B,H*W,C) (written); parameter gradients added into grads (shaped like p, see
// VsssParams::zeros_like).
void group_vsss_backward(core::Tensor& dx, std::vector<VsssParams>& grads, const core::Tensor& dy,
                         const VsssCache& cache, const std::vector<VsssParams>& p);

// Autograd op. params: 4 x 11 Vars, group after group, each in VsssParams order.
core::Var group_vsss(const core::Var& x, int64_t H, int64_t W, const std::vector<core::Var>& params);

}  // namespace ssmkit::vision
