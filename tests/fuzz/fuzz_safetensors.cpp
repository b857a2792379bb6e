// libFuzzer entry point for the safetensors reader: any input must either parse or throw Error;
// a clean parse is read back to the last element so ASan sees every tensor byte.
// Build: -DSSMKIT_BUILD_FUZZ=ON with clang (tests/fuzz/CMakeLists.txt); run with the golden files as seeds:
//   ./fuzz_safetensors -max_total_time=60 corpus/ ../shared/golden/core
#include <cstddef>
#include <cstdint>

#include "ssmkit/core/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ssmkit::core;
  try {
    SafetensorsFile f = parse_safetensors(data, size, "fuzz");
    for (const auto& kv : f.tensors) (void)kv.second.to_double_vector();
  } catch (const Error&) {
  }
  return 0;
}
