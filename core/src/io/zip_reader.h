// Private: a reader for zip archives whose entries are STORED (method 0), as torch.save writes them.
// Parses the end-of-central-directory record (and the ZIP64 locator/record when present), the central
// directory and, on access, each entry's local header; checks every offset and size against the image
// and the CRC-32 of what it hands out. Not here: compression (refused by name), encryption, multi-disk
// archives, writing. Follows PKWARE's APPNOTE.TXT 6.3 (sections 4.3.6-4.3.16, 4.5.3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace ssmkit::core::zip {

struct Entry {
  std::string name;
  uint16_t method = 0;        // 0 stored, 8 deflate, ...
  uint16_t flags = 0;         // general purpose bits (bit 0: encrypted)
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;          // uncompressed
  uint64_t local_header = 0;  // offset of the local file header in the image
};

// CRC-32 (IEEE 802.3, reflected, as zip uses it) of n bytes.
uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0);

class Reader {
 public:
  // Parses the central directory of the image [data, data+size); throws Error "<origin>: ..." on any defect.
  Reader(const uint8_t* data, size_t size, std::string origin);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;  // nullptr when absent

  // The bytes of a stored entry, after checking its local header, its bounds and (if verify_crc) its CRC-32.
  // Compressed or encrypted entries throw Error naming the entry and the method.
  const uint8_t* read(const Entry& e, bool verify_crc) const;

  bool zip64() const { return zip64_; }

 private:
  const uint8_t* data_;
  size_t size_;
  std::string origin_;
  uint64_t cd_offset_ = 0;  // entries' data must end before the central directory
  bool zip64_ = false;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace ssmkit::core::zip
