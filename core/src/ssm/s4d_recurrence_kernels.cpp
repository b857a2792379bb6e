// Float32 S4D recurrence kernel (see s4d_recurrence_kernels.h), compiled once per SIMD target (Highway:
// AVX-512, AVX2, portable scalar) and picked at run time. Lane i of every vector is channel h0 + i, so a
// time step is, per mode, one complex multiply-add of the state and the real part of c times it into the
// output (6 FMA-class operations): no horizontal sums. Modes go in groups of four whose states stay in registers across a chunk
// of kChunk steps; the output tile of the chunk (kChunk,V) stays in L1 across the groups.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ssm/s4d_recurrence_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>

#include "hwy/highway.h"
#include "simd/rows_transpose-inl.h"
#include "ssm/s4d_recurrence_kernels.h"
#include "ssmkit/core/denormals.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace rk = ssmkit::core::s4d_kernels;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// uT, yT (L,V); state re, im (M,V).
int64_t S4DRecurrenceWork(int64_t L, int64_t M) { return (2 * L + 2 * M) * static_cast<int64_t>(hn::Lanes(DF())); }

// G modes [m0, m0 + G) over the steps [t0, t0 + tn) of the tiles. The state is kept divided by c (x = s / c:
// x = w x + u, then y (+)= sum Re(c x)): 6 vector operations per mode and step against 7 with c u.
// (kFirst: y = D u + sum, the first group of the chunk). kCorrect: the chunk is full and another follows:
// the carried state gets + e s_start (the float propagation's error over kChunk steps).
template <int G, bool kFirst>
HWY_INLINE void RunGroup(const float* modes, int64_t M, int64_t m0, const float* uT, float* yT, int64_t tn,
                         VF Dv, float* sre, float* sim, bool correct) {
  const DF d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d));
  const float *pwr = modes + m0 * V, *pwi = modes + (M + m0) * V, *pcr = modes + (2 * M + m0) * V,
              *pci = modes + (3 * M + m0) * V;
  VF wr[G], wi[G], cr[G], ci[G], xr[G], xi[G];
#pragma GCC unroll 4
  for (int k = 0; k < G; ++k) {
    wr[k] = hn::LoadU(d, pwr + k * V);
    wi[k] = hn::LoadU(d, pwi + k * V);
    cr[k] = hn::LoadU(d, pcr + k * V);
    ci[k] = hn::LoadU(d, pci + k * V);
    xr[k] = hn::LoadU(d, sre + (m0 + k) * V);
    xi[k] = hn::LoadU(d, sim + (m0 + k) * V);
  }
  for (int64_t t = 0; t < tn; ++t) {
    const VF u = hn::LoadU(d, uT + t * V);
    // acc0 and acc1: two short chains for the sum over the group's modes
    VF acc0 = kFirst ? hn::Mul(Dv, u) : hn::LoadU(d, yT + t * V), acc1 = hn::Zero(d);
#pragma GCC unroll 4
    for (int k = 0; k < G; ++k) {
      // (xr + i xi) <- (wr + i wi)(xr + i xi) + u;  y += Re((cr + i ci)(xr + i xi))
      const VF nr = hn::NegMulAdd(wi[k], xi[k], hn::MulAdd(wr[k], xr[k], u));
      const VF ni = hn::MulAdd(wi[k], xr[k], hn::Mul(wr[k], xi[k]));
      xr[k] = nr;
      xi[k] = ni;
      VF& acc = (k % 2 == 0) ? acc0 : acc1;
      acc = hn::NegMulAdd(ci[k], ni, hn::MulAdd(cr[k], nr, acc));
    }
    hn::StoreU(hn::Add(acc0, acc1), d, yT + t * V);
  }
  const float *per = modes + (4 * M + m0) * V, *pei = modes + (5 * M + m0) * V;
#pragma GCC unroll 4
  for (int k = 0; k < G; ++k) {
    float *r = sre + (m0 + k) * V, *i = sim + (m0 + k) * V;
    if (correct) {  // + e s_start, s_start still in memory
      const VF er = hn::LoadU(d, per + k * V), ei = hn::LoadU(d, pei + k * V);
      const VF s0r = hn::LoadU(d, r), s0i = hn::LoadU(d, i);
      xr[k] = hn::NegMulAdd(ei, s0i, hn::MulAdd(er, s0r, xr[k]));
      xi[k] = hn::MulAdd(ei, s0r, hn::MulAdd(er, s0i, xi[k]));
    }
    hn::StoreU(xr[k], d, r);
    hn::StoreU(xi[k], d, i);
  }
}

template <bool kFirst>
HWY_INLINE void RunModes(const float* modes, int64_t M, const float* uT, float* yT, int64_t tn, VF Dv,
                         float* sre, float* sim, bool correct) {
  int64_t m0 = 0;
  if (M >= 4) {
    RunGroup<4, kFirst>(modes, M, 0, uT, yT, tn, Dv, sre, sim, correct);
    m0 = 4;
  } else {
    RunGroup<1, kFirst>(modes, M, 0, uT, yT, tn, Dv, sre, sim, correct);
    m0 = 1;
  }
  for (; m0 + 4 <= M; m0 += 4) RunGroup<4, false>(modes, M, m0, uT, yT, tn, Dv, sre, sim, correct);
  for (; m0 < M; ++m0) RunGroup<1, false>(modes, M, m0, uT, yT, tn, Dv, sre, sim, correct);
}

void S4DRecurrenceBlock(const rk::RecurrenceBlockF32& a) {
  const FlushDenormals flush;  // a state decaying with no input must not crawl through denormals
  const DF d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d)), L = a.L, M = a.M;
  float* uT = a.work;
  float* yT = uT + L * V;
  float* sre = yT + L * V;
  float* sim = sre + M * V;
  gather_rows(a.u, a.nc, L, V, uT);
  std::fill(sre, sre + 2 * M * V, 0.0f);
  const VF Dv = hn::LoadU(d, a.D);
  for (int64_t t0 = 0; t0 < L; t0 += rk::kChunk) {
    const int64_t tn = std::min(rk::kChunk, L - t0);
    const bool correct = tn == rk::kChunk && t0 + tn < L;
    RunModes<true>(a.modes, M, uT + t0 * V, yT + t0 * V, tn, Dv, sre, sim, correct);
  }
  scatter_rows<false>(yT, a.nc, L, V, a.y);
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssmkit::core::s4d_kernels {

HWY_EXPORT(S4DRecurrenceWork);
HWY_EXPORT(S4DRecurrenceBlock);

int64_t recurrence_work_floats(int64_t L, int64_t M) { return HWY_DYNAMIC_DISPATCH(S4DRecurrenceWork)(L, M); }
void recurrence_block_f32(const RecurrenceBlockF32& a) { HWY_DYNAMIC_DISPATCH(S4DRecurrenceBlock)(a); }

}  // namespace ssmkit::core::s4d_kernels
#endif  // HWY_ONCE
