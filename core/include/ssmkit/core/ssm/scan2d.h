// 2-D selective scan (Roesser form) of Chimera, ../shared/specs/timeseries.md §2-§3: forward, backward
// with chunked recompute, the float64 reference, and the autograd op. Per (batch b, channel d, state n),
// over a grid of V variates x T time steps, zero states outside the grid, lag s along time:
//   h1[v,t] = a1·h1[v,t-s] + a2·h2[v,t-s] + u1      h2[v,t] = a3·h1[v-1,t] + a4·h2[v-1,t] + u2
//   y[v,t]  = Σ_n C1[v,t,n]·h1[v,t,n] + C2[v,t,n]·h2[v,t,n] + Dskip·x[v,t]
// with a_i, u_i from the discretization of §2.1 (Scan2dDiscretization). Shapes: B batch, D channels,
// V variates, T time steps, N state size. x, delta1, delta2, y (B,D,V,T); A1..A4 (D,N);
// B1, B2, C1, C2 (B,V,T,N) shared across channels; Dskip, delta_bias1, delta_bias2 (D).
// Bidirectional use: run once as is and once with reverse_variates (identical to flipping every
// V-indexed input, scanning, and flipping y back), then sum. Not here: non-diagonal A, initial states,
// the LTI convolution mode (§3.4), the input projections that produce delta, B and C.
#pragma once

#include <cstdint>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

// The discretization of §2.1; the scan itself only sees a1..a4, u1, u2. [PAPER-VERIFY] which one Chimera
// uses. With Δ1 = step along time, Δ2 = step along variates (after delta_bias and optional softplus):
//   Axis*:  a1 = exp(Δ1 A1), a2 = exp(Δ1 A2), a3 = exp(Δ2 A3), a4 = exp(Δ2 A4)  (each equation integrates
//           along its own axis; the spec's default)
//   State*: a1 = exp(Δ1 A1), a2 = exp(Δ2 A2), a3 = exp(Δ1 A3), a4 = exp(Δ2 A4)  (each A uses the step of
//           the axis of the state it multiplies)
//   *Euler: u1 = Δ1·B1·x, u2 = Δ2·B2·x   (Mamba-1's simplification; the default)
//   *Zoh:   u1 = (exp(Δ1 A1) - 1)/A1·B1·x, u2 = (exp(Δ2 A4) - 1)/A4·B2·x  (exact ZOH of the diagonal block)
enum class Scan2dDiscretization : uint8_t { AxisEuler = 0, AxisZoh = 1, StateEuler = 2, StateZoh = 3 };

// The two halves of the choice above: State* (a2 with Δ2, a3 with Δ1) and *Zoh.
inline bool scan2d_state_pair(Scan2dDiscretization d) {
  return d == Scan2dDiscretization::StateEuler || d == Scan2dDiscretization::StateZoh;
}
inline bool scan2d_zoh(Scan2dDiscretization d) {
  return d == Scan2dDiscretization::AxisZoh || d == Scan2dDiscretization::StateZoh;
}

struct Scan2dOptions {
  bool delta_softplus = false;  // Δ = softplus(delta + delta_bias) (threshold 20, as PyTorch)
  int64_t lag = 1;              // s >= 1: time lag of the h1 recurrence (s > 1: s interleaved scans)
  Scan2dDiscretization discretization = Scan2dDiscretization::AxisEuler;
  bool reverse_variates = false;  // scan the variate axis from v = V-1 down to 0
};

// Inputs of one 2-D scan. Optional tensors are left undefined (Tensor{}). All tensors share one dtype,
// F32 or F64. Any strides; copied if not contiguous. A1..A4 should be negative (decays in (0,1)).
struct Scan2dInputs {
  Tensor x;            // (B,D,V,T)
  Tensor delta1;       // (B,D,V,T)  time-axis step, before bias and softplus
  Tensor delta2;       // (B,D,V,T)  variate-axis step, before bias and softplus
  Tensor A1, A2, A3, A4;  // (D,N)
  Tensor B1, B2;       // (B,V,T,N)
  Tensor C1, C2;       // (B,V,T,N)
  Tensor Dskip;        // (D) optional
  Tensor delta_bias1;  // (D) optional
  Tensor delta_bias2;  // (D) optional
  Scan2dOptions opt;
};

// Gradients of one 2-D scan. Each one defined on entry is accumulated into (+=); each undefined one is
// allocated and written. Gradients of absent optional inputs stay undefined.
struct Scan2dGrads {
  Tensor dx, ddelta1, ddelta2;       // (B,D,V,T)
  Tensor dA1, dA2, dA3, dA4;         // (D,N)
  Tensor dB1, dB2, dC1, dC2;         // (B,V,T,N)
  Tensor dDskip, ddelta_bias1, ddelta_bias2;  // (D)
};

// What the forward keeps for the backward (§3.3): the states of the row entering every segment of
// seg_rows rows, in scan order. Size B·D·n_seg·T·N per state, n_seg = ceil(V / seg_rows), never B·D·V·T·N.
struct Scan2dSaved {
  int64_t seg_rows = 0;
  Tensor h1_rows;  // (B,D,n_seg,T,N): h1 of the row scanned just before segment k (zeros for k = 0)
  Tensor h2_rows;  // (B,D,n_seg,T,N)
};

// Default segment length: ceil(sqrt(V)), which balances saved rows against the backward's row buffer.
int64_t scan2d_default_seg_rows(int64_t V);

// Forward. x... -> y (B,D,V,T) (allocated when undefined). With `saved` non-null, writes the segment
// boundary rows needed by scan2d_backward. seg_rows <= 0 picks scan2d_default_seg_rows(V).
void scan2d_forward(Tensor& y, Scan2dSaved* saved, const Scan2dInputs& in, int64_t seg_rows = 0);

// Backward. dy (B,D,V,T); `saved` comes from the forward on the same inputs. Recomputes each segment's
// states from its boundary row, then runs the adjoint recurrence of §3.2 and chains it through the
// discretization to every input.
void scan2d_backward(Scan2dGrads& grads, const Tensor& dy, const Scan2dInputs& in, const Scan2dSaved& saved);

// Reference path: the direct recurrence over the full grid with materialized states, float64 arithmetic for
// any input dtype, outputs F64; reverse_variates is done by flipping the inputs, scanning, flipping back.
// h1, h2 (B,D,V,T,N), when non-null, receive the states (in the inputs' variate order). The oracle for the
// fast path; not for production sizes.
void scan2d_ref_forward(Tensor& y, const Scan2dInputs& in, Tensor* h1 = nullptr, Tensor* h2 = nullptr);
void scan2d_ref_backward(Scan2dGrads& grads, const Tensor& dy, const Scan2dInputs& in);

// The autograd op. Optional inputs are undefined Vars. Returns y (B,D,V,T); the backward recomputes from the
// saved boundary rows (seg_rows as in scan2d_forward).
struct Scan2dVars {
  Var x, delta1, delta2, A1, A2, A3, A4, B1, B2, C1, C2;
  Var Dskip, delta_bias1, delta_bias2;  // optional
  Scan2dOptions opt;
};
Var scan2d(const Scan2dVars& in, int64_t seg_rows = 0);

}  // namespace ssmkit::core
