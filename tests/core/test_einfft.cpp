// EinFFT (SiMBA's channel mixer, core/nn/einfft.h): the forward against a direct double DFT evaluation of the
// official formula, the backward by central differences, float against double, module keys and bad inputs.
#include <complex>

#include "gradcheck.h"
#include "ssmkit/core/nn/einfft.h"

using namespace ssmkit;
using core::DType;
using core::Tensor;
using core::Var;
using test::expect_error;
using test::gradcheck_op;
using test::random_tensor;

// ---------------------------------------------------------------------------------------------------------
// EinFFT

namespace {

// The official forward in double, straight from the definition: 2-D DFT over (token, block), two complex
// block layers with ReLU on each part, softshrink of each part, real part of the inverse DFT.
std::vector<double> einfft_reference(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                                     const Tensor& b2, double lambda) {
  using cd = std::complex<double>;
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), nb = 4, bs = C / 4;
  const double pi = 3.14159265358979323846, s = 1.0 / std::sqrt(static_cast<double>(N * nb));
  std::vector<double> out(static_cast<size_t>(B * N * C));
  auto W1 = [&](int p, int64_t k, int64_t d, int64_t e) { return w1.at<double>({p, k, d, e}); };
  auto W2 = [&](int p, int64_t k, int64_t d, int64_t e) { return w2.at<double>({p, k, d, e}); };
  auto shrink = [&](double v) { return v > lambda ? v - lambda : v < -lambda ? v + lambda : 0.0; };
  for (int64_t b = 0; b < B; ++b) {
    std::vector<cd> F(static_cast<size_t>(N * C)), S(static_cast<size_t>(N * C));
    for (int64_t k1 = 0; k1 < N; ++k1)
      for (int64_t k2 = 0; k2 < nb; ++k2)
        for (int64_t d = 0; d < bs; ++d) {
          cd acc = 0;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t j = 0; j < nb; ++j)
              acc += x.at<double>({b, n, j * bs + d}) *
                     std::polar(1.0, -2 * pi * (static_cast<double>(k1 * n) / N + static_cast<double>(k2 * j) / nb));
          F[static_cast<size_t>(k1 * C + k2 * bs + d)] = s * acc;
        }
    for (int64_t k1 = 0; k1 < N; ++k1)
      for (int64_t k = 0; k < nb; ++k) {
        std::vector<double> r1(static_cast<size_t>(bs)), i1(static_cast<size_t>(bs));
        for (int64_t e = 0; e < bs; ++e) {
          double re = b1.at<double>({0, k, e}), im = b1.at<double>({1, k, e});
          for (int64_t d = 0; d < bs; ++d) {
            const cd f = F[static_cast<size_t>(k1 * C + k * bs + d)];
            re += f.real() * W1(0, k, d, e) - f.imag() * W1(1, k, d, e);
            im += f.real() * W1(1, k, d, e) + f.imag() * W1(0, k, d, e);
          }
          r1[static_cast<size_t>(e)] = std::max(re, 0.0);
          i1[static_cast<size_t>(e)] = std::max(im, 0.0);
        }
        for (int64_t e = 0; e < bs; ++e) {
          double re = b2.at<double>({0, k, e}), im = b2.at<double>({1, k, e});
          for (int64_t d = 0; d < bs; ++d) {
            re += r1[static_cast<size_t>(d)] * W2(0, k, d, e) - i1[static_cast<size_t>(d)] * W2(1, k, d, e);
            im += r1[static_cast<size_t>(d)] * W2(1, k, d, e) + i1[static_cast<size_t>(d)] * W2(0, k, d, e);
          }
          S[static_cast<size_t>(k1 * C + k * bs + e)] = cd(shrink(re), shrink(im));
        }
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < nb; ++j)
        for (int64_t d = 0; d < bs; ++d) {
          cd acc = 0;
          for (int64_t k1 = 0; k1 < N; ++k1)
            for (int64_t k2 = 0; k2 < nb; ++k2)
              acc += S[static_cast<size_t>(k1 * C + k2 * bs + d)] *
                     std::polar(1.0, 2 * pi * (static_cast<double>(k1 * n) / N + static_cast<double>(k2 * j) / nb));
          out[static_cast<size_t>((b * N + n) * C + j * bs + d)] = s * acc.real();
        }
  }
  return out;
}

}  // namespace

TEST(EinFFT, MatchesDirectDftOfTheOfficialFormula) {
  const int64_t B = 2, N = 6, C = 12;
  Tensor x = random_tensor({B, N, C}, 20), w1 = random_tensor({2, 4, 3, 3}, 21), b1 = random_tensor({2, 4, 3}, 22, -0.3, 0.3);
  Tensor w2 = random_tensor({2, 4, 3, 3}, 23), b2 = random_tensor({2, 4, 3}, 24, -0.3, 0.3);
  const double lambda = 0.05;
  Tensor y;
  core::einfft_forward(y, nullptr, x, w1, b1, w2, b2, lambda);
  std::vector<double> ref = einfft_reference(x, w1, b1, w2, b2, lambda);
  test::expect_near(y.to_double_vector(), ref, 1e-12, "einfft");
  // the shrink and ReLU masks are active (not an all-linear case)
  core::EinFFTCache c;
  core::einfft_forward(y, &c, x, w1, b1, w2, b2, lambda);
  int zeros = 0;
  for (double v : c.S.to_double_vector()) zeros += v == 0.0;
  for (double v : c.H.to_double_vector()) zeros += v == 0.0;
  EXPECT_GT(zeros, 10);
}

TEST(EinFFT, SingleTokenIsTheBlockDftOnly) {
  // N = 1 (the class token): no FFTW call, only the 4-point DFT across the blocks (scale 1/2)
  Tensor x = random_tensor({1, 1, 8}, 30), w1 = random_tensor({2, 4, 2, 2}, 31), b1 = random_tensor({2, 4, 2}, 32);
  Tensor w2 = random_tensor({2, 4, 2, 2}, 33), b2 = random_tensor({2, 4, 2}, 34);
  Tensor y;
  core::einfft_forward(y, nullptr, x, w1, b1, w2, b2, 0.01);
  test::expect_near(y.to_double_vector(), einfft_reference(x, w1, b1, w2, b2, 0.01), 1e-13, "einfft N=1");
}

TEST(EinFFT, Gradcheck) {
  double err = gradcheck_op(
      [](const std::vector<Var>& v) { return core::einfft(v[0], v[1], v[2], v[3], v[4], 0.05); },
      {random_tensor({2, 5, 8}, 40), random_tensor({2, 4, 2, 2}, 41), random_tensor({2, 4, 2}, 42, -0.3, 0.3),
       random_tensor({2, 4, 2, 2}, 43), random_tensor({2, 4, 2}, 44, -0.3, 0.3)},
      "einfft");
  EXPECT_LT(err, 1e-7);
}

// One image with wide blocks: the transforms split the block columns over tasks (bs 16 -> slices of 8) and,
// with 130 tokens, the complex layers run in row blocks. Forward against the direct DFT, backward by central
// differences on a short sequence of the same width, and the 130-token backward against a batch of four
// copies of the image (one whole-row transform per image, other row blocks): same dx per copy, 4x the
// weight gradients.
TEST(EinFFT, OneImageSplitsColumnsAndRows) {
  const int64_t N = 130, C = 64, bs = 16;
  Tensor x = random_tensor({1, N, C}, 60), w1 = random_tensor({2, 4, bs, bs}, 61, -0.3, 0.3);
  Tensor b1 = random_tensor({2, 4, bs}, 62, -0.3, 0.3), w2 = random_tensor({2, 4, bs, bs}, 63, -0.3, 0.3);
  Tensor b2 = random_tensor({2, 4, bs}, 64, -0.3, 0.3);
  Tensor y;
  core::EinFFTCache c1;
  core::einfft_forward(y, &c1, x, w1, b1, w2, b2, 0.05);
  test::expect_near(y.to_double_vector(), einfft_reference(x, w1, b1, w2, b2, 0.05), 1e-12, "einfft B=1 N=130");

  double err = gradcheck_op(
      [](const std::vector<Var>& v) { return core::einfft(v[0], v[1], v[2], v[3], v[4], 0.05); },
      {random_tensor({1, 3, C}, 65), w1, b1, w2, b2}, "einfft B=1 bs=16");
  EXPECT_LT(err, 1e-7);

  Tensor dy = random_tensor({1, N, C}, 66);
  Tensor dx, dw1, db1, dw2, db2;
  core::einfft_backward(dx, dw1, db1, dw2, db2, dy, c1, w1, w2);
  Tensor x4 = Tensor::zeros({4, N, C}, DType::F64), dy4 = Tensor::zeros({4, N, C}, DType::F64);
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t i = 0; i < N * C; ++i) {
      x4.data<double>()[b * N * C + i] = x.data<double>()[i];
      dy4.data<double>()[b * N * C + i] = dy.data<double>()[i];
    }
  Tensor y4, dx4, dw14, db14, dw24, db24;
  core::EinFFTCache c4;
  core::einfft_forward(y4, &c4, x4, w1, b1, w2, b2, 0.05);
  core::einfft_backward(dx4, dw14, db14, dw24, db24, dy4, c4, w1, w2);
  const std::vector<double> g1 = dx.to_double_vector(), g4 = dx4.to_double_vector();
  for (int64_t b = 0; b < 4; ++b)
    test::expect_near(std::vector<double>(g4.begin() + b * N * C, g4.begin() + (b + 1) * N * C), g1, 1e-11,
                      "einfft dx, copy " + std::to_string(b));
  for (auto [one, four] : {std::pair{dw1, dw14}, std::pair{db1, db14}, std::pair{dw2, dw24}, std::pair{db2, db24}}) {
    std::vector<double> want = one.to_double_vector();
    for (double& v : want) v *= 4;
    test::expect_near(four.to_double_vector(), want, 1e-9, "einfft weight gradient, batch of 4 copies");
  }
}

TEST(EinFFT, FloatMatchesDouble) {
  Tensor x = random_tensor({2, 49, 16}, 50), w1 = random_tensor({2, 4, 4, 4}, 51), b1 = random_tensor({2, 4, 4}, 52);
  Tensor w2 = random_tensor({2, 4, 4, 4}, 53), b2 = random_tensor({2, 4, 4}, 54);
  Tensor y64, y32;
  core::einfft_forward(y64, nullptr, x, w1, b1, w2, b2);
  core::einfft_forward(y32, nullptr, x.to(DType::F32), w1.to(DType::F32), b1.to(DType::F32), w2.to(DType::F32),
                         b2.to(DType::F32));
  EXPECT_LT(core::max_abs_diff(y32, y64), 1e-5 * std::max(1.0, core::max_abs(y64)));
}

// Float32 forward and backward against float64 where the block products take each gemm() path: 2bs = 32
// columns with 130 rows per image (the tile kernel, bias in its accumulators) and 2bs = 160 (the BLAS, bias
// written first), two images so that row blocks cross the image border.
TEST(EinFFT, FloatMatchesDoubleOnBothProductPaths) {
  for (int64_t C : {64, 320}) {
    const int64_t bs = C / 4, N = 130;
    Tensor x = random_tensor({2, N, C}, 70), dy = random_tensor({2, N, C}, 71);
    Tensor w1 = random_tensor({2, 4, bs, bs}, 72, -0.2, 0.2), b1 = random_tensor({2, 4, bs}, 73, -0.2, 0.2);
    Tensor w2 = random_tensor({2, 4, bs, bs}, 74, -0.2, 0.2), b2 = random_tensor({2, 4, bs}, 75, -0.2, 0.2);
    std::vector<Tensor> r64, r32;
    for (DType dt : {DType::F64, DType::F32}) {
      Tensor y, dx, dw1, db1, dw2, db2;
      core::EinFFTCache c;
      core::einfft_forward(y, &c, x.to(dt), w1.to(dt), b1.to(dt), w2.to(dt), b2.to(dt), 0.05);
      core::einfft_backward(dx, dw1, db1, dw2, db2, dy.to(dt), c, w1.to(dt), w2.to(dt));
      (dt == DType::F64 ? r64 : r32) = {y, dx, dw1, db1, dw2, db2};
    }
    const char* names[] = {"y", "dx", "dw1", "db1", "dw2", "db2"};
    for (size_t i = 0; i < r64.size(); ++i)
      EXPECT_LT(core::max_abs_diff(r32[i], r64[i]), 2e-5 * std::max(1.0, core::max_abs(r64[i])))
          << "C " << C << ": " << names[i];
  }
}

TEST(EinFFT, ModuleKeysAndBadInputs) {
  core::Rng rng(1);
  core::EinFFT m(24, rng);
  std::vector<std::string> keys;
  for (auto& [k, t] : m.state_dict()) keys.push_back(k + core::shape_str(t.shape()));
  EXPECT_EQ(keys, (std::vector<std::string>{"complex_weight_1(2,4,6,6)", "complex_weight_2(2,4,6,6)",
                                            "complex_bias_1(2,4,6)", "complex_bias_2(2,4,6)"}));
  expect_error([&] { core::EinFFT(10, rng); }, "multiple of 4");
  Tensor y;
  Tensor w = Tensor::zeros({2, 4, 2, 2}, DType::F64), b = Tensor::zeros({2, 4, 2}, DType::F64);
  expect_error([&] { core::einfft_forward(y, nullptr, random_tensor({1, 3, 6}, 1), w, b, w, b); }, "multiple of 4");
  expect_error([&] { core::einfft_forward(y, nullptr, random_tensor({1, 3, 12}, 1), w, b, w, b); },
               "complex weights must be (2,4,3,3)");
  expect_error([&] { core::einfft_forward(y, nullptr, random_tensor({3, 8}, 1), w, b, w, b); }, "(B,N,C)");
}
