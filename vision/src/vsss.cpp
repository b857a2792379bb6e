// GroupMamba's four single-direction VSSS groups as one fused op (vsss.h): per group, in_proj / x_proj /
// dt_proj / out_proj as gemm() calls on the channel slice of the token matrix (row stride C, no copies), the
// depthwise conv on the x half of in_proj's output (dwconv_kernels.h), the d_state-1 scan as a per-channel
// recurrence visiting tokens in the group's direction, out_norm and the SiLU(z) gate; the backward is the
// adjoint of each step, in reverse. Follows Amshaker/GroupMamba ss2d.py forward_corev2 with CrossScan_k /
// CrossMerge_k (merge = writing each step's output at its token's row-major position).
// Threads: the four groups run in parallel (each group's arrays and gradients belong to one thread; gemm()
// inside runs single-threaded there); F32 elementwise math through core's dispatched vec_* arrays, the scan,
// out_norm and gate as multi-versioned row kernels vectorized over the group's channels.
#include "ssmkit/vision/vsss.h"

#include <algorithm>
#include <cmath>

#include "dwconv_kernels.h"
#include "ssmkit/core/denormals.h"
#include "ssmkit/core/simd_clones.h"
#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/ops/vec_math.h"

namespace ssmkit::vision {

using core::DType;
using core::Shape;
using core::Tensor;
using core::Var;

std::vector<Tensor*> VsssParams::list() {
  return {&x_proj_weight, &dt_projs_weight, &dt_projs_bias, &A_logs,     &Ds,           &out_norm_weight,
          &out_norm_bias, &in_proj_weight,  &conv_weight,   &conv_bias, &out_proj_weight};
}

VsssParams VsssParams::zeros_like(const VsssParams& like) {
  VsssParams z;
  VsssParams& l = const_cast<VsssParams&>(like);
  auto src = l.list(), dst = z.list();
  for (size_t i = 0; i < src.size(); ++i) *dst[i] = Tensor::zeros(src[i]->shape(), src[i]->dtype());
  return z;
}

namespace {

constexpr double kOutNormEps = 1e-5;  // SS2D's out_norm: nn.LayerNorm default

// Row-major position read at step l of direction k (CrossScan_1..4) on an H x W grid.
std::vector<int64_t> direction_order(int k, int64_t H, int64_t W) {
  const int64_t L = H * W;
  std::vector<int64_t> col(static_cast<size_t>(L)), idx(static_cast<size_t>(L));
  for (int64_t w = 0; w < W; ++w)
    for (int64_t h = 0; h < H; ++h) col[static_cast<size_t>(w * H + h)] = h * W + w;
  for (int64_t l = 0; l < L; ++l) {
    const size_t i = static_cast<size_t>(l), r = static_cast<size_t>(L - 1 - l);
    idx[i] = k == 0 ? l : k == 1 ? col[i] : k == 2 ? L - 1 - l : col[r];
  }
  return idx;
}

template <class T>
struct GroupView {  // one group's parameters (or gradients) as typed pointers, VsssParams order
  T *xw, *dtw, *dtb, *alog, *D, *nw, *nb, *win, *cw, *cb, *wout;
};

template <class T>
GroupView<T> view_of(VsssParams& p) {
  auto l = p.list();
  T* q[kVsssParams];
  for (int i = 0; i < kVsssParams; ++i) q[i] = l[static_cast<size_t>(i)]->template data<T>();
  return {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9], q[10]};
}

struct Dims {
  int64_t B, H, W, L, C, Cg, R;
};

// ---------------------------------------------------------------------------------------------------------
// Row kernels of the groups (multi-versioned, restrict pointers, channel loops vectorized; sums over the Cg
// channels of a token as OpenMP SIMD reductions, so their order is fixed by the code, not the thread count).

// h_l = a_l h_{l-1} + delta_l B_l u_l, y_l = C_l h_l + D u_l along `order`, per sequence b (hv: Cg scratch)
template <class T>
SSMKIT_SIMD_CLONES void scan_forward(T* __restrict hs, T* __restrict ys, T* __restrict hv, const T* __restrict delta,
                                       const T* __restrict u, const T* __restrict da, const T* __restrict xdbl,
                                       const T* __restrict D, const int64_t* __restrict order, int64_t B, int64_t L,
                                       int64_t Cg, int64_t RB, int64_t R) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t k = 0; k < Cg; ++k) hv[k] = T(0);
    for (int64_t l = 0; l < L; ++l) {
      const int64_t row = b * L + order[l], o = row * Cg;
      const T Bt = xdbl[row * RB + R], Ct = xdbl[row * RB + R + 1];
      for (int64_t k = 0; k < Cg; ++k) {
        const T h = da[o + k] * hv[k] + delta[o + k] * Bt * u[o + k];
        hv[k] = h;
        hs[o + k] = h;
        ys[o + k] = Ct * h + D[k] * u[o + k];
      }
    }
  }
}

// out_norm (LayerNorm over Cg, eps kOutNormEps) and the gate: yg = LN(ys) * silu_z, keeping mean and rstd
template <class T>
SSMKIT_SIMD_CLONES void norm_gate_forward(T* __restrict yg, T* __restrict mean, T* __restrict rstd,
                                            const T* __restrict ys, const T* __restrict silu_z, const T* __restrict nw,
                                            const T* __restrict nb, int64_t M, int64_t Cg) {
  const T inv = T(1) / static_cast<T>(Cg);
  for (int64_t m = 0; m < M; ++m) {
    const T* yr = ys + m * Cg;
    T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1)
    for (int64_t k = 0; k < Cg; ++k) s1 += yr[k];
    const T mu = s1 * inv;
#pragma omp simd reduction(+ : s2)
    for (int64_t k = 0; k < Cg; ++k) s2 += (yr[k] - mu) * (yr[k] - mu);
    const T rs = T(1) / std::sqrt(s2 * inv + static_cast<T>(kOutNormEps));
    mean[m] = mu;
    rstd[m] = rs;
    for (int64_t k = 0; k < Cg; ++k) yg[m * Cg + k] = ((yr[k] - mu) * rs * nw[k] + nb[k]) * silu_z[m * Cg + k];
  }
}

// The gate and out_norm backward: dyg (d loss / d yg) -> dz (the z half of dxz, row stride 2Cg), dys; gnw, gnb +=
template <class T>
SSMKIT_SIMD_CLONES void norm_gate_backward(T* __restrict dz, T* __restrict dys, T* __restrict gnw, T* __restrict gnb,
                                             const T* __restrict dyg, const T* __restrict ys, const T* __restrict xz,
                                             const T* __restrict sz, const T* __restrict mean,
                                             const T* __restrict rstd, const T* __restrict nw,
                                             const T* __restrict nb, int64_t M, int64_t Cg) {
  const T inv = T(1) / static_cast<T>(Cg);
  for (int64_t m = 0; m < M; ++m) {
    const T* z = xz + m * 2 * Cg + Cg;
    const T* s = sz + m * Cg;
    const T* yr = ys + m * Cg;
    const T* gy = dyg + m * Cg;
    T* dzr = dz + m * 2 * Cg;
    const T mu = mean[m], rs = rstd[m];
    T m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
    for (int64_t k = 0; k < Cg; ++k) {
      const T xh = (yr[k] - mu) * rs;
      const T yn = xh * nw[k] + nb[k];
      const T dyn = gy[k] * z[k] * s[k];  // d loss / d LN output
      dzr[k] = gy[k] * yn * s[k] * (T(1) + z[k] * (T(1) - s[k]));
      gnw[k] += dyn * xh;
      gnb[k] += dyn;
      const T dh = dyn * nw[k];
      m1 += dh;
      m2 += dh * xh;
    }
    const T a1 = m1 * inv, a2 = m2 * inv;
    for (int64_t k = 0; k < Cg; ++k) {
      const T xh = (yr[k] - mu) * rs;
      dys[m * Cg + k] = rs * (gy[k] * z[k] * s[k] * nw[k] - a1 - xh * a2);
    }
  }
}

// The scan's adjoint recurrence in reverse direction order, per sequence: du, ddelta (the delta-space
// gradient, before softplus), dB, dC (into dxdbl's last two columns); dA and dD sums added into gA, gD (Cg,
// double) once per sequence. carry, fa, fd: Cg scratch.
template <class T>
SSMKIT_SIMD_CLONES void scan_backward(T* __restrict du, T* __restrict ddelta, T* __restrict dxdbl,
                                        double* __restrict gA, double* __restrict gD, T* __restrict carry,
                                        T* __restrict fa, T* __restrict fd, const T* __restrict dys,
                                        const T* __restrict hs, const T* __restrict delta, const T* __restrict u,
                                        const T* __restrict da, const T* __restrict xdbl, const T* __restrict A,
                                        const T* __restrict D, const int64_t* __restrict order, int64_t B, int64_t L,
                                        int64_t Cg, int64_t RB, int64_t R) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t k = 0; k < Cg; ++k) carry[k] = fa[k] = fd[k] = T(0);
    for (int64_t l = L - 1; l >= 0; --l) {
      const int64_t row = b * L + order[l], o = row * Cg;
      const int64_t op = l > 0 ? (b * L + order[l - 1]) * Cg : -1;
      const T Bt = xdbl[row * RB + R], Ct = xdbl[row * RB + R + 1];
      T dB = 0, dC = 0;
#pragma omp simd reduction(+ : dB, dC)
      for (int64_t k = 0; k < Cg; ++k) {
        const T gh = carry[k] + dys[o + k] * Ct;  // d loss / d h_l
        const T hprev = op >= 0 ? hs[op + k] : T(0);
        dC += dys[o + k] * hs[o + k];
        fd[k] += dys[o + k] * u[o + k];
        du[o + k] = dys[o + k] * D[k] + gh * delta[o + k] * Bt;
        ddelta[o + k] = gh * (hprev * da[o + k] * A[k] + Bt * u[o + k]);
        fa[k] += gh * hprev * da[o + k] * delta[o + k];
        dB += gh * delta[o + k] * u[o + k];
        carry[k] = gh * da[o + k];
      }
      dxdbl[row * RB + R] = dB;
      dxdbl[row * RB + R + 1] = dC;
    }
    for (int64_t k = 0; k < Cg; ++k) {
      gA[k] += static_cast<double>(fa[k]);
      gD[k] += static_cast<double>(fd[k]);
    }
  }
}

// z (the z half of xz, row stride 2Cg) -> contiguous zc (M,Cg). (Short rows: inline copies, not memcpy calls.)
template <class T>
SSMKIT_SIMD_CLONES __attribute__((optimize("no-tree-loop-distribute-patterns"))) void gather_z(
    T* __restrict zc, const T* __restrict xz, int64_t M, int64_t Cg) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < Cg; ++k) zc[m * Cg + k] = xz[m * 2 * Cg + Cg + k];
}

// ---------------------------------------------------------------------------------------------------------
// One group, forward. y: (M,C) output (this group's columns written); x: (M,C) input.

template <class T>
void group_forward(T* y, const T* x, const Dims& d, int g, const GroupView<T>& p, VsssCache::Group& c) {
  const int64_t M = d.B * d.L, Cg = d.Cg, R = d.R, C = d.C, RB = R + 2;
  const DType dt = c.xz.dtype();
  T* xz = c.xz.data<T>();
  T* xc = c.xc.data<T>();
  T* u = c.u.data<T>();
  T* xdbl = c.xdbl.data<T>();
  T* delta = c.delta.data<T>();
  T* hs = c.h.data<T>();
  T* ys = c.ys.data<T>();
  T* yg = c.yg.data<T>();
  // in_proj on the group's channel slice
  core::gemm(false, true, M, 2 * Cg, Cg, T(1), x + g * Cg, C, p.win, Cg, T(0), xz, 2 * Cg);
  // depthwise conv on the x half, then SiLU
  detail::dw_forward(xc, Cg, xz, 2 * Cg, p.cw, p.cb, d.B, d.H, d.W, Cg, false);
  core::vec_silu(xc, u, M * Cg);
  // x_proj -> (dt_in, B, C); dt_proj; delta = softplus(dt + bias)
  core::gemm(false, true, M, RB, Cg, T(1), u, Cg, p.xw, Cg, T(0), xdbl, RB);
  core::gemm(false, true, M, Cg, R, T(1), xdbl, RB, p.dtw, R, T(0), delta, Cg);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < Cg; ++k) delta[m * Cg + k] += p.dtb[k];
  core::vec_softplus(delta, delta, M * Cg);
  // decays a = exp(delta A), A = -exp(A_logs)
  std::vector<T> A(static_cast<size_t>(Cg));
  for (int64_t k = 0; k < Cg; ++k) A[static_cast<size_t>(k)] = -std::exp(p.alog[k]);
  Tensor t_da = Tensor::uninitialized({M * Cg}, dt);
  T* da = t_da.data<T>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < Cg; ++k) da[m * Cg + k] = delta[m * Cg + k] * A[static_cast<size_t>(k)];
  core::vec_exp(da, da, M * Cg);
  // the scan, in this group's direction
  const std::vector<int64_t> order = direction_order(g, d.H, d.W);
  std::vector<T> hv(static_cast<size_t>(Cg));
  {
    const core::FlushDenormals flush;  // the states must not crawl through denormals
    scan_forward<T>(hs, ys, hv.data(), delta, u, da, xdbl, p.D, order.data(), d.B, d.L, Cg, RB, R);
  }
  // out_norm (LayerNorm over Cg) and the SiLU(z) gate; da is free again
  T* silu_z = da;
  gather_z(silu_z, xz, M, Cg);
  core::vec_silu(silu_z, silu_z, M * Cg);
  norm_gate_forward<T>(yg, c.mean.data<T>(), c.rstd.data<T>(), ys, silu_z, p.nw, p.nb, M, Cg);
  core::gemm(false, true, M, Cg, Cg, T(1), yg, Cg, p.wout, Cg, T(0), y + g * Cg, C);
}

// ---------------------------------------------------------------------------------------------------------
// One group, backward. dy: (M,C); dx: (M,C) (this group's columns written); gradients added into gr.

template <class T>
void group_backward(T* dx, const T* dy, const T* x, const Dims& d, int g, const GroupView<T>& p,
                    const VsssCache::Group& c, const GroupView<T>& gr) {
  const int64_t M = d.B * d.L, Cg = d.Cg, R = d.R, C = d.C, RB = R + 2;
  const DType dt = c.xz.dtype();
  const T* xz = c.xz.data<T>();
  const T* xc = c.xc.data<T>();
  const T* u = c.u.data<T>();
  const T* xdbl = c.xdbl.data<T>();
  const T* delta = c.delta.data<T>();
  const T* hs = c.h.data<T>();
  const T* ys = c.ys.data<T>();
  const T* yg = c.yg.data<T>();
  Tensor t_dyg = Tensor::uninitialized({M, Cg}, dt), t_dxz = Tensor::uninitialized({M, 2 * Cg}, dt);
  Tensor t_dys = Tensor::uninitialized({M, Cg}, dt);
  T* dyg = t_dyg.data<T>();
  T* dxz = t_dxz.data<T>();
  T* dys = t_dys.data<T>();
  Tensor t_da = Tensor::uninitialized({M * Cg}, dt), t_du = Tensor::uninitialized({M, Cg}, dt);
  Tensor t_dd = Tensor::uninitialized({M, Cg}, dt);
  Tensor t_dxdbl = Tensor::uninitialized({M, RB}, dt);
  T* da = t_da.data<T>();
  T* du = t_du.data<T>();
  T* ddelta = t_dd.data<T>();
  T* dxdbl = t_dxdbl.data<T>();
  // out_proj
  core::gemm(false, false, M, Cg, Cg, T(1), dy + g * Cg, C, p.wout, Cg, T(0), dyg, Cg);
  core::gemm(true, false, Cg, Cg, M, T(1), dy + g * Cg, C, yg, Cg, T(1), gr.wout, Cg);
  // gate and out_norm (sigmoid(z) for all rows first, into da)
  gather_z(da, xz, M, Cg);
  core::vec_sigmoid(da, da, M * Cg);
  norm_gate_backward<T>(dxz + Cg, dys, gr.nw, gr.nb, dyg, ys, xz, da, c.mean.data<T>(), c.rstd.data<T>(), p.nw,
                        p.nb, M, Cg);
  // scan: adjoint recurrence in reverse direction order
  std::vector<T> A(static_cast<size_t>(Cg));
  for (int64_t k = 0; k < Cg; ++k) A[static_cast<size_t>(k)] = -std::exp(p.alog[k]);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < Cg; ++k) da[m * Cg + k] = delta[m * Cg + k] * A[static_cast<size_t>(k)];
  core::vec_exp(da, da, M * Cg);
  const std::vector<int64_t> order = direction_order(g, d.H, d.W);
  std::vector<T> scratch(static_cast<size_t>(3 * Cg));
  std::vector<double> dA(static_cast<size_t>(Cg), 0.0), dD(static_cast<size_t>(Cg), 0.0);
  {
    const core::FlushDenormals flush;
    scan_backward<T>(du, ddelta, dxdbl, dA.data(), dD.data(), scratch.data(), scratch.data() + Cg,
                     scratch.data() + 2 * Cg, dys, hs, delta, u, da, xdbl, A.data(), p.D, order.data(), d.B, d.L, Cg,
                     RB, R);
  }
  for (int64_t k = 0; k < Cg; ++k) {
    gr.alog[k] += static_cast<T>(dA[static_cast<size_t>(k)]) * A[static_cast<size_t>(k)];  // dA/dA_logs = A
    gr.D[k] += static_cast<T>(dD[static_cast<size_t>(k)]);
  }
  // softplus: d softplus(v)/dv = sigmoid(v) = 1 - exp(-softplus(v))
  for (int64_t i = 0; i < M * Cg; ++i) da[i] = -delta[i];
  core::vec_exp(da, da, M * Cg);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < Cg; ++k) {
      const int64_t i = m * Cg + k;
      ddelta[i] *= T(1) - da[i];
      gr.dtb[k] += ddelta[i];
    }
  // dt_proj and x_proj
  core::gemm(true, false, Cg, R, M, T(1), ddelta, Cg, xdbl, RB, T(1), gr.dtw, R);
  core::gemm(false, false, M, R, Cg, T(1), ddelta, Cg, p.dtw, R, T(0), dxdbl, RB);
  core::gemm(true, false, RB, Cg, M, T(1), dxdbl, RB, u, Cg, T(1), gr.xw, Cg);
  core::gemm(false, false, M, Cg, RB, T(1), dxdbl, RB, p.xw, Cg, T(1), du, Cg);
  // SiLU of the conv output: d/dv v s(v) = s (1 + v (1 - s))
  core::vec_sigmoid(xc, da, M * Cg);
  for (int64_t i = 0; i < M * Cg; ++i) du[i] *= da[i] * (T(1) + xc[i] * (T(1) - da[i]));
  // conv (input: the x half of xz) into the x half of dxz
  detail::dw_backward_weight(gr.cw, gr.cb, du, Cg, xz, 2 * Cg, d.B, d.H, d.W, Cg, false);
  detail::dw_backward_input(dxz, 2 * Cg, du, Cg, p.cw, d.B, d.H, d.W, Cg, false);
  // in_proj
  core::gemm(true, false, 2 * Cg, Cg, M, T(1), dxz, 2 * Cg, x + g * Cg, C, T(1), gr.win, Cg);
  core::gemm(false, false, M, Cg, 2 * Cg, T(1), dxz, 2 * Cg, p.win, Cg, T(0), dx + g * Cg, C);
}

// ---------------------------------------------------------------------------------------------------------

Dims check_args(const Tensor& x, int64_t H, int64_t W, const std::vector<VsssParams>& p, const char* op) {
  SSMKIT_CHECK(x.ndim() == 3 && H > 0 && W > 0 && x.size(1) == H * W, op, ": x must be (B,", H * W, ",C) for a ",
               H, "x", W, " grid, got ", core::shape_str(x.shape()));
  SSMKIT_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, op, ": x must be F32 or F64");
  SSMKIT_CHECK(p.size() == kVsssGroups, op, ": ", kVsssGroups, " groups of parameters expected, got ", p.size());
  const int64_t C = x.size(2);
  SSMKIT_CHECK(C % kVsssGroups == 0, op, ": channels ", C, " must be divisible by ", kVsssGroups);
  const int64_t Cg = C / kVsssGroups;
  const int64_t R = p[0].dt_projs_weight.ndim() == 3 ? p[0].dt_projs_weight.size(2) : -1;
  SSMKIT_CHECK(R > 0, op, ": dt_projs_weight must be (1,", Cg, ",R), got ", core::shape_str(p[0].dt_projs_weight.shape()));
  const std::vector<Shape> want = {{1, R + 2, Cg}, {1, Cg, R}, {1, Cg}, {Cg, 1}, {Cg},         {Cg},
                                   {Cg},           {2 * Cg, Cg}, {Cg, 1, 3, 3}, {Cg}, {Cg, Cg}};
  static const char* names[] = {"x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs",
                                "Ds",            "out_norm.weight", "out_norm.bias",  "in_proj.weight",
                                "conv2d.weight", "conv2d.bias",     "out_proj.weight"};
  for (int g = 0; g < kVsssGroups; ++g) {
    auto l = const_cast<VsssParams&>(p[static_cast<size_t>(g)]).list();
    for (int i = 0; i < kVsssParams; ++i) {
      const Tensor& t = *l[static_cast<size_t>(i)];
      SSMKIT_CHECK(t.defined() && t.shape() == want[static_cast<size_t>(i)] && t.dtype() == x.dtype(), op,
                   ": group ", g + 1, " ", names[i], " must be ", core::shape_str(want[static_cast<size_t>(i)]), " ",
                   core::dtype_name(x.dtype()), ", got ",
                   t.defined() ? core::shape_str(t.shape()) + " " + core::dtype_name(t.dtype()) : "undefined");
    }
  }
  return {x.size(0), H, W, H * W, C, Cg, R};
}

std::vector<VsssParams> contiguous_params(const std::vector<VsssParams>& p) {
  std::vector<VsssParams> q = p;
  for (auto& g : q)
    for (Tensor* t : g.list()) *t = t->contiguous();
  return q;
}

void alloc_group(VsssCache::Group& c, const Dims& d, DType dt) {
  const int64_t M = d.B * d.L;
  c.xz = Tensor::uninitialized({M, 2 * d.Cg}, dt);
  c.xc = Tensor::uninitialized({M, d.Cg}, dt);
  c.u = Tensor::uninitialized({M, d.Cg}, dt);
  c.xdbl = Tensor::uninitialized({M, d.R + 2}, dt);
  c.delta = Tensor::uninitialized({M, d.Cg}, dt);
  c.h = Tensor::uninitialized({M, d.Cg}, dt);
  c.ys = Tensor::uninitialized({M, d.Cg}, dt);
  c.mean = Tensor::uninitialized({M}, dt);
  c.rstd = Tensor::uninitialized({M}, dt);
  c.yg = Tensor::uninitialized({M, d.Cg}, dt);
}

template <class T>
void forward_all(Tensor& y, VsssCache& c, const Tensor& x, const Dims& d, std::vector<VsssParams>& p) {
  T* yp = y.data<T>();
  const T* xp = x.data<T>();
  // Contiguous blocks of groups: on 2 threads one takes groups 1-2 (row-major forward, column-major forward),
  // the other 3-4 (the reversed ones), so each thread runs one row-major and one column-major scan (the
  // column-major order reads its rows W apart and runs slower). Round-robin gave one thread both column scans.
#pragma omp parallel for schedule(static) if (d.B * d.L * d.C > (1 << 12))
  for (int g = 0; g < kVsssGroups; ++g)
    group_forward<T>(yp, xp, d, g, view_of<T>(p[static_cast<size_t>(g)]), c.groups[static_cast<size_t>(g)]);
}

template <class T>
void backward_all(Tensor& dx, std::vector<VsssParams>& grads, const Tensor& dy, const VsssCache& c, const Dims& d,
                  std::vector<VsssParams>& p) {
  T* dxp = dx.data<T>();
  const T* dyp = dy.data<T>();
  const T* xp = c.x.data<T>();
#pragma omp parallel for schedule(static) if (d.B * d.L * d.C > (1 << 12))  // as forward_all
  for (int g = 0; g < kVsssGroups; ++g)
    group_backward<T>(dxp, dyp, xp, d, g, view_of<T>(p[static_cast<size_t>(g)]), c.groups[static_cast<size_t>(g)],
                      view_of<T>(grads[static_cast<size_t>(g)]));
}

}  // namespace

void group_vsss_forward(Tensor& y, VsssCache* cache, const Tensor& x0, int64_t H, int64_t W,
                        const std::vector<VsssParams>& p0) {
  const Dims d = check_args(x0, H, W, p0, "group_vsss");
  std::vector<VsssParams> p = contiguous_params(p0);
  const Tensor x = x0.contiguous();
  VsssCache local;
  VsssCache& c = cache ? *cache : local;
  c.x = x;
  c.H = H;
  c.W = W;
  c.groups.assign(kVsssGroups, {});
  for (auto& gr : c.groups) alloc_group(gr, d, x.dtype());
  y = Tensor::uninitialized(x.shape(), x.dtype());
  if (x.dtype() == DType::F64)
    forward_all<double>(y, c, x, d, p);
  else
    forward_all<float>(y, c, x, d, p);
}

void group_vsss_backward(Tensor& dx, std::vector<VsssParams>& grads, const Tensor& dy0, const VsssCache& c,
                         const std::vector<VsssParams>& p0) {
  SSMKIT_CHECK(c.x.defined() && c.groups.size() == kVsssGroups,
               "group_vsss_backward: the cache is empty (run group_vsss_forward with a cache first)");
  const Dims d = check_args(c.x, c.H, c.W, p0, "group_vsss_backward");
  std::vector<VsssParams> p = contiguous_params(p0);
  const Tensor dy = dy0.contiguous();
  SSMKIT_CHECK(dy.shape() == c.x.shape() && dy.dtype() == c.x.dtype(), "group_vsss_backward: dy must be ",
               core::shape_str(c.x.shape()), ", got ", core::shape_str(dy.shape()));
  SSMKIT_CHECK(grads.size() == kVsssGroups, "group_vsss_backward: ", kVsssGroups, " gradient groups expected, got ",
               grads.size());
  for (size_t g = 0; g < grads.size(); ++g) {
    auto gl = grads[g].list();
    auto pl = p[g].list();
    for (size_t i = 0; i < gl.size(); ++i)
      SSMKIT_CHECK(gl[i]->defined() && gl[i]->shape() == pl[i]->shape() && gl[i]->dtype() == pl[i]->dtype() &&
                       gl[i]->is_contiguous(),
                   "group_vsss_backward: gradient ", i, " of group ", g + 1,
                   " must be a contiguous tensor shaped like its parameter (VsssParams::zeros_like)");
  }
  dx = Tensor::uninitialized(dy.shape(), dy.dtype());
  if (dy.dtype() == DType::F64)
    backward_all<double>(dx, grads, dy, c, d, p);
  else
    backward_all<float>(dx, grads, dy, c, d, p);
}

Var group_vsss(const Var& x, int64_t H, int64_t W, const std::vector<Var>& params) {
  SSMKIT_CHECK(params.size() == static_cast<size_t>(kVsssGroups * kVsssParams), "group_vsss: ",
               kVsssGroups * kVsssParams, " parameters expected (4 groups x 11), got ", params.size());
  std::vector<VsssParams> p(kVsssGroups);
  for (int g = 0; g < kVsssGroups; ++g) {
    auto l = p[static_cast<size_t>(g)].list();
    for (int i = 0; i < kVsssParams; ++i) *l[static_cast<size_t>(i)] = params[static_cast<size_t>(g * kVsssParams + i)].value();
  }
  bool record = core::grad_enabled() && x.requires_grad();
  for (const Var& v : params) record = record || (core::grad_enabled() && v.requires_grad());
  auto cache = std::make_shared<VsssCache>();
  Tensor y;
  group_vsss_forward(y, record ? cache.get() : nullptr, x.value(), H, W, p);
  if (!record) return Var(y);
  std::vector<Var> inputs = {x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  return core::make_result(
      y, inputs,
      [cache, p](const Tensor& g, const std::vector<bool>&) {
        std::vector<VsssParams> grads;
        for (const auto& q : p) grads.push_back(VsssParams::zeros_like(q));
        Tensor dx;
        group_vsss_backward(dx, grads, g, *cache, p);
        std::vector<Tensor> r = {dx};
        for (auto& q : grads)
          for (Tensor* t : q.list()) r.push_back(*t);
        return r;
      },
      "group_vsss");
}

}  // namespace ssmkit::vision
