// S4D layer: official registration order and initialization (s4d.py), forward through the S4D kernel
// and FFT-convolution ops, the bidirectional kernel split, and the recurrent step. Inference in F32 (nothing
// to record, no dropout, causal) takes a fused path instead: convolution, D skip and GELU of one batch item
// into an (H,L) buffer, then the output Conv1d as gemm() over chunks of L with bias and GLU fused, so only
// the output is allocated at full size. The convolution there runs as S4D's recurrence (no kernel, no FFT)
// where that is cheaper (S4DRecurrenceRowsF32::preferred), else as the op chain's FFT convolution.
#include "ssmkit/core/nn/s4d.h"

#include <omp.h>

#include <algorithm>
#include <memory>

#include "ssm/kernel_buffers.h"
#include "ssmkit/core/ops/activation.h"
#include "ssmkit/core/ops/dropout.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/ssm/scan_ops.h"

namespace ssmkit::core {

namespace {

constexpr int64_t kChunk = 512;  // columns of L per output GEMM in the fused path: (2H, kChunk) stays in cache

// u (B,H,L) contiguous, w (2H,H), bias (2H) or undefined, all F32; conv: FftConvRowsF32 or
// S4DRecurrenceRowsF32 (K and D folded in) -> (B,H,L):
//   out = GLU(w gelu(K * u + D u) + bias) along the channel axis.
// One batch item b: its H rows convolved in blocks of conv.block() channels and passed through GELU into x
// (H,L); then for each chunk of L, z (2H,lc) = w x[:, chunk] by gemm() and out = (z[:H] + bias[:H])
// sigmoid(z[H:] + bias[H:]) (one rounding for the bias, as the op chain's GEMM that starts from it). With at
// least as many batch items as threads, each thread takes whole items (dynamic: a thread slowed by other work
// takes fewer) into its own x; otherwise the team shares one x per item, threads over channel blocks then
// over chunks. Same values either way.
template <class Conv>
Tensor s4d_infer_f32(const Tensor& u, const Conv& conv, const Tensor& w, const Tensor& bias) {
  const int64_t B = u.size(0), H = u.size(1), L = u.size(2);
  Tensor out = Tensor::uninitialized({B, H, L}, DType::F32);  // every element written by a GLU below
  if (B == 0 || H == 0 || L == 0) return out;
  const float *pu = u.data<float>(), *pw = w.data<float>();
  const float* pb = bias.defined() ? bias.data<float>() : nullptr;
  float* po = out.data<float>();
  const int64_t nc = (L + kChunk - 1) / kChunk, hb = conv.block(), nhb = (H + hb - 1) / hb;
  auto conv_gelu_block = [&](float* x, int64_t b, int64_t blk, typename Conv::Scratch& scratch) {
    conv.rows_gelu(x + blk * hb * L, pu + (b * H + blk * hb) * L, blk * hb, scratch);
  };
  auto linear_glu_chunk = [&](const float* x, int64_t b, int64_t c, float* z) {
    const int64_t l0 = c * kChunk, lc = std::min(kChunk, L - l0);
    gemm(false, false, 2 * H, lc, H, 1.0f, pw, H, x + l0, L, 0.0f, z, lc);
    float* ob = po + b * H * L + l0;
    for (int64_t o = 0; o < H; ++o)
      detail::glu_bias_f32(z + o * lc, z + (H + o) * lc, pb ? pb[o] : 0.0f, pb ? pb[H + o] : 0.0f, ob + o * L, lc);
  };
  const int nth = omp_get_max_threads();
  const bool whole_items = B >= nth;
  // One buffer for the team: every thread's z (2H, chunk), then one x (H,L) per thread for whole items, else
  // the team's shared x. Written before they are read: left uninitialized.
  const int64_t z_len = 2 * H * std::min(L, kChunk), x_len = H * L;
  Tensor work = Tensor::uninitialized({nth * z_len + (whole_items ? nth : 1) * x_len});
  float* const pwork = work.data<float>();
#pragma omp parallel num_threads(nth)
  {
    typename Conv::Scratch scratch(conv);
    const int ith = omp_get_thread_num();
    float* z = pwork + ith * z_len;
    float* x = pwork + nth * z_len + (whole_items ? ith * x_len : 0);  // the team's shared x otherwise
    if (whole_items) {
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t blk = 0; blk < nhb; ++blk) conv_gelu_block(x, b, blk, scratch);
        for (int64_t c = 0; c < nc; ++c) linear_glu_chunk(x, b, c, z);
      }
    } else {
      for (int64_t b = 0; b < B; ++b) {
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nhb; ++blk) conv_gelu_block(x, b, blk, scratch);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < nc; ++c) linear_glu_chunk(x, b, c, z);
      }
    }
  }
  return out;
}

// The fused path applies when nothing would be recorded (gradients off, or no input or parameter requiring
// one), no dropout runs, the layer is causal, everything is F32 and the output conv is a plain 1x1.
bool fused_path_applies(const S4D& m, const Var& u) {
  if (m.opt.bidirectional || (m.training() && m.opt.dropout > 0.0)) return false;
  const Conv1d& c = *m.output_conv;
  if (c.opt.stride != 1 || c.opt.padding != 0 || c.opt.dilation != 1 || c.opt.groups != 1 ||
      c.weight.shape() != Shape({2 * m.d_model, m.d_model, 1}))
    return false;
  const S4DKernel& k = *m.kernel;
  for (const Var* v : {&u, &m.D, &k.C, &k.log_dt, &k.log_A_real, &k.A_imag, &c.weight, &c.bias}) {
    if (!v->defined()) continue;
    if (v->dtype() != DType::F32 || (grad_enabled() && v->requires_grad())) return false;
  }
  return true;
}

}  // namespace

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
  if (fused_path_applies(*this, u)) {
    const Tensor uc = u.value().contiguous(), Dc = D.value().contiguous();
    const Tensor& w0 = output_conv->weight.value();
    const Tensor w = w0.contiguous().view({w0.size(0), w0.size(1)});
    const Tensor bias = output_conv->bias.defined() ? output_conv->bias.value().contiguous() : Tensor{};
    const S4DKernel& k = *kernel;
    const int64_t M = k.log_A_real.size(1);
    Tensor y;
    if (detail::S4DRecurrenceRowsF32::preferred(M)) {
      const Tensor log_dt = k.log_dt.value().contiguous(), C = k.C.value().contiguous(),
                   ar = k.log_A_real.value().contiguous(), ai = k.A_imag.value().contiguous();
      const detail::S4DRecurrenceRowsF32 conv(log_dt.data<float>(), C.data<float>(), ar.data<float>(),
                                              ai.data<float>(), Dc.data<float>(), d_model, M, L, k.disc,
                                              kS4DSignMinimal);
      y = s4d_infer_f32(uc, conv, w, bias);
    } else {
      Tensor K;
      s4d_kernel_forward(K, k.log_dt.value(), k.C.value(), k.log_A_real.value(), k.A_imag.value(), L, k.disc,
                         kS4DSignMinimal);
      const detail::FftConvRowsF32 conv(K.data<float>(), Dc.data<float>(), d_model, L);
      y = s4d_infer_f32(uc, conv, w, bias);
    }
    return opt.transposed ? Var(y) : transpose(Var(y), -1, -2);
  }
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
