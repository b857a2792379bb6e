// SiMBA (badripatro/Simba @44865e4, classification/simba.py; ../shared/specs/vision.md §3) with the official
// state_dict keys and order: the PVT-v2 scaffold, Block_mamba = x + MambaLayer(x), x + mixer(norm2 x), where
// MambaLayer = mamba_ssm Mamba (d_state 64, d_conv 4, expand 2; core::Mamba, one causal row-major scan) after
// a LayerNorm, and the channel mixer is EinFFT (the paper's SiMBA) or PVT2FFN / FFN (the code as released,
// cm_type 'mlp'); the class-token block; with token labels the eval output head(cls) + 0.5 max_t aux_head(t).
// Configurations (EinFFT in every block, class block included; "-mlp" names use the released mixer):
//   name    stem  embed_dims          depths        mlp_ratios  token_label  mixer   drop_path
//   s       32    [64,128,320,448]    [3,4,6,3]     [8,8,4,4]   yes          einfft  0.0
//   b       64    [64,128,320,512]    [3,4,12,3]    [8,8,4,4]   yes          einfft  0.0
//   l       64    [96,192,384,512]    [3,6,18,3]    [8,8,4,4]   yes          einfft  0.0
//   micro   16    [32,64,128,160]     [1,1,2,1]     [4,4,4,4]   no           einfft  0.05
// simba-micro is ssmkit's small-data model (1 channel, 32x32 input, 10 classes): GroupMamba-micro's stem,
// widths, depths and drop path with SiMBA's blocks (Mamba token mixer, EinFFT channel mixer), 1,208,826
// parameters against GroupMamba-micro's 1,212,650 (the d_state-64 Mamba costs about what GroupMamba's
// groups plus PVT2FFN do). No token labels: Fashion-MNIST has no dense targets.
// Initialization as the official code leaves it: every Linear (Mamba's in/x/dt/out_proj included, so dt_proj.bias
// = 0) trunc_normal(0.02) with zero bias; A_log = log(1..64), D = 1, conv1d PyTorch's default.
// Not here: MixToken and the token-labelling loss (forward_dense gives the dense logits for it).
// Shapes: B batch, C channels of a stage, H x W token grid, L = H*W, K classes.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/mamba.h"
#include "ssmkit/vision/blocks.h"
#include "ssmkit/core/nn/einfft.h"
#include "ssmkit/vision/model.h"

namespace ssmkit::vision {

enum class SimbaMixer { EinFFT, MLP };

struct SimbaConfig {
  int64_t in_chans = 3;
  int64_t num_classes = 1000;
  int64_t stem_hidden_dim = 32;
  std::vector<int64_t> embed_dims = {64, 128, 320, 448};  // multiples of 4 with EinFFT
  std::vector<double> mlp_ratios = {8, 8, 4, 4};          // used by the MLP mixer only
  std::vector<int64_t> depths = {3, 4, 6, 3};
  double drop_path_rate = 0.0;
  double norm_eps = 1e-6;  // norm_layer (block norm2, norm1..4, class block norm2)
  bool token_label = true;
  SimbaMixer mixer = SimbaMixer::EinFFT;

  static SimbaConfig s();
  static SimbaConfig b();
  static SimbaConfig l();
  static SimbaConfig micro();
  // Constructor arguments as JSON ("cm_type": "einfft" | "mlp", norm_layer {"type", "eps"}) plus "arch": "simba".
  // from_json accepts the golden files' `config` metadata (sr_ratios is accepted and ignored: unused upstream).
  std::string to_json() const;
  static SimbaConfig from_json(const std::string& json);
  void validate() const;
};

// MambaLayer: mamba(norm(x)), norm a LayerNorm with eps 1e-5.
class MambaLayer : public core::Module {
 public:
  MambaLayer(int64_t dim, core::Rng& rng);
  Var forward(const Var& x) const;  // (B,L,C) -> (B,L,C)
  std::shared_ptr<core::LayerNorm> norm;
  std::shared_ptr<core::Mamba> mamba;
};

// Block_mamba: x = x + drop_path(attn(x)); x = x + drop_path(mlp(norm2(x))).
class SimbaBlock : public core::Module {
 public:
  SimbaBlock(int64_t dim, double mlp_ratio, SimbaMixer mixer, double drop_path, double eps, core::Rng& rng);
  Var forward(const Var& x, int64_t H, int64_t W) const;  // (B,H*W,C) -> (B,H*W,C)

  std::shared_ptr<core::LayerNorm> norm2;
  std::shared_ptr<MambaLayer> attn;
  std::shared_ptr<core::EinFFT> einfft;   // "mlp" with the EinFFT mixer
  std::shared_ptr<PVT2FFN> pvt_ffn;  // "mlp" with the MLP mixer
  double drop_path;
  // Drop-path draws: the generator the block was built with, or null when that was core::global_rng(): then
  // global_rng() at each forward, the calling thread's (data-parallel shards draw from their own).
  core::Rng* rng = nullptr;
};

// ClassBlock: c = c + attn(c); c = c + mlp(norm2(c)) (EinFFT or FFN).
class SimbaClassBlock : public core::Module {
 public:
  SimbaClassBlock(int64_t dim, double mlp_ratio, SimbaMixer mixer, double eps, core::Rng& rng);
  Var forward(const Var& cls) const;  // (B,1,C) -> (B,1,C)

  std::shared_ptr<core::LayerNorm> norm2;
  std::shared_ptr<MambaLayer> attn;
  std::shared_ptr<core::EinFFT> einfft;
  std::shared_ptr<FFN> ffn;
};

class SiMBA : public VisionModel {
 public:
  // initialize = false skips the official re-initialization (for weights that are about to be loaded).
  explicit SiMBA(const SimbaConfig& cfg, core::Rng& rng = core::global_rng(), bool initialize = true);

  // image (B,C_in,H,W) -> (B,K); see VisionModel::forward.
  Var forward(const Var& image, VisionTrace* trace = nullptr) const override;
  // norm4 output: (B, 1+L4, C3) with token labels (token 0 = class token), else (B, C3).
  Var forward_features(const Var& image, VisionTrace* trace = nullptr) const;
  // With token labels: {head(cls) (B,K), aux_head(tokens) (B,L4,K)}, for token-labelling training.
  std::array<Var, 2> forward_dense(const Var& image, VisionTrace* trace = nullptr) const;

  std::string arch() const override { return "simba"; }
  std::string config_json() const override;  // cfg.to_json() plus "image_size"
  int64_t in_chans() const override { return cfg.in_chans; }
  int64_t num_classes() const override { return cfg.num_classes; }

  SimbaConfig cfg;
  std::shared_ptr<Stem> patch_embed1;
  std::vector<std::shared_ptr<DownSamples>> downsamples;           // patch_embed2..4
  std::vector<std::vector<std::shared_ptr<SimbaBlock>>> blocks;    // block1..4
  std::vector<std::shared_ptr<core::LayerNorm>> norms;             // norm1..4
  std::shared_ptr<SimbaClassBlock> post;                           // post_network.0
  std::shared_ptr<core::Linear> head, aux_head;
};

}  // namespace ssmkit::vision
