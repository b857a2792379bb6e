// The golden contract (../shared/golden/README.md): one handler per `op` in a file's metadata.
// A handler reads the case's `in.*` / `param.*` / `gout.*` tensors and flags, runs ssmkit's
// implementation and returns every output as "out.<name>" and every gradient as "grad.<name>"
// (d loss / d input, loss = sum_k sum out_k * gout_k). The runner compares them with the file.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::golden {

using Results = std::map<std::string, core::Tensor>;
using Handler = std::function<Results(const core::SafetensorsFile&)>;

struct OpEntry {
  const char* op;
  Handler run;
  bool is_model;  // whole networks: tolerance 1e-3 (README "Tolerance for models/")
};

// Every op the runner knows; the table lives in golden_ops.cpp.
const std::vector<OpEntry>& known_ops();

// Handlers (one file each).
Results run_selective_scan(const core::SafetensorsFile& f);
Results run_s4d_kernel(const core::SafetensorsFile& f);
Results run_fftconv(const core::SafetensorsFile& f);
Results run_cross_scan_merge(const core::SafetensorsFile& f);
Results run_mamba_block(const core::SafetensorsFile& f);

// Reads a "true"/"false" metadata flag; absent = fallback.
bool meta_flag(const core::SafetensorsFile& f, const std::string& key, bool fallback);
// The case's input, or an undefined tensor when absent.
core::Tensor optional_tensor(const core::SafetensorsFile& f, const std::string& name);

}  // namespace ssmkit::golden
