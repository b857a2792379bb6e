// Normalization layers: layer_norm (F.layer_norm), rms_norm (Mamba's RMSNorm), batch_norm (F.batch_norm,
// running statistics updated as PyTorch does), group_norm (F.group_norm) and layer_norm_2d (VMamba's
// LayerNorm2d). Each has Tensor kernels, forward next to backward, that save mean/rstd for the backward,
// and a Var op. Statistics are accumulated in double; tensors are F32 or F64 (one dtype per call).
// Shapes: R rows, C normalized size; N batch, C channels, S spatial (product of the trailing dims), G groups.
// Not here: cumulative-average batch norm (momentum=None), instance norm, fused residual adds.
#pragma once

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// Kernel conventions: outputs y / mean / rstd are allocated when undefined, else overwritten (they must have
// the right shape and dtype). Backward: dx is written to *dx (added into when defined on entry, else
// allocated); dweight / dbias are added into (+=) when defined on entry, else allocated; pass nullptr to
// skip a gradient. weight / bias may be undefined (no affine part).

// --- layer norm: x (..., normalized_shape), stats over the last k = len(normalized_shape) dims -----------

// x (R..., C...) , weight/bias (C...) optional -> y like x, mean/rstd (R...) (x's shape minus the last k dims)
//   y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var + eps), var biased.
void layer_norm_forward(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, const Shape& normalized_shape,
                        const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// dy like x -> dx like x, dweight/dbias (C...).
void layer_norm_backward(Tensor* dx, Tensor* dweight, Tensor* dbias, const Tensor& dy, const Tensor& x,
                         const Tensor& mean, const Tensor& rstd, const Tensor& weight, const Shape& normalized_shape);

// --- RMS norm over the last dim (mamba_ssm RMSNorm: x * rsqrt(mean(x^2) + eps) * weight) ----------------

// x (..., D), weight (D) optional -> y (..., D), rstd (...)
void rms_norm_forward(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, double eps = 1e-5);
// dy (..., D) -> dx (..., D), dweight (D).
void rms_norm_backward(Tensor* dx, Tensor* dweight, const Tensor& dy, const Tensor& x, const Tensor& rstd,
                       const Tensor& weight);

// --- batch norm: x (N, C, ...), stats per channel over N and the spatial dims -----------------------------

// x (N,C,...) , running_mean/running_var (C) optional, weight/bias (C) optional -> y like x,
// save_mean/save_rstd (C).
// training: batch statistics (biased variance) normalize; when defined, the running statistics are updated
//   in place: running = (1 - momentum) * running + momentum * batch stat, with the UNBIASED variance
//   (n / (n - 1)) for running_var; needs more than one value per channel.
// eval: the running statistics normalize (they must be defined); save_mean = running_mean,
//   save_rstd = 1 / sqrt(running_var + eps).
void batch_norm_forward(Tensor& y, Tensor& save_mean, Tensor& save_rstd, const Tensor& x, Tensor running_mean,
                        Tensor running_var, const Tensor& weight, const Tensor& bias, bool training,
                        double momentum = 0.1, double eps = 1e-5);
// dy like x -> dx like x, dweight/dbias (C). training selects the batch-statistics gradient (mean and
// variance depend on x); eval treats the statistics as constants.
void batch_norm_backward(Tensor* dx, Tensor* dweight, Tensor* dbias, const Tensor& dy, const Tensor& x,
                         const Tensor& save_mean, const Tensor& save_rstd, const Tensor& weight, bool training);

// --- group norm: x (N, C, ...), stats per (sample, group of C/G channels) -------------------------------

// x (N,C,...), weight/bias (C) optional -> y like x, mean/rstd (N,G).
void group_norm_forward(Tensor& y, Tensor& mean, Tensor& rstd, const Tensor& x, int64_t num_groups,
                        const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// dy like x -> dx like x, dweight/dbias (C).
void group_norm_backward(Tensor* dx, Tensor* dweight, Tensor* dbias, const Tensor& dy, const Tensor& x,
                         const Tensor& mean, const Tensor& rstd, const Tensor& weight, int64_t num_groups);

// --- autograd ops (an undefined weight/bias Var means no affine part) ---------------------------------------

// x (..., normalized_shape), weight/bias (normalized_shape) -> like x.
Var layer_norm(const Var& x, const Shape& normalized_shape, const Var& weight = {}, const Var& bias = {},
               double eps = 1e-5);
// x (..., D), weight (D) -> (..., D).
Var rms_norm(const Var& x, const Var& weight = {}, double eps = 1e-5);
// x (N,C,...), running stats (C) Tensors (updated in place when training), weight/bias (C) -> like x.
Var batch_norm(const Var& x, Tensor running_mean, Tensor running_var, const Var& weight = {}, const Var& bias = {},
               bool training = false, double momentum = 0.1, double eps = 1e-5);
// x (N,C,...), weight/bias (C) -> like x.
Var group_norm(const Var& x, int64_t num_groups, const Var& weight = {}, const Var& bias = {}, double eps = 1e-5);
// x (N,C,...) channel-first, weight/bias (C) -> like x: layer norm over C at every position
// (VMamba LayerNorm2d: permute to channel-last, layer_norm, permute back).
Var layer_norm_2d(const Var& x, const Var& weight = {}, const Var& bias = {}, double eps = 1e-5);

}  // namespace ssmkit::core
