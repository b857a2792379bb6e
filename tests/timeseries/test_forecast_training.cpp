// Training, evaluation, model files and prediction of forecasters (forecast_training.h,
// forecast_checkpoint.h): split borders against TSLib's numbers, evaluate() on seasonal-naive against a
// closed form (a ramp makes every window's error the same), a short DLinear run on a slice of ETTh1 that
// must beat seasonal-naive, the model file round trip and its errors, SHA-256 vectors, the forecast after
// the last row (dates continued hourly / 15-min / daily, values in original units) and an exact --resume.
// Real data: ../shared/data/timeseries or $SSMKIT_DATA_DIR/timeseries (a missing file fails the test).
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/random.h"
#include "ssmkit/core/train/trainer.h"
#include "ssmkit/core/io/sha256.h"
#include "ssmkit/timeseries/forecast_checkpoint.h"
#include "ssmkit/timeseries/forecast_training.h"

using namespace ssmkit::timeseries;
using nlohmann::json;
using ssmkit::core::Tensor;
using ssmkit::test::expect_error;
namespace fs = std::filesystem;

namespace {

std::string data_dir() {
  if (const char* env = std::getenv("SSMKIT_DATA_DIR"); env && *env) return env;
  return std::string(SSMKIT_SOURCE_DIR) + "/../shared/data";
}

std::string series_file(const std::string& relative) { return data_dir() + "/timeseries/" + relative; }

#define REQUIRE_DATA(path)                                                                         \
  if (!fs::exists(path)) {                                                                         \
    FAIL() << "dataset missing: " << (path) << " (set SSMKIT_DATA_DIR or provide ../shared/data)"; \
  }

// A fresh folder for one test's files.
fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("ssmkit_forecast_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// CSV with a date column from `start` every `step` microseconds, columns `names`, values value(row, col).
// Daily steps are written as dates only ("YYYY-MM-DD").
std::string make_csv(const std::vector<std::string>& names, int64_t rows, Micros start, int64_t step,
                     const std::function<double(int64_t, int64_t)>& value) {
  std::string s = "date";
  for (const auto& n : names) s += "," + n;
  s += "\n";
  char buf[64];
  for (int64_t r = 0; r < rows; ++r) {
    s += format_iso(start + r * step).substr(0, step % kMicrosPerDay == 0 ? 10 : std::string::npos);
    for (size_t c = 0; c < names.size(); ++c) {
      std::snprintf(buf, sizeof buf, ",%.10g", value(r, static_cast<int64_t>(c)));
      s += buf;
    }
    s += "\n";
  }
  return s;
}

Micros at(int y, int mo, int d, int h = 0, int mi = 0) {
  CivilTime c;
  c.year = y, c.month = mo, c.day = d, c.hour = h, c.minute = mi;
  return micros_from_civil(c);
}

constexpr int64_t kHour = 3600 * kMicrosPerSecond;

ProtocolOptions protocol(int64_t L, int64_t H, Features f = Features::M, const std::string& target = "") {
  ProtocolOptions o;
  o.seq_len = L;
  o.label_len = L / 2;
  o.pred_len = H;
  o.features = f;
  o.target = target;
  return o;
}

// A smooth daily-periodic series with a little noise and trend, 3 channels (the last is the target).
double wave(int64_t r, int64_t c) {
  const double t = static_cast<double>(r);
  const double noise = std::sin(12.9898 * t + 78.233 * static_cast<double>(c)) * 0.05;
  return 10.0 * static_cast<double>(c + 1) + std::sin(2 * M_PI * t / 24.0 + static_cast<double>(c)) * (1.0 + c) +
         0.002 * t + noise;
}

std::vector<float> flat_params(const ForecastModel& m) {
  std::vector<float> v;
  for (const auto& [k, t] : m.state_dict()) {
    Tensor c = t.contiguous();
    v.insert(v.end(), c.data<float>(), c.data<float>() + c.numel());
  }
  return v;
}

// These models are tiny: one thread is fastest, and OpenMP barriers on a busy shared machine cost ~10x.
const bool kOneThread = [] {
  omp_set_num_threads(1);
  return true;
}();

ForecastTrainOptions quiet_options() {
  ForecastTrainOptions o;
  o.quiet = true;
  o.log_every = 0;
  return o;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

TEST(ForecastTraining, SplitBordersMatchTslib) {
  // ETTh: border1s = [0, 12*30*24 - L, 12*30*24 + 4*30*24 - L], border2s = [8640, 11520, 14400].
  SplitBorders h = split_borders(SplitRule::EttHour, 17420, 96);
  EXPECT_EQ(std::vector<int64_t>(h.begin, h.begin + 3), (std::vector<int64_t>{0, 8544, 11424}));
  EXPECT_EQ(std::vector<int64_t>(h.end, h.end + 3), (std::vector<int64_t>{8640, 11520, 14400}));
  SplitBorders m = split_borders(SplitRule::EttMinute, 69680, 96);
  EXPECT_EQ(std::vector<int64_t>(m.begin, m.begin + 3), (std::vector<int64_t>{0, 34464, 45984}));
  EXPECT_EQ(std::vector<int64_t>(m.end, m.end + 3), (std::vector<int64_t>{34560, 46080, 57600}));
  // Custom, exchange_rate's 7588 rows: n_train = int(5311.6) = 5311, n_test = int(1517.6) = 1517, n_val = 760.
  SplitBorders c = split_borders(SplitRule::Custom, 7588, 96);
  EXPECT_EQ(std::vector<int64_t>(c.begin, c.begin + 3), (std::vector<int64_t>{0, 5215, 5975}));
  EXPECT_EQ(std::vector<int64_t>(c.end, c.end + 3), (std::vector<int64_t>{5311, 6071, 7588}));

  const std::string path = series_file("ett/ETTh1.csv");
  REQUIRE_DATA(path);
  ForecastData d = ForecastData::load(path, {}, protocol(96, 96));
  EXPECT_EQ(d.split(Split::Test).size(), 2785);  // TSLib: test 2785 at H = 96
  EXPECT_EQ(d.split(Split::Val).size(), 2785);
  EXPECT_EQ(d.split(Split::Train).size(), 8449);
  const ForecastDims dims = forecast_dims(d);
  EXPECT_EQ(dims.period, 24);
  EXPECT_EQ(dims.n_marks, 4);
  EXPECT_EQ(dims.n_channels, 7);
}

TEST(ForecastTraining, SeasonPeriodAndLrSchedules) {
  EXPECT_EQ(season_period(parse_frequency("h"), 96), 24);
  EXPECT_EQ(season_period(parse_frequency("15min"), 96), 96);
  EXPECT_EQ(season_period(parse_frequency("10min"), 96), 96);  // 144 rows a day, clamped to seq_len
  EXPECT_EQ(season_period(parse_frequency("10min"), 336), 144);
  EXPECT_EQ(season_period(parse_frequency("D"), 96), 7);
  EXPECT_EQ(season_period(parse_frequency("MS"), 96), 12);
  EXPECT_EQ(season_period(parse_frequency("h"), 12), 12);
  // TSLib adjust_learning_rate(epoch + 1): type1 keeps lr0 after epoch 1, then halves.
  EXPECT_DOUBLE_EQ(lr_after_epoch(LrAdjust::Type1, 1e-3, 1, 10), 1e-3);
  EXPECT_DOUBLE_EQ(lr_after_epoch(LrAdjust::Type1, 1e-3, 2, 10), 5e-4);
  EXPECT_DOUBLE_EQ(lr_after_epoch(LrAdjust::Type1, 1e-3, 4, 10), 1.25e-4);
  EXPECT_NEAR(lr_after_epoch(LrAdjust::Cosine, 1e-3, 5, 10), 5e-4, 1e-15);  // lr0/2 (1 + cos(pi/2))
  EXPECT_NEAR(lr_after_epoch(LrAdjust::Cosine, 1e-3, 10, 10), 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(lr_after_epoch(LrAdjust::Constant, 1e-3, 7, 10), 1e-3);
  EXPECT_EQ(parse_lr_adjust("cosine"), LrAdjust::Cosine);
  expect_error([] { parse_lr_adjust("type9"); }, "lradj 'type9': unknown");
  EXPECT_EQ(best_checkpoint_path("run/ck.safetensors"), "run/ck.best.safetensors");
}

// Seasonal-naive on ramps x_c(t) = a_c t + b_c: every window's error at step h is the same,
// a_c p (1 + floor(h / p)) / std_c on the scaled scale (std_c = a_c * population std of 0 .. n_train - 1).
TEST(ForecastTraining, EvaluateSeasonalNaiveMatchesHandComputation) {
  const int64_t T = 400, L = 48, H = 30, p = 24;
  const std::vector<double> slope = {1.0, -2.0, 0.5};
  CsvTable t = parse_csv(make_csv({"a", "b", "c"}, T, at(2020, 1, 1), kHour,
                                  [&](int64_t r, int64_t c) { return slope[static_cast<size_t>(c)] * r + 3.0 * c; }),
                         "ramp.csv");
  ForecastData d(t, protocol(L, H));
  ASSERT_EQ(d.rule(), SplitRule::Custom);
  auto model = make_forecast_model("seasonal-naive", forecast_dims(d));
  ASSERT_EQ(model->dims().period, p);
  const int64_t n_train = static_cast<int64_t>(T * 0.7);
  const double idx_std = std::sqrt((static_cast<double>(n_train) * n_train - 1.0) / 12.0);
  double sq = 0, ab = 0;
  for (int64_t h = 0; h < H; ++h) {
    const double e = static_cast<double>(p * (1 + h / p)) / idx_std;  // |a_c| cancels against std_c
    sq += e * e;
    ab += e;
  }
  const double want_mse = sq / H, want_mae = ab / H;
  const WindowDataset test = d.split(Split::Test);
  ForecastMetrics m = evaluate(*model, test, 7);
  std::printf("seasonal-naive on ramps: MSE %.8f (hand %.8f), MAE %.8f (hand %.8f), %lld windows\n", m.mse, want_mse,
              m.mae, want_mae, static_cast<long long>(m.windows));
  EXPECT_EQ(m.windows, test.size());
  EXPECT_EQ(m.windows, 80 - H + 1);  // n_test = int(400 * 0.2) rows after the L-row overlap
  EXPECT_NEAR(m.mse, want_mse, 2e-5 * want_mse);
  EXPECT_NEAR(m.mae, want_mae, 2e-5 * want_mae);
  EXPECT_NEAR(m.rmse, std::sqrt(want_mse), 2e-5 * want_mse);
  // Batch size changes nothing; drop_last keeps floor(n / B) * B windows; TSLib's vali() gives the same here.
  ForecastMetrics m32 = evaluate(*model, test, 32);
  EXPECT_NEAR(m32.mse, m.mse, 1e-9);
  ForecastMetrics md = evaluate(*model, test, 32, 16);
  EXPECT_EQ(md.windows, test.size() / 16 * 16);
  EXPECT_NEAR(md.mse, want_mse, 2e-5 * want_mse);
  EXPECT_NEAR(validation_loss(*model, test, 16), want_mse, 2e-5 * want_mse);

  // MS: only the target (moved last: channel "c") counts.
  ForecastData ms(t, protocol(L, H, Features::MS, "a"));
  EXPECT_EQ(ms.channels(), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(ms.target_offset(), 2);
  auto naive_ms = make_forecast_model("seasonal-naive", forecast_dims(ms));
  EXPECT_NEAR(evaluate(*naive_ms, ms.split(Split::Test)).mse, want_mse, 2e-5 * want_mse);
  // A model built for other dims is refused with a message naming both.
  ForecastData d24(t, protocol(24, H));
  auto naive24 = make_forecast_model("seasonal-naive", forecast_dims(d24));
  expect_error([&] { evaluate(*naive24, d.split(Split::Test)); }, "is built for seq_len 24");
}

TEST(ForecastTraining, DLinearOnEtth1SliceBeatsSeasonalNaive) {
  const std::string path = series_file("ett/ETTh1.csv");
  REQUIRE_DATA(path);
  // The first 2400 rows (100 days), custom 70/10/20 split, 96 -> 48.
  std::ifstream in(path);
  std::string text, line;
  for (int r = 0; r <= 2400 && std::getline(in, line); ++r) text += line + "\n";
  const fs::path dir = temp_dir("slice");
  write_text(dir / "etth1_slice.csv", text);
  ForecastData d = ForecastData::load((dir / "etth1_slice.csv").string(), {}, protocol(96, 48));
  ssmkit::core::manual_seed(2021);
  auto naive = make_forecast_model("seasonal-naive", forecast_dims(d));
  ForecastTrainResult rn = train_forecaster(*naive, d, quiet_options());  // evaluation only
  auto dl = make_forecast_model("dlinear", forecast_dims(d));
  ForecastTrainOptions o = quiet_options();
  o.lr = 1e-3;
  o.epochs = 3;
  ForecastTrainResult r = train_forecaster(*dl, d, o);
  std::printf(
      "ETTh1 slice 96->48: dlinear test MSE %.4f MAE %.4f (best epoch %lld, %.2f s/epoch) vs seasonal-naive "
      "%.4f / %.4f, %lld windows\n",
      r.test.mse, r.test.mae, static_cast<long long>(r.best_epoch), r.epoch_seconds, rn.test.mse, rn.test.mae,
      static_cast<long long>(r.test.windows));
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.epochs_done, 3);
  EXPECT_EQ(r.history.size(), 3u);
  EXPECT_EQ(r.test.windows, d.split(Split::Test).size());
  EXPECT_LT(r.test.mse, rn.test.mse);
  EXPECT_LT(r.test.mae, rn.test.mae);
  // The model ends with the best-val weights: its validation loss is the best one recorded.
  EXPECT_NEAR(validation_loss(*dl, d.split(Split::Val), 32), r.best_val_loss, 1e-9);
  fs::remove_all(dir);
}

TEST(ForecastTraining, ModelFileRoundTrip) {
  const fs::path dir = temp_dir("roundtrip");
  const fs::path csv = dir / "wave.csv";
  write_text(csv, make_csv({"x", "y", "OT"}, 600, at(2021, 5, 1), kHour, wave));
  CsvOptions co;
  ForecastData d = ForecastData::load(csv.string(), co, protocol(24, 12));
  ssmkit::core::manual_seed(7);
  auto model = make_forecast_model("dlinear", forecast_dims(d));
  ForecastTrainOptions o = quiet_options();
  o.epochs = 1;
  o.lr = 1e-3;
  o.out = (dir / "m.safetensors").string();
  o.training_extra = {{"command", "test"}, {"data_sha256", ssmkit::core::sha256_file(csv.string())}};
  ForecastTrainResult r = train_forecaster(*model, d, o);

  LoadedForecaster f = load_forecaster(o.out);
  EXPECT_EQ(f.model_name, "dlinear");
  EXPECT_FALSE(f.model->training());
  EXPECT_EQ(f.channels, d.channels());
  EXPECT_EQ(f.scaler.mean, d.scaler().mean);  // exact: JSON keeps 17 digits
  EXPECT_EQ(f.scaler.scale, d.scaler().scale);
  EXPECT_EQ(f.protocol.seq_len, 24);
  EXPECT_EQ(f.protocol.pred_len, 12);
  EXPECT_EQ(f.protocol.rule, SplitRule::Custom);
  EXPECT_EQ(f.protocol.freq, "h");
  EXPECT_EQ(f.config, model->config());
  EXPECT_EQ(f.preprocessing.at("date_column"), "date");
  EXPECT_EQ(f.preprocessing.at("date_format"), "YYYY-MM-DD hh:mm:ss");
  EXPECT_EQ(f.preprocessing.at("target"), "OT");
  EXPECT_EQ(f.training.at("status"), "complete");
  EXPECT_EQ(f.training.at("command"), "test");
  EXPECT_EQ(f.training.at("data_sha256").get<std::string>().size(), 64u);
  EXPECT_EQ(f.training.at("seed"), 2021);
  EXPECT_EQ(f.training.at("epochs"), 1);
  EXPECT_DOUBLE_EQ(f.training.at("test").at("mse").get<double>(), r.test.mse);
  ssmkit::core::SafetensorsFile raw = ssmkit::core::load_safetensors(o.out);
  EXPECT_EQ(raw.meta("format"), "ssmkit.checkpoint");
  EXPECT_EQ(raw.meta("format_version"), "1");
  EXPECT_EQ(raw.meta("ssmkit_version"), kSsmkitVersion);

  // Same outputs, bit for bit, and the same test metrics through forecaster_data.
  std::vector<int64_t> idx = {0, 5, 17};
  WindowBatch b = d.split(Split::Test).batch(idx.data(), 3);
  model->eval();
  EXPECT_EQ(ssmkit::core::max_abs_diff(forecast_batch(*model, b.x, b.x_mark), forecast_batch(*f.model, b.x, b.x_mark)),
            0.0);
  ForecastData again = forecaster_data(f, csv.string(), true, f.csv);
  EXPECT_DOUBLE_EQ(evaluate(*f.model, again.split(Split::Test)).mse, r.test.mse);
  fs::remove_all(dir);
}

TEST(ForecastTraining, CorruptOrForeignModelFilesThrow) {
  const fs::path dir = temp_dir("corrupt");
  const fs::path csv = dir / "wave.csv";
  write_text(csv, make_csv({"x", "OT"}, 300, at(2021, 5, 1), kHour, wave));
  ForecastData d = ForecastData::load(csv.string(), {}, protocol(24, 12));
  auto model = make_forecast_model("dlinear", forecast_dims(d));
  const std::string good = (dir / "good.safetensors").string();
  save_forecaster(good, *model, forecast_preprocessing(d, {}), json::object());
  ASSERT_NO_THROW(load_forecaster(good));

  auto bytes = [&](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string image = bytes(good);
  const std::string truncated = (dir / "truncated.safetensors").string();
  write_text(truncated, image.substr(0, image.size() / 2));
  expect_error([&] { load_forecaster(truncated); }, truncated);
  const std::string garbage = (dir / "garbage.safetensors").string();
  write_text(garbage, "this is not a model file at all, just some text");
  expect_error([&] { load_forecaster(garbage); }, garbage);
  expect_error([&] { load_forecaster((dir / "absent.safetensors").string()); }, "absent.safetensors");

  // Valid safetensors from elsewhere: no format, a training checkpoint, a newer version, bad JSON.
  ssmkit::core::NamedTensors tensors = model->state_dict();
  const std::string foreign = (dir / "foreign.safetensors").string();
  ssmkit::core::save_safetensors(foreign, tensors, {{"format", "pt"}});
  expect_error([&] { load_forecaster(foreign); },
               foreign + ": metadata \"format\" is \"pt\"; expected \"ssmkit.checkpoint\"");
  const std::string trainck = (dir / "train.safetensors").string();
  ssmkit::core::save_safetensors(trainck, tensors, {{"format", ssmkit::core::kCheckpointFormat}});
  expect_error([&] { load_forecaster(trainck); }, "this is a training checkpoint");
  const std::string newer = (dir / "newer.safetensors").string();
  ssmkit::core::save_safetensors(newer, tensors, {{"format", "ssmkit.checkpoint"}, {"format_version", "2"}});
  expect_error([&] { load_forecaster(newer); }, newer + ": format_version \"2\" is not supported");
  ssmkit::core::SafetensorsFile gf = ssmkit::core::load_safetensors(good);
  auto with_meta = [&](const std::string& name, const std::string& key, const std::string& value) {
    ssmkit::core::Metadata m = gf.metadata;
    for (auto& [k, v] : m)
      if (k == key) v = value;
    const std::string p = (dir / name).string();
    ssmkit::core::save_safetensors(p, tensors, m);
    return p;
  };
  const std::string bad_json = with_meta("badjson.safetensors", "preprocessing", "{\"channels\": [");
  expect_error([&] { load_forecaster(bad_json); }, bad_json + ": metadata \"preprocessing\" is not valid JSON");
  json cfg = model->config();
  cfg["model"] = "prophet";
  const std::string bad_model = with_meta("badmodel.safetensors", "config", cfg.dump());
  expect_error([&] { load_forecaster(bad_model); }, bad_model + ": config:");
  json pre = forecast_preprocessing(d, {});
  pre.erase("seq_len");
  const std::string no_len = with_meta("nolen.safetensors", "preprocessing", pre.dump());
  expect_error([&] { load_forecaster(no_len); }, no_len + ": preprocessing.seq_len is missing");
  // Tensors of another model (shape mismatch) name the file and the key.
  ForecastData d48 = ForecastData::load(csv.string(), {}, protocol(48, 12));
  auto other = make_forecast_model("dlinear", forecast_dims(d48));
  const std::string wrong = (dir / "wrong.safetensors").string();
  ssmkit::core::save_safetensors(wrong, other->state_dict(), gf.metadata);
  const std::string msg = ssmkit::test::error_of([&] { load_forecaster(wrong); });
  EXPECT_NE(msg.find(wrong), std::string::npos) << msg;
  EXPECT_NE(msg.find("Linear_Seasonal.weight"), std::string::npos) << msg;
  // A CSV with other columns than the model's.
  const fs::path csv2 = dir / "other.csv";
  write_text(csv2, make_csv({"x", "z"}, 300, at(2021, 5, 1), kHour, wave));
  LoadedForecaster f = load_forecaster(good);
  expect_error([&] { forecaster_data(f, csv2.string(), false, f.csv); },
               "other.csv: no column 'OT'; expected the columns");
  fs::remove_all(dir);
}

// Seasonal-naive repeats the last season, so the forecast in original units is known exactly.
TEST(ForecastTraining, PredictContinuesDatesInOriginalUnits) {
  struct Case {
    const char* name;
    Micros start;
    int64_t step;
    const char* freq;
  };
  const int64_t T = 200;
  const std::vector<Case> cases = {
      {"hourly", at(2021, 3, 27, 0), kHour, "h"},
      {"15min", at(2021, 3, 1, 0), 15 * 60 * kMicrosPerSecond, "15min"},
      {"daily", at(2019, 8, 14), kMicrosPerDay, "D"},
  };
  for (const Case& c : cases) {
    CsvTable t = parse_csv(make_csv({"load", "temp", "OT"}, T, c.start, c.step, wave), std::string(c.name) + ".csv");
    ProtocolOptions o = protocol(96, 20);
    o.splits = false;
    StandardScaler sc;
    sc.mean = {1.0, 2.0, 3.0};
    sc.scale = {2.0, 0.5, 4.0};
    ForecastData d(t, o, &sc);
    EXPECT_EQ(frequency_name(d.frequency()), c.freq) << c.name;
    auto naive = make_forecast_model("seasonal-naive", forecast_dims(d));
    const int64_t p = naive->dims().period;
    Forecast f = forecast_next(*naive, d);
    ASSERT_EQ(f.dates.size(), 20u);
    EXPECT_EQ(f.columns, (std::vector<std::string>{"load", "temp", "OT"}));
    for (int64_t h = 0; h < 20; ++h) {
      EXPECT_EQ(f.times[static_cast<size_t>(h)], c.start + (T + h) * c.step) << c.name << " step " << h;
      EXPECT_EQ(f.dates[static_cast<size_t>(h)],
                format_iso(c.start + (T + h) * c.step).substr(0, c.step % kMicrosPerDay == 0 ? 10 : std::string::npos))
          << c.name;
      for (int64_t k = 0; k < 3; ++k) {
        const double want = t.at(T - p + h % p, k);
        EXPECT_NEAR(f.values[static_cast<size_t>(h * 3 + k)], want, 2e-6 * std::abs(want)) << c.name << " " << h;
      }
    }
    if (std::string(c.name) == "hourly") {
      EXPECT_EQ(f.dates.front(), "2021-04-04 08:00:00");  // 200 h after 2021-03-27 00:00
      EXPECT_EQ(p, 24);
    }
    if (std::string(c.name) == "15min") {
      EXPECT_EQ(f.dates.front(), "2021-03-03 02:00:00");
    }
    if (std::string(c.name) == "daily") {
      EXPECT_EQ(f.dates.front(), "2020-03-01");  // 2019-08-14 + 200 days (leap year: Feb 29 before it)
      EXPECT_EQ(f.dates[19], "2020-03-20");
      EXPECT_EQ(p, 7);
    }
    // CSV text: header from the file's names.
    const std::string text = forecast_csv(f);
    EXPECT_EQ(text.substr(0, text.find('\n')), "date,load,temp,OT");
  }
  // DD/MM/YYYY dates continue in the same style; MS keeps only the target, named as in the file.
  std::string text = "when;a;b\n";
  for (int r = 0; r < 40; ++r) {
    CivilTime ct = civil_from_micros(at(2020, 2, 1) + r * kMicrosPerDay);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%02d/%02d/%04d;%d;%d\n", ct.day, ct.month, ct.year, r, 100 + r % 7);
    text += buf;
  }
  CsvTable t = parse_csv(text, "dmy.csv");
  ProtocolOptions o = protocol(14, 3, Features::MS, "b");
  o.splits = false;
  StandardScaler sc;
  sc.mean = {0.0, 100.0};
  sc.scale = {10.0, 2.0};
  ForecastData d(t, o, &sc);
  auto naive = make_forecast_model("seasonal-naive", forecast_dims(d));
  Forecast f = forecast_next(*naive, d);
  EXPECT_EQ(f.date_name, "when");
  EXPECT_EQ(f.columns, (std::vector<std::string>{"b"}));
  EXPECT_EQ(f.dates, (std::vector<std::string>{"12/03/2020", "13/03/2020", "14/03/2020"}));
  ASSERT_EQ(f.values.size(), 3u);
  for (int h = 0; h < 3; ++h) EXPECT_NEAR(f.values[static_cast<size_t>(h)], 100 + (40 - 7 + h) % 7, 1e-4);
}

TEST(ForecastTraining, ResumeGivesIdenticalParameters) {
  const fs::path dir = temp_dir("resume");
  const fs::path csv = dir / "wave.csv";
  // Noisy: with a large constant lr the validation loss stalls early, so the patience count must survive.
  write_text(csv, make_csv({"x", "y", "OT"}, 700, at(2021, 5, 1), kHour, [](int64_t r, int64_t c) {
               return wave(r, c) + 20.0 * std::sin(43758.5453 * std::sin(static_cast<double>(r * 3 + c)));
             }));
  ForecastData d = ForecastData::load(csv.string(), {}, protocol(24, 12));
  ForecastTrainOptions o = quiet_options();
  o.epochs = 8;
  o.lr = 2e-2;
  o.lradj = LrAdjust::Constant;
  o.patience = 2;
  o.seed = 11;

  ssmkit::core::manual_seed(5);
  auto full = make_forecast_model("dlinear", forecast_dims(d));
  o.checkpoint = (dir / "full.safetensors").string();
  ForecastTrainResult rf = train_forecaster(*full, d, o);
  ASSERT_TRUE(rf.finished);
  const int64_t steps = rf.steps_per_epoch;
  std::string hist;
  int64_t stall = 0;  // the first epoch without improvement (1-based), before the last one
  for (const EpochRecord& e : rf.history) {
    hist += " " + std::to_string(e.val_loss) + (e.improved ? "*" : "");
    if (!e.improved && stall == 0 && e.epoch < rf.epochs_done) stall = e.epoch;
  }
  std::printf("uninterrupted: val%s; best epoch %lld of %lld%s\n", hist.c_str(), static_cast<long long>(rf.best_epoch),
              static_cast<long long>(rf.epochs_done), rf.early_stopped ? " (early stop)" : "");
  ASSERT_GT(stall, 0) << "no epoch without improvement: the test would not exercise the patience count";

  // Interrupted in the middle of the epoch after the stall, then resumed into a freshly built model.
  ssmkit::core::manual_seed(5);
  auto part = make_forecast_model("dlinear", forecast_dims(d));
  o.checkpoint = (dir / "part.safetensors").string();
  o.stop_after_steps = stall * steps + steps / 2;
  ForecastTrainResult rp = train_forecaster(*part, d, o);
  EXPECT_FALSE(rp.finished);
  EXPECT_EQ(rp.global_step, stall * steps + steps / 2);
  EXPECT_TRUE(fs::exists(dir / "part.best.safetensors"));
  ssmkit::core::manual_seed(999);  // the checkpoint restores every random state
  auto resumed = make_forecast_model("dlinear", forecast_dims(d));
  o.stop_after_steps = 0;
  o.resume = o.checkpoint;
  ForecastTrainResult rr = train_forecaster(*resumed, d, o);
  ASSERT_TRUE(rr.finished);
  EXPECT_EQ(flat_params(*full), flat_params(*resumed));  // bit-identical best-val weights
  EXPECT_EQ(rr.best_epoch, rf.best_epoch);
  EXPECT_EQ(rr.epochs_done, rf.epochs_done);
  EXPECT_EQ(rr.early_stopped, rf.early_stopped);
  EXPECT_EQ(rr.global_step, rf.global_step);
  EXPECT_EQ(rr.test.mse, rf.test.mse);
  std::printf("resumed at step %lld: best epoch %lld of %lld, test MSE %.6f (uninterrupted %.6f)\n",
              static_cast<long long>(stall * steps + steps / 2), static_cast<long long>(rr.best_epoch),
              static_cast<long long>(rr.epochs_done), rr.test.mse, rf.test.mse);

  // Resuming with other settings is refused, naming the checkpoint and the setting.
  ForecastTrainOptions bad = o;
  bad.batch = 16;
  auto m2 = make_forecast_model("dlinear", forecast_dims(d));
  expect_error([&] { train_forecaster(*m2, d, bad); }, o.checkpoint + ": the checkpoint's run has batch = 32");
  fs::remove_all(dir);
}

TEST(ForecastTraining, DataParallelShardsGiveTheSameBitsOnAnyThreadCount) {
  // S-Mamba (dropout on) with each batch cut into 2 shards: the same weights whether the shards run one after
  // the other on one thread or at once on two; and a training of the same quality as the plain loop's.
  const fs::path dir = temp_dir("shards");
  const fs::path csv = dir / "wave.csv";
  write_text(csv, make_csv({"x", "y", "OT"}, 600, at(2021, 5, 1), kHour, wave));
  ForecastData d = ForecastData::load(csv.string(), {}, protocol(24, 12));
  const nlohmann::json cfg = {{"d_model", 16}, {"d_ff", 16}, {"e_layers", 1}, {"d_state", 2}, {"dropout", 0.1}};
  auto train = [&](int64_t shards, int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    ssmkit::core::manual_seed(3);
    auto m = make_forecast_model("smamba", forecast_dims(d), cfg);
    ForecastTrainOptions o = quiet_options();
    o.epochs = 2;
    o.lr = 1e-3;
    o.shards = shards;
    ForecastTrainResult r = train_forecaster(*m, d, o);
    omp_set_num_threads(prev);
    EXPECT_EQ(r.training.at("data_parallel_shards"), shards);
    return std::make_pair(flat_params(*m), r);
  };
  const auto [p1, r1] = train(2, 1);
  const auto [p2, r2] = train(2, 2);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(r1.test.mse, r2.test.mse);
  const auto [p0, r0] = train(1, 1);
  EXPECT_NE(p0, p1);  // other dropout masks, other sums
  std::printf("test MSE: 2 shards %.6f, plain loop %.6f\n", r1.test.mse, r0.test.mse);
  EXPECT_LT(std::abs(r1.test.mse - r0.test.mse), 0.1 * r0.test.mse);

  // Interrupted mid-epoch and resumed (on the other thread count): the shards' dropout seeds come from the
  // checkpointed global_rng(), so the result is the uninterrupted run's.
  ssmkit::core::manual_seed(3);
  auto part = make_forecast_model("smamba", forecast_dims(d), cfg);
  ForecastTrainOptions o = quiet_options();
  o.epochs = 2;
  o.lr = 1e-3;
  o.shards = 2;
  o.checkpoint = (dir / "part.safetensors").string();
  o.stop_after_steps = r1.steps_per_epoch + r1.steps_per_epoch / 2;
  ForecastTrainResult rp = train_forecaster(*part, d, o);
  EXPECT_FALSE(rp.finished);
  ssmkit::core::manual_seed(99);
  auto resumed = make_forecast_model("smamba", forecast_dims(d), cfg);
  o.stop_after_steps = 0;
  o.resume = o.checkpoint;
  const int prev = omp_get_max_threads();
  omp_set_num_threads(2);
  ForecastTrainResult rr = train_forecaster(*resumed, d, o);
  omp_set_num_threads(prev);
  ASSERT_TRUE(rr.finished);
  EXPECT_EQ(flat_params(*resumed), p1);
  EXPECT_EQ(rr.test.mse, r1.test.mse);
  fs::remove_all(dir);
}
