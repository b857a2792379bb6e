// S4D (diagonal S4) convolution kernel, forward and backward, and its initializers, following
// state-spaces/s4 `models/s4/s4d.py` (minimal S4D) and `SSMKernelDiag` (see ../shared/specs/core-ssm.md §1):
//   dt = exp(log_dt), A_n = -exp(log_A_real_n) + i*s*A_imag_n   (s = +1 minimal s4d.py, -1 SSMKernelDiag)
//   ZOH:      K[l] = 2 Re sum_n C_n (exp(dt A_n) - 1)/A_n * exp(dt A_n l)
//   bilinear: K[l] = 2 Re sum_n C_n dt/(1 - dt A_n/2) * ((1 + dt A_n/2)/(1 - dt A_n/2))^l
// Shapes: H channels, M = N/2 complex modes (N = full state size), L kernel length.
//   log_dt (H), C (H,M,2) re/im pairs, log_A_real and A_imag (H,M) -> K (H,L)
// The phase exp(dt A l) and all sums are evaluated in double for F32 and F64 tensors alike (only the
// results are rounded to the tensor dtype). Not here: B (folded into C, as s4d.py does), n_ssm copies,
// bandlimit, rate, the step (recurrent) mode.
#pragma once

#include <cstdint>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

enum class S4DDisc { ZOH, Bilinear };  // discretization of the continuous SSM (§1.3)
enum class S4DInit { Lin, Inv };       // S4D-Lin: Im A_n = pi n;  S4D-Inv: Im A_n = (N/pi)(N/(2n+1) - 1)

// Sign of Im A relative to the stored A_imag: +1 for minimal s4d.py, -1 for the full SSMKernelDiag.
constexpr int kS4DSignMinimal = +1;
constexpr int kS4DSignFull = -1;

// Forward. log_dt (H), C (H,M,2), log_A_real (H,M), A_imag (H,M) -> K (H,L).
// All inputs share one dtype (F32 or F64), any strides. K is allocated (that dtype) when undefined, else
// it must be (H,L) of that dtype and is overwritten.
void s4d_kernel_forward(Tensor& K, const Tensor& log_dt, const Tensor& C, const Tensor& log_A_real,
                        const Tensor& A_imag, int64_t L, S4DDisc disc = S4DDisc::ZOH,
                        int a_imag_sign = kS4DSignMinimal);

// Backward. dK (H,L) -> dlog_dt (H), dC (H,M,2), dlog_A_real (H,M), dA_imag (H,M).
// Each gradient defined on entry is accumulated into (+=); an undefined one is allocated and written.
// Inputs and flags must be those of the forward (the kernel is not needed: backward recomputes the phases).
void s4d_kernel_backward(Tensor& dlog_dt, Tensor& dC, Tensor& dlog_A_real, Tensor& dA_imag, const Tensor& dK,
                         const Tensor& log_dt, const Tensor& C, const Tensor& log_A_real, const Tensor& A_imag,
                         S4DDisc disc = S4DDisc::ZOH, int a_imag_sign = kS4DSignMinimal);

// Reference path: plain loops in double, exp(z l) evaluated directly per (n,l); outputs F64 when allocated.
// The oracle for the fast path (backward follows §1.6's grad_W / grad_z / grad_A route, not the fast one's).
void s4d_kernel_ref_forward(Tensor& K, const Tensor& log_dt, const Tensor& C, const Tensor& log_A_real,
                            const Tensor& A_imag, int64_t L, S4DDisc disc = S4DDisc::ZOH,
                            int a_imag_sign = kS4DSignMinimal);
void s4d_kernel_ref_backward(Tensor& dlog_dt, Tensor& dC, Tensor& dlog_A_real, Tensor& dA_imag, const Tensor& dK,
                             const Tensor& log_dt, const Tensor& C, const Tensor& log_A_real,
                             const Tensor& A_imag, S4DDisc disc = S4DDisc::ZOH,
                             int a_imag_sign = kS4DSignMinimal);

// Recurrent (step) mode, equal to the convolution with the kernel above: per mode n the state follows
//   x_t = exp(g_n) x_{t-1} + P_n u_t,  y_t = 2 Re sum_n C_n x_t[n] + D u_t
// with exp(g_n) = exp(dt A_n) and P_n = (exp(dt A_n) - 1)/A_n (ZOH; bilinear: its dA and dB).
// u (B,H) -> y (B,H); state (B,H,M,2) complex as re/im pairs (zeros to start), advanced in place;
// D (H) optional. Parameters as s4d_kernel_forward. Inference only (no backward).
void s4d_step(Tensor& y, Tensor& state, const Tensor& u, const Tensor& log_dt, const Tensor& C,
              const Tensor& log_A_real, const Tensor& A_imag, const Tensor& D, S4DDisc disc = S4DDisc::ZOH,
              int a_imag_sign = kS4DSignMinimal);

// Fills existing tensors log_dt (H), C (H,M,2), log_A_real (H,M), A_imag (H,M) (F32 or F64, contiguous):
//   log_A_real = log(1/2), A_imag[h,n] = pi n (Lin) or (N/pi)(N/(2n+1) - 1) with N = 2M (Inv);
//   log_dt ~ U[log dt_min, log dt_max] per channel, then C re/im ~ N(0, 1/2) each, in that order from one
//   std::mt19937_64(seed). A_imag holds the stored value (Im A = s*A_imag); note SSMKernelDiag clamps it to
//   >= 1e-4 at init (its A_imag[...,0] = 1e-4, here 0), which only matters for bit-exact init parity.
void s4d_init(Tensor& log_dt, Tensor& C, Tensor& log_A_real, Tensor& A_imag, S4DInit init, uint64_t seed,
              double dt_min = 1e-3, double dt_max = 1e-1);

}  // namespace ssmkit::core
