// Mamba-1 as Modules with the official state_dict keys (state-spaces/mamba):
//   Mamba            mamba_simple.Mamba: A_log, D, in_proj, conv1d, x_proj, dt_proj, out_proj
//   MambaLMHeadModel mixer_seq_simple: backbone.embedding, backbone.layers.{i}.{norm,mixer}, backbone.norm_f,
//                    lm_head (weight tied to the embedding, as the official model does)
// Mamba's forward is one fused op (ssm/mamba_block.h: explicit forward and backward); step() and
// forward_chunk() are the inference modes with carried state. Shapes: B batch, L length, M d_model.
#pragma once

#include <memory>
#include <vector>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/ssm/mamba_block.h"

namespace ssmkit::core {

// The official constructor's initialization arguments.
struct MambaInit {
  double dt_min = 0.001, dt_max = 0.1, dt_init_floor = 1e-4, dt_scale = 1.0;
  bool dt_init_random = true;  // "random" (U(+-r)) or "constant" (= r) for dt_proj.weight
};

class Mamba : public Module {
 public:
  explicit Mamba(const MambaConfig& cfg, Rng& rng = global_rng(), const MambaInit& init = {});
  Var forward(const Var& hidden) const;                      // (B,L,M) -> (B,L,M)
  Tensor step(const Tensor& x, MambaState& state) const;     // (B,M) -> (B,M), advances state
  Tensor forward_chunk(const Tensor& hidden, MambaState& state) const;  // inference over a chunk
  MambaParams bind() const;                                  // the parameters' current values

  MambaConfig cfg;
  Var A_log, D;
  std::shared_ptr<Linear> in_proj, x_proj, dt_proj, out_proj;
  std::shared_ptr<Conv1d> conv1d;

 private:
  std::vector<Var> param_list() const;  // in MambaParams::names() order
};

// RMSNorm (mamba_ssm.ops.triton.layer_norm.RMSNorm): y = x * rsqrt(mean(x^2) + eps) * weight.
class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t d, double eps = 1e-5);
  Var forward(const Var& x) const;  // (..., d)
  Var weight;
  double eps;
};

struct MambaLMConfig {
  int64_t d_model = 64, n_layer = 2, vocab_size = 16;
  int64_t pad_vocab_size_multiple = 8;  // the official default; vocab is padded up to a multiple
  MambaConfig mixer;                    // d_model is taken from above
  double norm_eps = 1e-5;
};

// Pre-norm residual stack: residual = h + residual; h = mixer(norm(residual)); final norm_f.
class MambaBlockLayer : public Module {
 public:
  MambaBlockLayer(const MambaConfig& cfg, double eps, Rng& rng);
  std::shared_ptr<Mamba> mixer;
  std::shared_ptr<RMSNorm> norm;
};

class MambaBackbone : public Module {
 public:
  MambaBackbone(const MambaLMConfig& cfg, Rng& rng);
  Var forward(const Tensor& tokens) const;  // I64 (B,L) -> (B,L,M) after norm_f
  std::shared_ptr<Embedding> embedding;
  std::vector<std::shared_ptr<MambaBlockLayer>> layers;
  std::shared_ptr<RMSNorm> norm_f;
};

class MambaLMHeadModel : public Module {
 public:
  explicit MambaLMHeadModel(const MambaLMConfig& cfg, Rng& rng = global_rng());
  Var forward(const Tensor& tokens) const;  // I64 (B,L) -> logits (B,L,V_padded)
  MambaLMConfig cfg;
  int64_t vocab_padded;
  std::shared_ptr<MambaBackbone> backbone;
  Var lm_head_weight;  // "lm_head.weight", the same Var as backbone.embedding.weight (tied)
};

}  // namespace ssmkit::core
