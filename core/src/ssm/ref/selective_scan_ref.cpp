// Selective scan reference path: the literal recurrence of selective_scan_ref (state-spaces/mamba) in
// double precision over fully materialized states (B,D,L,N), and its backward by reverse-mode
// differentiation of those stored states. Slow and memory-hungry on purpose: it is the test oracle for
// the chunked production path in ../selective_scan.cpp.
#include <cmath>
#include <vector>

#include "ssmkit/core/ssm/selective_scan.h"

namespace ssmkit::core {

namespace {

struct RefData {
  int64_t Bn, Dn, N, L, G;
  std::vector<double> u, delta, A, B, C, D, z, bias, h0;
  // B and C element (b, group of c, n, l)
  double Bv(int64_t b, int64_t c, int64_t n, int64_t l) const { return B[((b * G + c / (Dn / G)) * N + n) * L + l]; }
  double Cv(int64_t b, int64_t c, int64_t n, int64_t l) const { return C[((b * G + c / (Dn / G)) * N + n) * L + l]; }
  size_t bcidx(int64_t b, int64_t c, int64_t n, int64_t l) const {
    return static_cast<size_t>(((b * G + c / (Dn / G)) * N + n) * L + l);
  }
};

std::vector<double> values(const Tensor& t) { return t.defined() ? t.to_double_vector() : std::vector<double>{}; }

RefData load(const ScanInputs& in) {
  SSMKIT_CHECK(in.layout == ScanLayout::kChannels,
               "selective_scan_ref: the reference takes the channel layout (B,D,L) only");
  SSMKIT_CHECK(in.u.ndim() == 3 && in.A.ndim() == 2 && (in.B.ndim() == 3 || in.B.ndim() == 4),
               "selective_scan_ref: u (B,D,L), A (D,N), B (B,N,L) or (B,G,N,L) expected");
  RefData r;
  r.Bn = in.u.size(0);
  r.Dn = in.u.size(1);
  r.L = in.u.size(2);
  r.N = in.A.size(1);
  r.G = in.B.ndim() == 4 ? in.B.size(1) : 1;
  r.u = values(in.u);
  r.delta = values(in.delta);
  r.A = values(in.A);
  r.B = values(in.B);
  r.C = values(in.C);
  r.D = values(in.D);
  r.z = values(in.z);
  r.bias = values(in.delta_bias);
  r.h0 = values(in.h0);
  SSMKIT_CHECK(static_cast<int64_t>(r.delta.size()) == r.Bn * r.Dn * r.L &&
                   static_cast<int64_t>(r.B.size()) == r.Bn * r.G * r.N * r.L && r.B.size() == r.C.size(),
               "selective_scan_ref: inconsistent shapes");
  return r;
}

double sp(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
double sig(double x) { return 1 / (1 + std::exp(-x)); }

// Materializes d (B,D,L) after bias/softplus, the states h (B,D,L,N) and y before gating (B,D,L).
void run(const RefData& r, bool softplus_on, std::vector<double>& d, std::vector<double>& h, std::vector<double>& ypre) {
  d.assign(static_cast<size_t>(r.Bn * r.Dn * r.L), 0);
  h.assign(static_cast<size_t>(r.Bn * r.Dn * r.L * r.N), 0);
  ypre.assign(d.size(), 0);
  for (int64_t b = 0; b < r.Bn; ++b)
    for (int64_t c = 0; c < r.Dn; ++c)
      for (int64_t l = 0; l < r.L; ++l) {
        const size_t i = static_cast<size_t>((b * r.Dn + c) * r.L + l);
        double dv = r.delta[i] + (r.bias.empty() ? 0 : r.bias[c]);
        d[i] = softplus_on ? sp(dv) : dv;
        double y = 0;
        for (int64_t n = 0; n < r.N; ++n) {
          double prev = l > 0 ? h[i * r.N - r.N + n] : (r.h0.empty() ? 0 : r.h0[(b * r.Dn + c) * r.N + n]);
          double hv = std::exp(d[i] * r.A[c * r.N + n]) * prev + d[i] * r.Bv(b, c, n, l) * r.u[i];
          h[i * r.N + n] = hv;
          y += hv * r.Cv(b, c, n, l);
        }
        ypre[i] = y + (r.D.empty() ? 0 : r.D[c] * r.u[i]);
      }
}

Tensor make(const Shape& shape, const std::vector<double>& v) { return Tensor::from_vector(shape, v); }

void add_into(Tensor& g, const Shape& shape, const std::vector<double>& v) {
  Tensor t = make(shape, v);
  if (!g.defined()) {
    g = t;
    return;
  }
  SSMKIT_CHECK(g.shape() == shape, "selective_scan_ref_backward: gradient shape ", shape_str(g.shape()), " vs ",
               shape_str(shape));
  std::vector<double> old = g.to_double_vector();
  for (size_t i = 0; i < old.size(); ++i) old[i] += v[i];
  g.copy_from(make(shape, old));
}

}  // namespace

void selective_scan_ref_forward(Tensor& y, Tensor* last_state, const ScanInputs& in) {
  const RefData r = load(in);
  std::vector<double> d, h, ypre;
  run(r, in.delta_softplus, d, h, ypre);
  std::vector<double> out = ypre;
  if (!r.z.empty())
    for (size_t i = 0; i < out.size(); ++i) out[i] *= r.z[i] * sig(r.z[i]);
  y = make({r.Bn, r.Dn, r.L}, out);
  if (last_state) {
    std::vector<double> last(static_cast<size_t>(r.Bn * r.Dn * r.N), 0);
    for (int64_t bc = 0; bc < r.Bn * r.Dn; ++bc)
      for (int64_t n = 0; n < r.N; ++n)
        last[bc * r.N + n] = r.L > 0 ? h[(bc * r.L + r.L - 1) * r.N + n] : (r.h0.empty() ? 0 : r.h0[bc * r.N + n]);
    *last_state = make({r.Bn, r.Dn, r.N}, last);
  }
}

void selective_scan_ref_backward(ScanGrads& gr, const Tensor& dy_t, const Tensor& dlast_t, const ScanInputs& in) {
  const RefData r = load(in);
  std::vector<double> d, h, ypre;
  run(r, in.delta_softplus, d, h, ypre);
  const std::vector<double> dy = dy_t.to_double_vector();
  const std::vector<double> dlast = values(dlast_t);
  std::vector<double> du(d.size(), 0), ddelta(d.size(), 0), dz(d.size(), 0), dA(r.A.size(), 0), dB(r.B.size(), 0),
      dC(r.C.size(), 0), dD(static_cast<size_t>(r.Dn), 0), dbias(static_cast<size_t>(r.Dn), 0),
      dh0(static_cast<size_t>(r.Bn * r.Dn * r.N), 0);
  std::vector<double> gh(static_cast<size_t>(r.N));  // dLoss/dh_l, carried backwards in time
  for (int64_t b = 0; b < r.Bn; ++b)
    for (int64_t c = 0; c < r.Dn; ++c) {
      const int64_t bc = b * r.Dn + c;
      for (int64_t n = 0; n < r.N; ++n) gh[n] = dlast.empty() ? 0 : dlast[bc * r.N + n];
      for (int64_t l = r.L - 1; l >= 0; --l) {
        const size_t i = static_cast<size_t>(bc * r.L + l);
        double gyp = dy[i];  // dLoss/d ypre
        if (!r.z.empty()) {
          const double s = sig(r.z[i]);
          dz[i] = dy[i] * ypre[i] * (s + r.z[i] * s * (1 - s));
          gyp = dy[i] * r.z[i] * s;
        }
        if (!r.D.empty()) {
          dD[c] += gyp * r.u[i];
          du[i] += gyp * r.D[c];
        }
        double gd = 0;
        for (int64_t n = 0; n < r.N; ++n) {
          const size_t hi = i * r.N + n;
          gh[n] += gyp * r.Cv(b, c, n, l);
          dC[r.bcidx(b, c, n, l)] += gyp * h[hi];
          const double prev = l > 0 ? h[hi - r.N] : (r.h0.empty() ? 0 : r.h0[bc * r.N + n]);
          const double a = std::exp(d[i] * r.A[c * r.N + n]);
          // h = a(d) * prev + d * B * u
          gd += gh[n] * (r.A[c * r.N + n] * a * prev + r.Bv(b, c, n, l) * r.u[i]);
          dA[c * r.N + n] += gh[n] * d[i] * a * prev;
          dB[r.bcidx(b, c, n, l)] += gh[n] * d[i] * r.u[i];
          du[i] += gh[n] * d[i] * r.Bv(b, c, n, l);
          gh[n] *= a;  // now dLoss/dh_{l-1} from this step
        }
        const double x = r.delta[i] + (r.bias.empty() ? 0 : r.bias[c]);
        const double gx = in.delta_softplus && x <= 20 ? gd * sig(x) : gd;
        ddelta[i] = gx;
        dbias[c] += gx;
      }
      for (int64_t n = 0; n < r.N; ++n) dh0[bc * r.N + n] = gh[n];
    }
  add_into(gr.du, in.u.shape(), du);
  add_into(gr.ddelta, in.u.shape(), ddelta);
  add_into(gr.dA, in.A.shape(), dA);
  add_into(gr.dB, in.B.shape(), dB);
  add_into(gr.dC, in.C.shape(), dC);
  if (!r.D.empty()) add_into(gr.dD, in.D.shape(), dD);
  if (!r.z.empty()) add_into(gr.dz, in.u.shape(), dz);
  if (!r.bias.empty()) add_into(gr.ddelta_bias, in.delta_bias.shape(), dbias);
  if (!r.h0.empty()) add_into(gr.dh0, in.h0.shape(), dh0);
}

}  // namespace ssmkit::core
