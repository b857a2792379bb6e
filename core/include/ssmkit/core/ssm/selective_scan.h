// Mamba-1 selective scan (S6), forward and backward, as `selective_scan_ref` of state-spaces/mamba
// defines it (see ../shared/specs/core-ssm.md §2):
//   d = delta + delta_bias; if softplus: d = softplus(d)          (threshold 20, as PyTorch)
//   h_l = exp(d_l A) h_{l-1} + d_l B_l u_l ,  y_l = C_l . h_l + D u_l ,  y *= silu(z)
// Shapes: B batch, D channels, N state size, L length, G groups (channel c uses group c / (D/G)).
//   u, delta, z, y (B,D,L); A (D,N); B, C (B,N,L) or (B,G,N,L); D, delta_bias (D); h0, last_state (B,D,N)
// The backward recomputes states chunk by chunk from the boundary states the forward saved, so it
// holds O(B*D*N*L/chunk) floats of state, never O(B*D*N*L).
// Threads: OpenMP over channels (each channel's work belongs to one thread, results are deterministic
// for a fixed thread count). Not here: complex A, time-invariant B/C (no model in ssmkit uses them).
#pragma once

#include <cstdint>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

// Where the sequence axis is. kChannels: u, delta, z, y and their gradients are (B,D,L), B and C (B,N,L)
// or (B,G,N,L). kTokens: u, delta, z, y and their gradients are (B,L,D), B and C (B,L,N) or (B,L,G,N)
// (the (B,L,d_model) activations of most Mamba code, and of short sequences in ssmkit's Mamba block);
// A, D, delta_bias, h0 and the states do not change. In kTokens, z, B, C and the gradients dz, dB, dC may
// be views whose last dim is contiguous and whose rows are evenly spaced (column slices of a (B*L, W)
// matrix): they are read and written in place.
enum class ScanLayout { kChannels, kTokens };

// Inputs of one scan. Optional tensors are left undefined (Tensor{}). All tensors share one dtype:
// F32 (the production path) or F64 (used by gradient checks). Any strides; copied if not contiguous
// (except the in-place views of ScanLayout::kTokens).
struct ScanInputs {
  Tensor u;           // (B,D,L)
  Tensor delta;       // (B,D,L)
  Tensor A;           // (D,N)
  Tensor B;           // (B,N,L) or (B,G,N,L)
  Tensor C;           // (B,N,L) or (B,G,N,L)
  Tensor D;           // (D)      optional skip
  Tensor z;           // (B,D,L)  optional gate: y *= silu(z)
  Tensor delta_bias;  // (D)      optional
  Tensor h0;          // (B,D,N)  optional initial state (zero when absent)
  bool delta_softplus = false;
  ScanLayout layout = ScanLayout::kChannels;
};

// Gradients of one scan. Each one that is defined on entry is accumulated into (+=), so micro-batches
// add up; each one that is undefined is allocated and written. Gradients of absent optional inputs
// are left undefined. dh0 is produced only when h0 is given.
struct ScanGrads {
  Tensor du, ddelta, dA, dB, dC, dD, dz, ddelta_bias, dh0;
  // true: du, ddelta and dz (when z is given) are buffers of the right shape whose contents are not
  // gradients yet; the backward writes them instead of adding into them (no zero fill). F32 only.
  // (In kTokens layout du and ddelta must then be contiguous (B,L,D); dz may be a view, see ScanLayout.)
  bool write_rows = false;
};

// What the forward keeps for the backward: the state at the start of every chunk.
struct ScanSaved {
  int64_t chunk = 0;    // steps per chunk
  Tensor chunk_states;  // (B,D,n_chunks,N): state entering chunk k (k = 0 holds h0 or zeros)
};

constexpr int64_t kScanDefaultChunk = 64;

// Forward. Writes y (B,D,L), or (B,L,D) in kTokens layout (allocated when undefined; contiguous), last_state (B,D,N) when non-null, and the chunk
// boundary states into *saved when non-null (needed by selective_scan_backward).
void selective_scan_forward(Tensor& y, Tensor* last_state, ScanSaved* saved, const ScanInputs& in,
                            int64_t chunk = kScanDefaultChunk);

// Backward. dy (B,D,L) (or (B,L,D)); dlast_state (B,D,N) optional (undefined = zero). `saved` comes from the forward
// on the same inputs.
void selective_scan_backward(ScanGrads& grads, const Tensor& dy, const Tensor& dlast_state, const ScanInputs& in,
                             const ScanSaved& saved);

// Reference path: plain loops over the materialized states (B,D,L,N), float64 arithmetic for any input
// dtype, outputs in F64. The oracle for the fast path; not for production sizes.
void selective_scan_ref_forward(Tensor& y, Tensor* last_state, const ScanInputs& in);
void selective_scan_ref_backward(ScanGrads& grads, const Tensor& dy, const Tensor& dlast_state, const ScanInputs& in);

}  // namespace ssmkit::core
