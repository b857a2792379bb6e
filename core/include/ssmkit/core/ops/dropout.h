// Dropout as autograd ops, drawing from a seeded Rng (ssmkit/core/random.h): element-wise inverted dropout
// (torch.nn.functional.dropout), channel-wise dropout (F.dropout1d/2d/3d: whole channels of (N,C,*)
// zeroed) and stochastic depth (timm's drop_path: whole samples zeroed). Kept values are scaled by
// 1/(1-p) so the expectation is unchanged. Mask draws run in row-major order, one uniform per masked unit,
// so a seed fixes the mask; p == 1 draws nothing and gives zeros. Not here: alpha dropout.
// Not the PyTorch random stream: masks have the same law as PyTorch's, not the same values.
#pragma once

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/random.h"

namespace ssmkit::core {

// x (...) -> x * mask / (1-p), mask (...) ~ Bernoulli(1-p). Returns x itself when !training or p == 0.
Var dropout(const Var& x, double p = 0.5, bool training = true, Rng& rng = global_rng());

// x (N,C,*) -> x * mask[n,c] / (1-p), one draw per (n,c) shared by the trailing dims (L, or H,W, ...).
// A 2-D x is unbatched (C,L) with one draw per channel, like F.dropout1d. Identity when !training or p == 0.
Var dropout_channels(const Var& x, double p = 0.5, bool training = true, Rng& rng = global_rng());

// x (N,...) -> x * mask[n] (/ (1-p) when scale_by_keep), one draw per sample. Identity when !training or
// p == 0 (timm's defaults: p = 0, training = false).
Var drop_path(const Var& x, double p = 0.0, bool training = false, Rng& rng = global_rng(),
              bool scale_by_keep = true);

}  // namespace ssmkit::core
