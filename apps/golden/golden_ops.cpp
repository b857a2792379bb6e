// The table of ops ssmkit-golden knows, and small helpers shared by the handlers.
#include "golden_case.h"
#include "vision_ops.h"

namespace ssmkit::golden {

const std::vector<OpEntry>& known_ops() {
  static const std::vector<OpEntry> ops = {
      {"selective_scan", run_selective_scan, false},
      {"s4d_kernel", run_s4d_kernel, false},
      {"fftconv", run_fftconv, false},
      {"cross_scan_merge", run_cross_scan_merge, false},
      {"mamba_block", run_mamba_block, false},
  };
#ifdef SSMKIT_GOLDEN_WITH_VISION
  static const std::vector<OpEntry> all = [] {
    std::vector<OpEntry> v = ops;
    v.insert(v.end(), vision_ops().begin(), vision_ops().end());
    return v;
  }();
  return all;
#else
  return ops;
#endif
}

bool meta_flag(const core::SafetensorsFile& f, const std::string& key, bool fallback) {
  if (!f.has_meta(key)) return fallback;
  const std::string& v = f.meta(key);
  SSMKIT_CHECK(v == "true" || v == "false" || v == "True" || v == "False", f.path, ": metadata ", key,
               " is \"", v, "\", expected true or false");
  return v == "true" || v == "True";
}

core::Tensor optional_tensor(const core::SafetensorsFile& f, const std::string& name) {
  return f.has(name) ? f.get(name) : core::Tensor{};
}

}  // namespace ssmkit::golden
