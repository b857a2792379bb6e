// Golden handlers for ops "s4d_kernel" (S4D's convolution kernel from log_dt, C, log_A_real, A_imag) and
// "fftconv" (causal FFT convolution with the D skip). Optional metadata: s4d_kernel "disc" (zoh | bilinear,
// default zoh) and "a_imag_sign" (+1 s4d.py, -1 SSMKernelDiag; default +1); L from "L" or gout.K.
#include "golden_case.h"
#include "ssmkit/core/ssm/fftconv.h"
#include "ssmkit/core/ssm/s4d.h"

namespace ssmkit::golden {

Results run_s4d_kernel(const core::SafetensorsFile& f) {
  const core::Tensor &log_dt = f.get("in.log_dt"), &C = f.get("in.C");
  const core::Tensor &log_A_real = f.get("in.log_A_real"), &A_imag = f.get("in.A_imag");
  SSMKIT_CHECK(f.has_meta("L") || f.has("gout.K"), f.path, ": s4d_kernel needs metadata L or gout.K");
  const int64_t L = f.has_meta("L") ? std::stoll(f.meta("L")) : f.get("gout.K").size(-1);
  const std::string disc_name = f.meta_or("disc", "zoh");
  SSMKIT_CHECK(disc_name == "zoh" || disc_name == "bilinear", f.path, ": metadata disc is \"", disc_name,
               "\", expected zoh or bilinear");
  const core::S4DDisc disc = disc_name == "zoh" ? core::S4DDisc::ZOH : core::S4DDisc::Bilinear;
  const int sign = std::stoi(f.meta_or("a_imag_sign", "1"));

  core::Tensor K;
  core::s4d_kernel_forward(K, log_dt, C, log_A_real, A_imag, L, disc, sign);
  Results r{{"out.K", K}};
  if (!f.has("gout.K")) return r;

  core::Tensor dlog_dt, dC, dlog_A_real, dA_imag;
  core::s4d_kernel_backward(dlog_dt, dC, dlog_A_real, dA_imag, f.get("gout.K"), log_dt, C, log_A_real, A_imag,
                            disc, sign);
  r["grad.log_dt"] = dlog_dt;
  r["grad.C"] = dC;
  r["grad.log_A_real"] = dlog_A_real;
  r["grad.A_imag"] = dA_imag;
  return r;
}

Results run_fftconv(const core::SafetensorsFile& f) {
  const core::Tensor &u = f.get("in.u"), &k = f.get("in.k");
  const core::Tensor D = optional_tensor(f, "in.D");

  core::Tensor y;
  core::fftconv_forward(y, u, k, D);
  Results r{{"out.y", y}};
  if (!f.has("gout.y")) return r;

  core::Tensor du, dk, dD;
  core::fftconv_backward(du, dk, dD, f.get("gout.y"), u, k, D);
  r["grad.u"] = du;
  r["grad.k"] = dk;
  if (dD.defined()) r["grad.D"] = dD;
  return r;
}

}  // namespace ssmkit::golden
