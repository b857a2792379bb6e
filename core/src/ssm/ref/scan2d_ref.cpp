// 2-D selective scan reference path: the direct recurrence of ../shared/specs/timeseries.md §2 in double
// precision over the full grid with every intermediate materialized (B,D,V,T,N), and its backward by
// reverse-mode differentiation over the stored states, cell by cell in reverse order of evaluation.
// reverse_variates is done literally: flip the inputs along V, scan, flip back. Slow and memory-hungry on
// purpose: the test oracle for the segmented production path in ../scan2d.cpp.
#include <cmath>
#include <vector>

#include "ssmkit/core/ssm/scan2d.h"

namespace ssmkit::core {

namespace {

using Vec = std::vector<double>;

struct RefData {
  int64_t Bn = 0, Dn = 0, V = 0, T = 0, N = 0;
  Vec x, del1, del2, A1, A2, A3, A4, B1, B2, C1, C2, Dskip, bias1, bias2;
  size_t xi(int64_t b, int64_t d, int64_t v, int64_t t) const {
    return static_cast<size_t>(((b * Dn + d) * V + v) * T + t);
  }
  size_t hi(int64_t b, int64_t d, int64_t v, int64_t t, int64_t n) const { return xi(b, d, v, t) * N + n; }
  size_t bi(int64_t b, int64_t v, int64_t t, int64_t n) const {
    return static_cast<size_t>(((b * V + v) * T + t) * N + n);
  }
};

Vec values(const Tensor& t) { return t.defined() ? t.to_double_vector() : Vec{}; }

// Reverses the axis of length `len` in a row-major array of `outer` x len x `inner` elements.
void flip_axis(Vec& a, int64_t outer, int64_t len, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < len / 2; ++i)
      for (int64_t k = 0; k < inner; ++k)
        std::swap(a[static_cast<size_t>((o * len + i) * inner + k)],
                  a[static_cast<size_t>((o * len + len - 1 - i) * inner + k)]);
}
// (B,D,V,T[,N]) arrays along V
void flip_bdv(Vec& a, const RefData& r, int64_t inner) { flip_axis(a, r.Bn * r.Dn, r.V, r.T * inner); }
// (B,V,T,N) arrays along V
void flip_bv(Vec& a, const RefData& r) { flip_axis(a, r.Bn, r.V, r.T * r.N); }

RefData load(const Scan2dInputs& in) {
  SSMKIT_CHECK(in.x.defined() && in.x.ndim() == 4 && in.A1.defined() && in.A1.ndim() == 2,
               "scan2d_ref: x (B,D,V,T) and A1 (D,N) expected");
  SSMKIT_CHECK(in.opt.lag >= 1, "scan2d_ref: lag must be >= 1, got ", in.opt.lag);
  RefData r;
  r.Bn = in.x.size(0);
  r.Dn = in.x.size(1);
  r.V = in.x.size(2);
  r.T = in.x.size(3);
  r.N = in.A1.size(1);
  r.x = values(in.x);
  r.del1 = values(in.delta1);
  r.del2 = values(in.delta2);
  r.A1 = values(in.A1);
  r.A2 = values(in.A2);
  r.A3 = values(in.A3);
  r.A4 = values(in.A4);
  r.B1 = values(in.B1);
  r.B2 = values(in.B2);
  r.C1 = values(in.C1);
  r.C2 = values(in.C2);
  r.Dskip = values(in.Dskip);
  r.bias1 = values(in.delta_bias1);
  r.bias2 = values(in.delta_bias2);
  const size_t nx = static_cast<size_t>(r.Bn * r.Dn * r.V * r.T), na = static_cast<size_t>(r.Dn * r.N),
               nbc = static_cast<size_t>(r.Bn * r.V * r.T * r.N);
  SSMKIT_CHECK(r.del1.size() == nx && r.del2.size() == nx && r.A2.size() == na && r.A3.size() == na &&
                   r.A4.size() == na && r.B1.size() == nbc && r.B2.size() == nbc && r.C1.size() == nbc &&
                   r.C2.size() == nbc,
               "scan2d_ref: inconsistent shapes");
  if (in.opt.reverse_variates) {
    for (Vec* a : {&r.x, &r.del1, &r.del2}) flip_bdv(*a, r, 1);
    for (Vec* a : {&r.B1, &r.B2, &r.C1, &r.C2}) flip_bv(*a, r);
  }
  return r;
}

double sp(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
double sig(double x) { return 1 / (1 + std::exp(-x)); }

// Everything the forward computes, materialized.
struct Grid {
  Vec d1, d2;                          // (B,D,V,T) steps after bias / softplus
  Vec a1, a2, a3, a4, k1, k2, h1, h2;  // (B,D,V,T,N); u_i = k_i · B_i · x
  Vec y;                               // (B,D,V,T)
};

Grid run(const RefData& r, const Scan2dOptions& o) {
  Grid g;
  const size_t nx = static_cast<size_t>(r.Bn * r.Dn * r.V * r.T), nh = nx * static_cast<size_t>(r.N);
  g.d1.assign(nx, 0);
  g.d2.assign(nx, 0);
  g.y.assign(nx, 0);
  for (Vec* a : {&g.a1, &g.a2, &g.a3, &g.a4, &g.k1, &g.k2, &g.h1, &g.h2}) a->assign(nh, 0);
  const int64_t s = o.lag;
  for (int64_t b = 0; b < r.Bn; ++b)
    for (int64_t d = 0; d < r.Dn; ++d)
      for (int64_t v = 0; v < r.V; ++v)
        for (int64_t t = 0; t < r.T; ++t) {
          const size_t i = r.xi(b, d, v, t);
          double d1 = r.del1[i] + (r.bias1.empty() ? 0 : r.bias1[d]);
          double d2 = r.del2[i] + (r.bias2.empty() ? 0 : r.bias2[d]);
          if (o.delta_softplus) {
            d1 = sp(d1);
            d2 = sp(d2);
          }
          g.d1[i] = d1;
          g.d2[i] = d2;
          const double p2 = scan2d_state_pair(o.discretization) ? d2 : d1;
          const double p3 = scan2d_state_pair(o.discretization) ? d1 : d2;
          double y = r.Dskip.empty() ? 0 : r.Dskip[d] * r.x[i];
          for (int64_t n = 0; n < r.N; ++n) {
            const size_t h = r.hi(b, d, v, t, n), an = static_cast<size_t>(d * r.N + n);
            g.a1[h] = std::exp(d1 * r.A1[an]);
            g.a2[h] = std::exp(p2 * r.A2[an]);
            g.a3[h] = std::exp(p3 * r.A3[an]);
            g.a4[h] = std::exp(d2 * r.A4[an]);
            g.k1[h] = scan2d_zoh(o.discretization) ? std::expm1(d1 * r.A1[an]) / r.A1[an] : d1;
            g.k2[h] = scan2d_zoh(o.discretization) ? std::expm1(d2 * r.A4[an]) / r.A4[an] : d2;
            const double u1 = g.k1[h] * r.B1[r.bi(b, v, t, n)] * r.x[i];
            const double u2 = g.k2[h] * r.B2[r.bi(b, v, t, n)] * r.x[i];
            // h2[v,t] = a3 h1[v-1,t] + a4 h2[v-1,t] + u2
            double h2 = u2;
            if (v > 0) h2 += g.a3[h] * g.h1[r.hi(b, d, v - 1, t, n)] + g.a4[h] * g.h2[r.hi(b, d, v - 1, t, n)];
            // h1[v,t] = a1 h1[v,t-s] + a2 h2[v,t-s] + u1
            double h1 = u1;
            if (t >= s) h1 += g.a1[h] * g.h1[r.hi(b, d, v, t - s, n)] + g.a2[h] * g.h2[r.hi(b, d, v, t - s, n)];
            g.h1[h] = h1;
            g.h2[h] = h2;
            y += r.C1[r.bi(b, v, t, n)] * h1 + r.C2[r.bi(b, v, t, n)] * h2;
          }
          g.y[i] = y;
        }
  return g;
}

void add_into(Tensor& g, const Shape& shape, const Vec& v) {
  Tensor t = Tensor::from_vector(shape, v);
  if (!g.defined()) {
    g = t;
    return;
  }
  SSMKIT_CHECK(g.shape() == shape, "scan2d_ref_backward: gradient shape ", shape_str(g.shape()), " vs ",
               shape_str(shape));
  Vec old = g.to_double_vector();
  for (size_t i = 0; i < old.size(); ++i) old[i] += v[i];
  g.copy_from(Tensor::from_vector(shape, old));
}

}  // namespace

void scan2d_ref_forward(Tensor& y, const Scan2dInputs& in, Tensor* h1, Tensor* h2) {
  const RefData r = load(in);
  Grid g = run(r, in.opt);
  if (in.opt.reverse_variates) {
    flip_bdv(g.y, r, 1);
    flip_bdv(g.h1, r, r.N);
    flip_bdv(g.h2, r, r.N);
  }
  y = Tensor::from_vector({r.Bn, r.Dn, r.V, r.T}, g.y);
  if (h1) *h1 = Tensor::from_vector({r.Bn, r.Dn, r.V, r.T, r.N}, g.h1);
  if (h2) *h2 = Tensor::from_vector({r.Bn, r.Dn, r.V, r.T, r.N}, g.h2);
}

void scan2d_ref_backward(Scan2dGrads& gr, const Tensor& dy_t, const Scan2dInputs& in) {
  const RefData r = load(in);
  const Grid g = run(r, in.opt);
  Vec dy = dy_t.to_double_vector();
  SSMKIT_CHECK(dy.size() == g.y.size(), "scan2d_ref_backward: dy has shape ", shape_str(dy_t.shape()));
  if (in.opt.reverse_variates) flip_bdv(dy, r, 1);
  const size_t nx = g.y.size(), nh = g.h1.size(), na = r.A1.size(), nbc = r.B1.size(), nd = static_cast<size_t>(r.Dn);
  Vec gh1(nh, 0), gh2(nh, 0);  // dLoss/dh, complete once every consumer of the cell has been visited
  Vec ga1(nh, 0), ga2(nh, 0), ga3(nh, 0), ga4(nh, 0), gu1(nh, 0), gu2(nh, 0);
  Vec dx(nx, 0), dd1(nx, 0), dd2(nx, 0), dA1(na, 0), dA2(na, 0), dA3(na, 0), dA4(na, 0);
  Vec dB1(nbc, 0), dB2(nbc, 0), dC1(nbc, 0), dC2(nbc, 0), dD(nd, 0), db1(nd, 0), db2(nd, 0);
  const int64_t s = in.opt.lag;
  // Reverse of the evaluation order of run(): rows last to first, time steps last to first, and inside a
  // cell h1 before h2 (h1[v,t] reads h2[v,t-s], never h2[v,t]).
  for (int64_t b = 0; b < r.Bn; ++b)
    for (int64_t d = 0; d < r.Dn; ++d)
      for (int64_t v = r.V - 1; v >= 0; --v)
        for (int64_t t = r.T - 1; t >= 0; --t) {
          const size_t i = r.xi(b, d, v, t);
          if (!r.Dskip.empty()) {
            dD[static_cast<size_t>(d)] += dy[i] * r.x[i];
            dx[i] += dy[i] * r.Dskip[d];
          }
          for (int64_t n = 0; n < r.N; ++n) {
            const size_t h = r.hi(b, d, v, t, n), c = r.bi(b, v, t, n);
            gh1[h] += dy[i] * r.C1[c];
            gh2[h] += dy[i] * r.C2[c];
            dC1[c] += dy[i] * g.h1[h];
            dC2[c] += dy[i] * g.h2[h];
            gu1[h] = gh1[h];
            if (t >= s) {
              const size_t p = r.hi(b, d, v, t - s, n);
              ga1[h] = gh1[h] * g.h1[p];
              ga2[h] = gh1[h] * g.h2[p];
              gh1[p] += gh1[h] * g.a1[h];
              gh2[p] += gh1[h] * g.a2[h];
            }
            gu2[h] = gh2[h];
            if (v > 0) {
              const size_t p = r.hi(b, d, v - 1, t, n);
              ga3[h] = gh2[h] * g.h1[p];
              ga4[h] = gh2[h] * g.h2[p];
              gh1[p] += gh2[h] * g.a3[h];
              gh2[p] += gh2[h] * g.a4[h];
            }
          }
        }
  // Through the discretization, element by element.
  const bool sp_pair = scan2d_state_pair(in.opt.discretization), use_zoh = scan2d_zoh(in.opt.discretization);
  for (int64_t b = 0; b < r.Bn; ++b)
    for (int64_t d = 0; d < r.Dn; ++d)
      for (int64_t v = 0; v < r.V; ++v)
        for (int64_t t = 0; t < r.T; ++t) {
          const size_t i = r.xi(b, d, v, t);
          const double d1 = g.d1[i], d2 = g.d2[i];
          double gd1 = 0, gd2 = 0;
          for (int64_t n = 0; n < r.N; ++n) {
            const size_t h = r.hi(b, d, v, t, n), c = r.bi(b, v, t, n), an = static_cast<size_t>(d * r.N + n);
            // a = exp(p A)
            gd1 += ga1[h] * g.a1[h] * r.A1[an];
            dA1[an] += ga1[h] * g.a1[h] * d1;
            (sp_pair ? gd2 : gd1) += ga2[h] * g.a2[h] * r.A2[an];
            dA2[an] += ga2[h] * g.a2[h] * (sp_pair ? d2 : d1);
            (sp_pair ? gd1 : gd2) += ga3[h] * g.a3[h] * r.A3[an];
            dA3[an] += ga3[h] * g.a3[h] * (sp_pair ? d1 : d2);
            gd2 += ga4[h] * g.a4[h] * r.A4[an];
            dA4[an] += ga4[h] * g.a4[h] * d2;
            // u = k(Δ, A) B x
            const double gk1 = gu1[h] * r.B1[c] * r.x[i], gk2 = gu2[h] * r.B2[c] * r.x[i];
            dB1[c] += gu1[h] * g.k1[h] * r.x[i];
            dB2[c] += gu2[h] * g.k2[h] * r.x[i];
            dx[i] += gu1[h] * g.k1[h] * r.B1[c] + gu2[h] * g.k2[h] * r.B2[c];
            if (use_zoh) {
              // k = expm1(Δ A)/A: dk/dΔ = exp(Δ A), dk/dA = (Δ A exp(Δ A) - expm1(Δ A)) / A²
              const double z1 = d1 * r.A1[an], z2 = d2 * r.A4[an];
              gd1 += gk1 * std::exp(z1);
              gd2 += gk2 * std::exp(z2);
              dA1[an] += gk1 * (z1 * std::exp(z1) - std::expm1(z1)) / (r.A1[an] * r.A1[an]);
              dA4[an] += gk2 * (z2 * std::exp(z2) - std::expm1(z2)) / (r.A4[an] * r.A4[an]);
            } else {
              gd1 += gk1;
              gd2 += gk2;
            }
          }
          const double pre1 = r.del1[i] + (r.bias1.empty() ? 0 : r.bias1[d]);
          const double pre2 = r.del2[i] + (r.bias2.empty() ? 0 : r.bias2[d]);
          if (in.opt.delta_softplus) {
            if (pre1 <= 20) gd1 *= sig(pre1);
            if (pre2 <= 20) gd2 *= sig(pre2);
          }
          dd1[i] = gd1;
          dd2[i] = gd2;
          db1[static_cast<size_t>(d)] += gd1;
          db2[static_cast<size_t>(d)] += gd2;
        }
  if (in.opt.reverse_variates) {
    for (Vec* a : {&dx, &dd1, &dd2}) flip_bdv(*a, r, 1);
    for (Vec* a : {&dB1, &dB2, &dC1, &dC2}) flip_bv(*a, r);
  }
  const Shape xs{r.Bn, r.Dn, r.V, r.T}, as{r.Dn, r.N}, bcs{r.Bn, r.V, r.T, r.N};
  add_into(gr.dx, xs, dx);
  add_into(gr.ddelta1, xs, dd1);
  add_into(gr.ddelta2, xs, dd2);
  add_into(gr.dA1, as, dA1);
  add_into(gr.dA2, as, dA2);
  add_into(gr.dA3, as, dA3);
  add_into(gr.dA4, as, dA4);
  add_into(gr.dB1, bcs, dB1);
  add_into(gr.dB2, bcs, dB2);
  add_into(gr.dC1, bcs, dC1);
  add_into(gr.dC2, bcs, dC2);
  if (!r.Dskip.empty()) add_into(gr.dDskip, {r.Dn}, dD);
  if (!r.bias1.empty()) add_into(gr.ddelta_bias1, {r.Dn}, db1);
  if (!r.bias2.empty()) add_into(gr.ddelta_bias2, {r.Dn}, db2);
}

}  // namespace ssmkit::core
