// Private to the selective scan: the float32 row kernels compiled per SIMD target
// (selective_scan_kernels.cpp, Highway run-time dispatch) and the arguments of one (batch, channel) row.
// The state axis is padded to Np (a multiple of the vector length, scan_state_stride_f32(N)) with zeros
// in A, B and C, so padded lanes stay zero and add nothing.
#pragma once

#include <cstdint>

namespace ssmkit::core::scan_kernels {

// Np for a state size N on the dispatched path: N rounded up to whole vectors.
int64_t scan_state_stride_f32(int64_t N);

struct ForwardRowF32 {
  const float *u, *delta, *z;  // (L) each; z null when absent
  const float *Bt, *Ct;        // (L,Np): the row's group of B and C, time-major
  const float* A;              // (Np), zero-padded
  float D = 0, bias = 0;
  bool softplus = false;
  int64_t L = 0, N = 0, Np = 0, chunk = 0;
  float* y;             // (L) output
  float* h;             // (Np) entering state in, final state out
  float* chunk_states;  // (n_chunks,N): state entering each chunk; null when not kept
  float* work;          // scratch, 2L floats
};
void forward_row_f32(const ForwardRowF32& r);

struct BackwardRowF32 {
  const float *u, *delta, *z, *dy;  // (L); z null when absent
  const float *Bt, *Ct;             // (L,Np)
  const float* A;                   // (Np), zero-padded
  const float* states;              // (n_chunks,N) from the forward
  float D = 0, bias = 0;
  bool softplus = false;
  int64_t L = 0, N = 0, Np = 0, chunk = 0, n_chunks = 0;
  float *dBt, *dCt;      // (L,Np) accumulated (+=)
  float* dA;             // (Np) accumulated
  float *dD, *dbias;     // scalars accumulated
  float *du, *ddelta, *dz;  // (L) accumulated; dz null when z is
  float* lam;            // (Np): dLoss/dh after the last step in, dLoss/dh0 out
  float* work;           // scratch: 2*chunk*Np + 8*chunk + 2*Np floats
};
int64_t backward_work_floats(int64_t chunk, int64_t Np);
void backward_row_f32(const BackwardRowF32& r);

}  // namespace ssmkit::core::scan_kernels
