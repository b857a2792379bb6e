// Argument and buffer helpers shared by the S4D and FFT-convolution kernels (private to core/src): shape
// checks naming the op and argument, output and gradient buffers that accept any strides (the kernel writes
// a contiguous buffer and copies back), and the reference paths' F64 result store. Also the F32 pieces that
// the S4D layer's fused inference path (nn/s4d.cpp) takes from ssm/fftconv.cpp and ops/activation.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/core/ssm/s4d.h"
#include "ssmkit/core/tensor.h"

namespace ssmkit::core::detail {

inline void check_shape(const char* fn, const char* name, const Tensor& t, const Shape& want) {
  SSMKIT_CHECK(t.defined(), fn, ": ", name, " is undefined, expected ", shape_str(want));
  SSMKIT_CHECK(t.shape() == want, fn, ": ", name, " must be ", shape_str(want), ", got ", shape_str(t.shape()));
}

// An output the kernel overwrites: allocated when undefined, else checked; a contiguous tensor to write.
inline Tensor output_buffer(const char* fn, const char* name, Tensor& out, const Shape& shape, DType dt) {
  if (!out.defined()) {
    out = Tensor::empty(shape, dt);
    return out;
  }
  check_shape(fn, name, out, shape);
  SSMKIT_CHECK(out.dtype() == dt, fn, ": ", name, " has dtype ", dtype_name(out.dtype()), ", expected ",
               dtype_name(dt));
  return out.is_contiguous() ? out : Tensor::empty(shape, dt);
}

// A gradient the kernel adds into, when defined on entry: must have this shape and dtype. Checked for every
// gradient before any is allocated, so a bad call changes nothing.
inline void check_grad(const char* fn, const char* name, const Tensor& g, const Shape& shape, DType dt) {
  if (!g.defined()) return;
  check_shape(fn, name, g, shape);
  SSMKIT_CHECK(g.dtype() == dt, fn, ": ", name, " has dtype ", dtype_name(g.dtype()), ", expected ",
               dtype_name(dt));
}

// The gradient to add into: allocated (zeros) when undefined, else a contiguous tensor holding its values;
// when that is not `g` itself the caller copies it back (copy_back).
inline Tensor grad_buffer(Tensor& g, const Shape& shape, DType dt) {
  if (!g.defined()) g = Tensor::zeros(shape, dt);
  return g.contiguous();
}

inline void copy_back(Tensor& dst, const Tensor& buf) {
  if (dst.defined() && !dst.same_storage(buf)) dst.copy_from(buf);
}

// Reference outputs: F64 when `g` is undefined, else added into (accumulate) or written into `g`.
inline void ref_store(const char* fn, const char* name, Tensor& g, const Shape& shape, std::vector<double> v,
               bool accumulate) {
  if (!g.defined()) {
    g = Tensor::from_vector(shape, v);
    return;
  }
  check_shape(fn, name, g, shape);
  if (accumulate) {
    std::vector<double> cur = g.to_double_vector();
    for (size_t i = 0; i < v.size(); ++i) v[i] += cur[i];
  }
  g.copy_from(Tensor::from_vector(shape, v));
}

// ----------------------------------------------------------------------------------------------------------
// F32 pieces of the S4D layer's fused inference path

// fftconv_forward's F32 convolution one (b,h) row at a time (defined in ssm/fftconv.cpp): the H kernel spectra
// are computed once here, with the skip term D folded in (d u is the convolution with d at lag 0, so d / n is
// added to every scaled frequency), then row_gelu() may run from any thread with its own Scratch. Same plans as
// fftconv_forward; the skip term rounds differently (through the transforms, relative error ~1e-7).
class FftConvRowsF32 {
 public:
  // k (H,L) contiguous, D (H) or null. Computes the spectra on the calling team's threads (call outside a
  // parallel region).
  FftConvRowsF32(const float* k, const float* D, int64_t H, int64_t L);
  ~FftConvRowsF32();
  FftConvRowsF32(const FftConvRowsF32&) = delete;
  FftConvRowsF32& operator=(const FftConvRowsF32&) = delete;

  // One thread's FFT buffers, aligned as the plans need.
  class Scratch {
   public:
    explicit Scratch(const FftConvRowsF32& conv);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

   private:
    friend class FftConvRowsF32;
    float* pad_;   // (n) zero-padded input, [L, n) kept zero
    float* out_;   // (n) inverse transform
    float* spec_;  // (n/2+1) complex spectrum
  };

  // u (L) of channel h -> y (L) = gelu(c) (exact erf form), c[t] = sum_{s<=t} k[h,t-s] u[s] + D[h] u[t].
  void row_gelu(float* y, const float* u, int64_t h, Scratch& s) const;
  // The interface S4DRecurrenceRowsF32 shares: blocks of one channel.
  int64_t block() const { return 1; }
  void rows_gelu(float* y, const float* u, int64_t h0, Scratch& s) const { row_gelu(y, u, h0, s); }

 private:
  // Complex values between the starts of two spectra: n/2+1 rounded up to 8 (64 bytes), so that every
  // spectrum has the alignment the plans were made with (FFTW's new-array execute needs it).
  int64_t spectrum_stride() const { return (n_ / 2 + 1 + 7) / 8 * 8; }

  int64_t H_, L_, n_;
  const void* plan_;  // the cached r2c/c2r plans of length n_
  float* kf_;         // (H, spectrum_stride()) complex kernel spectra, scaled by 1/n
};

// The same convolution computed by S4D's recurrence (defined in ssm/s4d.cpp, kernel in
// ssm/s4d_recurrence_kernels.cpp), a block of V channels per call: per complex mode s_t = w s_{t-1} + 2 coef u_t
// and y_t = sum over modes of Re s_t + D u_t, so the kernel K is never formed. Costs 6 vector operations per
// (mode, step, V channels) against the FFT's O(log L) per (channel, step): ahead of the FFT for the mode counts
// S4D uses (preferred()). The modes are evaluated in double and rounded once; the kernel corrects the
// float propagation every kChunk steps (relative error ~1e-6 at any L; s4d_recurrence_kernels.h).
class S4DRecurrenceRowsF32 {
 public:
  // Parameters as s4d_kernel_forward (contiguous F32), D (H) or null.
  S4DRecurrenceRowsF32(const float* log_dt, const float* C, const float* log_A_real, const float* A_imag,
                       const float* D, int64_t H, int64_t M, int64_t L, S4DDisc disc, int a_imag_sign);
  // Whether the recurrence beats the FFT convolution for M complex modes on this CPU's vector length.
  static bool preferred(int64_t M);
  int64_t block() const { return V_; }  // channels per rows_gelu() call

  class Scratch {
   public:
    explicit Scratch(const S4DRecurrenceRowsF32& r);

   private:
    friend class S4DRecurrenceRowsF32;
    std::vector<float> work_;
  };

  // u rows (nc,L) of channels [h0, h0 + nc), nc = min(block(), H - h0) -> y rows (nc,L) =
  // gelu(K * u + D u) (exact erf form).
  void rows_gelu(float* y, const float* u, int64_t h0, Scratch& s) const;

 private:
  int64_t H_, M_, L_, V_;
  std::vector<float> modes_;  // (ceil(H/V), 6, M, V): see s4d_kernels::RecurrenceBlockF32
  std::vector<float> D_;      // (ceil(H/V), V)
};

// Highway kernels of ops/activation.cpp on n contiguous floats (x and y may be the same array).
void gelu_f32(const float* x, float* y, int64_t n);  // y = x Phi(x), exact erf form
// y = (a + ba) sigmoid(b + bb): a Conv1d's bias added at its GLU (the same rounding as the bias in the GEMM)
void glu_bias_f32(const float* a, const float* b, float ba, float bb, float* y, int64_t n);

}  // namespace ssmkit::core::detail
