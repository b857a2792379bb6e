// The forecast plot of ssm-forecast predict, drawn with OpenCV (cv::line / cv::putText, PNG via
// cv::imencode) and written atomically: one panel per variable with the recent history (blue) and the
// forecast (orange) after a dashed line at the forecast start; y axis ticks in the data's units, dates
// under the x axis. Not here: anti-aliased fonts or legends beyond two labels (OpenCV's Hershey font).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "forecast_app.h"
#include "ssmkit/core/error.h"
#include "ssmkit/core/io/safetensors.h"

namespace ssm_forecast {

namespace {

const cv::Scalar kBlack(0, 0, 0), kGrid(225, 225, 225), kAxis(90, 90, 90);
const cv::Scalar kHistory(180, 100, 31), kForecast(14, 127, 255);  // BGR: matplotlib blue / orange
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

std::string tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void text(cv::Mat& img, const std::string& s, cv::Point p, double scale, const cv::Scalar& color, int align = 0) {
  int base = 0;
  const cv::Size sz = cv::getTextSize(s, kFont, scale, 1, &base);
  if (align == 1) p.x -= sz.width / 2;  // centred
  if (align == 2) p.x -= sz.width;      // right-aligned
  cv::putText(img, s, p, kFont, scale, color, 1, cv::LINE_AA);
}

void dashed_vline(cv::Mat& img, int x, int y0, int y1, const cv::Scalar& c) {
  for (int y = y0; y < y1; y += 8) cv::line(img, {x, y}, {x, std::min(y + 4, y1)}, c, 1, cv::LINE_AA);
}

}  // namespace

void write_forecast_png(const std::string& path, const std::string& title,
                        const std::vector<std::string>& history_dates, const std::vector<std::string>& forecast_dates,
                        const std::vector<PlotSeries>& series) {
  SSMKIT_CHECK(!series.empty(), path, ": nothing to plot; expected at least one variable");
  const int W = 1200, panel_h = 210, top = 44, left = 90, right = 24, gap = 58;
  const int H = top + static_cast<int>(series.size()) * (panel_h + gap);
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  text(img, title, {W / 2, 28}, 0.65, kBlack, 1);

  const int n_hist = static_cast<int>(history_dates.size()), n_fc = static_cast<int>(forecast_dates.size());
  const int n_all = std::max(2, n_hist + n_fc);
  const int plot_w = W - left - right;
  auto x_of = [&](int i) {
    return left + static_cast<int>(std::lround(static_cast<double>(i) * plot_w / (n_all - 1)));
  };

  for (size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& s = series[k];
    const int y0 = top + static_cast<int>(k) * (panel_h + gap) + 18, y1 = y0 + panel_h - 18;
    double lo = INFINITY, hi = -INFINITY;
    for (double v : s.history) lo = std::min(lo, v), hi = std::max(hi, v);
    for (double v : s.forecast) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
    const double pad = 0.06 * (hi - lo);
    lo -= pad, hi += pad;
    auto y_of = [&](double v) { return y1 - static_cast<int>(std::lround((v - lo) / (hi - lo) * (y1 - y0))); };

    // Grid and y ticks at round values (1, 2 or 5 times a power of ten), frame.
    const double raw_step = (hi - lo) / 4.0, mag = std::pow(10.0, std::floor(std::log10(raw_step)));
    const double unit = raw_step / mag < 1.5 ? 1.0 : raw_step / mag < 3.5 ? 2.0 : raw_step / mag < 7.5 ? 5.0 : 10.0;
    const double step = unit * mag;
    for (double v = std::ceil(lo / step) * step; v <= hi; v += step) {
      const int y = y_of(v);
      cv::line(img, {left, y}, {left + plot_w, y}, kGrid, 1);
      text(img, tick(std::abs(v) < 1e-9 * step ? 0.0 : v), {left - 8, y + 4}, 0.38, kAxis, 2);
    }
    cv::rectangle(img, {left, y0}, {left + plot_w, y1}, kAxis, 1);
    // Panel title (the variable, which is also the y axis quantity) and legend.
    text(img, s.name, {left, y0 - 6}, 0.5, kBlack);
    text(img, "history", {left + plot_w - 150, y0 - 6}, 0.42, kHistory);
    text(img, "forecast", {left + plot_w - 70, y0 - 6}, 0.42, kForecast);
    // x labels: first date, forecast start, last date; axis caption.
    if (n_hist > 0) text(img, history_dates.front(), {x_of(0), y1 + 16}, 0.36, kAxis);
    if (n_fc > 0) {
      text(img, forecast_dates.front(), {x_of(n_hist), y1 + 16}, 0.36, kAxis, 1);
      text(img, forecast_dates.back(), {x_of(n_hist + n_fc - 1), y1 + 16}, 0.36, kAxis, 2);
    }
    text(img, "date", {left + plot_w / 2, y1 + 32}, 0.4, kAxis, 1);

    // Curves: history, then the forecast joined to the last history point.
    std::vector<cv::Point> h, f;
    for (int i = 0; i < static_cast<int>(s.history.size()); ++i)
      h.push_back({x_of(i), y_of(s.history[static_cast<size_t>(i)])});
    if (!h.empty()) f.push_back(h.back());
    for (int i = 0; i < static_cast<int>(s.forecast.size()); ++i)
      f.push_back({x_of(n_hist + i), y_of(s.forecast[static_cast<size_t>(i)])});
    if (n_hist > 0 && n_fc > 0) dashed_vline(img, x_of(n_hist), y0, y1, kAxis);
    if (h.size() > 1) cv::polylines(img, h, false, kHistory, 2, cv::LINE_AA);
    if (f.size() > 1) cv::polylines(img, f, false, kForecast, 2, cv::LINE_AA);
  }
  text(img, "value (original units)", {8, 16}, 0.38, kAxis);

  std::vector<uchar> png;
  SSMKIT_CHECK(cv::imencode(".png", img, png), path, ": PNG encoding failed");
  ssmkit::core::write_file_atomic(path, png.data(), png.size());
}

}  // namespace ssm_forecast
