// SHA-256 (FIPS 180-4) for the data hashes (`data_sha256`) recorded in checkpoints' training metadata.
// Not here: HMAC, other digests; this is not a constant-time implementation (nothing secret is hashed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ssmkit::core {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex();  // finishes the digest (the object must not be updated afterwards)

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// 64 lowercase hex digits of `n` bytes.
std::string sha256_hex(const void* data, size_t n);
// The hex digest of a file's bytes; Error naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace ssmkit::core
