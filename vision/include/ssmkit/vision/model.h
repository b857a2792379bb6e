// The common face of ssmkit's image classifiers and the factory that builds them by name.
//   make_vision_model("groupmamba-t" | "groupmamba-s" | "groupmamba-b" | "groupmamba-micro" |
//                     "simba-s" | "simba-b" | "simba-l" | "simba-s-mlp" | "simba-b-mlp" | "simba-l-mlp" |
//                     "simba-micro", options)
// gives a fresh model (official initialization, official state_dict keys) whose forward maps an image batch
// to class scores exactly as the official model does in eval mode. Configs round-trip through JSON (the
// checkpoint's `config` metadata), so a checkpoint rebuilds its model without knowing the name.
// Not here: image decoding and preprocessing, checkpoint conversion, training loops.
// Shapes: B batch, C_in image channels, H x W image, K classes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/nn/module.h"
#include "ssmkit/core/random.h"

namespace ssmkit::vision {

// Intermediate results of one forward (what the golden files' hooks record). Undefined when not produced.
struct VisionTrace {
  core::Var stem;           // patch_embed1 output tokens (B, H/4*W/4, C0), row-major
  core::Var stage1;         // norm1 output (B, L1, C0)
  core::Var stage4_tokens;  // last block of the last stage (B, L4, C3), before the class-token block
  core::Var features;       // norm4 output: (B, C3), or (B, 1+L4, C3) for SiMBA with token labels (token 0 = class)
};

class VisionModel : public core::Module {
 public:
  // image (B,C_in,H,W) -> scores (B,K): the official eval-mode output (GroupMamba with distillation:
  // (head + dist_head)/2; SiMBA with token labels: head(cls) + 0.5 max over tokens of aux_head). In training
  // mode the same formula runs with drop path active. `trace` receives the intermediate results.
  virtual core::Var forward(const core::Var& image, VisionTrace* trace = nullptr) const = 0;

  virtual std::string arch() const = 0;         // "groupmamba" or "simba"
  virtual std::string config_json() const = 0;  // {"arch": ..., constructor arguments}; see make_vision_model_from_config
  virtual int64_t in_chans() const = 0;
  virtual int64_t num_classes() const = 0;

  // In eval mode with no gradient recorded, a batch runs in slices of about 224*224 pixels (one ImageNet image,
  // 49 images of 32x32) so that each slice's activations stay in cache; every layer is per-sample in eval mode,
  // so the result is the same. 0 disables slicing.
  int64_t slice_pixels = 224 * 224;

  std::string name;            // factory name ("groupmamba-micro", ...), empty when built from a config
  int64_t image_size = 224;    // the input side length the configuration was made for
  double crop_pct = 0.875;     // the eval transform's resize ratio (GroupMamba 0.875, SiMBA 0.96)
};

// Runs f on slices of the batch as VisionModel::slice_pixels says (when `slice` is true), concatenating the
// outputs and the trace along the batch. For implementations of VisionModel::forward.
core::Var forward_in_slices(const core::Var& image, VisionTrace* trace, int64_t slice_pixels, bool slice,
                            const std::function<core::Var(const core::Var&, VisionTrace*)>& f);

struct VisionModelOptions {
  int64_t num_classes = 0;                // 0: the name's default (1000; 10 for the micro models)
  int64_t in_chans = 0;                   // 0: the name's default (3; 1 for the micro models)
  std::optional<double> drop_path_rate;   // default: the name's (0 for the ImageNet configs, 0.05 micro)
  core::Rng* rng = nullptr;               // initialization and drop-path draws; nullptr: core::global_rng()
  bool initialize = true;                 // false: skip the official re-initialization (weights will be loaded)
};

// Builds a fresh model. Throws Error naming the unknown name and listing the known ones.
std::shared_ptr<VisionModel> make_vision_model(const std::string& name, const VisionModelOptions& options = {});
// The names make_vision_model knows.
std::vector<std::string> vision_model_names();
// Rebuilds a model from VisionModel::config_json() (options.num_classes / in_chans / drop_path_rate, when
// given, override the stored values; the rng is used as above).
std::shared_ptr<VisionModel> make_vision_model_from_config(const std::string& config_json,
                                                           const VisionModelOptions& options = {});

}  // namespace ssmkit::vision
