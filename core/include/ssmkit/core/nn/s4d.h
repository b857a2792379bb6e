// The S4D layer of state-spaces/s4 `models/s4/s4d.py` (../shared/specs/core-ssm.md §1) as a Module with
// the official keys: D (H), kernel.C (H,N/2,2), kernel.log_dt (H), kernel.log_A_real (H,N/2),
// kernel.A_imag (H,N/2), output_linear.0.weight (2H,H,1), output_linear.0.bias (2H).
// forward: K = kernel(L); y = causal_conv(u, K) + D u; y = dropout(GELU(y)); out = GLU(Conv1d_1x1(y)).
// The bidirectional variant (as the full S4's FFTConv with channels 2) keeps kernel.C as (2,H,N/2,2):
// copy 0 is the causal kernel, copy 1 the anti-causal one (lag j of the future uses k1[j-1]).
// step() runs the causal layer as a recurrence, equal to the convolution (inference only).
// Shapes: B batch, H d_model, L length; transposed = true means (B,H,L), else (B,L,H).
#pragma once

#include <memory>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/ssm/s4d.h"

namespace ssmkit::core {

struct S4DOptions {
  int64_t d_state = 64;       // N (N/2 complex modes)
  double dropout = 0.0;       // DropoutNd: one mask per (batch, channel), tied over L
  bool transposed = true;     // input (B,H,L); false: (B,L,H)
  double dt_min = 1e-3, dt_max = 1e-1;
  S4DInit init = S4DInit::Lin;
  S4DDisc disc = S4DDisc::ZOH;
  bool bidirectional = false;
};

class S4DKernel : public Module {
 public:
  S4DKernel(int64_t d_model, const S4DOptions& opt, Rng& rng);
  Var forward(int64_t L, int copy = 0) const;  // K (H,L) of kernel copy 0 (or 1 when bidirectional)
  Var C, log_dt, log_A_real, A_imag;
  S4DDisc disc;
  bool bidirectional;
};

class S4D : public Module {
 public:
  S4D(int64_t d_model, const S4DOptions& opt = {}, Rng& rng = global_rng());
  Var forward(const Var& u, Rng& rng = global_rng()) const;  // (B,H,L) or (B,L,H) -> same
  // One causal step: u (B,H) -> (B,H); state (B,H,N/2,2) starts at zeros (step_state()).
  Tensor step(const Tensor& u, Tensor& state) const;
  Tensor step_state(int64_t batch) const;

  int64_t d_model;
  S4DOptions opt;
  Var D;
  std::shared_ptr<S4DKernel> kernel;
  std::shared_ptr<Conv1d> output_conv;  // "output_linear.0"
};

}  // namespace ssmkit::core
