// 2-D selective scan (../shared/specs/timeseries.md §3.5): a hand-computed grid; exact reductions to the
// 1-D selective scan (decoupled grid with a2 = a3 = 0, V = 1 and T = 1 with the modified forcing of §2.4);
// fast path vs the float64 reference on odd grids, lags, segment lengths, discretizations and thread counts;
// finite differences in double for every input on both paths and through the autograd op; variate-flip
// bookkeeping of the bidirectional sum; saved-state size; shape errors.
#include <omp.h>

#include <cmath>
#include <limits>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ssm/scan2d.h"
#include "ssmkit/core/ssm/selective_scan.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::gradcheck;
using ssmkit::test::gradcheck_op;
using ssmkit::test::random_tensor;

namespace {

struct Config {
  int64_t B = 2, D = 3, V = 5, T = 7, N = 3, lag = 1;
  Scan2dDiscretization disc = Scan2dDiscretization::AxisEuler;
  bool softplus = true, with_D = true, with_bias = true, reverse = false;
};

Scan2dInputs make_inputs(const Config& c, uint64_t seed, DType dt = DType::F64) {
  Scan2dInputs in;
  const Shape xs{c.B, c.D, c.V, c.T}, as{c.D, c.N}, bcs{c.B, c.V, c.T, c.N};
  in.x = random_tensor(xs, seed + 1, -1, 1, dt);
  // without softplus the steps are used as they are: keep them positive, as in real use
  const double lo = c.softplus ? -2.0 : 0.05, hi = c.softplus ? 0.5 : 0.8;
  in.delta1 = random_tensor(xs, seed + 2, lo, hi, dt);
  in.delta2 = random_tensor(xs, seed + 3, lo, hi, dt);
  in.A1 = random_tensor(as, seed + 4, -2, -0.2, dt);
  in.A2 = random_tensor(as, seed + 5, -2, -0.2, dt);
  in.A3 = random_tensor(as, seed + 6, -2, -0.2, dt);
  in.A4 = random_tensor(as, seed + 7, -2, -0.2, dt);
  in.B1 = random_tensor(bcs, seed + 8, -1, 1, dt);
  in.B2 = random_tensor(bcs, seed + 9, -1, 1, dt);
  in.C1 = random_tensor(bcs, seed + 10, -1, 1, dt);
  in.C2 = random_tensor(bcs, seed + 11, -1, 1, dt);
  if (c.with_D) in.Dskip = random_tensor({c.D}, seed + 12, 0.5, 1.5, dt);
  if (c.with_bias) {
    in.delta_bias1 = random_tensor({c.D}, seed + 13, -0.5, 0.5, dt);
    in.delta_bias2 = random_tensor({c.D}, seed + 14, -0.5, 0.5, dt);
  }
  in.opt.delta_softplus = c.softplus;
  in.opt.lag = c.lag;
  in.opt.discretization = c.disc;
  in.opt.reverse_variates = c.reverse;
  return in;
}

// t reversed along `dim`, same dtype.
Tensor flip(const Tensor& t, int64_t dim) {
  const Shape& s = t.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= s[static_cast<size_t>(i)];
  for (int64_t i = dim + 1; i < t.ndim(); ++i) inner *= s[static_cast<size_t>(i)];
  const int64_t len = s[static_cast<size_t>(dim)];
  std::vector<double> v = t.to_double_vector(), out(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t k = 0; k < inner; ++k)
        out[static_cast<size_t>((o * len + i) * inner + k)] =
            v[static_cast<size_t>((o * len + len - 1 - i) * inner + k)];
  return Tensor::from_vector(s, out).to(t.dtype());
}

// Every variate-indexed input flipped along V.
Scan2dInputs flip_variates(const Scan2dInputs& in) {
  Scan2dInputs f = in;
  f.x = flip(in.x, 2);
  f.delta1 = flip(in.delta1, 2);
  f.delta2 = flip(in.delta2, 2);
  f.B1 = flip(in.B1, 1);
  f.B2 = flip(in.B2, 1);
  f.C1 = flip(in.C1, 1);
  f.C2 = flip(in.C2, 1);
  return f;
}

Tensor forward(const Scan2dInputs& in, int64_t seg_rows = 0) {
  Tensor y;
  scan2d_forward(y, nullptr, in, seg_rows);
  return y;
}

double rel_err(const Tensor& a, const Tensor& ref) { return max_abs_diff(a, ref) / std::max(1.0, max_abs(ref)); }

// The discretization of §2.1 written out independently of the library, per (b,d,v,t,n), double.
struct Disc {
  int64_t B, D, V, T, N;
  std::vector<double> d1, d2;                  // (B,D,V,T)
  std::vector<double> a1, a2, a3, a4, u1, u2;  // (B,D,V,T,N)
  size_t xi(int64_t b, int64_t d, int64_t v, int64_t t) const {
    return static_cast<size_t>(((b * D + d) * V + v) * T + t);
  }
  size_t hi(int64_t b, int64_t d, int64_t v, int64_t t, int64_t n) const { return xi(b, d, v, t) * N + n; }
};

Disc discretize(const Scan2dInputs& in) {
  Disc r{in.x.size(0), in.x.size(1), in.x.size(2), in.x.size(3), in.A1.size(1), {}, {}, {}, {}, {}, {}, {}, {}};
  const auto x = in.x.to_double_vector(), e1 = in.delta1.to_double_vector(), e2 = in.delta2.to_double_vector();
  const auto A1 = in.A1.to_double_vector(), A2 = in.A2.to_double_vector(), A3 = in.A3.to_double_vector(),
             A4 = in.A4.to_double_vector(), B1 = in.B1.to_double_vector(), B2 = in.B2.to_double_vector();
  const auto b1 = in.delta_bias1.defined() ? in.delta_bias1.to_double_vector() : std::vector<double>(r.D, 0.0);
  const auto b2 = in.delta_bias2.defined() ? in.delta_bias2.to_double_vector() : std::vector<double>(r.D, 0.0);
  const Scan2dDiscretization m = in.opt.discretization;
  const bool state = m == Scan2dDiscretization::StateEuler || m == Scan2dDiscretization::StateZoh;
  const bool zoh = m == Scan2dDiscretization::AxisZoh || m == Scan2dDiscretization::StateZoh;
  auto sp = [&](double v) { return in.opt.delta_softplus ? std::log1p(std::exp(v)) : v; };
  const size_t nx = static_cast<size_t>(r.B * r.D * r.V * r.T);
  r.d1.resize(nx);
  r.d2.resize(nx);
  for (auto* a : {&r.a1, &r.a2, &r.a3, &r.a4, &r.u1, &r.u2}) a->resize(nx * static_cast<size_t>(r.N));
  for (int64_t b = 0; b < r.B; ++b)
    for (int64_t d = 0; d < r.D; ++d)
      for (int64_t v = 0; v < r.V; ++v)
        for (int64_t t = 0; t < r.T; ++t) {
          const size_t i = r.xi(b, d, v, t);
          const double d1 = sp(e1[i] + b1[d]), d2 = sp(e2[i] + b2[d]);
          r.d1[i] = d1;
          r.d2[i] = d2;
          for (int64_t n = 0; n < r.N; ++n) {
            const size_t h = r.hi(b, d, v, t, n), an = static_cast<size_t>(d * r.N + n);
            const size_t bc = static_cast<size_t>(((b * r.V + v) * r.T + t) * r.N + n);
            r.a1[h] = std::exp(d1 * A1[an]);
            r.a2[h] = std::exp((state ? d2 : d1) * A2[an]);
            r.a3[h] = std::exp((state ? d1 : d2) * A3[an]);
            r.a4[h] = std::exp(d2 * A4[an]);
            const double k1 = zoh ? (std::exp(d1 * A1[an]) - 1) / A1[an] : d1;
            const double k2 = zoh ? (std::exp(d2 * A4[an]) - 1) / A4[an] : d2;
            r.u1[h] = k1 * B1[bc] * x[i];
            r.u2[h] = k2 * B2[bc] * x[i];
          }
        }
  return r;
}

// Core's 1-D selective scan (lag 1) on P independent sequences of length L per channel, with decay
// exp(step·A) and an arbitrary forcing f (P,D,L,N): groups G = D make B per channel, u = 1 and B = f/step
// give the forcing step·B·u = f exactly. Returns Σ_n C·h (P,D,L); C (P,L,N) is shared over channels.
std::vector<double> scan1d(int64_t P, int64_t D, int64_t L, int64_t N, const std::vector<double>& step,
                           const Tensor& A, const std::vector<double>& f, const std::vector<double>& C,
                           bool use_ref) {
  ScanInputs in;
  in.u = Tensor::full({P, D, L}, 1.0, DType::F64);
  in.delta = Tensor::from_vector({P, D, L}, step);
  in.A = A;
  std::vector<double> Bg(static_cast<size_t>(P * D * N * L)), Cg(Bg.size());
  for (int64_t p = 0; p < P; ++p)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t l = 0; l < L; ++l) {
          const size_t g = static_cast<size_t>(((p * D + d) * N + n) * L + l);
          Bg[g] = f[static_cast<size_t>(((p * D + d) * L + l) * N + n)] /
                  step[static_cast<size_t>((p * D + d) * L + l)];
          Cg[g] = C[static_cast<size_t>((p * L + l) * N + n)];
        }
  in.B = Tensor::from_vector({P, D, N, L}, Bg);
  in.C = Tensor::from_vector({P, D, N, L}, Cg);
  Tensor y;
  if (use_ref)
    selective_scan_ref_forward(y, nullptr, in);
  else
    selective_scan_forward(y, nullptr, nullptr, in);
  return y.to_double_vector();
}

}  // namespace

TEST(Scan2d, HandComputedTwoByTwo) {
  // B=D=N=1, V=T=2, lag 1, no softplus, default discretization: Δ1 = 0.5, Δ2 = 1, B1 = 1, B2 = 0.5,
  // C1 = 1, C2 = 2, Dskip = 0.25, so u1 = u2 = x/2.
  Scan2dInputs in;
  in.x = Tensor::from_vector({1, 1, 2, 2}, std::vector<double>{1, 2, -1, 0.5});
  in.delta1 = Tensor::full({1, 1, 2, 2}, 0.5, DType::F64);
  in.delta2 = Tensor::full({1, 1, 2, 2}, 1.0, DType::F64);
  in.A1 = Tensor::full({1, 1}, -1.0, DType::F64);
  in.A2 = Tensor::full({1, 1}, -2.0, DType::F64);
  in.A3 = Tensor::full({1, 1}, -0.5, DType::F64);
  in.A4 = Tensor::full({1, 1}, -1.5, DType::F64);
  in.B1 = Tensor::full({1, 2, 2, 1}, 1.0, DType::F64);
  in.B2 = Tensor::full({1, 2, 2, 1}, 0.5, DType::F64);
  in.C1 = Tensor::full({1, 2, 2, 1}, 1.0, DType::F64);
  in.C2 = Tensor::full({1, 2, 2, 1}, 2.0, DType::F64);
  in.Dskip = Tensor::full({1}, 0.25, DType::F64);
  const double a1 = std::exp(-0.5), a2 = std::exp(-1.0), a3 = std::exp(-0.5), a4 = std::exp(-1.5);
  const double h2_00 = 0.5, h1_00 = 0.5;
  const double h2_01 = 1.0, h1_01 = a1 * h1_00 + a2 * h2_00 + 1.0;
  const double h2_10 = a3 * h1_00 + a4 * h2_00 - 0.5, h1_10 = -0.5;
  const double h2_11 = a3 * h1_01 + a4 * h2_01 + 0.25, h1_11 = a1 * h1_10 + a2 * h2_10 + 0.25;
  const std::vector<double> want = {h1_00 + 2 * h2_00 + 0.25, h1_01 + 2 * h2_01 + 0.5, h1_10 + 2 * h2_10 - 0.25,
                                    h1_11 + 2 * h2_11 + 0.125};
  const std::vector<double> fast = forward(in).to_double_vector();
  Tensor yr;
  scan2d_ref_forward(yr, in);
  const std::vector<double> ref = yr.to_double_vector();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(fast[i], want[i], 1e-14) << i;
    EXPECT_NEAR(ref[i], want[i], 1e-14) << i;
  }
}

// §3.5 (1): with a2 = a3 = 0 (A2, A3 = -1e4: exp underflows to 0) the grid is a 1-D scan along t on each
// row (h1) plus a 1-D scan along v on each column (h2). C2 = 0 isolates the first, C1 = 0 the second.
TEST(Scan2d, DecoupledGridIsTwoOneDScans) {
  Config c{2, 3, 5, 9, 4};
  for (bool use_ref : {false, true}) {
    Scan2dInputs in = make_inputs(c, 31);
    in.A2 = Tensor::full({c.D, c.N}, -1e4, DType::F64);
    in.A3 = Tensor::full({c.D, c.N}, -1e4, DType::F64);
    const Disc q = discretize(in);
    // rows: sequence (b,v) of length T, decay exp(Δ1 A1), forcing u1, readout C1
    {
      Scan2dInputs r = in;
      r.C2 = Tensor::zeros(in.C2.shape(), DType::F64);
      const std::vector<double> y2 = (use_ref ? [&] { Tensor y; scan2d_ref_forward(y, r); return y; }() : forward(r))
                                         .to_double_vector();
      const int64_t P = c.B * c.V;
      std::vector<double> step(static_cast<size_t>(P * c.D * c.T)), f(step.size() * c.N),
          C(static_cast<size_t>(P * c.T * c.N));
      const std::vector<double> C1 = in.C1.to_double_vector();
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t v = 0; v < c.V; ++v) {
          const int64_t p = b * c.V + v;
          for (int64_t d = 0; d < c.D; ++d)
            for (int64_t t = 0; t < c.T; ++t) {
              step[static_cast<size_t>((p * c.D + d) * c.T + t)] = q.d1[q.xi(b, d, v, t)];
              for (int64_t n = 0; n < c.N; ++n)
                f[static_cast<size_t>(((p * c.D + d) * c.T + t) * c.N + n)] = q.u1[q.hi(b, d, v, t, n)];
            }
          for (int64_t t = 0; t < c.T; ++t)
            for (int64_t n = 0; n < c.N; ++n)
              C[static_cast<size_t>((p * c.T + t) * c.N + n)] =
                  C1[static_cast<size_t>(((b * c.V + v) * c.T + t) * c.N + n)];
        }
      const std::vector<double> y1 = scan1d(P, c.D, c.T, c.N, step, in.A1, f, C, use_ref);
      const std::vector<double> x = in.x.to_double_vector(), Ds = in.Dskip.to_double_vector();
      double worst = 0;
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t d = 0; d < c.D; ++d)
          for (int64_t v = 0; v < c.V; ++v)
            for (int64_t t = 0; t < c.T; ++t) {
              const size_t i = q.xi(b, d, v, t);
              const double want = y1[static_cast<size_t>(((b * c.V + v) * c.D + d) * c.T + t)] + Ds[d] * x[i];
              worst = std::max(worst, std::abs(y2[i] - want));
            }
      EXPECT_LT(worst, 1e-12) << "rows, ref=" << use_ref;
    }
    // columns: sequence (b,t) of length V, decay exp(Δ2 A4), forcing u2, readout C2
    {
      Scan2dInputs r = in;
      r.C1 = Tensor::zeros(in.C1.shape(), DType::F64);
      const std::vector<double> y2 = (use_ref ? [&] { Tensor y; scan2d_ref_forward(y, r); return y; }() : forward(r))
                                         .to_double_vector();
      const int64_t P = c.B * c.T;
      std::vector<double> step(static_cast<size_t>(P * c.D * c.V)), f(step.size() * c.N),
          C(static_cast<size_t>(P * c.V * c.N));
      const std::vector<double> C2 = in.C2.to_double_vector();
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t t = 0; t < c.T; ++t) {
          const int64_t p = b * c.T + t;
          for (int64_t d = 0; d < c.D; ++d)
            for (int64_t v = 0; v < c.V; ++v) {
              step[static_cast<size_t>((p * c.D + d) * c.V + v)] = q.d2[q.xi(b, d, v, t)];
              for (int64_t n = 0; n < c.N; ++n)
                f[static_cast<size_t>(((p * c.D + d) * c.V + v) * c.N + n)] = q.u2[q.hi(b, d, v, t, n)];
            }
          for (int64_t v = 0; v < c.V; ++v)
            for (int64_t n = 0; n < c.N; ++n)
              C[static_cast<size_t>((p * c.V + v) * c.N + n)] =
                  C2[static_cast<size_t>(((b * c.V + v) * c.T + t) * c.N + n)];
        }
      const std::vector<double> y1 = scan1d(P, c.D, c.V, c.N, step, in.A4, f, C, use_ref);
      const std::vector<double> x = in.x.to_double_vector(), Ds = in.Dskip.to_double_vector();
      double worst = 0;
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t d = 0; d < c.D; ++d)
          for (int64_t v = 0; v < c.V; ++v)
            for (int64_t t = 0; t < c.T; ++t) {
              const size_t i = q.xi(b, d, v, t);
              const double want = y1[static_cast<size_t>(((b * c.T + t) * c.D + d) * c.V + v)] + Ds[d] * x[i];
              worst = std::max(worst, std::abs(y2[i] - want));
            }
      EXPECT_LT(worst, 1e-12) << "columns, ref=" << use_ref;
    }
  }
}

// §3.5 (2), V = 1: h2[t] = u2[t], and h1 is a 1-D scan along time (lag s: s interleaved scans) with forcing
// u1[t] + a2[t]·u2[t-s]. T = 1: h1[v] = u1[v], and h2 is a 1-D scan along variates with forcing
// u2[v] + a3[v]·u1[v-1].
TEST(Scan2d, SingleVariateAndSingleStepReduceToOneDScans) {
  for (Scan2dDiscretization m : {Scan2dDiscretization::AxisEuler, Scan2dDiscretization::StateZoh})
    for (int64_t lag : {1, 3}) {
      // V = 1
      {
        Config c{2, 3, 1, 10, 4, lag, m};
        const Scan2dInputs in = make_inputs(c, 41 + static_cast<uint64_t>(lag));
        const Disc q = discretize(in);
        const int64_t Ls = (c.T + lag - 1) / lag, P = c.B * lag;
        std::vector<double> step(static_cast<size_t>(P * c.D * Ls), 1.0), f(step.size() * c.N, 0.0),
            C(static_cast<size_t>(P * Ls * c.N), 0.0);
        const std::vector<double> C1 = in.C1.to_double_vector();
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t rr = 0; rr < lag; ++rr)
            for (int64_t j = 0; j < Ls; ++j) {
              const int64_t t = rr + j * lag, p = b * lag + rr;
              if (t >= c.T) continue;  // padding at the end of a short sequence: Δ = 1, no forcing, no readout
              for (int64_t d = 0; d < c.D; ++d) {
                step[static_cast<size_t>((p * c.D + d) * Ls + j)] = q.d1[q.xi(b, d, 0, t)];
                for (int64_t n = 0; n < c.N; ++n) {
                  double fv = q.u1[q.hi(b, d, 0, t, n)];
                  if (t >= lag) fv += q.a2[q.hi(b, d, 0, t, n)] * q.u2[q.hi(b, d, 0, t - lag, n)];
                  f[static_cast<size_t>(((p * c.D + d) * Ls + j) * c.N + n)] = fv;
                }
              }
              for (int64_t n = 0; n < c.N; ++n)
                C[static_cast<size_t>((p * Ls + j) * c.N + n)] = C1[static_cast<size_t>((b * c.T + t) * c.N + n)];
            }
        const std::vector<double> y1 = scan1d(P, c.D, Ls, c.N, step, in.A1, f, C, false);
        const std::vector<double> y2 = forward(in).to_double_vector(), x = in.x.to_double_vector(),
                                  Ds = in.Dskip.to_double_vector(), C2 = in.C2.to_double_vector();
        double worst = 0;
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t d = 0; d < c.D; ++d)
            for (int64_t t = 0; t < c.T; ++t) {
              const size_t i = q.xi(b, d, 0, t);
              double want = y1[static_cast<size_t>(((b * lag + t % lag) * c.D + d) * Ls + t / lag)] + Ds[d] * x[i];
              for (int64_t n = 0; n < c.N; ++n)
                want += C2[static_cast<size_t>((b * c.T + t) * c.N + n)] * q.u2[q.hi(b, d, 0, t, n)];
              worst = std::max(worst, std::abs(y2[i] - want));
            }
        EXPECT_LT(worst, 1e-12) << "V=1 lag=" << lag << " disc=" << static_cast<int>(m);
      }
      // T = 1
      {
        Config c{2, 3, 8, 1, 4, lag, m};
        const Scan2dInputs in = make_inputs(c, 51 + static_cast<uint64_t>(lag));
        const Disc q = discretize(in);
        const int64_t P = c.B;
        std::vector<double> step(static_cast<size_t>(P * c.D * c.V)), f(step.size() * c.N),
            C(static_cast<size_t>(P * c.V * c.N));
        const std::vector<double> C2 = in.C2.to_double_vector();
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t v = 0; v < c.V; ++v) {
            for (int64_t d = 0; d < c.D; ++d) {
              step[static_cast<size_t>((b * c.D + d) * c.V + v)] = q.d2[q.xi(b, d, v, 0)];
              for (int64_t n = 0; n < c.N; ++n) {
                double fv = q.u2[q.hi(b, d, v, 0, n)];
                if (v > 0) fv += q.a3[q.hi(b, d, v, 0, n)] * q.u1[q.hi(b, d, v - 1, 0, n)];
                f[static_cast<size_t>(((b * c.D + d) * c.V + v) * c.N + n)] = fv;
              }
            }
            for (int64_t n = 0; n < c.N; ++n)
              C[static_cast<size_t>((b * c.V + v) * c.N + n)] = C2[static_cast<size_t>((b * c.V + v) * c.N + n)];
          }
        const std::vector<double> y1 = scan1d(P, c.D, c.V, c.N, step, in.A4, f, C, false);
        const std::vector<double> y2 = forward(in).to_double_vector(), x = in.x.to_double_vector(),
                                  Ds = in.Dskip.to_double_vector(), C1 = in.C1.to_double_vector();
        double worst = 0;
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t d = 0; d < c.D; ++d)
            for (int64_t v = 0; v < c.V; ++v) {
              const size_t i = q.xi(b, d, v, 0);
              double want = y1[static_cast<size_t>((b * c.D + d) * c.V + v)] + Ds[d] * x[i];
              for (int64_t n = 0; n < c.N; ++n)
                want += C1[static_cast<size_t>((b * c.V + v) * c.N + n)] * q.u1[q.hi(b, d, v, 0, n)];
              worst = std::max(worst, std::abs(y2[i] - want));
            }
        EXPECT_LT(worst, 1e-12) << "T=1 lag=" << lag << " disc=" << static_cast<int>(m);
      }
    }
}

// §3.5 (3): fast path vs the float64 reference, outputs and all gradients, F64 and F32.
TEST(Scan2d, FastMatchesReference) {
  std::vector<Config> cfgs;
  cfgs.push_back({2, 3, 7, 13, 4, 1});
  cfgs.push_back({1, 2, 1, 9, 3, 3, Scan2dDiscretization::AxisZoh});                          // V = 1
  cfgs.push_back({2, 2, 6, 1, 2, 1, Scan2dDiscretization::StateEuler});                       // T = 1
  cfgs.push_back({1, 3, 11, 5, 16, 3, Scan2dDiscretization::StateZoh, true, true, true, true});  // reversed
  cfgs.push_back({3, 1, 9, 8, 1, 2, Scan2dDiscretization::AxisEuler, false, false, false, false});  // plain
  // the per-row kernels compiled for N = 4, 8, 16 and the chunked any-N path (N > 16: a chunk of 16 and one of 4)
  cfgs.push_back({2, 2, 5, 6, 16, 2, Scan2dDiscretization::StateEuler});
  cfgs.push_back({1, 2, 4, 5, 8, 1, Scan2dDiscretization::StateEuler, true, true, true, true});
  cfgs.push_back({1, 2, 4, 5, 20, 1});
  cfgs.push_back({1, 2, 4, 6, 20, 2, Scan2dDiscretization::StateZoh});
  for (const Config& c : cfgs)
    for (DType dt : {DType::F64, DType::F32})
      for (int64_t seg : {0, 1, 2, 4, 100}) {
        const Scan2dInputs in = make_inputs(c, 17, dt);
        const double tol_y = dt == DType::F64 ? 1e-12 : 1e-5, tol_g = dt == DType::F64 ? 1e-11 : 5e-5;
        Tensor y, yr;
        Scan2dSaved saved;
        scan2d_forward(y, &saved, in, seg);
        scan2d_ref_forward(yr, in);
        EXPECT_EQ(y.dtype(), dt);
        EXPECT_LT(rel_err(y, yr), tol_y) << "V=" << c.V << " T=" << c.T << " seg=" << seg;
        const Tensor dy = random_tensor(y.shape(), 23, -1, 1, dt);
        Scan2dGrads g, gref;
        scan2d_backward(g, dy, in, saved);
        scan2d_ref_backward(gref, dy, in);
        auto close = [&](const Tensor& a, const Tensor& b, const char* name) {
          ASSERT_EQ(a.defined(), b.defined()) << name;
          if (a.defined()) {
            EXPECT_EQ(a.dtype(), dt) << name;
            EXPECT_LT(rel_err(a, b), tol_g) << name << " V=" << c.V << " T=" << c.T << " seg=" << seg;
          }
        };
        close(g.dx, gref.dx, "dx");
        close(g.ddelta1, gref.ddelta1, "ddelta1");
        close(g.ddelta2, gref.ddelta2, "ddelta2");
        close(g.dA1, gref.dA1, "dA1");
        close(g.dA2, gref.dA2, "dA2");
        close(g.dA3, gref.dA3, "dA3");
        close(g.dA4, gref.dA4, "dA4");
        close(g.dB1, gref.dB1, "dB1");
        close(g.dB2, gref.dB2, "dB2");
        close(g.dC1, gref.dC1, "dC1");
        close(g.dC2, gref.dC2, "dC2");
        close(g.dDskip, gref.dDskip, "dDskip");
        close(g.ddelta_bias1, gref.ddelta_bias1, "ddelta_bias1");
        close(g.ddelta_bias2, gref.ddelta_bias2, "ddelta_bias2");
      }
}

// Thread partitions that split a batch between threads (the B/C gradient partials) give the same result.
// The grid is large enough (B·D·V·T·N >= 2^15) for the kernels to use several threads; with B·D = 3·2 rows,
// 4 threads take rows [0,1) [1,3) [3,4) [4,6), so batches 0 and 1 are each split between two threads.
TEST(Scan2d, ThreadCountsAgree) {
  const Config c{3, 2, 20, 40, 8, 1};
  const Scan2dInputs in = make_inputs(c, 61);
  const Tensor dy = random_tensor({c.B, c.D, c.V, c.T}, 62);
  Scan2dGrads gref;
  scan2d_ref_backward(gref, dy, in);
  const int keep = omp_get_max_threads();
  for (int nth : {1, 2, 4, 5, 8}) {
    omp_set_num_threads(nth);
    Tensor y;
    Scan2dSaved saved;
    scan2d_forward(y, &saved, in, 3);
    Scan2dGrads g;
    scan2d_backward(g, dy, in, saved);
    EXPECT_LT(rel_err(g.dB1, gref.dB1), 1e-12) << nth;
    EXPECT_LT(rel_err(g.dC2, gref.dC2), 1e-12) << nth;
    EXPECT_LT(rel_err(g.dA3, gref.dA3), 1e-12) << nth;
    EXPECT_LT(rel_err(g.dx, gref.dx), 1e-12) << nth;
  }
  omp_set_num_threads(keep);
}

// §3.5 (4): central differences in double for every input, through the segmented fast path (segments of 2
// rows over V = 5) and through the reference.
static void run_gradcheck(const Config& c, bool use_ref) {
  Scan2dInputs in = make_inputs(c, 3);
  const Tensor w = random_tensor({c.B, c.D, c.V, c.T}, 21);
  auto loss = [&]() {
    Tensor y;
    if (use_ref)
      scan2d_ref_forward(y, in);
    else
      scan2d_forward(y, nullptr, in, 2);
    return dot(y, w);
  };
  Scan2dGrads g;
  if (use_ref) {
    scan2d_ref_backward(g, w, in);
  } else {
    Tensor y;
    Scan2dSaved saved;
    scan2d_forward(y, &saved, in, 2);
    scan2d_backward(g, w, in, saved);
  }
  gradcheck(loss, in.x, g.dx, "x");
  gradcheck(loss, in.delta1, g.ddelta1, "delta1");
  gradcheck(loss, in.delta2, g.ddelta2, "delta2");
  gradcheck(loss, in.A1, g.dA1, "A1");
  gradcheck(loss, in.A2, g.dA2, "A2");
  gradcheck(loss, in.A3, g.dA3, "A3");
  gradcheck(loss, in.A4, g.dA4, "A4");
  gradcheck(loss, in.B1, g.dB1, "B1");
  gradcheck(loss, in.B2, g.dB2, "B2");
  gradcheck(loss, in.C1, g.dC1, "C1");
  gradcheck(loss, in.C2, g.dC2, "C2");
  if (c.with_D) gradcheck(loss, in.Dskip, g.dDskip, "Dskip");
  if (c.with_bias) {
    gradcheck(loss, in.delta_bias1, g.ddelta_bias1, "delta_bias1");
    gradcheck(loss, in.delta_bias2, g.ddelta_bias2, "delta_bias2");
  }
}

TEST(Scan2d, GradcheckFastPathAllDiscretizationsAndLags) {
  const std::pair<Scan2dDiscretization, int64_t> cases[] = {{Scan2dDiscretization::AxisEuler, 1},
                                                            {Scan2dDiscretization::AxisZoh, 3},
                                                            {Scan2dDiscretization::StateEuler, 3},
                                                            {Scan2dDiscretization::StateZoh, 1}};
  for (const auto& [m, lag] : cases) {
    SCOPED_TRACE("disc " + std::to_string(static_cast<int>(m)) + " lag " + std::to_string(lag));
    run_gradcheck({2, 2, 5, 5, 2, lag, m, true, true, true, lag == 3}, false);
  }
}
TEST(Scan2d, GradcheckFastPathNoSoftplusNoOptionals) {
  run_gradcheck({1, 2, 4, 5, 3, 1, Scan2dDiscretization::AxisEuler, false, false, false, false}, false);
}
TEST(Scan2d, GradcheckFastPathSingleRowAndColumn) {
  run_gradcheck({2, 2, 1, 7, 2, 3}, false);
  run_gradcheck({2, 2, 6, 1, 2, 1}, false);
}
TEST(Scan2d, GradcheckReferencePath) {
  run_gradcheck({1, 2, 4, 5, 2, 1, Scan2dDiscretization::AxisZoh}, true);
  run_gradcheck({2, 1, 3, 6, 2, 3, Scan2dDiscretization::StateEuler, true, true, true, true}, true);
}

// The autograd op, and a bidirectional composition (forward + reversed variates) through it.
TEST(Scan2d, GradcheckAutogradOp) {
  const Config c{1, 2, 3, 4, 2, 1, Scan2dDiscretization::AxisEuler};
  const Scan2dInputs in = make_inputs(c, 71);
  const std::vector<Tensor> inputs = {in.x,  in.delta1, in.delta2, in.A1, in.A2,    in.A3,          in.A4,
                                      in.B1, in.B2,     in.C1,     in.C2, in.Dskip, in.delta_bias1, in.delta_bias2};
  auto pack = [](const std::vector<Var>& v, bool reverse) {
    Scan2dVars s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], {}};
    s.opt.delta_softplus = true;
    s.opt.reverse_variates = reverse;
    return s;
  };
  gradcheck_op([&](const std::vector<Var>& v) { return scan2d(pack(v, false), 2); }, inputs, "scan2d");
  gradcheck_op([&](const std::vector<Var>& v) { return scan2d(pack(v, false)) + scan2d(pack(v, true)); }, inputs,
               "scan2d bidirectional");
  // optional inputs absent
  const std::vector<Tensor> req(inputs.begin(), inputs.begin() + 11);
  gradcheck_op(
      [&](const std::vector<Var>& v) {
        Scan2dVars s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], {}, {}, {}, {}};
        s.opt.delta_softplus = true;
        return scan2d(s);
      },
      req, "scan2d no optionals");
  // the op's value is the kernel's
  Var out = scan2d(pack({Var(in.x), Var(in.delta1), Var(in.delta2), Var(in.A1), Var(in.A2), Var(in.A3), Var(in.A4),
                         Var(in.B1), Var(in.B2), Var(in.C1), Var(in.C2), Var(in.Dskip), Var(in.delta_bias1),
                         Var(in.delta_bias2)},
                        false));
  Scan2dInputs k = in;
  k.opt.delta_softplus = true;
  EXPECT_EQ(max_abs_diff(out.value(), forward(k)), 0.0);
}

// §3.5 (5): reverse_variates is flip / scan / flip back; a reversed scan of the flipped grid is the flipped
// forward scan; the bidirectional sum is flip-equivariant while the one-directional scan is not.
TEST(Scan2d, VariateFlipBookkeeping) {
  for (bool use_ref : {false, true}) {
    Config c{2, 3, 6, 5, 3, 1, Scan2dDiscretization::AxisEuler};
    const Scan2dInputs in = make_inputs(c, 81);
    auto run = [&](const Scan2dInputs& i, bool reverse) {
      Scan2dInputs j = i;
      j.opt.reverse_variates = reverse;
      Tensor y;
      if (use_ref)
        scan2d_ref_forward(y, j);
      else
        scan2d_forward(y, nullptr, j, 2);
      return y;
    };
    const Scan2dInputs fl = flip_variates(in);
    // reversed scan == flip, scan, flip back
    EXPECT_LT(max_abs_diff(run(in, true), flip(run(fl, false), 2)), 1e-12);
    // bidirectional sum: G(flip in) == flip G(in)
    Tensor g = run(in, false), g_fl = run(fl, false);
    g.add_(run(in, true));
    g_fl.add_(run(fl, true));
    EXPECT_LT(max_abs_diff(g_fl, flip(g, 2)), 1e-12);
    // one direction alone is not flip-equivariant (the test above is not vacuous)
    EXPECT_GT(max_abs_diff(run(fl, false), flip(run(in, false), 2)), 1e-3);
  }
  // gradients of the reversed scan are the flipped gradients of the flipped forward scan
  Config c{2, 2, 5, 4, 2, 3};
  Scan2dInputs in = make_inputs(c, 91);
  const Tensor dy = random_tensor({c.B, c.D, c.V, c.T}, 92);
  Scan2dInputs rv = in;
  rv.opt.reverse_variates = true;
  Tensor y;
  Scan2dSaved saved;
  scan2d_forward(y, &saved, rv, 2);
  Scan2dGrads g;
  scan2d_backward(g, dy, rv, saved);
  const Scan2dInputs fl = flip_variates(in);
  Scan2dSaved saved_fl;
  scan2d_forward(y, &saved_fl, fl, 2);
  Scan2dGrads gf;
  scan2d_backward(gf, flip(dy, 2), fl, saved_fl);
  EXPECT_LT(max_abs_diff(g.dx, flip(gf.dx, 2)), 1e-12);
  EXPECT_LT(max_abs_diff(g.ddelta2, flip(gf.ddelta2, 2)), 1e-12);
  EXPECT_LT(max_abs_diff(g.dB1, flip(gf.dB1, 1)), 1e-12);
  EXPECT_LT(max_abs_diff(g.dC2, flip(gf.dC2, 1)), 1e-12);
  EXPECT_LT(max_abs_diff(g.dA3, gf.dA3), 1e-12);
}

// §3.5 (6) / §3.3: the forward keeps B·D·n_seg·T·N values per state, n_seg = ceil(V / seg_rows), default
// seg_rows = ceil(sqrt(V)); never B·D·V·T·N.
TEST(Scan2d, SavedStatesAreSegmentBoundariesOnly) {
  EXPECT_EQ(scan2d_default_seg_rows(1), 1);
  EXPECT_EQ(scan2d_default_seg_rows(7), 3);
  EXPECT_EQ(scan2d_default_seg_rows(100), 10);
  EXPECT_EQ(scan2d_default_seg_rows(321), 18);
  Config c{2, 3, 100, 6, 4};
  const Scan2dInputs in = make_inputs(c, 5, DType::F32);
  Tensor y;
  Scan2dSaved saved;
  scan2d_forward(y, &saved, in);
  EXPECT_EQ(saved.seg_rows, 10);
  EXPECT_EQ(saved.h1_rows.shape(), (Shape{2, 3, 10, 6, 4}));
  EXPECT_EQ(saved.h2_rows.shape(), (Shape{2, 3, 10, 6, 4}));
  EXPECT_EQ(saved.h1_rows.numel() * 10, c.B * c.D * c.V * c.T * c.N);  // V / k of the full state grid
  scan2d_forward(y, &saved, in, 7);
  EXPECT_EQ(saved.h1_rows.shape(), (Shape{2, 3, 15, 6, 4}));  // ceil(100 / 7)
  scan2d_forward(y, &saved, in, 1000);
  EXPECT_EQ(saved.seg_rows, 100);
  EXPECT_EQ(saved.h1_rows.shape(), (Shape{2, 3, 1, 6, 4}));
  // the first saved row is the zero state entering the grid; the second is row seg_rows - 1's state
  scan2d_forward(y, &saved, in, 10);
  EXPECT_EQ(max_abs(saved.h1_rows.slice(2, 0, 1)), 0.0);
  Tensor yr, h1r;
  scan2d_ref_forward(yr, in, &h1r);
  const Tensor row9 = h1r.slice(2, 9, 10).reshape({2, 3, 6, 4});
  EXPECT_LT(max_abs_diff(saved.h1_rows.select(2, 1), row9), 1e-5 * std::max(1.0, max_abs(row9)));
}

TEST(Scan2d, GradientsAccumulate) {
  const Config c;
  const Scan2dInputs in = make_inputs(c, 9, DType::F32);
  Tensor y;
  Scan2dSaved saved;
  scan2d_forward(y, &saved, in);
  const Tensor dy = random_tensor(y.shape(), 1, -1, 1, DType::F32);
  Scan2dGrads once, twice;
  scan2d_backward(once, dy, in, saved);
  scan2d_backward(twice, dy, in, saved);
  scan2d_backward(twice, dy, in, saved);
  for (auto [a, b] : {std::pair{&once.dA2, &twice.dA2}, std::pair{&once.dB1, &twice.dB1},
                      std::pair{&once.dx, &twice.dx}, std::pair{&once.ddelta_bias2, &twice.ddelta_bias2}}) {
    std::vector<double> va = a->to_double_vector(), vb = b->to_double_vector();
    for (size_t i = 0; i < va.size(); ++i) EXPECT_NEAR(2 * va[i], vb[i], 1e-5 * std::max(1.0, std::abs(va[i])));
  }
}

TEST(Scan2d, ShapeErrorsNameTheArgument) {
  const Config c;
  auto expect_error = [](const Scan2dInputs& in, const std::string& what) {
    Tensor y;
    try {
      scan2d_forward(y, nullptr, in);
      FAIL() << "expected an Error containing: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  Scan2dInputs in = make_inputs(c, 1, DType::F32);
  in.B1 = Tensor::zeros({c.B, c.T, c.V, c.N});
  expect_error(in, "scan2d: B1 has shape (2,7,5,3), expected (2,5,7,3)");
  in = make_inputs(c, 1, DType::F32);
  in.A3 = Tensor::zeros({c.D + 1, c.N});
  expect_error(in, "scan2d: A3 has shape (4,3), expected (3,3)");
  in = make_inputs(c, 1, DType::F32);
  in.delta2 = Tensor::zeros({c.B, c.D, c.V, c.T + 1});
  expect_error(in, "delta2 has shape");
  in = make_inputs(c, 1, DType::F32);
  in.Dskip = Tensor::zeros({c.D, 1});
  expect_error(in, "Dskip has shape");
  in = make_inputs(c, 1, DType::F32);
  in.x = Tensor::zeros({c.B, c.D, c.V});
  expect_error(in, "x must be (B,D,V,T)");
  in = make_inputs(c, 1, DType::F32);
  in.C2 = Tensor{};
  expect_error(in, "are required");
  in = make_inputs(c, 1, DType::F32);
  in.C1 = in.C1.to(DType::F64);
  expect_error(in, "share x's dtype");
  in = make_inputs(c, 1, DType::F32);
  in.opt.lag = 0;
  expect_error(in, "lag must be >= 1");
  // backward without matching saved rows, and a wrong dy
  in = make_inputs(c, 1, DType::F32);
  Tensor y;
  Scan2dSaved saved;
  Scan2dGrads g;
  EXPECT_THROW(scan2d_backward(g, Tensor::zeros({c.B, c.D, c.V, c.T}), in, saved), Error);
  scan2d_forward(y, &saved, in);
  try {
    scan2d_backward(g, Tensor::zeros({c.B, c.D, c.V + 1, c.T}), in, saved);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dy has shape (2,3,6,7), expected (2,3,5,7)"), std::string::npos) << e.what();
  }
}

// States that decay with no input (zero padding, quiet variates) pass through the denormal range, where every
// multiply takes a microcode assist; the scan flushes denormals (FlushDenormals), so no output or gradient is
// denormal, and the caller's floating-point mode is left as it was. Input in the first two time steps only,
// decays e^-0.7 per step or faster: 600 steps go far past e^-103, where a float underflows to zero.
TEST(Scan2d, QuietInputDecaysWithoutDenormals) {
  Config c;
  c.B = 1;
  c.D = 4;
  c.V = 3;
  c.T = 600;
  c.N = 4;
  Scan2dInputs in = make_inputs(c, 700, DType::F32);
  for (Tensor* a : {&in.A1, &in.A2, &in.A3, &in.A4}) *a = random_tensor(a->shape(), 701, -2, -1, DType::F32);
  in.delta1 = random_tensor(in.delta1.shape(), 702, 0, 0.5, DType::F32);
  in.delta2 = random_tensor(in.delta2.shape(), 703, 0, 0.5, DType::F32);
  in.delta_bias1 = in.delta_bias2 = Tensor::zeros({c.D}, DType::F32);  // steps softplus(0..0.5) >= 0.69
  float* x = in.x.data<float>();
  for (int64_t r = 0; r < c.B * c.D * c.V; ++r)
    for (int64_t t = 2; t < c.T; ++t) x[r * c.T + t] = 0.0f;
  const auto denormals = ssmkit::test::count_denormals;
  const Tensor dy = random_tensor({c.B, c.D, c.V, c.T}, 704, -1, 1, DType::F32);
  for (const int threads : {1, 2}) {
    ssmkit::test::ScopedThreads scope(threads);
    Tensor y;
    Scan2dSaved saved;
    scan2d_forward(y, &saved, in, 0);
    EXPECT_EQ(denormals(y), 0) << threads << " threads";
    EXPECT_EQ(y.data<float>()[c.T - 1], 0.0f) << "decayed all the way";
    Scan2dGrads g;
    scan2d_backward(g, dy, in, saved);
    for (const Tensor* t : {&g.dx, &g.ddelta1, &g.ddelta2, &g.dB1, &g.dB2, &g.dC1, &g.dC2})
      EXPECT_EQ(denormals(*t), 0) << threads << " threads";
  }
  EXPECT_TRUE(ssmkit::test::thread_makes_denormals()) << "the caller's floating-point mode was changed";
}
