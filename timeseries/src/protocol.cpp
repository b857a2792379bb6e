// The Time-Series-Library forecasting protocol (data_provider/data_loader.py): channel order, split
// borders, train-only StandardScaler, time marks and the window indexing of __getitem__
// (s_begin = i, s_end = i + L, r_begin = s_end - S, r_end = r_begin + S + H), plus the inputs for a
// forecast after the last row (as S-Mamba's Dataset_Pred: last L rows, dates continued for H steps).
// Values are scaled in double and stored as float, as TSLib's float64 arrays reach the model as float32.
#include "ssmkit/timeseries/protocol.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "ssmkit/core/error.h"
#include "ssmkit/timeseries/time_features.h"

namespace ssmkit::timeseries {

struct ForecastData::State {
  CsvTable table;
  ProtocolOptions opt;
  SplitRule rule = SplitRule::Custom;
  std::vector<std::string> channels;  // (C)
  std::vector<int64_t> source;        // (C) table column of each channel
  std::string target;
  int64_t target_offset = 0, n_targets = 0;
  SplitBorders borders;
  StandardScaler scaler;
  Frequency freq, mark_freq;
  std::vector<float> data;   // (T, C)
  std::vector<float> marks;  // (T, F)
  int64_t n_marks = 0;

  std::vector<float> marks_of(const std::vector<Micros>& t) const {
    return opt.time_enc == 1 ? time_marks_timef(t, mark_freq) : time_marks_calendar(t, rule == SplitRule::EttMinute);
  }
};

Features parse_features(const std::string& name) {
  if (name == "M") return Features::M;
  if (name == "S") return Features::S;
  if (name == "MS") return Features::MS;
  SSMKIT_CHECK(false, "features '", name, "': unknown; expected M (all to all), S (target only) or MS (all to target)");
  return Features::M;
}

const char* features_name(Features f) { return f == Features::M ? "M" : f == Features::S ? "S" : "MS"; }

SplitRule split_rule_for_path(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  if (stem == "ETTh1" || stem == "ETTh2") return SplitRule::EttHour;
  if (stem == "ETTm1" || stem == "ETTm2") return SplitRule::EttMinute;
  return SplitRule::Custom;
}

const char* split_rule_name(SplitRule r) {
  switch (r) {
    case SplitRule::Auto: return "auto";
    case SplitRule::EttHour: return "ETT hourly (12/4/4 months)";
    case SplitRule::EttMinute: return "ETT 15-minute (12/4/4 months)";
    case SplitRule::Custom: return "custom (70/10/20)";
  }
  return "?";
}

const char* split_name(Split s) { return s == Split::Train ? "train" : s == Split::Val ? "val" : "test"; }

SplitBorders split_borders(SplitRule rule, int64_t n, int64_t L) {
  SplitBorders b;
  if (rule == SplitRule::EttHour || rule == SplitRule::EttMinute) {
    const int64_t k = rule == SplitRule::EttMinute ? 4 : 1;
    const int64_t month = 30 * 24 * k;  // rows in a 30-day month
    int64_t b1[3] = {0, 12 * month - L, 12 * month + 4 * month - L};
    int64_t b2[3] = {12 * month, 12 * month + 4 * month, 12 * month + 8 * month};
    for (int s = 0; s < 3; ++s) {
      b.begin[s] = b1[s];
      b.end[s] = b2[s];
    }
    return b;
  }
  SSMKIT_CHECK(rule == SplitRule::Custom, "split_borders: rule must be resolved (EttHour, EttMinute or Custom)");
  // int(len * 0.7) in Python: the double product truncated toward zero.
  const int64_t n_train = static_cast<int64_t>(static_cast<double>(n) * 0.7);
  const int64_t n_test = static_cast<int64_t>(static_cast<double>(n) * 0.2);
  const int64_t n_val = n - n_train - n_test;
  const int64_t b1[3] = {0, n_train - L, n - n_test - L}, b2[3] = {n_train, n_train + n_val, n};
  for (int s = 0; s < 3; ++s) {
    b.begin[s] = b1[s];
    b.end[s] = b2[s];
  }
  return b;
}

ForecastData::ForecastData(CsvTable table, const ProtocolOptions& opt, const StandardScaler* given) {
  auto st = std::make_shared<State>();
  State& s = *st;
  s.table = std::move(table);
  s.opt = opt;
  const CsvTable& t = s.table;
  const std::string& file = t.path;
  const int64_t T = t.rows(), L = opt.seq_len, S = opt.label_len, H = opt.pred_len;
  SSMKIT_CHECK(L >= 1 && H >= 1 && S >= 0 && S <= L, file, ": seq_len ", L, ", label_len ", S, ", pred_len ", H,
               "; expected seq_len >= 1, pred_len >= 1 and 0 <= label_len <= seq_len");
  SSMKIT_CHECK(opt.time_enc == 0 || opt.time_enc == 1, "time_enc ", opt.time_enc, ": expected 0 or 1");
  s.rule = opt.rule == SplitRule::Auto ? split_rule_for_path(file) : opt.rule;

  // Channels.
  const int64_t nc = t.cols();
  int64_t tcol = nc - 1;
  if (!opt.target.empty()) {
    tcol = -1;
    for (int64_t c = 0; c < nc; ++c)
      if (t.columns[static_cast<size_t>(c)] == opt.target) tcol = c;
    std::string names;
    for (size_t c = 0; c < t.columns.size(); ++c) names += (c ? ", '" : "'") + t.columns[c] + "'";
    SSMKIT_CHECK(tcol >= 0, file, ": unknown target '", opt.target, "'; expected one of ", names,
                 opt.target == t.date_name ? " (that is the date column)" : " (choose it with --target)");
  }
  s.target = t.columns[static_cast<size_t>(tcol)];
  if (opt.features == Features::S) {
    s.source = {tcol};
  } else if (s.rule == SplitRule::Custom || opt.features == Features::MS) {
    for (int64_t c = 0; c < nc; ++c)
      if (c != tcol) s.source.push_back(c);
    s.source.push_back(tcol);
  } else {
    for (int64_t c = 0; c < nc; ++c) s.source.push_back(c);
  }
  for (int64_t c : s.source) s.channels.push_back(t.columns[static_cast<size_t>(c)]);
  const int64_t C = static_cast<int64_t>(s.source.size());
  s.target_offset = opt.features == Features::MS ? C - 1 : 0;
  s.n_targets = opt.features == Features::M ? C : 1;

  // Borders.
  if (opt.splits) {
    s.borders = split_borders(s.rule, T, L);
    if (s.rule != SplitRule::Custom)
      SSMKIT_CHECK(T >= s.borders.end[2], file, ": ", T, " rows; the ", split_rule_name(s.rule), " split needs ",
                   s.borders.end[2], " (is this an ETT file? rename it, or choose the custom 70/10/20 split)");
    for (int k = 0; k < 3; ++k) {
      int64_t b1 = s.borders.begin[k], b2 = s.borders.end[k];
      SSMKIT_CHECK(b1 >= 0 && b2 - b1 >= L + H, file, ": too few rows for seq_len + pred_len = ", L + H, " in the ",
                   split_name(static_cast<Split>(k)), " split (rows ", b1, "..", b2 - 1, " of ", T,
                   ", ", split_rule_name(s.rule), "); expected at least ", L + H,
                   " rows there (use a longer file, or a shorter --seq-len / --pred-len)");
    }
  } else {
    SSMKIT_CHECK(T >= L, file, ": ", T, " rows; expected at least seq_len = ", L, " to forecast from");
  }

  // Scaling: gather the channels in dataset order (double), fit on the train rows, transform all.
  std::vector<double> raw(static_cast<size_t>(T * C));
  for (int64_t r = 0; r < T; ++r)
    for (int64_t c = 0; c < C; ++c) raw[static_cast<size_t>(r * C + c)] = t.at(r, s.source[static_cast<size_t>(c)]);
  if (given) {
    SSMKIT_CHECK(given->n_cols() == C && static_cast<int64_t>(given->scale.size()) == C, file, ": scaler has ",
                 given->n_cols(), " channels; expected ", C, " (", features_name(opt.features), " mode on this file)");
    s.scaler = *given;
  } else if (opt.scale) {
    s.scaler.fit(raw.data(), opt.splits ? s.borders.end[0] : T, C, C);
  } else {
    s.scaler.mean.assign(static_cast<size_t>(C), 0.0);
    s.scaler.scale.assign(static_cast<size_t>(C), 1.0);
  }
  if (opt.scale || given) s.scaler.transform(raw.data(), T, C);
  s.data.assign(raw.begin(), raw.end());

  // Frequencies and time marks.
  s.freq = opt.freq.empty() ? infer_frequency(t.times, file) : parse_frequency(opt.freq);
  s.mark_freq = opt.time_freq == "auto" ? s.freq : parse_frequency(opt.time_freq);
  s.n_marks = opt.time_enc == 1 ? static_cast<int64_t>(time_features_for(s.mark_freq).size())
                                : (s.rule == SplitRule::EttMinute ? 5 : 4);
  s.marks = s.marks_of(t.times);
  s_ = std::move(st);
}

ForecastData ForecastData::load(const std::string& path, const CsvOptions& csv, const ProtocolOptions& options) {
  return ForecastData(read_csv(path, csv), options);
}

const CsvTable& ForecastData::table() const { return s_->table; }
const ProtocolOptions& ForecastData::options() const { return s_->opt; }
SplitRule ForecastData::rule() const { return s_->rule; }
const std::vector<std::string>& ForecastData::channels() const { return s_->channels; }
const std::string& ForecastData::target() const { return s_->target; }
int64_t ForecastData::rows() const { return s_->table.rows(); }
int64_t ForecastData::n_channels() const { return static_cast<int64_t>(s_->channels.size()); }
int64_t ForecastData::n_marks() const { return s_->n_marks; }
int64_t ForecastData::target_offset() const { return s_->target_offset; }
int64_t ForecastData::n_targets() const { return s_->n_targets; }
const SplitBorders& ForecastData::borders() const { return s_->borders; }
const StandardScaler& ForecastData::scaler() const { return s_->scaler; }
const Frequency& ForecastData::frequency() const { return s_->freq; }
const Frequency& ForecastData::mark_frequency() const { return s_->mark_freq; }
const float* ForecastData::data() const { return s_->data.data(); }
const float* ForecastData::marks() const { return s_->marks.data(); }

WindowDataset ForecastData::split(Split which) const {
  SSMKIT_CHECK(s_->opt.splits, s_->table.path, ": no ", split_name(which),
               " split; expected ProtocolOptions::splits = true");
  WindowDataset w;
  w.s_ = s_;
  w.begin_ = s_->borders.begin[static_cast<int>(which)];
  w.end_ = s_->borders.end[static_cast<int>(which)];
  return w;
}

void ForecastData::inverse_transform(float* v, int64_t rows, int64_t n) const {
  const int64_t C = n_channels();
  SSMKIT_CHECK(n == C || n == s_->n_targets, s_->table.path, ": inverse_transform of ", n, " channels; expected ", C,
               " (all) or ", s_->n_targets, " (the ", features_name(s_->opt.features), " targets)");
  s_->scaler.inverse_transform(v, rows, n, n == C ? 0 : s_->target_offset);
}

std::vector<Micros> ForecastData::future_times() const {
  return continue_dates(s_->table.times.back(), s_->freq, s_->opt.pred_len);
}

std::vector<std::string> ForecastData::future_dates() const {
  return continue_dates_formatted(s_->table.times.back(), s_->freq, s_->opt.pred_len, s_->table.date_format);
}

void ForecastData::forecast_input(float* x, float* x_mark, float* y, float* y_mark) const {
  const State& s = *s_;
  const int64_t T = rows(), C = n_channels(), F = s.n_marks;
  const int64_t L = s.opt.seq_len, S = s.opt.label_len, H = s.opt.pred_len;
  SSMKIT_CHECK(T >= L, s.table.path, ": ", T, " rows; expected at least seq_len = ", L, " to forecast from");
  const int64_t r0 = T - L;
  if (x) std::memcpy(x, s.data.data() + r0 * C, sizeof(float) * static_cast<size_t>(L * C));
  if (x_mark && F > 0) std::memcpy(x_mark, s.marks.data() + r0 * F, sizeof(float) * static_cast<size_t>(L * F));
  if (y) {
    std::memcpy(y, s.data.data() + (T - S) * C, sizeof(float) * static_cast<size_t>(S * C));
    std::fill(y + S * C, y + (S + H) * C, 0.0f);
  }
  if (y_mark && F > 0) {
    std::memcpy(y_mark, s.marks.data() + (T - S) * F, sizeof(float) * static_cast<size_t>(S * F));
    std::vector<float> future = s.marks_of(future_times());
    std::copy(future.begin(), future.end(), y_mark + S * F);
  }
}

// ---------------------------------------------------------------------------------------------------
// WindowDataset

int64_t WindowDataset::size() const { return (end_ - begin_) - s_->opt.seq_len - s_->opt.pred_len + 1; }
int64_t WindowDataset::begin() const { return begin_; }
int64_t WindowDataset::end() const { return end_; }
int64_t WindowDataset::seq_len() const { return s_->opt.seq_len; }
int64_t WindowDataset::label_len() const { return s_->opt.label_len; }
int64_t WindowDataset::pred_len() const { return s_->opt.pred_len; }
int64_t WindowDataset::n_channels() const { return static_cast<int64_t>(s_->channels.size()); }
int64_t WindowDataset::n_marks() const { return s_->n_marks; }
int64_t WindowDataset::target_offset() const { return s_->target_offset; }
int64_t WindowDataset::n_targets() const { return s_->n_targets; }

void WindowDataset::get(int64_t i, float* x, float* y, float* x_mark, float* y_mark) const {
  SSMKIT_CHECK(i >= 0 && i < size(), "WindowDataset::get: window ", i, " out of range; expected 0 <= i < ", size());
  const ForecastData::State& s = *s_;
  const int64_t C = n_channels(), F = s.n_marks;
  const int64_t L = s.opt.seq_len, S = s.opt.label_len, H = s.opt.pred_len;
  const int64_t s_begin = begin_ + i, r_begin = s_begin + L - S;
  auto rows = [](const std::vector<float>& src, int64_t r0, int64_t n, int64_t w, float* dst) {
    std::memcpy(dst, src.data() + r0 * w, sizeof(float) * static_cast<size_t>(n * w));
  };
  if (x) rows(s.data, s_begin, L, C, x);
  if (y) rows(s.data, r_begin, S + H, C, y);
  if (x_mark && F > 0) rows(s.marks, s_begin, L, F, x_mark);
  if (y_mark && F > 0) rows(s.marks, r_begin, S + H, F, y_mark);
}

WindowBatch WindowDataset::batch(const int64_t* idx, int64_t n) const {
  const int64_t C = n_channels(), F = n_marks(), L = seq_len(), SH = label_len() + pred_len();
  WindowBatch b;
  b.x = core::Tensor::empty({n, L, C});
  b.y = core::Tensor::empty({n, SH, C});
  b.x_mark = core::Tensor::empty({n, L, F});
  b.y_mark = core::Tensor::empty({n, SH, F});
  for (int64_t k = 0; k < n; ++k)
    get(idx[k], b.x.data<float>() + k * L * C, b.y.data<float>() + k * SH * C, b.x_mark.data<float>() + k * L * F,
        b.y_mark.data<float>() + k * SH * F);
  return b;
}

}  // namespace ssmkit::timeseries
