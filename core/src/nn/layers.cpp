// Basic layers: registration under PyTorch names, PyTorch default initialization, forward via ops/.
#include "ssmkit/core/nn/layers.h"

#include <cmath>

#include "ssmkit/core/ops/conv.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/embedding.h"
#include "ssmkit/core/ops/matmul.h"
#include "ssmkit/core/ops/norm.h"
#include "ssmkit/core/train/init.h"

namespace ssmkit::core {

Linear::Linear(int64_t in, int64_t out, bool with_bias, Rng& rng) : in_features(in), out_features(out) {
  SSMKIT_CHECK(in > 0 && out > 0, "Linear: features must be positive, got ", in, " -> ", out);
  Tensor w = Tensor::empty({out, in});
  Tensor b = with_bias ? Tensor::empty({out}) : Tensor{};
  default_init_(w, b, rng);
  weight = register_parameter("weight", w);
  if (with_bias) bias = register_parameter("bias", b);
}

Var Linear::forward(const Var& x) const { return linear(x, weight, bias); }

Conv1d::Conv1d(int64_t in, int64_t out, int64_t k, Conv1dOptions o, Rng& rng) : opt(o) {
  SSMKIT_CHECK(o.groups > 0 && in % o.groups == 0 && out % o.groups == 0, "Conv1d: groups ", o.groups,
               " must divide in_channels ", in, " and out_channels ", out);
  Tensor w = Tensor::empty({out, in / o.groups, k});
  Tensor b = o.bias ? Tensor::empty({out}) : Tensor{};
  default_init_(w, b, rng);
  weight = register_parameter("weight", w);
  if (o.bias) bias = register_parameter("bias", b);
}

Var Conv1d::forward(const Var& x) const {
  return conv1d(x, weight, bias, opt.stride, opt.padding, opt.dilation, opt.groups);
}

Conv2d::Conv2d(int64_t in, int64_t out, std::array<int64_t, 2> k, Conv2dOptions o, Rng& rng) : opt(o) {
  SSMKIT_CHECK(o.groups > 0 && in % o.groups == 0 && out % o.groups == 0, "Conv2d: groups ", o.groups,
               " must divide in_channels ", in, " and out_channels ", out);
  Tensor w = Tensor::empty({out, in / o.groups, k[0], k[1]});
  Tensor b = o.bias ? Tensor::empty({out}) : Tensor{};
  default_init_(w, b, rng);
  weight = register_parameter("weight", w);
  if (o.bias) bias = register_parameter("bias", b);
}

Var Conv2d::forward(const Var& x) const {
  return conv2d(x, weight, bias, opt.stride, opt.padding, opt.dilation, opt.groups);
}

Embedding::Embedding(int64_t num, int64_t dim, std::optional<int64_t> pad, Rng& rng) : padding_idx(pad) {
  Tensor w = Tensor::empty({num, dim});
  normal_(w, rng);
  if (pad) {
    SSMKIT_CHECK(*pad >= 0 && *pad < num, "Embedding: padding_idx ", *pad, " outside [0, ", num, ")");
    w.select(0, *pad).fill(0.0);
  }
  weight = register_parameter("weight", w);
}

Var Embedding::forward(const Tensor& indices) const { return embedding(weight, indices, padding_idx); }

LayerNorm::LayerNorm(Shape shape, double e, bool affine, bool with_bias) : normalized_shape(std::move(shape)), eps(e) {
  if (affine) {
    weight = register_parameter("weight", Tensor::full(normalized_shape, 1.0));
    if (with_bias) bias = register_parameter("bias", Tensor::zeros(normalized_shape));
  }
}

Var LayerNorm::forward(const Var& x) const { return layer_norm(x, normalized_shape, weight, bias, eps); }

BatchNorm::BatchNorm(int64_t C, double e, double m) : eps(e), momentum(m) {
  weight = register_parameter("weight", Tensor::full({C}, 1.0));
  bias = register_parameter("bias", Tensor::zeros({C}));
  register_buffer("running_mean", Tensor::zeros({C}));
  register_buffer("running_var", Tensor::full({C}, 1.0));
  register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I64));
}

// Buffers are looked up on each call (Module::to may have replaced them); updates are in place.
Var BatchNorm::forward(const Var& x) const {
  if (training()) {
    Tensor n = buffer("num_batches_tracked");
    n.data<int64_t>()[0] += 1;
  }
  return batch_norm(x, buffer("running_mean"), buffer("running_var"), weight, bias, training(), momentum, eps);
}

Var Dropout::forward(const Var& x, Rng& rng) const { return dropout(x, p, training(), rng); }

}  // namespace ssmkit::core
