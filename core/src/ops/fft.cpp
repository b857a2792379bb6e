// FFTs as autograd ops on view_as_real tensors (trailing dim 2), forward next to backward, on FFTW with plans
// cached per (n, dtype, kind) and the new-array execute functions (one plan serves every row and thread).
// One kernel, fft_rows, runs a batch of 1-d transforms along a dim: crop/zero-pad the input to the transform
// size, transform, scale (and weight the bins strictly between DC and Nyquist), crop/zero-pad the output.
// Gradients (real adjoints of these linear maps, as PyTorch computes them through view_as_real):
//   fft:   dX = unnormalized inverse DFT of dY, times the forward's scale (ifft likewise with the signs swapped)
//   rfft:  dx_j = s Re sum_{k<=n/2} G_k e^{+2 pi i jk/n} = c2r of G with the interior bins halved
//   irfft: dX_k = s c_k rfft(g)_k with c_k = 2 for interior bins, 1 at DC/Nyquist (whose imag parts get 0)
#include "ssmkit/core/ops/fft.h"

#include <fftw3.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <complex>
#include <map>

#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/shape.h"
#include "ssmkit/core/ssm/fftconv.h"
#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements; below this, loops stay on one thread

// ----------------------------------------------------------------------------------------------------------
// FFTW in float (fftwf_*) and double (fftw_*)

enum class Kind { R2C, C2R, C2C_FWD, C2C_BWD };

template <class T> struct Fftw;
template <> struct Fftw<float> {
  using Plan = fftwf_plan;
  using C = fftwf_complex;
  static Plan plan(Kind k, int n, float* in, float* out) {
    switch (k) {
      case Kind::R2C: return fftwf_plan_dft_r2c_1d(n, in, reinterpret_cast<C*>(out), FFTW_ESTIMATE);
      case Kind::C2R: return fftwf_plan_dft_c2r_1d(n, reinterpret_cast<C*>(in), out, FFTW_ESTIMATE);
      case Kind::C2C_FWD:
        return fftwf_plan_dft_1d(n, reinterpret_cast<C*>(in), reinterpret_cast<C*>(out), FFTW_FORWARD, FFTW_ESTIMATE);
      case Kind::C2C_BWD:
        return fftwf_plan_dft_1d(n, reinterpret_cast<C*>(in), reinterpret_cast<C*>(out), FFTW_BACKWARD,
                                 FFTW_ESTIMATE);
    }
    return nullptr;
  }
  static void execute(Kind k, Plan p, float* in, float* out) {
    if (k == Kind::R2C)
      fftwf_execute_dft_r2c(p, in, reinterpret_cast<C*>(out));
    else if (k == Kind::C2R)
      fftwf_execute_dft_c2r(p, reinterpret_cast<C*>(in), out);
    else
      fftwf_execute_dft(p, reinterpret_cast<C*>(in), reinterpret_cast<C*>(out));
  }
  static void destroy(Plan p) { fftwf_destroy_plan(p); }
  static float* alloc(int64_t n) { return static_cast<float*>(fftwf_malloc(static_cast<size_t>(n) * sizeof(float))); }
  static void release(float* p) { fftwf_free(p); }
};
template <> struct Fftw<double> {
  using Plan = fftw_plan;
  using C = fftw_complex;
  static Plan plan(Kind k, int n, double* in, double* out) {
    switch (k) {
      case Kind::R2C: return fftw_plan_dft_r2c_1d(n, in, reinterpret_cast<C*>(out), FFTW_ESTIMATE);
      case Kind::C2R: return fftw_plan_dft_c2r_1d(n, reinterpret_cast<C*>(in), out, FFTW_ESTIMATE);
      case Kind::C2C_FWD:
        return fftw_plan_dft_1d(n, reinterpret_cast<C*>(in), reinterpret_cast<C*>(out), FFTW_FORWARD, FFTW_ESTIMATE);
      case Kind::C2C_BWD:
        return fftw_plan_dft_1d(n, reinterpret_cast<C*>(in), reinterpret_cast<C*>(out), FFTW_BACKWARD, FFTW_ESTIMATE);
    }
    return nullptr;
  }
  static void execute(Kind k, Plan p, double* in, double* out) {
    if (k == Kind::R2C)
      fftw_execute_dft_r2c(p, in, reinterpret_cast<C*>(out));
    else if (k == Kind::C2R)
      fftw_execute_dft_c2r(p, reinterpret_cast<C*>(in), out);
    else
      fftw_execute_dft(p, reinterpret_cast<C*>(in), reinterpret_cast<C*>(out));
  }
  static void destroy(Plan p) { fftw_destroy_plan(p); }
  static double* alloc(int64_t n) {
    return static_cast<double*>(fftw_malloc(static_cast<size_t>(n) * sizeof(double)));
  }
  static void release(double* p) { fftw_free(p); }
};

// A SIMD-aligned FFTW array of n reals (the alignment the plans were made with, as new-array execute needs).
template <class T> struct FftBuf {
  T* p;
  explicit FftBuf(int64_t n) : p(Fftw<T>::alloc(std::max<int64_t>(n, 1))) {}
  ~FftBuf() { Fftw<T>::release(p); }
  FftBuf(const FftBuf&) = delete;
  FftBuf& operator=(const FftBuf&) = delete;
};

// Plans by (n, kind), destroyed at exit (one thread then, so without the planner mutex, which may be gone).
template <class T> struct PlanCache {
  std::map<std::pair<int64_t, int>, typename Fftw<T>::Plan> plans;
  PlanCache() = default;
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;
  ~PlanCache() {
    for (auto& kv : plans) Fftw<T>::destroy(kv.second);
  }
};

// The plan of a transform of size n and this kind, made on first use under the planner mutex and kept until
// exit. Buffers hold 2n + 2 reals: enough for every kind's input and output.
template <class T>
typename Fftw<T>::Plan fft_plan(Kind kind, int64_t n) {
  static PlanCache<T> cache;
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  const auto key = std::make_pair(n, static_cast<int>(kind));
  auto it = cache.plans.find(key);
  if (it != cache.plans.end()) return it->second;
  FftBuf<T> in(2 * n + 2), out(2 * n + 2);
  SSMKIT_CHECK(in.p && out.p, "fft: out of memory for FFT buffers of length ", n);
  typename Fftw<T>::Plan p = Fftw<T>::plan(kind, static_cast<int>(n), in.p, out.p);
  SSMKIT_CHECK(p, "fft: FFTW could not plan a transform of length ", n);
  return cache.plans.emplace(key, p).first->second;
}

// ----------------------------------------------------------------------------------------------------------
// the batched 1-d kernel

// in (outer, m, inner) of elements with cin reals (1 real, 2 complex), contiguous ->
// out (outer, out_len, inner) of elements with cout reals, contiguous. Per row: the first min(m, n_in)
// input entries, zero-padded to n_in (n for R2C/C2C, n/2+1 bins for C2R); a size-n transform giving n_out
// entries (n/2+1 bins for R2C, n for C2R/C2C); times scale, and times w on the bins 1 .. (n-1)/2 of a
// half-spectrum (the C2R input or the R2C output); the first min(n_out, out_len) written, zeros after.
// The imaginary parts of the DC and (even n) Nyquist bins of a half-spectrum are set to 0.
template <class T>
void fft_rows(T* out, const T* in, int64_t outer, int64_t m, int64_t inner, int64_t out_len, Kind kind, int64_t n,
              double scale, double w) {
  const int64_t cin = kind == Kind::R2C ? 1 : 2, cout = kind == Kind::C2R ? 1 : 2;
  const int64_t half = n / 2 + 1, n_in = kind == Kind::C2R ? half : n, n_out = kind == Kind::R2C ? half : n;
  const int64_t take = std::min(m, n_in), give = std::min(n_out, out_len), rows = outer * inner;
  const int64_t last_interior = (n - 1) / 2;
  const bool half_in = kind == Kind::C2R, half_out = kind == Kind::R2C;
  const typename Fftw<T>::Plan plan = fft_plan<T>(kind, n);
#pragma omp parallel if (rows * n > kParallelMin)
  {
    FftBuf<T> bin(2 * n + 2), bout(2 * n + 2);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = r / inner, i = r % inner;
      T* a = bin.p;
      for (int64_t j = 0; j < take; ++j)
        for (int64_t c = 0; c < cin; ++c) a[j * cin + c] = in[((o * m + j) * inner + i) * cin + c];
      std::fill(a + take * cin, a + n_in * cin, T(0));
      if (half_in) {
        a[1] = 0;
        if (n % 2 == 0) a[2 * (n / 2) + 1] = 0;
        for (int64_t k = 1; k <= last_interior && w != 1.0; ++k) {
          a[2 * k] = static_cast<T>(a[2 * k] * w);
          a[2 * k + 1] = static_cast<T>(a[2 * k + 1] * w);
        }
      }
      Fftw<T>::execute(kind, plan, a, bout.p);
      T* b = bout.p;
      if (half_out) {
        b[1] = 0;
        if (n % 2 == 0) b[2 * (n / 2) + 1] = 0;
      }
      for (int64_t j = 0; j < give; ++j) {
        const double wj = (half_out && j >= 1 && j <= last_interior) ? w * scale : scale;
        for (int64_t c = 0; c < cout; ++c)
          out[((o * out_len + j) * inner + i) * cout + c] = static_cast<T>(b[j * cout + c] * wj);
      }
      for (int64_t j = give; j < out_len; ++j)
        for (int64_t c = 0; c < cout; ++c) out[((o * out_len + j) * inner + i) * cout + c] = T(0);
    }
  }
}

// x (real, or complex (..., 2)), d a logical dim -> the transformed tensor with out_len entries at d.
Tensor fft_kernel(const Tensor& x0, int64_t d, Kind kind, int64_t n, double scale, double w, int64_t out_len) {
  const Tensor x = x0.contiguous();
  const bool cx_in = kind != Kind::R2C, cx_out = kind != Kind::C2R;
  const int64_t lr = x.ndim() - (cx_in ? 1 : 0);
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= x.size(k);
  for (int64_t k = d + 1; k < lr; ++k) inner *= x.size(k);
  Shape out_shape(x.shape().begin(), x.shape().begin() + lr);
  out_shape[d] = out_len;
  if (cx_out) out_shape.push_back(2);
  Tensor out = Tensor::empty(out_shape, x.dtype());
  if (outer * inner == 0 || out_len == 0) return out;
  if (x.dtype() == DType::F64)
    fft_rows<double>(out.data<double>(), x.data<double>(), outer, x.size(d), inner, out_len, kind, n, scale, w);
  else
    fft_rows<float>(out.data<float>(), x.data<float>(), outer, x.size(d), inner, out_len, kind, n, scale, w);
  return out;
}

// ----------------------------------------------------------------------------------------------------------
// argument checks

void check_real(const char* op, const Var& x) {
  detail::check_float_dtype(x, op, "input");
  SSMKIT_CHECK(x.ndim() >= 1, op, ": input must have at least one dim, got ", shape_str(x.shape()));
}

// A complex (view_as_real) tensor: F32/F64 with a trailing dim of 2 and at least `min_logical` dims before it.
void check_complex(const char* op, const Var& X, int64_t min_logical = 1) {
  detail::check_float_dtype(X, op, "input");
  SSMKIT_CHECK(X.ndim() >= min_logical + 1 && X.shape().back() == 2, op,
               ": input must be complex, i.e. (..., 2) with the (re, im) pair last and at least ", min_logical,
               " dim(s) before it, got ", shape_str(X.shape()));
}

int64_t wrap_dim(const char* op, int64_t dim, int64_t nd) {
  const int64_t d = dim < 0 ? dim + nd : dim;
  SSMKIT_CHECK(d >= 0 && d < nd, op, ": dim ", dim, " out of range for a signal of rank ", nd);
  return d;
}

int64_t signal_size(const char* op, int64_t n) {
  SSMKIT_CHECK(n >= 1 && n <= INT_MAX, op, ": invalid number of data points (", n, ") specified");
  return n;
}

// The scale a transform of size n applies under `norm` (inverse: ifft/irfft).
double fft_scale(const char* op, const std::string& norm, int64_t n, bool inverse) {
  const double nn = static_cast<double>(n);
  if (norm == "backward") return inverse ? 1.0 / nn : 1.0;
  if (norm == "ortho") return 1.0 / std::sqrt(nn);
  if (norm == "forward") return inverse ? 1.0 : 1.0 / nn;
  throw Error(detail::concat(op, ": unknown norm \"", norm, "\" (expected backward, ortho or forward)"));
}

// fft and ifft: the forward kind and its adjoint.
Var c2c(const char* op, const Var& X, int64_t dim, int64_t n_arg, const std::string& norm, bool inverse) {
  check_complex(op, X);
  const int64_t d = wrap_dim(op, dim, X.ndim() - 1), m = X.size(d);
  const int64_t n = signal_size(op, n_arg == -1 ? m : n_arg);
  const double s = fft_scale(op, norm, n, inverse);
  const Kind fwd = inverse ? Kind::C2C_BWD : Kind::C2C_FWD, adj = inverse ? Kind::C2C_FWD : Kind::C2C_BWD;
  Tensor y = fft_kernel(X.value(), d, fwd, n, s, 1.0, n);
  return make_result(y, {X}, [d, adj, n, s, m](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{fft_kernel(g, d, adj, n, s, 1.0, m)};
  }, op);
}

}  // namespace

// ----------------------------------------------------------------------------------------------------------
// 1-d transforms

Var rfft(const Var& x, int64_t dim, int64_t n_arg, const std::string& norm) {
  const char* op = "rfft";
  check_real(op, x);
  const int64_t d = wrap_dim(op, dim, x.ndim()), m = x.size(d);
  const int64_t n = signal_size(op, n_arg == -1 ? m : n_arg);
  const double s = fft_scale(op, norm, n, false);
  Tensor y = fft_kernel(x.value(), d, Kind::R2C, n, s, 1.0, n / 2 + 1);
  return make_result(y, {x}, [d, n, s, m](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{fft_kernel(g, d, Kind::C2R, n, s, 0.5, m)};
  }, op);
}

Var irfft(const Var& X, int64_t dim, int64_t n_arg, const std::string& norm) {
  const char* op = "irfft";
  check_complex(op, X);
  const int64_t d = wrap_dim(op, dim, X.ndim() - 1), m = X.size(d);
  const int64_t n = signal_size(op, n_arg == -1 ? 2 * (m - 1) : n_arg);
  const double s = fft_scale(op, norm, n, true);
  Tensor y = fft_kernel(X.value(), d, Kind::C2R, n, s, 1.0, n);
  return make_result(y, {X}, [d, n, s, m](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{fft_kernel(g, d, Kind::R2C, n, s, 2.0, m)};
  }, op);
}

Var fft(const Var& X, int64_t dim, int64_t n, const std::string& norm) { return c2c("fft", X, dim, n, norm, false); }
Var ifft(const Var& X, int64_t dim, int64_t n, const std::string& norm) { return c2c("ifft", X, dim, n, norm, true); }

// ----------------------------------------------------------------------------------------------------------
// 2-d transforms: two 1-d transforms (the scales multiply to the 2-d ones)

namespace {

std::pair<int64_t, int64_t> two_dims(const char* op, const Var& X, const std::vector<int64_t>& dims) {
  check_complex(op, X, 2);
  SSMKIT_CHECK(dims.size() == 2, op, ": dims must name 2 dims, got ", dims.size());
  const int64_t lr = X.ndim() - 1, d0 = wrap_dim(op, dims[0], lr), d1 = wrap_dim(op, dims[1], lr);
  SSMKIT_CHECK(d0 != d1, op, ": dims (", dims[0], ", ", dims[1], ") name the same dim");
  return {d0, d1};
}

}  // namespace

Var fft2(const Var& X, const std::vector<int64_t>& dims, const std::string& norm) {
  auto [d0, d1] = two_dims("fft2", X, dims);
  return fft(fft(X, d1, -1, norm), d0, -1, norm);
}

Var ifft2(const Var& X, const std::vector<int64_t>& dims, const std::string& norm) {
  auto [d0, d1] = two_dims("ifft2", X, dims);
  return ifft(ifft(X, d1, -1, norm), d0, -1, norm);
}

Var rfft2(const Var& x, const std::string& norm) {
  SSMKIT_CHECK(x.ndim() >= 2, "rfft2: input must have at least 2 dims, got ", shape_str(x.shape()));
  return fft(rfft(x, -1, -1, norm), -2, -1, norm);
}

Var irfft2(const Var& X, int64_t n, const std::string& norm) {
  check_complex("irfft2", X, 2);
  return irfft(ifft(X, -2, -1, norm), -1, n, norm);
}

// ----------------------------------------------------------------------------------------------------------
// complex helpers

Var to_complex(const Var& x) {
  detail::check_float_dtype(x, "to_complex", "input");
  Shape s = x.shape();
  s.push_back(2);
  Tensor y = Tensor::zeros(s, x.dtype());
  y.select(-1, 0).copy_from(x.value());
  return make_result(y, {x}, [](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.select(-1, 0).contiguous()};
  }, "to_complex");
}

Var real(const Var& X) {
  check_complex("real", X, 0);
  return select(X, -1, 0);
}

Var imag(const Var& X) {
  check_complex("imag", X, 0);
  return select(X, -1, 1);
}

Var complex_abs(const Var& X) {
  check_complex("complex_abs", X, 0);
  const Tensor xv = X.value().contiguous();
  const Shape out(xv.shape().begin(), xv.shape().end() - 1);
  Tensor y = Tensor::empty(out, xv.dtype());
  const int64_t n = y.numel();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* p = xv.data<T>();
    T* q = y.data<T>();
    for (int64_t i = 0; i < n; ++i) q[i] = std::hypot(p[2 * i], p[2 * i + 1]);
  };
  if (xv.dtype() == DType::F64)
    run(double{});
  else
    run(float{});
  return make_result(y, {X}, [xv, y](const Tensor& g0, const std::vector<bool>&) {
    const Tensor g = g0.contiguous();
    Tensor dx = Tensor::empty(xv.shape(), xv.dtype());
    const int64_t n = y.numel();
    auto run = [&](auto tag) {
      using T = decltype(tag);
      const T* p = xv.data<T>();
      const T* a = y.data<T>();
      const T* pg = g.data<T>();
      T* d = dx.data<T>();
      for (int64_t i = 0; i < n; ++i) {
        const T f = a[i] > 0 ? pg[i] / a[i] : T(0);
        d[2 * i] = f * p[2 * i];
        d[2 * i + 1] = f * p[2 * i + 1];
      }
    };
    if (xv.dtype() == DType::F64)
      run(double{});
    else
      run(float{});
    return std::vector<Tensor>{dx};
  }, "complex_abs");
}

namespace {

// Element strides of the logical dims of a contiguous complex tensor t seen with logical shape `out`
// (0 on broadcast dims), in complex elements.
Shape complex_broadcast_strides(const Tensor& t, const Shape& out) {
  const size_t n = out.size(), k = static_cast<size_t>(t.ndim() - 1);
  Shape st(n, 0);
  int64_t s = 1;
  for (size_t i = k; i-- > 0;) {
    st[n - k + i] = t.shape()[i] == 1 ? 0 : s;
    s *= t.shape()[i];
  }
  return st;
}

// out[o] = a[ia] * (conj_b ? conj(b[ib]) : b[ib]) over the logical shape `out` (a, b contiguous complex).
Tensor cmul_broadcast(const Tensor& a, const Tensor& b, const Shape& out, bool conj_b) {
  Shape s = out;
  s.push_back(2);
  Tensor y = Tensor::empty(s, a.dtype());
  const std::array<Shape, 2> st{complex_broadcast_strides(a, out), complex_broadcast_strides(b, out)};
  const int64_t total = shape_numel(out), nd = static_cast<int64_t>(out.size());
  if (total == 0) return y;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* py = y.data<T>();
    const T sign = conj_b ? T(-1) : T(1);
#pragma omp parallel for schedule(static) if (total > kParallelMin)
    for (int64_t o = 0; o < total; ++o) {
      int64_t ia = 0, ib = 0, rem = o;
      for (int64_t d = nd - 1; d >= 0; --d) {
        const int64_t i = rem % out[d];
        rem /= out[d];
        ia += i * st[0][d];
        ib += i * st[1][d];
      }
      const T ar = pa[2 * ia], ai = pa[2 * ia + 1], br = pb[2 * ib], bi = sign * pb[2 * ib + 1];
      py[2 * o] = ar * br - ai * bi;
      py[2 * o + 1] = ar * bi + ai * br;
    }
  };
  if (a.dtype() == DType::F64)
    run(double{});
  else
    run(float{});
  return y;
}

}  // namespace

Var complex_mul(const Var& a, const Var& b) {
  check_complex("complex_mul", a, 0);
  check_complex("complex_mul", b, 0);
  SSMKIT_CHECK(a.dtype() == b.dtype(), "complex_mul: a has dtype ", dtype_name(a.dtype()), " but b has ",
               dtype_name(b.dtype()));
  const Shape la(a.shape().begin(), a.shape().end() - 1), lb(b.shape().begin(), b.shape().end() - 1);
  const Shape lo = broadcast_shapes(la, lb);
  const Tensor av = a.value().contiguous(), bv = b.value().contiguous();
  Tensor y = cmul_broadcast(av, bv, lo, false);
  return make_result(y, {a, b}, [av, bv, lo](const Tensor& g0, const std::vector<bool>& needs) {
    const Tensor g = g0.contiguous();
    Tensor ga, gb;
    if (needs[0]) ga = sum_to(cmul_broadcast(g, bv, lo, true), av.shape());
    if (needs[1]) gb = sum_to(cmul_broadcast(g, av, lo, true), bv.shape());
    return std::vector<Tensor>{ga, gb};
  }, "complex_mul");
}

}  // namespace ssmkit::core
