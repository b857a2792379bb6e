// Causal long convolution by FFT, the convolution of S4/S4D (see ../shared/specs/core-ssm.md §1.4, §1.6):
//   y[b,h,t] = sum_{s<=t} k[h,t-s] u[b,h,s] + D[h] u[b,h,t]
// computed with FFTW r2c/c2r on zero-padded length n >= 2L (the smallest 2^a 3^b 5^c 7^d >= 2L, so any L works
// and no wrap-around reaches [0,L)). Shapes: B batch, H channels, L length.
//   u, y (B,H,L); k (H,L); D (H) optional (undefined = no skip term)
// F32 tensors use fftwf, F64 tensors fftw. Threads: OpenMP over channels H (each kernel spectrum is computed
// once per channel and reused over the batch); deterministic for any thread count.
// Not here: bidirectional kernels, kernels shorter or longer than L, the multi-channel (C*H) output of FFTConv.
#pragma once

#include <mutex>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

// Forward. u (B,H,L), k (H,L), D (H) or undefined -> y (B,H,L).
// All defined inputs share one dtype (F32 or F64), any strides. y is allocated when undefined, else it must
// be (B,H,L) of that dtype and is overwritten.
void fftconv_forward(Tensor& y, const Tensor& u, const Tensor& k, const Tensor& D);

// Backward. dy (B,H,L) -> du (B,H,L), dk (H,L), dD (H) (dD only when D is defined; else left untouched):
//   du[s] = sum_{t>=s} k[t-s] dy[t] + D dy[s],  dk[j] = sum_{b,t} dy[t] u[t-j],  dD = sum_{b,t} dy u.
// Each gradient defined on entry is accumulated into (+=); an undefined one is allocated and written.
void fftconv_backward(Tensor& du, Tensor& dk, Tensor& dD, const Tensor& dy, const Tensor& u, const Tensor& k,
                      const Tensor& D);

// Reference path: direct O(L^2) sums in double; outputs F64 when allocated. The oracle for the fast path.
void fftconv_ref_forward(Tensor& y, const Tensor& u, const Tensor& k, const Tensor& D);
void fftconv_ref_backward(Tensor& du, Tensor& dk, Tensor& dD, const Tensor& dy, const Tensor& u, const Tensor& k,
                          const Tensor& D);

// The FFT length used for sequences of length L: the smallest 2^a 3^b 5^c 7^d >= 2L (1 for L = 0).
int64_t fftconv_size(int64_t L);

// FFTW's planner is not thread-safe (in fftw3 and fftw3f alike). Every ssmkit caller that creates or destroys
// FFTW plans holds this mutex while doing so; plan execution needs no lock.
std::mutex& fftw_planner_mutex();

}  // namespace ssmkit::core
