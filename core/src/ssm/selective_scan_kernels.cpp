// Float32 selective-scan kernels, compiled once per SIMD target (Highway: AVX-512, AVX2, portable scalar)
// and picked at run time. One call scans a block of V channels of one batch element, vectorized across
// the channels: lane i of every vector belongs to channel c0 + i, so a time step is N independent
// vector updates h_n = exp(d A_n) h_n + (d u) B_n with B_n, C_n broadcast, and y = sum_n C_n h_n needs no
// horizontal sum. Inputs are gathered into time-major (L,V) scratch first and results scattered back.
// The backward walks the chunks newest first, recomputes each chunk's states and decays from the saved
// boundary state, then runs the adjoint recurrence of ../shared/specs/core-ssm.md §2.3.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ssm/selective_scan_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cstring>

#include "hwy/highway.h"
#include "simd/rows_transpose-inl.h"
#include "simd/vec_math-inl.h"
#include "ssm/selective_scan_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {
namespace sk = ssmkit::core::scan_kernels;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

int64_t BlockChannels() { return static_cast<int64_t>(hn::Lanes(DF())); }

// Runs body(s, acc) for s < N over four accumulators in turn, so that the sum over the state axis is four
// short dependency chains instead of one chain of N FMAs per time step; returns their sum. (Written out:
// -O2 does not unroll, and an array of accumulators would live on the stack.)
template <class F>
HWY_INLINE VF sum_over_states(int64_t N, F&& body) {
  const DF d;
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t s = 0;
  for (; s + 4 <= N; s += 4) {
    body(s, a0);
    body(s + 1, a1);
    body(s + 2, a2);
    body(s + 3, a3);
  }
  for (; s < N; ++s) body(s, a0);
  return hn::Add(hn::Add(a0, a1), hn::Add(a2, a3));
}

// The same for token rows: outT[l V + i] = src[l ld + i] (one contiguous load per step when nc == V).
HWY_INLINE void gather_tokens(const float* src, int64_t ld, int64_t nc, int64_t L, int64_t V, float* outT) {
  const DF d;
  if (nc == V) {
    for (int64_t l = 0; l < L; ++l) hn::StoreU(hn::LoadU(d, src + l * ld), d, outT + l * V);
    return;
  }
  std::fill(outT, outT + L * V, 0.0f);
  for (int64_t l = 0; l < L; ++l) std::copy(src + l * ld, src + l * ld + nc, outT + l * V);
}
template <bool kAdd>
HWY_INLINE void scatter_tokens(const float* inT, int64_t nc, int64_t L, int64_t V, float* dst, int64_t ld) {
  const DF d;
  for (int64_t l = 0; l < L; ++l) {
    float* o = dst + l * ld;
    const float* s = inT + l * V;
    if (nc == V) {
      hn::StoreU(kAdd ? hn::Add(hn::LoadU(d, o), hn::LoadU(d, s)) : hn::LoadU(d, s), d, o);
    } else {
      for (int64_t i = 0; i < nc; ++i) o[i] = kAdd ? o[i] + s[i] : s[i];
    }
  }
}
// Either layout (ld == 0: channel rows).
HWY_INLINE void gather(const float* p, int64_t ld, int64_t nc, int64_t L, int64_t V, float* outT) {
  if (ld == 0)
    gather_rows(p, nc, L, V, outT);
  else
    gather_tokens(p, ld, nc, L, V, outT);
}
template <bool kAdd>
HWY_INLINE void scatter(const float* inT, int64_t nc, int64_t L, int64_t V, float* p, int64_t ld) {
  if (ld == 0)
    scatter_rows<kAdd>(inT, nc, L, V, p);
  else
    scatter_tokens<kAdd>(inT, nc, L, V, p, ld);
}

// One vector holding p[i] for i < nc (zero elsewhere, and where p is null).
HWY_INLINE VF lanes_of(const float* p, int64_t nc) {
  const DF d;
  HWY_ALIGN float tmp[hn::MaxLanes(DF())] = {};
  if (p)
    for (int64_t i = 0; i < nc; ++i) tmp[i] = p[i];
  return hn::Load(d, tmp);
}

// Adds the lanes i < nc of v into p[i * stride].
HWY_INLINE void add_lanes(VF v, int64_t nc, float* p, int64_t stride) {
  HWY_ALIGN float tmp[hn::MaxLanes(DF())];
  hn::Store(v, DF(), tmp);
  for (int64_t i = 0; i < nc; ++i) p[i * stride] += tmp[i];
}

// matT (N,V): matT[n V + i] = mat[i N + n] for valid rows (zero elsewhere or when mat is null).
HWY_INLINE void gather_states(const float* mat, int64_t row_stride, int64_t nc, int64_t N, int64_t V, float* matT) {
  std::fill(matT, matT + N * V, 0.0f);
  if (!mat) return;
  for (int64_t i = 0; i < nc; ++i)
    for (int64_t n = 0; n < N; ++n) matT[n * V + i] = mat[i * row_stride + n];
}

// dT <- softplus?(dT + bias), duT <- dT * uT, and (backward) sgT <- d softplus/dx (1 without softplus).
HWY_INLINE void discretize(float* dT, float* duT, float* sgT, const float* uT, VF biasv, bool softplus, int64_t n) {
  const DF d;
  const int64_t V = BlockChannels();
  const VF one = hn::Set(d, 1.0f), thr = hn::Set(d, 20.0f);
  for (int64_t l = 0; l < n; ++l) {
    VF x = hn::Add(hn::LoadU(d, dT + l * V), biasv);
    if (sgT) hn::StoreU(softplus ? hn::IfThenElse(hn::Gt(x, thr), one, Sigmoid(d, x)) : one, d, sgT + l * V);
    if (softplus) x = Softplus(d, x);
    hn::StoreU(x, d, dT + l * V);
    hn::StoreU(hn::Mul(x, hn::LoadU(d, uT + l * V)), d, duT + l * V);
  }
}

int64_t ForwardWork(int64_t L, int64_t N) { return BlockChannels() * (4 * L + 2 * N); }

void ForwardBlock(const sk::ForwardBlockF32& a) {
  const DF d;
  const int64_t V = BlockChannels(), L = a.L, N = a.N, nc = a.nc;
  float* uT = a.work;      // (L,V)
  float* dT = uT + L * V;  // (L,V) d_l, later z
  float* duT = dT + L * V;  // (L,V) d_l u_l
  float* yT = duT + L * V;  // (L,V)
  float* AT = yT + L * V;   // (N,V)
  float* h = AT + N * V;    // (N,V)
  const int64_t bc_ld = a.bc_ld > 0 ? a.bc_ld : N;
  gather(a.u, a.ld, nc, L, V, uT);
  gather(a.delta, a.ld, nc, L, V, dT);
  discretize(dT, duT, nullptr, uT, lanes_of(a.bias, nc), a.softplus, L);
  gather_states(a.A, N, nc, N, V, AT);
  gather_states(a.h0, N, nc, N, V, h);
  const int64_t cs_stride = a.n_chunks * N;
  for (int64_t k = 0, l0 = 0; l0 < L || (k == 0 && L == 0); ++k, l0 += a.chunk) {
    if (a.chunk_states)
      for (int64_t i = 0; i < nc; ++i)
        for (int64_t n = 0; n < N; ++n) a.chunk_states[i * cs_stride + k * N + n] = h[n * V + i];
    const int64_t l1 = std::min(L, l0 + a.chunk);
    for (int64_t l = l0; l < l1; ++l) {
      const VF dv = hn::LoadU(d, dT + l * V), duv = hn::LoadU(d, duT + l * V);
      const float* Bl = a.Bt + l * bc_ld;
      const float* Cl = a.Ct + l * bc_ld;
      const VF y = sum_over_states(N, [&](int64_t n, VF& acc) HWY_ATTR {
        const VF decay = FastExp(d, hn::Mul(dv, hn::LoadU(d, AT + n * V)));
        const VF hn_ = hn::MulAdd(decay, hn::LoadU(d, h + n * V), hn::Mul(duv, hn::Set(d, Bl[n])));
        hn::StoreU(hn_, d, h + n * V);
        acc = hn::MulAdd(hn_, hn::Set(d, Cl[n]), acc);
      });
      hn::StoreU(y, d, yT + l * V);
    }
    if (L == 0) break;
  }
  // y = C.h + D u, gated by silu(z).
  const VF Dv = lanes_of(a.D, nc);
  if (a.z) gather(a.z, a.ld_z, nc, L, V, dT);
  for (int64_t l = 0; l < L; ++l) {
    VF y = hn::MulAdd(Dv, hn::LoadU(d, uT + l * V), hn::LoadU(d, yT + l * V));
    if (a.z) y = hn::Mul(y, Silu(d, hn::LoadU(d, dT + l * V)));
    hn::StoreU(y, d, yT + l * V);
  }
  scatter<false>(yT, nc, L, V, a.y, a.ld);
  if (a.last)
    for (int64_t i = 0; i < nc; ++i)
      for (int64_t n = 0; n < N; ++n) a.last[i * N + n] = h[n * V + i];
}

int64_t BackwardWork(int64_t L, int64_t N, int64_t chunk) {
  return BlockChannels() * (9 * L + 2 * chunk * N + 2 * chunk + 4 * N);
}

void BackwardBlock(const sk::BackwardBlockF32& a) {
  const DF d;
  const int64_t V = BlockChannels(), L = a.L, N = a.N, nc = a.nc, chunk = a.chunk;
  float* uT = a.work;             // (L,V)
  float* dT = uT + L * V;         // (L,V) d_l
  float* duT = dT + L * V;        // (L,V) d_l u_l
  float* sgT = duT + L * V;       // (L,V) d softplus/dx
  float* dyT = sgT + L * V;       // (L,V)
  float* zT = dyT + L * V;        // (L,V)
  float* duOut = zT + L * V;      // (L,V) dLoss/du
  float* ddOut = duOut + L * V;   // (L,V) dLoss/ddelta
  float* dzOut = ddOut + L * V;   // (L,V) dLoss/dz
  float* H = dzOut + L * V;       // (chunk,N,V) states of the chunk
  float* Abar = H + chunk * N * V;  // (chunk,N,V) decays
  float* ypre = Abar + chunk * N * V;  // (chunk,V) C.h before D u and the gate
  float* gy = ypre + chunk * V;        // (chunk,V) dLoss/d(C.h + D u)
  float* AT = gy + chunk * V;          // (N,V)
  float* lam = AT + N * V;             // (N,V) dLoss/dh after the current step
  float* dAv = lam + N * V;            // (N,V)
  float* hstart = dAv + N * V;         // (N,V) state entering the chunk

  const int64_t bc_ld = a.bc_ld > 0 ? a.bc_ld : N;
  gather(a.u, a.ld, nc, L, V, uT);
  gather(a.delta, a.ld, nc, L, V, dT);
  gather(a.dy, a.ld, nc, L, V, dyT);
  if (a.z) gather(a.z, a.ld_z, nc, L, V, zT);
  discretize(dT, duT, sgT, uT, lanes_of(a.bias, nc), a.softplus, L);
  gather_states(a.A, N, nc, N, V, AT);
  gather_states(a.dlast, N, nc, N, V, lam);
  std::fill(dAv, dAv + N * V, 0.0f);
  const VF Dv = lanes_of(a.D, nc);
  const VF one = hn::Set(d, 1.0f);
  VF dDv = hn::Zero(d), dbv = hn::Zero(d);
  const int64_t cs_stride = a.n_chunks * N;

  for (int64_t kc = a.n_chunks - 1; kc >= 0; --kc) {
    const int64_t l0 = kc * chunk, l1 = std::min(L, l0 + chunk), n = l1 - l0;
    if (n <= 0) continue;
    gather_states(a.states + kc * N, cs_stride, nc, N, V, hstart);
    // Recompute the chunk's states and decays from its boundary state.
    for (int64_t j = 0; j < n; ++j) {
      const int64_t l = l0 + j;
      const VF dv = hn::LoadU(d, dT + l * V), duv = hn::LoadU(d, duT + l * V);
      const float* hp = j > 0 ? H + (j - 1) * N * V : hstart;
      const float* Bl = a.Bt + l * bc_ld;
      const float* Cl = a.Ct + l * bc_ld;
      const VF y = sum_over_states(N, [&](int64_t s, VF& acc) HWY_ATTR {
        const VF decay = FastExp(d, hn::Mul(dv, hn::LoadU(d, AT + s * V)));
        hn::StoreU(decay, d, Abar + (j * N + s) * V);
        const VF hs = hn::MulAdd(decay, hn::LoadU(d, hp + s * V), hn::Mul(duv, hn::Set(d, Bl[s])));
        hn::StoreU(hs, d, H + (j * N + s) * V);
        acc = hn::MulAdd(hs, hn::Set(d, Cl[s]), acc);
      });
      hn::StoreU(y, d, ypre + j * V);
    }
    // The gate and the skip: gy = dLoss/d(C.h + D u); dz; dD.
    for (int64_t j = 0; j < n; ++j) {
      const int64_t l = l0 + j;
      const VF uv = hn::LoadU(d, uT + l * V);
      VF g = hn::LoadU(d, dyT + l * V);
      if (a.z) {
        const VF yp = hn::MulAdd(Dv, uv, hn::LoadU(d, ypre + j * V));
        const VF zv = hn::LoadU(d, zT + l * V);
        const VF sg = Sigmoid(d, zv);
        const VF dsilu = hn::Mul(sg, hn::MulAdd(zv, hn::Sub(one, sg), one));  // d silu(z)/dz
        hn::StoreU(hn::Mul(hn::Mul(g, yp), dsilu), d, dzOut + l * V);
        g = hn::Mul(g, hn::Mul(zv, sg));
      }
      hn::StoreU(g, d, gy + j * V);
      dDv = hn::MulAdd(g, uv, dDv);
    }
    // Adjoint recurrence, newest step first; lam holds dLoss/dh_l excluding step l's own output.
    for (int64_t j = n - 1; j >= 0; --j) {
      const int64_t l = l0 + j;
      const VF gyv = hn::LoadU(d, gy + j * V);
      const VF dv = hn::LoadU(d, dT + l * V), duv = hn::LoadU(d, duT + l * V);
      const float* hp = j > 0 ? H + (j - 1) * N * V : hstart;
      const float* Hj = H + j * N * V;
      const float* aj = Abar + j * N * V;
      const float* Bl = a.Bt + l * bc_ld;
      const float* Cl = a.Ct + l * bc_ld;
      float* dBl = a.dBacc + l * N * V;
      float* dCl = a.dCacc + l * N * V;
      // accA = sum_s dLoss/d(d A_s) A_s, accB = sum_s lam_s B_s, each over two interleaved chains.
      VF accA0 = hn::Zero(d), accA1 = hn::Zero(d), accB0 = hn::Zero(d), accB1 = hn::Zero(d);
      auto step = [&](int64_t s, VF& accA, VF& accB) HWY_ATTR {
        const VF lm = hn::MulAdd(gyv, hn::Set(d, Cl[s]), hn::LoadU(d, lam + s * V));
        hn::StoreU(hn::MulAdd(gyv, hn::LoadU(d, Hj + s * V), hn::LoadU(d, dCl + s * V)), d, dCl + s * V);
        const VF decay = hn::LoadU(d, aj + s * V);
        const VF da = hn::Mul(hn::Mul(lm, hn::LoadU(d, hp + s * V)), decay);  // dLoss/d(d A_s) through exp
        hn::StoreU(hn::MulAdd(da, dv, hn::LoadU(d, dAv + s * V)), d, dAv + s * V);
        accA = hn::MulAdd(da, hn::LoadU(d, AT + s * V), accA);
        accB = hn::MulAdd(lm, hn::Set(d, Bl[s]), accB);
        hn::StoreU(hn::MulAdd(lm, duv, hn::LoadU(d, dBl + s * V)), d, dBl + s * V);
        hn::StoreU(hn::Mul(lm, decay), d, lam + s * V);
      };
      int64_t s = 0;
      for (; s + 2 <= N; s += 2) {
        step(s, accA0, accB0);
        step(s + 1, accA1, accB1);
      }
      if (s < N) step(s, accA0, accB0);
      const VF accA = hn::Add(accA0, accA1), accB = hn::Add(accB0, accB1);
      hn::StoreU(hn::MulAdd(dv, accB, hn::Mul(Dv, gyv)), d, duOut + l * V);
      const VF dd = hn::Mul(hn::MulAdd(hn::LoadU(d, uT + l * V), accB, accA), hn::LoadU(d, sgT + l * V));
      hn::StoreU(dd, d, ddOut + l * V);
      dbv = hn::Add(dbv, dd);
    }
  }
  if (a.overwrite) {
    scatter<false>(duOut, nc, L, V, a.du, a.ld);
    scatter<false>(ddOut, nc, L, V, a.ddelta, a.ld);
    if (a.z) scatter<false>(dzOut, nc, L, V, a.dz, a.ld_dz);
  } else {
    scatter<true>(duOut, nc, L, V, a.du, a.ld);
    scatter<true>(ddOut, nc, L, V, a.ddelta, a.ld);
    if (a.z) scatter<true>(dzOut, nc, L, V, a.dz, a.ld_dz);
  }
  for (int64_t s = 0; s < N; ++s) {
    add_lanes(hn::LoadU(d, dAv + s * V), nc, a.dA + s, N);
    if (a.dh0) add_lanes(hn::LoadU(d, lam + s * V), nc, a.dh0 + s, N);
  }
  if (a.dD) add_lanes(dDv, nc, a.dD, 1);
  if (a.dbias) add_lanes(dbv, nc, a.dbias, 1);
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssmkit::core::scan_kernels {

HWY_EXPORT(BlockChannels);
HWY_EXPORT(ForwardWork);
HWY_EXPORT(ForwardBlock);
HWY_EXPORT(BackwardWork);
HWY_EXPORT(BackwardBlock);

int64_t scan_block_channels_f32() { return HWY_DYNAMIC_DISPATCH(BlockChannels)(); }
int64_t forward_work_floats(int64_t L, int64_t N) { return HWY_DYNAMIC_DISPATCH(ForwardWork)(L, N); }
void forward_block_f32(const ForwardBlockF32& a) { HWY_DYNAMIC_DISPATCH(ForwardBlock)(a); }
int64_t backward_work_floats(int64_t L, int64_t N, int64_t chunk) {
  return HWY_DYNAMIC_DISPATCH(BackwardWork)(L, N, chunk);
}
void backward_block_f32(const BackwardBlockF32& a) { HWY_DYNAMIC_DISPATCH(BackwardBlock)(a); }

}  // namespace ssmkit::core::scan_kernels
#endif  // HWY_ONCE
