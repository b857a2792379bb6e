// Confusion-matrix drawing on OpenCV (cv::rectangle, cv::putText with the Hershey simplex font): margins sized
// from the longest class name, cells from the class count, column names drawn horizontally on a strip that is
// then rotated by 90 degrees.
// Not here: colour bars, normalisation options.
#include "ssmkit/vision/confusion_plot.h"

#include <algorithm>
#include <cstring>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "ssmkit/vision/image_io.h"

namespace ssmkit::vision {

core::Tensor draw_confusion_matrix(const std::vector<int64_t>& confusion, const std::vector<std::string>& classes,
                                   const std::string& title) {
  const int K = static_cast<int>(classes.size());
  SSMKIT_CHECK(K > 0 && confusion.size() == static_cast<size_t>(K) * static_cast<size_t>(K),
               "draw_confusion_matrix: ", confusion.size(), " counts for ", K, " classes; expected K*K");
  const int cell = std::clamp(900 / K, 4, 64);
  const bool names = cell >= 12, counts = cell >= 24;
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const double name_scale = std::min(0.5, cell / 40.0);
  int name_w = 0, base = 0;
  if (names)
    for (const auto& c : classes) name_w = std::max(name_w, cv::getTextSize(c, font, name_scale, 1, &base).width);
  const int margin_l = names ? name_w + 50 : 30, margin_t = 50, margin_b = names ? name_w + 50 : 30, margin_r = 20;
  const int W = margin_l + K * cell + margin_r, H = margin_t + K * cell + margin_b;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Scalar black(0, 0, 0);

  cv::putText(img, title, cv::Point(10, 28), font, 0.6, black, 1, cv::LINE_AA);
  for (int t = 0; t < K; ++t) {
    int64_t row = 0;
    for (int q = 0; q < K; ++q) row += confusion[static_cast<size_t>(t * K + q)];
    for (int q = 0; q < K; ++q) {
      const int64_t v = confusion[static_cast<size_t>(t * K + q)];
      const double f = row > 0 ? static_cast<double>(v) / static_cast<double>(row) : 0.0;
      // white (255,255,255) -> dark blue (RGB 8,48,107), in BGR
      const cv::Scalar colour(255 - f * (255 - 107), 255 - f * (255 - 48), 255 - f * (255 - 8));
      const cv::Rect r(margin_l + q * cell, margin_t + t * cell, cell, cell);
      cv::rectangle(img, r, colour, cv::FILLED);
      cv::rectangle(img, r, cv::Scalar(200, 200, 200), 1);
      if (counts && v > 0) {
        const std::string s = std::to_string(v);
        double scale = std::min(0.5, cell / 60.0);
        cv::Size ts = cv::getTextSize(s, font, scale, 1, &base);
        while (ts.width > cell - 4 && scale > 0.2) ts = cv::getTextSize(s, font, scale *= 0.85, 1, &base);
        cv::putText(img, s, cv::Point(r.x + (cell - ts.width) / 2, r.y + (cell + ts.height) / 2), font, scale,
                    f > 0.5 ? cv::Scalar(255, 255, 255) : black, 1, cv::LINE_AA);
      }
    }
  }
  cv::rectangle(img, cv::Rect(margin_l, margin_t, K * cell, K * cell), black, 1);
  if (names) {
    for (int t = 0; t < K; ++t) {  // true classes, right-aligned left of the rows
      const cv::Size ts = cv::getTextSize(classes[static_cast<size_t>(t)], font, name_scale, 1, &base);
      cv::putText(img, classes[static_cast<size_t>(t)],
                  cv::Point(margin_l - 6 - ts.width, margin_t + t * cell + (cell + ts.height) / 2), font, name_scale,
                  black, 1, cv::LINE_AA);
    }
    // predicted classes: drawn right-aligned on a strip of height K*cell, then rotated 90 degrees
    // counter-clockwise, so each name reads upwards and ends just under its column
    cv::Mat strip(K * cell, name_w + 10, CV_8UC3, cv::Scalar(255, 255, 255));
    for (int q = 0; q < K; ++q) {
      const cv::Size ts = cv::getTextSize(classes[static_cast<size_t>(q)], font, name_scale, 1, &base);
      // after the rotation the strip's row y is the picture's column margin_l + y
      const int y = q * cell + (cell + ts.height) / 2;
      cv::putText(strip, classes[static_cast<size_t>(q)], cv::Point(name_w + 4 - ts.width, y), font, name_scale, black,
                  1, cv::LINE_AA);
    }
    cv::Mat turned;
    cv::rotate(strip, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
    turned.copyTo(img(cv::Rect(margin_l, margin_t + K * cell + 4, turned.cols, std::min(turned.rows, margin_b - 30))));
    cv::putText(img, "predicted", cv::Point(margin_l, H - 10), font, 0.45, black, 1, cv::LINE_AA);
    cv::putText(img, "true", cv::Point(6, margin_t - 6), font, 0.45, black, 1, cv::LINE_AA);
  }
  cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  core::Tensor out = core::Tensor::uninitialized({H, W, 3}, core::DType::U8);
  for (int y = 0; y < H; ++y)
    std::memcpy(out.data<uint8_t>() + static_cast<int64_t>(y) * W * 3, img.ptr<uint8_t>(y), static_cast<size_t>(W) * 3);
  return out;
}

void write_confusion_matrix(const std::string& path, const std::vector<int64_t>& confusion,
                            const std::vector<std::string>& classes, const std::string& title) {
  write_image(path, draw_confusion_matrix(confusion, classes, title));
}

}  // namespace ssmkit::vision
