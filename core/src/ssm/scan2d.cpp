// 2-D selective scan (Chimera's Roesser-form SSM, ../shared/specs/timeseries.md §3), the production CPU
// path: forward, then backward, for F32 and F64, plus the autograd op. The forward runs the grid row by row
// in scan order (§3.1: per row, the variate step h2 then the time step h1, both elementwise over n) and saves
// the states of the row entering every segment of seg_rows rows (§3.3). The backward walks the segments in
// reverse, recomputes each segment's rows into per-thread scratch and sweeps them with the adjoints of §3.2.
// Work is split over (batch, channel) rows in contiguous ranges; B/C gradients of a batch split between
// threads go through small per-thread partials, summed in thread order (deterministic per thread count).
// Within a row the work is vectorized: the decays' exps and the steps' softplus run as SIMD passes over the
// row's cells (vec_exp, vec_softplus), and the per-row kernels are multi-versioned (SSMKIT_SIMD_CLONES) and
// compiled for the common state sizes (N = 4, 8, 16), so their loops over states vectorize; the time recurrence
// stays sequential in t.
#include "ssmkit/core/denormals.h"
#include "ssmkit/core/ops/vec_math.h"
#include "ssmkit/core/simd_clones.h"
#include "ssmkit/core/ssm/scan2d.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <vector>

namespace ssmkit::core {

namespace {

// Below this many state updates (B·D·V·T·N) a call runs on one thread: spawning a team costs more.
constexpr int64_t kParallelMinWork = int64_t(1) << 15;

// Sizes of one scan, checked once at the entry point.
struct Dims {
  int64_t n_batch = 0, n_chan = 0, n_var = 0, n_time = 0, n_state = 0;
};

void check_shape(const Tensor& t, const Shape& want, const char* name) {
  SSMKIT_CHECK(t.shape() == want, "scan2d: ", name, " has shape ", shape_str(t.shape()), ", expected ",
               shape_str(want));
}

Dims check_inputs(const Scan2dInputs& in) {
  SSMKIT_CHECK(in.x.defined() && in.delta1.defined() && in.delta2.defined() && in.A1.defined() &&
                   in.A2.defined() && in.A3.defined() && in.A4.defined() && in.B1.defined() && in.B2.defined() &&
                   in.C1.defined() && in.C2.defined(),
               "scan2d: x, delta1, delta2, A1..A4, B1, B2, C1 and C2 are required");
  SSMKIT_CHECK(in.x.ndim() == 4, "scan2d: x must be (B,D,V,T), got ", shape_str(in.x.shape()));
  SSMKIT_CHECK(in.A1.ndim() == 2, "scan2d: A1 must be (D,N), got ", shape_str(in.A1.shape()));
  Dims s;
  s.n_batch = in.x.size(0);
  s.n_chan = in.x.size(1);
  s.n_var = in.x.size(2);
  s.n_time = in.x.size(3);
  s.n_state = in.A1.size(1);
  SSMKIT_CHECK(s.n_var > 0 && s.n_time > 0, "scan2d: x ", shape_str(in.x.shape()),
               " needs at least one variate and one time step");
  SSMKIT_CHECK(in.opt.lag >= 1, "scan2d: lag must be >= 1, got ", in.opt.lag);
  check_shape(in.delta1, in.x.shape(), "delta1");
  check_shape(in.delta2, in.x.shape(), "delta2");
  const Shape a_shape{s.n_chan, s.n_state};
  check_shape(in.A1, a_shape, "A1");
  check_shape(in.A2, a_shape, "A2");
  check_shape(in.A3, a_shape, "A3");
  check_shape(in.A4, a_shape, "A4");
  const Shape bc_shape{s.n_batch, s.n_var, s.n_time, s.n_state};
  check_shape(in.B1, bc_shape, "B1");
  check_shape(in.B2, bc_shape, "B2");
  check_shape(in.C1, bc_shape, "C1");
  check_shape(in.C2, bc_shape, "C2");
  if (in.Dskip.defined()) check_shape(in.Dskip, {s.n_chan}, "Dskip");
  if (in.delta_bias1.defined()) check_shape(in.delta_bias1, {s.n_chan}, "delta_bias1");
  if (in.delta_bias2.defined()) check_shape(in.delta_bias2, {s.n_chan}, "delta_bias2");
  const DType dt = in.x.dtype();
  SSMKIT_CHECK(dt == DType::F32 || dt == DType::F64, "scan2d: dtype ", dtype_name(dt),
               " not supported (F32 or F64)");
  for (const Tensor* t : {&in.delta1, &in.delta2, &in.A1, &in.A2, &in.A3, &in.A4, &in.B1, &in.B2, &in.C1, &in.C2,
                          &in.Dskip, &in.delta_bias1, &in.delta_bias2})
    SSMKIT_CHECK(!t->defined() || t->dtype() == dt, "scan2d: all inputs must share x's dtype ", dtype_name(dt),
                 ", got ", dtype_name(t->dtype()));
  return s;
}

// ZOH input coefficient (exp(d A) - 1) / A, and its derivative in A: d² g(dA) with
// g(z) = (z e^z - expm1 z) / z² = Σ_j (j+1)/(j+2)! z^j (series near 0, where the closed form cancels).
template <class T>
inline T zoh_coef(T d, T A) {
  const T z = d * A;
  return z == T(0) ? d : d * std::expm1(z) / z;
}

template <class T>
inline T zoh_coef_dA(T d, T A) {
  const T z = d * A;
  T g;
  if (std::abs(z) < T(0.5)) {
    static constexpr std::array<double, 12> c = {1.0 / 2,        2.0 / 6,         3.0 / 24,        4.0 / 120,
                                                 5.0 / 720,      6.0 / 5040,      7.0 / 40320,     8.0 / 362880,
                                                 9.0 / 3628800,  10.0 / 39916800, 11.0 / 479001600, 12.0 / 6227020800};
    g = T(c[11]);
    for (int j = 10; j >= 0; --j) g = g * z + T(c[j]);
  } else {
    g = (z * std::exp(z) - std::expm1(z)) / (z * z);
  }
  return d * d * g;
}

// The inputs of one (batch, channel) row, contiguous.
template <class T>
struct RowInputs {
  const T *x, *del1, *del2;         // (V,T)
  const T *A1, *A2, *A3, *A4;       // (N)
  const T *B1, *B2, *C1, *C2;       // (V,T,N)
  T bias1, bias2, Dskip;
};

// States are processed in chunks of up to kChunk; with kN > 0 one chunk of exactly kN (the loops unroll and
// vectorize), with 0 any N.
constexpr int64_t kChunk = 16;

// Per-row scratch of the discretization: decays a1..a4 (T,N) and the input coefficients times x, u1 = k1·x and
// u2 = k2·x (T,N; k = Δ, or the ZOH coefficient).
template <class T>
struct RowDisc {
  T *a1, *a2, *a3, *a4, *u1, *u2;
};

// The steps of one (batch, channel) row over all its variates: Δ = softplus(δ + bias), or δ + bias (V·T values).
template <class T>
void row_steps(T* d1, T* d2, const RowInputs<T>& r, int64_t VT, bool softplus_on) {
  for (int64_t i = 0; i < VT; ++i) {
    d1[i] = r.del1[i] + r.bias1;
    d2[i] = r.del2[i] + r.bias2;
  }
  if (softplus_on) {
    vec_softplus(d1, d1, VT);
    vec_softplus(d2, d2, VT);
  }
}

// Plain loops over a row's (T,N) cells (n values, flattened), inlined into the multi-versioned row_forward so
// that they vectorize with the widest units the CPU has.
template <class T>  // h2 = a3·h1p + a4·h2p + u2·B2: the variate step of every cell at once
[[gnu::always_inline]] inline void variate_step(T* __restrict h2, const T* __restrict a3, const T* __restrict h1p,
                                                const T* __restrict a4, const T* __restrict h2p,
                                                const T* __restrict u2, const T* __restrict B2, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h2[i] = a3[i] * h1p[i] + a4[i] * h2p[i] + u2[i] * B2[i];
}

template <class T>  // h1 = u1·B1, plus a2·h2 of the cell lag steps back (final) from cell `shift` on
[[gnu::always_inline]] inline void time_inputs(T* __restrict h1, const T* __restrict u1, const T* __restrict B1,
                                               const T* __restrict a2, const T* __restrict h2, int64_t n,
                                               int64_t shift) {
  for (int64_t i = 0; i < std::min(n, shift); ++i) h1[i] = u1[i] * B1[i];
  for (int64_t i = shift; i < n; ++i) h1[i] = u1[i] * B1[i] + a2[i] * h2[i - shift];
}

template <class T>  // h += a·h_back over n states (one step of the time recurrence; h_back is lag steps back)
[[gnu::always_inline]] inline void time_step(T* __restrict h, const T* __restrict a, const T* __restrict h_back,
                                             int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] += a[i] * h_back[i];
}

template <class T>  // out = C1·h1 + C2·h2 per cell
[[gnu::always_inline]] inline void readout_cells(T* __restrict out, const T* __restrict C1, const T* __restrict h1,
                                                 const T* __restrict C2, const T* __restrict h2, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = C1[i] * h1[i] + C2[i] * h2[i];
}

// One row vm (memory index) from the previous row's states h1p, h2p (T,N) to this row's h1, h2 (T,N), given
// the row's steps d1, d2 (T). Fills the row's decays (and overwrites rd.u1, rd.u2); writes y (T) when non-null.
// The discretization first (exponents, then the four exps in SIMD passes), then the variate step of every cell
// (it reads only the previous row), the time step's inputs, its recurrence along t, and the readout.
// kN > 0: compiled for N = kN states (the loops over n unroll and vectorize); 0: any N.
template <class T, int kN>
SSMKIT_SIMD_CLONES void row_forward_n(T* h1, T* h2, T* y, const T* h1p, const T* h2p, const RowDisc<T>& rd,
                                      const T* d1, const T* d2, const RowInputs<T>& r, int64_t vm, const Dims& s,
                                      const Scan2dOptions& o) {
  const int64_t Tn = s.n_time, N = kN > 0 ? kN : s.n_state, TN = Tn * N, LN = o.lag * N;
  const bool state_pair = scan2d_state_pair(o.discretization);
  const bool zoh = scan2d_zoh(o.discretization);
  const T* xr = r.x + vm * Tn;
  const int64_t cells = vm * TN;  // the row's first (t, n) cell in B1, B2, C1, C2
  for (int64_t t = 0; t < Tn; ++t) {
    const T e1 = d1[t], e2 = d2[t], p2 = state_pair ? e2 : e1, p3 = state_pair ? e1 : e2, xv = xr[t];
    const int64_t tn = t * N;
    for (int64_t n0 = 0; n0 < N; n0 += kChunk) {  // through local arrays: see row_backward_n
      const int64_t m = kN > 0 ? kN : std::min(kChunk, N - n0);
      T v1[kChunk], v2[kChunk], v3[kChunk], v4[kChunk], w1[kChunk], w2[kChunk];
      for (int64_t n = 0; n < m; ++n) {
        v1[n] = e1 * r.A1[n0 + n];
        v2[n] = p2 * r.A2[n0 + n];
        v3[n] = p3 * r.A3[n0 + n];
        v4[n] = e2 * r.A4[n0 + n];
      }
      if (zoh) {
        for (int64_t n = 0; n < m; ++n) {
          w1[n] = zoh_coef(e1, r.A1[n0 + n]) * xv;
          w2[n] = zoh_coef(e2, r.A4[n0 + n]) * xv;
        }
      } else {
        for (int64_t n = 0; n < m; ++n) {
          w1[n] = e1 * xv;
          w2[n] = e2 * xv;
        }
      }
      const int64_t i0 = tn + n0;
      for (int64_t n = 0; n < m; ++n) rd.a1[i0 + n] = v1[n];
      for (int64_t n = 0; n < m; ++n) rd.a2[i0 + n] = v2[n];
      for (int64_t n = 0; n < m; ++n) rd.a3[i0 + n] = v3[n];
      for (int64_t n = 0; n < m; ++n) rd.a4[i0 + n] = v4[n];
      for (int64_t n = 0; n < m; ++n) rd.u1[i0 + n] = w1[n];
      for (int64_t n = 0; n < m; ++n) rd.u2[i0 + n] = w2[n];
    }
  }
  for (T* a : {rd.a1, rd.a2, rd.a3, rd.a4}) vec_exp(a, a, TN);
  variate_step(h2, rd.a3, h1p, rd.a4, h2p, rd.u2, r.B2 + cells, TN);
  time_inputs(h1, rd.u1, r.B1 + cells, rd.a2, h2, TN, LN);
  for (int64_t t = o.lag; t < Tn; ++t) time_step(h1 + t * N, rd.a1 + t * N, h1 + t * N - LN, N);
  if (!y) return;
  T* cell_out = rd.u1;  // u1 is spent
  readout_cells(cell_out, r.C1 + cells, h1, r.C2 + cells, h2, TN);
  for (int64_t t = 0; t < Tn; ++t) {
    T acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += cell_out[t * N + n];
    y[t] = acc + r.Dskip * xr[t];
  }
}

template <class T>
void row_forward(T* h1, T* h2, T* y, const T* h1p, const T* h2p, const RowDisc<T>& rd, const T* d1, const T* d2,
                 const RowInputs<T>& r, int64_t vm, const Dims& s, const Scan2dOptions& o) {
  switch (s.n_state) {
    case 4: return row_forward_n<T, 4>(h1, h2, y, h1p, h2p, rd, d1, d2, r, vm, s, o);
    case 8: return row_forward_n<T, 8>(h1, h2, y, h1p, h2p, rd, d1, d2, r, vm, s, o);
    case 16: return row_forward_n<T, 16>(h1, h2, y, h1p, h2p, rd, d1, d2, r, vm, s, o);
    default: return row_forward_n<T, 0>(h1, h2, y, h1p, h2p, rd, d1, d2, r, vm, s, o);
  }
}

// One row's part of the backward: where its gradients go, and what it reads.
template <class T>
struct RowSweep {
  const T *h1, *h2, *h1p, *h2p;   // (T,N) the row's states and the previous row's (in scan order)
  const T *a1, *a2, *a3, *a4;     // (T,N) the row's decays
  const T *d1, *d2, *sig1, *sig2;  // (T) steps and the softplus' slopes
  const T *dy, *x, *pre1, *pre2;   // (T) the row's dy, x and steps before the softplus (δ; bias added here)
  T *lam1, *carry1, *carry2;      // (T,N) scratch; carries in: a3·λ2, a4·λ2 of the row scanned after; out: this row's
  T *dB1, *dB2, *dC1, *dC2;       // (T,N) at the row's cells
  T *gA1, *gA2, *gA3, *gA4;       // (N) the channel's
  T *dx, *dd1, *dd2;              // (T)
  T *dDskip, *dbias1, *dbias2;    // the channel's (this thread's partial)
};

// The adjoint sweep of one row (§3.2): λ1 along time newest first, then λ2 and every gradient of the row's cells.
// The per-state work goes through local arrays, so that each loop reads or accumulates one destination and the
// compiler can vectorize it without alias checks; the sums over states of a cell run in state order.
template <class T, int kN, bool kZoh>
SSMKIT_SIMD_CLONES void row_backward_n(const RowSweep<T>& w, const RowInputs<T>& r, int64_t vm, const Dims& s,
                                       const Scan2dOptions& o) {
  const int64_t Tn = s.n_time, N = kN > 0 ? kN : s.n_state, LN = o.lag * N, cells = vm * Tn * N;
  const bool state_pair = scan2d_state_pair(o.discretization);
  const T zero[kChunk] = {};
  // λ1[t] = C1·gy + carry1 + a1[t+lag]·λ1[t+lag]
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T gy = w.dy[t];
    const int64_t tn = t * N;
    for (int64_t n0 = 0; n0 < N; n0 += kChunk) {
      const int64_t m = kN > 0 ? kN : std::min(kChunk, N - n0);
      const T* C1c = r.C1 + cells + tn + n0;
      const T* carry = w.carry1 + tn + n0;
      const bool next = t + o.lag < Tn;
      const T* an = next ? w.a1 + tn + LN + n0 : zero;
      const T* ln = next ? w.lam1 + tn + LN + n0 : zero;
      T v[kChunk];
      for (int64_t n = 0; n < m; ++n) v[n] = C1c[n] * gy + carry[n] + an[n] * ln[n];
      T* out = w.lam1 + tn + n0;
      for (int64_t n = 0; n < m; ++n) out[n] = v[n];
    }
  }
  for (int64_t t = 0; t < Tn; ++t) {
    const int64_t tn = t * N;
    const T gy = w.dy[t], xv = w.x[t], d1 = w.d1[t], d2 = w.d2[t];
    const T p2 = state_pair ? d2 : d1, p3 = state_pair ? d1 : d2;
    const bool has_next = t + o.lag < Tn, has_prev = t >= o.lag;
    T dd1 = 0, dd2 = 0, dxv = gy * r.Dskip;
    for (int64_t n0 = 0; n0 < N; n0 += kChunk) {
      const int64_t m = kN > 0 ? kN : std::min(kChunk, N - n0);
      const int64_t c = cells + tn + n0, i0 = tn + n0;
      const T* a2n = has_next ? w.a2 + i0 + LN : zero;
      const T* l1n = has_next ? w.lam1 + i0 + LN : zero;
      const T* h1b = has_prev ? w.h1 + i0 - LN : zero;
      const T* h2b = has_prev ? w.h2 + i0 - LN : zero;
      T l1[kChunk], l2[kChunk], e1[kChunk], e2[kChunk], e3[kChunk], e4[kChunk], k1[kChunk], k2[kChunk];
      T q1[kChunk], q2[kChunk], s1[kChunk], s2[kChunk], cx[kChunk], kd1[kChunk], kd2[kChunk];
      for (int64_t n = 0; n < m; ++n) {
        l1[n] = w.lam1[i0 + n];
        l2[n] = r.C2[c + n] * gy + w.carry2[i0 + n] + a2n[n] * l1n[n];
        // decays: ∂a = λ·(state it multiplies); a = exp(p·A) gives ∂p += ∂a·a·A, ∂A += ∂a·a·p
        e1[n] = l1[n] * h1b[n] * w.a1[i0 + n];
        e2[n] = l1[n] * h2b[n] * w.a2[i0 + n];
        e3[n] = l2[n] * w.h1p[i0 + n] * w.a3[i0 + n];
        e4[n] = l2[n] * w.h2p[i0 + n] * w.a4[i0 + n];
      }
      if constexpr (kZoh) {
        for (int64_t n = 0; n < m; ++n) {
          k1[n] = zoh_coef(d1, r.A1[n0 + n]);
          k2[n] = zoh_coef(d2, r.A4[n0 + n]);
          kd1[n] = zoh_coef_dA(d1, r.A1[n0 + n]);
          kd2[n] = zoh_coef_dA(d2, r.A4[n0 + n]);
        }
      } else {
        for (int64_t n = 0; n < m; ++n) {
          k1[n] = d1;
          k2[n] = d2;
        }
      }
      for (int64_t n = 0; n < m; ++n) {
        // inputs u1 = k1·B1·x, u2 = k2·B2·x with ∂u = λ; ∂k/∂Δ = 1 (Euler) or exp(Δ A), the matching decay (ZOH)
        const T b1 = r.B1[c + n], b2 = r.B2[c + n];
        cx[n] = l1[n] * k1[n] * b1 + l2[n] * k2[n] * b2;
        q1[n] = l1[n] * b1 * xv;
        q2[n] = l2[n] * b2 * xv;
        s1[n] = e1[n] * r.A1[n0 + n] + (kZoh ? q1[n] * w.a1[i0 + n] : q1[n]);  // ∂Δ1 (and ∂Δ2 below) so far
        s2[n] = e4[n] * r.A4[n0 + n] + (kZoh ? q2[n] * w.a4[i0 + n] : q2[n]);
      }
      // a2 = exp(p2·A2), a3 = exp(p3·A3): p2 = Δ1 and p3 = Δ2 on the axes, swapped on the state pairs
      T* to2 = state_pair ? s2 : s1;
      T* to3 = state_pair ? s1 : s2;
      for (int64_t n = 0; n < m; ++n) to2[n] += e2[n] * r.A2[n0 + n];
      for (int64_t n = 0; n < m; ++n) to3[n] += e3[n] * r.A3[n0 + n];
      for (int64_t n = 0; n < m; ++n) w.gA1[n0 + n] += e1[n] * d1 + (kZoh ? q1[n] * kd1[n] : T(0));
      for (int64_t n = 0; n < m; ++n) w.gA2[n0 + n] += e2[n] * p2;
      for (int64_t n = 0; n < m; ++n) w.gA3[n0 + n] += e3[n] * p3;
      for (int64_t n = 0; n < m; ++n) w.gA4[n0 + n] += e4[n] * d2 + (kZoh ? q2[n] * kd2[n] : T(0));
      for (int64_t n = 0; n < m; ++n) w.dB1[tn + n0 + n] += l1[n] * k1[n] * xv;
      for (int64_t n = 0; n < m; ++n) w.dB2[tn + n0 + n] += l2[n] * k2[n] * xv;
      // readouts
      for (int64_t n = 0; n < m; ++n) w.dC1[tn + n0 + n] += gy * w.h1[i0 + n];
      for (int64_t n = 0; n < m; ++n) w.dC2[tn + n0 + n] += gy * w.h2[i0 + n];
      // what the row scanned before this one receives through a3, a4
      for (int64_t n = 0; n < m; ++n) w.carry1[i0 + n] = w.a3[i0 + n] * l2[n];
      for (int64_t n = 0; n < m; ++n) w.carry2[i0 + n] = w.a4[i0 + n] * l2[n];
      for (int64_t n = 0; n < m; ++n) {
        dd1 += s1[n];
        dd2 += s2[n];
        dxv += cx[n];
      }
    }
    w.dx[t] += dxv;
    *w.dDskip += gy * xv;
    if (o.delta_softplus) {
      if (w.pre1[t] + r.bias1 <= T(20)) dd1 *= w.sig1[t];
      if (w.pre2[t] + r.bias2 <= T(20)) dd2 *= w.sig2[t];
    }
    w.dd1[t] += dd1;
    w.dd2[t] += dd2;
    *w.dbias1 += dd1;
    *w.dbias2 += dd2;
  }
}

template <class T>
void row_backward(const RowSweep<T>& w, const RowInputs<T>& r, int64_t vm, const Dims& s, const Scan2dOptions& o) {
  const bool zoh = scan2d_zoh(o.discretization);
  if (zoh) return row_backward_n<T, 0, true>(w, r, vm, s, o);  // ZOH's coefficients are scalar libm calls anyway
  switch (s.n_state) {
    case 4: return row_backward_n<T, 4, false>(w, r, vm, s, o);
    case 8: return row_backward_n<T, 8, false>(w, r, vm, s, o);
    case 16: return row_backward_n<T, 16, false>(w, r, vm, s, o);
    default: return row_backward_n<T, 0, false>(w, r, vm, s, o);
  }
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

Tensor contig(const Tensor& t) { return t.defined() ? t.contiguous() : Tensor{}; }

// Contiguous copies of every input, kept alive while raw pointers into them are used.
struct Contig {
  Tensor x, del1, del2, A1, A2, A3, A4, B1, B2, C1, C2, Dskip, bias1, bias2;
  explicit Contig(const Scan2dInputs& in)
      : x(in.x.contiguous()), del1(in.delta1.contiguous()), del2(in.delta2.contiguous()), A1(in.A1.contiguous()),
        A2(in.A2.contiguous()), A3(in.A3.contiguous()), A4(in.A4.contiguous()), B1(in.B1.contiguous()),
        B2(in.B2.contiguous()), C1(in.C1.contiguous()), C2(in.C2.contiguous()), Dskip(contig(in.Dskip)),
        bias1(contig(in.delta_bias1)), bias2(contig(in.delta_bias2)) {}

  template <class T>
  RowInputs<T> row(int64_t b, int64_t c, const Dims& s) const {
    const int64_t VT = s.n_var * s.n_time, VTN = VT * s.n_state, N = s.n_state;
    const int64_t rowi = b * s.n_chan + c;
    const T* pD = ptr_or_null<T>(Dskip);
    const T* pb1 = ptr_or_null<T>(bias1);
    const T* pb2 = ptr_or_null<T>(bias2);
    return RowInputs<T>{x.data<T>() + rowi * VT,  del1.data<T>() + rowi * VT, del2.data<T>() + rowi * VT,
                        A1.data<T>() + c * N,     A2.data<T>() + c * N,       A3.data<T>() + c * N,
                        A4.data<T>() + c * N,     B1.data<T>() + b * VTN,     B2.data<T>() + b * VTN,
                        C1.data<T>() + b * VTN,   C2.data<T>() + b * VTN,     pb1 ? pb1[c] : T(0),
                        pb2 ? pb2[c] : T(0),      pD ? pD[c] : T(0)};
  }
};

// --------------------------------------------------------------------------------------------------
// forward

template <class T>
void scan2d_forward_impl(Tensor& y_out, Scan2dSaved* saved, const Scan2dInputs& in, int64_t seg_rows) {
  const Dims s = check_inputs(in);
  const int64_t Bn = s.n_batch, Dn = s.n_chan, V = s.n_var, Tn = s.n_time, N = s.n_state;
  const int64_t k = seg_rows > 0 ? std::min(seg_rows, V) : scan2d_default_seg_rows(V);
  const int64_t n_seg = (V + k - 1) / k, TN = Tn * N;
  const Contig c(in);
  const DType dt = dtype_of<T>::value;
  if (!y_out.defined()) y_out = Tensor::uninitialized({Bn, Dn, V, Tn}, dt);  // every cell written
  SSMKIT_CHECK(y_out.shape() == in.x.shape() && y_out.dtype() == dt && y_out.is_contiguous(),
               "scan2d: y must be a contiguous ", shape_str(in.x.shape()), " tensor of the inputs' dtype");
  if (saved) {
    saved->seg_rows = k;
    saved->h1_rows = Tensor::uninitialized({Bn, Dn, n_seg, Tn, N}, dt);  // every segment's first row written
    saved->h2_rows = Tensor::uninitialized({Bn, Dn, n_seg, Tn, N}, dt);
  }
  T* py = y_out.data<T>();
  T* ps1 = saved ? saved->h1_rows.data<T>() : nullptr;
  T* ps2 = saved ? saved->h2_rows.data<T>() : nullptr;
  const bool rev = in.opt.reverse_variates;
  const bool par = Bn * Dn * V * TN >= kParallelMinWork;

#pragma omp parallel if (par)
  {
    const FlushDenormals flush;  // states decaying with no input must not crawl through denormals
    // previous and current row states, and the row's discretization
    std::vector<T> h1a(static_cast<size_t>(TN)), h1b(h1a.size()), h2a(h1a.size()), h2b(h1a.size());
    std::vector<T> abuf(static_cast<size_t>(6 * TN)), dbuf(static_cast<size_t>(2 * V * Tn));
    const RowDisc<T> rd{abuf.data(),          abuf.data() + TN,     abuf.data() + 2 * TN,
                        abuf.data() + 3 * TN, abuf.data() + 4 * TN, abuf.data() + 5 * TN};
    T* d1 = dbuf.data();  // (V,T) steps of the (batch, channel) row
    T* d2 = d1 + V * Tn;
#pragma omp for schedule(static)
    for (int64_t row = 0; row < Bn * Dn; ++row) {
      const RowInputs<T> r = c.row<T>(row / Dn, row % Dn, s);
      T *h1p = h1a.data(), *h2p = h2a.data(), *h1 = h1b.data(), *h2 = h2b.data();
      std::fill(h1a.begin(), h1a.end(), T(0));
      std::fill(h2a.begin(), h2a.end(), T(0));
      row_steps(d1, d2, r, V * Tn, in.opt.delta_softplus);
      for (int64_t i = 0; i < V; ++i) {
        const int64_t vm = rev ? V - 1 - i : i;
        if (saved && i % k == 0) {
          std::copy(h1p, h1p + TN, ps1 + (row * n_seg + i / k) * TN);
          std::copy(h2p, h2p + TN, ps2 + (row * n_seg + i / k) * TN);
        }
        row_forward(h1, h2, py + (row * V + vm) * Tn, h1p, h2p, rd, d1 + vm * Tn, d2 + vm * Tn, r, vm, s, in.opt);
        std::swap(h1, h1p);
        std::swap(h2, h2p);
      }
    }
  }
}

// --------------------------------------------------------------------------------------------------
// backward

// Allocates `g` as zeros of `shape` when undefined; checks it otherwise.
void prepare_grad(Tensor& g, const Shape& shape, DType dt, const char* name) {
  if (!g.defined()) {
    g = Tensor::zeros(shape, dt);
    return;
  }
  SSMKIT_CHECK(g.shape() == shape && g.dtype() == dt && g.is_contiguous(), "scan2d_backward: ", name,
               " must be a contiguous ", shape_str(shape), " ", dtype_name(dt), " tensor to accumulate into, got ",
               shape_str(g.shape()), " ", dtype_name(g.dtype()));
}

// Where one thread writes the B/C gradients of a batch: straight into the result when the thread holds the
// batch's first (b, channel) row (exactly one thread does), else into a partial summed after the parallel
// region in thread order. With contiguous row ranges only a thread's first batch can need the partial.
template <class T>
struct ThreadBC {
  int64_t edge_b = -1;  // the batch this thread shares but did not start, or -1
  std::vector<T> edge;  // (4, V, T, N): dB1, dB2, dC1, dC2 of batch edge_b
  std::vector<T> dA, dDskip, dbias1, dbias2;  // (4,D,N), (D), (D), (D)
};

template <class T>
void scan2d_backward_impl(Scan2dGrads& gr, const Tensor& dy0, const Scan2dInputs& in, const Scan2dSaved& saved) {
  const Dims s = check_inputs(in);
  const int64_t Bn = s.n_batch, Dn = s.n_chan, V = s.n_var, Tn = s.n_time, N = s.n_state;
  const int64_t k = saved.seg_rows;
  const int64_t n_seg = k > 0 ? (V + k - 1) / k : 0, TN = Tn * N, VTN = V * TN, DN = Dn * N;
  const DType dt = dtype_of<T>::value;
  const Shape rows_shape{Bn, Dn, n_seg, Tn, N};
  SSMKIT_CHECK(k > 0 && saved.h1_rows.defined() && saved.h2_rows.defined() && saved.h1_rows.shape() == rows_shape &&
                   saved.h2_rows.shape() == rows_shape && saved.h1_rows.dtype() == dt && saved.h2_rows.dtype() == dt,
               "scan2d_backward: saved rows do not match the inputs (run scan2d_forward with a Scan2dSaved)");
  check_shape(dy0, in.x.shape(), "dy");
  SSMKIT_CHECK(dy0.dtype() == dt, "scan2d_backward: dy must have the inputs' dtype ", dtype_name(dt), ", got ",
               dtype_name(dy0.dtype()));

  const Contig c(in);
  const Tensor dy = dy0.contiguous();
  const Tensor s1 = saved.h1_rows.contiguous(), s2 = saved.h2_rows.contiguous();
  const Shape xs = in.x.shape(), as{Dn, N}, bcs{Bn, V, Tn, N};
  prepare_grad(gr.dx, xs, dt, "dx");
  prepare_grad(gr.ddelta1, xs, dt, "ddelta1");
  prepare_grad(gr.ddelta2, xs, dt, "ddelta2");
  prepare_grad(gr.dA1, as, dt, "dA1");
  prepare_grad(gr.dA2, as, dt, "dA2");
  prepare_grad(gr.dA3, as, dt, "dA3");
  prepare_grad(gr.dA4, as, dt, "dA4");
  prepare_grad(gr.dB1, bcs, dt, "dB1");
  prepare_grad(gr.dB2, bcs, dt, "dB2");
  prepare_grad(gr.dC1, bcs, dt, "dC1");
  prepare_grad(gr.dC2, bcs, dt, "dC2");
  if (c.Dskip.defined()) prepare_grad(gr.dDskip, {Dn}, dt, "dDskip");
  if (c.bias1.defined()) prepare_grad(gr.ddelta_bias1, {Dn}, dt, "ddelta_bias1");
  if (c.bias2.defined()) prepare_grad(gr.ddelta_bias2, {Dn}, dt, "ddelta_bias2");

  const T* pdy = dy.data<T>();
  const T* ps1 = s1.data<T>();
  const T* ps2 = s2.data<T>();
  T* pdx = gr.dx.data<T>();
  T* pdd1 = gr.ddelta1.data<T>();
  T* pdd2 = gr.ddelta2.data<T>();
  T* gB1 = gr.dB1.data<T>();
  T* gB2 = gr.dB2.data<T>();
  T* gC1 = gr.dC1.data<T>();
  T* gC2 = gr.dC2.data<T>();
  const Scan2dOptions& o = in.opt;
  const bool rev = o.reverse_variates, softplus_on = o.delta_softplus;

  const int max_threads = Bn * Dn * V * TN >= kParallelMinWork ? omp_get_max_threads() : 1;
  std::vector<ThreadBC<T>> parts(static_cast<size_t>(max_threads));
  int used_threads = 1;

#pragma omp parallel num_threads(max_threads)
  {
    const FlushDenormals flush;
    const int ith = omp_get_thread_num(), nth = omp_get_num_threads();
#pragma omp single
    used_threads = nth;
    ThreadBC<T>& part = parts[static_cast<size_t>(ith)];
    part.dA.assign(static_cast<size_t>(4 * DN), T(0));
    part.dDskip.assign(static_cast<size_t>(Dn), T(0));
    part.dbias1.assign(static_cast<size_t>(Dn), T(0));
    part.dbias2.assign(static_cast<size_t>(Dn), T(0));
    // This thread's (batch, channel) rows [r0, r1); a batch started by an earlier thread goes to the partial.
    const int64_t R = Bn * Dn;
    const int64_t r0 = R * ith / nth, r1 = R * (ith + 1) / nth;
    if (r1 > r0 && r0 % Dn != 0) {
      part.edge_b = r0 / Dn;
      part.edge.assign(static_cast<size_t>(4 * VTN), T(0));
    }
    // Segment scratch: states and decays of up to k rows, steps; adjoint rows.
    std::vector<T> H1(static_cast<size_t>(k * TN)), H2(H1.size()), Aseg(static_cast<size_t>(4 * k * TN));
    std::vector<T> U(static_cast<size_t>(2 * TN));  // the recompute's u1, u2
    std::vector<T> steps(static_cast<size_t>(2 * V * Tn)), sig(steps.size());  // Δ1, Δ2 (V,T); their slopes
    std::vector<T> lam1(static_cast<size_t>(TN)), carry1(lam1.size()), carry2(lam1.size());
    T* dA1 = part.dA.data();
    T* dA2 = dA1 + DN;
    T* dA3 = dA2 + DN;
    T* dA4 = dA3 + DN;

    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / Dn, ch = row % Dn;
      const RowInputs<T> r = c.row<T>(b, ch, s);
      // destinations of this batch's B/C gradients
      T *dB1, *dB2, *dC1, *dC2;
      if (b == part.edge_b) {
        T* base = part.edge.data();
        dB1 = base;
        dB2 = base + VTN;
        dC1 = base + 2 * VTN;
        dC2 = base + 3 * VTN;
      } else {
        dB1 = gB1 + b * VTN;
        dB2 = gB2 + b * VTN;
        dC1 = gC1 + b * VTN;
        dC2 = gC2 + b * VTN;
      }
      T* gA1 = dA1 + ch * N;
      T* gA2 = dA2 + ch * N;
      T* gA3 = dA3 + ch * N;
      T* gA4 = dA4 + ch * N;
      const T* dyr = pdy + row * V * Tn;
      T* dxr = pdx + row * V * Tn;
      T* dd1r = pdd1 + row * V * Tn;
      T* dd2r = pdd2 + row * V * Tn;
      std::fill(carry1.begin(), carry1.end(), T(0));
      std::fill(carry2.begin(), carry2.end(), T(0));
      const int64_t VT = V * Tn;
      row_steps(steps.data(), steps.data() + VT, r, VT, softplus_on);
      if (softplus_on) {  // ∂softplus(u)/∂u = sigmoid(u), u the step before the softplus
        for (int64_t i = 0; i < VT; ++i) {
          sig[i] = r.del1[i] + r.bias1;
          sig[VT + i] = r.del2[i] + r.bias2;
        }
        vec_sigmoid(sig.data(), sig.data(), 2 * VT);
      }

      for (int64_t seg = n_seg - 1; seg >= 0; --seg) {
        const int64_t i0 = seg * k, i1 = std::min(V, i0 + k);
        const T* bp1 = ps1 + (row * n_seg + seg) * TN;
        const T* bp2 = ps2 + (row * n_seg + seg) * TN;
        // Recompute the segment's rows from the boundary row.
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t j = i - i0, vm = rev ? V - 1 - i : i;
          const RowDisc<T> rd{Aseg.data() + (4 * j) * TN,     Aseg.data() + (4 * j + 1) * TN,
                              Aseg.data() + (4 * j + 2) * TN, Aseg.data() + (4 * j + 3) * TN,
                              U.data(),                       U.data() + TN};
          row_forward(H1.data() + j * TN, H2.data() + j * TN, static_cast<T*>(nullptr),
                      j > 0 ? H1.data() + (j - 1) * TN : bp1, j > 0 ? H2.data() + (j - 1) * TN : bp2, rd,
                      steps.data() + vm * Tn, steps.data() + VT + vm * Tn, r, vm, s, o);
        }
        // Sweep the segment backwards. carry1/carry2 hold a3·λ2 and a4·λ2 of the row scanned after this one.
        for (int64_t i = i1 - 1; i >= i0; --i) {
          const int64_t j = i - i0, vm = rev ? V - 1 - i : i;
          RowSweep<T> w;
          w.h1 = H1.data() + j * TN;
          w.h2 = H2.data() + j * TN;
          w.h1p = j > 0 ? w.h1 - TN : bp1;
          w.h2p = j > 0 ? w.h2 - TN : bp2;
          w.a1 = Aseg.data() + (4 * j) * TN;
          w.a2 = w.a1 + TN;
          w.a3 = w.a2 + TN;
          w.a4 = w.a3 + TN;
          w.d1 = steps.data() + vm * Tn;
          w.d2 = w.d1 + VT;
          w.sig1 = sig.data() + vm * Tn;
          w.sig2 = w.sig1 + VT;
          w.dy = dyr + vm * Tn;
          w.x = r.x + vm * Tn;
          w.pre1 = r.del1 + vm * Tn;
          w.pre2 = r.del2 + vm * Tn;
          w.lam1 = lam1.data();
          w.carry1 = carry1.data();
          w.carry2 = carry2.data();
          w.dB1 = dB1 + vm * TN;
          w.dB2 = dB2 + vm * TN;
          w.dC1 = dC1 + vm * TN;
          w.dC2 = dC2 + vm * TN;
          w.gA1 = gA1;
          w.gA2 = gA2;
          w.gA3 = gA3;
          w.gA4 = gA4;
          w.dx = dxr + vm * Tn;
          w.dd1 = dd1r + vm * Tn;
          w.dd2 = dd2r + vm * Tn;
          w.dDskip = &part.dDskip[static_cast<size_t>(ch)];
          w.dbias1 = &part.dbias1[static_cast<size_t>(ch)];
          w.dbias2 = &part.dbias2[static_cast<size_t>(ch)];
          row_backward(w, r, vm, s, o);
        }
      }
    }
  }

  // Reduce the per-thread partials in thread order (deterministic for a fixed thread count).
  T* gA[4] = {gr.dA1.data<T>(), gr.dA2.data<T>(), gr.dA3.data<T>(), gr.dA4.data<T>()};
  T* gD = c.Dskip.defined() ? gr.dDskip.data<T>() : nullptr;
  T* gb1 = c.bias1.defined() ? gr.ddelta_bias1.data<T>() : nullptr;
  T* gb2 = c.bias2.defined() ? gr.ddelta_bias2.data<T>() : nullptr;
  T* gBC[4] = {gB1, gB2, gC1, gC2};
  for (int t = 0; t < used_threads; ++t) {
    const ThreadBC<T>& part = parts[static_cast<size_t>(t)];
    for (int q = 0; q < 4; ++q)
      for (int64_t i = 0; i < DN; ++i) gA[q][i] += part.dA[static_cast<size_t>(q * DN + i)];
    for (int64_t ch = 0; ch < Dn; ++ch) {
      if (gD) gD[ch] += part.dDskip[static_cast<size_t>(ch)];
      if (gb1) gb1[ch] += part.dbias1[static_cast<size_t>(ch)];
      if (gb2) gb2[ch] += part.dbias2[static_cast<size_t>(ch)];
    }
    if (part.edge_b < 0) continue;
    for (int q = 0; q < 4; ++q) {
      const T* src = part.edge.data() + q * VTN;
      T* dst = gBC[q] + part.edge_b * VTN;
#pragma omp parallel for schedule(static) if (VTN >= kParallelMinWork)
      for (int64_t i = 0; i < VTN; ++i) dst[i] += src[i];
    }
  }
}

Tensor value_or_none(const Var& v) { return v.defined() ? v.value() : Tensor{}; }

}  // namespace

int64_t scan2d_default_seg_rows(int64_t V) {
  int64_t k = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(std::max<int64_t>(V, 1)))));
  while (k * k < V) ++k;  // guard against rounding
  return std::max<int64_t>(k, 1);
}

void scan2d_forward(Tensor& y, Scan2dSaved* saved, const Scan2dInputs& in, int64_t seg_rows) {
  if (in.x.defined() && in.x.dtype() == DType::F64)
    scan2d_forward_impl<double>(y, saved, in, seg_rows);
  else
    scan2d_forward_impl<float>(y, saved, in, seg_rows);
}

void scan2d_backward(Scan2dGrads& grads, const Tensor& dy, const Scan2dInputs& in, const Scan2dSaved& saved) {
  if (in.x.defined() && in.x.dtype() == DType::F64)
    scan2d_backward_impl<double>(grads, dy, in, saved);
  else
    scan2d_backward_impl<float>(grads, dy, in, saved);
}

// --------------------------------------------------------------------------------------------------
// autograd op

Var scan2d(const Scan2dVars& v, int64_t seg_rows) {
  SSMKIT_CHECK(v.x.defined() && v.delta1.defined() && v.delta2.defined() && v.A1.defined() && v.A2.defined() &&
                   v.A3.defined() && v.A4.defined() && v.B1.defined() && v.B2.defined() && v.C1.defined() &&
                   v.C2.defined(),
               "scan2d: x, delta1, delta2, A1..A4, B1, B2, C1 and C2 are required");
  Scan2dInputs in;
  in.x = v.x.value();
  in.delta1 = v.delta1.value();
  in.delta2 = v.delta2.value();
  in.A1 = v.A1.value();
  in.A2 = v.A2.value();
  in.A3 = v.A3.value();
  in.A4 = v.A4.value();
  in.B1 = v.B1.value();
  in.B2 = v.B2.value();
  in.C1 = v.C1.value();
  in.C2 = v.C2.value();
  in.Dskip = value_or_none(v.Dskip);
  in.delta_bias1 = value_or_none(v.delta_bias1);
  in.delta_bias2 = value_or_none(v.delta_bias2);
  in.opt = v.opt;
  // Inputs in a fixed order; absent optional ones are passed as empty leaves (never need grad).
  const std::vector<Var> inputs = {v.x,  v.delta1, v.delta2, v.A1, v.A2,    v.A3,          v.A4,
                                   v.B1, v.B2,     v.C1,     v.C2, v.Dskip, v.delta_bias1, v.delta_bias2};
  std::vector<Var> gradable;
  for (const Var& x : inputs) gradable.push_back(x.defined() ? x : Var(Tensor::empty({0})));

  Tensor y;
  auto saved = std::make_shared<Scan2dSaved>();
  scan2d_forward(y, grad_enabled() ? saved.get() : nullptr, in, seg_rows);
  return make_result(
      y, gradable,
      [in, saved](const Tensor& g, const std::vector<bool>& need) {
        Scan2dGrads gr;
        scan2d_backward(gr, g, in, *saved);
        std::vector<Tensor> r = {gr.dx,  gr.ddelta1, gr.ddelta2, gr.dA1,    gr.dA2,          gr.dA3,
                                 gr.dA4, gr.dB1,     gr.dB2,     gr.dC1,    gr.dC2,          gr.dDskip,
                                 gr.ddelta_bias1, gr.ddelta_bias2};
        for (size_t i = 0; i < r.size(); ++i)
          if (!need[i]) r[i] = Tensor{};
        return r;
      },
      "scan2d");
}

}  // namespace ssmkit::core
