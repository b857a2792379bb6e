// The long-term forecasting protocol of the Time-Series-Library (thuml/Time-Series-Library,
// data_provider/data_loader.py: Dataset_ETT_hour, Dataset_ETT_minute, Dataset_Custom), on a CsvTable:
// feature modes M / S / MS, the train/val/test borders (val and test start seq_len rows early), a
// StandardScaler fitted on the train rows only, time marks (timeenc 0/1) and every stride-1 window
// (seq_x, seq_y with label_len overlap, x_mark, y_mark). Also the inputs for forecasting after the last
// row (dates continued at the series' frequency). Not here: batching order / shuffling (the training
// loop's), metrics, augmentation. Shape letters: T rows, C channels, F time-mark features, L seq_len,
// S label_len, H pred_len, B batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/core/tensor.h"
#include "ssmkit/timeseries/csv_reader.h"
#include "ssmkit/timeseries/frequency.h"
#include "ssmkit/timeseries/scaler.h"

namespace ssmkit::timeseries {

// M: every column in and out; S: the target only; MS: every column in, the target out.
enum class Features : uint8_t { M, S, MS };
Features parse_features(const std::string& name);  // "M", "S", "MS"; throws otherwise
const char* features_name(Features f);

// How the rows are split: TSLib's ETT loaders (12/4/4 months of 30 days, hourly or 15-minute rows),
// or Dataset_Custom (70/10/20). Auto picks by file name: ETTh1/ETTh2 -> EttHour, ETTm1/ETTm2 ->
// EttMinute (the stem, any extension), anything else -> Custom (TSLib picks by its --data flag).
enum class SplitRule : uint8_t { Auto, EttHour, EttMinute, Custom };
SplitRule split_rule_for_path(const std::string& path);
const char* split_rule_name(SplitRule r);

enum class Split : uint8_t { Train = 0, Val = 1, Test = 2 };
const char* split_name(Split s);

// Row borders [begin, end) of train / val / test (indexed by Split), as TSLib's border1s/border2s:
// EttHour: begin {0, 8640-L, 11520-L}, end {8640, 11520, 14400}; EttMinute: every constant x4;
// Custom: n_train = int(T*0.7), n_test = int(T*0.2), n_val = T - n_train - n_test,
// begin {0, n_train-L, T-n_test-L}, end {n_train, n_train+n_val, T}. No checks (see ForecastData).
struct SplitBorders {
  int64_t begin[3] = {0, 0, 0};
  int64_t end[3] = {0, 0, 0};
};
SplitBorders split_borders(SplitRule rule, int64_t n_rows, int64_t seq_len);  // rule != Auto

struct ProtocolOptions {
  int64_t seq_len = 96;    // L
  int64_t label_len = 48;  // S (TSLib run.py default), <= L
  int64_t pred_len = 96;   // H
  Features features = Features::M;
  std::string target;      // "": the last column (TSLib's OT in its files)
  SplitRule rule = SplitRule::Auto;
  bool splits = true;      // false: no train/val/test (prediction on a new file; needs only L rows)
  bool scale = true;       // standardize (fitted on the train rows; on all rows when splits is false)
  int time_enc = 1;        // 1: TSLib "timeF" features in [-0.5, 0.5]; 0: integer calendar columns
  std::string time_freq = "h";  // frequency naming the time-mark features. "h" is TSLib run.py's default and
                                // what its scripts use for every dataset (ETTm and weather included);
                                // "auto": the series' own frequency (15-minute data then gets 5 features)
  std::string freq;        // the series' sampling frequency; "": inferred from the timestamps
};

class WindowDataset;

// One file in the protocol: channels ordered, scaled, time marks computed for every row.
// Channel order as TSLib: Custom rule moves the target to the end (date, others..., target); the
// ETT rules keep file order (the target is moved last only in MS mode; OT already is). S: the target.
class ForecastData {
 public:
  // `scaler` (optional): statistics to use instead of fitting (a checkpoint's, for prediction); its
  // size must equal n_channels(). Throws Error naming the file for an unknown target, too few rows for
  // the splits (each needs seq_len + pred_len rows) or for one input window, a bad frequency.
  ForecastData(CsvTable table, const ProtocolOptions& options, const StandardScaler* scaler = nullptr);
  static ForecastData load(const std::string& path, const CsvOptions& csv, const ProtocolOptions& options);

  const CsvTable& table() const;
  const ProtocolOptions& options() const;
  SplitRule rule() const;                        // resolved (never Auto)
  const std::vector<std::string>& channels() const;  // (C) names in dataset order
  const std::string& target() const;
  int64_t rows() const;                          // T
  int64_t n_channels() const;                    // C
  int64_t n_marks() const;                       // F
  int64_t target_offset() const;                 // first channel of the loss: C-1 for MS, else 0 (TSLib f_dim)
  int64_t n_targets() const;                     // channels of the loss: 1 for S/MS, C for M
  const SplitBorders& borders() const;           // valid when options().splits
  const StandardScaler& scaler() const;          // (C) statistics in dataset channel order
  const Frequency& frequency() const;            // sampling frequency (inferred or given)
  const Frequency& mark_frequency() const;       // frequency naming the time-mark features
  const float* data() const;                     // (T, C) scaled values, float
  const float* marks() const;                    // (T, F)

  WindowDataset split(Split s) const;            // throws when options().splits is false

  // Back to original units, in place: v (rows, n) holding either all C channels (n == C) or the loss
  // channels (n == n_targets(), channels target_offset() ..).
  void inverse_transform(float* v, int64_t rows, int64_t n) const;

  // Forecasting after the last row: x (L, C) the last L scaled rows, x_mark (L, F) their marks,
  // y (S + H, C) the last S rows followed by H zero rows (TSLib's decoder input), y_mark (S + H, F)
  // with the H future rows' marks from the continued dates. Null pointers are skipped.
  void forecast_input(float* x, float* x_mark, float* y, float* y_mark) const;
  std::vector<Micros> future_times() const;       // (H) after the last row, at frequency()
  std::vector<std::string> future_dates() const;  // (H) written like the file's dates

  struct State;

 private:
  std::shared_ptr<const State> s_;
  friend class WindowDataset;
};

// A batch of windows as Tensors (F32): x (B, L, C), y (B, S + H, C), x_mark (B, L, F), y_mark (B, S + H, F).
struct WindowBatch {
  core::Tensor x, y, x_mark, y_mark;
};

// The windows of one split (shares the data with its ForecastData; cheap to copy). Window i covers
// input rows begin+i .. begin+i+L-1 and y rows begin+i+L-S .. begin+i+L+H-1 (the loss uses the last H
// rows, channels target_offset() .. +n_targets()).
class WindowDataset {
 public:
  int64_t size() const;        // (end - begin) - L - H + 1
  int64_t begin() const;       // first row of the split
  int64_t end() const;         // one past its last row
  int64_t seq_len() const;     // L
  int64_t label_len() const;   // S
  int64_t pred_len() const;    // H
  int64_t n_channels() const;  // C
  int64_t n_marks() const;     // F
  int64_t target_offset() const;
  int64_t n_targets() const;

  // x (L, C), y (S + H, C), x_mark (L, F), y_mark (S + H, F) of window i; null pointers are skipped.
  void get(int64_t i, float* x, float* y, float* x_mark, float* y_mark) const;
  // The windows idx[0..n) stacked into tensors.
  WindowBatch batch(const int64_t* idx, int64_t n) const;

 private:
  friend class ForecastData;
  std::shared_ptr<const ForecastData::State> s_;
  int64_t begin_ = 0, end_ = 0;
};

}  // namespace ssmkit::timeseries
