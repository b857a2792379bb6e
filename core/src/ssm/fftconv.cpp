// Causal FFT convolution y = k * u + D u along L, forward next to backward: the fast path (FFTW r2c/c2r on
// length n >= 2L, plans cached per (n, dtype), measured for long F32 transforms; OpenMP over channels H) and
// the reference path (direct O(L^2) sums in double); also FftConvRowsF32, the same F32 convolution one row at
// a time for the S4D layer's fused inference path. Follows ../shared/specs/core-ssm.md §1.4 (forward) and
// §1.6 (backward: correlations via the conjugate spectrum). Shapes: B batch, H channels, L length;
// u, y (B,H,L), k (H,L), D (H).
#include "ssmkit/core/ssm/fftconv.h"

#include "../ops/interleaved_sum.h"
#include "kernel_buffers.h"

#include <fftw3.h>

#include <algorithm>
#include <complex>
#include <map>
#include <type_traits>
#include <vector>

namespace ssmkit::core {

std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

int64_t fftconv_size(int64_t L) {
  if (L <= 0) return 1;
  for (int64_t n = 2 * L;; ++n) {
    int64_t m = n;
    for (int64_t p : {2, 3, 5, 7})
      while (m % p == 0) m /= p;
    if (m == 1) return n;
  }
}

namespace {

// ----------------------------------------------------------------------------------------------------------
// FFTW in float (fftwf_*) and double (fftw_*)

template <class T> struct Fftw;
template <> struct Fftw<float> {
  using Plan = fftwf_plan;
  static Plan plan_r2c(int n, float* in, std::complex<float>* out, unsigned flags) {
    return fftwf_plan_dft_r2c_1d(n, in, reinterpret_cast<fftwf_complex*>(out), flags);
  }
  static Plan plan_c2r(int n, std::complex<float>* in, float* out, unsigned flags) {
    return fftwf_plan_dft_c2r_1d(n, reinterpret_cast<fftwf_complex*>(in), out, flags);
  }
  static void r2c(Plan p, float* in, std::complex<float>* out) {
    fftwf_execute_dft_r2c(p, in, reinterpret_cast<fftwf_complex*>(out));
  }
  static void c2r(Plan p, std::complex<float>* in, float* out) {
    fftwf_execute_dft_c2r(p, reinterpret_cast<fftwf_complex*>(in), out);
  }
  static void destroy(Plan p) { fftwf_destroy_plan(p); }
  static void* alloc(size_t bytes) { return fftwf_malloc(bytes); }
  static void release(void* p) { fftwf_free(p); }
};
template <> struct Fftw<double> {
  using Plan = fftw_plan;
  static Plan plan_r2c(int n, double* in, std::complex<double>* out, unsigned flags) {
    return fftw_plan_dft_r2c_1d(n, in, reinterpret_cast<fftw_complex*>(out), flags);
  }
  static Plan plan_c2r(int n, std::complex<double>* in, double* out, unsigned flags) {
    return fftw_plan_dft_c2r_1d(n, reinterpret_cast<fftw_complex*>(in), out, flags);
  }
  static void r2c(Plan p, double* in, std::complex<double>* out) {
    fftw_execute_dft_r2c(p, in, reinterpret_cast<fftw_complex*>(out));
  }
  static void c2r(Plan p, std::complex<double>* in, double* out) {
    fftw_execute_dft_c2r(p, reinterpret_cast<fftw_complex*>(in), out);
  }
  static void destroy(Plan p) { fftw_destroy_plan(p); }
  static void* alloc(size_t bytes) { return fftw_malloc(bytes); }
  static void release(void* p) { fftw_free(p); }
};

// An FFTW-allocated array (SIMD-aligned like the arrays the plans were made with, as the new-array execute
// functions require). T is float, double or std::complex of them; R the real type.
template <class T, class R> struct FftBuf {
  T* p;
  explicit FftBuf(int64_t n) : p(static_cast<T*>(Fftw<R>::alloc(static_cast<size_t>(n) * sizeof(T)))) {}
  ~FftBuf() { Fftw<R>::release(p); }
  FftBuf(const FftBuf&) = delete;
  FftBuf& operator=(const FftBuf&) = delete;
  T& operator[](int64_t i) { return p[i]; }
};

template <class T> struct FftPlan {
  typename Fftw<T>::Plan r2c, c2r;
};

// Plans by length, destroyed at exit (so leak checkers see nothing left behind).
template <class T> struct FftPlanCache {
  std::map<int64_t, FftPlan<T>> plans;
  FftPlanCache() = default;
  FftPlanCache(const FftPlanCache&) = delete;
  FftPlanCache& operator=(const FftPlanCache&) = delete;
  ~FftPlanCache() {
    for (auto& [n, p] : plans) {
      Fftw<T>::destroy(p.r2c);
      Fftw<T>::destroy(p.c2r);
    }
  }
  auto find(int64_t n) { return plans.find(n); }
  auto end() { return plans.end(); }
  auto emplace(int64_t n, const FftPlan<T>& p) { return plans.emplace(n, p); }
};

// F32 plans from this length on are measured (FFTW_MEASURE, planning capped at kMeasureSeconds per plan,
// once per process and length; the transforms then run 25-40% faster than with FFTW_ESTIMATE's guess). The
// chosen plan is fixed for the process, so results are the same for every thread count and call; another
// process may pick another algorithm (rounding differences only). F64 (gradient checks, references) and
// shorter lengths keep FFTW_ESTIMATE.
constexpr int64_t kMeasureFrom = 4096;
constexpr double kMeasureSeconds = 0.25;

// The r2c and c2r plans of length n, created on first use (under the planner mutex) and kept until exit.
template <class T>
const FftPlan<T>& fft_plan(int64_t n) {
  static FftPlanCache<T> cache;
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  FftBuf<T, T> re(n);
  FftBuf<std::complex<T>, T> sp(n / 2 + 1);
  SSMKIT_CHECK(re.p && sp.p, "fftconv: out of memory for FFT buffers of length ", n);
  const bool measure = std::is_same_v<T, float> && n >= kMeasureFrom;
  const unsigned flags = measure ? FFTW_MEASURE : FFTW_ESTIMATE;  // MEASURE overwrites re / sp only
  if (measure) fftwf_set_timelimit(kMeasureSeconds);
  FftPlan<T> plan{Fftw<T>::plan_r2c(static_cast<int>(n), re.p, sp.p, flags),
                  Fftw<T>::plan_c2r(static_cast<int>(n), sp.p, re.p, flags)};
  if (measure) fftwf_set_timelimit(FFTW_NO_TIMELIMIT);
  SSMKIT_CHECK(plan.r2c && plan.c2r, "fftconv: FFTW could not plan a transform of length ", n);
  return cache.emplace(n, plan).first->second;
}

// a * b and a * conj(b), written out (std::complex's operator* carries an inf/nan rescue path).
template <class T> std::complex<T> cmul(std::complex<T> a, std::complex<T> b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}
template <class T> std::complex<T> cmul_conj(std::complex<T> a, std::complex<T> b) {
  return {a.real() * b.real() + a.imag() * b.imag(), a.imag() * b.real() - a.real() * b.imag()};
}

// ----------------------------------------------------------------------------------------------------------
// argument checks and output buffers

using detail::check_grad;
using detail::check_shape;
using detail::copy_back;
using detail::grad_buffer;
using detail::output_buffer;
using detail::ref_store;

struct ConvSizes {
  int64_t B, H, L;
};

// u (B,H,L), k (H,L), D (H) or undefined; one float dtype.
ConvSizes check_conv_inputs(const char* fn, const Tensor& u, const Tensor& k, const Tensor& D) {
  SSMKIT_CHECK(u.defined() && u.ndim() == 3, fn, ": u must be (B,H,L), got ",
               u.defined() ? shape_str(u.shape()) : std::string("undefined"));
  int64_t B = u.size(0), H = u.size(1), L = u.size(2);
  check_shape(fn, "k", k, {H, L});
  if (D.defined()) check_shape(fn, "D", D, {H});
  DType dt = u.dtype();
  SSMKIT_CHECK(dt == DType::F32 || dt == DType::F64, fn, ": u has dtype ", dtype_name(dt),
               ", expected F32 or F64");
  SSMKIT_CHECK(k.dtype() == dt, fn, ": k has dtype ", dtype_name(k.dtype()), " but u has ", dtype_name(dt));
  SSMKIT_CHECK(!D.defined() || D.dtype() == dt, fn, ": D has dtype ", dtype_name(D.dtype()), " but u has ",
               dtype_name(dt));
  return {B, H, L};
}


// ----------------------------------------------------------------------------------------------------------
// fast path

// k (L) -> kf (n/2+1): the spectrum of the zero-padded kernel row, scaled by 1/n (FFTW's inverse is
// unnormalized). pad (n) is scratch whose [L, n) must be zero on entry and stays zero.
template <class T>
void kernel_spectrum(std::complex<T>* kf, const T* k, T* pad, int64_t L, int64_t n, const FftPlan<T>& plan) {
  std::copy(k, k + L, pad);
  Fftw<T>::r2c(plan.r2c, pad, kf);
  const T scale = T(1) / static_cast<T>(n);
  for (int64_t f = 0; f < n / 2 + 1; ++f) kf[f] *= scale;
}

// uf[f] *= kf[f] for f < nf, and y[t] = out[t] + d u[t] for t < L: the two elementwise loops of a row.
// The F32 versions are compiled twice, for AVX2/FMA and for baseline x86-64, the clone picked at load time.
template <class T>
void spectrum_product(std::complex<T>* uf, const std::complex<T>* kf, int64_t nf) {
  for (int64_t f = 0; f < nf; ++f) uf[f] = cmul(uf[f], kf[f]);
}
template <class T>
void add_skip(T* y, const T* out, const T* u, T d, int64_t L) {
  for (int64_t t = 0; t < L; ++t) y[t] = out[t] + d * u[t];
}
template <>
__attribute__((target_clones("arch=haswell", "default"))) void spectrum_product<float>(
    std::complex<float>* uf, const std::complex<float>* kf, int64_t nf) {
  float* a = reinterpret_cast<float*>(uf);
  const float* b = reinterpret_cast<const float*>(kf);
#pragma omp simd
  for (int64_t f = 0; f < nf; ++f) {
    const float ar = a[2 * f], ai = a[2 * f + 1], br = b[2 * f], bi = b[2 * f + 1];
    a[2 * f] = ar * br - ai * bi;
    a[2 * f + 1] = ar * bi + ai * br;
  }
}
template <>
__attribute__((target_clones("arch=haswell", "default"))) void add_skip<float>(float* y, const float* out,
                                                                                 const float* u, float d, int64_t L) {
#pragma omp simd
  for (int64_t t = 0; t < L; ++t) y[t] = out[t] + d * u[t];
}

// The circular convolution of one row: out (n) = irfft(rfft(u zero-padded to n) kf); its [0, L) is the causal
// convolution. pad (n) has [L, n) zero; uf (n/2+1) is scratch.
template <class T>
void conv_row_transforms(T* out, const T* u, const std::complex<T>* kf, T* pad, std::complex<T>* uf, int64_t L,
                         int64_t n, const FftPlan<T>& plan) {
  std::copy(u, u + L, pad);
  Fftw<T>::r2c(plan.r2c, pad, uf);
  spectrum_product(uf, kf, n / 2 + 1);
  Fftw<T>::c2r(plan.c2r, uf, out);
}

// One row: y[t] = irfft(rfft(u) kf)[t] + d u[t] for t < L. pad (n) has [L, n) zero; out (n) and uf (n/2+1)
// are scratch.
template <class T>
void conv_row(T* y, const T* u, const std::complex<T>* kf, T d, T* pad, T* out, std::complex<T>* uf, int64_t L,
              int64_t n, const FftPlan<T>& plan) {
  conv_row_transforms(out, u, kf, pad, uf, L, n, plan);
  add_skip(y, out, u, d, L);
}

// u (B,H,L), k (H,L), D (H) or null -> y (B,H,L); all contiguous. Each thread takes whole channels: the
// kernel's spectrum once, then the B rows of that channel.
template <class T>
void fftconv_forward_impl(T* y, const T* u, const T* k, const T* D, int64_t B, int64_t H, int64_t L) {
  if (L == 0) return;
  const int64_t n = fftconv_size(L), nf = n / 2 + 1;
  const FftPlan<T>& plan = fft_plan<T>(n);
#pragma omp parallel
  {
    FftBuf<T, T> pad(n), out(n);
    FftBuf<std::complex<T>, T> kf(nf), uf(nf);
    std::fill(pad.p, pad.p + n, T(0));
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      kernel_spectrum(kf.p, k + h * L, pad.p, L, n, plan);
      const T d = D ? D[h] : T(0);
      for (int64_t b = 0; b < B; ++b)
        conv_row(y + (b * H + h) * L, u + (b * H + h) * L, kf.p, d, pad.p, out.p, uf.p, L, n, plan);
    }
  }
}

// dy (B,H,L) -> du (B,H,L), dk (H,L), dD (H) or null, added into; inputs as forward; all contiguous.
// With spectra G, U, K of the zero-padded rows: du = irfft(G conj K)[0,L) + D dy,
// dk = irfft(sum_b G conj U)[0,L), dD = sum dy u (in double). n >= 2L keeps the wrapped lags out of [0,L).
template <class T>
void fftconv_backward_impl(T* du, T* dk, T* dD, const T* dy, const T* u, const T* k, const T* D, int64_t B,
                           int64_t H, int64_t L) {
  if (L == 0) return;
  const int64_t n = fftconv_size(L), nf = n / 2 + 1;
  const FftPlan<T>& plan = fft_plan<T>(n);
  const T scale = T(1) / static_cast<T>(n);
#pragma omp parallel
  {
    FftBuf<T, T> buf(n);
    FftBuf<std::complex<T>, T> kf(nf), uf(nf), gf(nf), dkf(nf);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      std::copy(k + h * L, k + (h + 1) * L, buf.p);
      std::fill(buf.p + L, buf.p + n, T(0));
      Fftw<T>::r2c(plan.r2c, buf.p, kf.p);
      for (int64_t f = 0; f < nf; ++f) {
        kf[f] *= scale;
        dkf[f] = 0;
      }
      const T d = D ? D[h] : T(0);
      double dd = 0;
      for (int64_t b = 0; b < B; ++b) {
        const T* gb = dy + (b * H + h) * L;
        const T* ub = u + (b * H + h) * L;
        T* dub = du + (b * H + h) * L;
        std::copy(gb, gb + L, buf.p);
        std::fill(buf.p + L, buf.p + n, T(0));
        Fftw<T>::r2c(plan.r2c, buf.p, gf.p);
        std::copy(ub, ub + L, buf.p);
        std::fill(buf.p + L, buf.p + n, T(0));
        Fftw<T>::r2c(plan.r2c, buf.p, uf.p);
        for (int64_t f = 0; f < nf; ++f) {
          dkf[f] += cmul_conj(gf[f], uf[f]);
          uf[f] = cmul_conj(gf[f], kf[f]);  // uf now holds the spectrum of du
        }
        Fftw<T>::c2r(plan.c2r, uf.p, buf.p);
        for (int64_t t = 0; t < L; ++t) dub[t] += buf[t] + d * gb[t];
        if (dD) dd += sum8(L, [&](int64_t t) { return static_cast<double>(gb[t]) * static_cast<double>(ub[t]); });
      }
      for (int64_t f = 0; f < nf; ++f) dkf[f] *= scale;
      Fftw<T>::c2r(plan.c2r, dkf.p, buf.p);
      for (int64_t j = 0; j < L; ++j) dk[h * L + j] += buf[j];
      if (dD) dD[h] += static_cast<T>(dd);
    }
  }
}

}  // namespace

// ----------------------------------------------------------------------------------------------------------
// F32 rows for the S4D layer's fused inference path

namespace detail {

FftConvRowsF32::FftConvRowsF32(const float* k, const float* D, int64_t H, int64_t L)
    : H_(H), L_(L), n_(fftconv_size(L)), plan_(nullptr), kf_(nullptr) {
  SSMKIT_CHECK(L > 0, "FftConvRowsF32: L must be > 0, got ", L);
  const int64_t nf = spectrum_stride();
  const FftPlan<float>& plan = fft_plan<float>(n_);
  plan_ = &plan;
  kf_ = static_cast<float*>(Fftw<float>::alloc(static_cast<size_t>(H * nf) * sizeof(std::complex<float>)));
  SSMKIT_CHECK(kf_, "FftConvRowsF32: out of memory for ", H, " spectra of length ", nf);
  std::complex<float>* kf = reinterpret_cast<std::complex<float>*>(kf_);
  const float scale = 1.0f / static_cast<float>(n_);
#pragma omp parallel if (H > 1)
  {
    FftBuf<float, float> pad(n_);
    std::fill(pad.p, pad.p + n_, 0.0f);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      std::complex<float>* kh = kf + h * nf;
      kernel_spectrum(kh, k + h * L, pad.p, L, n_, plan);
      // the skip term d u[t] is the convolution with d at lag 0, whose spectrum is d at every frequency
      if (D)
        for (int64_t f = 0; f < n_ / 2 + 1; ++f) kh[f] += D[h] * scale;
    }
  }
}

FftConvRowsF32::~FftConvRowsF32() { Fftw<float>::release(kf_); }

FftConvRowsF32::Scratch::Scratch(const FftConvRowsF32& conv) {
  const int64_t n = conv.n_;
  pad_ = static_cast<float*>(Fftw<float>::alloc(static_cast<size_t>(n) * sizeof(float)));
  out_ = static_cast<float*>(Fftw<float>::alloc(static_cast<size_t>(n) * sizeof(float)));
  spec_ = static_cast<float*>(Fftw<float>::alloc(static_cast<size_t>(n / 2 + 1) * sizeof(std::complex<float>)));
  SSMKIT_CHECK(pad_ && out_ && spec_, "FftConvRowsF32: out of memory for FFT buffers of length ", n);
  std::fill(pad_, pad_ + n, 0.0f);
}

FftConvRowsF32::Scratch::~Scratch() {
  Fftw<float>::release(pad_);
  Fftw<float>::release(out_);
  Fftw<float>::release(spec_);
}

void FftConvRowsF32::row_gelu(float* y, const float* u, int64_t h, Scratch& s) const {
  SSMKIT_DCHECK(h >= 0 && h < H_, "FftConvRowsF32::row_gelu: channel ", h, " out of [0, ", H_, ")");
  conv_row_transforms(s.out_, u, reinterpret_cast<const std::complex<float>*>(kf_) + h * spectrum_stride(), s.pad_,
                      reinterpret_cast<std::complex<float>*>(s.spec_), L_, n_,
                      *static_cast<const FftPlan<float>*>(plan_));
  gelu_f32(s.out_, y, L_);
}

}  // namespace detail

void fftconv_forward(Tensor& y, const Tensor& u, const Tensor& k, const Tensor& D) {
  const char* fn = "fftconv_forward()";
  auto [B, H, L] = check_conv_inputs(fn, u, k, D);
  DType dt = u.dtype();
  Tensor yb = output_buffer(fn, "y", y, {B, H, L}, dt);
  Tensor uc = u.contiguous(), kc = k.contiguous(), Dc = D.defined() ? D.contiguous() : Tensor{};
  if (dt == DType::F32)
    fftconv_forward_impl<float>(yb.data<float>(), uc.data<float>(), kc.data<float>(),
                                Dc.defined() ? Dc.data<float>() : nullptr, B, H, L);
  else
    fftconv_forward_impl<double>(yb.data<double>(), uc.data<double>(), kc.data<double>(),
                                 Dc.defined() ? Dc.data<double>() : nullptr, B, H, L);
  copy_back(y, yb);
}

void fftconv_backward(Tensor& du, Tensor& dk, Tensor& dD, const Tensor& dy, const Tensor& u, const Tensor& k,
                      const Tensor& D) {
  const char* fn = "fftconv_backward()";
  auto [B, H, L] = check_conv_inputs(fn, u, k, D);
  DType dt = u.dtype();
  check_shape(fn, "dy", dy, {B, H, L});
  SSMKIT_CHECK(dy.dtype() == dt, fn, ": dy has dtype ", dtype_name(dy.dtype()), " but u has ", dtype_name(dt));
  check_grad(fn, "du", du, {B, H, L}, dt);
  check_grad(fn, "dk", dk, {H, L}, dt);
  if (D.defined()) check_grad(fn, "dD", dD, {H}, dt);
  Tensor g_u = grad_buffer(du, {B, H, L}, dt), g_k = grad_buffer(dk, {H, L}, dt);
  Tensor g_D = D.defined() ? grad_buffer(dD, {H}, dt) : Tensor{};
  Tensor gc = dy.contiguous(), uc = u.contiguous(), kc = k.contiguous();
  Tensor Dc = D.defined() ? D.contiguous() : Tensor{};
  if (dt == DType::F32)
    fftconv_backward_impl<float>(g_u.data<float>(), g_k.data<float>(), g_D.defined() ? g_D.data<float>() : nullptr,
                                 gc.data<float>(), uc.data<float>(), kc.data<float>(),
                                 Dc.defined() ? Dc.data<float>() : nullptr, B, H, L);
  else
    fftconv_backward_impl<double>(g_u.data<double>(), g_k.data<double>(),
                                  g_D.defined() ? g_D.data<double>() : nullptr, gc.data<double>(),
                                  uc.data<double>(), kc.data<double>(), Dc.defined() ? Dc.data<double>() : nullptr,
                                  B, H, L);
  copy_back(du, g_u);
  copy_back(dk, g_k);
  if (D.defined()) copy_back(dD, g_D);
}

// ----------------------------------------------------------------------------------------------------------
// reference path: direct sums in double

void fftconv_ref_forward(Tensor& y, const Tensor& u, const Tensor& k, const Tensor& D) {
  const char* fn = "fftconv_ref_forward()";
  auto [B, H, L] = check_conv_inputs(fn, u, k, D);
  std::vector<double> uv = u.to_double_vector(), kv = k.to_double_vector();
  std::vector<double> Dv = D.defined() ? D.to_double_vector() : std::vector<double>(static_cast<size_t>(H), 0.0);
  std::vector<double> yv(uv.size(), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const double* ub = uv.data() + (b * H + h) * L;
      const double* kh = kv.data() + h * L;
      double* yb = yv.data() + (b * H + h) * L;
      for (int64_t t = 0; t < L; ++t) {
        double s = Dv[static_cast<size_t>(h)] * ub[t];
        for (int64_t j = 0; j <= t; ++j) s += kh[j] * ub[t - j];
        yb[t] = s;
      }
    }
  }
  ref_store(fn, "y", y, {B, H, L}, std::move(yv), false);
}

void fftconv_ref_backward(Tensor& du, Tensor& dk, Tensor& dD, const Tensor& dy, const Tensor& u, const Tensor& k,
                          const Tensor& D) {
  const char* fn = "fftconv_ref_backward()";
  auto [B, H, L] = check_conv_inputs(fn, u, k, D);
  check_shape(fn, "dy", dy, {B, H, L});
  if (du.defined()) check_shape(fn, "du", du, {B, H, L});
  if (dk.defined()) check_shape(fn, "dk", dk, {H, L});
  if (D.defined() && dD.defined()) check_shape(fn, "dD", dD, {H});
  std::vector<double> uv = u.to_double_vector(), kv = k.to_double_vector(), gv = dy.to_double_vector();
  std::vector<double> Dv = D.defined() ? D.to_double_vector() : std::vector<double>(static_cast<size_t>(H), 0.0);
  std::vector<double> g_u(uv.size(), 0.0), g_k(kv.size(), 0.0), g_D(static_cast<size_t>(H), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const double* ub = uv.data() + (b * H + h) * L;
      const double* gb = gv.data() + (b * H + h) * L;
      const double* kh = kv.data() + h * L;
      double* dub = g_u.data() + (b * H + h) * L;
      double* dkh = g_k.data() + h * L;
      for (int64_t s = 0; s < L; ++s) {
        double acc = Dv[static_cast<size_t>(h)] * gb[s];
        for (int64_t t = s; t < L; ++t) acc += kh[t - s] * gb[t];
        dub[s] = acc;
        g_D[static_cast<size_t>(h)] += gb[s] * ub[s];
      }
      for (int64_t j = 0; j < L; ++j)
        for (int64_t t = j; t < L; ++t) dkh[j] += gb[t] * ub[t - j];
    }
  }
  ref_store(fn, "du", du, {B, H, L}, std::move(g_u), true);
  ref_store(fn, "dk", dk, {H, L}, std::move(g_k), true);
  if (D.defined()) ref_store(fn, "dD", dD, {H}, std::move(g_D), true);
}

}  // namespace ssmkit::core
