// ssmkit error type and checks.
// SSMKIT_CHECK is always on (shapes, dtypes, config, file contents); SSMKIT_DCHECK only in debug builds.
// Messages name the thing at fault (file, argument, tensor) and what was expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ssmkit::core {

// Thrown for every recoverable failure at an API edge: bad shapes, bad files, bad configuration.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace ssmkit::core

// SSMKIT_CHECK(cond, "part", value, "part", ...): throws ssmkit::core::Error with the parts joined.
#define SSMKIT_CHECK(cond, ...)                                                  \
  do {                                                                           \
    if (!(cond)) throw ::ssmkit::core::Error(::ssmkit::core::detail::concat(__VA_ARGS__)); \
  } while (0)

#ifdef SSMKIT_DEBUG_CHECKS  // set in Debug builds
#define SSMKIT_DCHECK(cond, ...) SSMKIT_CHECK(cond, __VA_ARGS__)
#else
#define SSMKIT_DCHECK(cond, ...) \
  do {                           \
  } while (0)
#endif
