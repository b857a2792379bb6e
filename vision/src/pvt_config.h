// Private: the configuration fields GroupMamba and SiMBA share, both being the PVT-v2 scaffold (a convolutional
// stem of stem_hidden_dim channels, four stages of embed_dims / depths / mlp_ratios, drop_path_rate, the
// LayerNorm eps): their common checks and their JSON in the official constructors' argument names, plus
// "arch" and "num_stages". Each config adds its own fields and per-stage checks through a callback; `name`
// ("GroupMambaConfig") starts every message.
#pragma once

#include <cstddef>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include "ssmkit/core/error.h"

namespace ssmkit::vision::detail {

// The micro configurations' scaffold, the same for both models (model card: models/README.md): 1 input channel
// (28x28 gray images zero-padded to 32x32), 10 classes, stem 16, dims [32, 64, 128, 160], depths [1, 1, 2, 1],
// MLP ratio 4, drop path 0.05.
template <class Cfg>
void set_micro_scaffold(Cfg& c) {
  c.in_chans = 1;
  c.num_classes = 10;
  c.stem_hidden_dim = 16;
  c.embed_dims = {32, 64, 128, 160};
  c.mlp_ratios = {4, 4, 4, 4};
  c.depths = {1, 1, 2, 1};
  c.drop_path_rate = 0.05;
}

// Throws Error for a bad shared field; stage_check(i) runs the config's own checks of stage i first.
template <class Cfg, class StageCheck>
void validate_pvt_fields(const Cfg& c, const char* name, StageCheck&& stage_check) {
  SSMKIT_CHECK(c.embed_dims.size() == 4 && c.depths.size() == 4 && c.mlp_ratios.size() == 4, name,
               ": embed_dims, depths and mlp_ratios need 4 entries (4 stages), got ", c.embed_dims.size(), ", ",
               c.depths.size(), ", ", c.mlp_ratios.size());
  SSMKIT_CHECK(c.in_chans > 0 && c.num_classes > 0 && c.stem_hidden_dim > 0, name, ": in_chans ", c.in_chans,
               ", num_classes ", c.num_classes, " and stem_hidden_dim ", c.stem_hidden_dim, " must be positive");
  for (size_t i = 0; i < 4; ++i) {
    stage_check(i);
    SSMKIT_CHECK(c.depths[i] >= 0, name, ": depths[", i, "] = ", c.depths[i], " is negative");
  }
  SSMKIT_CHECK(c.drop_path_rate >= 0 && c.drop_path_rate < 1, name, ": drop_path_rate ", c.drop_path_rate,
               " outside [0, 1)");
  SSMKIT_CHECK(c.norm_eps > 0, name, ": norm_layer eps ", c.norm_eps, " must be positive");
}

// The shared fields as JSON, with "arch" and "num_stages" (the caller adds its own and dumps).
template <class Cfg>
nlohmann::json pvt_fields_to_json(const Cfg& c, const char* arch) {
  nlohmann::json j;
  j["arch"] = arch;
  j["in_chans"] = c.in_chans;
  j["num_classes"] = c.num_classes;
  j["stem_hidden_dim"] = c.stem_hidden_dim;
  j["embed_dims"] = c.embed_dims;
  j["mlp_ratios"] = c.mlp_ratios;
  j["depths"] = c.depths;
  j["num_stages"] = 4;
  j["drop_path_rate"] = c.drop_path_rate;
  j["norm_layer"] = {{"type", "LayerNorm"}, {"eps", c.norm_eps}};
  return j;
}

// Parses `text` into a Cfg (absent fields keep Cfg's defaults): the shared fields here, the config's own through
// read_own(j, c); then c.validate(). Errors name the config: not JSON, not an object, another arch, a field of
// the wrong type.
template <class Cfg, class ReadOwn>
Cfg pvt_config_from_json(const std::string& text, const char* name, const char* arch, ReadOwn&& read_own) {
  using json = nlohmann::json;
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    throw core::Error(std::string(name) + ": config is not valid JSON (" + e.what() + ")");
  }
  SSMKIT_CHECK(j.is_object(), name, ": config must be a JSON object");
  Cfg c;
  try {
    if (j.contains("arch"))
      SSMKIT_CHECK(j["arch"] == arch, name, ": config is for arch ", j["arch"].dump(), ", not ", arch);
    if (j.contains("num_stages"))
      SSMKIT_CHECK(j["num_stages"].get<int64_t>() == 4, name, ": num_stages must be 4, got ", j["num_stages"].dump());
    c.in_chans = j.value("in_chans", c.in_chans);
    c.num_classes = j.value("num_classes", c.num_classes);
    c.stem_hidden_dim = j.value("stem_hidden_dim", c.stem_hidden_dim);
    c.embed_dims = j.value("embed_dims", c.embed_dims);
    c.mlp_ratios = j.value("mlp_ratios", c.mlp_ratios);
    c.depths = j.value("depths", c.depths);
    c.drop_path_rate = j.value("drop_path_rate", c.drop_path_rate);
    read_own(j, c);
    if (j.contains("norm_layer")) {
      const json& nl = j["norm_layer"];
      SSMKIT_CHECK(nl.value("type", std::string("LayerNorm")) == "LayerNorm", name,
                   ": norm_layer must be LayerNorm, got ", nl.dump());
      c.norm_eps = nl.value("eps", 1e-5);
    }
  } catch (const json::exception& e) {
    throw core::Error(std::string(name) + ": config field has the wrong type (" + e.what() + ")");
  }
  c.validate();
  return c;
}

}  // namespace ssmkit::vision::detail
