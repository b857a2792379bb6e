// EinFFT, SiMBA's channel mixer (../shared/specs/vision.md §3.2; used by vision's SiMBA and the time-series
// SiMBA), as explicit forward/backward kernels on
// FFTW and gemm(), an autograd op and a Module with the official keys (complex_weight_1/2 (2,4,bs,bs),
// complex_bias_1/2 (2,4,bs); index 0 = real part, 1 = imaginary part, used as v -> v @ W per block).
//   F = fft2_ortho over (token, block) of x viewed as (B,N,4,bs)
//   (R1, I1) = ReLU(F (W1r + i W1i) + b1)   per block, real and imaginary parts separately (as the code does)
//   (R2, I2) = (R1 + i I1)(W2r + i W2i) + b2;  S = softshrink(R2 + i I2, lambda)  (both parts)
//   y = Re(ifft2_ortho(S)) viewed as (B,N,C)
// Not here: the unused H, W arguments of the original signature. Shapes: B batch, N tokens, C = 4*bs channels.
#pragma once

#include <cstdint>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"

namespace ssmkit::core {

constexpr int64_t kEinFFTBlocks = 4;          // num_blocks of the official class
constexpr double kEinFFTSparsity = 0.01;      // sparsity_threshold (softshrink lambda)

// What the forward keeps for the backward; every tensor (B,N,4,2,bs) of the input's dtype: per token and
// block the bs real parts, then the bs imaginary parts.
struct EinFFTCache {
  Tensor F;  // spectrum of x (ortho scaled)
  Tensor H;  // first layer, after ReLU
  Tensor S;  // second layer, after softshrink (its zeros give the mask)
  double lambda = kEinFFTSparsity;
};

// x (B,N,C), w1/w2 (2,4,bs,bs), b1/b2 (2,4,bs) -> y (B,N,C). F32 or F64, one dtype. Fills *cache when
// non-null. y is allocated (or overwritten when it already has the right shape, dtype and is contiguous).
void einfft_forward(Tensor& y, EinFFTCache* cache, const Tensor& x, const Tensor& w1,
                    const Tensor& b1, const Tensor& w2, const Tensor& b2,
                    double lambda = kEinFFTSparsity);

// dy (B,N,C) -> dx (B,N,C) (written), dw1/dw2 (2,4,bs,bs), db1/db2 (2,4,bs) added into when defined on entry,
// else allocated. `cache` comes from the forward on the same inputs.
void einfft_backward(Tensor& dx, Tensor& dw1, Tensor& db1, Tensor& dw2, Tensor& db2,
                     const Tensor& dy, const EinFFTCache& cache, const Tensor& w1,
                     const Tensor& w2);

// Autograd op: x (B,N,C) -> (B,N,C).
Var einfft(const Var& x, const Var& w1, const Var& b1, const Var& w2,
                 const Var& b2, double lambda = kEinFFTSparsity);

class EinFFT : public Module {
 public:
  // Parameters N(0,1) * 0.02, as the official constructor draws them (the Linear re-init leaves them alone).
  EinFFT(int64_t dim, Rng& rng);
  Var forward(const Var& x) const;  // (B,N,C) -> (B,N,C)
  Var complex_weight_1, complex_weight_2, complex_bias_1, complex_bias_2;
  int64_t dim;
};

}  // namespace ssmkit::core
