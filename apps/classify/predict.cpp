// ssm-classify predict: the inputs expanded (folders searched recursively, sorted), decoded and prepared in
// parallel one batch at a time, classified, and printed in input order as text, CSV or JSON; a file that
// cannot be read is reported ("error: <path>: ...") and skipped, and the exit code is 2 at the end if any was.
// A progress bar on stderr when there is more than one batch.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/vision/classifier.h"
#include "ssmkit/vision/image_dataset.h"
#include "ssmkit/vision/image_io.h"

namespace ssmkit::classify_app {

using nlohmann::json;

std::string hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

namespace {

// printf into a std::string
template <class... Args>
std::string format(const char* fmt, Args... args) {
  const int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<size_t>(n), '\0');
  std::snprintf(s.data(), s.size() + 1, fmt, args...);
  return s;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

// One line on stderr, redrawn in place on a terminal, else printed every ~10%.
class Progress {
 public:
  Progress(int64_t total, bool on)
      : total_(total), on_(on), tty_(isatty(2) != 0), start_(std::chrono::steady_clock::now()) {}
  void update(int64_t done) {
    if (!on_) return;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = el > 0 ? static_cast<double>(done) / el : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
    const int width = 30, fill = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    std::string bar(static_cast<size_t>(fill), '=');
    bar += std::string(static_cast<size_t>(width - fill), ' ');
    char line[256];
    std::snprintf(line, sizeof line, "[%s] %lld/%lld images | %.1f images/s | elapsed %s | eta %s", bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), rate, hms(el).c_str(),
                  hms(eta).c_str());
    if (tty_) {
      std::fprintf(stderr, "\r%s", line);
      if (done == total_) std::fprintf(stderr, "\n");
    } else if (done == total_ || done * 10 / total_ != last_ * 10 / total_) {
      std::fprintf(stderr, "%s\n", line);
    }
    last_ = done;
  }
  // Clears the bar before another line is printed on stderr.
  void interrupt() {
    if (on_ && tty_ && last_ > 0 && last_ < total_) std::fprintf(stderr, "\r%*s\r", 100, "");
  }

 private:
  int64_t total_, last_ = 0;
  bool on_, tty_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

int run_predict(const PredictArgs& a, const CommonArgs& c) {
  namespace fs = std::filesystem;
  vision::Classifier clf = vision::load_classifier(a.model, a.weights, a.labels, !a.no_ema, a.ignore_objects);
  const vision::Preprocess& pre = clf.preprocess;
  if (!c.quiet)
    std::fprintf(stderr, "model %s from %s (%s), %lld classes, input %lldx%lld\n", clf.model_name.c_str(),
                 a.weights.c_str(), clf.source.c_str(), static_cast<long long>(clf.model->num_classes()),
                 static_cast<long long>(pre.size), static_cast<long long>(pre.size));

  // Inputs: folders expanded (recursively, sorted, image extensions only); files taken as given.
  std::vector<std::string> paths;
  bool had_folder = false;
  for (const auto& in : a.inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      had_folder = true;
      const std::vector<std::string> files = vision::list_image_files(in);
      if (files.empty() && !c.quiet) std::fprintf(stderr, "warning: %s: no image files in this folder\n", in.c_str());
      paths.insert(paths.end(), files.begin(), files.end());
    } else {
      paths.push_back(in);
    }
  }
  const int64_t N = static_cast<int64_t>(paths.size());
  SSMKIT_CHECK(N > 0, a.inputs.front(),
               ": no image files found; expected images (.jpg, .jpeg, .png, .bmp, .tif, .tiff, "
               ".webp) or folders holding them");
  const int64_t batch = a.batch > 0 ? a.batch : (pre.size <= 64 ? 256 : 16);
  const int64_t C = pre.channels, S = pre.size, k = std::min<int64_t>(a.topk, clf.model->num_classes());
  Progress bar(N, !c.quiet && (had_folder || N > batch) && N > 1);

  // Results stream to stdout, or collect for --out (written atomically at the end).
  std::string collected;
  auto emit = [&](const std::string& text) {
    if (c.out.empty())
      std::fputs(text.c_str(), stdout);
    else
      collected += text;
  };
  json results = json::array(), errors = json::array();
  if (a.csv && !c.json) emit("path,rank,class_index,label,probability\n");
  int64_t failed = 0, done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t b0 = 0; b0 < N; b0 += batch) {
    const int64_t B = std::min(batch, N - b0);
    core::Tensor x = core::Tensor::uninitialized({B, C, S, S}, core::DType::F32);
    std::vector<std::string> err(static_cast<size_t>(B));
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < B; ++i) {
      try {
        const core::Tensor u8 = vision::prepare_image(vision::read_image(paths[static_cast<size_t>(b0 + i)]), pre);
        vision::normalize_planar(u8.data<uint8_t>(), C, S, pre, x.data<float>() + i * C * S * S);
      } catch (const std::exception& e) {
        err[static_cast<size_t>(i)] = e.what();
      }
    }
    // Forward the images that decoded, in one batch.
    std::vector<int64_t> good;
    for (int64_t i = 0; i < B; ++i)
      if (err[static_cast<size_t>(i)].empty()) good.push_back(i);
    std::vector<vision::TopK> top;
    if (!good.empty()) {
      core::Tensor xb = core::Tensor::uninitialized({static_cast<int64_t>(good.size()), C, S, S}, core::DType::F32);
      for (size_t j = 0; j < good.size(); ++j)
        std::copy(x.data<float>() + good[j] * C * S * S, x.data<float>() + (good[j] + 1) * C * S * S,
                  xb.data<float>() + static_cast<int64_t>(j) * C * S * S);
      top = vision::top_k(vision::predict_probabilities(*clf.model, xb), k);
    }
    size_t g = 0;
    for (int64_t i = 0; i < B; ++i) {
      const std::string& path = paths[static_cast<size_t>(b0 + i)];
      if (!err[static_cast<size_t>(i)].empty()) {
        ++failed;
        bar.interrupt();
        std::fprintf(stderr, "error: %s\n", err[static_cast<size_t>(i)].c_str());
        if (c.json) errors.push_back({{"path", path}, {"error", err[static_cast<size_t>(i)]}});
        continue;
      }
      const vision::TopK& t = top[g++];
      if (c.json) {
        json r = {{"path", path}, {"top", json::array()}};
        for (size_t j = 0; j < t.index.size(); ++j)
          r["top"].push_back({{"rank", j + 1},
                              {"class_index", t.index[j]},
                              {"label", clf.labels[static_cast<size_t>(t.index[j])]},
                              {"probability", t.prob[j]}});
        results.push_back(r);
      } else if (a.csv) {
        for (size_t j = 0; j < t.index.size(); ++j)
          emit(format("%s,%zu,%lld,%s,%.6f\n", csv_field(path).c_str(), j + 1, static_cast<long long>(t.index[j]),
                      csv_field(clf.labels[static_cast<size_t>(t.index[j])]).c_str(), t.prob[j]));
      } else {
        std::string line = path + "\t";
        for (size_t j = 0; j < t.index.size(); ++j)
          line += format("%s%s (%.4f)", j ? ", " : "", clf.labels[static_cast<size_t>(t.index[j])].c_str(), t.prob[j]);
        emit(line + "\n");
      }
    }
    std::fflush(stdout);
    done += B;
    bar.update(done);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (c.json) {
    json out = {{"command", c.command},
                {"model", clf.model_name},
                {"metrics",
                 {{"images", N},
                  {"classified", N - failed},
                  {"failed", failed},
                  {"seconds", secs},
                  {"images_per_second", secs > 0 ? static_cast<double>(N) / secs : 0.0}}},
                {"results", results},
                {"errors", errors}};
    emit(out.dump(2) + "\n");
  }
  if (!c.out.empty()) {
    core::write_file_atomic(c.out, collected.data(), collected.size());
    if (!c.quiet) std::fprintf(stderr, "wrote %s\n", c.out.c_str());
  }
  if (failed > 0 && !c.quiet)
    std::fprintf(stderr, "%lld of %lld images could not be classified\n", static_cast<long long>(failed),
                 static_cast<long long>(N));
  return failed > 0 ? 2 : 0;
}

}  // namespace ssmkit::classify_app
