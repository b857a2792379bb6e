// Loss functions as autograd ops, with torch.nn.functional semantics and defaults: mse_loss, l1_loss,
// cross_entropy (class indices with ignore_index and label smoothing, or class probabilities),
// binary_cross_entropy_with_logits (stable form, pos_weight, weight) and kl_div (incl. batchmean).
// Not here: class weights for cross_entropy, nll_loss on its own, broadcasting of input against target
// (PyTorch only warns about it; here shapes must match). F32 or F64; reductions accumulate in double.
// Shapes: N batch, C classes, d1.. extra dims. Reduced losses are 0-d tensors, Reduction::None keeps shape.
#pragma once

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// How a loss reduces its per-element values. BatchMean (sum / input.size(0)) is for kl_div only, as in
// PyTorch where the other losses reject "batchmean".
enum class Reduction { None, Mean, Sum, BatchMean };

// input (...), target (...) same shape -> (input - target)^2, reduced. Both are differentiable.
Var mse_loss(const Var& input, const Var& target, Reduction reduction = Reduction::Mean);
// input (...), target (...) same shape -> |input - target|, reduced (gradient sign, 0 at equality).
Var l1_loss(const Var& input, const Var& target, Reduction reduction = Reduction::Mean);

// logits (N,C) or (N,C,d1,...) or (C); target I64 class indices (N) or (N,d1,...) or () -> loss per
// position (1-eps) * -log p[target] + eps * mean_c(-log p_c), p = softmax over C, eps = label_smoothing.
// Positions whose target is ignore_index contribute nothing; Mean divides by the number of the others
// (NaN when there are none, like PyTorch). Targets outside [0, C) other than ignore_index throw.
// Not differentiable in target. Reduction::None gives shape (N,d1,...).
Var cross_entropy(const Var& logits, const Tensor& target, int64_t ignore_index = -100,
                  double label_smoothing = 0.0, Reduction reduction = Reduction::Mean);
// The same with class probabilities: target has the logits' shape; with label smoothing it becomes
// (1-eps) target + eps/C. loss = -sum_c target_c log p_c per position; Mean divides by numel / C.
// Differentiable in both logits and target.
Var cross_entropy(const Var& logits, const Var& target_probs, double label_smoothing = 0.0,
                  Reduction reduction = Reduction::Mean);

// input (logits) (...), target (...) same shape -> weight * [(1-t) x + (1 + (pos_weight-1) t) softplus(-x)],
// reduced. pos_weight and weight are optional (undefined Tensor), broadcastable to input's shape
// (pos_weight typically (C) over the last dim), not differentiable. Differentiable in input and target.
Var binary_cross_entropy_with_logits(const Var& input, const Var& target, const Tensor& pos_weight = Tensor{},
                                     Reduction reduction = Reduction::Mean, const Tensor& weight = Tensor{});

// input = log-probabilities (...), target (...) same shape: probabilities, or log-probabilities when
// log_target -> target (log target - input) (0 where target == 0), or exp(target) (target - input).
// Mean divides by numel (PyTorch's default, which it warns about); BatchMean by input.size(0), the true KL.
// Differentiable in both; where target == 0 (log_target false) the target gradient is taken as -input
// (PyTorch's xlogy gives NaN there).
Var kl_div(const Var& input, const Var& target, Reduction reduction = Reduction::Mean, bool log_target = false);

}  // namespace ssmkit::core
