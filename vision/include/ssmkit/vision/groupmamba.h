// GroupMamba (Amshaker/GroupMamba @c1800ed, classification/models/groupmamba.py; ../shared/specs/vision.md §2)
// with the official state_dict keys and order: the PVT-v2 scaffold, Block_mamba = x + GML(x), x + PVT2FFN(norm2 x),
// the Modulated Group Mamba layer (GML) with four single-direction VSSS groups (core::SS2D, d_state 1,
// ssm_ratio 1, one direction each) and channel-affinity modulation, the class-token block and the
// distillation head (eval output (head + dist_head)/2). The four groups run as one fused op (vsss.h); the
// core::SS2D modules hold their parameters under the official names.
// Configurations (micro = the small-data model: 1 channel, 32x32 input, 1.21 M parameters):
//   name    stem  embed_dims          depths        mlp_ratios  distillation  drop_path
//   tiny    32    [64,128,348,448]    [3,4,9,3]     [8,8,4,4]   yes           0.0 (train.py uses 0.05)
//   small   64    [64,128,348,512]    [3,4,16,3]    [8,8,4,4]   yes           0.0
//   base    64    [96,192,424,512]    [3,6,21,3]    [8,8,4,4]   yes           0.0
//   micro   16    [32,64,128,160]     [1,1,2,1]     [4,4,4,4]   no            0.05
// Not here: the DeiT teacher and its loss (forward_heads gives both heads for it).
// Shapes: B batch, C channels of a stage, H x W token grid, L = H*W, K classes.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/core/nn/layers.h"
#include "ssmkit/core/nn/ss2d.h"
#include "ssmkit/vision/blocks.h"
#include "ssmkit/vision/model.h"

namespace ssmkit::vision {

struct GroupMambaConfig {
  int64_t in_chans = 3;
  int64_t num_classes = 1000;
  int64_t stem_hidden_dim = 32;
  std::vector<int64_t> embed_dims = {64, 128, 348, 448};  // each a multiple of 4 (four channel groups);
                                                          // below 16 the affinity MLP has width 0, as upstream
  std::vector<double> mlp_ratios = {8, 8, 4, 4};
  std::vector<int64_t> depths = {3, 4, 9, 3};
  double drop_path_rate = 0.0;  // linearly increasing over the blocks, as torch.linspace(0, rate, sum(depths))
  double norm_eps = 1e-6;       // norm_layer (block norm2, norm1..4, class block norms)
  bool distillation = true;     // dist_head

  static GroupMambaConfig tiny();
  static GroupMambaConfig small();
  static GroupMambaConfig base();
  static GroupMambaConfig micro();
  // The official constructor's keyword arguments as JSON (norm_layer as {"type": "LayerNorm", "eps": e}),
  // plus "arch": "groupmamba". from_json accepts the golden files' `config` metadata too.
  std::string to_json() const;
  static GroupMambaConfig from_json(const std::string& json);
  void validate() const;  // throws Error naming the bad field
};

// The Modulated Group Mamba layer (GroupMambaLayer), code-exact (spec §2.2):
//   xn = norm(x); a = sigmoid(fc2(relu(fc1(mean_L xn))));  y = concat_g SS2D_g(chunk_g(xn)) * skip_scale * xn;
//   y = norm(y * a); out = proj(y)   (`norm`, eps 1e-5, is one LayerNorm used twice)
class GroupMambaLayer : public core::Module {
 public:
  GroupMambaLayer(int64_t dim, core::Rng& rng);
  Var forward(const Var& x, int64_t H, int64_t W) const;  // (B,H*W,C) -> (B,H*W,C)

  Var skip_scale;  // (1)
  std::shared_ptr<core::Linear> fc1, fc2, proj;  // fc1/fc2 null when C < 16 (zero-width affinity layers)
  Var fc2_bias_only;                             // fc2.bias when C < 16
  std::shared_ptr<core::LayerNorm> norm;
  std::vector<std::shared_ptr<core::SS2D>> mamba;  // mamba_g1..g4: row-major, column-major, both reversed
  std::vector<Var> group_params;  // the 4 x 11 parameters of mamba_g1..g4 as group_vsss takes them
  int64_t dim;
};

// Block_mamba: x = x + drop_path(attn(x)); x = x + drop_path(mlp(norm2(x))).
class GroupMambaBlock : public core::Module {
 public:
  GroupMambaBlock(int64_t dim, double mlp_ratio, double drop_path, double eps, core::Rng& rng);
  Var forward(const Var& x, int64_t H, int64_t W) const;  // (B,H*W,C) -> (B,H*W,C)

  std::shared_ptr<core::LayerNorm> norm2;
  std::shared_ptr<GroupMambaLayer> attn;
  std::shared_ptr<PVT2FFN> mlp;
  double drop_path;
  // Drop-path draws: the generator the block was built with, or null when that was core::global_rng(): then
  // global_rng() at each forward, the calling thread's (data-parallel shards draw from their own).
  core::Rng* rng = nullptr;
};

// ClassBlock (post_network.0): c = c + norm1(attn(c) on a 1x1 map); c = c + mlp(norm2(c)).
class GroupMambaClassBlock : public core::Module {
 public:
  GroupMambaClassBlock(int64_t dim, double mlp_ratio, double eps, core::Rng& rng);
  Var forward(const Var& cls) const;  // (B,1,C) -> (B,1,C)

  std::shared_ptr<core::LayerNorm> norm1, norm2;
  std::shared_ptr<GroupMambaLayer> attn;
  std::shared_ptr<FFN> mlp;
};

class GroupMamba : public VisionModel {
 public:
  // initialize = false skips the official re-initialization (for weights that are about to be loaded).
  explicit GroupMamba(const GroupMambaConfig& cfg, core::Rng& rng = core::global_rng(), bool initialize = true);

  // image (B,C_in,H,W) -> (B,K); see VisionModel::forward.
  Var forward(const Var& image, VisionTrace* trace = nullptr) const override;
  // The class-token features after norm4 (B, C3).
  Var forward_features(const Var& image, VisionTrace* trace = nullptr) const;
  // Both heads on the features: {head (B,K), dist_head (B,K)} (dist_head undefined without distillation),
  // for DeiT-style training.
  std::array<Var, 2> forward_heads(const Var& image, VisionTrace* trace = nullptr) const;

  std::string arch() const override { return "groupmamba"; }
  std::string config_json() const override;  // cfg.to_json() plus "image_size"
  int64_t in_chans() const override { return cfg.in_chans; }
  int64_t num_classes() const override { return cfg.num_classes; }

  GroupMambaConfig cfg;
  std::shared_ptr<Stem> patch_embed1;
  std::vector<std::shared_ptr<DownSamples>> downsamples;                 // patch_embed2..4
  std::vector<std::vector<std::shared_ptr<GroupMambaBlock>>> blocks;     // block1..4
  std::vector<std::shared_ptr<core::LayerNorm>> norms;                   // norm1..4
  std::shared_ptr<GroupMambaClassBlock> post;                            // post_network.0
  std::shared_ptr<core::Linear> head, dist_head;
};

}  // namespace ssmkit::vision
