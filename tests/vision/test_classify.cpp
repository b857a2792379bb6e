// Classifier files and the ssm-classify app end to end: a groupmamba-micro model with random weights saved with
// metadata and loaded back (same outputs, labels, model-name checks), official-key files (safetensors with
// 'module.' prefixes, .pth dispatch), top-k; the app's predict on the image fixtures (text, CSV and JSON output,
// --topk, exit code 2 with a bad file in the list while the others are still classified, exit code 1 for a bad
// flag), a 1-epoch training on 256 Fashion-MNIST images followed by eval (accuracy above chance, confusion PNG),
// and exact resume: runs stopped mid-epoch or at an epoch's end and resumed end with the same weights as an
// uninterrupted one (two data-parallel shards); a resume with other settings is refused.
// The app tests run build/bin/ssm-classify next to this test's folder and are skipped when it is not built.
// Everything runs on one thread: the models are small, and OpenMP barriers on a busy 2-core machine cost more
// than the work (a step of 16 images took 2 s with 2 threads while other jobs ran, 0.1 s with one).
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/vision/classifier.h"
#include "ssmkit/vision/classifier_train.h"
#include "ssmkit/vision/image_io.h"

using namespace ssmkit;
using core::DType;
using core::Tensor;
using nlohmann::json;
using test::expect_error;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(SSMKIT_TEST_DATA_DIR) + "/vision/" + name; }

fs::path temp_dir(const std::string& name) {
  // the process id keeps concurrent runs of the suite (two build folders, say) apart
  fs::path p = fs::temp_directory_path() / ("ssmkit_test_classify_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// build/tests/test_classify -> build/bin/ssm-classify ("" when absent)
std::string app_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = 0;
  const fs::path p = fs::path(buf).parent_path().parent_path() / "bin" / "ssm-classify";
  return fs::exists(p) ? p.string() : "";
}

struct AppRun {
  int code = -1;
  std::string out, err;
};

// Runs the app with `args` (already shell-quoted where needed), capturing stdout and stderr.
AppRun run_app(const std::string& args, const fs::path& dir) {
  AppRun r;
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = app_path() + " " + args + " --threads 1 > " + out.string() + " 2> " + err.string();
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

// One OpenMP thread for the in-process tests (see the file comment).
const bool kOneThread = [] {
  omp_set_num_threads(1);
  return true;
}();

std::vector<std::string> ten_labels() {
  return {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
}

// A groupmamba-micro with random (seeded) weights saved as an ssmkit model file.
std::shared_ptr<vision::VisionModel> save_random_micro(const std::string& path) {
  core::Rng rng(7);
  vision::VisionModelOptions o;
  o.rng = &rng;
  auto m = vision::make_vision_model("groupmamba-micro", o);
  m->eval();
  vision::save_classifier(path, *m, "groupmamba-micro", vision::default_preprocess(*m), ten_labels(),
                          json{{"command", "test"}});
  return m;
}

// The first n training and test images of Fashion-MNIST as idx files in dir/fashion_small ("" when the data
// are not there).
std::string small_fashion(const fs::path& dir, int64_t n_train, int64_t n_test) {
  const std::string src = std::string(SSMKIT_SOURCE_DIR) + "/../shared/data/vision/fashion_mnist";
  if (!fs::exists(src)) return "";
  const fs::path out = dir / "fashion_small";
  fs::create_directories(out);
  for (auto [split, n] : {std::pair<std::string, int64_t>{"train", n_train}, {"t10k", n_test}}) {
    const Tensor img = vision::read_idx(src + "/" + split + "-images-idx3-ubyte.gz").slice(0, 0, n);
    const Tensor lab = vision::read_idx(src + "/" + split + "-labels-idx1-ubyte.gz").slice(0, 0, n);
    vision::write_idx((out / (split + "-images-idx3-ubyte.gz")).string(), img, true);
    vision::write_idx((out / (split + "-labels-idx1-ubyte.gz")).string(), lab, true);
  }
  return out.string();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Library: model files

TEST(Classifier, SaveLoadRoundTrip) {
  const fs::path dir = temp_dir("roundtrip");
  const std::string path = (dir / "micro.safetensors").string();
  auto m = save_random_micro(path);
  const vision::Classifier c = vision::load_classifier("", path);
  EXPECT_EQ(c.model_name, "groupmamba-micro");
  EXPECT_EQ(c.labels, ten_labels());
  EXPECT_EQ(c.preprocess.size, 32);
  EXPECT_EQ(c.preprocess.channels, 1);
  EXPECT_EQ(c.training.value("command", ""), "test");
  EXPECT_FALSE(c.model->training());
  // the same outputs as the model that was saved
  const Tensor x = test::random_tensor({3, 1, 32, 32}, 5, -1, 1, DType::F32);
  const Tensor p0 = vision::predict_probabilities(*m, x), p1 = vision::predict_probabilities(*c.model, x);
  EXPECT_EQ(core::max_abs_diff(p0, p1), 0.0);
  const std::vector<double> pv = p1.to_double_vector();
  for (int b = 0; b < 3; ++b)
    EXPECT_NEAR(std::accumulate(pv.begin() + 10 * b, pv.begin() + 10 * b + 10, 0.0), 1.0, 1e-5);
  // metadata as docs/conventions.md lists it
  const core::SafetensorsFile f = core::load_safetensors(path);
  EXPECT_EQ(f.meta("format"), "ssmkit.checkpoint");
  EXPECT_EQ(f.meta("format_version"), "1");
  EXPECT_EQ(json::parse(f.meta("preprocessing")).at("pad"), 2);
  EXPECT_EQ(json::parse(f.meta("labels")).size(), 10u);
  // errors name the file
  expect_error([&] { vision::load_classifier("simba-micro", path); },
               path + ": holds a groupmamba-micro model, not simba-micro");
  std::ofstream(dir / "labels3.txt") << "a\nb\nc\n";
  expect_error([&] { vision::load_classifier("", path, (dir / "labels3.txt").string()); },
               "labels3.txt: 3 class names; expected 10");
  const std::string text = fixture("not_an_image.jpg");
  expect_error([&] { vision::load_classifier("", text); }, text + ": not a safetensors file nor a PyTorch checkpoint");
  fs::remove_all(dir);
}

TEST(Classifier, OfficialKeyFiles) {
  const fs::path dir = temp_dir("official");
  core::Rng rng(3);
  vision::VisionModelOptions o;
  o.rng = &rng;
  auto m = vision::make_vision_model("groupmamba-micro", o);
  // a DataParallel-style file without metadata: needs --model, loads 1:1 once 'module.' is stripped
  core::NamedTensors prefixed;
  for (const auto& [k, t] : m->state_dict()) prefixed.emplace_back("module." + k, t);
  const std::string path = (dir / "official.safetensors").string();
  core::save_safetensors(path, prefixed, {{"format", "pt"}});
  expect_error([&] { vision::load_classifier("", path); }, path + ": the file has no ssmkit metadata");
  const vision::Classifier c = vision::load_classifier("groupmamba-micro", path);
  EXPECT_EQ(c.labels.front(), "0");  // no names stored, 10 classes
  m->eval();
  const Tensor x = test::random_tensor({2, 1, 32, 32}, 9, -1, 1, DType::F32);
  EXPECT_EQ(core::max_abs_diff(vision::predict_probabilities(*m, x), vision::predict_probabilities(*c.model, x)), 0.0);
  // a .pth is read natively; one whose keys are not the model's is refused naming the file and the keys
  const std::string pth = std::string(SSMKIT_TEST_DATA_DIR) + "/pytorch/nested.pth";
  const std::string e = test::error_of([&] { vision::load_classifier("groupmamba-micro", pth); });
  EXPECT_NE(e.find("nested.pth: only 0 of the "), std::string::npos) << e;
  EXPECT_NE(e.find("tensors of groupmamba-micro are in the file (first missing: patch_embed1.conv.0.weight"),
            std::string::npos)
      << e;
  // ImageNet names for 1000 classes
  const std::vector<std::string> names = vision::imagenet_class_names();
  ASSERT_EQ(names.size(), 1000u);
  EXPECT_EQ(names.front(), "tench");
  EXPECT_EQ(names.back(), "toilet tissue");
  fs::remove_all(dir);
}

TEST(Classifier, TopK) {
  const Tensor p = Tensor::from_vector({2, 4}, std::vector<float>{0.1f, 0.4f, 0.4f, 0.1f, 0.7f, 0.1f, 0.15f, 0.05f});
  const std::vector<vision::TopK> t = vision::top_k(p, 3);
  EXPECT_EQ(t[0].index, (std::vector<int64_t>{1, 2, 0}));  // ties: lower index first
  EXPECT_EQ(t[1].index, (std::vector<int64_t>{0, 2, 1}));
  EXPECT_NEAR(t[1].prob[0], 0.7, 1e-7);
  EXPECT_EQ(vision::top_k(p, 10)[0].index.size(), 4u);  // clipped to K
}

// ---------------------------------------------------------------------------------------------------------
// The app: predict

TEST(ClassifyApp, PredictOutputsAndFailures) {
  if (app_path().empty()) GTEST_SKIP() << "build/bin/ssm-classify not built";
  const fs::path dir = temp_dir("predict");
  const std::string model = (dir / "micro.safetensors").string();
  save_random_micro(model);
  const fs::path folder = dir / "images";
  fs::create_directories(folder / "nested");
  fs::copy_file(fixture("rgb_40x30.png"), folder / "a.png");
  fs::copy_file(fixture("rgb_40x30.webp"), folder / "nested" / "b.webp");
  const std::string png = fixture("rgb_40x30.png"), jpg = fixture("rgb_40x30.jpg"), gray = fixture("gray_40x30.png");
  const std::string rgba = fixture("rgba_40x30.png"), bad = fixture("not_an_image.jpg"),
                    trunc = fixture("truncated.png");

  // text: one line per image, "path<TAB>label (p), ..." with --topk entries
  AppRun r =
      run_app("predict --weights " + model + " --topk 3 --quiet " + png + " " + jpg + " " + gray + " " + rgba, dir);
  EXPECT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    EXPECT_NE(line.find('\t'), std::string::npos) << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), '('), 3) << line;
  }
  EXPECT_EQ(n, 4);

  // JSON with a bad file and a truncated one among good ones and a folder: the others are classified, exit 2
  r = run_app("predict --model groupmamba-micro --weights " + model + " --topk 2 --json " + png + " " + bad + " " +
                  folder.string() + " " + trunc,
              dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("error: " + bad + ": not an image"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error: " + trunc + ": truncated PNG"), std::string::npos) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("model"), "groupmamba-micro");
  EXPECT_EQ(j.at("metrics").at("images"), 5);
  EXPECT_EQ(j.at("metrics").at("failed"), 2);
  ASSERT_EQ(j.at("results").size(), 3u);
  EXPECT_EQ(j["results"][0]["path"], png);
  EXPECT_EQ(fs::path(j["results"][1]["path"].get<std::string>()).filename(), "a.png");  // folder order
  EXPECT_EQ(fs::path(j["results"][2]["path"].get<std::string>()).filename(), "b.webp");
  for (const auto& res : j["results"]) {
    ASSERT_EQ(res["top"].size(), 2u);
    EXPECT_GE(res["top"][0]["probability"].get<double>(), res["top"][1]["probability"].get<double>());
    EXPECT_EQ(res["top"][0]["label"], ten_labels()[res["top"][0]["class_index"].get<size_t>()]);
  }
  // the same image gives the same classes whatever its place in the batch (probabilities to rounding)
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(j["results"][0]["top"][k]["class_index"], j["results"][1]["top"][k]["class_index"]);
    EXPECT_NEAR(j["results"][0]["top"][k]["probability"].get<double>(),
                j["results"][1]["top"][k]["probability"].get<double>(), 1e-6);
  }
  ASSERT_EQ(j.at("errors").size(), 2u);
  EXPECT_EQ(j["errors"][0]["path"], bad);

  // CSV: header, then one row per (image, rank)
  r = run_app("predict --weights " + model + " --topk 2 --csv --quiet --batch 1 " + png + " " + gray, dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("path,rank,class_index,label,probability\n" + png + ",1,", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5);

  // --out: the same rows in a file, nothing on stdout
  const fs::path csv = dir / "out.csv";
  const std::string streamed = r.out;
  r = run_app(
      "predict --weights " + model + " --topk 2 --csv --quiet --batch 1 --out " + csv.string() + " " + png + " " + gray,
      dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_EQ(read_text(csv), streamed);

  // usage errors exit 1, bad weights 2 with the path
  EXPECT_EQ(run_app("predict --weights " + model + " --no-such-flag " + png, dir).code, 1);
  r = run_app("predict --weights " + bad + " " + png, dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("error: " + bad + ": not a safetensors file"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------------------
// The app: train then eval

TEST(ClassifyApp, TrainOneEpochThenEval) {
  if (app_path().empty()) GTEST_SKIP() << "build/bin/ssm-classify not built";
  const fs::path dir = temp_dir("train");
  const std::string data = small_fashion(dir, 256, 200);
  ASSERT_FALSE(data.empty()) << "dataset missing: ../shared/data/vision/fashion_mnist (next to the source tree)";
  const std::string out = (dir / "fm.safetensors").string();
  AppRun r = run_app("train --data " + data + " --test " + data + " --model groupmamba-micro --epochs 1 --batch 64 " +
                         "--warmup-epochs 0 --out " + out + " --json --quiet",
                     dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const json t = json::parse(r.out);
  EXPECT_TRUE(t.at("metrics").at("finished").get<bool>());
  EXPECT_EQ(t["metrics"]["steps"], 4);
  EXPECT_EQ(t["metrics"]["train_samples"], 256);
  const double test_acc = t["metrics"]["test_accuracy"].get<double>();
  std::printf("1 epoch (4 steps) on 256 images: test accuracy %.3f on 200 (chance 0.1), %.1f s per epoch\n", test_acc,
              t["metrics"]["seconds_per_epoch"].get<double>());
  EXPECT_GT(test_acc, 0.15);  // chance gives 0.10 +- 0.02
  EXPECT_TRUE(fs::exists(dir / "fm.train.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "fm.train.history.csv"));
  // the model file's metadata
  const core::SafetensorsFile f = core::load_safetensors(out);
  const json training = json::parse(f.meta("training"));
  EXPECT_EQ(training.at("epochs"), 1);
  EXPECT_EQ(training.at("data_sha256").get<std::string>().size(), 64u);
  EXPECT_NEAR(training.at("test_accuracy").get<double>(), test_acc, 1e-12);
  EXPECT_EQ(json::parse(f.meta("labels"))[0], "T-shirt/top");  // the folder's path says "fashion"

  // eval gives the same accuracy on the same images, and draws the confusion matrix
  const std::string png = (dir / "confusion.png").string();
  r = run_app("eval --model " + out + " --data " + data + " --json --quiet --confusion " + png, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const json e = json::parse(r.out);
  EXPECT_NEAR(e.at("metrics").at("accuracy").get<double>(), test_acc, 1e-12);
  EXPECT_EQ(e["metrics"]["samples"], 200);
  ASSERT_EQ(e.at("results").size(), 10u);
  int64_t total = 0;
  for (const auto& row : e.at("confusion"))
    for (const auto& v : row) total += v.get<int64_t>();
  EXPECT_EQ(total, 200);
  const Tensor pic = vision::read_image(png);
  EXPECT_EQ(pic.size(2), 3);
  EXPECT_GT(pic.size(0), 300);
  // text output names every class
  r = run_app("eval --model " + out + " --data " + data + " --quiet --limit 50", dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("accuracy "), std::string::npos);
  EXPECT_NE(r.out.find("Ankle boot"), std::string::npos) << r.out;
  // a missing data folder is exit code 2 with the path
  r = run_app("eval --model " + out + " --data " + (dir / "nope").string(), dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("error: " + (dir / "nope").string() + ": no such file or folder"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------------------
// Exact resume (library)

TEST(ClassifyTrain, ResumeIsExact) {
  const fs::path dir = temp_dir("resume");
  const std::string data = small_fashion(dir, 32, 10);
  ASSERT_FALSE(data.empty()) << "dataset missing: ../shared/data/vision/fashion_mnist (next to the source tree)";
  vision::TrainClassifierOptions o;
  o.data = data;
  o.model = "groupmamba-micro";
  o.epochs = 2;
  o.batch = 16;  // 2 steps per epoch
  o.augment.erase_prob = 0.5;
  o.quiet = true;
  o.seed = 11;
  o.shards = 2;  // data-parallel (each shard's drop path from its own generator), on any thread count
  o.out = (dir / "straight.safetensors").string();
  const vision::TrainClassifierResult a = vision::train_classifier(o);
  ASSERT_TRUE(a.finished);
  EXPECT_EQ(a.steps, 4);

  o.out = (dir / "resumed.safetensors").string();
  o.stop_after = 3;  // mid-epoch 2
  const vision::TrainClassifierResult s = vision::train_classifier(o);
  EXPECT_FALSE(s.finished);
  EXPECT_EQ(s.steps, 3);
  EXPECT_FALSE(fs::exists(o.out));
  o.stop_after = 0;
  o.resume = s.checkpoint;
  const vision::TrainClassifierResult b = vision::train_classifier(o);
  ASSERT_TRUE(b.finished);
  EXPECT_EQ(b.steps, 4);
  EXPECT_EQ(b.history.size(), 2u);

  const core::SafetensorsFile fa = core::load_safetensors((dir / "straight.safetensors").string());
  const core::SafetensorsFile fb = core::load_safetensors((dir / "resumed.safetensors").string());
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  double worst = 0;
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    ASSERT_EQ(fa.tensors[i].first, fb.tensors[i].first);
    worst = std::max(worst, core::max_abs_diff(fa.tensors[i].second, fb.tensors[i].second));
  }
  EXPECT_EQ(worst, 0.0) << "a resumed run must end with bit-identical weights";

  // a stop at an epoch's end runs that epoch's end first (history row, checkpoint), and resumes as exactly
  o.resume.clear();
  o.out = (dir / "resumed2.safetensors").string();
  o.checkpoint = (dir / "stop2.train.safetensors").string();
  o.stop_after = 2;
  const vision::TrainClassifierResult s2 = vision::train_classifier(o);
  EXPECT_FALSE(s2.finished);
  EXPECT_EQ(s2.steps, 2);
  EXPECT_EQ(s2.history.size(), 1u);
  o.stop_after = 0;
  o.resume = o.checkpoint;
  ASSERT_TRUE(vision::train_classifier(o).finished);
  const core::SafetensorsFile fc = core::load_safetensors(o.out);
  for (size_t i = 0; i < fa.tensors.size(); ++i)
    EXPECT_EQ(core::max_abs_diff(fa.tensors[i].second, fc.tensors[i].second), 0.0) << fa.tensors[i].first;

  // a resume with other settings is refused, naming the flag
  o.batch = 8;
  expect_error([&] { vision::train_classifier(o); }, "--batch is 8 here but 16 in the checkpoint");
  o.batch = 16;
  o.shards = 1;
  expect_error([&] { vision::train_classifier(o); }, "--shards is 1 here but 2 in the checkpoint");
  o.shards = 2;
  o.resume = (dir / "straight.safetensors").string();  // a model file, not a training checkpoint
  expect_error([&] { vision::train_classifier(o); }, "not a training checkpoint of ssm-classify train");
  fs::remove_all(dir);
}
