// Basic layers as Modules with PyTorch's parameter names and default initializations:
// Linear (weight (O,I), bias (O)), Conv1d (weight (O,I/G,K)), Conv2d (weight (O,I/G,kH,kW)),
// Embedding (weight (V,D)), Dropout. Each forward calls the matching op in ops/.
// Shapes: N batch, I/O in/out features or channels, G groups, L length, H x W image.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"

namespace ssmkit::core {

class Linear : public Module {
 public:
  // weight kaiming-uniform(a=sqrt 5), bias U(+-1/sqrt(I)), as nn.Linear.
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Rng& rng = global_rng());
  Var forward(const Var& x) const;  // (..., I) -> (..., O)
  Var weight, bias;                 // bias undefined when bias = false
  int64_t in_features, out_features;
};

struct Conv1dOptions {
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};

class Conv1d : public Module {
 public:
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv1dOptions opt = {},
         Rng& rng = global_rng());
  Var forward(const Var& x) const;  // (N,I,L) -> (N,O,L')
  Var weight, bias;
  Conv1dOptions opt;
};

struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size, Conv2dOptions opt = {},
         Rng& rng = global_rng());
  Var forward(const Var& x) const;  // (N,I,H,W) -> (N,O,H',W')
  Var weight, bias;
  Conv2dOptions opt;
};

class Embedding : public Module {
 public:
  // weight ~ N(0,1), the padding row zeroed, as nn.Embedding.
  Embedding(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx = std::nullopt,
            Rng& rng = global_rng());
  Var forward(const Tensor& indices) const;  // I64 (...) -> (..., D)
  Var weight;
  std::optional<int64_t> padding_idx;
};

// nn.LayerNorm over the last dims `normalized_shape`: weight ones, bias zeros.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true, bool bias = true);
  Var forward(const Var& x) const;  // (..., *normalized_shape)
  Var weight, bias;
  Shape normalized_shape;
  double eps;
};

// nn.BatchNorm1d/2d/3d: weight, bias, running_mean, running_var, num_batches_tracked (I64 scalar).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  Var forward(const Var& x) const;  // (N,C,...); batch statistics in training (updating the running ones)
  Var weight, bias;  // buffers: buffer("running_mean"), buffer("running_var"), buffer("num_batches_tracked")
  double eps, momentum;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5) : p(p) {}
  Var forward(const Var& x, Rng& rng = global_rng()) const;  // identity in eval mode
  double p;
};

}  // namespace ssmkit::core
