// Classifier files: loading (our model files, our training checkpoints, converted official safetensors, official
// .pth files read natively), saving with metadata, batched softmax prediction, top-k, and evaluation.
// The weights file is recognised by its first bytes, not its name: "PK\3\4" is a zip .pth, 0x80 a legacy
// pickle .pth, an 8-byte length followed by '{' a safetensors file.
// Not here: training (classifier_train.cpp).
#include "ssmkit/vision/classifier.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <set>

#include "ssmkit/core/io/pytorch_checkpoint.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/train/trainer.h"

namespace ssmkit::vision {

using core::Tensor;
using nlohmann::json;

std::vector<std::string> read_label_file(const std::string& path) {
  std::ifstream in(path);
  SSMKIT_CHECK(in.good(), path, ": cannot open (", std::strerror(errno),
               "); expected a text file with one class name per line");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  SSMKIT_CHECK(!out.empty(), path, ": no class names; expected one name per line");
  return out;
}

namespace {

// Restores a module's train/eval mode when it goes out of scope.
struct ModeGuard {
  core::Module& m;
  bool was;
  explicit ModeGuard(core::Module& mod, bool training) : m(mod), was(mod.training()) { m.train(training); }
  ~ModeGuard() { m.train(was); }
};

std::string sniff_weights(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SSMKIT_CHECK(in.good(), path, ": cannot open (", std::strerror(errno), ")");
  unsigned char head[9] = {0};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const std::streamsize n = in.gcount();
  SSMKIT_CHECK(n > 0, path, ": empty file; expected model weights (.safetensors or .pth)");
  if (n >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return "pth";
  if (head[0] == 0x80) return "pth";
  if (n == 9 && head[8] == '{') return "safetensors";
  throw core::Error(path +
                    ": not a safetensors file nor a PyTorch checkpoint (unrecognised first bytes); expected "
                    "model weights (.safetensors from ssm-classify train or ssm-convert, or a torch.save .pth)");
}

json parse_meta_json(const core::SafetensorsFile& f, const std::string& key) {
  try {
    return json::parse(f.meta(key));
  } catch (const json::exception& e) {
    throw core::Error(f.path + ": metadata \"" + key + "\" is not valid JSON (" + e.what() + ")");
  }
}

// Loads tensors into the model strictly. When most keys do not match, says so in one line (another model's
// file) instead of listing hundreds of missing keys.
void load_weights(VisionModel& m, const core::NamedTensors& tensors, const std::string& path, const std::string& name) {
  std::set<std::string> have;
  for (const auto& kv : tensors) have.insert(kv.first);
  int64_t found = 0, total = 0;
  std::string first_missing;
  for (const auto& kv : m.state_dict()) {
    ++total;
    if (have.count(kv.first)) ++found;
    else if (first_missing.empty()) first_missing = kv.first;
  }
  SSMKIT_CHECK(2 * found >= total, path, ": only ", found, " of the ", total, " tensors of ", name,
               " are in the file (first missing: ", first_missing, "; the file has ", tensors.size(),
               " tensors, the first ", tensors.empty() ? std::string("-") : tensors.front().first,
               "); expected the weights of ", name, " (is it another model's file?)");
  m.load_state_dict(tensors, true, path);
}

// Official weights: builds the named model with the head/stem sizes the tensors have (a fine-tuned head of
// 10 classes, a 1-channel stem) and loads them strictly.
std::shared_ptr<VisionModel> model_for_official(const std::string& name, const core::NamedTensors& tensors,
                                                const std::string& path) {
  SSMKIT_CHECK(!name.empty(), path,
               ": the file has no ssmkit metadata, so the model cannot be rebuilt from it; expected "
               "--model NAME (one of groupmamba-t, groupmamba-s, groupmamba-b, simba-s, ...)");
  VisionModelOptions o;
  o.initialize = false;
  for (const auto& [k, t] : tensors) {
    if (k == "head.weight" && t.ndim() == 2) o.num_classes = t.size(0);
    if (k == "patch_embed1.conv.0.weight" && t.ndim() == 4) o.in_chans = t.size(1);
  }
  auto m = make_vision_model(name, o);
  load_weights(*m, tensors, path, name);
  return m;
}

}  // namespace

Classifier load_classifier(const std::string& model_name, const std::string& weights, const std::string& labels_file,
                           bool prefer_ema, bool opaque_objects) {
  Classifier c;
  c.weights = weights;
  std::vector<std::string> file_labels;
  std::string pre_json;
  const std::string kind = sniff_weights(weights);
  if (kind == "pth") {
    core::PthOptions po;
    po.prefer_ema = prefer_ema;
    po.strip_prefixes = {"module."};
    po.opaque_objects = opaque_objects;
    core::PthFile f = core::load_pytorch_checkpoint(weights, po);
    c.source = "PyTorch " + f.format + " .pth, state dict " +
               (f.selected.empty() ? "at the top level" : "'" + f.selected + "'");
    c.model = model_for_official(model_name, f.tensors, weights);
    c.model_name = model_name;
  } else {
    core::SafetensorsFile f = core::load_safetensors(weights);
    const std::string format = f.meta_or("format", "");
    if (format == kClassifierFormat || format == core::kCheckpointFormat) {
      const bool train_ckpt = format == core::kCheckpointFormat;
      const std::string version = f.meta_or("format_version", "");
      SSMKIT_CHECK(version == kClassifierFormatVersion, weights, ": format_version \"", version,
                   "\" is not supported; expected \"", kClassifierFormatVersion, "\" (written by a newer ssmkit?)");
      std::string name, config;
      json labels;
      if (!train_ckpt) {
        SSMKIT_CHECK(f.has_meta("model") && f.has_meta("config"), weights,
                     ": ssmkit model file without \"model\" or \"config\" metadata; expected both (was it written by "
                     "ssm-classify train?)");
        name = f.meta("model");
        config = f.meta("config");
        if (f.has_meta("preprocessing")) pre_json = f.meta("preprocessing");
        if (f.has_meta("labels")) labels = parse_meta_json(f, "labels");
        if (f.has_meta("training")) c.training = parse_meta_json(f, "training");
        c.source = "ssmkit model file";
      } else {
        const json st = parse_meta_json(f, "trainer_state");
        const json cfg = st.value("config", json::object());
        SSMKIT_CHECK(cfg.contains("model") && cfg.contains("model_config"), weights,
                     ": training checkpoint without the classifier's model/model_config; expected one written by "
                     "ssm-classify train");
        name = cfg["model"].get<std::string>();
        config = cfg["model_config"].is_string() ? cfg["model_config"].get<std::string>() : cfg["model_config"].dump();
        if (cfg.contains("preprocessing")) pre_json = cfg["preprocessing"].dump();
        if (cfg.contains("labels")) labels = cfg["labels"];
        c.source = "ssmkit training checkpoint (epoch " + std::to_string(st.value("epoch", int64_t{0})) + ")";
      }
      SSMKIT_CHECK(model_name.empty() || model_name == name, weights, ": holds a ", name, " model, not ", model_name,
                   " (leave out --model to use the file's)");
      VisionModelOptions o;
      o.initialize = false;
      try {
        c.model = make_vision_model_from_config(config, o);
      } catch (const core::Error& e) {
        throw core::Error(weights + ": bad model config in the metadata (" + e.what() + ")");
      }
      c.model->name = name;
      c.model_name = name;
      if (labels.is_array())
        for (const auto& l : labels) file_labels.push_back(l.is_string() ? l.get<std::string>() : l.dump());
      core::NamedTensors tensors;
      for (const auto& [k, t] : f.tensors)
        if (!train_ckpt || k.rfind("optim.", 0) != 0) tensors.emplace_back(k, t);
      load_weights(*c.model, tensors, weights, name);
    } else {
      c.source = "safetensors with official keys" + (format.empty() ? std::string() : " (format \"" + format + "\")");
      core::NamedTensors tensors = core::strip_key_prefix(f.tensors, "module.", weights);
      c.model = model_for_official(model_name, tensors, weights);
      c.model_name = model_name;
    }
  }
  c.model->eval();
  const int64_t K = c.model->num_classes();
  if (!pre_json.empty()) {
    try {
      c.preprocess = Preprocess::from_json(pre_json);
    } catch (const core::Error& e) {
      throw core::Error(weights + ": bad \"preprocessing\" metadata (" + e.what() + ")");
    }
  } else {
    c.preprocess = default_preprocess(*c.model);
  }
  SSMKIT_CHECK(c.preprocess.channels == c.model->in_chans(), weights, ": preprocessing gives ", c.preprocess.channels,
               " channels but the model takes ", c.model->in_chans());
  if (!labels_file.empty()) {
    c.labels = read_label_file(labels_file);
    SSMKIT_CHECK(static_cast<int64_t>(c.labels.size()) == K, labels_file, ": ", c.labels.size(),
                 " class names; expected ", K, " (one per class of the model in ", weights, ")");
  } else if (!file_labels.empty()) {
    c.labels = file_labels;
    SSMKIT_CHECK(static_cast<int64_t>(c.labels.size()) == K, weights, ": ", c.labels.size(),
                 " labels in the metadata for ", K, " classes");
  } else if (K == 1000) {
    c.labels = imagenet_class_names();
  } else {
    for (int64_t k = 0; k < K; ++k) c.labels.push_back(std::to_string(k));
  }
  return c;
}

void save_classifier(const std::string& path, const VisionModel& model, const std::string& model_name,
                     const Preprocess& p, const std::vector<std::string>& labels, const json& training) {
  p.validate();
  SSMKIT_CHECK(static_cast<int64_t>(labels.size()) == model.num_classes(), path, ": ", labels.size(),
               " labels for a model of ", model.num_classes(), " classes");
  const core::Metadata meta = {
      {"format", kClassifierFormat},   {"format_version", kClassifierFormatVersion},
      {"model", model_name},           {"ssmkit_version", kSsmkitVersion},
      {"config", model.config_json()}, {"preprocessing", p.to_json()},
      {"labels", json(labels).dump()}, {"training", training.is_null() ? "{}" : training.dump()}};
  core::save_module(path, model, meta);
}

Tensor predict_probabilities(const VisionModel& model, const Tensor& batch) {
  SSMKIT_CHECK(batch.ndim() == 4 && batch.size(1) == model.in_chans() && batch.dtype() == core::DType::F32,
               "predict_probabilities: expected an F32 batch (B,", model.in_chans(), ",S,S), got ",
               core::dtype_name(batch.dtype()), " ", core::shape_str(batch.shape()));
  SSMKIT_CHECK(!model.training(), "predict_probabilities: the model is in training mode; call eval() first");
  core::NoGradGuard ng;
  return core::softmax(model.forward(core::Var(batch)), 1).value().contiguous();
}

std::vector<TopK> top_k(const Tensor& probs, int64_t k) {
  SSMKIT_CHECK(probs.ndim() == 2, "top_k: expected probabilities (B,K), got ", core::shape_str(probs.shape()));
  const int64_t B = probs.size(0), K = probs.size(1);
  k = std::clamp<int64_t>(k, 1, K);
  const std::vector<double> p = probs.to_double_vector();
  std::vector<TopK> out(static_cast<size_t>(B));
  std::vector<int64_t> order(static_cast<size_t>(K));
  for (int64_t b = 0; b < B; ++b) {
    std::iota(order.begin(), order.end(), 0);
    const double* row = p.data() + b * K;
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t i, int64_t j) { return row[i] > row[j] || (row[i] == row[j] && i < j); });
    for (int64_t i = 0; i < k; ++i) {
      out[static_cast<size_t>(b)].index.push_back(order[static_cast<size_t>(i)]);
      out[static_cast<size_t>(b)].prob.push_back(row[order[static_cast<size_t>(i)]]);
    }
  }
  return out;
}

std::vector<double> EvalResult::per_class_accuracy() const {
  std::vector<double> out(static_cast<size_t>(k), std::numeric_limits<double>::quiet_NaN());
  for (int64_t t = 0; t < k; ++t) {
    int64_t row = 0;
    for (int64_t q = 0; q < k; ++q) row += confusion[static_cast<size_t>(t * k + q)];
    if (row > 0)
      out[static_cast<size_t>(t)] =
          static_cast<double>(confusion[static_cast<size_t>(t * k + t)]) / static_cast<double>(row);
  }
  return out;
}

std::vector<int64_t> EvalResult::per_class_count() const {
  std::vector<int64_t> out(static_cast<size_t>(k), 0);
  for (int64_t t = 0; t < k; ++t)
    for (int64_t q = 0; q < k; ++q) out[static_cast<size_t>(t)] += confusion[static_cast<size_t>(t * k + q)];
  return out;
}

EvalResult evaluate_classifier(VisionModel& model, const ImageDataset& d, const Preprocess& p, int64_t batch,
                               const std::function<void(int64_t, int64_t)>& progress) {
  SSMKIT_CHECK(batch > 0, "evaluate_classifier: batch must be positive, got ", batch);
  const int64_t K = model.num_classes();
  SSMKIT_CHECK(d.num_classes() <= K, d.origin, ": ", d.num_classes(), " classes but the model has ", K,
               " outputs; expected a set with the model's classes");
  ModeGuard mode(model, false);
  core::NoGradGuard ng;
  EvalResult r;
  r.k = K;
  r.confusion.assign(static_cast<size_t>(K * K), 0);
  std::vector<int64_t> idx;
  const int64_t* labels = d.labels.data<int64_t>();
  for (int64_t b0 = 0; b0 < d.size(); b0 += batch) {
    const int64_t B = std::min(batch, d.size() - b0);
    idx.resize(static_cast<size_t>(B));
    std::iota(idx.begin(), idx.end(), b0);
    const Tensor logits = model.forward(core::Var(gather_batch(d, idx.data(), B, p))).value().contiguous();
    const float* lg = logits.data<float>();
    for (int64_t i = 0; i < B; ++i) {
      const float* row = lg + i * K;
      const int64_t pred = std::max_element(row, row + K) - row;
      const int64_t y = labels[b0 + i];
      double m = row[0];
      for (int64_t q = 1; q < K; ++q) m = std::max(m, static_cast<double>(row[q]));
      double s = 0;
      for (int64_t q = 0; q < K; ++q) s += std::exp(static_cast<double>(row[q]) - m);
      r.loss_sum += m + std::log(s) - static_cast<double>(row[y]);
      r.correct += pred == y;
      ++r.confusion[static_cast<size_t>(y * K + pred)];
      ++r.n;
    }
    if (progress) progress(b0 + B, d.size());
  }
  return r;
}

}  // namespace ssmkit::vision
