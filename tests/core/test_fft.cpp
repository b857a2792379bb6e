// FFT ops: every transform against a naive O(n^2) DFT in double for odd and even n (crop and zero-pad
// included, along inner and outer dims), the three norm modes, round trips, the ignored imaginary parts of
// irfft's DC/Nyquist bins, F32 against F64, central-difference gradients in double of every op, the complex
// helpers by hand, and argument errors.
#include <cmath>
#include <complex>
#include <functional>
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/fft.h"
#include "ssmkit/core/ops/shape.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;
using V = std::vector<Var>;
using cd = std::complex<double>;

namespace {

const double kPi = 3.14159265358979323846;

// y_k = scale * sum_j x_j exp(sign * 2 pi i j k / n), k < n_out; x zero-padded or cropped to n.
std::vector<cd> dft_ref(std::vector<cd> x, int sign, int64_t n, double scale) {
  x.resize(static_cast<size_t>(n), cd(0, 0));
  std::vector<cd> y(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    cd s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[j] * std::polar(1.0, sign * 2 * kPi * static_cast<double>(j * k % n) / n);
    y[k] = scale * s;
  }
  return y;
}

// Row `r` of a (rows, m) real tensor or a (rows, m, 2) complex one, as complex values.
std::vector<cd> row_of(const Tensor& t, int64_t r, bool complex) {
  std::vector<double> v = t.to_double_vector();
  const int64_t m = t.size(1);
  std::vector<cd> out;
  for (int64_t j = 0; j < m; ++j)
    out.push_back(complex ? cd(v[(r * m + j) * 2], v[(r * m + j) * 2 + 1]) : cd(v[r * m + j], 0));
  return out;
}

double scale_of(const std::string& norm, int64_t n, bool inverse) {
  if (norm == "ortho") return 1 / std::sqrt(static_cast<double>(n));
  if (norm == "backward") return inverse ? 1.0 / n : 1.0;
  return inverse ? 1.0 : 1.0 / n;
}

}  // namespace

TEST(Fft, RfftAndFftMatchNaiveDft) {
  for (int64_t m : {1, 2, 5, 8, 9}) {
    for (int64_t n : {m, m + 3, std::max<int64_t>(1, m - 1)}) {
      for (const std::string norm : {"backward", "ortho", "forward"}) {
        const std::string what = "m=" + std::to_string(m) + " n=" + std::to_string(n) + " " + norm;
        Tensor x = random_tensor({3, m}, 100 + m);
        Tensor y = rfft(Var(x), -1, n, norm).value();
        ASSERT_EQ(y.shape(), (Shape{3, n / 2 + 1, 2})) << what;
        Tensor X = random_tensor({3, m, 2}, 200 + m);
        Tensor f = fft(Var(X), 1, n, norm).value(), fi = ifft(Var(X), -1, n, norm).value();
        ASSERT_EQ(f.shape(), (Shape{3, n, 2})) << what;
        for (int64_t r = 0; r < 3; ++r) {
          std::vector<cd> ry = dft_ref(row_of(x, r, false), -1, n, scale_of(norm, n, false));
          std::vector<cd> gy = row_of(y, r, true);
          for (int64_t k = 0; k <= n / 2; ++k) EXPECT_LT(std::abs(gy[k] - ry[k]), 1e-12) << what << " rfft k=" << k;
          std::vector<cd> rf = dft_ref(row_of(X, r, true), -1, n, scale_of(norm, n, false));
          std::vector<cd> ri = dft_ref(row_of(X, r, true), +1, n, scale_of(norm, n, true));
          std::vector<cd> gf = row_of(f, r, true), gi = row_of(fi, r, true);
          for (int64_t k = 0; k < n; ++k) {
            EXPECT_LT(std::abs(gf[k] - rf[k]), 1e-12) << what << " fft k=" << k;
            EXPECT_LT(std::abs(gi[k] - ri[k]), 1e-12) << what << " ifft k=" << k;
          }
        }
      }
    }
  }
}

TEST(Fft, IrfftMatchesNaiveHermitianSum) {
  for (int64_t n : {1, 2, 3, 6, 7, 10}) {
    for (int64_t m : {n / 2 + 1, n / 2 + 3, std::max<int64_t>(1, n / 2 - 1)}) {
      const std::string what = "n=" + std::to_string(n) + " m=" + std::to_string(m);
      Tensor X = random_tensor({2, m, 2}, 300 + n * 10 + m);
      Tensor y = irfft(Var(X), -1, n, "backward").value();
      ASSERT_EQ(y.shape(), (Shape{2, n})) << what;
      for (int64_t r = 0; r < 2; ++r) {
        // Hermitian extension of the first n/2+1 bins (zero-padded), imag of DC/Nyquist dropped
        std::vector<cd> h = row_of(X, r, true);
        h.resize(static_cast<size_t>(n / 2 + 1), cd(0, 0));
        h[0] = cd(h[0].real(), 0);
        if (n % 2 == 0) h[n / 2] = cd(h[n / 2].real(), 0);
        std::vector<cd> full(static_cast<size_t>(n));
        for (int64_t k = 0; k < n; ++k) full[k] = k <= n / 2 ? h[k] : std::conj(h[n - k]);
        std::vector<cd> want = dft_ref(full, +1, n, 1.0 / n);
        std::vector<double> got = y.to_double_vector();
        for (int64_t j = 0; j < n; ++j) {
          EXPECT_NEAR(got[r * n + j], want[j].real(), 1e-12) << what << " j=" << j;
          EXPECT_NEAR(want[j].imag(), 0.0, 1e-12);
        }
      }
    }
  }
  // default n = 2 (m - 1); the imaginary parts of DC and Nyquist do not matter
  Tensor X = random_tensor({5, 2}, 7), X2 = X.clone();
  X2.at<double>({0, 1}) += 3.0;
  X2.at<double>({4, 1}) -= 2.0;
  Tensor a = irfft(Var(X)).value(), b = irfft(Var(X2)).value();
  EXPECT_EQ(a.shape(), (Shape{8}));
  EXPECT_LT(max_abs_diff(a, b), 1e-14);
}

TEST(Fft, AlongAnOuterDimAndHandValues) {
  // rfft along dim 0 of a (5, 3) tensor equals rfft of its transpose along the last dim
  Tensor x = random_tensor({5, 3}, 8);
  Tensor a = rfft(Var(x), 0).value();
  Tensor b = rfft(Var(x.transpose(0, 1).contiguous()), -1).value();
  EXPECT_EQ(a.shape(), (Shape{3, 3, 2}));
  EXPECT_LT(max_abs_diff(a, b.permute({1, 0, 2})), 1e-14);
  // [1, 2, 3, 4]: DFT = [10, -2+2i, -2, -2-2i]
  Var h(Tensor::from_vector({4}, std::vector<double>{1, 2, 3, 4}));
  std::vector<double> r = rfft(h).value().to_double_vector();
  const std::vector<double> want{10, 0, -2, 2, -2, 0};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(r[i], want[i], 1e-14);
  std::vector<double> o = rfft(h, -1, -1, "ortho").value().to_double_vector();
  EXPECT_NEAR(o[0], 5.0, 1e-14);  // 10 / sqrt(4)
  std::vector<double> fw = rfft(h, -1, -1, "forward").value().to_double_vector();
  EXPECT_NEAR(fw[0], 2.5, 1e-14);  // 10 / 4
}

TEST(Fft, RoundTrips) {
  for (int64_t n : {5, 6, 9, 16}) {
    for (const std::string norm : {"backward", "ortho", "forward"}) {
      Tensor x = random_tensor({2, 3, n}, 400 + n);
      EXPECT_LT(max_abs_diff(irfft(rfft(Var(x), -1, -1, norm), -1, n, norm).value(), x), 1e-13) << n << norm;
      Tensor X = random_tensor({2, n, 3, 2}, 500 + n);
      EXPECT_LT(max_abs_diff(ifft(fft(Var(X), 1, -1, norm), 1, -1, norm).value(), X), 1e-13) << n << norm;
      EXPECT_LT(max_abs_diff(ifft2(fft2(Var(X), {0, 1}, norm), {0, 1}, norm).value(), X), 1e-13) << n << norm;
      Tensor x2 = random_tensor({2, 4, n}, 600 + n);
      EXPECT_LT(max_abs_diff(irfft2(rfft2(Var(x2), norm), n, norm).value(), x2), 1e-13) << n << norm;
    }
  }
}

TEST(Fft, TwoDimensional) {
  // fft2 of a real input (to_complex) holds rfft2's half-spectrum in its first W/2+1 columns
  Tensor x = random_tensor({2, 5, 6}, 9);
  Tensor full = fft2(to_complex(Var(x)), {-2, -1}, "ortho").value();
  Tensor half = rfft2(Var(x), "ortho").value();
  EXPECT_EQ(half.shape(), (Shape{2, 5, 4, 2}));
  EXPECT_LT(max_abs_diff(full.slice(2, 0, 4), half), 1e-13);
  // fft2 over dims (0, 2) equals the naive 2-d DFT: y[k0,k2] = sum x[j0,j2] e^{-2 pi i (j0 k0 / 3 + j2 k2 / 4)}
  Tensor X = random_tensor({3, 2, 4, 2}, 10);
  Tensor Y = fft2(Var(X), {0, 2}).value();
  for (int64_t k0 = 0; k0 < 3; ++k0)
    for (int64_t k2 = 0; k2 < 4; ++k2) {
      cd s = 0;
      for (int64_t j0 = 0; j0 < 3; ++j0)
        for (int64_t j2 = 0; j2 < 4; ++j2)
          s += cd(X.at<double>({j0, 1, j2, 0}), X.at<double>({j0, 1, j2, 1})) *
               std::polar(1.0, -2 * kPi * (static_cast<double>(j0 * k0) / 3 + static_cast<double>(j2 * k2) / 4));
      EXPECT_NEAR(Y.at<double>({k0, 1, k2, 0}), s.real(), 1e-12);
      EXPECT_NEAR(Y.at<double>({k0, 1, k2, 1}), s.imag(), 1e-12);
    }
}

TEST(Fft, Float32FollowsFloat64) {
  Tensor x = random_tensor({4, 3, 37}, 11);
  Tensor a = rfft(Var(x), -1).value(), b = rfft(Var(x.to(DType::F32)), -1).value();
  EXPECT_EQ(b.dtype(), DType::F32);
  EXPECT_LT(max_abs_diff(a, b), 1e-5 * max_abs(a));
  Tensor X = random_tensor({4, 30, 2}, 12);
  EXPECT_LT(max_abs_diff(ifft(Var(X), 1, 45).value(), ifft(Var(X.to(DType::F32)), 1, 45).value()), 1e-6);
  EXPECT_LT(max_abs_diff(irfft(Var(X), 0).value(), irfft(Var(X.to(DType::F32)), 0).value()), 1e-5);
}

TEST(Fft, Gradients) {
  for (int64_t m : {5, 6}) {
    for (const std::string norm : {"backward", "ortho", "forward"}) {
      const std::string tag = " m=" + std::to_string(m) + " " + norm;
      Tensor x = random_tensor({2, m}, 700 + m), X = random_tensor({2, m, 2}, 800 + m);
      for (int64_t n : {m, m - 2, m + 3}) {
        const std::string t = tag + " n=" + std::to_string(n);
        gradcheck_op([n, norm](const V& v) { return rfft(v[0], -1, n, norm); }, {x}, "rfft" + t);
        gradcheck_op([n, norm](const V& v) { return fft(v[0], -1, n, norm); }, {X}, "fft" + t);
        gradcheck_op([n, norm](const V& v) { return ifft(v[0], -1, n, norm); }, {X}, "ifft" + t);
      }
      // irfft: default n, odd and even n, more bins than n/2+1 (cropped) and fewer (zero-padded)
      for (int64_t n : std::vector<int64_t>{-1, 2 * m - 1, 2 * m - 2, 3, 2 * m + 4}) {
        gradcheck_op([n, norm](const V& v) { return irfft(v[0], -1, n, norm); }, {X},
                     "irfft" + tag + " n=" + std::to_string(n));
      }
    }
  }
  Tensor x3 = random_tensor({3, 2, 4}, 13), X3 = random_tensor({3, 2, 4, 2}, 14);
  gradcheck_op([](const V& v) { return rfft(v[0], 0, 4); }, {x3}, "rfft dim 0");
  gradcheck_op([](const V& v) { return irfft(v[0], 0, 5); }, {X3}, "irfft dim 0");
  gradcheck_op([](const V& v) { return fft2(v[0], {0, 2}, "ortho"); }, {X3}, "fft2");
  gradcheck_op([](const V& v) { return ifft2(v[0]); }, {X3}, "ifft2");
  gradcheck_op([](const V& v) { return rfft2(v[0], "forward"); }, {x3}, "rfft2");
  gradcheck_op([](const V& v) { return irfft2(v[0], 7); }, {X3}, "irfft2");
  gradcheck_op([](const V& v) { return fft2(to_complex(v[0])); }, {x3}, "fft2 of a real input");
  // a non-contiguous input
  gradcheck_op([](const V& v) { return fft(permute(v[0], {1, 0, 2, 3}), 0); }, {X3}, "fft of a permuted view");
}

TEST(Fft, ComplexHelpers) {
  // (1+2i)(3+4i) = -5+10i; broadcasting (2,1) x (3) -> (2,3)
  Var a(Tensor::from_vector({2, 1, 2}, std::vector<double>{1, 2, 0, 1}));
  Var b(Tensor::from_vector({3, 2}, std::vector<double>{3, 4, 1, 0, 0, 1}));
  Var p = complex_mul(a, b);
  EXPECT_EQ(p.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(p.value().to_double_vector(), (std::vector<double>{-5, 10, 1, 2, -2, 1, -4, 3, 0, 1, -1, 0}));
  Var z(Tensor::from_vector({3, 2}, std::vector<double>{3, 4, 0, 0, -1, 0}));
  EXPECT_EQ(complex_abs(z).value().to_double_vector(), (std::vector<double>{5, 0, 1}));
  EXPECT_EQ(real(z).value().to_double_vector(), (std::vector<double>{3, 0, -1}));
  EXPECT_EQ(imag(z).value().to_double_vector(), (std::vector<double>{4, 0, 0}));
  EXPECT_EQ(to_complex(real(z)).value().to_double_vector(), (std::vector<double>{3, 0, 0, 0, -1, 0}));
  // |z| has gradient z/|z|, and 0 at z = 0 (PyTorch's sgn)
  Var zg(z.value(), true);
  sum(complex_abs(zg)).backward();
  const std::vector<double> gz = zg.grad().to_double_vector(), gz_want{0.6, 0.8, 0, 0, -1, 0};
  for (size_t i = 0; i < gz_want.size(); ++i) EXPECT_NEAR(gz[i], gz_want[i], 1e-15) << i;
  gradcheck_op([](const V& v) { return complex_mul(v[0], v[1]); },
               {random_tensor({2, 1, 3, 2}, 15), random_tensor({4, 1, 2}, 16)}, "complex_mul");
  gradcheck_op([](const V& v) { return complex_abs(v[0]); }, {random_tensor({3, 4, 2}, 17, 0.2, 1.0)},
               "complex_abs");
  gradcheck_op([](const V& v) { return add(real(v[0]), mul(imag(v[0]), imag(v[0]))); }, {random_tensor({3, 2}, 18)},
               "real/imag");
  gradcheck_op([](const V& v) { return to_complex(v[0]); }, {random_tensor({2, 3}, 19)}, "to_complex");
}

TEST(Fft, Errors) {
  Var x(random_tensor({4, 3}, 20)), X(random_tensor({4, 3, 2}, 21));
  expect_error([&] { irfft(x); }, "irfft: input must be complex, i.e. (..., 2)");
  expect_error([&] { rfft(x, -1, -1, "none"); }, "rfft: unknown norm \"none\"");
  expect_error([&] { rfft(x, -1, 0); }, "rfft: invalid number of data points (0)");
  expect_error([&] { irfft(Var(random_tensor({1, 2}, 22))); }, "irfft: invalid number of data points (0)");
  expect_error([&] { fft(X, 2); }, "fft: dim 2 out of range for a signal of rank 2");
  expect_error([&] { fft2(X, {1, -1}); }, "fft2: dims (1, -1) name the same dim");
  expect_error([&] { complex_mul(X, Var(random_tensor({2, 2}, 23))); }, "cannot broadcast");
  expect_error([&] { rfft(Var(Tensor::zeros({3}, DType::I64))); }, "rfft: input must be F32 or F64, got I64");
}
