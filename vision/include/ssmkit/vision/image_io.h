// Image files in and out: JPEG, PNG, BMP, TIFF and WebP decoded through OpenCV's imgcodecs into one layout,
// an (H,W,C) U8 tensor in RGB order (C = 1 gray, 3 RGB, 4 RGBA, as stored), and PNG/JPEG/... encoding with
// atomic writes. Every failure names the file: unreadable, empty, not an image (by its first bytes), or a
// corrupt/truncated body. The orientation tag of EXIF is not applied (timm's PIL loader ignores it too).
// Not here: colour conversion and resizing (preprocess.h), 16-bit output (16-bit inputs are scaled to 8 bits).
// Shapes: H x W pixels, C channels (interleaved, row-major).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::vision {

// The container a file's first bytes announce: "jpeg", "png", "bmp", "tiff", "webp", or "" when none.
std::string sniff_image_format(const void* bytes, size_t size);

// Reads and decodes `path` -> (H,W,C) U8, RGB order, C in {1,3,4}. Throws Error "<path>: ..." when the file
// cannot be read, is empty, is no image of the five formats, or its data are corrupt or truncated.
core::Tensor read_image(const std::string& path);
// The same for bytes in memory; `origin` names them in errors.
core::Tensor decode_image(const void* bytes, size_t size, const std::string& origin);

// Encodes image (H,W,C) U8 (C 1, 3 RGB or 4 RGBA) in the format of `ext` (".png", ".jpg", ".bmp", ".tif",
// ".webp"); jpeg_quality for JPEG/WebP.
std::vector<uint8_t> encode_image(const core::Tensor& image, const std::string& ext, int jpeg_quality = 95);
// encode_image + core::write_file_atomic, the format taken from the path's extension.
void write_image(const std::string& path, const core::Tensor& image, int jpeg_quality = 95);

// Whether the path ends in one of the decoded extensions (case-insensitive): .jpg .jpeg .png .bmp .tif
// .tiff .webp (what folder scans pick up).
bool has_image_extension(const std::string& path);

}  // namespace ssmkit::vision
