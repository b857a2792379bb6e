// Helpers shared by the forecaster tests (test_forecast_models.cpp, test_chimera.cpp): dims, random time
// marks, a one-thread scope and the finite-difference gradient check of a model's parameters.
#pragma once

#include <omp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "ssmkit/timeseries/forecast_model.h"

namespace ssmkit::test {

inline timeseries::ForecastDims forecast_dims(int64_t L, int64_t H, int64_t C, int64_t F = 0, int64_t period = 4) {
  timeseries::ForecastDims d;
  d.seq_len = L;
  d.pred_len = H;
  d.n_channels = C;
  d.n_marks = F;
  d.period = period;
  return d;
}

// Time marks (B,L,F) in [-0.5, 0.5) for a model that reads them, else an undefined Var.
inline core::Var marks_for(const timeseries::ForecastModel& m, int64_t B, uint64_t seed,
                           core::DType dt = core::DType::F32) {
  const timeseries::ForecastDims& d = m.dims();
  if (!m.uses_marks() || d.n_marks == 0) return core::Var{};
  return core::Var(random_tensor({B, d.seq_len, d.n_marks}, seed, -0.5, 0.5, dt));
}

// Runs its scope on one OpenMP thread. Gradient checks and overfits make thousands of calls on tiny tensors,
// where a thread team only costs (some core kernels, EinFFT's among them, start one for any B > 1; on a busy
// machine that made the SiMBA check 70x slower).
struct OneThread {
  int prev = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(prev); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};

// Central differences in double on the parameters named in `names` (all when empty; every name must exist):
// d/dp sum(out * w) against backward(w), for a batch of 2 random windows. expect_nonzero: each checked
// parameter must also get a gradient (a check of zeros against zeros proves nothing).
inline void gradcheck_params(timeseries::ForecastModel& m, const std::vector<std::string>& names,
                             double rtol = 1e-5, bool expect_nonzero = false) {
  OneThread one;
  m.to(core::DType::F64);
  m.eval();
  const timeseries::ForecastDims& d = m.dims();
  const int64_t B = 2;
  core::Var x(random_tensor({B, d.seq_len, d.n_channels}, 11, -2, 2));
  core::Var xm = marks_for(m, B, 12, core::DType::F64);
  m.zero_grad();
  core::Var out = m.forward(x, xm);
  core::Tensor w = random_tensor(out.shape(), 13);
  out.backward(w);
  auto loss = [&] {
    core::NoGradGuard ng;
    return dot(m.forward(x, xm).value(), w);
  };
  size_t checked = 0;
  for (auto& [name, p] : m.named_parameters()) {
    if (!names.empty() && std::find(names.begin(), names.end(), name) == names.end()) continue;
    ++checked;
    core::Tensor g = p.grad().defined() ? p.grad() : core::Tensor::zeros(p.shape(), core::DType::F64);
    if (expect_nonzero) {
      EXPECT_GT(core::max_abs(g), 0.0) << name << ": no gradient reached it";
    }
    gradcheck(loss, p.value(), g, m.model_name() + " " + name, 1e-6, 1e-7, rtol);
  }
  EXPECT_EQ(checked, names.empty() ? m.named_parameters().size() : names.size())
      << m.model_name() << ": some parameter names are not in the model";
}

}  // namespace ssmkit::test
