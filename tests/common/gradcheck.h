// Central-difference gradient checks in double precision for kernels with explicit backward passes.
// Usage: give a function computing the scalar loss from the current contents of some F64 tensors,
// the tensors to perturb, and the analytic gradients; every element is perturbed by +-eps.
// Also the small helpers the core tests share: tensor builders, closeness and Error-message checks.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <omp.h>

#include "ssmkit/core/autograd/var.h"
#include "ssmkit/core/error.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::test {

// OpenMP's thread count set to n for the guard's lifetime (restored after).
struct ScopedThreads {
  int prev = omp_get_max_threads();
  explicit ScopedThreads(int n) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(prev); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;
};

// loss() must read the tensors' current values (they are modified in place and restored).
// Fails the test (with the input name and the index) where |numeric - analytic| >
// atol + rtol * |numeric|. Returns the max abs error seen.
inline double gradcheck(const std::function<double()>& loss, core::Tensor& x, const core::Tensor& analytic,
                        const std::string& name, double eps = 1e-6, double atol = 1e-7, double rtol = 1e-5) {
  EXPECT_EQ(x.dtype(), core::DType::F64) << name;
  EXPECT_TRUE(x.is_contiguous()) << name;
  EXPECT_EQ(x.shape(), analytic.shape()) << name;
  std::vector<double> g = analytic.to_double_vector();
  double* p = x.data<double>();
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    double keep = p[i];
    p[i] = keep + eps;
    double lp = loss();
    p[i] = keep - eps;
    double lm = loss();
    p[i] = keep;
    double num = (lp - lm) / (2 * eps);
    double err = std::abs(num - g[static_cast<size_t>(i)]);
    worst = std::max(worst, err);
    EXPECT_LE(err, atol + rtol * std::abs(num)) << name << "[" << i << "]: numeric " << num << " analytic "
                                               << g[static_cast<size_t>(i)];
  }
  return worst;
}

// sum(a * b) for same-shape tensors, in double.
inline double dot(const core::Tensor& a, const core::Tensor& b) {
  std::vector<double> x = a.to_double_vector(), y = b.to_double_vector();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// Deterministic pseudo-random fill in [lo, hi) (xorshift), for tests.
inline core::Tensor random_tensor(const core::Shape& shape, uint64_t seed, double lo = -1, double hi = 1,
                                  core::DType dt = core::DType::F64) {
  core::Tensor t = core::Tensor::empty(shape, core::DType::F64);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    p[i] = lo + (hi - lo) * static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  return dt == core::DType::F64 ? t : t.to(dt);
}

// An F64 tensor of shape s holding v.
inline core::Tensor f64(const core::Shape& s, const std::vector<double>& v) { return core::Tensor::from_vector(s, v); }

// An I64 tensor of shape s holding v (class targets, gather indices).
inline core::Tensor indices(const core::Shape& s, const std::vector<int64_t>& v) {
  core::Tensor t = core::Tensor::empty(s, core::DType::I64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

// A Var of shape s holding v (F64).
inline core::Var var(const core::Shape& s, const std::vector<double>& v, bool grad = false) {
  return core::Var(core::Tensor::from_vector(s, v), grad);
}

// A Var's values in double.
inline std::vector<double> values(const core::Var& v) { return v.value().to_double_vector(); }

// EXPECT_NEAR on every element of two vectors of the same size; failures name what[i].
inline void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol,
                        const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << "[" << i << "]";
}

// An absolute tolerance rel * max(1, max |ref|).
inline double tol_of(const core::Tensor& ref, double rel) { return rel * std::max(1.0, core::max_abs(ref)); }

// Denormal values (nonzero, below the smallest normal float) in a float tensor: the recurrences flush them
// (core/denormals.h), so their outputs and gradients must hold none.
inline bool is_denormal(float v) { return v != 0.0f && std::abs(v) < std::numeric_limits<float>::min(); }
inline int64_t count_denormals(const core::Tensor& t) {
  int64_t n = 0;
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) n += is_denormal(p[i]);
  return n;
}
// Whether the calling thread still makes denormals (no flush-to-zero left behind by a recurrence's guard).
inline bool thread_makes_denormals() {
  volatile float tiny = 1e-30f, small = 1e-10f;
  return is_denormal(tiny * small);
}

// Runs f, expects an Error whose message contains `needle`.
inline void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    return;
  }
  ADD_FAILURE() << "no Error thrown (expected one mentioning \"" << needle << "\")";
}

// The message of the Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const core::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Checks an autograd op (or any composition of ops) end to end: fn maps Vars made from `inputs` (F64,
// all requiring grad) to one output; the analytic gradients from backward(w) with a random seed w are
// compared by central differences with d/dx sum(fn(x) * w). Inputs listed in `skip` are not perturbed
// (integer-like arguments, say). Returns the worst error.
inline double gradcheck_op(const std::function<core::Var(const std::vector<core::Var>&)>& fn,
                           std::vector<core::Tensor> inputs, const std::string& name, double eps = 1e-6,
                           double atol = 1e-7, double rtol = 1e-5, const std::vector<size_t>& skip = {}) {
  std::vector<core::Var> vars;
  for (auto& t : inputs) vars.emplace_back(t, true);
  core::Var out = fn(vars);
  core::Tensor w = random_tensor(out.shape(), 977, -1, 1, out.dtype());
  out.backward(w);
  auto loss = [&] {
    core::NoGradGuard ng;
    std::vector<core::Var> fresh;
    for (auto& t : inputs) fresh.emplace_back(t, false);
    return dot(fn(fresh).value(), w);
  };
  double worst = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (std::find(skip.begin(), skip.end(), i) != skip.end()) continue;
    core::Tensor g = vars[i].grad().defined() ? vars[i].grad() : core::Tensor::zeros(inputs[i].shape(), inputs[i].dtype());
    worst = std::max(worst, gradcheck(loss, inputs[i], g, name + " input " + std::to_string(i), eps, atol, rtol));
  }
  return worst;
}

// Path of the golden directory: $SSMKIT_GOLDEN_DIR or ../shared/golden relative to the source tree.
std::string golden_dir();
// A file under the golden dir; fails the test (naming the path) when it is absent.
std::string golden_file(const std::string& relative);

}  // namespace ssmkit::test
