// Selective scan: hand-computed case, fast path vs the float64 reference, finite-difference gradients
// in double on both paths, chunk boundaries, groups, initial state, determinism and shape errors.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "gradcheck.h"
#include "ssmkit/core/ops/vec_math.h"
#include "ssmkit/core/ssm/selective_scan.h"

using namespace ssmkit::core;
using ssmkit::test::dot;
using ssmkit::test::gradcheck;
using ssmkit::test::random_tensor;

namespace {

struct Config {
  int64_t B = 2, D = 4, N = 3, L = 11, G = 0;  // G = 0: B,C are (B,N,L)
  bool with_D = true, with_z = true, with_bias = true, with_h0 = false, softplus = true;
};

ScanInputs make_inputs(const Config& c, uint64_t seed, DType dt = DType::F64) {
  ScanInputs in;
  in.u = random_tensor({c.B, c.D, c.L}, seed + 1, -1, 1, dt);
  // without softplus delta is used as is: keep it positive so that exp(delta A) < 1, as in real use
  in.delta = c.softplus ? random_tensor({c.B, c.D, c.L}, seed + 2, -1.5, 0.5, dt)
                        : random_tensor({c.B, c.D, c.L}, seed + 2, 0.05, 1.0, dt);
  in.A = random_tensor({c.D, c.N}, seed + 3, -2, -0.2, dt);
  Shape bc = c.G ? Shape{c.B, c.G, c.N, c.L} : Shape{c.B, c.N, c.L};
  in.B = random_tensor(bc, seed + 4, -1, 1, dt);
  in.C = random_tensor(bc, seed + 5, -1, 1, dt);
  if (c.with_D) in.D = random_tensor({c.D}, seed + 6, 0.5, 1.5, dt);
  if (c.with_z) in.z = random_tensor({c.B, c.D, c.L}, seed + 7, -2, 2, dt);
  if (c.with_bias) in.delta_bias = random_tensor({c.D}, seed + 8, -0.5, 0.5, dt);
  if (c.with_h0) in.h0 = random_tensor({c.B, c.D, c.N}, seed + 9, -1, 1, dt);
  in.delta_softplus = c.softplus;
  return in;
}

}  // namespace

// The float kernels compute lane by lane with the same operations at every vector width, so AVX-512 and AVX2
// give the same bits: forward outputs, saved chunk states and the backward's per-channel gradients are equal;
// dB and dC sum over channel blocks of the vector width, so they agree to rounding.
TEST(SelectiveScan, Avx512AndAvx2GiveTheSameBits) {
  const std::vector<std::string> targets = simd_targets_available();
  auto has = [&](const char* t) { return std::find(targets.begin(), targets.end(), t) != targets.end(); };
  if (!has("AVX3") || !has("AVX2")) GTEST_SKIP() << "needs a CPU with AVX-512";
  for (const Config& c : {Config{2, 40, 16, 150, 0, true, true, true, true, true},
                          Config{1, 22, 16, 70, 2, true, false, true, false, true},
                          Config{1, 16, 16, 1, 0, false, false, false, false, false}})
    for (int64_t chunk : {1, 7, 64}) {
      const ScanInputs in = make_inputs(c, 5, DType::F32);
      std::vector<std::vector<double>> outs[2];
      for (int k = 0; k < 2; ++k) {
        simd_force_target(k == 0 ? "AVX3" : "AVX2");
        Tensor y, last;
        ScanSaved saved;
        selective_scan_forward(y, &last, &saved, in, chunk);
        Tensor dy = random_tensor(y.shape(), 11, -1, 1, DType::F32), dl = random_tensor(last.shape(), 12, -1, 1, DType::F32);
        ScanGrads g;
        selective_scan_backward(g, dy, dl, in, saved);
        for (const Tensor* t : {&y, &last, &saved.chunk_states, &g.du, &g.ddelta, &g.dA, &g.dB, &g.dC})
          outs[k].push_back(t->to_double_vector());
      }
      simd_force_target("");
      for (size_t i = 0; i < outs[0].size(); ++i) {
        if (i < 6) {
          EXPECT_EQ(outs[0][i], outs[1][i]) << "output " << i << ", L=" << c.L << " D=" << c.D << " chunk=" << chunk;
          continue;
        }
        for (size_t j = 0; j < outs[0][i].size(); ++j)
          ASSERT_NEAR(outs[0][i][j], outs[1][i][j], 1e-5 * std::max(1.0, std::abs(outs[1][i][j])))
              << (i == 6 ? "dB" : "dC") << " at " << j << ", chunk=" << chunk;
      }
    }
}

TEST(SelectiveScan, HandComputedSingleChannel) {
  // B=1, D=1, N=1, L=3, no softplus: h_l = exp(d A) h + d B u ; y = C h + D u
  ScanInputs in;
  in.u = Tensor::from_vector({1, 1, 3}, std::vector<double>{1, 2, -1});
  in.delta = Tensor::from_vector({1, 1, 3}, std::vector<double>{0.5, 0.5, 1.0});
  in.A = Tensor::from_vector({1, 1}, std::vector<double>{-1});
  in.B = Tensor::from_vector({1, 1, 3}, std::vector<double>{1, 1, 2});
  in.C = Tensor::from_vector({1, 1, 3}, std::vector<double>{1, 2, 1});
  in.D = Tensor::from_vector({1}, std::vector<double>{0.5});
  double h1 = 0.5, h2 = std::exp(-0.5) * h1 + 1.0, h3 = std::exp(-1.0) * h2 - 2.0;
  Tensor y, last;
  selective_scan_forward(y, &last, nullptr, in);
  EXPECT_NEAR(y.at<double>({0, 0, 0}), h1 + 0.5, 1e-14);
  EXPECT_NEAR(y.at<double>({0, 0, 1}), 2 * h2 + 1.0, 1e-14);
  EXPECT_NEAR(y.at<double>({0, 0, 2}), h3 - 0.5, 1e-14);
  EXPECT_NEAR(last.at<double>({0, 0, 0}), h3, 1e-14);
}

// The float32 path on every SIMD path this CPU runs (AVX-512 / AVX2 / portable), against the float64
// reference: state sizes below, at and above a vector (padding), odd lengths, groups, h0, no options.
TEST(SelectiveScan, FastMatchesReferenceOnEverySimdPath) {
  std::vector<Config> cfgs;
  cfgs.push_back({});
  cfgs.push_back({1, 5, 1, 1, 0, true, true, true, false, true});     // L = 1, N = 1
  cfgs.push_back({2, 6, 4, 37, 3, true, false, true, true, true});    // grouped, h0
  cfgs.push_back({1, 3, 16, 130, 0, false, false, false, false, false});  // plain
  cfgs.push_back({1, 2, 17, 45, 0, true, true, true, true, true});    // N = 17: a partial last vector
  cfgs.push_back({2, 4, 32, 70, 2, true, true, true, false, true});   // N = 32, grouped
  cfgs.push_back({1, 35, 4, 70, 0, true, true, true, false, true});   // D = 35: whole 16- and 8-row tiles + rest
  for (const std::string& target : simd_targets_available()) {
    simd_force_target(target);
    SCOPED_TRACE("SIMD path " + target);
    for (const Config& c : cfgs)
      for (int64_t chunk : {1, 4, 64, 1000}) {
        ScanInputs in32 = make_inputs(c, 7, DType::F32);
        Tensor y, last, yr, lastr;
        ScanSaved saved;
        selective_scan_forward(y, &last, &saved, in32, chunk);
        selective_scan_ref_forward(yr, &lastr, in32);
        EXPECT_LT(max_abs_diff(y, yr), 2e-5 * std::max(1.0, max_abs(yr))) << "L=" << c.L << " chunk=" << chunk;
        EXPECT_LT(max_abs_diff(last, lastr), 2e-5 * std::max(1.0, max_abs(lastr)));
        Tensor dy = random_tensor(y.shape(), 11, -1, 1, DType::F32), dl = random_tensor(last.shape(), 12, -1, 1, DType::F32);
        ScanGrads g, gref;
        selective_scan_backward(g, dy, dl, in32, saved);
        selective_scan_ref_backward(gref, dy, dl, in32);
        auto close = [&](const Tensor& a, const Tensor& b, const char* name) {
          ASSERT_EQ(a.defined(), b.defined()) << name;
          if (a.defined()) {
            EXPECT_LT(max_abs_diff(a, b), 5e-5 * std::max(1.0, max_abs(b))) << name << " chunk=" << chunk;
          }
        };
        close(g.du, gref.du, "du");
        close(g.ddelta, gref.ddelta, "ddelta");
        close(g.dA, gref.dA, "dA");
        close(g.dB, gref.dB, "dB");
        close(g.dC, gref.dC, "dC");
        close(g.dD, gref.dD, "dD");
        close(g.dz, gref.dz, "dz");
        close(g.ddelta_bias, gref.ddelta_bias, "ddelta_bias");
        close(g.dh0, gref.dh0, "dh0");
      }
  }
  simd_force_target("");
}

// Finite differences in double through the production path (chunk 4 over L 11 crosses boundaries) and
// through the reference path.
static void run_gradcheck(const Config& c, bool use_ref) {
  ScanInputs in = make_inputs(c, 3);
  Tensor y0, last0;
  selective_scan_ref_forward(y0, &last0, in);
  const Tensor wy = random_tensor(y0.shape(), 21), wl = random_tensor(last0.shape(), 22);
  auto loss = [&]() {
    Tensor y, last;
    if (use_ref)
      selective_scan_ref_forward(y, &last, in);
    else
      selective_scan_forward(y, &last, nullptr, in, 4);
    return dot(y, wy) + dot(last, wl);
  };
  ScanGrads g;
  if (use_ref) {
    selective_scan_ref_backward(g, wy, wl, in);
  } else {
    Tensor y, last;
    ScanSaved saved;
    selective_scan_forward(y, &last, &saved, in, 4);
    selective_scan_backward(g, wy, wl, in, saved);
  }
  gradcheck(loss, in.u, g.du, "u");
  gradcheck(loss, in.delta, g.ddelta, "delta");
  gradcheck(loss, in.A, g.dA, "A");
  gradcheck(loss, in.B, g.dB, "B");
  gradcheck(loss, in.C, g.dC, "C");
  if (c.with_D) gradcheck(loss, in.D, g.dD, "D");
  if (c.with_z) gradcheck(loss, in.z, g.dz, "z");
  if (c.with_bias) gradcheck(loss, in.delta_bias, g.ddelta_bias, "delta_bias");
  if (c.with_h0) gradcheck(loss, in.h0, g.dh0, "h0");
}

TEST(SelectiveScan, GradcheckFastPathAllInputs) { run_gradcheck({2, 4, 3, 11, 0, true, true, true, true, true}, false); }
TEST(SelectiveScan, GradcheckFastPathGroupedNoSoftplus) {
  run_gradcheck({2, 4, 2, 9, 2, true, false, false, false, false}, false);
}
TEST(SelectiveScan, GradcheckReferencePath) { run_gradcheck({1, 4, 3, 7, 2, true, true, true, true, true}, true); }

TEST(SelectiveScan, ChunkStatesAreSmall) {
  Config c{1, 8, 16, 1000, 0};
  ScanInputs in = make_inputs(c, 5, DType::F32);
  Tensor y;
  ScanSaved saved;
  selective_scan_forward(y, nullptr, &saved, in, 64);
  EXPECT_EQ(saved.chunk_states.shape(), (Shape{1, 8, 16, 16}));  // ceil(1000/64) = 16 chunks
}

TEST(SelectiveScan, GradientsAccumulate) {
  Config c;
  ScanInputs in = make_inputs(c, 9, DType::F32);
  Tensor y, last;
  ScanSaved saved;
  selective_scan_forward(y, &last, &saved, in);
  Tensor dy = random_tensor(y.shape(), 1, -1, 1, DType::F32);
  ScanGrads once, twice;
  selective_scan_backward(once, dy, Tensor{}, in, saved);
  selective_scan_backward(twice, dy, Tensor{}, in, saved);
  selective_scan_backward(twice, dy, Tensor{}, in, saved);
  // The first backward writes new gradients outright (no zero-fill); the second adds into them.
  auto expect_doubled = [](const Tensor& one, const Tensor& two, const char* name) {
    ASSERT_TRUE(one.defined() && two.defined()) << name;
    std::vector<double> a = one.to_double_vector(), b = two.to_double_vector();
    ASSERT_EQ(a.size(), b.size()) << name;
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_NEAR(2 * a[i], b[i], 1e-5 * std::max(1.0, std::abs(a[i]))) << name << " element " << i;
  };
  expect_doubled(once.dA, twice.dA, "dA");
  expect_doubled(once.du, twice.du, "du");
  expect_doubled(once.ddelta, twice.ddelta, "ddelta");
  expect_doubled(once.dz, twice.dz, "dz");
  expect_doubled(once.dB, twice.dB, "dB");
  expect_doubled(once.dC, twice.dC, "dC");
  expect_doubled(once.dD, twice.dD, "dD");
  // Only some gradients given: those accumulate, the others start from zero.
  ScanGrads mixed;
  mixed.du = once.du.clone();
  selective_scan_backward(mixed, dy, Tensor{}, in, saved);
  expect_doubled(once.du, mixed.du, "du (given)");
  EXPECT_EQ(max_abs_diff(mixed.ddelta, once.ddelta), 0.0);
  EXPECT_EQ(max_abs_diff(mixed.dz, once.dz), 0.0);
}

// write_rows: given buffers holding anything are written, not added into (the Mamba block's pooled buffers).
TEST(SelectiveScan, WriteRowsOverwritesGivenBuffers) {
  Config c;
  ScanInputs in = make_inputs(c, 21, DType::F32);
  Tensor y;
  ScanSaved saved;
  selective_scan_forward(y, nullptr, &saved, in);
  Tensor dy = random_tensor(y.shape(), 3, -1, 1, DType::F32);
  ScanGrads fresh, given;
  selective_scan_backward(fresh, dy, Tensor{}, in, saved);
  given.du = Tensor::full(y.shape(), 7.0, DType::F32);
  given.ddelta = Tensor::full(y.shape(), -3.0, DType::F32);
  given.dz = Tensor::full(y.shape(), 1e30, DType::F32);
  given.write_rows = true;
  const Tensor du_buf = given.du, ddelta_buf = given.ddelta, dz_buf = given.dz;
  selective_scan_backward(given, dy, Tensor{}, in, saved);
  EXPECT_TRUE(given.du.same_storage(du_buf) && given.ddelta.same_storage(ddelta_buf) && given.dz.same_storage(dz_buf))
      << "the given buffers are written, not replaced";
  EXPECT_EQ(max_abs_diff(given.du, fresh.du), 0.0);
  EXPECT_EQ(max_abs_diff(given.ddelta, fresh.ddelta), 0.0);
  EXPECT_EQ(max_abs_diff(given.dz, fresh.dz), 0.0);
  ScanGrads missing;  // write_rows without the buffers is refused
  missing.write_rows = true;
  EXPECT_THROW(selective_scan_backward(missing, dy, Tensor{}, in, saved), Error);
}

TEST(SelectiveScan, DeterministicForFixedThreadCount) {
  Config c{3, 16, 8, 50, 4};
  ScanInputs in = make_inputs(c, 13, DType::F32);
  Tensor dy = random_tensor({3, 16, 50}, 2, -1, 1, DType::F32);
  auto grads = [&]() {
    Tensor y;
    ScanSaved saved;
    selective_scan_forward(y, nullptr, &saved, in);
    ScanGrads g;
    selective_scan_backward(g, dy, Tensor{}, in, saved);
    return g;
  };
  ScanGrads a = grads(), b = grads();
  EXPECT_EQ(max_abs_diff(a.dA, b.dA), 0.0);
  EXPECT_EQ(max_abs_diff(a.dB, b.dB), 0.0);
  EXPECT_EQ(max_abs_diff(a.du, b.du), 0.0);
}

TEST(SelectiveScan, ShapeErrorsNameTheArgument) {
  Config c;
  ScanInputs in = make_inputs(c, 1, DType::F32);
  in.A = Tensor::zeros({c.D + 1, c.N});
  Tensor y;
  try {
    selective_scan_forward(y, nullptr, nullptr, in);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("A has shape (5,3), expected (4,3)"), std::string::npos) << e.what();
  }
  in = make_inputs(c, 1, DType::F32);
  in.z = Tensor::zeros({c.B, c.D, c.L}, DType::F64);
  EXPECT_THROW(selective_scan_forward(y, nullptr, nullptr, in), Error);
}

namespace {

// Channel-layout tensors in token layout: rows (B,D,L) -> (B,L,D); B, C (B,N,L) -> (B,L,N), (B,G,N,L) ->
// (B,L,G,N). `wide` > 0 puts the result in columns [off, off + width) of a wider buffer of token rows
// (the view the Mamba block passes: a half of xz, the B or C columns of x_dbl).
Tensor rows_as_tokens(const Tensor& t) { return t.transpose(1, 2).contiguous(); }
Tensor bc_as_tokens(const Tensor& t) {
  return t.ndim() == 4 ? t.transpose(2, 3).transpose(1, 2).contiguous() : t.transpose(1, 2).contiguous();
}
Tensor in_wider_rows(const Tensor& tok, int64_t off, int64_t wide) {
  Tensor buf = Tensor::full({tok.size(0), tok.size(1), wide}, 1e30, tok.dtype());
  Tensor v = buf.slice(2, off, off + tok.size(2));
  v.copy_from(tok);
  return v;
}

void expect_token_layout_matches(const Config& c, DType dt, bool views) {
  SCOPED_TRACE(::testing::Message() << "B " << c.B << " D " << c.D << " N " << c.N << " L " << c.L << " G " << c.G
                                    << (dt == DType::F32 ? " f32" : " f64") << (views ? " views" : ""));
  const ScanInputs ch = make_inputs(c, 31, dt);
  ScanInputs tk = ch;
  tk.layout = ScanLayout::kTokens;
  tk.u = rows_as_tokens(ch.u);
  tk.delta = rows_as_tokens(ch.delta);
  if (ch.z.defined()) tk.z = views ? in_wider_rows(rows_as_tokens(ch.z), c.D, 2 * c.D + 3) : rows_as_tokens(ch.z);
  tk.B = bc_as_tokens(ch.B);
  tk.C = bc_as_tokens(ch.C);
  if (views && c.G == 0) {  // B, C as columns of one (B, L, R + 2N) matrix, like x_dbl
    tk.B = in_wider_rows(tk.B, 2, 2 + 2 * c.N);
    tk.C = in_wider_rows(tk.C, 2 + c.N, 2 + 2 * c.N);
  }
  Tensor y_ch, y_tk, last_ch, last_tk;
  ScanSaved s_ch, s_tk;
  selective_scan_forward(y_ch, &last_ch, &s_ch, ch, 16);
  selective_scan_forward(y_tk, &last_tk, &s_tk, tk, 16);
  EXPECT_EQ(y_tk.shape(), Shape({c.B, c.L, c.D}));
  EXPECT_EQ(max_abs_diff(y_tk.transpose(1, 2).contiguous(), y_ch), 0.0);
  EXPECT_EQ(max_abs_diff(last_tk, last_ch), 0.0);

  const Tensor dy = random_tensor({c.B, c.D, c.L}, 5, -1, 1, dt);
  ScanGrads g_ch, g_tk;
  selective_scan_backward(g_ch, dy, Tensor{}, ch, s_ch);
  if (views && dt == DType::F32) {  // written in place: rows into given buffers, dz, dB, dC into wider rows
    g_tk.write_rows = true;
    g_tk.du = Tensor::full({c.B, c.L, c.D}, 7.0, dt);
    g_tk.ddelta = Tensor::full({c.B, c.L, c.D}, 7.0, dt);
    if (ch.z.defined()) g_tk.dz = in_wider_rows(Tensor::full({c.B, c.L, c.D}, 7.0, dt), 1, c.D + 2);
    if (c.G == 0) {  // added into (zeros)
      g_tk.dB = in_wider_rows(Tensor::zeros({c.B, c.L, c.N}, dt), 0, 2 * c.N);
      g_tk.dC = in_wider_rows(Tensor::zeros({c.B, c.L, c.N}, dt), c.N, 2 * c.N);
    }
  }
  selective_scan_backward(g_tk, rows_as_tokens(dy), Tensor{}, tk, s_tk);
  EXPECT_EQ(max_abs_diff(g_tk.du.transpose(1, 2).contiguous(), g_ch.du), 0.0);
  EXPECT_EQ(max_abs_diff(g_tk.ddelta.transpose(1, 2).contiguous(), g_ch.ddelta), 0.0);
  if (ch.z.defined()) {
    EXPECT_EQ(max_abs_diff(g_tk.dz.transpose(1, 2).contiguous(), g_ch.dz), 0.0);
  }
  EXPECT_EQ(max_abs_diff(g_tk.dB.contiguous(), bc_as_tokens(g_ch.dB)), 0.0);
  EXPECT_EQ(max_abs_diff(g_tk.dC.contiguous(), bc_as_tokens(g_ch.dC)), 0.0);
  EXPECT_EQ(max_abs_diff(g_tk.dA, g_ch.dA), 0.0);
  if (ch.D.defined()) {
    EXPECT_EQ(max_abs_diff(g_tk.dD, g_ch.dD), 0.0);
  }
  if (ch.delta_bias.defined()) {
    EXPECT_EQ(max_abs_diff(g_tk.ddelta_bias, g_ch.ddelta_bias), 0.0);
  }
  if (ch.h0.defined()) {
    EXPECT_EQ(max_abs_diff(g_tk.dh0, g_ch.dh0), 0.0);
  }
}

}  // namespace

// (B,L,D) inputs give exactly the (B,D,L) results: the same kernels read token rows in place.
TEST(SelectiveScan, TokenLayoutMatchesChannelLayout) {
  for (DType dt : {DType::F32, DType::F64})
    for (bool views : {false, true}) {
      expect_token_layout_matches({3, 19, 4, 11, 0}, dt, views);                               // partial block
      expect_token_layout_matches({2, 16, 2, 40, 0, true, true, true, true, true}, dt, views);  // chunks, h0
      expect_token_layout_matches({2, 24, 3, 9, 2}, dt, views);                                // groups
      expect_token_layout_matches({4, 8, 3, 1, 0}, dt, views);                                 // one step
      expect_token_layout_matches({1, 8, 3, 5, 0, false, false, false, false, false}, dt, views);
    }
}

TEST(SelectiveScan, TokenLayoutShapeErrors) {
  Config c;
  ScanInputs in = make_inputs(c, 1, DType::F32);
  in.layout = ScanLayout::kTokens;  // (B,D,L) tensors read as (B,L,D): D is now L, and A no longer fits
  Tensor y;
  try {
    selective_scan_forward(y, nullptr, nullptr, in);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("A has shape (4,3), expected (11,3)"), std::string::npos) << e.what();
  }
}

// In token layout too, given gradients are added into and missing ones start from zero (dB given, dC not).
TEST(SelectiveScan, TokenLayoutGradientsAccumulate) {
  Config c;
  ScanInputs in = make_inputs(c, 41, DType::F32);
  in.layout = ScanLayout::kTokens;
  in.u = rows_as_tokens(in.u);
  in.delta = rows_as_tokens(in.delta);
  in.z = rows_as_tokens(in.z);
  in.B = bc_as_tokens(in.B);
  in.C = bc_as_tokens(in.C);
  Tensor y;
  ScanSaved saved;
  selective_scan_forward(y, nullptr, &saved, in);
  const Tensor dy = random_tensor(y.shape(), 2, -1, 1, DType::F32);
  ScanGrads once, twice, mixed;
  selective_scan_backward(once, dy, Tensor{}, in, saved);
  selective_scan_backward(twice, dy, Tensor{}, in, saved);
  selective_scan_backward(twice, dy, Tensor{}, in, saved);
  auto near_double = [](const Tensor& one, const Tensor& two) {  // max |2 one - two|
    const std::vector<double> a = one.contiguous().to_double_vector(), b = two.contiguous().to_double_vector();
    double m = a.size() == b.size() ? 0.0 : 1e30;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(2 * a[i] - b[i]));
    return m;
  };
  for (auto [a, b, name] : {std::tuple{&once.du, &twice.du, "du"}, {&once.dz, &twice.dz, "dz"},
                            {&once.dB, &twice.dB, "dB"}, {&once.dC, &twice.dC, "dC"}, {&once.dA, &twice.dA, "dA"}})
    EXPECT_LT(near_double(*a, *b), 1e-5) << name;
  mixed.dB = once.dB.clone();
  selective_scan_backward(mixed, dy, Tensor{}, in, saved);
  EXPECT_LT(near_double(once.dB, mixed.dB), 1e-5);
  EXPECT_EQ(max_abs_diff(mixed.dC, once.dC), 0.0);
  EXPECT_EQ(max_abs_diff(mixed.du, once.du), 0.0);
}

// A state that decays with no input (zero padding, silence) must reach zero without passing through denormals:
// on x86 every multiply reading one takes a microcode assist (8,192 steps of zero input ran 12x slower). The
// recurrences flush them (core/denormals.h) on the threads that run them, and leave the caller's mode alone.
TEST(SelectiveScan, ZeroInputDecaysWithoutDenormals) {
  Config c;
  c.B = 1;
  c.D = 32;
  c.N = 16;
  c.L = 4096;
  c.with_z = false;
  ScanInputs in = make_inputs(c, 91, DType::F32);
  float* u = in.u.data<float>();
  for (int64_t d = 0; d < c.D; ++d)
    for (int64_t l = 16; l < c.L; ++l) u[d * c.L + l] = 0.0f;  // input only in the first 16 steps
  in.delta_bias = Tensor::full({c.D}, 1.0, DType::F32);  // d = softplus(-0.5..1.5) ~ 0.47..1.7: e^(d A) in e^-3.4..e^-0.09
  using ssmkit::test::is_denormal;
  for (const int threads : {1, 2}) {
    ssmkit::test::ScopedThreads scope(threads);
    Tensor y, last;
    ScanSaved saved;
    selective_scan_forward(y, &last, &saved, in);
    for (const Tensor* t : {&y, &last, &saved.chunk_states})
      for (int64_t i = 0; i < t->numel(); ++i) ASSERT_FALSE(is_denormal(t->data<float>()[i])) << i;
    EXPECT_EQ(last.data<float>()[0], 0.0f);  // decayed all the way
    // the backward's adjoint runs the same decays in reverse
    ScanGrads g;
    const Tensor dy = random_tensor(y.shape(), 92, -1, 1, DType::F32);
    selective_scan_backward(g, dy, Tensor{}, in, saved);
    for (const Tensor* t : {&g.du, &g.ddelta, &g.dA, &g.dB, &g.dC})
      for (int64_t i = 0; i < t->numel(); ++i) ASSERT_FALSE(is_denormal(t->data<float>()[i])) << i;
  }
  EXPECT_TRUE(ssmkit::test::thread_makes_denormals()) << "the caller's floating-point mode was changed";
}
