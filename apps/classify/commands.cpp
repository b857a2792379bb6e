// ssm-classify train and eval: thin wrappers printing what vision::train_classifier and
// vision::evaluate_classifier return (text or JSON on stdout) and writing the confusion-matrix picture.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/vision/classifier.h"
#include "ssmkit/vision/confusion_plot.h"
#include "ssmkit/vision/image_dataset.h"

namespace ssmkit::classify_app {

using nlohmann::json;

int run_eval(const EvalArgs& a, const CommonArgs& c) {
  std::string model = a.model, weights = a.weights;
  std::error_code ec;
  if (weights.empty()) {  // --model is the model file
    SSMKIT_CHECK(std::filesystem::is_regular_file(model, ec), model,
                 ": no such model file; expected an ssmkit .safetensors file, or a model name with --weights");
    weights = model;
    model.clear();
  }
  vision::Classifier clf = vision::load_classifier(model, weights, a.labels, !a.no_ema, a.ignore_objects);
  const auto t0 = std::chrono::steady_clock::now();
  auto load_progress = [&](int64_t done, int64_t total) {
    if (!c.quiet && total >= 1000 && (done == total || done % 1000 == 0))
      std::fprintf(stderr, "loading %s: %lld/%lld images\n", a.data.c_str(), static_cast<long long>(done),
                   static_cast<long long>(total));
  };
  vision::ImageDataset d = vision::open_image_dataset(a.data, a.split, clf.preprocess, load_progress);
  if (a.limit > 0 && a.limit < d.size()) {
    std::vector<int64_t> idx(static_cast<size_t>(a.limit));
    for (int64_t i = 0; i < a.limit; ++i) idx[static_cast<size_t>(i)] = i;
    d = vision::subset(d, idx);
  }
  const int64_t K = clf.model->num_classes();
  SSMKIT_CHECK(d.num_classes() <= K, a.data, ": ", d.num_classes(), " classes but the model has ", K, " outputs");
  if (!c.quiet) {
    for (int64_t k = 0; k < d.num_classes(); ++k)
      if (d.classes[static_cast<size_t>(k)] != clf.labels[static_cast<size_t>(k)]) {
        std::fprintf(
            stderr,
            "warning: %s: class %lld is \"%s\" in the data but \"%s\" in the model; labels are compared by index\n",
            a.data.c_str(), static_cast<long long>(k), d.classes[static_cast<size_t>(k)].c_str(),
            clf.labels[static_cast<size_t>(k)].c_str());
        break;
      }
  }
  const int64_t batch = a.batch > 0 ? a.batch : (clf.preprocess.size <= 64 ? 500 : 16);
  const vision::EvalResult r = vision::evaluate_classifier(
      *clf.model, d, clf.preprocess, batch, [&, last = int64_t{0}](int64_t done, int64_t total) mutable {
        if (!c.quiet && total > batch && (done == total || done * 10 / total != last * 10 / total))
          std::fprintf(stderr, "evaluated %lld/%lld images\n", static_cast<long long>(done),
                       static_cast<long long>(total));
        last = done;
      });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::vector<double> per = r.per_class_accuracy();
  const std::vector<int64_t> count = r.per_class_count();

  if (!a.confusion.empty()) {
    char title[160];
    std::snprintf(title, sizeof title, "%s on %s: accuracy %.2f%% (%lld images)", clf.model_name.c_str(),
                  std::filesystem::path(a.data).filename().string().c_str(), 100.0 * r.accuracy(),
                  static_cast<long long>(r.n));
    vision::write_confusion_matrix(a.confusion, r.confusion, clf.labels, title);
    if (!c.quiet) std::fprintf(stderr, "wrote %s\n", a.confusion.c_str());
  }
  std::string text;
  if (c.json) {
    json classes = json::array();
    for (int64_t k = 0; k < K; ++k)
      classes.push_back({{"class_index", k},
                         {"label", clf.labels[static_cast<size_t>(k)]},
                         {"samples", count[static_cast<size_t>(k)]},
                         {"accuracy", per[static_cast<size_t>(k)]}});
    json confusion = json::array();
    for (int64_t t = 0; t < K; ++t)
      confusion.push_back(std::vector<int64_t>(r.confusion.begin() + t * K, r.confusion.begin() + (t + 1) * K));
    json out = {{"command", c.command},
                {"model", clf.model_name},
                {"metrics",
                 {{"accuracy", r.accuracy()},
                  {"correct", r.correct},
                  {"samples", r.n},
                  {"loss", r.mean_loss()},
                  {"seconds", secs}}},
                {"results", classes},
                {"confusion", confusion}};
    text = out.dump(2) + "\n";
  } else {
    char line[512];
    std::snprintf(line, sizeof line, "accuracy %.4f (%lld/%lld), mean cross-entropy %.4f\nper-class accuracy:\n",
                  r.accuracy(), static_cast<long long>(r.correct), static_cast<long long>(r.n), r.mean_loss());
    text = line;
    for (int64_t k = 0; k < K; ++k) {
      if (count[static_cast<size_t>(k)] == 0) continue;
      std::snprintf(line, sizeof line, "  %-24s %.4f (%lld images)\n", clf.labels[static_cast<size_t>(k)].c_str(),
                    per[static_cast<size_t>(k)], static_cast<long long>(count[static_cast<size_t>(k)]));
      text += line;
    }
  }
  if (c.out.empty()) {
    std::fputs(text.c_str(), stdout);
  } else {
    core::write_file_atomic(c.out, text.data(), text.size());
    if (!c.quiet) std::fprintf(stderr, "wrote %s\n", c.out.c_str());
  }
  return 0;
}

int run_train(vision::TrainClassifierOptions o, const CommonArgs& c) {
  const vision::TrainClassifierResult r = vision::train_classifier(o);
  const double epoch_mean = r.history.empty() ? 0.0 : r.train_seconds / static_cast<double>(r.history.size());
  if (c.json) {
    json hist = json::array();
    for (const auto& e : r.history)
      hist.push_back({{"epoch", e.epoch},
                      {"train_loss", e.train_loss},
                      {"train_accuracy", e.train_accuracy},
                      {"val_accuracy", e.val_accuracy >= 0 ? json(e.val_accuracy) : json(nullptr)},
                      {"test_accuracy", e.test_accuracy >= 0 ? json(e.test_accuracy) : json(nullptr)},
                      {"test_loss", e.test_loss >= 0 ? json(e.test_loss) : json(nullptr)},
                      {"lr", e.lr},
                      {"seconds", e.seconds},
                      {"eval_seconds", e.eval_seconds}});
    json out = {{"command", c.command},
                {"model", o.model},
                {"metrics",
                 {{"finished", r.finished},
                  {"epochs", r.epochs_done},
                  {"steps", r.steps},
                  {"parameters", r.n_params},
                  {"train_samples", r.train_samples},
                  {"train_seconds", r.train_seconds},
                  {"seconds_per_epoch", epoch_mean},
                  {"test_accuracy", r.test.n > 0 ? json(r.test.accuracy()) : json(nullptr)},
                  {"test_loss", r.test.n > 0 ? json(r.test.mean_loss()) : json(nullptr)}}},
                {"results", hist},
                {"out", r.finished ? json(o.out) : json(nullptr)},
                {"checkpoint", r.checkpoint},
                {"history_csv", r.history_csv}};
    std::printf("%s\n", out.dump(2).c_str());
  } else if (r.finished) {
    std::printf("trained %s: %lld epochs, %lld steps, %s of training (%.1f s per epoch)", o.model.c_str(),
                static_cast<long long>(r.epochs_done), static_cast<long long>(r.steps), hms(r.train_seconds).c_str(),
                epoch_mean);
    if (r.test.n > 0) std::printf(", test accuracy %.4f", r.test.accuracy());
    std::printf(" -> %s\n", o.out.c_str());
  } else {
    std::printf("stopped after %lld steps (epoch %lld of %lld); checkpoint %s\n", static_cast<long long>(r.steps),
                static_cast<long long>(r.epochs_done + 1), static_cast<long long>(o.epochs), r.checkpoint.c_str());
  }
  return 0;
}

}  // namespace ssmkit::classify_app
