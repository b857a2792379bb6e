// map_file(): open + fstat + mmap (MAP_PRIVATE, read-write) of a regular file, with errors naming it.
#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ssmkit/core/error.h"

namespace ssmkit::core::io_detail {

[[noreturn]] static void fail(const std::string& path, const std::string& what, const std::string& hint) {
  throw Error(path + ": " + what + " (" + hint + ")");
}

MappedFile map_file(const std::string& path, const std::string& expected, size_t min_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno), "check the path and permissions");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err), "check the file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file", "give the path of " + expected);
  }
  MappedFile f;
  f.size = static_cast<size_t>(st.st_size);
  if (f.size == 0 || f.size < min_size) {
    ::close(fd);
    return f;
  }
  void* m = ::mmap(nullptr, f.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping stays valid
  if (m == MAP_FAILED) fail(path, std::string("cannot mmap: ") + std::strerror(err), "check the file and free address space");
  const size_t size = f.size;
  f.owner = std::shared_ptr<void>(m, [size](void* p) { ::munmap(p, size); });
  f.data = static_cast<uint8_t*>(m);
  return f;
}

}  // namespace ssmkit::core::io_detail
