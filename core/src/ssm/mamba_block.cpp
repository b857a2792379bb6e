// Mamba-1 block: forward, then backward (reverse order of the same steps). Matmuls go through
// ops/linear; the causal depthwise conv, SiLU and the layout changes between (B,L,.) and (B,E,L) are
// plain loops here; the scan is ssm/selective_scan.
#include "ssmkit/core/ssm/mamba_block.h"

#include <cmath>

#include "ssmkit/core/ops/linear.h"

namespace ssmkit::core {

namespace {

// Below this many elements a loop runs on one thread: waking a team costs more.
constexpr int64_t kParallelMinWork = 32768;

// (B,L,C) slice [c0, c0+n) of the last axis -> (B,n,L) contiguous.
template <class T>
Tensor to_channel_major(const Tensor& x, int64_t c0, int64_t n) {
  const int64_t Bn = x.size(0), L = x.size(1), C = x.size(2);
  Tensor out = Tensor::empty({Bn, n, L}, x.dtype());
  const T* s = x.data<T>();
  T* d = out.data<T>();
#pragma omp parallel for schedule(static) if (Bn * L * n > kParallelMinWork)
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < n; ++c) d[(b * n + c) * L + l] = s[(b * L + l) * C + c0 + c];
  return out;
}

// (B,n,L) -> written into the last-axis slice [c0, c0+n) of (B,L,C) (accumulate when add).
template <class T>
void from_channel_major(Tensor& dst, const Tensor& x, int64_t c0, bool add) {
  const int64_t Bn = x.size(0), n = x.size(1), L = x.size(2), C = dst.size(2);
  const T* s = x.data<T>();
  T* d = dst.data<T>();
#pragma omp parallel for schedule(static) if (Bn * L * n > kParallelMinWork)
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < n; ++c) {
        T& o = d[(b * L + l) * C + c0 + c];
        o = add ? o + s[(b * n + c) * L + l] : s[(b * n + c) * L + l];
      }
}

template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Causal depthwise conv1d: x (B,E,L), w (E,1,K), bias (E) -> y (B,E,L);
// y[c,t] = bias_c + sum_k w[c,k] x[c, t-(K-1)+k] (zero before t = 0).
template <class T>
void causal_conv_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t Bn = x.size(0), E = x.size(1), L = x.size(2), K = w.size(2);
  y = Tensor::empty(x.shape(), x.dtype());
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  const T* pb = bias.defined() ? bias.data<T>() : nullptr;
  T* py = y.data<T>();
#pragma omp parallel for schedule(static) if (Bn * E * L * K > kParallelMinWork)
  for (int64_t row = 0; row < Bn * E; ++row) {
    const int64_t c = row % E;
    const T* xr = px + row * L;
    const T* wc = pw + c * K;
    T* yr = py + row * L;
    for (int64_t t = 0; t < L; ++t) {
      T acc = pb ? pb[c] : T(0);
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = t - (K - 1) + k;
        if (s >= 0) acc += wc[k] * xr[s];
      }
      yr[t] = acc;
    }
  }
}

// dy (B,E,L) -> dx (B,E,L) written, dw (E,1,K) += , dbias (E) += (when defined).
template <class T>
void causal_conv_backward(Tensor& dx, Tensor& dw, Tensor& dbias, const Tensor& dy, const Tensor& x, const Tensor& w) {
  const int64_t Bn = x.size(0), E = x.size(1), L = x.size(2), K = w.size(2);
  dx = Tensor::empty(x.shape(), x.dtype());
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  const T* pdy = dy.data<T>();
  T* pdx = dx.data<T>();
  T* pdw = dw.data<T>();
  T* pdb = dbias.defined() ? dbias.data<T>() : nullptr;
  // channels outer so each channel's weight gradient has one writer
#pragma omp parallel for schedule(static) if (Bn * E * L * K > kParallelMinWork)
  for (int64_t c = 0; c < E; ++c) {
    const T* wc = pw + c * K;
    for (int64_t b = 0; b < Bn; ++b) {
      const int64_t row = b * E + c;
      const T* xr = px + row * L;
      const T* gr = pdy + row * L;
      T* dxr = pdx + row * L;
      for (int64_t s = 0; s < L; ++s) {
        T acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t t = s + (K - 1) - k;
          if (t < L) acc += gr[t] * wc[k];
        }
        dxr[s] = acc;
      }
      for (int64_t k = 0; k < K; ++k) {
        T acc = 0;
        for (int64_t t = std::max<int64_t>(0, (K - 1) - k); t < L; ++t) acc += gr[t] * xr[t - (K - 1) + k];
        pdw[c * K + k] += acc;
      }
      if (pdb) {
        T acc = 0;
        for (int64_t t = 0; t < L; ++t) acc += gr[t];
        pdb[c] += acc;
      }
    }
  }
}

void check_params(const MambaParams& p, const MambaConfig& cfg) {
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv;
  auto want = [](const Tensor& t, const Shape& s, const char* key) {
    SSMKIT_CHECK(t.defined() && t.shape() == s, "mamba_block: parameter ", key, " has shape ",
                 t.defined() ? shape_str(t.shape()) : std::string("<missing>"), ", expected ", shape_str(s));
  };
  want(p.in_proj_weight, {2 * E, M}, "in_proj.weight");
  want(p.conv1d_weight, {E, 1, K}, "conv1d.weight");
  want(p.x_proj_weight, {R + 2 * N, E}, "x_proj.weight");
  want(p.dt_proj_weight, {E, R}, "dt_proj.weight");
  want(p.dt_proj_bias, {E}, "dt_proj.bias");
  want(p.A_log, {E, N}, "A_log");
  want(p.D, {E}, "D");
  want(p.out_proj_weight, {M, E}, "out_proj.weight");
  if (cfg.conv_bias) want(p.conv1d_bias, {E}, "conv1d.bias");
  if (cfg.bias) {
    want(p.in_proj_bias, {2 * E}, "in_proj.bias");
    want(p.out_proj_bias, {M}, "out_proj.bias");
  }
}

// With a carried state, the conv sees the previous K-1 inputs before this chunk: x_ext = [state, x]
// (B,E,K-1+L); the conv runs over x_ext and the first K-1 outputs are dropped. The state then keeps the
// last K columns of x_ext.
template <class T>
Tensor conv_with_state(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& conv_state) {
  const int64_t Bn = x.size(0), E = x.size(1), L = x.size(2), K = w.size(2);
  Tensor ext = Tensor::empty({Bn, E, K - 1 + L}, x.dtype());
  ext.slice(2, 0, K - 1).copy_from(conv_state.slice(2, 1, K));
  ext.slice(2, K - 1, K - 1 + L).copy_from(x);
  Tensor y_ext;
  causal_conv_forward<T>(y_ext, ext, w, bias);
  conv_state.copy_from(ext.slice(2, L - 1, K - 1 + L));
  return y_ext.slice(2, K - 1, K - 1 + L).contiguous();
}

template <class T>
void forward_impl(Tensor& out, MambaCache& c, const Tensor& hidden, const MambaParams& p, const MambaConfig& cfg,
                  MambaState* state) {
  const int64_t E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state;
  c.hidden = hidden;
  linear_forward(c.xz, hidden, p.in_proj_weight, cfg.bias ? p.in_proj_bias : Tensor{});  // (B,L,2E)
  c.x_conv = to_channel_major<T>(c.xz, 0, E);                                              // (B,E,L)
  const Tensor conv_bias = cfg.conv_bias ? p.conv1d_bias : Tensor{};
  if (state)
    c.x_pre = conv_with_state<T>(c.x_conv, p.conv1d_weight, conv_bias, state->conv);
  else
    causal_conv_forward<T>(c.x_pre, c.x_conv, p.conv1d_weight, conv_bias);
  Tensor u = Tensor::empty(c.x_pre.shape(), c.x_pre.dtype());
  {
    const T* s = c.x_pre.data<T>();
    T* d = u.data<T>();
    for (int64_t i = 0; i < u.numel(); ++i) d[i] = s[i] * sigmoid(s[i]);
  }
  // x_proj on the channel-last activations: (B,L,E) -> (B,L,R+2N)
  Tensor u_cl = u.transpose(1, 2).contiguous();
  linear_forward(c.x_dbl, u_cl, p.x_proj_weight, Tensor{});
  // delta = dt_proj.weight @ dt_in (bias goes to the scan as delta_bias)
  Tensor dt_in = c.x_dbl.slice(2, 0, R).contiguous();  // (B,L,R)
  Tensor delta_cl;
  linear_forward(delta_cl, dt_in, p.dt_proj_weight, Tensor{});  // (B,L,E)
  ScanInputs& s = c.scan;
  s.u = u;
  s.delta = to_channel_major<T>(delta_cl, 0, E);
  s.B = to_channel_major<T>(c.x_dbl, R, N);
  s.C = to_channel_major<T>(c.x_dbl, R + N, N);
  s.z = to_channel_major<T>(c.xz, E, E);
  s.A = Tensor::empty(p.A_log.shape(), p.A_log.dtype());
  {
    const T* a = p.A_log.data<T>();
    T* d = s.A.data<T>();
    for (int64_t i = 0; i < s.A.numel(); ++i) d[i] = -std::exp(a[i]);
  }
  s.D = p.D;
  s.delta_bias = p.dt_proj_bias;
  s.delta_softplus = true;
  if (state) {
    s.h0 = state->ssm;
    selective_scan_forward(c.y_scan, &state->ssm, nullptr, s);
  } else {
    selective_scan_forward(c.y_scan, nullptr, &c.saved, s);
  }
  Tensor y_cl = c.y_scan.transpose(1, 2).contiguous();  // (B,L,E)
  linear_forward(out, y_cl, p.out_proj_weight, cfg.bias ? p.out_proj_bias : Tensor{});
}

template <class T>
void backward_impl(Tensor& dhidden, MambaParams& g, const Tensor& dout, const MambaCache& c, const MambaParams& p,
                   const MambaConfig& cfg) {
  const int64_t E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state;
  const int64_t Bn = c.hidden.size(0), L = c.hidden.size(1);
  // out_proj
  Tensor y_cl = c.y_scan.transpose(1, 2).contiguous();
  Tensor dy_cl;
  linear_backward(&dy_cl, g.out_proj_weight, cfg.bias ? &g.out_proj_bias : nullptr, dout, y_cl, p.out_proj_weight);
  // scan
  ScanGrads sg;
  sg.dD = g.D;
  sg.ddelta_bias = g.dt_proj_bias;
  selective_scan_backward(sg, to_channel_major<T>(dy_cl, 0, E), Tensor{}, c.scan, c.saved);
  // A = -exp(A_log): dA_log = dA * A
  {
    const T* dA = sg.dA.data<T>();
    const T* A = c.scan.A.data<T>();
    T* d = g.A_log.data<T>();
    for (int64_t i = 0; i < sg.dA.numel(); ++i) d[i] += dA[i] * A[i];
  }
  // dt_proj and x_proj
  Tensor dx_dbl = Tensor::zeros({Bn, L, R + 2 * N}, c.x_dbl.dtype());
  Tensor ddelta_cl = sg.ddelta.transpose(1, 2).contiguous();  // (B,L,E)
  Tensor dt_in = c.x_dbl.slice(2, 0, R).contiguous();
  Tensor ddt_in;
  linear_backward(&ddt_in, g.dt_proj_weight, nullptr, ddelta_cl, dt_in, p.dt_proj_weight);
  dx_dbl.slice(2, 0, R).copy_from(ddt_in);
  from_channel_major<T>(dx_dbl, sg.dB, R, false);
  from_channel_major<T>(dx_dbl, sg.dC, R + N, false);
  Tensor u_cl = c.scan.u.transpose(1, 2).contiguous();
  Tensor du_cl;
  linear_backward(&du_cl, g.x_proj_weight, nullptr, dx_dbl, u_cl, p.x_proj_weight);
  // total gradient of u = SiLU(x_pre), then through SiLU
  Tensor dpre = Tensor::empty(c.x_pre.shape(), c.x_pre.dtype());
  {
    const T* du = sg.du.data<T>();
    const T* ducl = du_cl.data<T>();
    const T* xp = c.x_pre.data<T>();
    T* d = dpre.data<T>();
#pragma omp parallel for schedule(static) if (Bn * E * L > kParallelMinWork)
    for (int64_t row = 0; row < Bn * E; ++row) {
      const int64_t b = row / E, e = row % E;
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = row * L + l;
        const T sgm = sigmoid(xp[i]);
        d[i] = (du[i] + ducl[(b * L + l) * E + e]) * sgm * (T(1) + xp[i] * (T(1) - sgm));
      }
    }
  }
  // conv
  Tensor dx_conv, no_bias;
  causal_conv_backward<T>(dx_conv, g.conv1d_weight, cfg.conv_bias ? g.conv1d_bias : no_bias, dpre, c.x_conv,
                          p.conv1d_weight);
  // in_proj: dxz = [dx, dz]
  Tensor dxz = Tensor::empty({Bn, L, 2 * E}, c.xz.dtype());
  from_channel_major<T>(dxz, dx_conv, 0, false);
  from_channel_major<T>(dxz, sg.dz, E, false);
  dhidden = Tensor{};
  linear_backward(&dhidden, g.in_proj_weight, cfg.bias ? &g.in_proj_bias : nullptr, dxz, c.hidden, p.in_proj_weight);
}

}  // namespace

MambaParams MambaParams::zeros(const MambaConfig& cfg, DType dt) {
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv;
  MambaParams p;
  p.in_proj_weight = Tensor::zeros({2 * E, M}, dt);
  if (cfg.bias) p.in_proj_bias = Tensor::zeros({2 * E}, dt);
  p.conv1d_weight = Tensor::zeros({E, 1, K}, dt);
  if (cfg.conv_bias) p.conv1d_bias = Tensor::zeros({E}, dt);
  p.x_proj_weight = Tensor::zeros({R + 2 * N, E}, dt);
  p.dt_proj_weight = Tensor::zeros({E, R}, dt);
  p.dt_proj_bias = Tensor::zeros({E}, dt);
  p.A_log = Tensor::zeros({E, N}, dt);
  p.D = Tensor::zeros({E}, dt);
  p.out_proj_weight = Tensor::zeros({M, E}, dt);
  if (cfg.bias) p.out_proj_bias = Tensor::zeros({M}, dt);
  return p;
}

std::vector<std::pair<std::string, Tensor*>> MambaParams::names() {
  std::vector<std::pair<std::string, Tensor*>> v = {{"A_log", &A_log}, {"D", &D}, {"in_proj.weight", &in_proj_weight}};
  if (in_proj_bias.defined()) v.push_back({"in_proj.bias", &in_proj_bias});
  v.push_back({"conv1d.weight", &conv1d_weight});
  if (conv1d_bias.defined()) v.push_back({"conv1d.bias", &conv1d_bias});
  v.push_back({"x_proj.weight", &x_proj_weight});
  v.push_back({"dt_proj.weight", &dt_proj_weight});
  v.push_back({"dt_proj.bias", &dt_proj_bias});
  v.push_back({"out_proj.weight", &out_proj_weight});
  if (out_proj_bias.defined()) v.push_back({"out_proj.bias", &out_proj_bias});
  return v;
}

void MambaParams::load(const SafetensorsFile& f, const std::string& prefix, const MambaConfig& cfg, DType dt) {
  *this = zeros(cfg, dt);
  std::string problems;
  for (auto& [key, t] : names()) {
    const std::string full = prefix + key;
    if (!f.has(full)) {
      problems += "\n  missing " + full + " " + shape_str(t->shape());
      continue;
    }
    const Tensor& src = f.get(full);
    if (src.shape() != t->shape()) {
      problems += "\n  " + full + " has shape " + shape_str(src.shape()) + ", expected " + shape_str(t->shape());
      continue;
    }
    t->copy_from(src);
  }
  SSMKIT_CHECK(problems.empty(), f.path, ": cannot load the Mamba block (d_model ", cfg.d_model, "):", problems);
}

MambaState MambaState::zeros(int64_t batch, const MambaConfig& cfg, DType dt) {
  return {Tensor::zeros({batch, cfg.d_inner(), cfg.d_conv}, dt), Tensor::zeros({batch, cfg.d_inner(), cfg.d_state}, dt)};
}

static void check_state(const MambaState& st, int64_t batch, const MambaConfig& cfg, DType dt) {
  SSMKIT_CHECK(st.conv.defined() && st.conv.shape() == Shape({batch, cfg.d_inner(), cfg.d_conv}) &&
                   st.conv.dtype() == dt && st.conv.is_contiguous(),
               "mamba_block: state.conv must be a contiguous (", batch, ",", cfg.d_inner(), ",", cfg.d_conv, ") ",
               dtype_name(dt), " tensor (MambaState::zeros makes one)");
  SSMKIT_CHECK(st.ssm.defined() && st.ssm.shape() == Shape({batch, cfg.d_inner(), cfg.d_state}) && st.ssm.dtype() == dt,
               "mamba_block: state.ssm must be (", batch, ",", cfg.d_inner(), ",", cfg.d_state, ") ", dtype_name(dt));
}

void mamba_block_forward(Tensor& out, MambaCache* cache, const Tensor& hidden, const MambaParams& p,
                         const MambaConfig& cfg, MambaState* state) {
  check_params(p, cfg);
  SSMKIT_CHECK(hidden.ndim() == 3 && hidden.size(2) == cfg.d_model, "mamba_block_forward: hidden must be (B,L,",
               cfg.d_model, "), got ", shape_str(hidden.shape()));
  SSMKIT_CHECK(hidden.dtype() == p.in_proj_weight.dtype(), "mamba_block_forward: input dtype ",
               dtype_name(hidden.dtype()), " differs from the parameters' ", dtype_name(p.in_proj_weight.dtype()));
  SSMKIT_CHECK(!(cache && state), "mamba_block_forward: a carried state is for inference only (no backward cache)");
  if (state) check_state(*state, hidden.size(0), cfg, hidden.dtype());
  MambaCache local;
  MambaCache& c = cache ? *cache : local;
  const Tensor h = hidden.contiguous();
  if (h.dtype() == DType::F64)
    forward_impl<double>(out, c, h, p, cfg, state);
  else
    forward_impl<float>(out, c, h, p, cfg, state);
}

// The official Mamba.step: roll the conv state, convolve, then one scan step, all in plain loops.
template <class T>
void step_impl(Tensor& out, MambaState& st, const Tensor& x, const MambaParams& p, const MambaConfig& cfg) {
  const int64_t Bn = x.size(0), E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv;
  Tensor xz;
  linear_forward(xz, x, p.in_proj_weight, cfg.bias ? p.in_proj_bias : Tensor{});  // (B,2E)
  Tensor u = Tensor::empty({Bn, E}, x.dtype());
  T* cs = st.conv.data<T>();
  const T* pxz = xz.data<T>();
  const T* w = p.conv1d_weight.data<T>();
  const T* cb = cfg.conv_bias ? p.conv1d_bias.data<T>() : nullptr;
  T* pu = u.data<T>();
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t e = 0; e < E; ++e) {
      T* row = cs + (b * E + e) * K;
      for (int64_t k = 0; k + 1 < K; ++k) row[k] = row[k + 1];
      row[K - 1] = pxz[b * 2 * E + e];
      T acc = cb ? cb[e] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += row[k] * w[e * K + k];
      pu[b * E + e] = acc * sigmoid(acc);
    }
  Tensor x_db, dt;
  linear_forward(x_db, u, p.x_proj_weight, Tensor{});  // (B,R+2N)
  linear_forward(dt, x_db.slice(1, 0, R).contiguous(), p.dt_proj_weight, p.dt_proj_bias);  // (B,E)
  Tensor y = Tensor::empty({Bn, E}, x.dtype());
  const T* pdb = x_db.data<T>();
  const T* pdt = dt.data<T>();
  const T* Alog = p.A_log.data<T>();
  const T* Dp = p.D.data<T>();
  T* hs = st.ssm.data<T>();
  T* py = y.data<T>();
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t e = 0; e < E; ++e) {
      const T xd = pdt[b * E + e];
      const T d = xd > T(20) ? xd : std::log1p(std::exp(xd));
      const T uv = pu[b * E + e];
      const T* Bv = pdb + b * (R + 2 * N) + R;
      const T* Cv = Bv + N;
      T* h = hs + (b * E + e) * N;
      T acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        h[n] = std::exp(d * -std::exp(Alog[e * N + n])) * h[n] + d * Bv[n] * uv;
        acc += h[n] * Cv[n];
      }
      const T zv = pxz[b * 2 * E + E + e];
      py[b * E + e] = (acc + Dp[e] * uv) * zv * sigmoid(zv);
    }
  linear_forward(out, y, p.out_proj_weight, cfg.bias ? p.out_proj_bias : Tensor{});
}

void mamba_block_step(Tensor& out, MambaState& state, const Tensor& x, const MambaParams& p, const MambaConfig& cfg) {
  check_params(p, cfg);
  SSMKIT_CHECK(x.ndim() == 2 && x.size(1) == cfg.d_model, "mamba_block_step: x must be (B,", cfg.d_model, "), got ",
               shape_str(x.shape()));
  check_state(state, x.size(0), cfg, x.dtype());
  const Tensor xc = x.contiguous();
  if (xc.dtype() == DType::F64)
    step_impl<double>(out, state, xc, p, cfg);
  else
    step_impl<float>(out, state, xc, p, cfg);
}

void mamba_block_backward(Tensor& dhidden, MambaParams& grads, const Tensor& dout, const MambaCache& cache,
                          const MambaParams& p, const MambaConfig& cfg) {
  check_params(p, cfg);
  check_params(grads, cfg);
  SSMKIT_CHECK(cache.hidden.defined() && dout.shape() == cache.hidden.shape(),
               "mamba_block_backward: dout ", shape_str(dout.shape()), " must match the forward's input ",
               cache.hidden.defined() ? shape_str(cache.hidden.shape()) : std::string("<no forward cache>"));
  const Tensor d = dout.contiguous();
  if (d.dtype() == DType::F64)
    backward_impl<double>(dhidden, grads, d, cache, p, cfg);
  else
    backward_impl<float>(dhidden, grads, d, cache, p, cfg);
}

}  // namespace ssmkit::core
