// Parameter initializers with torch.nn.init semantics (uniform_, normal_, trunc_normal_ by inverse CDF,
// kaiming_*, xavier_*, fans and gains), PyTorch's default nn.Linear / nn.ConvNd init, and the Mamba
// initializers of mamba_ssm/modules/mamba_simple.py (dt_proj weight and inverse-softplus bias, S4D-Real
// A_log, D = 1). Every function fills its tensor in place (F32 or F64, any strides) from an Rng, drawing
// values in row-major order; a tensor with no elements is left alone (PyTorch warns and returns).
// Not here: PyTorch's random stream (values differ from torch.manual_seed runs; distributions match).
#pragma once

#include <optional>
#include <string>

#include "ssmkit/core/random.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

// torch.nn.init._calculate_fan_in_and_fan_out: for shape (out, in, k...) with receptive field
// r = prod(k...), fan_in = in * r and fan_out = out * r. Throws Error for fewer than 2 dimensions.
struct Fans {
  int64_t fan_in = 0;
  int64_t fan_out = 0;
};
Fans calculate_fan_in_and_fan_out(const Shape& shape);

// torch.nn.init.calculate_gain: linear, conv1d/2d/3d, conv_transpose1d/2d/3d, sigmoid -> 1; tanh -> 5/3;
// relu -> sqrt(2); leaky_relu -> sqrt(2 / (1 + slope^2)) with slope = param (0.01 when absent);
// selu -> 3/4. Unknown names throw Error.
double calculate_gain(const std::string& nonlinearity, std::optional<double> param = std::nullopt);

void uniform_(Tensor& t, Rng& rng, double a = 0.0, double b = 1.0);       // U[a, b)
void normal_(Tensor& t, Rng& rng, double mean = 0.0, double std = 1.0);   // N(mean, std^2)
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);

// torch.nn.init.trunc_normal_ (also timm's): N(mean, std^2) truncated to [a, b] (absolute bounds, not in
// units of std), drawn as PyTorch does: u ~ U(2 cdf((a-mean)/std) - 1, 2 cdf((b-mean)/std) - 1),
// value = mean + std sqrt(2) erfinv(u), clamped to [a, b].
void trunc_normal_(Tensor& t, Rng& rng, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0);

// torch.nn.init.kaiming_uniform_ / kaiming_normal_: std = gain / sqrt(fan) with gain =
// calculate_gain(nonlinearity, a) and fan = fan_in or fan_out (mode "fan_in" / "fan_out"); uniform uses
// bound sqrt(3) std.
void kaiming_uniform_(Tensor& t, Rng& rng, double a = 0.0, const std::string& mode = "fan_in",
                      const std::string& nonlinearity = "leaky_relu");
void kaiming_normal_(Tensor& t, Rng& rng, double a = 0.0, const std::string& mode = "fan_in",
                     const std::string& nonlinearity = "leaky_relu");

// torch.nn.init.xavier_uniform_ / xavier_normal_: std = gain sqrt(2 / (fan_in + fan_out)); uniform uses
// bound sqrt(3) std.
void xavier_uniform_(Tensor& t, Rng& rng, double gain = 1.0);
void xavier_normal_(Tensor& t, Rng& rng, double gain = 1.0);

// reset_parameters() of nn.Linear and nn.Conv1d/2d/3d: weight (out, in, k...) by kaiming_uniform_ with
// a = sqrt(5), i.e. U(+-1/sqrt(fan_in)); then bias (out), when defined, U(+-1/sqrt(fan_in)) (0 when fan_in 0).
void default_init_(Tensor& weight, Tensor& bias, Rng& rng);

// Mamba's dt_proj init. weight (..., d_inner, dt_rank): U(+-r) for dt_init "random", all r for "constant",
// with r = dt_rank^-0.5 * dt_scale. bias (..., d_inner) (same leading dims; VMamba's dt_projs_bias is
// (K, d_inner)): dt = exp(U[log dt_min, log dt_max]) clamped below at dt_init_floor, then the inverse of
// softplus, bias = dt + log(-expm1(-dt)), so that softplus(bias) = dt. Weight is drawn before bias.
void mamba_dt_init_(Tensor& weight, Tensor& bias, Rng& rng, double dt_scale = 1.0,
                    const std::string& dt_init = "random", double dt_min = 1e-3, double dt_max = 1e-1,
                    double dt_init_floor = 1e-4);

// Mamba's A_log (S4D-Real): A_log[..., c, n] = log(n + 1) for A_log (..., d_inner, d_state), so that
// A = -exp(A_log) = -(n + 1). Also VMamba's A_logs (K*d_inner, d_state).
void mamba_A_log_init_(Tensor& A_log);
// Mamba's D (skip) init: all ones (same as ones_).
void mamba_D_init_(Tensor& D);

// The inverse error function on (-1, 1) (+-inf at +-1), accurate to double rounding; used by trunc_normal_.
double erfinv(double x);

}  // namespace ssmkit::core
