// Float32 elementwise math over arrays through the SIMD path chosen at run time (Highway: AVX-512,
// AVX2 or the portable SCALAR fallback), the same code the kernels inline; double overloads in plain loops
// for the reference dtype. Also the dispatch controls
// that tests and benchmarks use to run every kernel on each instruction-set path.
//   vec_exp       y[i] = e^x[i] (relative error < 2e-7 for x in [-87, 88]; clamped outside)
//   vec_softplus  y[i] = log(1 + e^x[i])  (x above 20 passes through, as PyTorch)
//   vec_sigmoid   y[i] = 1 / (1 + e^-x[i]);  vec_silu  y[i] = x[i] sigmoid(x[i])
// x and y may be the same array; n >= 0 values, any alignment.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ssmkit::core {

void vec_exp(const float* x, float* y, int64_t n);
void vec_softplus(const float* x, float* y, int64_t n);
void vec_sigmoid(const float* x, float* y, int64_t n);
void vec_silu(const float* x, float* y, int64_t n);
// The same four for double (the reference dtype), in plain libm loops.
void vec_exp(const double* x, double* y, int64_t n);
void vec_softplus(const double* x, double* y, int64_t n);
void vec_sigmoid(const double* x, double* y, int64_t n);
void vec_silu(const double* x, double* y, int64_t n);

// Name of the SIMD path the dispatched kernels use now: "AVX3" (AVX-512), "AVX2", "SCALAR" (portable).
std::string simd_target();
// The paths this binary contains that this CPU can run, best first.
std::vector<std::string> simd_targets_available();
// Restricts dispatch to the named path (one of simd_targets_available()); "" restores the best one.
// For tests and benchmarks; not thread-safe against kernels running concurrently.
void simd_force_target(const std::string& name);

}  // namespace ssmkit::core
