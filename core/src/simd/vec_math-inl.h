// Vectorized float math for Highway kernels (private; include after "hwy/highway.h" in a file compiled
// once per target through hwy/foreach_target.h). Per-target include guard as Highway's own -inl headers.
//   FastExp   e^x, Cody-Waite reduction + degree-6 minimax polynomial; relative error < 2e-7 on [-87, 87]
//             (inputs clamped there, so every result is a normal float: e^-87 ~ 1.6e-38, e^87 ~ 6.1e37), no
//             NaN handling. On AVX-512 the clamp is one vrangeps and the 2^r scaling one vscalefps (12
//             operations instead of 14); the same bits on every path.
//   Softplus  log(1 + e^x), = x above 20 as torch.nn.functional.softplus (beta 1, threshold 20).
//   Sigmoid   1 / (1 + e^-x);  Silu  x * sigmoid(x).
// Accuracy against std::exp / std::log1p is tested in tests/core/test_vec_math.cpp on every target.
#if defined(SSMKIT_SIMD_VEC_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SSMKIT_SIMD_VEC_MATH_INL_H_
#undef SSMKIT_SIMD_VEC_MATH_INL_H_
#else
#define SSMKIT_SIMD_VEC_MATH_INL_H_
#endif

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class V = hn::Vec<D>>
HWY_INLINE V FastExp(D d, V x) {
  const hn::RebindToSigned<D> di;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  constexpr bool kAvx512 = sizeof(V) == 64;  // 16 floats: AVX-512's vrangeps and vscalefps below
#else
  constexpr bool kAvx512 = false;
#endif
  // |x| <= 87: every result is a normal float (e^-87 ~ 1.6e-38; a denormal decay would cost a microcode assist
  // in each multiply that reads it: a scan whose d A lay below -87 everywhere ran 17x slower with results down
  // to e^-88). On AVX-512 both clamps are one vrangeps (imm 2: the operand of smaller magnitude, x's sign).
  if constexpr (kAvx512) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    x = V{_mm512_range_ps(x.raw, _mm512_set1_ps(87.0f), 0x2)};
#endif
  } else {
    x = hn::Min(hn::Max(x, hn::Set(d, -87.0f)), hn::Set(d, 87.0f));
  }
  // t = x log2(e) + 1.5 * 2^23: the low mantissa bits of t hold round(x log2 e) as an integer.
  const V magic = hn::Set(d, 12582912.0f);
  const V t = hn::MulAdd(x, hn::Set(d, 1.44269504088896341f), magic);
  const V r = hn::Sub(t, magic);
  V g = hn::NegMulAdd(r, hn::Set(d, 0.693359375f), x);  // x - r ln2, ln2 split in two parts
  g = hn::NegMulAdd(r, hn::Set(d, -2.12194440e-4f), g);
  // e^g on |g| <= ln2 / 2: degree-6 minimax polynomial for the relative error (Remez; 1.9e-9 in exact
  // arithmetic, so the float rounding dominates), one multiply-add fewer than the degree-7 Taylor series.
  V p = hn::Set(d, 1.383679453e-3f);
  p = hn::MulAdd(p, g, hn::Set(d, 8.374856785e-3f));
  p = hn::MulAdd(p, g, hn::Set(d, 4.166822881e-2f));
  p = hn::MulAdd(p, g, hn::Set(d, 1.666641980e-1f));
  p = hn::MulAdd(p, g, hn::Set(d, 4.999999106e-1f));
  p = hn::MulAdd(p, g, hn::Set(d, 1.0f));
  p = hn::MulAdd(p, g, hn::Set(d, 1.0f));
  if constexpr (kAvx512) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    return V{_mm512_scalef_ps(p.raw, r.raw)};  // p 2^r in one instruction, the same bits as the two below
#endif
  }
  // 2^r: shifting t's bits left by 23 leaves exactly r << 23 (|r| <= 126).
  const auto e = hn::ShiftLeft<23>(hn::BitCast(di, t));
  return hn::BitCast(d, hn::Add(hn::BitCast(di, p), e));
}

template <class D, class V = hn::Vec<D>>
HWY_INLINE V Sigmoid(D d, V x) {
  const V one = hn::Set(d, 1.0f);
  return hn::Div(one, hn::Add(one, FastExp(d, hn::Neg(x))));
}

template <class D, class V = hn::Vec<D>>
HWY_INLINE V Silu(D d, V x) {
  return hn::Mul(x, Sigmoid(d, x));
}

template <class D, class V = hn::Vec<D>>
HWY_INLINE V Softplus(D d, V x) {
  const V sp = hn::Log1p(d, FastExp(d, hn::Min(x, hn::Set(d, 20.0f))));
  return hn::IfThenElse(hn::Gt(x, hn::Set(d, 20.0f)), x, sp);
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // SSMKIT_SIMD_VEC_MATH_INL_H_
