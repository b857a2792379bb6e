// Private: the stored-entries zip reader behind load_pytorch_checkpoint (see zip_reader.h).
// Every field read from the image is bounds-checked before use; all arithmetic on offsets is done in
// uint64 with explicit overflow checks. Errors read "<file>: zip: <what> (<hint>)".
// Not here: compression, encryption, spanned archives, data descriptors (sizes come from the central
// directory, which torch's writer fills in). Follows APPNOTE.TXT 6.3.
#include "io/zip_reader.h"

#include <cstring>

#include "ssmkit/core/error.h"

namespace ssmkit::core::zip {

static constexpr uint32_t kSigLocal = 0x04034b50;     // "PK\3\4"
static constexpr uint32_t kSigCentral = 0x02014b50;   // "PK\1\2"
static constexpr uint32_t kSigEnd = 0x06054b50;       // "PK\5\6"
static constexpr uint32_t kSigEnd64 = 0x06064b50;     // "PK\6\6"
static constexpr uint32_t kSigLocator64 = 0x07064b50; // "PK\6\7"
static constexpr size_t kEndBytes = 22, kLocatorBytes = 20, kEnd64Bytes = 56, kCentralBytes = 46, kLocalBytes = 30;

[[noreturn]] static void fail(const std::string& origin, const std::string& what, const std::string& hint) {
  throw Error(origin + ": zip: " + what + " (" + hint + ")");
}

static uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
static uint64_t rd64(const uint8_t* p) { return static_cast<uint64_t>(rd32(p)) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }

// Printable form of an entry name for messages (names come from the file).
static std::string shown(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 120)) {
    if (c >= 0x20 && c < 0x7f && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return "'" + out + (s.size() > 120 ? "...'" : "'");
}

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc) {
  static const auto table = [] {
    std::vector<uint32_t> t(256 * 4);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    // slicing-by-4: t[k*256+i] = CRC of byte i followed by k zero bytes
    for (uint32_t i = 0; i < 256; ++i)
      for (int k = 1; k < 4; ++k) t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[t[(k - 1) * 256 + i] & 0xff];
    return t;
  }();
  const uint32_t* t = table.data();
  crc = ~crc;
  while (n >= 4) {
    crc ^= rd32(p);
    crc = t[3 * 256 + (crc & 0xff)] ^ t[2 * 256 + ((crc >> 8) & 0xff)] ^ t[256 + ((crc >> 16) & 0xff)] ^ t[crc >> 24];
    p += 4;
    n -= 4;
  }
  while (n--) crc = t[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

Reader::Reader(const uint8_t* data, size_t size, std::string origin) : data_(data), size_(size), origin_(std::move(origin)) {
  const char* not_zip = "truncated file, or not a zip archive";
  if (size_ < kEndBytes)
    fail(origin_, "file is " + std::to_string(size_) + " bytes, shorter than an end-of-central-directory record", not_zip);

  // End-of-central-directory record: the last "PK\5\6" whose comment runs exactly to the end of the file.
  size_t end = SIZE_MAX;
  size_t lowest = size_ - kEndBytes > 65535 ? size_ - kEndBytes - 65535 : 0;
  for (size_t p = size_ - kEndBytes + 1; p-- > lowest;) {
    if (rd32(data_ + p) == kSigEnd && p + kEndBytes + rd16(data_ + p + 20) == size_) {
      end = p;
      break;
    }
  }
  if (end == SIZE_MAX) fail(origin_, "no end-of-central-directory record", not_zip);
  const uint8_t* e = data_ + end;
  uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n_total = rd16(e + 10);
  uint64_t cd_size = rd32(e + 12), cd_offset = rd32(e + 16);
  uint64_t records_end = end;  // the central directory must end before the (ZIP64) end records

  // ZIP64: the locator sits right before the end record and points at the ZIP64 end record.
  if (end >= kLocatorBytes && rd32(data_ + end - kLocatorBytes) == kSigLocator64) {
    const uint8_t* loc = data_ + end - kLocatorBytes;
    uint64_t off64 = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
      fail(origin_, "multi-disk archive (ZIP64 locator names disk " + std::to_string(rd32(loc + 4)) + ")",
           "spanned archives are not supported; torch.save writes one file");
    if (off64 > end - kLocatorBytes || end - kLocatorBytes - off64 < kEnd64Bytes)
      fail(origin_, "ZIP64 end record offset " + std::to_string(off64) + " lies outside the file's end records", not_zip);
    const uint8_t* e64 = data_ + off64;
    if (rd32(e64) != kSigEnd64)
      fail(origin_, "no ZIP64 end-of-central-directory record at offset " + std::to_string(off64), "corrupt file");
    disk = rd32(e64 + 16);
    cd_disk = rd32(e64 + 20);
    n_disk = rd64(e64 + 24);
    n_total = rd64(e64 + 32);
    cd_size = rd64(e64 + 40);
    cd_offset = rd64(e64 + 48);
    records_end = off64;
    zip64_ = true;
  } else if (n_total == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
    fail(origin_, "end record fields are saturated (0xFFFF...) but there is no ZIP64 locator", "corrupt or truncated file");
  }
  if (disk != 0 || cd_disk != 0 || n_disk != n_total)
    fail(origin_, "multi-disk archive", "spanned archives are not supported; torch.save writes one file");
  if (cd_offset > records_end || cd_size > records_end - cd_offset)
    fail(origin_,
         "central directory [" + std::to_string(cd_offset) + ", +" + std::to_string(cd_size) + ") runs past its end record at " +
             std::to_string(records_end),
         "truncated or corrupt file");
  if (n_total > cd_size / kCentralBytes)
    fail(origin_, std::to_string(n_total) + " entries cannot fit a central directory of " + std::to_string(cd_size) + " bytes",
         "corrupt end record");
  cd_offset_ = cd_offset;

  // Central directory.
  const uint8_t* p = data_ + cd_offset;
  const uint8_t* cd_end = p + cd_size;
  entries_.reserve(static_cast<size_t>(n_total));
  for (uint64_t i = 0; i < n_total; ++i) {
    std::string at = "central directory entry " + std::to_string(i);
    if (static_cast<size_t>(cd_end - p) < kCentralBytes || rd32(p) != kSigCentral)
      fail(origin_, at + " is missing or has a bad signature", "corrupt central directory");
    Entry en;
    en.flags = rd16(p + 8);
    en.method = rd16(p + 10);
    en.crc32 = rd32(p + 16);
    en.compressed_size = rd32(p + 20);
    en.size = rd32(p + 24);
    size_t n_name = rd16(p + 28), n_extra = rd16(p + 30), n_comment = rd16(p + 32);
    uint64_t start_disk = rd16(p + 34);
    en.local_header = rd32(p + 42);
    if (static_cast<size_t>(cd_end - p) - kCentralBytes < n_name + n_extra + n_comment)
      fail(origin_, at + ": name/extra/comment run past the central directory", "corrupt central directory");
    en.name.assign(reinterpret_cast<const char*>(p + kCentralBytes), n_name);
    // ZIP64 extended information (extra field 0x0001): 8-byte values for the saturated 32-bit fields,
    // in the order uncompressed size, compressed size, local header offset, then a 4-byte disk number.
    bool need_size = en.size == 0xffffffffu, need_csize = en.compressed_size == 0xffffffffu;
    bool need_offset = en.local_header == 0xffffffffu, need_disk = start_disk == 0xffff;
    const uint8_t* x = p + kCentralBytes + n_name;
    const uint8_t* x_end = x + n_extra;
    bool found64 = false;
    while (x_end - x >= 4) {
      uint16_t id = rd16(x), len = rd16(x + 2);
      if (x_end - x - 4 < len) fail(origin_, at + " (" + shown(en.name) + "): extra field runs past its end", "corrupt central directory");
      if (id == 0x0001) {
        const uint8_t* v = x + 4;
        size_t left = len;
        auto take64 = [&](uint64_t& out) {
          if (left < 8) fail(origin_, at + " (" + shown(en.name) + "): ZIP64 extra field too short", "corrupt central directory");
          out = rd64(v);
          v += 8;
          left -= 8;
        };
        if (need_size) take64(en.size);
        if (need_csize) take64(en.compressed_size);
        if (need_offset) take64(en.local_header);
        if (need_disk) {
          if (left < 4) fail(origin_, at + " (" + shown(en.name) + "): ZIP64 extra field too short", "corrupt central directory");
          start_disk = rd32(v);
        }
        found64 = true;
      }
      x += 4 + len;
    }
    if ((need_size || need_csize || need_offset || need_disk) && !found64)
      fail(origin_, at + " (" + shown(en.name) + "): saturated size/offset fields but no ZIP64 extra field", "corrupt central directory");
    if (start_disk != 0) fail(origin_, at + " (" + shown(en.name) + ") starts on another disk", "spanned archives are not supported");
    if (!index_.emplace(en.name, entries_.size()).second)
      fail(origin_, "duplicate entry " + shown(en.name), "each name may appear once in the archive");
    entries_.push_back(std::move(en));
    p += kCentralBytes + n_name + n_extra + n_comment;
  }
}

const Entry* Reader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const uint8_t* Reader::read(const Entry& e, bool verify_crc) const {
  const std::string who = "entry " + shown(e.name);
  if (e.flags & 1) fail(origin_, who + " is encrypted", "encrypted archives are not supported");
  if (e.method != 0) {
    std::string m = e.method == 8 ? "8, deflate" : e.method == 12 ? "12, bzip2" : e.method == 14 ? "14, lzma" : std::to_string(e.method);
    fail(origin_, who + " is compressed (method " + m + "); only stored (uncompressed) entries are read",
         "torch.save writes stored entries: was the file re-zipped? Re-save it with torch.save, or re-pack with `zip -0`");
  }
  if (e.compressed_size != e.size)
    fail(origin_, who + ": stored entry with compressed size " + std::to_string(e.compressed_size) + " != size " + std::to_string(e.size),
         "corrupt central directory");
  if (e.local_header > cd_offset_ || cd_offset_ - e.local_header < kLocalBytes)
    fail(origin_, who + ": local header offset " + std::to_string(e.local_header) + " lies outside the entries' area", "corrupt central directory");
  const uint8_t* h = data_ + e.local_header;
  if (rd32(h) != kSigLocal) fail(origin_, who + ": bad local header signature at offset " + std::to_string(e.local_header), "corrupt file");
  uint64_t n_name = rd16(h + 26), n_extra = rd16(h + 28);
  uint64_t start = e.local_header + kLocalBytes + n_name + n_extra;
  if (start > cd_offset_ || e.size > cd_offset_ - start)
    fail(origin_,
         who + ": data [" + std::to_string(start) + ", +" + std::to_string(e.size) + ") runs past the central directory at " +
             std::to_string(cd_offset_),
         "truncated or corrupt file");
  if (n_name != e.name.size() || std::memcmp(h + kLocalBytes, e.name.data(), e.name.size()) != 0)
    fail(origin_, who + ": local header names another file", "corrupt file");
  const uint8_t* d = data_ + start;
  if (verify_crc) {
    uint32_t c = crc32(d, static_cast<size_t>(e.size));
    if (c != e.crc32) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "CRC-32 %08x, expected %08x", c, e.crc32);
      fail(origin_, who + ": " + buf, "the file is corrupt (damaged download or disk?)");
    }
  }
  return d;
}

}  // namespace ssmkit::core::zip
