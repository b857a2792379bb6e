// Autograd wrappers of the SSM kernels: forward runs the kernel, backward calls its explicit backward.
#include "ssmkit/core/ssm/scan_ops.h"

#include <memory>

#include "ssmkit/core/ssm/fftconv.h"
#include "ssmkit/core/ssm/selective_scan.h"

namespace ssmkit::core {

namespace {
Tensor value_or_none(const Var& v) { return v.defined() ? v.value() : Tensor{}; }
}  // namespace

Var selective_scan(const ScanVars& v, Var* last_state) {
  ScanInputs in;
  in.u = v.u.value();
  in.delta = v.delta.value();
  in.A = v.A.value();
  in.B = v.B.value();
  in.C = v.C.value();
  in.D = value_or_none(v.D);
  in.z = value_or_none(v.z);
  in.delta_bias = value_or_none(v.delta_bias);
  in.h0 = value_or_none(v.h0);
  in.delta_softplus = v.delta_softplus;
  // Inputs in a fixed order; absent optional ones are passed as undefined Vars (never need grad).
  const std::vector<Var> inputs = {v.u, v.delta, v.A, v.B, v.C, v.D, v.z, v.delta_bias, v.h0};
  std::vector<Var> gradable;
  for (const Var& x : inputs) gradable.push_back(x.defined() ? x : Var(Tensor::empty({0})));

  Tensor y, last;
  auto saved = std::make_shared<ScanSaved>();
  const bool recording = grad_enabled();
  selective_scan_forward(y, last_state ? &last : nullptr, recording ? saved.get() : nullptr, in);
  std::vector<Tensor> outs = {y};
  if (last_state) outs.push_back(last);
  std::vector<Var> res = make_results(
      outs, gradable,
      [in, saved](const std::vector<Tensor>& g, const std::vector<bool>& need) {
        ScanGrads gr;
        selective_scan_backward(gr, g[0].defined() ? g[0] : Tensor::zeros(in.u.shape(), in.u.dtype()),
                                g.size() > 1 ? g[1] : Tensor{}, in, *saved);
        std::vector<Tensor> r = {gr.du, gr.ddelta, gr.dA, gr.dB, gr.dC, gr.dD, gr.dz, gr.ddelta_bias, gr.dh0};
        for (size_t i = 0; i < r.size(); ++i)
          if (!need[i]) r[i] = Tensor{};
        return r;
      },
      "selective_scan");
  if (last_state) *last_state = res[1];
  return res[0];
}

Var s4d_kernel(const Var& log_dt, const Var& C, const Var& log_A_real, const Var& A_imag, int64_t L, S4DDisc disc,
               int a_imag_sign) {
  Tensor K;
  const Tensor t_dt = log_dt.value(), t_C = C.value(), t_re = log_A_real.value(), t_im = A_imag.value();
  s4d_kernel_forward(K, t_dt, t_C, t_re, t_im, L, disc, a_imag_sign);
  return make_result(K, {log_dt, C, log_A_real, A_imag},
                     [=](const Tensor& g, const std::vector<bool>& need) {
                       Tensor d_dt, d_C, d_re, d_im;
                       s4d_kernel_backward(d_dt, d_C, d_re, d_im, g, t_dt, t_C, t_re, t_im, disc, a_imag_sign);
                       std::vector<Tensor> r = {d_dt, d_C, d_re, d_im};
                       for (size_t i = 0; i < r.size(); ++i)
                         if (!need[i]) r[i] = Tensor{};
                       return r;
                     },
                     "s4d_kernel");
}

Var fftconv(const Var& u, const Var& k, const Var& D) {
  const Tensor tu = u.value(), tk = k.value(), tD = value_or_none(D);
  Tensor y;
  fftconv_forward(y, tu, tk, tD);
  return make_result(y, {u, k, D.defined() ? D : Var(Tensor::empty({0}))},
                     [=](const Tensor& g, const std::vector<bool>& need) {
                       Tensor du, dk, dD;
                       fftconv_backward(du, dk, dD, g, tu, tk, tD);
                       return std::vector<Tensor>{need[0] ? du : Tensor{}, need[1] ? dk : Tensor{},
                                                  need[2] ? dD : Tensor{}};
                     },
                     "fftconv");
}

Var cross_scan(const Var& x) {
  Tensor xs;
  cross_scan_forward(xs, x.value());
  const int64_t H = x.size(2), W = x.size(3);
  return make_result(xs, {x}, [H, W](const Tensor& g, const std::vector<bool>&) {
    Tensor dx;
    cross_scan_backward(dx, g, H, W);
    return std::vector<Tensor>{dx};
  }, "cross_scan");
}

Var cross_merge(const Var& ys, int64_t H, int64_t W) {
  Tensor y;
  cross_merge_forward(y, ys.value(), H, W);
  return make_result(y, {ys}, [H, W](const Tensor& g, const std::vector<bool>&) {
    Tensor d;
    cross_merge_backward(d, g, H, W);
    return std::vector<Tensor>{d};
  }, "cross_merge");
}

Var direction_scan(const Var& x, ScanDirection k) {
  Tensor xs;
  direction_scan_forward(xs, x.value(), k);
  const int64_t H = x.size(2), W = x.size(3);
  return make_result(xs, {x}, [k, H, W](const Tensor& g, const std::vector<bool>&) {
    Tensor dx;
    direction_scan_backward(dx, g, k, H, W);
    return std::vector<Tensor>{dx};
  }, "direction_scan");
}

Var direction_merge(const Var& ys, ScanDirection k, int64_t H, int64_t W) {
  Tensor y;
  direction_merge_forward(y, ys.value(), k, H, W);
  return make_result(y, {ys}, [k, H, W](const Tensor& g, const std::vector<bool>&) {
    Tensor d;
    direction_merge_backward(d, g, k, H, W);
    return std::vector<Tensor>{d};
  }, "direction_merge");
}

Var mamba_block(const Var& hidden, const std::vector<Var>& params, const MambaConfig& cfg) {
  // Bind the Vars' values to a MambaParams in names() order (no copies).
  std::vector<Tensor> values;
  values.reserve(params.size());
  for (const Var& v : params) values.push_back(v.defined() ? v.value() : Tensor{});
  const MambaParams p = MambaParams::bind(cfg, values);
  auto cache = std::make_shared<MambaCache>();
  Tensor out;
  mamba_block_forward(out, grad_enabled() ? cache.get() : nullptr, hidden.value(), p, cfg);
  std::vector<Var> inputs = {hidden};
  inputs.insert(inputs.end(), params.begin(), params.end());
  return make_result(out, inputs,
                     [cache, p, cfg](const Tensor& g, const std::vector<bool>& need) {
                       MambaParams grads = MambaParams::zeros(cfg, g.dtype());
                       Tensor dhidden;
                       mamba_block_backward(dhidden, grads, g, *cache, p, cfg);
                       std::vector<Tensor> r = {need[0] ? dhidden : Tensor{}};
                       size_t i = 1;
                       for (auto& [key, t] : grads.names()) r.push_back(need[i++] ? *t : Tensor{});
                       return r;
                     },
                     "mamba_block");
}

}  // namespace ssmkit::core
