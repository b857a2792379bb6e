// The SSM kernels as autograd ops: each records the kernel's explicit backward (ssm/*.h) on the tape.
// Shapes as in the kernels' headers:
//   selective_scan: u, delta, z (B,D,L); A (D,N); B, C (B,N,L) or (B,G,N,L); D, delta_bias (D); h0 (B,D,N)
//   s4d_kernel: log_dt (H), C (H,M,2), log_A_real, A_imag (H,M) -> K (H,L)
//   fftconv: u (B,H,L), k (H,L), D (H) -> y (B,H,L)
//   cross_scan: x (B,C,H,W) -> (B,4,C,H*W); cross_merge: (B,4,C,H*W) -> (B,C,H*W)
// Optional inputs are undefined Vars.
#pragma once

#include <cstdint>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/ssm/cross_scan.h"
#include "ssmkit/core/ssm/mamba_block.h"
#include "ssmkit/core/ssm/s4d.h"

namespace ssmkit::core {

struct ScanVars {
  Var u, delta, A, B, C;
  Var D, z, delta_bias, h0;  // optional
  bool delta_softplus = false;
};

// y (B,D,L). With `last_state` non-null, also the final state (B,D,N), differentiable.
Var selective_scan(const ScanVars& in, Var* last_state = nullptr);

Var s4d_kernel(const Var& log_dt, const Var& C, const Var& log_A_real, const Var& A_imag, int64_t L,
               S4DDisc disc = S4DDisc::ZOH, int a_imag_sign = kS4DSignMinimal);
Var fftconv(const Var& u, const Var& k, const Var& D);

Var cross_scan(const Var& x);                               // (B,C,H,W) -> (B,4,C,H*W)
Var cross_merge(const Var& ys, int64_t H, int64_t W);       // (B,4,C,H*W) -> (B,C,H*W)
Var direction_scan(const Var& x, ScanDirection k);          // (B,C,H,W) -> (B,C,H*W)
Var direction_merge(const Var& ys, ScanDirection k, int64_t H, int64_t W);  // (B,C,H*W) -> (B,C,H*W)

// The whole Mamba-1 block as one op (fused forward and backward of ssm/mamba_block.h). `params` lists
// the block's parameters in MambaParams::names() order (undefined Vars for absent biases).
// hidden (B,L,M) -> (B,L,M).
Var mamba_block(const Var& hidden, const std::vector<Var>& params, const MambaConfig& cfg);

}  // namespace ssmkit::core
