// Private to the selective scan: the float32 kernels compiled per SIMD target (selective_scan_kernels.cpp,
// Highway run-time dispatch) and their arguments. A kernel call handles one block of V consecutive
// channels of one batch element inside one group (V = the vector length, scan_block_channels_f32()),
// vectorized across those channels, so that no step needs a horizontal sum: the (B,D,L) rows of the
// block are gathered into time-major (L,V) scratch, scanned, and scattered back. Lanes past the block's
// last channel (nc < V) run on zeros and are discarded.
// Row arrays (u, delta, z, y, dy and the row gradients) come in one of two layouts, set by `ld`:
//   ld == 0: channel rows, element (i, l) of the block at p[i*L + l] (the scan's (B,D,L) layout);
//   ld > 0:  token rows, element (i, l) at p[l*ld + i] ((B,L,D) activations, ld = the row stride).
// z and dz have their own stride ld_z (a half of a wider token row); Bt, Ct rows are bc_ld apart.
#pragma once

#include <cstdint>

namespace ssmkit::core::scan_kernels {

int64_t scan_block_channels_f32();  // V on the dispatched path

struct ForwardBlockF32 {
  // Rows of the block's first channel; channel i of the block is at +i*L (inputs, y) or +i*N (states).
  const float *u, *delta, *z;  // (nc,L); z null when absent
  const float *Bt, *Ct;        // (L,N): B and C of this batch element and group, time-major
  const float* A;              // (nc,N)
  const float *D, *bias;       // (nc) or null
  const float* h0;             // (nc,N) or null (zeros)
  bool softplus = false;
  int64_t ld = 0, ld_z = 0;    // row layout (above)
  int64_t bc_ld = 0;           // stride between the time steps of Bt, Ct (0: N)
  int64_t nc = 0, L = 0, N = 0, chunk = 0, n_chunks = 0;
  float* y;             // (nc,L) output
  float* last;          // (nc,N) final state, or null
  float* chunk_states;  // (nc,n_chunks,N) state entering each chunk, or null
  float* work;          // forward_work_floats(L, N)
};
int64_t forward_work_floats(int64_t L, int64_t N);
void forward_block_f32(const ForwardBlockF32& a);

struct BackwardBlockF32 {
  const float *u, *delta, *z, *dy;  // (nc,L); z null when absent
  const float *Bt, *Ct;             // (L,N)
  const float* A;                   // (nc,N)
  const float *D, *bias;            // (nc) or null
  const float* states;              // (nc,n_chunks,N) from the forward
  const float* dlast;               // (nc,N) or null (zero)
  bool softplus = false;
  int64_t ld = 0, ld_z = 0;         // row layout (above) of u, delta, dy, du, ddelta, and of z
  int64_t ld_dz = 0;                // of dz (token rows: may differ from z's)
  int64_t bc_ld = 0;                // stride between the time steps of Bt, Ct (0: N)
  int64_t nc = 0, L = 0, N = 0, chunk = 0, n_chunks = 0;
  float *du, *ddelta, *dz;  // (nc,L), accumulated (+=), or written (=) with overwrite; dz null when z is
  bool overwrite = false;
  float* dA;                // (nc,N) accumulated
  float *dD, *dbias;        // (nc) accumulated, or null
  float* dh0;               // (nc,N) accumulated, or null
  float *dBacc, *dCacc;     // (L,N,V) accumulated per lane; the caller sums the lanes into dB, dC
  float* work;              // backward_work_floats(L, N, chunk)
};
int64_t backward_work_floats(int64_t L, int64_t N, int64_t chunk);
void backward_block_f32(const BackwardBlockF32& a);

}  // namespace ssmkit::core::scan_kernels
