// Activations: pointwise forward/derivative pairs and the softmax family along one dimension, each with
// its autograd wrapper. Formulas follow PyTorch's CPU kernels (aten/src/ATen/native/Activation.cpp,
// SoftMax.cpp, GatedLinearUnit.cpp). A tensor is seen as (outer, n, inner) around the reduced dimension;
// threads split the outer*inner rows. Pointwise backward recomputes the derivative from the saved x and y.
// F32 gelu (erf form) and glu run the Highway kernels at the top of this file (AVX-512 / AVX2 / portable,
// chosen at run time; the file is compiled once per target); F64 and the other activations are scalar loops.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/activation.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "simd/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit::core::HWY_NAMESPACE {

// Phi(x) = P(X <= x), X ~ N(0,1), and pdf = phi(x) = exp(-x^2/2) / sqrt(2 pi), in float, from q = Phi(-|x|):
//   |x| < sqrt 2:  q = 1/2 - |x| PA(x^2)                     (PA fit to 1.4e-7 relative, float Horner included)
//   |x| >= sqrt 2: q = exp(-x^2/2) r PB(r - 0.35), r = 1/|x|  (PB fit on |x| in [sqrt 2, 13] to 1.1e-7 relative)
// then Phi(x) = q for x < 0 and 1 - q for x >= 0: no cancellation in the negative tail, which keeps its
// relative accuracy (1 + erf(x/sqrt 2) in float, as PyTorch writes it, rounds to 0 below x = -5.5).
// exp(-x^2/2) splits x^2 = hi + lo (exactly where the target has FMA). |x| is clamped to 13, the fits' range;
// below x = -13, Phi is 0. Coefficients: least-squares fits refined towards minimax, each rounded to float in
// turn (highest power first) and the lower ones refitted.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V NormalCdf(D d, V x, V& pdf) {
  const V a = hn::Min(hn::Abs(x), hn::Set(d, 13.0f));
  const V hi = hn::Mul(a, a);
  const V lo = hn::MulSub(a, a, hi);
  V e = FastExp(d, hn::Mul(hi, hn::Set(d, -0.5f)));
  e = hn::NegMulAdd(hn::Mul(e, hn::Set(d, 0.5f)), lo, e);  // exp(-(hi + lo)/2) = exp(-hi/2) (1 - lo/2)
  pdf = hn::Mul(e, hn::Set(d, 0.398942280401432678f));
  V pa = hn::Set(d, 4.09458835e-07f);
  pa = hn::MulAdd(pa, hi, hn::Set(d, -8.68644838e-06f));
  pa = hn::MulAdd(pa, hi, hn::Set(d, 1.14225506e-04f));
  pa = hn::MulAdd(pa, hi, hn::Set(d, -1.18626538e-03f));
  pa = hn::MulAdd(pa, hi, hn::Set(d, 9.97307524e-03f));
  pa = hn::MulAdd(pa, hi, hn::Set(d, -6.64902925e-02f));
  pa = hn::MulAdd(pa, hi, hn::Set(d, 0.398942292f));
  const V q_small = hn::NegMulAdd(a, pa, hn::Set(d, 0.5f));
  const V sqrt2 = hn::Set(d, 1.41421356f);
  const V r = hn::Div(hn::Set(d, 1.0f), hn::Max(a, sqrt2));
  const V v = hn::Sub(r, hn::Set(d, 0.35f));
  V pb = hn::Set(d, -0.965741992f);
  pb = hn::MulAdd(pb, v, hn::Set(d, -0.12062303f));
  pb = hn::MulAdd(pb, v, hn::Set(d, 1.277408f));
  pb = hn::MulAdd(pb, v, hn::Set(d, -0.970657825f));
  pb = hn::MulAdd(pb, v, hn::Set(d, 0.267790705f));
  pb = hn::MulAdd(pb, v, hn::Set(d, 0.168069139f));
  pb = hn::MulAdd(pb, v, hn::Set(d, -0.311149418f));
  pb = hn::MulAdd(pb, v, hn::Set(d, 0.242273524f));
  pb = hn::MulAdd(pb, v, hn::Set(d, -0.0543607399f));
  pb = hn::MulAdd(pb, v, hn::Set(d, -0.166833565f));
  pb = hn::MulAdd(pb, v, hn::Set(d, 0.361777514f));
  const V q = hn::IfThenElse(hn::Lt(a, sqrt2), q_small, hn::Mul(hn::Mul(e, r), pb));
  const V cdf = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), q, hn::Sub(hn::Set(d, 1.0f), q));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -13.0f)), cdf);
}

// Calls f(d, i, mask, tail) for the vectors of lanes [i, i + V) covering [0, n): two per step (independent
// chains for the out-of-order core to overlap), then one, then the tail with a partial mask (FirstN, for
// masked loads and stores) so that every element goes through the same formula.
template <class F>
HWY_INLINE void for_vectors(int64_t n, F f) {
  const hn::ScalableTag<float> d;
  const int64_t V = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + 2 * V <= n; i += 2 * V) {
    f(d, i, hn::FirstN(d, static_cast<size_t>(V)), false);
    f(d, i + V, hn::FirstN(d, static_cast<size_t>(V)), false);
  }
  for (; i + V <= n; i += V) f(d, i, hn::FirstN(d, static_cast<size_t>(V)), false);
  if (i < n) f(d, i, hn::FirstN(d, static_cast<size_t>(n - i)), true);
}

template <class D, class M>
HWY_INLINE hn::Vec<D> load(D d, M m, const float* p, bool tail) {
  return tail ? hn::MaskedLoad(m, d, p) : hn::LoadU(d, p);
}
template <class D, class M>
HWY_INLINE void store(hn::Vec<D> v, D d, M m, float* p, bool tail) {
  if (tail)
    hn::BlendedStore(v, m, d, p);
  else
    hn::StoreU(v, d, p);
}

// The elementwise bodies: one vector at lane i (a partial one when tail), as functors so that they inline.
struct GeluBody {  // y = x Phi(x)
  const float* HWY_RESTRICT x;
  float* HWY_RESTRICT y;
  template <class D, class M>
  HWY_INLINE void operator()(D d, int64_t i, M m, bool tail) const {
    const auto v = load(d, m, x + i, tail);
    hn::Vec<D> pdf;
    store(hn::Mul(v, NormalCdf(d, v, pdf)), d, m, y + i, tail);
  }
};

struct GeluBackwardBody {  // dx = dy (Phi(x) + x phi(x))
  const float* HWY_RESTRICT dy;
  const float* HWY_RESTRICT x;
  float* HWY_RESTRICT dx;
  template <class D, class M>
  HWY_INLINE void operator()(D d, int64_t i, M m, bool tail) const {
    const auto v = load(d, m, x + i, tail);
    hn::Vec<D> pdf;
    const auto cdf = NormalCdf(d, v, pdf);
    store(hn::Mul(load(d, m, dy + i, tail), hn::MulAdd(v, pdf, cdf)), d, m, dx + i, tail);
  }
};

struct GluBody {  // y = a sigmoid(b)
  const float* HWY_RESTRICT a;
  const float* HWY_RESTRICT b;
  float* HWY_RESTRICT y;
  template <class D, class M>
  HWY_INLINE void operator()(D d, int64_t i, M m, bool tail) const {
    store(hn::Mul(load(d, m, a + i, tail), Sigmoid(d, load(d, m, b + i, tail))), d, m, y + i, tail);
  }
};

struct GluBiasBody {  // y = (a + ba) sigmoid(b + bb)
  const float* HWY_RESTRICT a;
  const float* HWY_RESTRICT b;
  float ba, bb;
  float* HWY_RESTRICT y;
  template <class D, class M>
  HWY_INLINE void operator()(D d, int64_t i, M m, bool tail) const {
    const auto va = hn::Add(load(d, m, a + i, tail), hn::Set(d, ba));
    const auto vb = hn::Add(load(d, m, b + i, tail), hn::Set(d, bb));
    store(hn::Mul(va, Sigmoid(d, vb)), d, m, y + i, tail);
  }
};

struct GluBackwardBody {  // da = dy sigmoid(b), db = dy a sigmoid(b) (1 - sigmoid(b))
  const float* HWY_RESTRICT dy;
  const float* HWY_RESTRICT a;
  const float* HWY_RESTRICT b;
  float* HWY_RESTRICT da;
  float* HWY_RESTRICT db;
  template <class D, class M>
  HWY_INLINE void operator()(D d, int64_t i, M m, bool tail) const {
    const auto s = Sigmoid(d, load(d, m, b + i, tail));
    const auto gs = hn::Mul(load(d, m, dy + i, tail), s);
    store(gs, d, m, da + i, tail);
    store(hn::Mul(hn::Mul(gs, load(d, m, a + i, tail)), hn::Sub(hn::Set(d, 1.0f), s)), d, m, db + i, tail);
  }
};

void GeluF32(const float* x, float* y, int64_t n) { for_vectors(n, GeluBody{x, y}); }
void GeluBackwardF32(const float* dy, const float* x, float* dx, int64_t n) {
  for_vectors(n, GeluBackwardBody{dy, x, dx});
}
void GluF32(const float* a, const float* b, float* y, int64_t n) { for_vectors(n, GluBody{a, b, y}); }
void GluBiasF32(const float* a, const float* b, float ba, float bb, float* y, int64_t n) {
  for_vectors(n, GluBiasBody{a, b, ba, bb, y});
}
void GluBackwardF32(const float* dy, const float* a, const float* b, float* da, float* db, int64_t n) {
  for_vectors(n, GluBackwardBody{dy, a, b, da, db});
}

}  // namespace ssmkit::core::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "ssmkit/core/ops/activation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "dtype_dispatch.h"
#include "ssm/kernel_buffers.h"
#include "ssmkit/core/ops/vec_math.h"

namespace ssmkit::core {

HWY_EXPORT(GeluF32);
HWY_EXPORT(GeluBackwardF32);
HWY_EXPORT(GluF32);
HWY_EXPORT(GluBiasF32);
HWY_EXPORT(GluBackwardF32);

namespace detail {

void gelu_f32(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(GeluF32)(x, y, n); }
void glu_bias_f32(const float* a, const float* b, float ba, float bb, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GluBiasF32)(a, b, ba, bb, y, n);
}

}  // namespace detail

namespace {

using detail::check_float;
using detail::dispatch_float;

// Runs f(row, begin, end) over rows x [0, n) cut into blocks [begin, end) of each row, on the team's threads
// when there is enough work. Blocks are a multiple of every vector length.
template <class F>
void parallel_blocks(int64_t rows, int64_t n, F f) {
  constexpr int64_t kBlock = 1 << 14;
  const int64_t nb = (n + kBlock - 1) / kBlock, items = rows * nb;
#pragma omp parallel for schedule(static) if (rows * n > 65536)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t r = it / nb, b = it % nb;
    f(r, b * kBlock, std::min(n, (b + 1) * kBlock));
  }
}

// ------------------------------------------------------------------------------------------------------
// pointwise: y = f(x) and dx = dy * d(x, y)

template <class F>
Tensor pointwise_forward(const Tensor& x, F f) {
  Tensor y = Tensor::uninitialized(x.shape(), x.dtype());  // every element written
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) py[i] = static_cast<T>(f(px[i]));
  });
  return y;
}

template <class D>
Tensor pointwise_backward(const Tensor& dy0, const Tensor& x, const Tensor& y, D d) {
  const Tensor dy = dy0.contiguous();
  Tensor dx = Tensor::uninitialized(x.shape(), x.dtype());  // every element written
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *pg = dy.data<T>(), *px = x.data<T>(), *py = y.data<T>();
    T* pd = dx.data<T>();
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) pd[i] = pg[i] * static_cast<T>(d(px[i], py[i]));
  });
  return dx;
}

// y = kernel(x, y, n) for an F32 x, in blocks over the threads: kernel is an SIMD array function (vec_silu, ...).
template <class K>
Tensor pointwise_forward_f32(const Tensor& x, K kernel) {
  Tensor y = Tensor::uninitialized(x.shape(), DType::F32);  // every element written
  const float* px = x.data<float>();
  float* py = y.data<float>();
  parallel_blocks(1, x.numel(), [&](int64_t, int64_t b, int64_t e) { kernel(px + b, py + b, e - b); });
  return y;
}

// The autograd op of a pointwise function: y = forward(x contiguous), derivative d(x, y) = f'(x).
template <class Fwd, class D>
Var pointwise_result(const Var& x, const char* op, Fwd forward, D d) {
  check_float(x.value(), op, "input");
  const Tensor xv = x.value().contiguous();
  Tensor y = forward(xv);
  return make_result(y, {x}, [xv, y, d](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{pointwise_backward(g, xv, y, d)};
  }, op);
}

// The same with y[i] = f(x[i]) elementwise.
template <class F, class D>
Var pointwise_op(const Var& x, const char* op, F f, D d) {
  return pointwise_result(x, op, [&f](const Tensor& xv) { return pointwise_forward(xv, f); }, d);
}

template <class T>
T sigmoid_of(T v) {
  // Stable on both sides: never exponentiates a large positive number.
  if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
  const T e = std::exp(v);
  return e / (T(1) + e);
}

// ------------------------------------------------------------------------------------------------------
// layout along one dimension

struct DimLayout {
  int64_t outer, n, inner;  // x viewed as (outer, n, inner), n the size of dim
  int64_t dim;              // wrapped to [0, ndim)
};

DimLayout dim_layout(const Shape& s, int64_t dim, const char* op) {
  const int64_t nd = static_cast<int64_t>(s.size());
  const int64_t lim = std::max<int64_t>(nd, 1);  // a 0-d tensor accepts dim 0 or -1, like PyTorch
  SSMKIT_CHECK(dim >= -lim && dim < lim, op, ": dim ", dim, " out of range for shape ", shape_str(s));
  DimLayout l{1, 1, 1, dim < 0 ? dim + lim : dim};
  if (nd == 0) return l;
  for (int64_t i = 0; i < l.dim; ++i) l.outer *= s[static_cast<size_t>(i)];
  l.n = s[static_cast<size_t>(l.dim)];
  for (int64_t i = l.dim + 1; i < nd; ++i) l.inner *= s[static_cast<size_t>(i)];
  return l;
}

// Row r of (outer, inner) starts at element (r / inner) * n * inner + r % inner, elements `inner` apart.
inline int64_t row_start(int64_t r, const DimLayout& l) { return (r / l.inner) * l.n * l.inner + r % l.inner; }

// x (outer, n, inner) -> y: softmax (log_space = false) or log_softmax (true) along n.
template <class T>
void softmax_kernel(T* y, const T* x, const DimLayout& l, bool log_space) {
  const int64_t rows = l.outer * l.inner, n = l.n, st = l.inner;
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const T* px = x + row_start(r, l);
    T* py = y + row_start(r, l);
    T mx = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, px[j * st]);
    if (!std::isfinite(mx)) mx = T(0);  // all -inf (or an inf): leave the inf/nan to the arithmetic below
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(px[j * st] - mx));
    if (log_space) {
      const T lse = mx + static_cast<T>(std::log(s));
      for (int64_t j = 0; j < n; ++j) py[j * st] = px[j * st] - lse;
    } else {
      const double inv = 1.0 / s;
      for (int64_t j = 0; j < n; ++j) py[j * st] = static_cast<T>(std::exp(static_cast<double>(px[j * st] - mx)) * inv);
    }
  }
}

// softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy), along n.
template <class T>
void softmax_backward_kernel(T* dx, const T* dy, const T* y, const DimLayout& l, bool log_space) {
  const int64_t rows = l.outer * l.inner, n = l.n, st = l.inner;
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = row_start(r, l);
    double s = 0;
    if (log_space) {
      for (int64_t j = 0; j < n; ++j) s += dy[o + j * st];
      for (int64_t j = 0; j < n; ++j) dx[o + j * st] = dy[o + j * st] - std::exp(y[o + j * st]) * static_cast<T>(s);
    } else {
      for (int64_t j = 0; j < n; ++j) s += static_cast<double>(dy[o + j * st]) * y[o + j * st];
      for (int64_t j = 0; j < n; ++j) dx[o + j * st] = y[o + j * st] * (dy[o + j * st] - static_cast<T>(s));
    }
  }
}

Tensor softmax_fwd(const Tensor& x0, int64_t dim, bool log_space, const char* op) {
  check_float(x0, op, "input");
  const Tensor x = x0.contiguous();
  const DimLayout l = dim_layout(x.shape(), dim, op);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T>(y.data<T>(), x.data<T>(), l, log_space);
  });
  return y;
}

Tensor softmax_bwd(const Tensor& dy0, const Tensor& y0, int64_t dim, bool log_space, const char* op) {
  check_float(y0, op, "output");
  SSMKIT_CHECK(dy0.shape() == y0.shape() && dy0.dtype() == y0.dtype(), op, ": gradient ", shape_str(dy0.shape()),
               " does not match the output ", shape_str(y0.shape()));
  const Tensor dy = dy0.contiguous(), y = y0.contiguous();
  const DimLayout l = dim_layout(y.shape(), dim, op);
  Tensor dx = Tensor::empty(y.shape(), y.dtype());
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T>(dx.data<T>(), dy.data<T>(), y.data<T>(), l, log_space);
  });
  return dx;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// pointwise activations

Var relu(const Var& x) {
  return pointwise_op(
      x, "relu", [](auto v) { return v < decltype(v)(0) ? decltype(v)(0) : v; },  // keeps NaN, like PyTorch
      [](auto v, auto) { return v > decltype(v)(0) ? 1 : 0; });
}

Var gelu(const Var& x, const std::string& approximate) {
  SSMKIT_CHECK(approximate == "none" || approximate == "tanh", "gelu: approximate must be \"none\" or \"tanh\", got \"",
               approximate, "\"");
  if (approximate == "none" && x.defined() && x.dtype() == DType::F32) {
    // y = x Phi(x), y' = Phi(x) + x phi(x): the SIMD kernels (NormalCdf above)
    const Tensor xv = x.value().contiguous();
    Tensor y = pointwise_forward_f32(xv, detail::gelu_f32);
    return make_result(y, {x}, [xv](const Tensor& g0, const std::vector<bool>&) {
      const Tensor g = g0.contiguous().to(DType::F32);
      Tensor dx = Tensor::uninitialized(xv.shape(), DType::F32);
      const float *pg = g.data<float>(), *pxv = xv.data<float>();
      float* pd = dx.data<float>();
      parallel_blocks(1, xv.numel(), [&](int64_t, int64_t b, int64_t e) {
        HWY_DYNAMIC_DISPATCH(GeluBackwardF32)(pg + b, pxv + b, pd + b, e - b);
      });
      return std::vector<Tensor>{dx};
    }, "gelu");
  }
  if (approximate == "none") {
    // y = x Phi(x) = x/2 (1 + erf(x / sqrt 2)); y' = Phi(x) + x phi(x)
    return pointwise_op(
        x, "gelu",
        [](auto v) {
          using T = decltype(v);
          return T(0.5) * v * (T(1) + std::erf(v * T(std::numbers::sqrt2 / 2)));
        },
        [](auto v, auto) {
          using T = decltype(v);
          const T cdf = T(0.5) * (T(1) + std::erf(v * T(std::numbers::sqrt2 / 2)));
          const T pdf = std::exp(T(-0.5) * v * v) * T(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
          return cdf + v * pdf;
        });
  }
  // y = x/2 (1 + tanh(k (x + c x^3))), k = sqrt(2/pi), c = 0.044715
  return pointwise_op(
      x, "gelu",
      [](auto v) {
        using T = decltype(v);
        const T k = T(std::numbers::sqrt2 * std::numbers::inv_sqrtpi), c = T(0.044715);
        return T(0.5) * v * (T(1) + std::tanh(k * (v + c * v * v * v)));
      },
      [](auto v, auto) {
        using T = decltype(v);
        const T k = T(std::numbers::sqrt2 * std::numbers::inv_sqrtpi), c = T(0.044715);
        const T t = std::tanh(k * (v + c * v * v * v));
        return T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * k * (T(1) + T(3) * c * v * v);
      });
}

Var silu(const Var& x) {
  if (x.defined() && x.dtype() == DType::F32) {
    // y = x s, s = sigmoid(x); y' = s (1 + x (1 - s)), s recomputed in the backward (vec_math's SIMD kernels)
    const Tensor xv = x.value().contiguous();
    Tensor y = pointwise_forward_f32(xv, [](const float* a, float* b, int64_t n) { vec_silu(a, b, n); });
    return make_result(y, {x}, [xv](const Tensor& g0, const std::vector<bool>&) {
      const Tensor g = g0.contiguous();
      SSMKIT_CHECK(g.dtype() == DType::F32, "silu: gradient dtype ", dtype_name(g.dtype()), ", expected F32");
      Tensor dx = Tensor::uninitialized(xv.shape(), DType::F32);
      const float *pg = g.data<float>(), *pxv = xv.data<float>();
      float* pd = dx.data<float>();
      parallel_blocks(1, xv.numel(), [&](int64_t, int64_t b, int64_t e) {
        vec_sigmoid(pxv + b, pd + b, e - b);
        for (int64_t i = b; i < e; ++i) pd[i] = pg[i] * pd[i] * (1.0f + pxv[i] * (1.0f - pd[i]));
      });
      return std::vector<Tensor>{dx};
    }, "silu");
  }
  return pointwise_op(
      x, "silu", [](auto v) { return v * sigmoid_of(v); },
      [](auto v, auto) {
        const auto s = sigmoid_of(v);
        return s * (decltype(v)(1) + v * (decltype(v)(1) - s));
      });
}

Var sigmoid(const Var& x) {
  // F32 through vec_sigmoid, F64 elementwise; y' = y (1 - y)
  return pointwise_result(
      x, "sigmoid",
      [](const Tensor& xv) {
        return xv.dtype() == DType::F32
                   ? pointwise_forward_f32(xv, [](const float* a, float* b, int64_t n) { vec_sigmoid(a, b, n); })
                   : pointwise_forward(xv, [](auto v) { return sigmoid_of(v); });
      },
      [](auto, auto y) { return y * (decltype(y)(1) - y); });
}

Var tanh(const Var& x) {
  return pointwise_op(
      x, "tanh", [](auto v) { return std::tanh(v); }, [](auto, auto y) { return decltype(y)(1) - y * y; });
}

Var softplus(const Var& x, double beta, double threshold) {
  SSMKIT_CHECK(beta != 0.0, "softplus: beta must be nonzero");
  return pointwise_op(
      x, "softplus",
      [beta, threshold](auto v) {
        using T = decltype(v);
        const T bx = v * T(beta);
        return bx > T(threshold) ? v : static_cast<T>(std::log1p(std::exp(bx)) / T(beta));
      },
      [beta, threshold](auto v, auto) {
        using T = decltype(v);
        const T bx = v * T(beta);
        return bx > T(threshold) ? T(1) : sigmoid_of(bx);
      });
}

Var softshrink(const Var& x, double lambd) {
  SSMKIT_CHECK(lambd >= 0.0, "softshrink: lambd must be >= 0, got ", lambd);
  return pointwise_op(
      x, "softshrink",
      [lambd](auto v) {
        using T = decltype(v);
        const T l = T(lambd);
        return v > l ? v - l : (v < -l ? v + l : T(0));
      },
      [lambd](auto v, auto) {
        using T = decltype(v);
        const T l = T(lambd);
        return (v > l || v < -l) ? T(1) : T(0);
      });
}

// ------------------------------------------------------------------------------------------------------
// softmax family

Tensor softmax_forward(const Tensor& x, int64_t dim) { return softmax_fwd(x, dim, false, "softmax"); }
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim) {
  return softmax_bwd(dy, y, dim, false, "softmax_backward");
}
Tensor log_softmax_forward(const Tensor& x, int64_t dim) { return softmax_fwd(x, dim, true, "log_softmax"); }
Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim) {
  return softmax_bwd(dy, y, dim, true, "log_softmax_backward");
}

Var softmax(const Var& x, int64_t dim) {
  Tensor y = softmax_forward(x.value(), dim);
  return make_result(y, {x}, [y, dim](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{softmax_backward(g, y, dim)};
  }, "softmax");
}

Var log_softmax(const Var& x, int64_t dim) {
  Tensor y = log_softmax_forward(x.value(), dim);
  return make_result(y, {x}, [y, dim](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{log_softmax_backward(g, y, dim)};
  }, "log_softmax");
}

// x (outer, 2H, inner) -> y (outer, H, inner): y = a sigmoid(b), a = x[:, :H], b = x[:, H:].
// Backward: da = dy sigmoid(b), db = dy a sigmoid(b) (1 - sigmoid(b)).
Var glu(const Var& x, int64_t dim) {
  check_float(x.value(), "glu", "input");
  SSMKIT_CHECK(x.ndim() > 0, "glu: input must have at least one dimension");
  const Tensor xv = x.value().contiguous();
  const DimLayout l = dim_layout(xv.shape(), dim, "glu");
  SSMKIT_CHECK(l.n % 2 == 0, "glu: halving dimension must be even, but dimension ", l.dim, " of input ",
               shape_str(xv.shape()), " has size ", l.n);
  const int64_t h = l.n / 2, inner = l.inner, outer = l.outer;
  Shape ys = xv.shape();
  ys[static_cast<size_t>(l.dim)] = h;
  Tensor y = Tensor::uninitialized(ys, xv.dtype());  // every element written
  if (xv.dtype() == DType::F32) {  // each outer row: a and b are contiguous runs of h * inner
    const float* px = xv.data<float>();
    float* py = y.data<float>();
    parallel_blocks(outer, h * inner, [&](int64_t o, int64_t b, int64_t e) {
      const float* pa = px + o * 2 * h * inner;
      HWY_DYNAMIC_DISPATCH(GluF32)(pa + b, pa + h * inner + b, py + o * h * inner + b, e - b);
    });
  } else {
    const double* px = xv.data<double>();
    double* py = y.data<double>();
#pragma omp parallel for schedule(static) if (outer * h * inner > 65536)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < h * inner; ++j) {
        const double a = px[o * 2 * h * inner + j], b = px[o * 2 * h * inner + h * inner + j];
        py[o * h * inner + j] = a * sigmoid_of(b);
      }
  }
  return make_result(y, {x}, [xv, outer, h, inner](const Tensor& g0, const std::vector<bool>&) {
    const Tensor g = g0.contiguous();
    Tensor dx = Tensor::uninitialized(xv.shape(), xv.dtype());  // both halves written
    if (xv.dtype() == DType::F32) {
      const float *px = xv.data<float>(), *pg = g.data<float>();
      float* pd = dx.data<float>();
      parallel_blocks(outer, h * inner, [&](int64_t o, int64_t b, int64_t e) {
        const int64_t ia = o * 2 * h * inner + b, ib = ia + h * inner;
        HWY_DYNAMIC_DISPATCH(GluBackwardF32)(pg + o * h * inner + b, px + ia, px + ib, pd + ia, pd + ib, e - b);
      });
      return std::vector<Tensor>{dx};
    }
    const double *px = xv.data<double>(), *pg = g.data<double>();
    double* pd = dx.data<double>();
#pragma omp parallel for schedule(static) if (outer * h * inner > 65536)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < h * inner; ++j) {
        const int64_t ia = o * 2 * h * inner + j, ib = ia + h * inner;
        const double s = sigmoid_of(px[ib]), gy = pg[o * h * inner + j];
        pd[ia] = gy * s;
        pd[ib] = gy * px[ia] * s * (1.0 - s);
      }
    return std::vector<Tensor>{dx};
  }, "glu");
}

}  // namespace ssmkit::core

#endif  // HWY_ONCE
