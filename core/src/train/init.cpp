// torch.nn.init initializers, PyTorch's default Linear/Conv init and Mamba's dt/A_log/D inits, filling
// tensors in place from an Rng. Values are drawn in double in row-major order into a scratch buffer and
// copied into the tensor (any strides, F32 or F64), so a given seed fills F32 and F64 tensors alike.
// Not here: orthogonal_, sparse_, dirac_, eye_ (no model of ours uses them).
#include "ssmkit/core/train/init.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace ssmkit::core {

// ---------------------------------------------------------------------------------------------------------
// Helpers

static void check_float(const Tensor& t, const char* op) {
  SSMKIT_CHECK(t.defined(), op, ": tensor is undefined");
  SSMKIT_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, op, ": tensor has dtype ", dtype_name(t.dtype()),
               " (F32 or F64 needed)");
}

// Writes v (row-major values) into t, whatever its strides and float dtype.
static void assign(Tensor& t, const std::vector<double>& v) {
  Tensor src = Tensor::from_vector(t.shape(), v);
  t.copy_from(src);
}

double erfinv(double x) {
  if (x <= -1.0) return x == -1.0 ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  if (x >= 1.0) return x == 1.0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  if (x == 0.0) return 0.0;
  // Giles (2010), "Approximating the erfinv function", single-precision polynomial as a start...
  const double w = -std::log((1.0 - x) * (1.0 + x));
  double p;
  if (w < 5.0) {
    const double ww = w - 2.5;
    p = 2.81022636e-08;
    p = 3.43273939e-07 + p * ww;
    p = -3.5233877e-06 + p * ww;
    p = -4.39150654e-06 + p * ww;
    p = 0.00021858087 + p * ww;
    p = -0.00125372503 + p * ww;
    p = -0.00417768164 + p * ww;
    p = 0.246640727 + p * ww;
    p = 1.50140941 + p * ww;
  } else {
    const double ww = std::sqrt(w) - 3.0;
    p = -0.000200214257;
    p = 0.000100950558 + p * ww;
    p = 0.00134934322 + p * ww;
    p = -0.00367342844 + p * ww;
    p = 0.00573950773 + p * ww;
    p = -0.0076224613 + p * ww;
    p = 0.00943887047 + p * ww;
    p = 1.00167406 + p * ww;
    p = 2.83297682 + p * ww;
  }
  double y = p * x;
  // ...then two Newton steps on erf(y) = x: y -= (erf(y) - x) / (2/sqrt(pi) exp(-y^2)).
  const double two_over_sqrt_pi = 1.1283791670955126;
  for (int k = 0; k < 2; ++k) {
    const double err = std::erf(y) - x;
    y -= err / (two_over_sqrt_pi * std::exp(-y * y));
  }
  return y;
}

// ---------------------------------------------------------------------------------------------------------
// Fans and gains

Fans calculate_fan_in_and_fan_out(const Shape& shape) {
  SSMKIT_CHECK(shape.size() >= 2, "calculate_fan_in_and_fan_out: fan in and fan out can not be computed for a tensor "
               "with fewer than 2 dimensions, got shape ", shape_str(shape));
  int64_t receptive = 1;
  for (size_t d = 2; d < shape.size(); ++d) receptive *= shape[d];
  return {shape[1] * receptive, shape[0] * receptive};
}

double calculate_gain(const std::string& nl, std::optional<double> param) {
  if (nl == "linear" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" || nl == "conv_transpose1d" ||
      nl == "conv_transpose2d" || nl == "conv_transpose3d" || nl == "sigmoid")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") {
    const double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1.0 + slope * slope));
  }
  if (nl == "selu") return 3.0 / 4.0;
  throw Error("calculate_gain: unsupported nonlinearity \"" + nl +
              "\" (linear, conv*, conv_transpose*, sigmoid, tanh, relu, leaky_relu, selu)");
}

static int64_t fan_for_mode(const Shape& shape, const std::string& mode, const char* op) {
  SSMKIT_CHECK(mode == "fan_in" || mode == "fan_out", op, ": mode must be \"fan_in\" or \"fan_out\", got \"", mode,
               "\"");
  const Fans f = calculate_fan_in_and_fan_out(shape);
  return mode == "fan_in" ? f.fan_in : f.fan_out;
}

// ---------------------------------------------------------------------------------------------------------
// Basic distributions

void uniform_(Tensor& t, Rng& rng, double a, double b) {
  check_float(t, "uniform_");
  SSMKIT_CHECK(a <= b, "uniform_: needs a <= b, got a = ", a, ", b = ", b);
  if (t.numel() == 0) return;
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (double& x : v) x = rng.uniform(a, b);
  assign(t, v);
}

void normal_(Tensor& t, Rng& rng, double mean, double std) {
  check_float(t, "normal_");
  SSMKIT_CHECK(std >= 0, "normal_: std must be >= 0, got ", std);
  if (t.numel() == 0) return;
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (double& x : v) x = rng.normal(mean, std);
  assign(t, v);
}

void constant_(Tensor& t, double value) {
  check_float(t, "constant_");
  t.fill(value);
}
void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }

void trunc_normal_(Tensor& t, Rng& rng, double mean, double std, double a, double b) {
  check_float(t, "trunc_normal_");
  SSMKIT_CHECK(std > 0 && a < b, "trunc_normal_: needs std > 0 and a < b, got std = ", std, ", a = ", a, ", b = ", b);
  if (t.numel() == 0) return;
  auto norm_cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = norm_cdf((a - mean) / std), u = norm_cdf((b - mean) / std);
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (double& x : v) {
    const double p = rng.uniform(2 * l - 1, 2 * u - 1);
    x = mean + std * std::sqrt(2.0) * erfinv(p);
    x = std::min(std::max(x, a), b);
  }
  assign(t, v);
}

// ---------------------------------------------------------------------------------------------------------
// Kaiming / Xavier / default

void kaiming_uniform_(Tensor& t, Rng& rng, double a, const std::string& mode, const std::string& nonlinearity) {
  check_float(t, "kaiming_uniform_");
  if (t.numel() == 0) return;
  const int64_t fan = fan_for_mode(t.shape(), mode, "kaiming_uniform_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  const double bound = std::sqrt(3.0) * std;
  uniform_(t, rng, -bound, bound);
}

void kaiming_normal_(Tensor& t, Rng& rng, double a, const std::string& mode, const std::string& nonlinearity) {
  check_float(t, "kaiming_normal_");
  if (t.numel() == 0) return;
  const int64_t fan = fan_for_mode(t.shape(), mode, "kaiming_normal_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  normal_(t, rng, 0.0, std);
}

void xavier_uniform_(Tensor& t, Rng& rng, double gain) {
  check_float(t, "xavier_uniform_");
  const Fans f = calculate_fan_in_and_fan_out(t.shape());
  if (t.numel() == 0) return;
  const double std = gain * std::sqrt(2.0 / static_cast<double>(f.fan_in + f.fan_out));
  const double bound = std::sqrt(3.0) * std;
  uniform_(t, rng, -bound, bound);
}

void xavier_normal_(Tensor& t, Rng& rng, double gain) {
  check_float(t, "xavier_normal_");
  const Fans f = calculate_fan_in_and_fan_out(t.shape());
  if (t.numel() == 0) return;
  const double std = gain * std::sqrt(2.0 / static_cast<double>(f.fan_in + f.fan_out));
  normal_(t, rng, 0.0, std);
}

void default_init_(Tensor& weight, Tensor& bias, Rng& rng) {
  check_float(weight, "default_init_");
  const Fans f = calculate_fan_in_and_fan_out(weight.shape());
  if (bias.defined()) {
    check_float(bias, "default_init_");
    SSMKIT_CHECK(bias.ndim() == 1 && bias.size(0) == weight.size(0), "default_init_: bias ", shape_str(bias.shape()),
                 " does not match weight ", shape_str(weight.shape()), " (needs (out))");
  }
  kaiming_uniform_(weight, rng, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = f.fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(f.fan_in)) : 0.0;
    uniform_(bias, rng, -bound, bound);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Mamba

void mamba_dt_init_(Tensor& weight, Tensor& bias, Rng& rng, double dt_scale, const std::string& dt_init, double dt_min,
                    double dt_max, double dt_init_floor) {
  check_float(weight, "mamba_dt_init_");
  check_float(bias, "mamba_dt_init_");
  SSMKIT_CHECK(weight.ndim() >= 2 && bias.ndim() == weight.ndim() - 1, "mamba_dt_init_: weight ",
               shape_str(weight.shape()), " and bias ", shape_str(bias.shape()),
               " must be (..., d_inner, dt_rank) and (..., d_inner)");
  for (int64_t d = 0; d < bias.ndim(); ++d)
    SSMKIT_CHECK(bias.size(d) == weight.size(d), "mamba_dt_init_: bias ", shape_str(bias.shape()),
                 " does not match weight ", shape_str(weight.shape()), " (needs (..., d_inner) of weight's leading dims)");
  SSMKIT_CHECK(dt_init == "random" || dt_init == "constant", "mamba_dt_init_: dt_init must be \"random\" or "
               "\"constant\", got \"", dt_init, "\"");
  SSMKIT_CHECK(0 < dt_min && dt_min <= dt_max, "mamba_dt_init_: needs 0 < dt_min <= dt_max, got dt_min = ", dt_min,
               ", dt_max = ", dt_max);
  const int64_t dt_rank = weight.size(-1);
  SSMKIT_CHECK(dt_rank > 0, "mamba_dt_init_: weight ", shape_str(weight.shape()), " has dt_rank 0");
  const double r = std::pow(static_cast<double>(dt_rank), -0.5) * dt_scale;
  if (dt_init == "constant")
    constant_(weight, r);
  else
    uniform_(weight, rng, -r, r);
  if (bias.numel() == 0) return;
  const double lo = std::log(dt_min), hi = std::log(dt_max);
  std::vector<double> v(static_cast<size_t>(bias.numel()));
  for (double& x : v) {
    const double dt = std::max(std::exp(rng.uniform() * (hi - lo) + lo), dt_init_floor);
    x = dt + std::log(-std::expm1(-dt));  // inverse of softplus
  }
  assign(bias, v);
}

void mamba_A_log_init_(Tensor& A_log) {
  check_float(A_log, "mamba_A_log_init_");
  SSMKIT_CHECK(A_log.ndim() >= 1, "mamba_A_log_init_: A_log must be (..., d_inner, d_state), got ",
               shape_str(A_log.shape()));
  if (A_log.numel() == 0) return;
  const int64_t n_state = A_log.size(-1);
  std::vector<double> v(static_cast<size_t>(A_log.numel()));
  for (size_t j = 0; j < v.size(); ++j) v[j] = std::log(static_cast<double>(static_cast<int64_t>(j) % n_state + 1));
  assign(A_log, v);
}

void mamba_D_init_(Tensor& D) {
  check_float(D, "mamba_D_init_");
  D.fill(1.0);
}

}  // namespace ssmkit::core
