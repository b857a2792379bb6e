// idx files (zlib's gz* functions read gzip and raw files alike), torchvision's ImageFolder scan, in-memory
// datasets of prepared U8 samples, seeded splits, data hashes and normalised batches.
// Not here: augmentation (augment.cpp), decoding (image_io.cpp).
#include "ssmkit/vision/image_dataset.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <omp.h>
#include <zlib.h>

#include "ssmkit/core/io/sha256.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/vision/image_io.h"

namespace ssmkit::vision {

namespace fs = std::filesystem;
using core::Tensor;

// ---------------------------------------------------------------------------------------------------------
// idx

namespace {

uint32_t be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
         p[3];
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::error_code ec;
  SSMKIT_CHECK(fs::exists(path, ec), path, ": no such file");
  SSMKIT_CHECK(!fs::is_directory(path, ec), path, ": is a directory; expected an idx file");
  gzFile f = gzopen(path.c_str(), "rb");
  SSMKIT_CHECK(f != nullptr, path, ": cannot open (", std::strerror(errno), ")");
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      throw core::Error(path + ": bad gzip data (" + msg + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  int err = 0;
  const std::string msg = gzerror(f, &err);
  gzclose(f);
  SSMKIT_CHECK(err == Z_OK || err == Z_STREAM_END, path, ": bad gzip data (", msg, "; is the download complete?)");
  return out;
}

}  // namespace

Tensor read_idx(const std::string& path) {
  const std::vector<uint8_t> bytes = read_maybe_gzip(path);
  SSMKIT_CHECK(bytes.size() >= 4, path, ": ", bytes.size(),
               " bytes; expected an idx file (at least a 4-byte magic number)");
  const uint32_t magic = be32(bytes.data());
  SSMKIT_CHECK(bytes[0] == 0 && bytes[1] == 0 && bytes[3] >= 1 && bytes[3] <= 4, path, ": bad magic number ",
               hex32(magic), "; expected an idx file (0x00000801 for labels, 0x00000803 for images)");
  SSMKIT_CHECK(bytes[2] == 0x08, path, ": idx element type 0x", hex32(bytes[2]).substr(8),
               " is not supported; expected 0x08 (unsigned bytes)");
  const int64_t ndim = bytes[3];
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  SSMKIT_CHECK(bytes.size() >= header, path, ": truncated idx header (", bytes.size(), " bytes, ", header, " needed)");
  core::Shape shape;
  int64_t numel = 1;
  for (int64_t d = 0; d < ndim; ++d) {
    shape.push_back(be32(bytes.data() + 4 + 4 * d));
    numel *= shape.back();
  }
  const int64_t have = static_cast<int64_t>(bytes.size() - header);
  SSMKIT_CHECK(have == numel, path, ": ", have, " bytes of data, but the header (", hex32(magic), ", sizes ",
               core::shape_str(shape), ") says ", numel, have < numel ? " (truncated file?)" : " (trailing bytes)");
  Tensor t = Tensor::uninitialized(shape, core::DType::U8);
  if (numel > 0) std::memcpy(t.data<uint8_t>(), bytes.data() + header, static_cast<size_t>(numel));
  return t;
}

void write_idx(const std::string& path, const Tensor& data, bool gzip) {
  SSMKIT_CHECK(data.dtype() == core::DType::U8 && data.ndim() >= 1 && data.ndim() <= 4, path,
               ": write_idx takes a U8 tensor of 1 to 4 dims, got ", core::dtype_name(data.dtype()), " ",
               core::shape_str(data.shape()));
  const Tensor t = data.contiguous();
  std::vector<uint8_t> raw = {0, 0, 0x08, static_cast<uint8_t>(t.ndim())};
  for (int64_t d = 0; d < t.ndim(); ++d) {
    const auto v = static_cast<uint32_t>(t.size(d));
    for (int s = 24; s >= 0; s -= 8) raw.push_back(static_cast<uint8_t>(v >> s));
  }
  raw.insert(raw.end(), t.data<uint8_t>(), t.data<uint8_t>() + t.numel());
  if (!gzip) {
    core::write_file_atomic(path, raw.data(), raw.size());
    return;
  }
  z_stream z{};
  SSMKIT_CHECK(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, path,
               ": zlib deflateInit2 failed");
  std::vector<uint8_t> out(deflateBound(&z, static_cast<uLong>(raw.size())) + 64);
  z.next_in = raw.data();
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  SSMKIT_CHECK(rc == Z_STREAM_END, path, ": gzip compression failed (zlib code ", rc, ")");
  core::write_file_atomic(path, out.data(), out.size());
}

namespace {

// The first existing file among dir/name and dir/name.gz, or "".
std::string existing(const fs::path& dir, const std::vector<std::string>& names) {
  std::error_code ec;
  for (const auto& n : names)
    for (const char* ext : {"", ".gz"})
      if (fs::is_regular_file(dir / (n + ext), ec)) return (dir / (n + ext)).string();
  return "";
}

std::string split_prefix(const std::string& split) {
  SSMKIT_CHECK(split == "train" || split == "test" || split == "t10k", "idx split \"", split,
               "\" is not known; expected train or test");
  return split == "train" ? "train" : "t10k";
}

}  // namespace

IdxPair find_idx_pair(const std::string& path, const std::string& split) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    const fs::path p(path);
    std::string name = p.filename().string();
    const size_t at = name.find("images-idx3");
    const size_t at2 = name.find("images.idx3");
    SSMKIT_CHECK(at != std::string::npos || at2 != std::string::npos, path,
                 ": cannot tell where the labels are; expected an images file named *-images-idx3-ubyte[.gz] "
                 "(its labels in *-labels-idx1-ubyte[.gz] beside it) or a folder of idx files");
    if (at != std::string::npos)
      name.replace(at, 11, "labels-idx1");
    else
      name.replace(at2, 11, "labels.idx1");
    const fs::path labels = p.parent_path() / name;
    SSMKIT_CHECK(fs::is_regular_file(labels, ec), labels.string(), ": no such file (the labels of ", path, ")");
    return {path, labels.string()};
  }
  SSMKIT_CHECK(fs::is_directory(path, ec), path, ": no such file or folder");
  const std::string pre = split_prefix(split);
  IdxPair r{existing(path, {pre + "-images-idx3-ubyte", pre + "-images.idx3-ubyte"}),
            existing(path, {pre + "-labels-idx1-ubyte", pre + "-labels.idx1-ubyte"})};
  SSMKIT_CHECK(!r.images.empty() && !r.labels.empty(), path, ": no ",
               r.images.empty() ? pre + "-images-idx3-ubyte[.gz]" : pre + "-labels-idx1-ubyte[.gz]",
               "; expected the idx files of the ", split, " split (", pre, "-images-idx3-ubyte.gz and ", pre,
               "-labels-idx1-ubyte.gz)");
  return r;
}

bool is_idx_source(const std::string& path, const std::string& split) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    const std::string n = fs::path(path).filename().string();
    return n.find("-idx") != std::string::npos || n.find(".idx") != std::string::npos;
  }
  if (!fs::is_directory(path, ec)) return false;
  const std::string pre = split_prefix(split);
  if (!existing(path, {pre + "-images-idx3-ubyte", pre + "-images.idx3-ubyte"}).empty()) return true;
  // A folder holding idx files of the other split only is still an idx folder (find_idx_pair says what is missing).
  for (const char* other : {"train", "t10k"})
    if (!existing(path, {std::string(other) + "-images-idx3-ubyte", std::string(other) + "-images.idx3-ubyte"}).empty())
      return true;
  return false;
}

std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  SSMKIT_CHECK(in.good(), path, ": cannot open (", std::strerror(errno), ")");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Applies prepare_image to n samples in parallel; fill(i) gives sample i as an (H,W,C) U8 image (or throws).
// Returns the first failure's message by index ("" when none).
std::string prepare_all(int64_t n, const Preprocess& p, Tensor& images, const std::function<Tensor(int64_t)>& fill,
                        const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t C = p.channels, S = p.size;
  images = Tensor::uninitialized({n, C, S, S}, core::DType::U8);
  uint8_t* dst = images.data<uint8_t>();
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::atomic<int64_t> done{0};
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    try {
      const Tensor u8 = prepare_image(fill(i), p);
      std::memcpy(dst + i * C * S * S, u8.data<uint8_t>(), static_cast<size_t>(C * S * S));
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = e.what();
      std::memset(dst + i * C * S * S, 0, static_cast<size_t>(C * S * S));
    }
    const int64_t d = ++done;
    if (progress && omp_get_thread_num() == 0) progress(d, n);
  }
  if (progress) progress(n, n);
  for (const auto& e : errors)
    if (!e.empty()) return e;
  return "";
}

}  // namespace

ImageDataset load_idx_dataset(const IdxPair& files, const Preprocess& p, std::vector<std::string> classes) {
  p.validate();
  const Tensor images = read_idx(files.images);
  const Tensor labels = read_idx(files.labels);
  SSMKIT_CHECK(images.ndim() == 3, files.images, ": holds ", core::shape_str(images.shape()), " (magic 0x0000080",
               images.ndim(), "); expected images, magic 0x00000803 (N,rows,cols)");
  SSMKIT_CHECK(labels.ndim() == 1, files.labels, ": holds ", core::shape_str(labels.shape()), " (magic 0x0000080",
               labels.ndim(), "); expected labels, magic 0x00000801 (N)");
  const int64_t N = images.size(0), H = images.size(1), W = images.size(2);
  SSMKIT_CHECK(labels.size(0) == N, files.labels, ": ", labels.size(0), " labels for ", N, " images in ", files.images);
  SSMKIT_CHECK(N > 0 && H > 0 && W > 0, files.images, ": no images (", core::shape_str(images.shape()), ")");

  ImageDataset d;
  d.origin = files.images;
  d.files = {files.images, files.labels};
  d.labels = Tensor::uninitialized({N}, core::DType::I64);
  int64_t K = 0;
  for (int64_t i = 0; i < N; ++i) {
    d.labels.data<int64_t>()[i] = labels.data<uint8_t>()[i];
    K = std::max<int64_t>(K, labels.data<uint8_t>()[i] + 1);
  }
  if (classes.empty()) {
    const fs::path list = fs::path(files.images).parent_path() / "classes.txt";
    std::error_code ec;
    if (fs::is_regular_file(list, ec))
      classes = read_lines(list.string());
    else if (K <= 10 && lower(fs::absolute(files.images).parent_path().string()).find("fashion") != std::string::npos)
      classes = fashion_mnist_classes();
    else
      for (int64_t k = 0; k < K; ++k) classes.push_back(std::to_string(k));
  }
  SSMKIT_CHECK(static_cast<int64_t>(classes.size()) >= K, files.labels, ": label ", K - 1, " but only ", classes.size(),
               " class names; expected one name per class");
  d.classes = classes;
  const uint8_t* src = images.data<uint8_t>();
  const std::string err = prepare_all(N, p, d.images,
                                      [&](int64_t i) {
                                        Tensor img = Tensor::uninitialized({H, W, 1}, core::DType::U8);
                                        std::memcpy(img.data<uint8_t>(), src + i * H * W, static_cast<size_t>(H * W));
                                        return img;
                                      },
                                      {});
  SSMKIT_CHECK(err.empty(), files.images, ": ", err);
  return d;
}

// ---------------------------------------------------------------------------------------------------------
// ImageFolder

std::vector<std::string> list_image_files(const std::string& root) {
  std::error_code ec;
  SSMKIT_CHECK(fs::is_directory(root, ec), root, ": not a folder");
  // folder -> its image files; folders visited like sorted(os.walk(root, followlinks=True))
  std::map<std::string, std::vector<std::string>> by_dir;
  by_dir[fs::path(root).string()];
  auto it = fs::recursive_directory_iterator(
      root, fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied, ec);
  SSMKIT_CHECK(!ec, root, ": cannot list (", ec.message(), ")");
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    SSMKIT_CHECK(!ec, root, ": cannot list (", ec.message(), ")");
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    const bool dir = it->is_directory(ec);
    if (!name.empty() && name[0] == '.') {
      if (dir) it.disable_recursion_pending();
      continue;
    }
    if (dir) {
      if (it.depth() >= 32) it.disable_recursion_pending();  // symlink cycles
      by_dir[p.string()];
    } else if (has_image_extension(name)) {
      by_dir[p.parent_path().string()].push_back(name);
    }
  }
  std::vector<std::string> out;
  for (auto& [dir, names] : by_dir) {
    std::sort(names.begin(), names.end());
    for (const auto& n : names) out.push_back((fs::path(dir) / n).string());
  }
  return out;
}

ImageFolderIndex scan_image_folder(const std::string& root) {
  std::error_code ec;
  SSMKIT_CHECK(fs::is_directory(root, ec), root,
               ": no such folder; expected an ImageFolder root (root/<class>/<image>)");
  ImageFolderIndex idx;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name[0] != '.' && e.is_directory(ec)) idx.classes.push_back(name);
  }
  std::sort(idx.classes.begin(), idx.classes.end());
  SSMKIT_CHECK(!idx.classes.empty(), root,
               ": no class folders; expected the ImageFolder layout root/<class>/<image> "
               "(or idx files)");
  std::string empty;
  for (size_t k = 0; k < idx.classes.size(); ++k) {
    const std::vector<std::string> files = list_image_files((fs::path(root) / idx.classes[k]).string());
    if (files.empty()) empty += (empty.empty() ? "" : ", ") + idx.classes[k];
    for (const auto& f : files) {
      idx.paths.push_back(f);
      idx.labels.push_back(static_cast<int64_t>(k));
    }
  }
  SSMKIT_CHECK(empty.empty(), root, ": no image in the class folder(s) ", empty,
               "; expected .jpg, .jpeg, .png, .bmp, .tif, .tiff or .webp files");
  return idx;
}

ImageDataset load_image_folder(const std::string& root, const Preprocess& p,
                               const std::function<void(int64_t, int64_t)>& progress) {
  p.validate();
  const ImageFolderIndex idx = scan_image_folder(root);
  const int64_t N = static_cast<int64_t>(idx.paths.size());
  ImageDataset d;
  d.origin = root;
  d.classes = idx.classes;
  d.files = idx.paths;
  d.labels = Tensor::uninitialized({N}, core::DType::I64);
  std::copy(idx.labels.begin(), idx.labels.end(), d.labels.data<int64_t>());
  const std::string err = prepare_all(
      N, p, d.images, [&](int64_t i) { return read_image(idx.paths[static_cast<size_t>(i)]); }, progress);
  if (!err.empty()) throw core::Error(err);  // read_image's messages start with the file's path
  return d;
}

// ---------------------------------------------------------------------------------------------------------
// Any source, subsets, hashes, batches

ImageDataset open_image_dataset(const std::string& path, const std::string& split, const Preprocess& p,
                                const std::function<void(int64_t, int64_t)>& progress) {
  if (is_idx_source(path, split)) return load_idx_dataset(find_idx_pair(path, split), p);
  std::error_code ec;
  SSMKIT_CHECK(fs::is_directory(path, ec), path,
               fs::exists(path, ec) ? ": not an idx file nor a folder; expected idx files or an ImageFolder root"
                                    : ": no such file or folder");
  return load_image_folder(path, p, progress);
}

ImageDataset subset(const ImageDataset& d, const std::vector<int64_t>& idx) {
  ImageDataset s;
  s.classes = d.classes;
  s.files = d.files;
  s.origin = d.origin;
  const int64_t n = static_cast<int64_t>(idx.size());
  const int64_t per = d.size() > 0 ? d.images.numel() / d.size() : 0;
  core::Shape shape = d.images.shape();
  shape[0] = n;
  s.images = Tensor::uninitialized(shape, core::DType::U8);
  s.labels = Tensor::uninitialized({n}, core::DType::I64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = idx[static_cast<size_t>(i)];
    SSMKIT_CHECK(j >= 0 && j < d.size(), "subset: index ", j, " outside the ", d.size(), " samples of ", d.origin);
    std::memcpy(s.images.data<uint8_t>() + i * per, d.images.data<uint8_t>() + j * per, static_cast<size_t>(per));
    s.labels.data<int64_t>()[i] = d.labels.data<int64_t>()[j];
  }
  return s;
}

std::pair<ImageDataset, ImageDataset> split_dataset(const ImageDataset& d, double fraction, uint64_t seed) {
  SSMKIT_CHECK(fraction > 0 && fraction < 1, "split_dataset: fraction must be in (0, 1), got ", fraction);
  SSMKIT_CHECK(d.size() >= 2, "split_dataset: ", d.origin, " has ", d.size(), " samples; at least 2 are needed");
  std::vector<int64_t> order(static_cast<size_t>(d.size()));
  for (int64_t i = 0; i < d.size(); ++i) order[static_cast<size_t>(i)] = i;
  core::Rng rng(seed);
  for (int64_t i = d.size() - 1; i > 0; --i)
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng.below(static_cast<uint64_t>(i + 1)))]);
  int64_t n2 = static_cast<int64_t>(static_cast<double>(d.size()) * fraction + 0.5);
  n2 = std::clamp<int64_t>(n2, 1, d.size() - 1);
  const std::vector<int64_t> a(order.begin(), order.end() - n2), b(order.end() - n2, order.end());
  return {subset(d, a), subset(d, b)};
}

std::string dataset_sha256(const ImageDataset& d) {
  SSMKIT_CHECK(!d.files.empty(), "dataset_sha256: the set from ", d.origin, " lists no files");
  if (d.files.size() == 1) return core::sha256_file(d.files[0]);
  core::Sha256 h;
  const fs::path base = fs::is_directory(d.origin) ? fs::path(d.origin) : fs::path(d.origin).parent_path();
  for (const auto& f : d.files) {
    std::string rel = fs::path(f).lexically_relative(base).string();
    if (rel.empty() || rel.rfind("..", 0) == 0) rel = fs::path(f).filename().string();
    const std::string line = core::sha256_file(f) + "  " + rel + "\n";
    h.update(line.data(), line.size());
  }
  return h.hex();
}

Tensor gather_batch(const ImageDataset& d, const int64_t* idx, int64_t B, const Preprocess& p) {
  SSMKIT_CHECK(d.images.ndim() == 4 && d.images.size(1) == p.channels && d.images.size(2) == p.size &&
                   d.images.size(3) == p.size,
               "gather_batch: samples ", core::shape_str(d.images.shape()), " do not match the preprocessing (",
               p.channels, " channels, ", p.size, "x", p.size, ")");
  const int64_t C = p.channels, S = p.size;
  Tensor out = Tensor::uninitialized({B, C, S, S}, core::DType::F32);
  for (int64_t b = 0; b < B; ++b) {
    SSMKIT_CHECK(idx[b] >= 0 && idx[b] < d.size(), "gather_batch: index ", idx[b], " outside the ", d.size(),
                 " samples");
    normalize_planar(d.images.data<uint8_t>() + idx[b] * C * S * S, C, S, p, out.data<float>() + b * C * S * S);
  }
  return out;
}

}  // namespace ssmkit::vision
