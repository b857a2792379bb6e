// The vision model factory: names -> configurations (groupmamba.h and simba.h list them), options applied,
// and rebuilding from a checkpoint's config JSON.
#include "ssmkit/vision/model.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "ssmkit/core/ops/shape.h"

#include "ssmkit/vision/groupmamba.h"
#include "ssmkit/vision/simba.h"

namespace ssmkit::vision {

namespace {

template <class Cfg>
void apply_options(Cfg& c, const VisionModelOptions& o) {
  SSMKIT_CHECK(o.num_classes >= 0 && o.in_chans >= 0, "make_vision_model: num_classes ", o.num_classes,
               " and in_chans ", o.in_chans, " must not be negative (0 keeps the default)");
  if (o.num_classes > 0) c.num_classes = o.num_classes;
  if (o.in_chans > 0) c.in_chans = o.in_chans;
  if (o.drop_path_rate) c.drop_path_rate = *o.drop_path_rate;
}

core::Rng& rng_of(const VisionModelOptions& o) { return o.rng ? *o.rng : core::global_rng(); }

std::shared_ptr<VisionModel> build(const GroupMambaConfig& c, const VisionModelOptions& o) {
  return std::make_shared<GroupMamba>(c, rng_of(o), o.initialize);
}
std::shared_ptr<VisionModel> build(const SimbaConfig& c, const VisionModelOptions& o) {
  return std::make_shared<SiMBA>(c, rng_of(o), o.initialize);
}

SimbaConfig with_mlp(SimbaConfig c) {
  c.mixer = SimbaMixer::MLP;
  return c;
}

}  // namespace

core::Var forward_in_slices(const core::Var& image, VisionTrace* trace, int64_t slice_pixels, bool slice,
                            const std::function<core::Var(const core::Var&, VisionTrace*)>& f) {
  const int64_t B = image.ndim() == 4 ? image.size(0) : 1;
  const int64_t pixels = image.ndim() == 4 ? image.size(2) * image.size(3) : 1;
  const int64_t per = slice_pixels > 0 ? std::max<int64_t>(1, slice_pixels / std::max<int64_t>(1, pixels)) : B;
  if (!slice || core::grad_enabled() || per >= B) return f(image, trace);
  std::vector<core::Var> outs, stem, stage1, stage4, features;
  for (int64_t b0 = 0; b0 < B; b0 += per) {
    VisionTrace t;
    outs.push_back(f(core::slice(image, 0, b0, std::min(B, b0 + per)), trace ? &t : nullptr));
    if (trace) {
      stem.push_back(t.stem);
      stage1.push_back(t.stage1);
      stage4.push_back(t.stage4_tokens);
      features.push_back(t.features);
    }
  }
  if (trace) {
    auto cat = [](const std::vector<core::Var>& v) { return v.front().defined() ? core::concat(v, 0) : core::Var{}; };
    trace->stem = cat(stem);
    trace->stage1 = cat(stage1);
    trace->stage4_tokens = cat(stage4);
    trace->features = cat(features);
  }
  return core::concat(outs, 0);
}

std::vector<std::string> vision_model_names() {
  return {"groupmamba-t", "groupmamba-s", "groupmamba-b", "groupmamba-micro", "simba-s",   "simba-b",
          "simba-l",      "simba-s-mlp",  "simba-b-mlp",  "simba-l-mlp",      "simba-micro"};
}

std::shared_ptr<VisionModel> make_vision_model(const std::string& name, const VisionModelOptions& o) {
  std::shared_ptr<VisionModel> m;
  int64_t size = 224;
  auto gm = [&](GroupMambaConfig c) {
    apply_options(c, o);
    m = build(c, o);
  };
  auto sb = [&](SimbaConfig c) {
    apply_options(c, o);
    m = build(c, o);
  };
  if (name == "groupmamba-t") gm(GroupMambaConfig::tiny());
  else if (name == "groupmamba-s") gm(GroupMambaConfig::small());
  else if (name == "groupmamba-b") gm(GroupMambaConfig::base());
  else if (name == "groupmamba-micro") gm(GroupMambaConfig::micro()), size = 32;
  else if (name == "simba-s") sb(SimbaConfig::s());
  else if (name == "simba-b") sb(SimbaConfig::b());
  else if (name == "simba-l") sb(SimbaConfig::l());
  else if (name == "simba-s-mlp") sb(with_mlp(SimbaConfig::s()));
  else if (name == "simba-b-mlp") sb(with_mlp(SimbaConfig::b()));
  else if (name == "simba-l-mlp") sb(with_mlp(SimbaConfig::l()));
  else if (name == "simba-micro") sb(SimbaConfig::micro()), size = 32;
  else {
    std::string known;
    for (const auto& n : vision_model_names()) known += (known.empty() ? "" : ", ") + n;
    throw core::Error("make_vision_model: unknown model \"" + name + "\"; expected one of " + known);
  }
  m->name = name;
  m->image_size = size;
  return m;
}

std::shared_ptr<VisionModel> make_vision_model_from_config(const std::string& config_json,
                                                           const VisionModelOptions& o) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_json);
  } catch (const std::exception& e) {
    throw core::Error(std::string("make_vision_model_from_config: config is not valid JSON (") + e.what() + ")");
  }
  SSMKIT_CHECK(j.is_object() && j.contains("arch") && j["arch"].is_string(),
               "make_vision_model_from_config: config has no \"arch\" (expected \"groupmamba\" or \"simba\")");
  const std::string arch = j["arch"].get<std::string>();
  std::shared_ptr<VisionModel> m;
  if (arch == "groupmamba") {
    GroupMambaConfig c = GroupMambaConfig::from_json(config_json);
    apply_options(c, o);
    m = build(c, o);
  } else if (arch == "simba") {
    SimbaConfig c = SimbaConfig::from_json(config_json);
    apply_options(c, o);
    m = build(c, o);
  } else {
    throw core::Error("make_vision_model_from_config: unknown arch \"" + arch + "\"; expected groupmamba or simba");
  }
  m->image_size = j.value("image_size", int64_t{224});
  return m;
}

}  // namespace ssmkit::vision
