// libFuzzer entry point for the PyTorch checkpoint reader (zip + legacy formats, restricted unpickler):
// any input must either parse or throw Error. The first byte picks the options (CRC checks off most of
// the time so that mutations reach the unpickler; strict or opaque globals; EMA preference); a clean
// parse is read back to the last element so ASan sees every tensor byte.
// Build: -DSSMKIT_BUILD_FUZZ=ON with clang (tests/fuzz/CMakeLists.txt); seeds: the fixture files, e.g.
//   ./fuzz_pytorch_checkpoint -max_total_time=60 corpus/ ../tests/data/pytorch ../../shared/golden/models
#include <cstddef>
#include <cstdint>

#include "ssmkit/core/io/pytorch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ssmkit::core;
  if (size == 0) return 0;
  PthOptions o;
  o.verify_crc = (data[0] & 3) == 0;
  o.opaque_objects = data[0] & 4;
  o.prefer_ema = data[0] & 8;
  if (data[0] & 16) o.strip_prefixes = {"module."};
  // The file is the input itself when it looks like one (so that seed files work unchanged),
  // else the input after the option byte.
  bool whole = size >= 2 && ((data[0] == 'P' && data[1] == 'K') || data[0] == 0x80);
  const uint8_t* file = whole ? data : data + 1;
  size_t n = whole ? size : size - 1;
  try {
    PthFile f = parse_pytorch_checkpoint(file, n, "fuzz", o);
    for (const auto& kv : f.tensors) (void)kv.second.to_double_vector();
  } catch (const Error&) {
  }
  return 0;
}
