// safetensors read/write: mmap + strict validation on read, reference-writer layout on write, atomic save.
// Validation mirrors the reference Rust crate (header size limits, UTF-8, offsets sorted must cover the
// data section exactly: no gaps, no overlaps, no trailing bytes) and adds what it leaves to serde:
// duplicate keys, unknown fields, __metadata__ of strings only. Every defect throws Error as
// "<file>: <what is wrong> (<hint>)". Not here: big-endian hosts, dtypes beyond those of tensor.h.
#include "ssmkit/core/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "io/mapped_file.h"
#include "io/utf8.h"

namespace ssmkit::core {

static_assert(std::endian::native == std::endian::little, "ssmkit's safetensors I/O assumes a little-endian host");

using json = nlohmann::json;

static constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference crate's MAX_HEADER_SIZE
static constexpr size_t kMaxHeaderDepth = 16;                // a valid header nests 3 deep
static const char* kMetadataKey = "__metadata__";

[[noreturn]] static void fail(const std::string& origin, const std::string& what, const std::string& hint) {
  throw Error(origin + ": " + what + " (" + hint + ")");
}

static std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

// --- SafetensorsFile accessors ----------------------------------------------------------------------

// "a, b, c, ... (n in all)" for error hints.
template <class Pairs>
static std::string list_keys(const Pairs& pairs) {
  if (pairs.empty()) return "there are none";
  std::string s = "present: ";
  size_t shown = std::min<size_t>(pairs.size(), 8);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + in_quotes(pairs[i].first);
  if (shown < pairs.size()) s += ", ... (" + std::to_string(pairs.size()) + " in all)";
  return s;
}

bool SafetensorsFile::has(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return true;
  return false;
}

const Tensor& SafetensorsFile::get(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return kv.second;
  fail(path, "no tensor " + in_quotes(name), list_keys(tensors));
}

bool SafetensorsFile::has_meta(const std::string& key) const {
  for (const auto& kv : metadata)
    if (kv.first == key) return true;
  return false;
}

const std::string& SafetensorsFile::meta(const std::string& key) const {
  for (const auto& kv : metadata)
    if (kv.first == key) return kv.second;
  fail(path, "no metadata key " + in_quotes(key), "metadata keys " + list_keys(metadata));
}

std::string SafetensorsFile::meta_or(const std::string& key, const std::string& fallback) const {
  for (const auto& kv : metadata)
    if (kv.first == key) return kv.second;
  return fallback;
}

// --- reading ----------------------------------------------------------------------------------------

using io_detail::utf8_invalid_at;

static bool valid_utf8(const std::string& s) {
  return utf8_invalid_at(reinterpret_cast<const uint8_t*>(s.data()), s.size()) == s.size();
}

// One open container while the header is parsed: which keys it has seen, the key it sits under.
struct JsonFrame {
  bool is_object = false;
  std::string name;       // key of this container in its parent ("" for the root or an array element)
  std::string last_key;   // most recent key read in this object
  std::set<std::string> keys;
};

// The header parsed into a DOM plus the key order of the root and of __metadata__ (json keeps keys
// sorted; a std::map keeps lookups O(log n) where ordered_json would be quadratic on hostile headers).
struct ParsedHeader {
  json root;
  std::vector<std::string> root_keys;
  std::vector<std::string> meta_keys;
};

static ParsedHeader parse_header_json(const char* h, size_t n, const std::string& origin) {
  ParsedHeader ph;
  std::vector<JsonFrame> stack;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start: {
        if (stack.size() >= kMaxHeaderDepth)
          fail(origin, "header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels",
               "a safetensors header is {name: {dtype, shape, data_offsets}}");
        JsonFrame f;
        f.is_object = ev == json::parse_event_t::object_start;
        if (!stack.empty() && stack.back().is_object) f.name = stack.back().last_key;
        stack.push_back(std::move(f));
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        JsonFrame& f = stack.back();
        if (!f.keys.insert(k).second) {
          if (stack.size() == 1)
            fail(origin, "duplicate tensor name " + in_quotes(k), "each name may appear once in the header");
          if (stack.size() == 2 && f.name == kMetadataKey)
            fail(origin, "duplicate metadata key " + in_quotes(k), "each key may appear once in __metadata__");
          fail(origin, "duplicate field " + in_quotes(k) + " in " + in_quotes(f.name),
               "each field may appear once per entry");
        }
        f.last_key = k;
        if (stack.size() == 1) ph.root_keys.push_back(k);
        if (stack.size() == 2 && f.name == kMetadataKey) ph.meta_keys.push_back(k);
        break;
      }
      case json::parse_event_t::value: break;
    }
    return true;
  };
  try {
    ph.root = json::parse(h, h + n, cb, /*allow_exceptions=*/true);
  } catch (const json::parse_error& e) {
    fail(origin,
         "header is not valid JSON at header byte " + std::to_string(e.byte) + " (file offset " +
             std::to_string(e.byte + 7) + "): " + e.what(),
         "corrupt or truncated header");
  } catch (const json::exception& e) {
    fail(origin, std::string("header is not valid JSON: ") + e.what(), "corrupt header");
  }
  return ph;
}

// A JSON number that is an integer >= 0 (floats such as 2.0 are refused, as serde does).
static bool json_nonneg_int(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

struct EntryInfo {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // within the data section
};

static EntryInfo parse_entry(const std::string& origin, const std::string& name, const json& v) {
  std::string who = "tensor " + in_quotes(name);
  const char* fields_hint = "each entry is {\"dtype\":..., \"shape\":[...], \"data_offsets\":[begin,end]}";
  if (!v.is_object()) fail(origin, who + " is a " + v.type_name() + ", not an object", fields_hint);
  for (const char* f : {"dtype", "shape", "data_offsets"})
    if (!v.contains(f)) fail(origin, who + " has no field " + in_quotes(f), fields_hint);
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      fail(origin, who + " has an unexpected field " + in_quotes(it.key()), fields_hint);

  EntryInfo e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) fail(origin, who + ": dtype is a " + std::string(dt.type_name()) + ", not a string", "e.g. \"F32\"");
  try {
    e.dtype = dtype_from_name(dt.get_ref<const std::string&>());
  } catch (const Error&) {
    fail(origin, who + ": unknown dtype " + in_quotes(dt.get_ref<const std::string&>()),
         "ssmkit reads F32, F64, F16, BF16, I64, I32, U8");
  }

  const json& sh = v["shape"];
  const char* shape_hint = "shape is an array of non-negative integers, [] for a scalar";
  if (!sh.is_array()) fail(origin, who + ": shape is a " + std::string(sh.type_name()) + ", not an array", shape_hint);
  // Every suffix product of the non-zero dims must fit in int64 (strides), and so must the byte count.
  int64_t prod = static_cast<int64_t>(dtype_size(e.dtype));
  bool has_zero = false;
  for (size_t i = 0; i < sh.size(); ++i) {
    uint64_t d;
    if (!json_nonneg_int(sh[i], d))
      fail(origin, who + ": shape element " + std::to_string(i) + " is not a non-negative integer", shape_hint);
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (d != 0 && __builtin_mul_overflow(prod, static_cast<int64_t>(d), &prod)))
      fail(origin, who + ": shape is too large (its element count overflows int64)", "corrupt shape");
    has_zero |= d == 0;
    e.shape.push_back(static_cast<int64_t>(d));
  }
  uint64_t nbytes = has_zero ? 0 : static_cast<uint64_t>(prod);

  const json& off = v["data_offsets"];
  const char* off_hint = "data_offsets is [begin, end], byte offsets into the data section with begin <= end";
  if (!off.is_array() || off.size() != 2 || !json_nonneg_int(off[0], e.begin) || !json_nonneg_int(off[1], e.end))
    fail(origin, who + ": data_offsets is not two non-negative integers", off_hint);
  if (e.begin > e.end)
    fail(origin, who + ": data_offsets [" + std::to_string(e.begin) + "," + std::to_string(e.end) + "] has begin > end",
         off_hint);
  if (e.end - e.begin != nbytes)
    fail(origin,
         who + ": data_offsets [" + std::to_string(e.begin) + "," + std::to_string(e.end) + "] span " +
             std::to_string(e.end - e.begin) + " bytes but " + dtype_name(e.dtype) + " " + shape_str(e.shape) +
             " needs " + std::to_string(nbytes),
         "shape, dtype and offsets disagree");
  return e;
}

// Validates the image [base, base+size) and hands out tensors on it; `owner` keeps it alive.
static SafetensorsFile parse_image(const uint8_t* base, size_t size, std::shared_ptr<void> owner,
                                   const std::string& origin) {
  if (size < 8)
    fail(origin, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length",
         "not a safetensors file, or truncated");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
  if (n == 0) fail(origin, "header length is 0", "a safetensors header is a JSON object, at least \"{}\"");
  if (n > kMaxHeaderBytes)
    fail(origin, "header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes",
         "corrupt length field, or not a safetensors file");
  if (n > size - 8)
    fail(origin, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)",
         "truncated file or corrupt length field");

  const char* h = reinterpret_cast<const char*>(base + 8);
  size_t bad = utf8_invalid_at(base + 8, n);
  if (bad != n)
    fail(origin, "header is not valid UTF-8 at header byte " + std::to_string(bad) + " (file offset " + std::to_string(bad + 8) + ")",
         "corrupt header");
  if (h[0] != '{') fail(origin, "header does not start with '{'", "a safetensors header is a JSON object");
  ParsedHeader ph = parse_header_json(h, n, origin);
  if (!ph.root.is_object())
    fail(origin, std::string("header is a JSON ") + ph.root.type_name() + ", not an object", "a safetensors header is a JSON object");

  SafetensorsFile f;
  f.path = origin;
  std::vector<EntryInfo> entries;
  for (const std::string& key : ph.root_keys) {
    const json& v = ph.root[key];
    if (key == kMetadataKey) {
      if (!v.is_object())
        fail(origin, std::string("__metadata__ is a ") + v.type_name() + ", not an object", "__metadata__ maps strings to strings");
      for (const std::string& mk : ph.meta_keys) {
        const json& mv = v[mk];
        if (!mv.is_string())
          fail(origin, "metadata value of " + in_quotes(mk) + " is a " + mv.type_name() + ", not a string",
               "__metadata__ maps strings to strings");
        f.metadata.emplace_back(mk, mv.get<std::string>());
      }
      continue;
    }
    entries.push_back(parse_entry(origin, key, v));
  }

  // Offsets: each inside the data section; sorted, they must tile it exactly (the reference crate's
  // InvalidOffset / MetadataIncompleteBuffer).
  const uint64_t data_size = size - 8 - n;
  for (const EntryInfo& e : entries)
    if (e.end > data_size)
      fail(origin,
           "tensor " + in_quotes(e.name) + ": data_offsets [" + std::to_string(e.begin) + "," + std::to_string(e.end) +
               "] run past the end of the data section (" + std::to_string(data_size) + " bytes)",
           "truncated file or corrupt offsets");
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::pair(entries[a].begin, entries[a].end) < std::pair(entries[b].begin, entries[b].end);
  });
  uint64_t pos = 0;
  const EntryInfo* prev = nullptr;
  for (size_t i : order) {
    const EntryInfo& e = entries[i];
    if (e.begin < pos)
      fail(origin,
           "tensors " + in_quotes(prev->name) + " [" + std::to_string(prev->begin) + "," + std::to_string(prev->end) + "] and " +
               in_quotes(e.name) + " [" + std::to_string(e.begin) + "," + std::to_string(e.end) + "] overlap",
           "each byte of the data section belongs to one tensor");
    if (e.begin > pos)
      fail(origin,
           "gap of " + std::to_string(e.begin - pos) + " bytes in the data section before tensor " + in_quotes(e.name) +
               " at offset " + std::to_string(e.begin),
           "the tensors must cover the data section exactly");
    pos = e.end;
    prev = &e;
  }
  if (pos != data_size)
    fail(origin,
         std::to_string(data_size - pos) + " bytes in the data section after the last tensor (data ends at " +
             std::to_string(pos) + " of " + std::to_string(data_size) + ")",
         "the tensors must cover the data section exactly; trailing bytes are refused like the reference crate does");

  // Tensors: views on the image, or an aligned copy where the image leaves one misaligned for its dtype.
  uint8_t* data = const_cast<uint8_t*>(base) + 8 + n;
  for (const EntryInfo& e : entries) {
    uint8_t* p = data + e.begin;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      f.tensors.emplace_back(e.name, Tensor::borrow(p, e.shape, e.dtype, owner));
    } else {
      auto st = Storage::allocate(e.end - e.begin);
      if (e.end > e.begin) std::memcpy(st->data, p, e.end - e.begin);
      f.tensors.emplace_back(e.name, Tensor::borrow(st->data, e.shape, e.dtype, std::shared_ptr<void>(st)));
    }
  }
  return f;
}

SafetensorsFile load_safetensors(const std::string& path) {
  const io_detail::MappedFile m = io_detail::map_file(path, "a .safetensors file", 8);
  if (m.size < 8)
    fail(path, "file is " + std::to_string(m.size) + " bytes, shorter than the 8-byte header length",
         "not a safetensors file, or truncated");
  return parse_image(m.data, m.size, m.owner, path);
}

SafetensorsFile parse_safetensors(const void* bytes, size_t size, const std::string& origin) {
  if (size > 0 && bytes == nullptr) fail(origin, "null buffer of " + std::to_string(size) + " bytes", "pass the image's bytes");
  auto st = Storage::allocate(size);
  if (size > 0) std::memcpy(st->data, bytes, size);
  std::shared_ptr<void> owner = st;
  return parse_image(static_cast<const uint8_t*>(st->data), size, owner, origin);
}

// --- writing ----------------------------------------------------------------------------------------

// JSON string as serde_json writes it: ", \ and control characters escaped, everything else raw UTF-8.
static void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

static std::vector<uint8_t> serialize_impl(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const Metadata& metadata, const std::string& origin) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& name = tensors[i].first;
    if (name.empty()) fail(origin, "tensor " + std::to_string(i) + " has an empty name", "give every tensor a name");
    if (name == kMetadataKey) fail(origin, "tensor name \"__metadata__\" is reserved", "rename the tensor");
    if (!valid_utf8(name)) fail(origin, "tensor name " + in_quotes(name) + " is not valid UTF-8", "names are UTF-8 strings");
    if (!tensors[i].second.defined()) fail(origin, "tensor " + in_quotes(name) + " is undefined", "pass defined tensors only");
    order[i] = i;
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors[a].first < tensors[b].first; });
  for (size_t i = 1; i < order.size(); ++i)
    if (tensors[order[i]].first == tensors[order[i - 1]].first)
      fail(origin, "duplicate tensor name " + in_quotes(tensors[order[i]].first), "names must be unique");
  std::set<std::string> meta_seen;
  for (const auto& [k, v] : metadata) {
    if (!meta_seen.insert(k).second) fail(origin, "duplicate metadata key " + in_quotes(k), "keys must be unique");
    if (!valid_utf8(k) || !valid_utf8(v))
      fail(origin, "metadata entry " + in_quotes(k) + " is not valid UTF-8", "metadata keys and values are UTF-8 strings");
  }

  // Header: {"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...,"__metadata__":{...}}
  std::string h = "{";
  uint64_t off = 0;
  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    if (h.size() > 1) h += ',';
    append_json_string(h, tensors[i].first);
    h += ":{\"dtype\":\"";
    h += dtype_name(t.dtype());
    h += "\",\"shape\":[";
    for (int64_t d = 0; d < t.ndim(); ++d) h += (d ? "," : "") + std::to_string(t.size(d));
    h += "],\"data_offsets\":[" + std::to_string(off) + ",";
    off += t.nbytes();
    h += std::to_string(off) + "]}";
  }
  if (!metadata.empty()) {
    if (h.size() > 1) h += ',';
    h += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (i) h += ',';
      append_json_string(h, metadata[i].first);
      h += ':';
      append_json_string(h, metadata[i].second);
    }
    h += '}';
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');

  std::vector<uint8_t> out(8 + h.size() + off);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, h.data(), h.size());
  uint8_t* p = out.data() + 8 + h.size();
  for (size_t i : order) {
    Tensor c = tensors[i].second.contiguous();
    size_t nb = c.nbytes();
    if (nb) std::memcpy(p, c.raw(), nb);
    p += nb;
  }
  return out;
}

std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const Metadata& metadata) {
  return serialize_impl(tensors, metadata, "serialize_safetensors()");
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const Metadata& metadata) {
  std::vector<uint8_t> bytes = serialize_impl(tensors, metadata, path);
  write_file_atomic(path, bytes.data(), bytes.size());
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  std::random_device rd;
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    fail(path, "cannot create temporary file " + tmp + ": " + std::strerror(errno),
         "check that the folder exists and is writable");
  auto abandon = [&](const char* what) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    fail(path, std::string(what) + ": " + std::strerror(err), "check free space and permissions; the destination is unchanged");
  };
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t w = ::write(fd, p, std::min<size_t>(left, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      abandon("write failed");
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) abandon("fsync failed");
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) abandon("close failed");
  if (::rename(tmp.c_str(), path.c_str()) != 0) abandon("cannot rename the temporary file over it");
  // Make the rename itself durable (best effort: some filesystems refuse fsync on folders).
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace ssmkit::core
