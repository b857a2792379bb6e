// Classifier files and their use: a vision model together with its preprocessing and class names, loaded from
// our model files (docs/conventions.md: format ssmkit.checkpoint with config/preprocessing/labels metadata), from
// our training checkpoints, from converted official safetensors or natively from official PyTorch .pth files
// (core/io/pytorch_checkpoint.h: {'model': ...} / 'model_ema' / flat, 'module.' stripped, keys strict), and
// saved with the full metadata; batched prediction (softmax probabilities, top-k) and evaluation (accuracy,
// per-class accuracy, confusion matrix, mean cross-entropy).
// Not here: training (classifier_train.h), drawing (confusion_plot.h), decoding (image_io.h).
// Shapes: B batch, C channels, S x S input, K classes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssmkit/core/tensor.h"
#include "ssmkit/vision/image_dataset.h"
#include "ssmkit/vision/model.h"
#include "ssmkit/vision/preprocess.h"

namespace ssmkit::vision {

inline constexpr const char* kClassifierFormat = "ssmkit.checkpoint";
inline constexpr const char* kClassifierFormatVersion = "1";
inline constexpr const char* kSsmkitVersion = "0.1.0";  // project(ssmkit VERSION ...) in CMakeLists.txt

struct Classifier {
  std::shared_ptr<VisionModel> model;  // in eval mode after load_classifier
  std::string model_name;              // factory name ("groupmamba-micro", ...)
  Preprocess preprocess;
  std::vector<std::string> labels;  // one per class
  std::string weights;              // the file the weights came from ("" = fresh initialization)
  std::string source;       // how they were read, for logs: "ssmkit model file", "PyTorch zip .pth, 'model_ema'", ...
  nlohmann::json training;  // the file's training metadata (null when none)
};

// The 1000 ImageNet-1k class names in the standard ILSVRC-2012 index order ("tench" ... "toilet tissue"),
// compiled in (the list of ../shared/data/vision/imagenet_labels, from pytorch/hub's imagenet_classes.txt).
std::vector<std::string> imagenet_class_names();
// Class names from a text file, one per line (trailing empty lines ignored). Error names the file.
std::vector<std::string> read_label_file(const std::string& path);

// Loads a classifier. `weights` is sniffed by content: safetensors (our model file or training checkpoint,
// whose metadata rebuild the model; otherwise official keys, `model_name` required), or a PyTorch .pth
// (zip or legacy; the EMA copy is taken when the file has one and prefer_ema; `model_name` required; other
// objects in the file, such as a training run's config, are refused unless opaque_objects, see
// core/io/pytorch_checkpoint.h). `model_name` may be empty for our files; when given it must match theirs.
// Labels: `labels_file` when given, else the file's, else the ImageNet names for 1000 classes, else
// "0".."K-1". Errors name the file.
Classifier load_classifier(const std::string& model_name, const std::string& weights, const std::string& labels_file = "",
                           bool prefer_ema = true, bool opaque_objects = false);

// Writes a model file atomically: the state_dict plus metadata format, format_version, model, ssmkit_version,
// config (model.config_json()), preprocessing (p.to_json()), labels (JSON array), training (JSON object).
void save_classifier(const std::string& path, const VisionModel& model, const std::string& model_name,
                     const Preprocess& p, const std::vector<std::string>& labels, const nlohmann::json& training);

// batch (B,C,S,S) F32 normalised -> probabilities (B,K) F32: softmax of the eval-mode scores (no gradient).
core::Tensor predict_probabilities(const VisionModel& model, const core::Tensor& batch);

struct TopK {
  std::vector<int64_t> index;  // classes, most probable first (ties: lower index first)
  std::vector<double> prob;
};
// probs (B,K) -> per row the k most probable classes (k clipped to K).
std::vector<TopK> top_k(const core::Tensor& probs, int64_t k);

struct EvalResult {
  int64_t n = 0, correct = 0, k = 0;
  std::vector<int64_t> confusion;  // (K,K) row-major: row = true class, column = predicted class
  double loss_sum = 0.0;           // sum of per-sample cross-entropy (no smoothing)
  double accuracy() const { return n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : 0.0; }
  double mean_loss() const { return n > 0 ? loss_sum / static_cast<double>(n) : 0.0; }
  std::vector<double> per_class_accuracy() const;  // (K); NaN for a class with no sample
  std::vector<int64_t> per_class_count() const;    // (K)
};

// Runs the model in eval mode (restoring its mode afterwards) over the whole set in batches of `batch`.
// progress(done, total) after each batch when given.
EvalResult evaluate_classifier(VisionModel& model, const ImageDataset& d, const Preprocess& p, int64_t batch = 256,
                               const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace ssmkit::vision
