// Private: a whole regular file mapped copy-on-write, as the checkpoint readers (safetensors, .pth) load it.
// Writing through the mapping changes this process's copy only, never the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ssmkit::core::io_detail {

struct MappedFile {
  std::shared_ptr<void> owner;  // unmaps when the last reference goes
  uint8_t* data = nullptr;
  size_t size = 0;
};

// Maps `path`. Errors name the path: cannot open / cannot stat / not a regular file (hint: "give the path of
// <expected>") / cannot mmap. A file shorter than min_size is not mapped: size is returned with data null,
// so that the caller reports what its format needs.
MappedFile map_file(const std::string& path, const std::string& expected, size_t min_size);

}  // namespace ssmkit::core::io_detail
