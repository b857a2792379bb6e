// Per-column standardization as scikit-learn's StandardScaler (what the Time-Series-Library uses):
// mean and population standard deviation (ddof 0) in double, a near-constant column gets scale 1.
// Fitted on the train rows only by the protocol (protocol.h); kept in checkpoints for prediction.
// Not here: partial_fit, with_mean/with_std switches.
#pragma once

#include <cstdint>
#include <vector>

namespace ssmkit::timeseries {

struct StandardScaler {
  std::vector<double> mean;   // (C)
  std::vector<double> scale;  // (C) population std; 1 where the column is constant (sklearn's rule)

  int64_t n_cols() const { return static_cast<int64_t>(mean.size()); }

  // x (rows, cols) with row stride `ld` (>= cols): sets mean and scale.
  void fit(const double* x, int64_t rows, int64_t cols, int64_t ld);
  // v (rows, n) in place: v = (v - mean[c0 + j]) / scale[c0 + j] for columns c0 .. c0 + n - 1.
  void transform(double* v, int64_t rows, int64_t n, int64_t c0 = 0) const;
  // v (rows, n) in place: v = v * scale[c0 + j] + mean[c0 + j] (back to the original units).
  void inverse_transform(float* v, int64_t rows, int64_t n, int64_t c0 = 0) const;
  void inverse_transform(double* v, int64_t rows, int64_t n, int64_t c0 = 0) const;
};

}  // namespace ssmkit::timeseries
