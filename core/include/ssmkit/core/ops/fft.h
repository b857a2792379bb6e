// Discrete Fourier transforms as autograd ops, with torch.fft semantics (rfft, irfft, fft, ifft, fft2, ifft2,
// rfft2, irfft2) and the complex helpers SiMBA/FNO-style blocks need (to_complex, complex_mul, real, imag,
// complex_abs). A complex tensor is a real F32/F64 tensor with a trailing dim of 2 (re, im), exactly
// torch.view_as_real; `dim` arguments count the complex tensor's dims without that trailing 2. Gradients are
// those PyTorch reports through view_as_real. FFTW does the transforms (F32 with fftwf, F64 with fftw).
// norm: "backward" (no scale forward, 1/n inverse), "ortho" (1/sqrt(n) both), "forward" (1/n forward).
// Not here: fftn/hfft, fftshift, complex dtypes proper.
#pragma once

#include <string>
#include <vector>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// x (..., m at dim, ...) real -> (..., n/2+1 at dim, ..., 2). The signal is cropped or zero-padded to n
// (n = -1: n = m) first. torch.fft.rfft.
Var rfft(const Var& x, int64_t dim = -1, int64_t n = -1, const std::string& norm = "backward");
// X (..., m at dim, ..., 2) -> real (..., n at dim, ...), n = -1: n = 2 (m - 1). The Hermitian half-spectrum
// is cropped or zero-padded to n/2+1 bins; the imaginary parts of bin 0 and (even n) bin n/2 are ignored
// (their gradient is 0). torch.fft.irfft.
Var irfft(const Var& X, int64_t dim = -1, int64_t n = -1, const std::string& norm = "backward");
// X (..., m at dim, ..., 2) -> (..., n at dim, ..., 2), n = -1: n = m (crop or zero-pad first). torch.fft.fft.
Var fft(const Var& X, int64_t dim = -1, int64_t n = -1, const std::string& norm = "backward");
// Inverse of fft: X (..., m at dim, ..., 2) -> (..., n at dim, ..., 2). torch.fft.ifft.
Var ifft(const Var& X, int64_t dim = -1, int64_t n = -1, const std::string& norm = "backward");

// X (..., 2) complex -> (..., 2): the 1-d transforms over both dims (distinct). torch.fft.fft2 / ifft2.
// For a real input use fft2(to_complex(x), ...).
Var fft2(const Var& X, const std::vector<int64_t>& dims = {-2, -1}, const std::string& norm = "backward");
Var ifft2(const Var& X, const std::vector<int64_t>& dims = {-2, -1}, const std::string& norm = "backward");
// x (..., H, W) real -> (..., H, W/2+1, 2). torch.fft.rfft2.
Var rfft2(const Var& x, const std::string& norm = "backward");
// X (..., H, M, 2) -> real (..., H, n), n = -1: n = 2 (M - 1). torch.fft.irfft2 with s = (H, n).
Var irfft2(const Var& X, int64_t n = -1, const std::string& norm = "backward");

// x (...) real -> (..., 2) with zero imaginary part.
Var to_complex(const Var& x);
// a (A..., 2), b (B..., 2) -> (broadcast(A, B)..., 2): elementwise complex product.
Var complex_mul(const Var& a, const Var& b);
// X (..., 2) -> (...): the real / imaginary part (torch.real / torch.imag).
Var real(const Var& X);
Var imag(const Var& X);
// X (..., 2) -> (...): |X| = sqrt(re^2 + im^2); gradient X/|X|, 0 at 0 (torch.abs of a complex tensor).
Var complex_abs(const Var& X);

}  // namespace ssmkit::core
