// The confusion-matrix picture of `ssm-classify eval`: a K x K grid (rows = true class, columns = predicted
// class), each cell shaded by its share of the row (white -> dark blue) with its count written in it, class
// names on both axes (the column names turned 90 degrees), the accuracy in the title. Drawn with OpenCV's
// imgproc, written as PNG atomically.
// Not here: normalised or per-class plots; for K above ~60 the counts and names are left out (cells too small).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"

namespace ssmkit::vision {

// confusion (K,K) row-major counts; classes (K) names -> (H,W,3) U8 RGB picture.
core::Tensor draw_confusion_matrix(const std::vector<int64_t>& confusion, const std::vector<std::string>& classes,
                                   const std::string& title);
// draw_confusion_matrix + write_image(path) (atomic; the format from the extension, PNG normally).
void write_confusion_matrix(const std::string& path, const std::vector<int64_t>& confusion,
                            const std::vector<std::string>& classes, const std::string& title);

}  // namespace ssmkit::vision
