// EinFFT, SiMBA's channel mixer (../shared/specs/vision.md §3.2), as explicit forward/backward kernels on
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

namespace ssmkit::vision {

constexpr int64_t kEinFFTBlocks = 4;          // num_blocks of the official class
constexpr double kEinFFTSparsity = 0.01;      // sparsity_threshold (softshrink lambda)

// What the forward keeps for the backward; every tensor (B,N,4,bs), of the input's dtype.
struct EinFFTCache {
  core::Tensor Fr, Fi;  // spectrum of x (ortho scaled)
  core::Tensor R1, I1;  // first layer, after ReLU
  core::Tensor Sr, Si;  // second layer, after softshrink (its zeros give the mask)
  double lambda = kEinFFTSparsity;
};

// x (B,N,C), w1/w2 (2,4,bs,bs), b1/b2 (2,4,bs) -> y (B,N,C). F32 or F64, one dtype. Fills *cache when
// non-null. y is allocated (or overwritten when it already has the right shape, dtype and is contiguous).
void einfft_forward(core::Tensor& y, EinFFTCache* cache, const core::Tensor& x, const core::Tensor& w1,
                    const core::Tensor& b1, const core::Tensor& w2, const core::Tensor& b2,
                    double lambda = kEinFFTSparsity);

// dy (B,N,C) -> dx (B,N,C) (written), dw1/dw2 (2,4,bs,bs), db1/db2 (2,4,bs) added into when defined on entry,
// else allocated. `cache` comes from the forward on the same inputs.
void einfft_backward(core::Tensor& dx, core::Tensor& dw1, core::Tensor& db1, core::Tensor& dw2, core::Tensor& db2,
                     const core::Tensor& dy, const EinFFTCache& cache, const core::Tensor& w1,
                     const core::Tensor& w2);

// Autograd op: x (B,N,C) -> (B,N,C).
core::Var einfft(const core::Var& x, const core::Var& w1, const core::Var& b1, const core::Var& w2,
                 const core::Var& b2, double lambda = kEinFFTSparsity);

class EinFFT : public core::Module {
 public:
  // Parameters N(0,1) * 0.02, as the official constructor draws them (the Linear re-init leaves them alone).
  EinFFT(int64_t dim, core::Rng& rng);
  core::Var forward(const core::Var& x) const;  // (B,N,C) -> (B,N,C)
  core::Var complex_weight_1, complex_weight_2, complex_bias_1, complex_bias_2;
  int64_t dim;
};

}  // namespace ssmkit::vision
