// Where tests find ../shared: $SSMKIT_GOLDEN_DIR / $SSMKIT_DATA_DIR, else next to the source tree.
#include <cstdlib>
#include <filesystem>

#include "gradcheck.h"

namespace ssmkit::test {

std::string golden_dir() {
  if (const char* env = std::getenv("SSMKIT_GOLDEN_DIR"); env && *env) return env;
  return std::string(SSMKIT_SOURCE_DIR) + "/../shared/golden";
}

std::string golden_file(const std::string& relative) {
  std::string p = golden_dir() + "/" + relative;
  if (!std::filesystem::exists(p))
    ADD_FAILURE() << "golden file missing: " << p << " (set SSMKIT_GOLDEN_DIR or provide ../shared/golden)";
  return p;
}

}  // namespace ssmkit::test
