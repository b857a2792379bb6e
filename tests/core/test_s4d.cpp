// S4D kernel: hand-computed kernels (ZOH, bilinear, complex mode), the sign convention of SSMKernelDiag, fast
// path vs the direct-exp reference on odd lengths and past several power-table re-anchors, finite-difference
// gradients in double for every input and both discretizations, accumulation, the golden file, the
// S4D-Lin/Inv initializers and shape errors.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <functional>
#include <numbers>

#include "gradcheck.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/ssm/fftconv.h"
#include "ssmkit/core/ssm/s4d.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::error_of;
using ssmkit::test::gradcheck;
using ssmkit::test::random_tensor;
using ssmkit::test::tol_of;

namespace {

struct S4DParams {
  Tensor log_dt, C, log_A_real, A_imag;  // (H), (H,M,2), (H,M), (H,M)
};

S4DParams random_params(int64_t H, int64_t M, uint64_t seed, DType dt = DType::F64, double imag_max = 20) {
  S4DParams p;
  p.log_dt = random_tensor({H}, seed + 1, std::log(1e-3), std::log(1e-1), dt);
  p.C = random_tensor({H, M, 2}, seed + 2, -1, 1, dt);
  p.log_A_real = random_tensor({H, M}, seed + 3, std::log(0.5) - 1, std::log(0.5) + 1, dt);
  p.A_imag = random_tensor({H, M}, seed + 4, 0, imag_max, dt);
  return p;
}

const char* disc_name(S4DDisc d) { return d == S4DDisc::ZOH ? "zoh" : "bilinear"; }

}  // namespace

TEST(S4DKernel, HandComputedRealModeZOH) {
  // H=1, M=1, dt=1, A=-ln 2 (A_imag=0), C=1+5i: exp(z)=1/2, P=(1/2-1)/(-ln 2)=1/(2 ln 2),
  // K[l] = 2 Re(C P 2^-l) = 2^-l / ln 2 (Im C drops out because P and exp(z l) are real).
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor log_dt = Tensor::full({1}, 0.0, dt), C = Tensor::from_vector({1, 1, 2}, std::vector<double>{1, 5}).to(dt);
    Tensor lar = Tensor::full({1, 1}, std::log(std::log(2.0)), dt), ai = Tensor::full({1, 1}, 0.0, dt);
    Tensor K, Kr;
    s4d_kernel_forward(K, log_dt, C, lar, ai, 3);
    s4d_kernel_ref_forward(Kr, log_dt, C, lar, ai, 3);
    double tol = dt == DType::F64 ? 1e-14 : 1e-6;
    const double ln2 = std::log(2.0);
    for (int64_t l = 0; l < 3; ++l) {
      EXPECT_NEAR(K.to_double_vector()[l], std::pow(0.5, l) / ln2, tol) << "l=" << l;
      EXPECT_NEAR(Kr.to_double_vector()[l], std::pow(0.5, l) / ln2, tol) << "l=" << l;
    }
  }
}

TEST(S4DKernel, HandComputedComplexModeZOH) {
  // dt=1, A=-ln 2 + i pi/2, C=1: exp(z)=i/2, P=(i/2-1)/A = 0.501567.. + 0.415293..i,
  // K = [2 Re P, 2 Re(P i/2), 2 Re(P (-1/4))] = [2 Re P, -Im P, -Re P / 2].
  Tensor log_dt = Tensor::full({1}, 0.0, DType::F64), C = Tensor::from_vector({1, 1, 2}, std::vector<double>{1, 0});
  Tensor lar = Tensor::full({1, 1}, std::log(std::log(2.0)), DType::F64);
  Tensor ai = Tensor::full({1, 1}, std::numbers::pi / 2, DType::F64);
  Tensor K;
  s4d_kernel_forward(K, log_dt, C, lar, ai, 3);
  std::complex<double> P = std::complex<double>(-1, 0.5) / std::complex<double>(-std::log(2.0), std::numbers::pi / 2);
  EXPECT_NEAR(P.real(), 0.501567, 1e-6);
  EXPECT_NEAR(P.imag(), 0.415293, 1e-6);
  EXPECT_NEAR(K.at<double>({0, 0}), 2 * P.real(), 1e-14);
  EXPECT_NEAR(K.at<double>({0, 1}), -P.imag(), 1e-14);
  EXPECT_NEAR(K.at<double>({0, 2}), -P.real() / 2, 1e-14);
}

TEST(S4DKernel, HandComputedBilinear) {
  // dt=1, A=-1, C=1: dA = (1 - 1/2)/(1 + 1/2) = 1/3, coef = dt/(1 + 1/2) = 2/3, K[l] = 2 (2/3) 3^-l.
  Tensor log_dt = Tensor::full({1}, 0.0, DType::F64), C = Tensor::from_vector({1, 1, 2}, std::vector<double>{1, 0});
  Tensor lar = Tensor::full({1, 1}, 0.0, DType::F64), ai = Tensor::full({1, 1}, 0.0, DType::F64);
  Tensor K, Kr;
  s4d_kernel_forward(K, log_dt, C, lar, ai, 3, S4DDisc::Bilinear);
  s4d_kernel_ref_forward(Kr, log_dt, C, lar, ai, 3, S4DDisc::Bilinear);
  const double want[3] = {4.0 / 3, 4.0 / 9, 4.0 / 27};
  for (int64_t l = 0; l < 3; ++l) {
    EXPECT_NEAR(K.at<double>({0, l}), want[l], 1e-14);
    EXPECT_NEAR(Kr.at<double>({0, l}), want[l], 1e-14);
  }
}

TEST(S4DKernel, FullConventionNegatesImagA) {
  // SSMKernelDiag (sign -1) with A_imag equals s4d.py (sign +1) with -A_imag; and differs from +A_imag.
  S4DParams p = random_params(3, 4, 5);
  std::vector<double> v = p.A_imag.to_double_vector();
  for (double& x : v) x = -x;
  Tensor neg = Tensor::from_vector(p.A_imag.shape(), v);
  for (S4DDisc disc : {S4DDisc::ZOH, S4DDisc::Bilinear}) {
    Tensor Kfull, Kmin, Kplus;
    s4d_kernel_forward(Kfull, p.log_dt, p.C, p.log_A_real, p.A_imag, 50, disc, kS4DSignFull);
    s4d_kernel_forward(Kmin, p.log_dt, p.C, p.log_A_real, neg, 50, disc, kS4DSignMinimal);
    s4d_kernel_forward(Kplus, p.log_dt, p.C, p.log_A_real, p.A_imag, 50, disc, kS4DSignMinimal);
    EXPECT_LT(max_abs_diff(Kfull, Kmin), 1e-13) << disc_name(disc);
    EXPECT_GT(max_abs_diff(Kfull, Kplus), 1e-3) << disc_name(disc);
  }
}

TEST(S4DKernel, FastMatchesReferenceOddLengths) {
  for (int64_t L : {1, 7, 100, 333})
    for (S4DDisc disc : {S4DDisc::ZOH, S4DDisc::Bilinear})
      for (int sign : {kS4DSignMinimal, kS4DSignFull})
        for (DType dt : {DType::F64, DType::F32}) {
          S4DParams p = random_params(3, 5, 100 + L, dt);
          Tensor K, Kr;
          s4d_kernel_forward(K, p.log_dt, p.C, p.log_A_real, p.A_imag, L, disc, sign);
          s4d_kernel_ref_forward(Kr, p.log_dt, p.C, p.log_A_real, p.A_imag, L, disc, sign);
          ASSERT_EQ(K.dtype(), dt);
          ASSERT_EQ(K.shape(), (Shape{3, L}));
          // F32: the sums are done in double and rounded once
          double rel = dt == DType::F64 ? 1e-12 : 1e-6;
          EXPECT_LT(max_abs_diff(K, Kr), tol_of(Kr, rel))
              << "L=" << L << " " << disc_name(disc) << " sign=" << sign << " " << dtype_name(dt);

          Tensor gK = random_tensor({3, L}, 200 + L, -1, 1, dt);
          Tensor d1, d2, d3, d4, r1, r2, r3, r4;
          s4d_kernel_backward(d1, d2, d3, d4, gK, p.log_dt, p.C, p.log_A_real, p.A_imag, disc, sign);
          s4d_kernel_ref_backward(r1, r2, r3, r4, gK, p.log_dt, p.C, p.log_A_real, p.A_imag, disc, sign);
          ASSERT_EQ(d2.dtype(), dt);
          double grel = dt == DType::F64 ? 1e-10 : 1e-6;
          EXPECT_LT(max_abs_diff(d1, r1), tol_of(r1, grel)) << "dlog_dt L=" << L << " " << disc_name(disc);
          EXPECT_LT(max_abs_diff(d2, r2), tol_of(r2, grel)) << "dC L=" << L << " " << disc_name(disc);
          EXPECT_LT(max_abs_diff(d3, r3), tol_of(r3, grel)) << "dlog_A_real L=" << L << " " << disc_name(disc);
          EXPECT_LT(max_abs_diff(d4, r4), tol_of(r4, grel)) << "dA_imag L=" << L << " " << disc_name(disc);
        }
}

TEST(S4DKernel, LongKernelMatchesReference) {
  // Past many re-anchoring blocks, with S4D-Inv frequencies (large Im A) and dt up to 0.1.
  Tensor log_dt = Tensor::empty({4}), C = Tensor::empty({4, 16, 2}), lar = Tensor::empty({4, 16}),
         ai = Tensor::empty({4, 16});
  s4d_init(log_dt, C, lar, ai, S4DInit::Inv, 3);
  Tensor K, Kr;
  s4d_kernel_forward(K, log_dt, C, lar, ai, 4097);
  s4d_kernel_ref_forward(Kr, log_dt, C, lar, ai, 4097);
  double err = max_abs_diff(K, Kr);
  std::printf("S4D-Inv L=4097 F32 kernel: max err %.3g (max |K| %.3g)\n", err, max_abs(Kr));
  EXPECT_LT(err, tol_of(Kr, 1e-6));
}

TEST(S4DKernel, PowerTablesStayExactOverLongKernels) {
  // The fast path's phases are products of a 64-step power table and block anchors re-evaluated every 64
  // blocks: at L = 2 * 4096 + 77 (two re-anchors and a partial block), F64 forward and backward match the
  // direct exp of every (n, l) to double precision, for both discretizations.
  const int64_t L = 2 * 4096 + 77;
  for (S4DDisc disc : {S4DDisc::ZOH, S4DDisc::Bilinear}) {
    S4DParams p = random_params(2, 4, 77, DType::F64, 300);
    Tensor K, Kr;
    s4d_kernel_forward(K, p.log_dt, p.C, p.log_A_real, p.A_imag, L, disc);
    s4d_kernel_ref_forward(Kr, p.log_dt, p.C, p.log_A_real, p.A_imag, L, disc);
    Tensor gK = random_tensor({2, L}, 78, -1, 1);
    Tensor d1, d2, d3, d4, r1, r2, r3, r4;
    s4d_kernel_backward(d1, d2, d3, d4, gK, p.log_dt, p.C, p.log_A_real, p.A_imag, disc);
    s4d_kernel_ref_backward(r1, r2, r3, r4, gK, p.log_dt, p.C, p.log_A_real, p.A_imag, disc);
    std::printf("S4D L=%ld %s F64: K %.2g, dlog_dt %.2g, dC %.2g, dlog_A_real %.2g, dA_imag %.2g (relative)\n",
                static_cast<long>(L), disc_name(disc), max_abs_diff(K, Kr) / std::max(1.0, max_abs(Kr)),
                max_abs_diff(d1, r1) / std::max(1.0, max_abs(r1)), max_abs_diff(d2, r2) / std::max(1.0, max_abs(r2)),
                max_abs_diff(d3, r3) / std::max(1.0, max_abs(r3)), max_abs_diff(d4, r4) / std::max(1.0, max_abs(r4)));
    EXPECT_LT(max_abs_diff(K, Kr), tol_of(Kr, 1e-11)) << disc_name(disc);
    EXPECT_LT(max_abs_diff(d1, r1), tol_of(r1, 1e-10)) << disc_name(disc);
    EXPECT_LT(max_abs_diff(d2, r2), tol_of(r2, 1e-10)) << disc_name(disc);
    EXPECT_LT(max_abs_diff(d3, r3), tol_of(r3, 1e-10)) << disc_name(disc);
    EXPECT_LT(max_abs_diff(d4, r4), tol_of(r4, 1e-10)) << disc_name(disc);
  }
}

TEST(S4DKernel, ZeroLength) {
  S4DParams p = random_params(2, 3, 1);
  Tensor K;
  s4d_kernel_forward(K, p.log_dt, p.C, p.log_A_real, p.A_imag, 0);
  EXPECT_EQ(K.shape(), (Shape{2, 0}));
  Tensor d1, d2, d3, d4;
  s4d_kernel_backward(d1, d2, d3, d4, Tensor::empty({2, 0}, DType::F64), p.log_dt, p.C, p.log_A_real, p.A_imag);
  EXPECT_EQ(max_abs(d2), 0.0);
}

// Finite differences in double through the fast path, for every input, both discretizations and signs.
TEST(S4DKernel, GradcheckEveryInput) {
  for (S4DDisc disc : {S4DDisc::ZOH, S4DDisc::Bilinear})
    for (int sign : {kS4DSignMinimal, kS4DSignFull}) {
      SCOPED_TRACE(std::string(disc_name(disc)) + " sign " + std::to_string(sign));
      const int64_t H = 2, M = 3, L = 70;  // L > 64 crosses a re-anchoring block
      S4DParams p = random_params(H, M, 9, DType::F64, 4);
      p.log_dt = random_tensor({H}, 10, std::log(0.01), std::log(0.2));
      const Tensor gK = random_tensor({H, L}, 11);
      auto loss = [&]() {
        Tensor K;
        s4d_kernel_forward(K, p.log_dt, p.C, p.log_A_real, p.A_imag, L, disc, sign);
        return dot(K, gK);
      };
      Tensor d_dt, dC, d_ar, d_ai;
      s4d_kernel_backward(d_dt, dC, d_ar, d_ai, gK, p.log_dt, p.C, p.log_A_real, p.A_imag, disc, sign);
      double e1 = gradcheck(loss, p.log_dt, d_dt, "log_dt", 1e-6, 1e-7, 1e-6);
      double e2 = gradcheck(loss, p.C, dC, "C", 1e-6, 1e-7, 1e-6);
      double e3 = gradcheck(loss, p.log_A_real, d_ar, "log_A_real", 1e-6, 1e-7, 1e-6);
      double e4 = gradcheck(loss, p.A_imag, d_ai, "A_imag", 1e-6, 1e-7, 1e-6);
      std::printf("gradcheck %s sign %+d: log_dt %.2g C %.2g log_A_real %.2g A_imag %.2g\n", disc_name(disc), sign,
                  e1, e2, e3, e4);
    }
}

TEST(S4DKernel, BackwardAccumulatesIntoDefinedGradients) {
  S4DParams p = random_params(2, 3, 4);
  Tensor gK = random_tensor({2, 9}, 5);
  Tensor a1, a2, a3, a4;
  s4d_kernel_backward(a1, a2, a3, a4, gK, p.log_dt, p.C, p.log_A_real, p.A_imag);
  Tensor b1 = a1.clone(), b2 = a2.clone(), b3 = a3.clone(), b4 = a4.clone();
  s4d_kernel_backward(b1, b2, b3, b4, gK, p.log_dt, p.C, p.log_A_real, p.A_imag);
  for (auto [a, b] : {std::pair{a1, b1}, {a2, b2}, {a3, b3}, {a4, b4}}) {
    std::vector<double> x = a.to_double_vector(), y = b.to_double_vector();
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], 2 * x[i], 1e-12 * std::max(1.0, std::abs(x[i])));
  }
  // the reference accumulates the same way
  Tensor r1 = a1.clone(), r2 = a2.clone(), r3 = a3.clone(), r4 = a4.clone();
  s4d_kernel_ref_backward(r1, r2, r3, r4, gK, p.log_dt, p.C, p.log_A_real, p.A_imag);
  EXPECT_LT(max_abs_diff(r2, b2), 1e-10);
}

TEST(S4DKernel, StridedInputsAndOutput) {
  // C given as a non-contiguous view, K as a non-contiguous output: same numbers as the contiguous call.
  S4DParams p = random_params(3, 4, 8);
  Tensor Ct = p.C.permute({1, 0, 2}).contiguous().permute({1, 0, 2});
  ASSERT_FALSE(Ct.is_contiguous());
  Tensor K, Kt_store = Tensor::empty({20, 3}, DType::F64);
  Tensor Kt = Kt_store.transpose(0, 1);
  s4d_kernel_forward(K, p.log_dt, p.C, p.log_A_real, p.A_imag, 20);
  s4d_kernel_forward(Kt, p.log_dt, Ct, p.log_A_real, p.A_imag, 20);
  EXPECT_EQ(max_abs_diff(K, Kt), 0.0);
}

TEST(S4DKernel, GoldenZOH) {
  SafetensorsFile f = load_safetensors(ssmkit::test::golden_file("core/s4d_kernel.safetensors"));
  const int64_t L = std::stoll(f.meta("L"));
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor log_dt = f.get("in.log_dt").to(dt), C = f.get("in.C").to(dt);
    Tensor lar = f.get("in.log_A_real").to(dt), ai = f.get("in.A_imag").to(dt);
    Tensor K, d_dt, dC, d_ar, d_ai;
    s4d_kernel_forward(K, log_dt, C, lar, ai, L);
    s4d_kernel_backward(d_dt, dC, d_ar, d_ai, f.get("gout.K").to(dt), log_dt, C, lar, ai);
    // F64 runs the same formulas on the same F32-representable inputs as the golden: agree to ~1e-12
    double rel = dt == DType::F32 ? 1e-4 : 1e-10;
    for (auto [name, mine] : {std::pair<const char*, Tensor>{"out.K", K}, {"grad.log_dt", d_dt}, {"grad.C", dC},
                              {"grad.log_A_real", d_ar}, {"grad.A_imag", d_ai}}) {
      const Tensor& ref = f.get(name);
      double err = max_abs_diff(mine, ref), tol = tol_of(ref, rel);
      std::printf("golden s4d_kernel %s %-16s max err %.3g (tol %.3g, max |ref| %.3g)\n", dtype_name(dt), name, err,
                  tol, max_abs(ref));
      EXPECT_LT(err, tol) << name << " " << dtype_name(dt);
    }
  }
}

TEST(S4DInit, LinAndInvValues) {
  const int64_t H = 3, M = 8;
  const double pi = std::numbers::pi, N = 2 * M;
  for (S4DInit init : {S4DInit::Lin, S4DInit::Inv}) {
    Tensor log_dt = Tensor::empty({H}), C = Tensor::empty({H, M, 2}), lar = Tensor::empty({H, M}),
           ai = Tensor::empty({H, M});
    s4d_init(log_dt, C, lar, ai, init, 42);
    for (int64_t h = 0; h < H; ++h) {
      EXPECT_GE(log_dt.at<float>({h}), std::log(1e-3) - 1e-6);
      EXPECT_LE(log_dt.at<float>({h}), std::log(1e-1) + 1e-6);
      for (int64_t n = 0; n < M; ++n) {
        EXPECT_FLOAT_EQ(lar.at<float>({h, n}), static_cast<float>(std::log(0.5)));
        double want = init == S4DInit::Lin ? pi * n : N / pi * (N / (2 * n + 1) - 1);
        EXPECT_FLOAT_EQ(ai.at<float>({h, n}), static_cast<float>(want)) << "n=" << n;
      }
    }
  }
  // S4D-Inv with N = 16: n=0 -> (16/pi)*15, last mode n=7 -> (16/pi)*(16/15 - 1)
  Tensor log_dt = Tensor::empty({1}), C = Tensor::empty({1, 8, 2}), lar = Tensor::empty({1, 8}), ai = Tensor::empty({1, 8});
  s4d_init(log_dt, C, lar, ai, S4DInit::Inv, 0);
  EXPECT_NEAR(ai.at<float>({0, 0}), 76.39437, 1e-4);
  EXPECT_NEAR(ai.at<float>({0, 7}), 0.3395305, 1e-6);
}

TEST(S4DInit, SeededDtAndComplexNormalC) {
  const int64_t H = 64, M = 32;
  auto make = [&](uint64_t seed) {
    S4DParams p{Tensor::empty({H}, DType::F64), Tensor::empty({H, M, 2}, DType::F64), Tensor::empty({H, M}, DType::F64),
                Tensor::empty({H, M}, DType::F64)};
    s4d_init(p.log_dt, p.C, p.log_A_real, p.A_imag, S4DInit::Lin, seed, 1e-3, 1e-1);
    return p;
  };
  S4DParams a = make(7), b = make(7), c = make(8);
  EXPECT_EQ(max_abs_diff(a.log_dt, b.log_dt), 0.0);
  EXPECT_EQ(max_abs_diff(a.C, b.C), 0.0);
  EXPECT_GT(max_abs_diff(a.C, c.C), 0.1);
  std::vector<double> dts = a.log_dt.to_double_vector();
  double lo = *std::min_element(dts.begin(), dts.end()), hi = *std::max_element(dts.begin(), dts.end());
  EXPECT_GE(lo, std::log(1e-3));
  EXPECT_LT(hi, std::log(1e-1));
  EXPECT_LT(lo, std::log(1e-3) + 0.5);  // 64 draws cover the range
  EXPECT_GT(hi, std::log(1e-1) - 0.5);
  // re and im parts each N(0, 1/2): 4096 draws per part
  std::vector<double> cv = a.C.to_double_vector();
  for (int part = 0; part < 2; ++part) {
    double s = 0, s2 = 0;
    for (size_t i = part; i < cv.size(); i += 2) s += cv[i], s2 += cv[i] * cv[i];
    double n = static_cast<double>(cv.size() / 2), mean = s / n, var = s2 / n - mean * mean;
    EXPECT_NEAR(mean, 0.0, 0.05) << "part " << part;
    EXPECT_NEAR(var, 0.5, 0.05) << "part " << part;
  }
}

TEST(S4DKernel, ShapeAndArgumentErrors) {
  S4DParams p = random_params(2, 3, 1);
  Tensor K;
  Tensor badC = Tensor::empty({2, 3}, DType::F64);
  EXPECT_EQ(error_of([&] { s4d_kernel_forward(K, p.log_dt, badC, p.log_A_real, p.A_imag, 5); }),
            "s4d_kernel_forward(): C must be (2,3,2), got (2,3)");
  Tensor bad_dt = Tensor::empty({3}, DType::F64);
  EXPECT_EQ(error_of([&] { s4d_kernel_forward(K, bad_dt, p.C, p.log_A_real, p.A_imag, 5); }),
            "s4d_kernel_forward(): log_dt must be (2), got (3)");
  EXPECT_NE(error_of([&] { s4d_kernel_forward(K, p.log_dt, p.C, p.log_A_real, p.A_imag.to(DType::F32), 5); })
                .find("must share one dtype"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s4d_kernel_forward(K, p.log_dt, p.C, p.log_A_real, p.A_imag, 5, S4DDisc::ZOH, 0); })
                .find("a_imag_sign must be +1"),
            std::string::npos);
  Tensor wrongK = Tensor::empty({2, 4}, DType::F64);
  EXPECT_EQ(error_of([&] { s4d_kernel_forward(wrongK, p.log_dt, p.C, p.log_A_real, p.A_imag, 5); }),
            "s4d_kernel_forward(): K must be (2,5), got (2,4)");
  Tensor d1, d2, d3, d4;
  EXPECT_EQ(error_of([&] {
              s4d_kernel_backward(d1, d2, d3, d4, Tensor::empty({3, 5}, DType::F64), p.log_dt, p.C, p.log_A_real,
                                  p.A_imag);
            }),
            "s4d_kernel_backward(): dK must be (H,L) with H = 2, got (3,5)");
  Tensor wrong_grad = Tensor::empty({2, 2}, DType::F64);
  EXPECT_EQ(error_of([&] {
              s4d_kernel_backward(d1, d2, wrong_grad, d4, Tensor::empty({2, 5}, DType::F64), p.log_dt, p.C,
                                  p.log_A_real, p.A_imag);
            }),
            "s4d_kernel_backward(): dlog_A_real must be (2,3), got (2,2)");
}

TEST(S4DStep, RecurrenceEqualsConvolution) {
  using ssmkit::test::random_tensor;
  const int64_t Bn = 2, H = 3, M = 4, L = 40;
  for (S4DDisc disc : {S4DDisc::ZOH, S4DDisc::Bilinear}) {
    Tensor log_dt = random_tensor({H}, 1, std::log(0.01), std::log(0.2)), C = random_tensor({H, M, 2}, 2);
    Tensor lar = random_tensor({H, M}, 3, -1.5, 0.5), ai = random_tensor({H, M}, 4, 0, 6);
    Tensor D = random_tensor({H}, 5), u = random_tensor({Bn, H, L}, 6);
    Tensor K, y;
    s4d_kernel_forward(K, log_dt, C, lar, ai, L, disc);
    fftconv_forward(y, u, K, D);
    Tensor state = Tensor::zeros({Bn, H, M, 2}, DType::F64);
    for (int64_t t = 0; t < L; ++t) {
      Tensor yt;
      s4d_step(yt, state, u.select(2, t).contiguous(), log_dt, C, lar, ai, D, disc);
      EXPECT_LT(max_abs_diff(yt, y.select(2, t)), 1e-10) << "t=" << t;
    }
  }
}
