// Private: UTF-8 validation shared by the safetensors header reader and the pickle reader.
// Rejects overlong forms, truncated sequences and code points above U+10FFFF; surrogates (U+D800..U+DFFF)
// are refused unless allow_surrogates (Python's "surrogatepass", which pickled strings may use).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ssmkit::core::io_detail {

// Offset of the first byte that breaks UTF-8, or n when all n bytes are valid.
inline size_t utf8_invalid_at(const uint8_t* s, size_t n, bool allow_surrogates = false) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    static constexpr uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff) return i;
    if (!allow_surrogates && cp >= 0xd800 && cp <= 0xdfff) return i;
    i += len;
  }
  return n;
}

}  // namespace ssmkit::core::io_detail
