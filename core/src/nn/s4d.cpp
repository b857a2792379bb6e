// S4D layer: official registration order and initialization (s4d.py), forward through the S4D kernel
// and FFT-convolution ops, the bidirectional kernel split, and the recurrent step.
#include "ssmkit/core/nn/s4d.h"

#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/ssm/scan_ops.h"

namespace ssmkit::core {

S4DKernel::S4DKernel(int64_t H, const S4DOptions& opt, Rng& rng) : disc(opt.disc), bidirectional(opt.bidirectional) {
  SSMKIT_CHECK(H > 0 && opt.d_state >= 2 && opt.d_state % 2 == 0, "S4DKernel: d_model ", H,
               " and an even d_state >= 2 needed, got d_state ", opt.d_state);
  const int64_t M = opt.d_state / 2;
  Tensor dt = Tensor::empty({H}), c = Tensor::empty({H, M, 2}), re = Tensor::empty({H, M}), im = Tensor::empty({H, M});
  s4d_init(dt, c, re, im, opt.init, rng.next_u64(), opt.dt_min, opt.dt_max);
  if (bidirectional) {
    Tensor c2 = Tensor::empty({H, M, 2}), dt2 = dt.clone(), re2 = re.clone(), im2 = im.clone();
    s4d_init(dt2, c2, re2, im2, opt.init, rng.next_u64(), opt.dt_min, opt.dt_max);
    Tensor both = Tensor::empty({2, H, M, 2});
    both.select(0, 0).copy_from(c);
    both.select(0, 1).copy_from(c2);
    c = both;
  }
  // s4d.py: self.C = Parameter(view_as_real(C)); then register("log_dt"), ("log_A_real"), ("A_imag")
  C = register_parameter("C", c);
  log_dt = register_parameter("log_dt", dt);
  log_A_real = register_parameter("log_A_real", re);
  A_imag = register_parameter("A_imag", im);
}

Var S4DKernel::forward(int64_t L, int copy) const {
  SSMKIT_CHECK(copy == 0 || (copy == 1 && bidirectional), "S4DKernel: kernel copy ", copy, " does not exist");
  Var c = bidirectional ? select(C, 0, copy) : C;
  return s4d_kernel(log_dt, c, log_A_real, A_imag, L, disc, kS4DSignMinimal);
}

S4D::S4D(int64_t H, const S4DOptions& o, Rng& rng) : d_model(H), opt(o) {
  D = register_parameter("D", [&] {
    Tensor d = Tensor::empty({H});
    float* p = d.data<float>();
    for (int64_t i = 0; i < H; ++i) p[i] = static_cast<float>(rng.normal());
    return d;
  }());
  kernel = register_module("kernel", std::make_shared<S4DKernel>(H, opt, rng));
  auto seq = std::make_shared<Module>();  // nn.Sequential(Conv1d(H, 2H, 1), GLU(dim=-2))
  register_module("output_linear", seq);
  output_conv = seq->register_module("0", std::make_shared<Conv1d>(H, 2 * H, 1, Conv1dOptions{}, rng));
}

Var S4D::forward(const Var& u_in, Rng& rng) const {
  Var u = opt.transposed ? u_in : transpose(u_in, -1, -2);  // (B,H,L)
  SSMKIT_CHECK(u.ndim() == 3 && u.size(1) == d_model, "S4D: input must be (B,", d_model, ",L)",
               opt.transposed ? "" : " after transposing (B,L,H)", ", got ", shape_str(u_in.shape()));
  const int64_t L = u.size(2);
  Var y = fftconv(contiguous(u), kernel->forward(L, 0), D);
  if (opt.bidirectional) {
    // anti-causal part: y[t] += sum_{j>=1} k1[j-1] u[t+j] = flip(causal_conv(flip(u), [0, k1[0..L-2]]))
    Var k1 = pad(slice(kernel->forward(L, 1), 1, 0, L - 1), {1, 0});
    y = add(y, flip(fftconv(flip(u, {2}), k1, Var{}), {2}));
  }
  y = dropout_channels(gelu(y), opt.dropout, training(), rng);
  y = glu(output_conv->forward(y), -2);
  return opt.transposed ? y : transpose(y, -1, -2);
}

Tensor S4D::step_state(int64_t batch) const { return Tensor::zeros({batch, d_model, opt.d_state / 2, 2}); }

Tensor S4D::step(const Tensor& u, Tensor& state) const {
  SSMKIT_CHECK(!opt.bidirectional, "S4D::step: a bidirectional layer sees the future; it has no recurrent mode");
  NoGradGuard ng;
  Tensor y;
  s4d_step(y, state, u, kernel->log_dt.value(), kernel->C.value(), kernel->log_A_real.value(),
           kernel->A_imag.value(), D.value(), opt.disc, kS4DSignMinimal);
  Var act = gelu(Var(y.view({u.size(0), d_model, 1})));
  return glu(output_conv->forward(act), -2).value().view({u.size(0), d_model});
}

}  // namespace ssmkit::core
