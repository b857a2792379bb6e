// Private to the S4D layer's inference path: the float32 kernel that computes S4D's causal convolution
// y = K * u + D u by its recurrence instead of an FFT, compiled per SIMD target (Highway run-time dispatch).
// Per complex mode n of a channel, with w_n = exp(g_n) and c_n = 2 coef_n (s4d.h's kernel formulas),
//   s_t = w_n s_{t-1} + c_n u_t,   y_t = sum_n Re s_t[n] + D u_t,
// which equals sum_{l<=t} K[l] u_{t-l} + D u_t with K[l] = 2 Re sum_n coef_n w_n^l exactly.
// One call handles a block of V consecutive channels (V = the float vector length of the dispatched path,
// scan_kernels::scan_block_channels_f32(), the same as the selective scan's), vectorized across them:
// the (nc,L) rows are gathered into a time-major (L,V) tile, scanned, and scattered back.
// Precision: w_n is held in float, so the float recurrence propagates with wf_n = float(w_n) and after l
// steps carries a relative error ~ l * 6e-8. The scan runs in chunks of kChunk steps and corrects each
// chunk's carried state by (w_n^kChunk - wf_n^kChunk) s (precomputed in double), so that the systematic
// error stays below ~kChunk * 6e-8 at any L.
#pragma once

#include <cstdint>

namespace ssmkit::core::s4d_kernels {

constexpr int64_t kChunk = 64;  // steps between state corrections

// Modes of one channel block, lane i = channel h0 + i (lanes past the last channel hold zeros):
// modes = (6, M, V) floats: Re w, Im w, Re c, Im c, Re e, Im e with e = w^kChunk - float(w)^kChunk.
struct RecurrenceBlockF32 {
  const float* u = nullptr;      // (nc,L) rows, channel i at u + i L
  float* y = nullptr;            // (nc,L) rows: y = K * u + D u
  const float* modes = nullptr;  // (6,M,V)
  const float* D = nullptr;      // (V)
  int64_t nc = 0, L = 0, M = 0;  // M >= 1 (S4D has d_state >= 2)
  float* work = nullptr;         // recurrence_work_floats(L, M)
};
int64_t recurrence_work_floats(int64_t L, int64_t M);
void recurrence_block_f32(const RecurrenceBlockF32& a);

}  // namespace ssmkit::core::s4d_kernels
