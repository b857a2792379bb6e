// Multi-direction 2-D selective scans (../shared/specs/core-ssm.md §3): the SS2D core of VMamba
// (forward_corev2: scan in K directions, per-direction x_proj / dt_proj, one grouped selective scan,
// merge) as a function of Vars, the SS2D block as a Module with VMamba's keys (x_proj_weight,
// dt_projs_weight, dt_projs_bias, A_logs, Ds, in_proj, conv2d, out_norm, out_proj), GroupMamba's
// one-direction-per-group split, and the bidirectional 1-D wrapper.
// Shapes: B batch, H x W image, L = H*W, C d_model, Di d_inner, N d_state, R dt_rank, K directions.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/ssm/cross_scan.h"

namespace ssmkit::core {

// x (B,Di,H,W) -> y (B,Di,H*W), merged back to row-major order. `directions` has 4 entries in
// CrossScan order (cross-scan / cross-merge) or 1 (a single direction). Parameters:
// x_proj_weight (K,R+2N,Di), dt_projs_weight (K,Di,R), dt_projs_bias (K,Di), A_logs (K*Di,N), Ds (K*Di).
Var ss2d_core(const Var& x, const Var& x_proj_weight, const Var& dt_projs_weight, const Var& dt_projs_bias,
              const Var& A_logs, const Var& Ds, const std::vector<ScanDirection>& directions);

struct SS2DConfig {
  int64_t d_model = 96;
  int64_t d_state = 16;
  double ssm_ratio = 2.0;  // Di = ssm_ratio * d_model
  int64_t dt_rank = 0;     // 0 = ceil(d_model / 16)
  int64_t d_conv = 3;      // depthwise conv2d kernel (<= 1: no conv)
  bool conv_bias = true;
  int64_t n_directions = 4;  // 4: cross-scan; 1: one direction chosen per call (GroupMamba's VSSS block)
  bool with_z = true;        // forward_type "v2" gates with SiLU(z); "..._noz" does not
  double norm_eps = 1e-5;    // out_norm
  int64_t d_inner() const { return static_cast<int64_t>(ssm_ratio * static_cast<double>(d_model)); }
  int64_t rank() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
};

// SS2D block, VMamba forwardv2 (channel-last): in_proj -> (x, z); x -> depthwise conv2d -> SiLU ->
// ss2d_core -> out_norm; y *= SiLU(z); out_proj.
class SS2D : public Module {
 public:
  explicit SS2D(const SS2DConfig& cfg, Rng& rng = global_rng());
  // x (B,H,W,C) -> (B,H,W,C). With n_directions 1, `direction` selects the scan order.
  Var forward(const Var& x, ScanDirection direction = ScanDirection::RowMajor) const;

  SS2DConfig cfg;
  Var x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds;
  std::shared_ptr<Linear> in_proj, out_proj;
  std::shared_ptr<Conv2d> conv2d;
  std::shared_ptr<LayerNorm> out_norm;
};

// GroupMamba's split: channels of x (B,H,W,C) in 4 equal groups, group i scanned by blocks[i] in
// direction i (row-major, column-major, reversed row-major, reversed column-major), concatenated back.
Var grouped_direction_scan(const Var& x, const std::vector<std::shared_ptr<SS2D>>& blocks);

// Bidirectional 1-D: forward(x) + flip(backward(flip(x, dim)), dim), e.g. two Mamba mixers over L.
Var bidirectional(const std::function<Var(const Var&)>& forward, const std::function<Var(const Var&)>& backward,
                  const Var& x, int64_t dim);

}  // namespace ssmkit::core
