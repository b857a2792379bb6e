// Golden handlers for ops "groupmamba", "simba_einfft", "simba_mlp" (../shared/golden/README.md, "Cases in
// models/"): the official class's constructor arguments come from the `config` metadata, the weights from
// param.<state_dict key> (loaded strictly: a missing, extra or mis-shaped key fails the case), the input from
// in.image; the hooks are read from vision::VisionTrace. Compiled empty unless SSMKIT_GOLDEN_WITH_VISION.
#include "vision_ops.h"

#ifdef SSMKIT_GOLDEN_WITH_VISION

#include <nlohmann/json.hpp>

#include "ssmkit/vision/model.h"

namespace ssmkit::golden {

Results run_vision_model(const core::SafetensorsFile& f) {
  const std::string op = f.meta("op");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(f.meta("config"));
  } catch (const std::exception& e) {
    throw core::Error(f.path + ": metadata config is not valid JSON (" + e.what() + ")");
  }
  cfg["arch"] = op == "groupmamba" ? "groupmamba" : "simba";
  if (op == "simba_einfft" || op == "simba_mlp") cfg["cm_type"] = op == "simba_einfft" ? "einfft" : "mlp";
  vision::VisionModelOptions opt;
  opt.initialize = false;  // every value is loaded below
  auto model = vision::make_vision_model_from_config(cfg.dump(), opt);
  core::NamedTensors params;
  for (const auto& [name, t] : f.tensors) {
    if (name.rfind("param.", 0) != 0) continue;
    // BatchNorm's num_batches_tracked is stored as I64 (1); the module's buffer is the scalar () of PyTorch
    const bool scalar = t.dtype() == core::DType::I64 && t.numel() == 1 && t.ndim() == 1;
    params.emplace_back(name.substr(6), scalar ? t.reshape({}) : t);
  }
  model->load_state_dict(params, true, f.path);
  model->eval();
  core::NoGradGuard no_grad;
  vision::VisionTrace trace;
  core::Var logits = model->forward(core::Var(f.get("in.image")), &trace);
  Results r{{"out.logits", logits.value()}};
  if (trace.stem.defined()) r["out.stem"] = trace.stem.value();
  if (trace.stage1.defined()) r["out.stage1"] = trace.stage1.value();
  if (trace.stage4_tokens.defined()) r["out.stage4_tokens"] = trace.stage4_tokens.value();
  if (trace.features.defined()) r["out.features"] = trace.features.value();
  return r;
}

const std::vector<OpEntry>& vision_ops() {
  static const std::vector<OpEntry> ops = {
      {"groupmamba", run_vision_model, true},
      {"simba_einfft", run_vision_model, true},
      {"simba_mlp", run_vision_model, true},
  };
  return ops;
}

}  // namespace ssmkit::golden

#endif  // SSMKIT_GOLDEN_WITH_VISION
