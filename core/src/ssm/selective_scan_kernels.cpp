// Float32 selective-scan row kernels, compiled once per SIMD target (Highway: AVX-512, AVX2, portable
// scalar) and picked at run time. Vectorized over the state axis: one time step updates Np/V vectors
// h = exp(d A) h + (d u) B and reduces C.h. Per-step scalars (softplus(delta + bias), d u, the gate)
// are computed in vectorized passes over time before and after the recurrence. The backward walks the
// chunks newest first, recomputes each chunk's states and decays into scratch from the saved boundary
// state, then runs the adjoint recurrence of ../shared/specs/core-ssm.md §2.3.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ssm/selective_scan_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cstring>

#include "hwy/highway.h"
#include "simd/vec_math-inl.h"
#include "ssm/selective_scan_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {
namespace sk = ssmkit::core::scan_kernels;

int64_t StateStride(int64_t N) {
  const hn::ScalableTag<float> d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d));
  return (N + V - 1) / V * V;
}

// Loads and stores for passes over time: whole vectors unaligned, the tail under a mask.
template <bool kFull, class D, class M>
HWY_INLINE hn::Vec<D> ld(D d, M m, const float* p) {
  if constexpr (kFull) return hn::LoadU(d, p);
  else return hn::MaskedLoad(m, d, p);
}
template <bool kFull, class D, class M>
HWY_INLINE void st(hn::Vec<D> v, D d, M m, float* p) {
  if constexpr (kFull) hn::StoreU(v, d, p);
  else hn::BlendedStore(v, m, d, p);
}
// Calls f.template operator()<kFull>(i, mask) for i = 0, V, 2V, ... < n.
template <class F>
HWY_INLINE void for_vectors(int64_t n, F&& f) {
  const hn::ScalableTag<float> d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + V <= n; i += V) f.template operator()<true>(i, hn::FirstN(d, static_cast<size_t>(V)));
  if (i < n) f.template operator()<false>(i, hn::FirstN(d, static_cast<size_t>(n - i)));
}

// dl[i] = softplus?(delta[i] + bias), dul[i] = dl[i] u[i] for i < n.
HWY_INLINE void discretize_steps(const float* delta, const float* u, float bias, bool softplus, float* dl, float* dul,
                                 int64_t n) {
  const hn::ScalableTag<float> d;
  const auto vb = hn::Set(d, bias);
  for_vectors(n, [&]<bool kF>(int64_t i, auto m) {
    auto x = hn::Add(ld<kF>(d, m, delta + i), vb);
    if (softplus) x = Softplus(d, x);
    st<kF>(x, d, m, dl + i);
    st<kF>(hn::Mul(x, ld<kF>(d, m, u + i)), d, m, dul + i);
  });
}

void ForwardRow(const sk::ForwardRowF32& r) {
  const hn::ScalableTag<float> d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d)), L = r.L, Np = r.Np;
  float* dl = r.work;
  float* dul = r.work + L;
  discretize_steps(r.delta, r.u, r.bias, r.softplus, dl, dul, L);
  float* h = r.h;
  for (int64_t l0 = 0; l0 < L; l0 += r.chunk) {
    if (r.chunk_states) std::memcpy(r.chunk_states + (l0 / r.chunk) * r.N, h, sizeof(float) * r.N);
    const int64_t l1 = std::min(L, l0 + r.chunk);
    for (int64_t l = l0; l < l1; ++l) {
      const auto dv = hn::Set(d, dl[l]);
      const auto duv = hn::Set(d, dul[l]);
      const float* Bl = r.Bt + l * Np;
      const float* Cl = r.Ct + l * Np;
      auto acc = hn::Zero(d);
      for (int64_t k = 0; k < Np; k += V) {
        const auto a = FastExp(d, hn::Mul(dv, hn::LoadU(d, r.A + k)));
        const auto hk = hn::MulAdd(a, hn::LoadU(d, h + k), hn::Mul(duv, hn::LoadU(d, Bl + k)));
        hn::StoreU(hk, d, h + k);
        acc = hn::MulAdd(hk, hn::LoadU(d, Cl + k), acc);
      }
      r.y[l] = hn::GetLane(hn::SumOfLanes(d, acc));
    }
  }
  // y = C.h + D u, gated by silu(z).
  const auto vD = hn::Set(d, r.D);
  for_vectors(L, [&]<bool kF>(int64_t i, auto m) {
    auto y = hn::MulAdd(vD, ld<kF>(d, m, r.u + i), ld<kF>(d, m, r.y + i));
    if (r.z) y = hn::Mul(y, Silu(d, ld<kF>(d, m, r.z + i)));
    st<kF>(y, d, m, r.y + i);
  });
}

void BackwardRow(const sk::BackwardRowF32& r) {
  const hn::ScalableTag<float> d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d)), L = r.L, Np = r.Np, chunk = r.chunk;
  float* H = r.work;                   // (chunk,Np) states h_l of the chunk
  float* Abar = H + chunk * Np;        // (chunk,Np) decays exp(d_l A)
  float* hstart = Abar + chunk * Np;   // (Np) state entering the chunk
  float* dl = hstart + Np;             // (chunk) d_l
  float* dul = dl + chunk;             // (chunk) d_l u_l
  float* ypre = dul + chunk;           // (chunk) C.h + D u before the gate
  float* gy = ypre + chunk;            // (chunk) dLoss/d ypre
  float* sgd = gy + chunk;             // (chunk) d softplus / dx (1 without softplus)
  float* lam = r.lam;
  const auto vD = hn::Set(d, r.D);
  const auto one = hn::Set(d, 1.0f);
  std::fill(hstart, hstart + Np, 0.0f);
  auto dDv = hn::Zero(d);
  float dbias = 0;
  for (int64_t kc = r.n_chunks - 1; kc >= 0; --kc) {
    const int64_t l0 = kc * chunk, l1 = std::min(L, l0 + chunk), n = l1 - l0;
    if (n <= 0) continue;
    std::memcpy(hstart, r.states + kc * r.N, sizeof(float) * r.N);
    discretize_steps(r.delta + l0, r.u + l0, r.bias, r.softplus, dl, dul, n);
    // Recompute the chunk's states and decays from its boundary state.
    const float* hprev = hstart;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t l = l0 + j;
      const auto dv = hn::Set(d, dl[j]);
      const auto duv = hn::Set(d, dul[j]);
      auto acc = hn::Zero(d);
      for (int64_t k = 0; k < Np; k += V) {
        const auto a = FastExp(d, hn::Mul(dv, hn::LoadU(d, r.A + k)));
        hn::StoreU(a, d, Abar + j * Np + k);
        const auto hk = hn::MulAdd(a, hn::LoadU(d, hprev + k), hn::Mul(duv, hn::LoadU(d, r.Bt + l * Np + k)));
        hn::StoreU(hk, d, H + j * Np + k);
        acc = hn::MulAdd(hk, hn::LoadU(d, r.Ct + l * Np + k), acc);
      }
      ypre[j] = hn::GetLane(hn::SumOfLanes(d, acc));
      hprev = H + j * Np;
    }
    // Per-step terms, vectorized over the chunk: ypre += D u; the gate's gradient; dD; softplus'.
    for_vectors(n, [&]<bool kF>(int64_t i, auto m) {
      const auto uv = ld<kF>(d, m, r.u + l0 + i);
      const auto yp = hn::MulAdd(vD, uv, ld<kF>(d, m, ypre + i));
      auto g = ld<kF>(d, m, r.dy + l0 + i);
      if (r.z) {
        const auto zv = ld<kF>(d, m, r.z + l0 + i);
        const auto sg = Sigmoid(d, zv);
        // d silu(z)/dz = sg (1 + z (1 - sg))
        const auto dsilu = hn::Mul(sg, hn::MulAdd(zv, hn::Sub(one, sg), one));
        st<kF>(hn::MulAdd(hn::Mul(g, yp), dsilu, ld<kF>(d, m, r.dz + l0 + i)), d, m, r.dz + l0 + i);
        g = hn::Mul(g, hn::Mul(zv, sg));
      }
      st<kF>(g, d, m, gy + i);
      dDv = hn::MulAdd(g, uv, dDv);  // masked-off lanes loaded as zero
      auto sp = one;
      if (r.softplus) {
        const auto x = hn::Add(ld<kF>(d, m, r.delta + l0 + i), hn::Set(d, r.bias));
        sp = hn::IfThenElse(hn::Gt(x, hn::Set(d, 20.0f)), one, Sigmoid(d, x));
      }
      st<kF>(sp, d, m, sgd + i);
    });
    // Adjoint recurrence, newest step first; lam holds dLoss/dh_l excluding step l's own output.
    for (int64_t j = n - 1; j >= 0; --j) {
      const int64_t l = l0 + j;
      const float dj = dl[j], uj = r.u[l];
      const auto gyv = hn::Set(d, gy[j]);
      const auto dv = hn::Set(d, dj);
      const auto duv = hn::Set(d, dul[j]);
      const float* hp = j > 0 ? H + (j - 1) * Np : hstart;
      const float* Hj = H + j * Np;
      const float* aj = Abar + j * Np;
      const float* Bl = r.Bt + l * Np;
      const float* Cl = r.Ct + l * Np;
      float* dBl = r.dBt + l * Np;
      float* dCl = r.dCt + l * Np;
      auto accA = hn::Zero(d), accB = hn::Zero(d);
      for (int64_t k = 0; k < Np; k += V) {
        const auto lm = hn::MulAdd(gyv, hn::LoadU(d, Cl + k), hn::LoadU(d, lam + k));
        hn::StoreU(hn::MulAdd(gyv, hn::LoadU(d, Hj + k), hn::LoadU(d, dCl + k)), d, dCl + k);
        const auto a = hn::LoadU(d, aj + k);
        const auto da = hn::Mul(hn::Mul(lm, hn::LoadU(d, hp + k)), a);  // dLoss/d(d A_n) through exp
        hn::StoreU(hn::MulAdd(da, dv, hn::LoadU(d, r.dA + k)), d, r.dA + k);
        accA = hn::MulAdd(da, hn::LoadU(d, r.A + k), accA);
        accB = hn::MulAdd(lm, hn::LoadU(d, Bl + k), accB);
        hn::StoreU(hn::MulAdd(lm, duv, hn::LoadU(d, dBl + k)), d, dBl + k);
        hn::StoreU(hn::Mul(lm, a), d, lam + k);
      }
      const float sB = hn::GetLane(hn::SumOfLanes(d, accB));  // sum_n lam_n B_n
      const float sA = hn::GetLane(hn::SumOfLanes(d, accA));
      r.du[l] += dj * sB + r.D * gy[j];
      const float dd = (sA + uj * sB) * sgd[j];
      r.ddelta[l] += dd;
      dbias += dd;
    }
  }
  *r.dD += hn::GetLane(hn::SumOfLanes(d, dDv));
  *r.dbias += dbias;
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssmkit::core::scan_kernels {

HWY_EXPORT(StateStride);
HWY_EXPORT(ForwardRow);
HWY_EXPORT(BackwardRow);

int64_t scan_state_stride_f32(int64_t N) { return HWY_DYNAMIC_DISPATCH(StateStride)(N); }
void forward_row_f32(const ForwardRowF32& r) { HWY_DYNAMIC_DISPATCH(ForwardRow)(r); }
void backward_row_f32(const BackwardRowF32& r) { HWY_DYNAMIC_DISPATCH(BackwardRow)(r); }
int64_t backward_work_floats(int64_t chunk, int64_t Np) { return 2 * chunk * Np + 8 * chunk + 2 * Np; }

}  // namespace ssmkit::core::scan_kernels
#endif  // HWY_ONCE
