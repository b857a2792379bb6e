// The Time-Series-Library protocol on the real files (../shared/data/timeseries, or $SSMKIT_DATA_DIR):
// split borders and window counts against the numbers TSLib's data_loader.py formulas give (e.g. ETTh1
// 96->96: 8449 / 2785 / 2785 windows), scaler statistics against a direct computation, window contents,
// time marks, feature modes, and the inputs of a forecast after the last row.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "ssmkit/timeseries/csv_reader.h"
#include "ssmkit/timeseries/protocol.h"
#include "ssmkit/timeseries/time_features.h"

using namespace ssmkit::timeseries;
using ssmkit::test::expect_error;

namespace {

// ../shared/data next to the source tree, or $SSMKIT_DATA_DIR.
std::string data_dir() {
  if (const char* env = std::getenv("SSMKIT_DATA_DIR"); env && *env) return env;
  return std::string(SSMKIT_SOURCE_DIR) + "/../shared/data";
}

std::string series_file(const std::string& relative) { return data_dir() + "/timeseries/" + relative; }

#define REQUIRE_FILE(path)                                                                     \
  ASSERT_TRUE(std::filesystem::exists(path))                                                   \
      << "dataset missing: " << (path) << " (set SSMKIT_DATA_DIR or provide ../shared/data)"

ProtocolOptions options(int64_t pred_len, Features features = Features::M, const std::string& target = "") {
  ProtocolOptions o;
  o.seq_len = 96;
  o.label_len = 48;
  o.pred_len = pred_len;
  o.features = features;
  o.target = target;
  return o;
}

CsvOptions loose_time() {  // keep file order: weather.csv repeats a timestamp
  CsvOptions o;
  o.strict_time = false;
  return o;
}

struct Counts {
  int64_t train, val, test;
};

void expect_counts(const ForecastData& d, Counts want, const std::string& what) {
  EXPECT_EQ(d.split(Split::Train).size(), want.train) << what << " train";
  EXPECT_EQ(d.split(Split::Val).size(), want.val) << what << " val";
  EXPECT_EQ(d.split(Split::Test).size(), want.test) << what << " test";
}

// Mean and population std of table column c over rows [0, n), in long double.
void direct_stats(const CsvTable& t, int64_t c, int64_t n, double* mean, double* std) {
  long double s = 0, q = 0;
  for (int64_t r = 0; r < n; ++r) s += t.at(r, c);
  long double m = s / n;
  for (int64_t r = 0; r < n; ++r) q += (t.at(r, c) - m) * (t.at(r, c) - m);
  *mean = static_cast<double>(m);
  *std = static_cast<double>(std::sqrt(q / n));
}

}  // namespace

TEST(Protocol, EttHourBordersAndWindowCounts) {
  const std::string path = series_file("ett/ETTh1.csv");
  REQUIRE_FILE(path);
  CsvTable t = read_csv(path);
  ASSERT_EQ(t.rows(), 17420);
  ForecastData d(t, options(96));
  EXPECT_EQ(d.rule(), SplitRule::EttHour);
  const SplitBorders& b = d.borders();
  // border1s = [0, 8640 - 96, 11520 - 96], border2s = [8640, 11520, 14400]
  EXPECT_EQ(std::vector<int64_t>(b.begin, b.begin + 3), (std::vector<int64_t>{0, 8544, 11424}));
  EXPECT_EQ(std::vector<int64_t>(b.end, b.end + 3), (std::vector<int64_t>{8640, 11520, 14400}));
  expect_counts(d, {8449, 2785, 2785}, "ETTh1 96");
  expect_counts(ForecastData(t, options(192)), {8353, 2689, 2689}, "ETTh1 192");
  expect_counts(ForecastData(t, options(336)), {8209, 2545, 2545}, "ETTh1 336");
  expect_counts(ForecastData(t, options(720)), {7825, 2161, 2161}, "ETTh1 720");
  EXPECT_EQ(frequency_name(d.frequency()), "h");
  EXPECT_EQ(d.channels(), (std::vector<std::string>{"HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"}));
  EXPECT_EQ(d.target(), "OT");
  EXPECT_EQ(d.n_marks(), 4);
  // The scaler: train rows [0, 8640) only; exact references (math.fsum) and a long-double pass.
  EXPECT_NEAR(d.scaler().mean[0], 7.937742245659508, 1e-12);
  EXPECT_NEAR(d.scaler().scale[0], 5.812749409143771, 1e-12);
  EXPECT_NEAR(d.scaler().mean[6], 17.1282616982271, 1e-12);
  EXPECT_NEAR(d.scaler().scale[6], 9.176491024944333, 1e-12);
  double worst = 0;
  for (int64_t c = 0; c < 7; ++c) {
    double m = 0, s = 0;
    direct_stats(t, c, 8640, &m, &s);
    worst = std::max({worst, std::abs(m - d.scaler().mean[c]), std::abs(s - d.scaler().scale[c])});
  }
  std::printf("ETTh1 scaler vs direct: max abs diff %.3g\n", worst);
  EXPECT_LT(worst, 1e-12);
  double full_mean = 0, full_std = 0;
  direct_stats(t, 6, t.rows(), &full_mean, &full_std);
  EXPECT_GT(std::abs(full_mean - d.scaler().mean[6]), 0.1);  // not fitted on the whole file
}

TEST(Protocol, EttHourWindowsAndMarks) {
  const std::string path = series_file("ett/ETTh1.csv");
  REQUIRE_FILE(path);
  CsvTable t = read_csv(path);
  ForecastData d(t, options(96));
  const int64_t C = 7, F = 4, L = 96, SH = 48 + 96;
  const StandardScaler& sc = d.scaler();
  auto scaled = [&](int64_t r, int64_t c) { return static_cast<float>((t.at(r, c) - sc.mean[c]) / sc.scale[c]); };
  std::vector<float> x(L * C), y(SH * C), xm(L * F), ym(SH * F);
  WindowDataset val = d.split(Split::Val);
  val.get(0, x.data(), y.data(), xm.data(), ym.data());
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_EQ(x[c], scaled(8544, c));                    // seq_x starts at border1
    EXPECT_EQ(x[(L - 1) * C + c], scaled(8639, c));      // ... and ends where train ends
    EXPECT_EQ(y[c], scaled(8544 + 96 - 48, c));          // seq_y starts label_len before the target
    EXPECT_EQ(y[48 * C + c], scaled(8640, c));           // first predicted row = first val row
    EXPECT_EQ(y[(SH - 1) * C + c], scaled(8735, c));
  }
  WindowDataset test = d.split(Split::Test);
  test.get(test.size() - 1, x.data(), y.data(), xm.data(), ym.data());
  EXPECT_EQ(y[(SH - 1) * C + 6], scaled(14399, 6));  // the last window ends on the last test row
  expect_error([&] { test.get(test.size(), x.data(), nullptr, nullptr, nullptr); }, "window 2785 out of range");
  // Marks of the first train row, 2016-07-01 00:00 (Friday, day 183): TSLib timeF for freq 'h'.
  d.split(Split::Train).get(0, x.data(), y.data(), xm.data(), ym.data());
  EXPECT_FLOAT_EQ(xm[0], -0.5f);
  EXPECT_FLOAT_EQ(xm[1], static_cast<float>(4.0 / 6.0 - 0.5));
  EXPECT_FLOAT_EQ(xm[2], -0.5f);
  EXPECT_FLOAT_EQ(xm[3], static_cast<float>(182.0 / 365.0 - 0.5));
  EXPECT_FLOAT_EQ(xm[5 * F + 0], static_cast<float>(5.0 / 23.0 - 0.5));  // row 5 is 05:00
  // batch() stacks get().
  std::vector<int64_t> idx{3, 0, 2784};
  WindowBatch bt = test.batch(idx.data(), 3);
  EXPECT_EQ(bt.x.shape(), (ssmkit::core::Shape{3, L, C}));
  EXPECT_EQ(bt.y.shape(), (ssmkit::core::Shape{3, SH, C}));
  EXPECT_EQ(bt.x_mark.shape(), (ssmkit::core::Shape{3, L, F}));
  EXPECT_EQ(bt.y_mark.shape(), (ssmkit::core::Shape{3, SH, F}));
  test.get(2784, x.data(), y.data(), xm.data(), ym.data());
  for (int64_t k = 0; k < SH * C; ++k) ASSERT_EQ(bt.y.data<float>()[2 * SH * C + k], y[k]);
  for (int64_t k = 0; k < L * F; ++k) ASSERT_EQ(bt.x_mark.data<float>()[2 * L * F + k], xm[k]);
  // inverse_transform gives the file's values back (x holds test window 2784: rows 14208..14303).
  std::vector<float> back(x);
  d.inverse_transform(back.data(), L, C);
  for (int64_t c = 0; c < C; ++c) EXPECT_NEAR(back[c], t.at(11424 + 2784, c), 1e-4 * std::abs(t.at(11424 + 2784, c)) + 1e-5);
  // timeenc = 0: month, day, weekday, hour.
  ProtocolOptions o0 = options(96);
  o0.time_enc = 0;
  ForecastData d0(t, o0);
  EXPECT_EQ(d0.n_marks(), 4);
  EXPECT_EQ(std::vector<float>(d0.marks(), d0.marks() + 4), (std::vector<float>{7, 1, 4, 0}));
}

TEST(Protocol, EttMinute) {
  const std::string path = series_file("ett/ETTm1.csv");
  REQUIRE_FILE(path);
  CsvTable t = read_csv(path);
  ASSERT_EQ(t.rows(), 69680);
  ForecastData d(t, options(96));
  EXPECT_EQ(d.rule(), SplitRule::EttMinute);
  const SplitBorders& b = d.borders();
  EXPECT_EQ(std::vector<int64_t>(b.begin, b.begin + 3), (std::vector<int64_t>{0, 34464, 45984}));
  EXPECT_EQ(std::vector<int64_t>(b.end, b.end + 3), (std::vector<int64_t>{34560, 46080, 57600}));
  expect_counts(d, {34369, 11425, 11425}, "ETTm1 96");
  expect_counts(ForecastData(t, options(720)), {33745, 10801, 10801}, "ETTm1 720");
  EXPECT_EQ(frequency_name(d.frequency()), "15min");
  EXPECT_EQ(d.n_marks(), 4);  // TSLib scripts leave --freq at 'h'
  EXPECT_NEAR(d.scaler().mean[6], 17.12495024489946, 1e-12);
  EXPECT_NEAR(d.scaler().scale[6], 9.173035273908697, 1e-12);
  ProtocolOptions o = options(96);
  o.time_freq = "auto";  // the series' own 15-minute frequency: MinuteOfHour first
  ForecastData dm(t, o);
  EXPECT_EQ(dm.n_marks(), 5);
  EXPECT_FLOAT_EQ(dm.marks()[5 * 1 + 0], static_cast<float>(15.0 / 59.0 - 0.5));  // row 1 is 00:15
  o.time_enc = 0;  // Dataset_ETT_minute adds minute // 15
  ForecastData d0(t, o);
  EXPECT_EQ(d0.n_marks(), 5);
  EXPECT_EQ(d0.marks()[3 * 5 + 4], 3.0f);  // row 3 is 00:45
}

TEST(Protocol, WeatherCustomSplit) {
  const std::string path = series_file("weather/weather.csv");
  REQUIRE_FILE(path);
  // The file repeats one row (2020-05-12 06:00:00 on lines 19045 and 19046): strict reading refuses it.
  expect_error([&] { read_csv(path); },
               "weather.csv:19046:date: duplicated timestamp 2020-05-12 06:00:00 (also on line 19045)");
  CsvTable t = read_csv(path, loose_time());
  ASSERT_EQ(t.rows(), 52696);
  EXPECT_EQ(t.cols(), 21);
  ForecastData d(t, options(96));
  EXPECT_EQ(d.rule(), SplitRule::Custom);
  // n_train = int(52696 * 0.7) = 36887, n_test = int(52696 * 0.2) = 10539, n_val = 5270.
  const SplitBorders& b = d.borders();
  EXPECT_EQ(std::vector<int64_t>(b.begin, b.begin + 3), (std::vector<int64_t>{0, 36791, 42061}));
  EXPECT_EQ(std::vector<int64_t>(b.end, b.end + 3), (std::vector<int64_t>{36887, 42157, 52696}));
  expect_counts(d, {36696, 5175, 10444}, "weather 96");
  expect_counts(ForecastData(t, options(720)), {36072, 4551, 9820}, "weather 720");
  EXPECT_EQ(frequency_name(d.frequency()), "10min");
  EXPECT_EQ(d.channels().back(), "OT");
  EXPECT_NEAR(d.scaler().mean[20], 411.0543416379754, 1e-10);
  EXPECT_NEAR(d.scaler().scale[20], 383.9570979658789, 1e-10);
  // Custom split moves the target to the end in every mode (Dataset_Custom's column reorder).
  ForecastData dt(t, options(96, Features::M, "T (degC)"));
  EXPECT_EQ(dt.channels().front(), "p (mbar)");
  EXPECT_EQ(dt.channels().back(), "T (degC)");
  EXPECT_EQ(dt.channels()[1], "Tpot (K)");
}

TEST(Protocol, ExchangeRateCustomSplitAndDates) {
  const std::string path = series_file("exchange_rate/exchange_rate.csv");
  REQUIRE_FILE(path);
  CsvTable t = read_csv(path);
  ASSERT_EQ(t.rows(), 7588);
  EXPECT_EQ(t.date_format.describe(), "YYYY/M/D h:mm");
  ForecastData d(t, options(96));
  // n_train = int(7588 * 0.7) = 5311 (7588 * 0.7 = 5311.599...), n_test = 1517, n_val = 760.
  EXPECT_EQ(d.borders().end[0], 5311);
  EXPECT_EQ(d.borders().begin[2], 7588 - 1517 - 96);
  expect_counts(d, {5120, 665, 1422}, "exchange 96");
  expect_counts(ForecastData(t, options(720)), {4496, 41, 798}, "exchange 720");
  EXPECT_EQ(frequency_name(d.frequency()), "D");
  EXPECT_NEAR(d.scaler().mean[7], 0.6048248685746563, 1e-14);
  EXPECT_NEAR(d.scaler().scale[7], 0.09529949685465589, 1e-14);
  std::vector<std::string> next = d.future_dates();
  ASSERT_EQ(next.size(), 96u);
  EXPECT_EQ(next[0], "2010/10/11 0:00");
  EXPECT_EQ(next[95], "2011/1/14 0:00");
}

TEST(Protocol, FeatureModes) {
  const std::string path = series_file("ett/ETTh1.csv");
  REQUIRE_FILE(path);
  CsvTable t = read_csv(path);
  ForecastData m(t, options(96));
  ForecastData s(t, options(96, Features::S));
  EXPECT_EQ(s.channels(), (std::vector<std::string>{"OT"}));
  EXPECT_EQ(s.n_targets(), 1);
  EXPECT_EQ(s.target_offset(), 0);
  EXPECT_EQ(s.scaler().mean[0], m.scaler().mean[6]);
  EXPECT_EQ(s.data()[100], m.data()[100 * 7 + 6]);
  expect_counts(s, {8449, 2785, 2785}, "ETTh1 S");
  ForecastData ms(t, options(96, Features::MS));
  EXPECT_EQ(ms.n_channels(), 7);
  EXPECT_EQ(ms.target_offset(), 6);  // TSLib f_dim = -1
  EXPECT_EQ(ms.n_targets(), 1);
  ForecastData mh(t, options(96, Features::MS, "HUFL"));
  EXPECT_EQ(mh.channels().back(), "HUFL");
  EXPECT_EQ(mh.channels().front(), "HULL");
  // inverse_transform of the loss channels (MS: the target) uses the target's statistics.
  float v = 1.0f;
  mh.inverse_transform(&v, 1, 1);
  EXPECT_NEAR(v, mh.scaler().mean[6] + mh.scaler().scale[6], 1e-5);
  EXPECT_NEAR(mh.scaler().mean[6], 7.937742245659508, 1e-12);
  expect_error([&] { mh.inverse_transform(&v, 1, 3); }, "ETTh1.csv: inverse_transform of 3 channels; expected 7");
  EXPECT_EQ(m.target_offset(), 0);
  EXPECT_EQ(m.n_targets(), 7);
  EXPECT_EQ(parse_features("MS"), Features::MS);
  expect_error([] { parse_features("SM"); }, "features 'SM': unknown");
}

TEST(Protocol, ForecastAfterTheLastRow) {
  const std::string path = series_file("ett/ETTh1.csv");
  REQUIRE_FILE(path);
  CsvTable t = read_csv(path);
  ForecastData trained(t, options(96));
  // Prediction on the file with the training scaler (as from a checkpoint): no splits needed.
  ProtocolOptions o = options(96);
  o.splits = false;
  ForecastData p(t, o, &trained.scaler());
  EXPECT_EQ(p.data()[123], trained.data()[123]);
  expect_error([&] { p.split(Split::Test); }, "ETTh1.csv: no test split");
  const int64_t C = 7, F = 4, L = 96, S = 48, H = 96, T = 17420;
  std::vector<float> x(L * C), xm(L * F), y((S + H) * C), ym((S + H) * F);
  p.forecast_input(x.data(), xm.data(), y.data(), ym.data());
  for (int64_t k = 0; k < L * C; ++k) ASSERT_EQ(x[k], p.data()[(T - L) * C + k]);
  for (int64_t k = 0; k < S * C; ++k) ASSERT_EQ(y[k], p.data()[(T - S) * C + k]);
  for (int64_t k = S * C; k < (S + H) * C; ++k) ASSERT_EQ(y[k], 0.0f);
  std::vector<std::string> dates = p.future_dates();
  EXPECT_EQ(dates.front(), "2018-06-26 20:00:00");
  EXPECT_EQ(dates.back(), "2018-06-30 19:00:00");
  // Marks of the first future row (2018-06-26 20:00, Tuesday, day 177).
  EXPECT_FLOAT_EQ(ym[S * F + 0], static_cast<float>(20.0 / 23.0 - 0.5));
  EXPECT_FLOAT_EQ(ym[S * F + 1], static_cast<float>(1.0 / 6.0 - 0.5));
  EXPECT_FLOAT_EQ(ym[S * F + 3], static_cast<float>(176.0 / 365.0 - 0.5));
  for (int64_t k = 0; k < S * F; ++k) ASSERT_EQ(ym[k], p.marks()[(T - S) * F + k]);
  // A scaler of the wrong size is refused.
  StandardScaler wrong;
  wrong.mean = {0.0};
  wrong.scale = {1.0};
  expect_error([&] { ForecastData(t, o, &wrong); }, "ETTh1.csv: scaler has 1 channels; expected 7");
}
