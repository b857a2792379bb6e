// Embedding lookup as an autograd op (torch.nn.functional.embedding): rows of a (V,D) table gathered by
// integer indices. Backward scatter-adds into the table's gradient in index order (deterministic).
// Not here: max_norm renormalisation, sparse gradients, scale_grad_by_freq, embedding_bag.
// Shapes: V vocabulary rows, D embedding size.
#pragma once

#include <optional>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// weight (V,D), indices I64 or I32 (...) with values in [0, V) -> (..., D).
// padding_idx (negative counts from V, like PyTorch): that row gets no gradient; its value is used as is
// (nn.Embedding zero-initialises it).
Var embedding(const Var& weight, const Tensor& indices, std::optional<int64_t> padding_idx = std::nullopt);

}  // namespace ssmkit::core
