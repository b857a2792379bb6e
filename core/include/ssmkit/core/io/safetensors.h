// safetensors read/write (the Hugging Face format: u64 little-endian header length, JSON header,
// raw little-endian tensor bytes). Reading memory-maps the file and validates everything
// (header length, JSON, dtypes, shapes, offsets, overlaps, gaps) before any tensor is handed out;
// a defect throws Error naming the file and the defect. Writing is atomic (temp file + rename)
// and produces the layout of the reference writer: compact JSON, tensors sorted by name, then
// "__metadata__", header padded with spaces to a multiple of 8, data in header order.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

// String-to-string metadata in insertion order (the format allows only string values).
using Metadata = std::vector<std::pair<std::string, std::string>>;

// A parsed safetensors file. Tensors are views on the mapped file (zero copy), read-only by
// convention, alive as long as any Tensor taken from it.
class SafetensorsFile {
 public:
  std::string path;                                   // for error messages
  std::vector<std::pair<std::string, Tensor>> tensors;  // in header order
  Metadata metadata;

  bool has(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws Error naming the file and tensor
  bool has_meta(const std::string& key) const;
  const std::string& meta(const std::string& key) const;  // throws Error naming file and key
  std::string meta_or(const std::string& key, const std::string& fallback) const;
};

// Memory-maps and validates `path`.
SafetensorsFile load_safetensors(const std::string& path);

// Parses an in-memory image of a file (copied into owned storage). `origin` names it in errors.
SafetensorsFile parse_safetensors(const void* bytes, size_t size, const std::string& origin);

// The file image for `tensors` (any strides; written contiguous) and `metadata`.
std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const Metadata& metadata = {});

// Writes serialize_safetensors(...) to `path` atomically (temp file in the same folder, fsync, rename).
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const Metadata& metadata = {});

// Writes bytes to `path` atomically; used by every writer of files in ssmkit.
void write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace ssmkit::core
