// Image decoding and encoding on OpenCV's imgcodecs (IMREAD_UNCHANGED, so gray and alpha survive and no
// EXIF rotation is applied), with our own checks first so that errors say what is wrong: the container is
// recognised from its magic bytes, and truncation is caught from the container's structure (PNG without
// IEND, JPEG without an EOI after the last scan, RIFF/BMP shorter than their size fields) because some
// decoders return a partly grey image for a truncated file instead of failing.
// Not here: colour conversion, resizing (preprocess.cpp).
#include "ssmkit/vision/image_io.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ssmkit/core/io/safetensors.h"

namespace ssmkit::vision {

namespace {

uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Container-level completeness checks; returns "" when the data look complete.
std::string truncation_problem(const std::string& format, const uint8_t* p, size_t n) {
  if (format == "png") {
    // The IEND chunk closes every PNG (search from the end: a few writers append bytes after it).
    static const char kIend[] = "IEND";
    for (size_t i = n >= 4 ? n - 4 : 0; i >= 8; --i)
      if (std::memcmp(p + i, kIend, 4) == 0) return "";
    return "truncated PNG (no IEND chunk)";
  }
  if (format == "jpeg") {
    // In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so the last SOS (FF DA)
    // belongs to the main image and a complete file has an EOI (FF D9) after it.
    size_t last_sos = 0;
    for (size_t i = 2; i + 1 < n; ++i)
      if (p[i] == 0xFF && p[i + 1] == 0xDA) last_sos = i;
    if (last_sos == 0) return "truncated JPEG (no scan data)";
    for (size_t i = last_sos + 2; i + 1 < n; ++i)
      if (p[i] == 0xFF && p[i + 1] == 0xD9) return "";
    return "truncated JPEG (no end-of-image marker after the scan data)";
  }
  if (format == "webp") {
    if (n < 12) return "truncated WebP (shorter than its RIFF header)";
    const uint64_t riff = le32(p + 4);
    if (n < riff + 8)
      return "truncated WebP (" + std::to_string(n) + " bytes, the RIFF header says " + std::to_string(riff + 8) + ")";
  }
  if (format == "bmp") {
    if (n < 26) return "truncated BMP (shorter than its headers)";
    const uint64_t declared = le32(p + 2), data_offset = le32(p + 10);
    if (declared > 0 && n < declared)
      return "truncated BMP (" + std::to_string(n) + " bytes, the header says " + std::to_string(declared) + ")";
    if (data_offset >= n) return "truncated BMP (no pixel data)";
  }
  return "";
}

// OpenCV's own log lines (e.g. imdecode warnings) would repeat what our errors say; silence them once.
void quiet_opencv() {
  static const bool done = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return true;
  }();
  (void)done;
}

}  // namespace

std::string sniff_image_format(const void* bytes, size_t size) {
  const auto* p = static_cast<const uint8_t*>(bytes);
  if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return "jpeg";
  if (size >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return "png";
  if (size >= 2 && p[0] == 'B' && p[1] == 'M') return "bmp";
  if (size >= 4 && (std::memcmp(p, "II*\0", 4) == 0 || std::memcmp(p, "MM\0*", 4) == 0)) return "tiff";
  if (size >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) return "webp";
  return "";
}

core::Tensor decode_image(const void* bytes, size_t size, const std::string& origin) {
  quiet_opencv();
  SSMKIT_CHECK(size > 0, origin, ": empty file (0 bytes); expected a JPEG, PNG, BMP, TIFF or WebP image");
  const auto* p = static_cast<const uint8_t*>(bytes);
  const std::string format = sniff_image_format(p, size);
  if (format.empty()) {
    // Name what the bytes look like when it is obvious (a text file renamed to .jpg, say).
    const size_t head = std::min<size_t>(size, 64);
    bool text = true;
    for (size_t i = 0; i < head; ++i)
      text = text && (std::isprint(p[i]) || p[i] == '\n' || p[i] == '\r' || p[i] == '\t');
    throw core::Error(origin + ": not an image" + (text ? " (the file starts with text)" : " (unknown header)") +
                      "; expected JPEG, PNG, BMP, TIFF or WebP data");
  }
  const std::string cut = truncation_problem(format, p, size);
  SSMKIT_CHECK(cut.empty(), origin, ": ", cut, " (the file is incomplete or damaged; re-export or re-download it)");

  cv::Mat decoded;
  try {
    const cv::Mat buf(1, static_cast<int>(std::min<size_t>(size, static_cast<size_t>(INT32_MAX))), CV_8U,
                      const_cast<uint8_t*>(p));
    decoded = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw core::Error(origin + ": corrupt " + format + " data (" + e.what() + ")");
  }
  SSMKIT_CHECK(!decoded.empty(), origin, ": corrupt or unsupported ", format,
               " data (the decoder could not read it; expected an 8- or 16-bit image)");
  SSMKIT_CHECK(decoded.rows > 0 && decoded.cols > 0, origin, ": image has zero size (", decoded.cols, "x", decoded.rows,
               ")");
  const int C = decoded.channels();
  SSMKIT_CHECK(C == 1 || C == 3 || C == 4, origin, ": ", C,
               " channels; expected 1 (gray), 3 (colour) or 4 (with alpha)");
  if (decoded.depth() == CV_16U) {
    cv::Mat eight;
    decoded.convertTo(eight, CV_8U, 1.0 / 257.0);  // 65535 -> 255, rounded
    decoded = eight;
  }
  SSMKIT_CHECK(decoded.depth() == CV_8U, origin, ": unsupported sample type (OpenCV depth ", decoded.depth(),
               "); expected 8- or 16-bit integer samples");
  if (C == 3) cv::cvtColor(decoded, decoded, cv::COLOR_BGR2RGB);
  if (C == 4) cv::cvtColor(decoded, decoded, cv::COLOR_BGRA2RGBA);

  const int64_t H = decoded.rows, W = decoded.cols;
  core::Tensor out = core::Tensor::uninitialized({H, W, C}, core::DType::U8);
  uint8_t* o = out.data<uint8_t>();
  for (int64_t y = 0; y < H; ++y)
    std::memcpy(o + y * W * C, decoded.ptr<uint8_t>(static_cast<int>(y)), static_cast<size_t>(W * C));
  return out;
}

core::Tensor read_image(const std::string& path) {
  std::error_code ec;
  SSMKIT_CHECK(!std::filesystem::is_directory(path, ec), path, ": is a directory; expected an image file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  SSMKIT_CHECK(in.good(), path, ": cannot open (", std::strerror(errno), ")");
  const std::streamoff n = in.tellg();
  SSMKIT_CHECK(n >= 0, path, ": cannot read (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  in.seekg(0);
  if (n > 0) in.read(reinterpret_cast<char*>(bytes.data()), n);
  SSMKIT_CHECK(in.good() || n == 0, path, ": read error after ", in.gcount(), " of ", n, " bytes");
  return decode_image(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> encode_image(const core::Tensor& image, const std::string& ext, int jpeg_quality) {
  quiet_opencv();
  SSMKIT_CHECK(image.dtype() == core::DType::U8 && image.ndim() == 3 &&
                   (image.size(2) == 1 || image.size(2) == 3 || image.size(2) == 4),
               "encode_image: expected an (H,W,C) U8 image with C 1, 3 or 4, got ", core::dtype_name(image.dtype()),
               " ", core::shape_str(image.shape()));
  const core::Tensor img = image.contiguous();
  const int H = static_cast<int>(img.size(0)), W = static_cast<int>(img.size(1)), C = static_cast<int>(img.size(2));
  cv::Mat m(H, W, CV_8UC(C), const_cast<uint8_t*>(img.data<uint8_t>()));
  cv::Mat bgr;
  if (C == 3)
    cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
  else if (C == 4)
    cv::cvtColor(m, bgr, cv::COLOR_RGBA2BGRA);
  else
    bgr = m;
  std::vector<int> params;
  const std::string e = lower(ext);
  if (e == ".jpg" || e == ".jpeg") params = {cv::IMWRITE_JPEG_QUALITY, jpeg_quality};
  if (e == ".webp") params = {cv::IMWRITE_WEBP_QUALITY, jpeg_quality};
  std::vector<uint8_t> out;
  bool ok = false;
  try {
    ok = cv::imencode(e, bgr, out, params);
  } catch (const cv::Exception& ex) {
    throw core::Error("encode_image: cannot encode as \"" + ext + "\" (" + ex.what() + ")");
  }
  SSMKIT_CHECK(ok, "encode_image: cannot encode as \"", ext, "\"; expected .png, .jpg, .bmp, .tif or .webp");
  return out;
}

void write_image(const std::string& path, const core::Tensor& image, int jpeg_quality) {
  const std::string ext = std::filesystem::path(path).extension().string();
  SSMKIT_CHECK(!ext.empty(), path, ": no file extension; expected .png, .jpg, .bmp, .tif or .webp");
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_image(image, ext, jpeg_quality);
  } catch (const core::Error& e) {
    throw core::Error(path + ": " + e.what());
  }
  core::write_file_atomic(path, bytes.data(), bytes.size());
}

bool has_image_extension(const std::string& path) {
  const std::string e = lower(std::filesystem::path(path).extension().string());
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp" || e == ".tif" || e == ".tiff" || e == ".webp";
}

}  // namespace ssmkit::vision
