// The three commands of ssm-classify, as main.cpp hands them over after parsing: each returns the exit code
// (docs/conventions.md: 0 ok, 2 bad input, including "some images failed") and prints results on stdout,
// progress and per-input errors on stderr. Library errors propagate as ssmkit::core::Error (main turns them
// into "error: ..." and exit code 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/vision/classifier_train.h"

namespace ssmkit::classify_app {

struct CommonArgs {
  bool json = false, quiet = false;
  std::string command;  // the full command line, for JSON output and metadata
  std::string out;      // predict/eval: write the results here (atomically) instead of stdout
};

struct PredictArgs {
  std::string model, weights, labels;
  std::vector<std::string> inputs;  // image files and folders (searched recursively)
  int64_t topk = 5;
  int64_t batch = 0;  // 0: 256 for inputs up to 64x64, else 16
  bool csv = false;
  bool no_ema = false;
  bool ignore_objects = false;      // .pth: other objects next to the weights become inert placeholders
};
int run_predict(const PredictArgs& a, const CommonArgs& c);

struct EvalArgs {
  std::string model, weights, labels, data, split = "test", confusion;
  int64_t batch = 0, limit = 0;
  bool no_ema = false;
  bool ignore_objects = false;
};
int run_eval(const EvalArgs& a, const CommonArgs& c);

int run_train(vision::TrainClassifierOptions o, const CommonArgs& c);

// "hh:mm:ss" (or "?" for a negative/non-finite value).
std::string hms(double seconds);

}  // namespace ssmkit::classify_app
