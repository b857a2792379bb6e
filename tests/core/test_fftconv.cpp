// FFT convolution: a length-3 case by hand (forward and backward), fast path vs the direct O(L^2) reference on
// odd lengths in F32 and F64 and on a length whose plans are measured (FFTW_MEASURE), finite-difference
// gradients in double for u, k and D, the D-less case, accumulation, strided inputs, thread-count
// independence, FFT sizes, the golden files and shape errors.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "gradcheck.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/ssm/fftconv.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::error_of;
using ssmkit::test::gradcheck;
using ssmkit::test::random_tensor;
using ssmkit::test::tol_of;

TEST(FftConv, HandComputedLength3) {
  // u = [1,2,3], k = [1, 1/2, 1/4], D = 2:
  //   y = [1 + 2*1, 2 + 1/2 + 2*2, 3 + 1 + 1/4 + 2*3] = [3, 6.5, 10.25]
  // dy = [1,1,1]: du[s] = sum_{t>=s} k[t-s] + D = [3.75, 3.5, 3], dk[j] = sum_{t>=j} u[t-j] = [6, 3, 1], dD = 6
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor u = Tensor::from_vector({1, 1, 3}, std::vector<double>{1, 2, 3}).to(dt);
    Tensor k = Tensor::from_vector({1, 3}, std::vector<double>{1, 0.5, 0.25}).to(dt);
    Tensor D = Tensor::full({1}, 2.0, dt), dy = Tensor::full({1, 1, 3}, 1.0, dt);
    double tol = dt == DType::F64 ? 1e-14 : 1e-5;
    for (bool ref : {false, true}) {
      Tensor y, du, dk, dD;
      if (ref) {
        fftconv_ref_forward(y, u, k, D);
        fftconv_ref_backward(du, dk, dD, dy, u, k, D);
      } else {
        fftconv_forward(y, u, k, D);
        fftconv_backward(du, dk, dD, dy, u, k, D);
        EXPECT_EQ(y.dtype(), dt);
        EXPECT_EQ(du.dtype(), dt);
      }
      std::vector<double> yv = y.to_double_vector(), duv = du.to_double_vector(), dkv = dk.to_double_vector();
      const double y_want[3] = {3, 6.5, 10.25}, du_want[3] = {3.75, 3.5, 3}, dk_want[3] = {6, 3, 1};
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(yv[i], y_want[i], tol) << "y[" << i << "] ref=" << ref;
        EXPECT_NEAR(duv[i], du_want[i], tol) << "du[" << i << "] ref=" << ref;
        EXPECT_NEAR(dkv[i], dk_want[i], tol) << "dk[" << i << "] ref=" << ref;
      }
      EXPECT_NEAR(dD.to_double_vector()[0], 6.0, tol);
    }
  }
}

TEST(FftConv, FftSizeIsSmoothAndAtLeast2L) {
  EXPECT_EQ(fftconv_size(1), 2);
  EXPECT_EQ(fftconv_size(3), 6);
  EXPECT_EQ(fftconv_size(333), 672);  // 666..671 have a prime factor > 7
  EXPECT_EQ(fftconv_size(1024), 2048);
  for (int64_t L = 1; L < 3000; L += 37) {
    int64_t n = fftconv_size(L), m = n;
    EXPECT_GE(n, 2 * L);
    for (int64_t p : {2, 3, 5, 7})
      while (m % p == 0) m /= p;
    EXPECT_EQ(m, 1) << "L=" << L;
  }
}

TEST(FftConv, FastMatchesReferenceOddLengths) {
  for (int64_t L : {1, 7, 100, 333})
    for (DType dt : {DType::F64, DType::F32})
      for (bool with_D : {true, false}) {
        const int64_t B = 2, H = 3;
        Tensor u = random_tensor({B, H, L}, 10 + L, -1, 1, dt), k = random_tensor({H, L}, 20 + L, -1, 1, dt);
        Tensor D = with_D ? random_tensor({H}, 30 + L, -1, 1, dt) : Tensor{};
        Tensor dy = random_tensor({B, H, L}, 40 + L, -1, 1, dt);
        Tensor y, yr, du, dk, dD, dur, dkr, dDr;
        fftconv_forward(y, u, k, D);
        fftconv_ref_forward(yr, u, k, D);
        fftconv_backward(du, dk, dD, dy, u, k, D);
        fftconv_ref_backward(dur, dkr, dDr, dy, u, k, D);
        // F32: FFT round-off grows like eps * log(n) * the row norms
        double rel = dt == DType::F64 ? 1e-12 : 1e-5;
        EXPECT_LT(max_abs_diff(y, yr), tol_of(yr, rel)) << "y L=" << L << " " << dtype_name(dt);
        EXPECT_LT(max_abs_diff(du, dur), tol_of(dur, rel)) << "du L=" << L << " " << dtype_name(dt);
        EXPECT_LT(max_abs_diff(dk, dkr), tol_of(dkr, rel)) << "dk L=" << L << " " << dtype_name(dt);
        ASSERT_EQ(dD.defined(), with_D);
        ASSERT_EQ(dDr.defined(), with_D);
        if (with_D) {
          EXPECT_LT(max_abs_diff(dD, dDr), tol_of(dDr, rel)) << "dD L=" << L;
        }
      }
}

TEST(FftConv, MeasuredPlansMatchReference) {
  // L = 2048: n = 4096 takes the FFTW_MEASURE plans in F32 (F64 keeps FFTW_ESTIMATE); every thread count
  // gives the same bits.
  const int64_t B = 1, H = 3, L = 2048;
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor u = random_tensor({B, H, L}, 51, -1, 1, dt), k = random_tensor({H, L}, 52, -1, 1, dt);
    Tensor D = random_tensor({H}, 53, -1, 1, dt), dy = random_tensor({B, H, L}, 54, -1, 1, dt);
    Tensor yr, dur, dkr, dDr;
    fftconv_ref_forward(yr, u, k, D);
    fftconv_ref_backward(dur, dkr, dDr, dy, u, k, D);
    Tensor y1, du1, dk1, dD1;
    const int prev = omp_get_max_threads();
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      Tensor y, du, dk, dD;
      fftconv_forward(y, u, k, D);
      fftconv_backward(du, dk, dD, dy, u, k, D);
      if (threads == 1) {
        y1 = y, du1 = du, dk1 = dk, dD1 = dD;
        continue;
      }
      EXPECT_EQ(max_abs_diff(y, y1), 0.0) << threads;
      EXPECT_EQ(max_abs_diff(du, du1), 0.0) << threads;
      EXPECT_EQ(max_abs_diff(dk, dk1), 0.0) << threads;
      EXPECT_EQ(max_abs_diff(dD, dD1), 0.0) << threads;
    }
    omp_set_num_threads(prev);
    const double rel = dt == DType::F64 ? 1e-12 : 1e-5;
    std::printf("measured plans L=%ld %s: y %.2g du %.2g dk %.2g (max |y| %.3g)\n", static_cast<long>(L),
                dtype_name(dt), max_abs_diff(y1, yr), max_abs_diff(du1, dur), max_abs_diff(dk1, dkr), max_abs(yr));
    EXPECT_LT(max_abs_diff(y1, yr), tol_of(yr, rel)) << dtype_name(dt);
    EXPECT_LT(max_abs_diff(du1, dur), tol_of(dur, rel)) << dtype_name(dt);
    EXPECT_LT(max_abs_diff(dk1, dkr), tol_of(dkr, rel)) << dtype_name(dt);
    EXPECT_LT(max_abs_diff(dD1, dDr), tol_of(dDr, rel)) << dtype_name(dt);
  }
}

TEST(FftConv, WithoutSkipIsPureConvolution) {
  const int64_t B = 2, H = 2, L = 13;
  Tensor u = random_tensor({B, H, L}, 1), k = random_tensor({H, L}, 2), D = Tensor::zeros({H}, DType::F64);
  Tensor y0, y1;
  fftconv_forward(y0, u, k, Tensor{});
  fftconv_forward(y1, u, k, D);
  EXPECT_LT(max_abs_diff(y0, y1), 1e-14);
  // dD stays undefined (and an existing dD untouched) when D is absent
  Tensor du, dk, dD, dD_keep = Tensor::full({H}, 7.0, DType::F64);
  fftconv_backward(du, dk, dD, y0, u, k, Tensor{});
  EXPECT_FALSE(dD.defined());
  fftconv_backward(du, dk, dD_keep, y0, u, k, Tensor{});
  EXPECT_EQ(max_abs(dD_keep), 7.0);
}

// Finite differences in double through the fast path, for u, k and D, with an even and an odd length.
TEST(FftConv, GradcheckEveryInput) {
  for (int64_t L : {8, 9}) {
    const int64_t B = 2, H = 2;
    Tensor u = random_tensor({B, H, L}, 3), k = random_tensor({H, L}, 4), D = random_tensor({H}, 5);
    const Tensor gy = random_tensor({B, H, L}, 6);
    for (bool with_D : {true, false}) {
      SCOPED_TRACE("L=" + std::to_string(L) + (with_D ? " with D" : " without D"));
      auto loss = [&]() {
        Tensor y;
        fftconv_forward(y, u, k, with_D ? D : Tensor{});
        return dot(y, gy);
      };
      Tensor du, dk, dD;
      fftconv_backward(du, dk, dD, gy, u, k, with_D ? D : Tensor{});
      double e1 = gradcheck(loss, u, du, "u"), e2 = gradcheck(loss, k, dk, "k");
      double e3 = with_D ? gradcheck(loss, D, dD, "D") : 0.0;
      std::printf("gradcheck fftconv L=%ld %s: u %.2g k %.2g D %.2g\n", static_cast<long>(L),
                  with_D ? "with D" : "no D", e1, e2, e3);
    }
  }
}

TEST(FftConv, BackwardAccumulatesIntoDefinedGradients) {
  const int64_t B = 3, H = 2, L = 11;
  Tensor u = random_tensor({B, H, L}, 1, -1, 1, DType::F32), k = random_tensor({H, L}, 2, -1, 1, DType::F32);
  Tensor D = random_tensor({H}, 3, -1, 1, DType::F32), gy = random_tensor({B, H, L}, 4, -1, 1, DType::F32);
  Tensor du, dk, dD;
  fftconv_backward(du, dk, dD, gy, u, k, D);
  Tensor du2 = du.clone(), dk2 = dk.clone(), dD2 = dD.clone();
  fftconv_backward(du2, dk2, dD2, gy, u, k, D);
  for (auto [a, b] : {std::pair{du, du2}, {dk, dk2}, {dD, dD2}}) {
    std::vector<double> x = a.to_double_vector(), y = b.to_double_vector();
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], 2 * x[i], 1e-5 * std::max(1.0, std::abs(x[i])));
  }
}

TEST(FftConv, StridedInputsAndOutput) {
  const int64_t B = 2, H = 3, L = 10;
  Tensor u = random_tensor({B, H, L}, 1), k = random_tensor({H, L}, 2), D = random_tensor({H}, 3);
  Tensor u_t = u.permute({0, 2, 1}).contiguous().permute({0, 2, 1});  // same values, (B,H,L) view of (B,L,H)
  ASSERT_FALSE(u_t.is_contiguous());
  Tensor y, y_store = Tensor::empty({B, L, H}, DType::F64);
  Tensor y_t = y_store.permute({0, 2, 1});
  fftconv_forward(y, u, k, D);
  fftconv_forward(y_t, u_t, k, D);
  EXPECT_EQ(max_abs_diff(y, y_t), 0.0);
  Tensor du, dk, dD, du_t = Tensor::empty({B, L, H}, DType::F64).permute({0, 2, 1}), dk_t, dD_t;
  fftconv_backward(du, dk, dD, y, u, k, D);
  fftconv_backward(du_t, dk_t, dD_t, y_t, u_t, k, D);
  EXPECT_EQ(max_abs_diff(du, du_t), 0.0);
  EXPECT_EQ(max_abs_diff(dk, dk_t), 0.0);
}

static void golden_case(const std::string& file) {
  SafetensorsFile f = load_safetensors(ssmkit::test::golden_file("core/" + file));
  const int64_t L = f.get("in.u").size(-1);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor u = f.get("in.u").to(dt), k = f.get("in.k").to(dt), D = f.get("in.D").to(dt);
    Tensor y, du, dk, dD;
    fftconv_forward(y, u, k, D);
    fftconv_backward(du, dk, dD, f.get("gout.y").to(dt), u, k, D);
    // README tolerance for F32; the F64 path runs the same math in double as the golden
    double rel = dt == DType::F32 ? (L >= 1000 ? 1e-3 : 1e-4) : 1e-10;
    for (auto [name, mine] :
         {std::pair<const char*, Tensor>{"out.y", y}, {"grad.u", du}, {"grad.k", dk}, {"grad.D", dD}}) {
      const Tensor& ref = f.get(name);
      double err = max_abs_diff(mine, ref), tol = tol_of(ref, rel);
      std::printf("golden %s %s %-7s max err %.3g (tol %.3g, max |ref| %.3g)\n", file.c_str(), dtype_name(dt), name,
                  err, tol, max_abs(ref));
      EXPECT_LT(err, tol) << file << " " << name << " " << dtype_name(dt);
    }
  }
}

TEST(FftConv, Golden) { golden_case("fftconv.safetensors"); }
TEST(FftConv, GoldenLong) { golden_case("fftconv_long.safetensors"); }

TEST(FftConv, ShapeAndDtypeErrors) {
  Tensor u = random_tensor({2, 3, 100}, 1), k = random_tensor({3, 100}, 2), D = random_tensor({3}, 3), y;
  EXPECT_EQ(error_of([&] { fftconv_forward(y, u, random_tensor({3, 99}, 2), D); }),
            "fftconv_forward(): k must be (3,100), got (3,99)");
  EXPECT_EQ(error_of([&] { fftconv_forward(y, u, k, random_tensor({2}, 3)); }),
            "fftconv_forward(): D must be (3), got (2)");
  EXPECT_EQ(error_of([&] { fftconv_forward(y, random_tensor({3, 100}, 1), k, D); }),
            "fftconv_forward(): u must be (B,H,L), got (3,100)");
  EXPECT_EQ(error_of([&] { fftconv_forward(y, u, k.to(DType::F32), D); }),
            "fftconv_forward(): k has dtype F32 but u has F64");
  Tensor wrong_y = Tensor::empty({2, 3, 99}, DType::F64);
  EXPECT_EQ(error_of([&] { fftconv_forward(wrong_y, u, k, D); }),
            "fftconv_forward(): y must be (2,3,100), got (2,3,99)");
  Tensor du, dk, dD, wrong_dk = Tensor::empty({3, 10}, DType::F64);
  EXPECT_EQ(error_of([&] { fftconv_backward(du, dk, dD, random_tensor({2, 3, 10}, 4), u, k, D); }),
            "fftconv_backward(): dy must be (2,3,100), got (2,3,10)");
  EXPECT_EQ(error_of([&] { fftconv_backward(du, wrong_dk, dD, u, u, k, D); }),
            "fftconv_backward(): dk must be (3,100), got (3,10)");
  EXPECT_FALSE(du.defined());  // nothing allocated by a call that failed its checks
}
