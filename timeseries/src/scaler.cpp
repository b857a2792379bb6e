// StandardScaler with scikit-learn's arithmetic: mean = sum / n (rows added in order), variance from
// the centred sum of squares with the rounding correction of _incremental_mean_and_var, a column is
// constant when var <= n·eps·var + (n·mean·eps)^2 (_is_constant_feature) and then gets scale 1.
// transform: (x - mean) / scale; inverse: x * scale + mean, both in double.
#include "ssmkit/timeseries/scaler.h"

#include <cmath>
#include <limits>

#include "ssmkit/core/error.h"

namespace ssmkit::timeseries {

void StandardScaler::fit(const double* x, int64_t rows, int64_t cols, int64_t ld) {
  SSMKIT_CHECK(rows > 0 && cols > 0 && ld >= cols, "StandardScaler::fit: got ", rows, " rows x ", cols,
               " columns (stride ", ld, "); expected at least one row and column");
  const double n = static_cast<double>(rows), eps = std::numeric_limits<double>::epsilon();
  mean.assign(static_cast<size_t>(cols), 0.0);
  scale.assign(static_cast<size_t>(cols), 1.0);
  std::vector<double> sum(static_cast<size_t>(cols), 0.0), corr(sum), sq(sum);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) sum[c] += x[r * ld + c];
  for (int64_t c = 0; c < cols; ++c) mean[c] = sum[c] / n;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      double d = x[r * ld + c] - mean[c];
      corr[c] += d;
      sq[c] += d * d;
    }
  for (int64_t c = 0; c < cols; ++c) {
    double var = (sq[c] - corr[c] * corr[c] / n) / n;
    double bound = n * eps * var + (n * mean[c] * eps) * (n * mean[c] * eps);
    scale[c] = var <= bound ? 1.0 : std::sqrt(var);
  }
}

void StandardScaler::transform(double* v, int64_t rows, int64_t n, int64_t c0) const {
  SSMKIT_CHECK(c0 >= 0 && c0 + n <= n_cols(), "StandardScaler::transform: columns ", c0, "..", c0 + n - 1,
               " out of range; the scaler has ", n_cols());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) v[r * n + j] = (v[r * n + j] - mean[c0 + j]) / scale[c0 + j];
}

void StandardScaler::inverse_transform(double* v, int64_t rows, int64_t n, int64_t c0) const {
  SSMKIT_CHECK(c0 >= 0 && c0 + n <= n_cols(), "StandardScaler::inverse_transform: columns ", c0, "..",
               c0 + n - 1, " out of range; the scaler has ", n_cols());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) v[r * n + j] = v[r * n + j] * scale[c0 + j] + mean[c0 + j];
}

void StandardScaler::inverse_transform(float* v, int64_t rows, int64_t n, int64_t c0) const {
  SSMKIT_CHECK(c0 >= 0 && c0 + n <= n_cols(), "StandardScaler::inverse_transform: columns ", c0, "..",
               c0 + n - 1, " out of range; the scaler has ", n_cols());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j)
      v[r * n + j] = static_cast<float>(static_cast<double>(v[r * n + j]) * scale[c0 + j] + mean[c0 + j]);
}

}  // namespace ssmkit::timeseries
