// Selective scan (Mamba S6), the production CPU path: forward, then backward, for F32 and F64.
// F32 rows run the SIMD kernels of selective_scan_kernels.cpp (run-time dispatch); F64 rows (gradient
// checks) run the plain loops below. B and C are transposed once to (B,G,L,N) so that a time step's
// state values are contiguous. In the token layout (ScanLayout::kTokens, F32) the kernels read and write the
// (B,L,D) rows and the (B,L,G,N) B / C rows in place (one row stride each); F64 token inputs go through
// transposed copies (the entry points at the end).
// The forward saves the state entering every chunk of `chunk` steps; the backward walks the chunks in
// reverse, recomputes the chunk's states from that boundary into per-thread scratch, and runs the adjoint
// recurrence of ../shared/specs/core-ssm.md §2.3. Work is split over (batch, channel) rows, statically,
// so every output row has one writer; parameter gradients go to per-thread partials summed in thread order.
#include "ssmkit/core/denormals.h"
#include "ssmkit/core/ssm/selective_scan.h"

#include <omp.h>

#include <type_traits>

#include "ssm/selective_scan_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <bit>
#include <tuple>
#include <utility>
#include <vector>

namespace ssmkit::core {

namespace {

// Below this much work (elements x state), a kernel runs on one thread: waking a team costs more.
constexpr int64_t kParallelMinWork = 32768;

// Sizes of one scan, checked once at the entry point.
struct ScanDims {
  int64_t n_batch = 0, n_chan = 0, n_state = 0, n_len = 0, n_group = 1;
  int64_t chan_per_group() const { return n_chan / n_group; }
};

void check_shape(const Tensor& t, const Shape& want, const char* name) {
  SSMKIT_CHECK(t.shape() == want, "selective_scan: ", name, " has shape ", shape_str(t.shape()), ", expected ",
               shape_str(want));
}

ScanDims check_inputs(const ScanInputs& in) {
  const bool tok = in.layout == ScanLayout::kTokens;
  SSMKIT_CHECK(in.u.defined() && in.delta.defined() && in.A.defined() && in.B.defined() && in.C.defined(),
               "selective_scan: u, delta, A, B and C are required");
  SSMKIT_CHECK(in.u.ndim() == 3, "selective_scan: u must be ", tok ? "(B,L,D)" : "(B,D,L)", ", got ",
               shape_str(in.u.shape()));
  SSMKIT_CHECK(in.A.ndim() == 2, "selective_scan: A must be (D,N), got ", shape_str(in.A.shape()));
  ScanDims s;
  s.n_batch = in.u.size(0);
  s.n_chan = in.u.size(tok ? 2 : 1);
  s.n_len = in.u.size(tok ? 1 : 2);
  s.n_state = in.A.size(1);
  check_shape(in.delta, in.u.shape(), "delta");
  check_shape(in.A, {s.n_chan, s.n_state}, "A");
  SSMKIT_CHECK(in.B.ndim() == 3 || in.B.ndim() == 4, "selective_scan: B must be ",
               tok ? "(B,L,N) or (B,L,G,N)" : "(B,N,L) or (B,G,N,L)", ", got ", shape_str(in.B.shape()));
  if (in.B.ndim() == 4) s.n_group = in.B.size(tok ? 2 : 1);
  SSMKIT_CHECK(s.n_group > 0 && s.n_chan % s.n_group == 0, "selective_scan: ", s.n_group,
               " groups do not divide D = ", s.n_chan);
  const int64_t Bn = s.n_batch, G = s.n_group, N = s.n_state, L = s.n_len;
  Shape bc = in.B.ndim() == 4 ? (tok ? Shape{Bn, L, G, N} : Shape{Bn, G, N, L}) : (tok ? Shape{Bn, L, N} : Shape{Bn, N, L});
  check_shape(in.B, bc, "B");
  check_shape(in.C, bc, "C");
  if (in.D.defined()) check_shape(in.D, {s.n_chan}, "D");
  if (in.delta_bias.defined()) check_shape(in.delta_bias, {s.n_chan}, "delta_bias");
  if (in.z.defined()) check_shape(in.z, in.u.shape(), "z");
  if (in.h0.defined()) check_shape(in.h0, {s.n_batch, s.n_chan, s.n_state}, "h0");
  const DType dt = in.u.dtype();
  SSMKIT_CHECK(dt == DType::F32 || dt == DType::F64, "selective_scan: dtype ", dtype_name(dt),
               " not supported (F32 or F64)");
  for (const Tensor* t : {&in.delta, &in.A, &in.B, &in.C, &in.D, &in.z, &in.delta_bias, &in.h0})
    SSMKIT_CHECK(!t->defined() || t->dtype() == dt, "selective_scan: all inputs must share u's dtype ",
                 dtype_name(dt), ", got ", dtype_name(t->dtype()));
  return s;
}

// Token rows of t ((B,L,W) or (B,L,G,N)): its first element and the stride between time steps, in place
// when the last dim is contiguous, the groups adjacent and the rows evenly spaced (a column slice of a
// (B*L, ld) matrix); otherwise a contiguous copy.
template <class T>
struct TokenRows {
  Tensor keep;
  T* p = nullptr;
  int64_t ld = 0;
};
template <class T>
TokenRows<T> token_rows(const Tensor& t) {
  if (!t.defined()) return {};
  const int64_t nd = t.ndim(), Bn = t.size(0), L = t.size(1);
  const int64_t width = nd == 4 ? t.size(2) * t.size(3) : t.size(2);  // floats per time step
  bool ok = t.stride(nd - 1) == 1 && (nd == 3 || t.size(2) == 1 || t.stride(2) == t.size(3));
  int64_t ld = width;
  if (L > 1) {
    ld = t.stride(1);
    ok = ok && (Bn == 1 || t.stride(0) == L * ld);
  } else if (Bn > 1) {
    ld = t.stride(0);  // one step per batch element: the batch stride is the step stride
  }
  ok = ok && ld >= width;
  TokenRows<T> r;
  r.keep = ok ? t : t.contiguous();
  r.p = const_cast<T*>(r.keep.template data<T>());
  r.ld = ok ? ld : width;
  return r;
}

// B and C in token rows with one step stride (the kernels take one): in place when they agree, else copies.
template <class T>
std::pair<TokenRows<T>, TokenRows<T>> token_rows_bc(const Tensor& B, const Tensor& C) {
  TokenRows<T> b = token_rows<T>(B), c = token_rows<T>(C);
  if (b.ld != c.ld) {
    b = token_rows<T>(B.contiguous());
    c = token_rows<T>(C.contiguous());
  }
  return {b, c};
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// (B,G,N,L) -> (B,G,L,N), so that a time step's N values are contiguous.
template <class T>
std::vector<T> transpose_nl(const Tensor& bc, const ScanDims& s) {
  std::vector<T> out(static_cast<size_t>(s.n_batch * s.n_group * s.n_len * s.n_state));
  const T* src = bc.data<T>();
  const int64_t N = s.n_state, L = s.n_len, NL = N * L;
#pragma omp parallel for schedule(static) if (s.n_batch * s.n_group * NL > kParallelMinWork)
  for (int64_t bg = 0; bg < s.n_batch * s.n_group; ++bg)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) out[(bg * L + l) * N + n] = src[bg * NL + n * L + l];
  return out;
}

// Where the kernels read B, C and z: the transposed (B,G,L,N) copies of B and C in the channel layout
// (z is read from its contiguous rows there); token rows in place in the token layout.
template <class T>
struct ScanOperands {
  std::vector<T> Bt, Ct;
  TokenRows<T> z, B, C;
};
template <class T>
ScanOperands<T> scan_operands(const ScanInputs& in, const ScanDims& s) {
  ScanOperands<T> o;
  if (in.layout == ScanLayout::kTokens) {
    o.z = token_rows<T>(in.z);
    std::tie(o.B, o.C) = token_rows_bc<T>(in.B, in.C);
  } else {
    o.Bt = transpose_nl<T>(in.B.contiguous(), s);
    o.Ct = transpose_nl<T>(in.C.contiguous(), s);
  }
  return o;
}

// The float kernels' unit of work: V consecutive channels [c0, c0 + nc) of batch element b, inside one
// group (B and C differ between groups). Blocks are listed batch-major, channel-minor.
struct ChannelBlock {
  int64_t b, g, c0, nc;
};
std::vector<ChannelBlock> channel_blocks(const ScanDims& s, int64_t V) {
  std::vector<ChannelBlock> out;
  const int64_t cpg = s.chan_per_group();
  for (int64_t b = 0; b < s.n_batch; ++b)
    for (int64_t g = 0; g < s.n_group; ++g)
      for (int64_t c = 0; c < cpg; c += V) out.push_back({b, g, g * cpg + c, std::min(V, cpg - c)});
  return out;
}

template <class T>
inline T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}

template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

inline double exp_vec(double x) { return std::exp(x); }  // the F64 path (gradient checks) stays exact

// One (batch, channel) row of the forward. Bl, Cl (L,N); A (N); h (N) holds the entering state and is
// left at the final one; abar (N) scratch; chunk_out (n_chunks,N) receives the chunk boundary states.
template <class T>
__attribute__((always_inline)) inline void forward_row(T* yrow, T* h, T* abar, T* chunk_out, int64_t chunk,
                                                       const T* urow, const T* drow, const T* zrow, const T* Bl,
                                                       const T* Cl, const T* Ac, T Dc, T bc, bool softplus_on,
                                                       int64_t L, int64_t N) {
  for (int64_t l = 0; l < L; ++l) {
    if (chunk_out && l % chunk == 0) std::copy(h, h + N, chunk_out + (l / chunk) * N);
    T d = drow[l] + bc;
    if (softplus_on) d = softplus(d);
    const T du = d * urow[l];
    const T* Bn_l = Bl + l * N;
    const T* Cn_l = Cl + l * N;
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) abar[n] = exp_vec(d * Ac[n]);
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t n = 0; n < N; ++n) {
      h[n] = abar[n] * h[n] + du * Bn_l[n];
      acc += h[n] * Cn_l[n];
    }
    T out = acc + Dc * urow[l];
    if (zrow) out *= zrow[l] * sigmoid(zrow[l]);
    yrow[l] = out;
  }
}

// --------------------------------------------------------------------------------------------------
// forward

template <class T>
void scan_forward_impl(Tensor& y_out, Tensor* last_state, ScanSaved* saved, const ScanInputs& in0, int64_t chunk) {
  const ScanDims s = check_inputs(in0);
  const int64_t Bn = s.n_batch, Dn = s.n_chan, N = s.n_state, L = s.n_len, G = s.n_group;
  SSMKIT_CHECK(chunk > 0, "selective_scan: chunk must be positive, got ", chunk);
  chunk = std::min(chunk, std::max<int64_t>(L, 1));  // scratch in the backward is chunk*N per thread
  const bool tok = in0.layout == ScanLayout::kTokens;  // F32 only (the entry point converts F64)
  const Tensor u = in0.u.contiguous(), delta = in0.delta.contiguous(), A = in0.A.contiguous();
  const Tensor D = in0.D.defined() ? in0.D.contiguous() : Tensor{};
  const Tensor z = in0.z.defined() && !tok ? in0.z.contiguous() : Tensor{};
  const Tensor bias = in0.delta_bias.defined() ? in0.delta_bias.contiguous() : Tensor{};
  const Tensor h0 = in0.h0.defined() ? in0.h0.contiguous() : Tensor{};
  const ScanOperands<T> ops = scan_operands<T>(in0, s);
  const std::vector<T>&Bt = ops.Bt, &Ct = ops.Ct;
  const TokenRows<T>&zr = ops.z, &br = ops.B, &cr = ops.C;

  const DType dt = dtype_of<T>::value;
  if (!y_out.defined()) y_out = Tensor::empty(u.shape(), dt);
  SSMKIT_CHECK(y_out.shape() == u.shape() && y_out.dtype() == dt && y_out.is_contiguous(),
               "selective_scan: y must be a contiguous ", shape_str(u.shape()), " tensor of the inputs' dtype");
  const int64_t n_chunks = std::max<int64_t>(1, (L + chunk - 1) / chunk);
  if (saved) {
    saved->chunk = chunk;
    saved->chunk_states = Tensor::empty({Bn, Dn, n_chunks, N}, dt);
  }
  if (last_state) *last_state = Tensor::empty({Bn, Dn, N}, dt);

  const T* pu = u.data<T>();
  const T* pdelta = delta.data<T>();
  const T* pD = ptr_or_null<T>(D);
  const T* pz = tok ? zr.p : ptr_or_null<T>(z);
  const T* pbias = ptr_or_null<T>(bias);
  const T* ph0 = ptr_or_null<T>(h0);
  T* py = y_out.data<T>();
  T* pchunk = saved ? saved->chunk_states.data<T>() : nullptr;
  T* plast = last_state ? last_state->data<T>() : nullptr;
  const bool softplus_on = in0.delta_softplus;

  const T* pA = A.data<T>();
  if constexpr (std::is_same_v<T, float>) {
    // Blocks of V channels, vectorized across channels (selective_scan_kernels.cpp).
    const int64_t V = scan_kernels::scan_block_channels_f32();
    const std::vector<ChannelBlock> blocks = channel_blocks(s, V);
    const int64_t nblk = static_cast<int64_t>(blocks.size());
#pragma omp parallel if (Bn * Dn * L * N > kParallelMinWork)
    {
      const FlushDenormals flush;  // states decaying with no input must not crawl through denormals
      std::vector<float> work(static_cast<size_t>(scan_kernels::forward_work_floats(L, N)));
      // Blocks are independent (no sums across them), so a dynamic schedule keeps the result exact while
      // letting a thread that runs faster (or was not preempted) take more blocks.
#pragma omp for schedule(dynamic, 2)
      for (int64_t k = 0; k < nblk; ++k) {
        const ChannelBlock& blk = blocks[static_cast<size_t>(k)];
        const int64_t row = blk.b * Dn + blk.c0;  // first (batch, channel) row of the block
        const int64_t xo = tok ? blk.b * L * Dn + blk.c0 : row * L;  // its first element in u, delta, y
        scan_kernels::ForwardBlockF32 r;
        r.u = pu + xo;
        r.delta = pdelta + xo;
        r.z = pz ? pz + (tok ? blk.b * L * zr.ld + blk.c0 : row * L) : nullptr;
        r.Bt = tok ? br.p + blk.b * L * br.ld + blk.g * N : Bt.data() + (blk.b * G + blk.g) * L * N;
        r.Ct = tok ? cr.p + blk.b * L * cr.ld + blk.g * N : Ct.data() + (blk.b * G + blk.g) * L * N;
        r.ld = tok ? Dn : 0;
        r.ld_z = tok ? zr.ld : 0;
        r.bc_ld = tok ? br.ld : N;
        r.A = pA + blk.c0 * N;
        r.D = pD ? pD + blk.c0 : nullptr;
        r.bias = pbias ? pbias + blk.c0 : nullptr;
        r.h0 = ph0 ? ph0 + row * N : nullptr;
        r.softplus = softplus_on;
        r.nc = blk.nc;
        r.L = L;
        r.N = N;
        r.chunk = chunk;
        r.n_chunks = n_chunks;
        r.y = py + xo;
        r.last = plast ? plast + row * N : nullptr;
        r.chunk_states = pchunk ? pchunk + row * n_chunks * N : nullptr;
        r.work = work.data();
        scan_kernels::forward_block_f32(r);
      }
    }
  } else {
#pragma omp parallel if (Bn * Dn * L * N > kParallelMinWork)
    {
      const FlushDenormals flush;
      std::vector<T> h(static_cast<size_t>(N)), abar(static_cast<size_t>(N));
#pragma omp for schedule(static)
      for (int64_t row = 0; row < Bn * Dn; ++row) {
        const int64_t b = row / Dn, c = row % Dn, g = c / (Dn / G);
        for (int64_t n = 0; n < N; ++n) h[n] = ph0 ? ph0[row * N + n] : T(0);
        T* chunk_out = pchunk ? pchunk + row * n_chunks * N : nullptr;
        forward_row<T>(py + row * L, h.data(), abar.data(), chunk_out, chunk, pu + row * L, pdelta + row * L,
                       pz ? pz + row * L : nullptr, Bt.data() + (b * G + g) * L * N, Ct.data() + (b * G + g) * L * N,
                       pA + c * N, pD ? pD[c] : T(0), pbias ? pbias[c] : T(0), softplus_on, L, N);
        if (pchunk && L == 0) std::copy(h.begin(), h.end(), pchunk + row * n_chunks * N);
        if (plast) std::copy(h.begin(), h.end(), plast + row * N);
      }
    }
  }
}

// --------------------------------------------------------------------------------------------------
// backward

// One (batch, channel) row of the backward: walks the chunks newest first, recomputes each chunk's states
// from its saved boundary state into scratch, then runs the adjoint recurrence (spec §2.3). lam (N) holds
// dLoss/dh entering from later steps (dlast_state at the start) and leaves as dLoss/dh0.
template <class T>
struct BackwardRow {
  const T *urow, *drow, *zrow, *dyrow, *Bl, *Cl, *Ac, *states;  // inputs; Bl, Cl (L,N); states (n_chunks,N)
  T Dc, bc;
  T *dBl, *dCl, *dAc, *dDc, *dbiasc, *durow, *ddrow, *dzrow;    // gradients (+=)
  T *H, *Abar, *dsp, *ypre, *lam, *h;                          // scratch: (chunk,N) x2, (chunk) x2, (N) x2
  bool softplus_on;
  int64_t L, N, chunk, n_chunks;
};

template <class T>
__attribute__((always_inline)) inline void backward_row(const BackwardRow<T>& r) {
  const int64_t L = r.L, N = r.N, chunk = r.chunk;
  const T *urow = r.urow, *drow = r.drow, *zrow = r.zrow, *dyrow = r.dyrow, *Bl = r.Bl, *Cl = r.Cl, *Ac = r.Ac;
  const T Dc = r.Dc, bc = r.bc;
  T *dBl = r.dBl, *dCl = r.dCl, *dAc = r.dAc, *durow = r.durow, *ddrow = r.ddrow, *dzrow = r.dzrow;
  T *H = r.H, *Abar = r.Abar, *dsp = r.dsp, *ypre = r.ypre, *lam = r.lam, *h = r.h;
  for (int64_t k = r.n_chunks - 1; k >= 0; --k) {
    const int64_t l0 = k * chunk, l1 = std::min(L, l0 + chunk);
    // Recompute the chunk's states from its boundary state.
    const T* hstart = r.states + k * N;
    std::copy(hstart, hstart + N, h);
    for (int64_t l = l0; l < l1; ++l) {
      const int64_t j = l - l0;
      T d = drow[l] + bc;
      if (r.softplus_on) d = softplus(d);
      dsp[j] = d;
      const T du = d * urow[l];
      T* aj = &Abar[j * N];
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) aj[n] = exp_vec(d * Ac[n]);
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        h[n] = aj[n] * h[n] + du * Bl[l * N + n];
        H[j * N + n] = h[n];
        acc += h[n] * Cl[l * N + n];
      }
      ypre[j] = acc + Dc * urow[l];
    }
    // Adjoint recurrence, newest step first. lam holds dLoss/dh_l excluding step l's own output.
    for (int64_t l = l1 - 1; l >= l0; --l) {
      const int64_t j = l - l0;
      T gy = dyrow[l];
      if (zrow) {
        const T zv = zrow[l], sg = sigmoid(zv);
        dzrow[l] += gy * ypre[j] * sg * (T(1) + zv * (T(1) - sg));
        gy *= zv * sg;
      }
      *r.dDc += gy * urow[l];
      const T d = dsp[j], uv = urow[l];
      const T* hprev = j > 0 ? &H[(j - 1) * N] : hstart;
      const T* Hj = &H[j * N];
      const T* aj = &Abar[j * N];
      const T* Bn = Bl + l * N;
      const T* Cn = Cl + l * N;
      T* dBn = dBl + l * N;
      T* dCn = dCl + l * N;
      T dd = 0, du = 0;
#pragma omp simd reduction(+ : dd, du)
      for (int64_t n = 0; n < N; ++n) {
        const T lm = lam[n] + gy * Cn[n];
        dCn[n] += gy * Hj[n];
        const T da_term = lm * hprev[n] * aj[n];  // dLoss/d(d*A_n) through exp
        dAc[n] += da_term * d;
        dd += da_term * Ac[n] + lm * Bn[n] * uv;
        du += lm * Bn[n] * d;
        dBn[n] += lm * d * uv;
        lam[n] = lm * aj[n];
      }
      durow[l] += du + Dc * gy;
      if (r.softplus_on) {
        const T x = drow[l] + bc;
        if (x <= T(20)) dd *= sigmoid(x);
      }
      ddrow[l] += dd;
      *r.dbiasc += dd;
    }
  }
}

// Allocates `g` as zeros of `shape` when undefined; checks it otherwise. Returns it as contiguous storage
// that the kernel adds into.
void prepare_grad(Tensor& g, const Shape& shape, DType dt, const char* name) {
  if (!g.defined()) {
    g = Tensor::zeros(shape, dt);
    return;
  }
  SSMKIT_CHECK(g.shape() == shape && g.dtype() == dt && g.is_contiguous(), "selective_scan_backward: ", name,
               " must be a contiguous ", shape_str(shape), " ", dtype_name(dt), " tensor to accumulate into, got ",
               shape_str(g.shape()), " ", dtype_name(g.dtype()));
}

template <class T>
void scan_backward_impl(ScanGrads& gr, const Tensor& dy0, const Tensor& dlast0, const ScanInputs& in0,
                        const ScanSaved& saved) {
  const ScanDims s = check_inputs(in0);
  const int64_t Bn = s.n_batch, Dn = s.n_chan, N = s.n_state, L = s.n_len, G = s.n_group;
  const int64_t chunk = saved.chunk;
  const int64_t n_chunks = std::max<int64_t>(1, (L + chunk - 1) / chunk);
  const DType dt = dtype_of<T>::value;
  SSMKIT_CHECK(chunk > 0 && saved.chunk_states.defined() && saved.chunk_states.shape() == Shape({Bn, Dn, n_chunks, N}),
               "selective_scan_backward: saved chunk states do not match the inputs (run the forward with a ScanSaved)");
  const bool tok = in0.layout == ScanLayout::kTokens;  // F32 only (the entry point converts F64)
  const Shape row_shape = tok ? Shape{Bn, L, Dn} : Shape{Bn, Dn, L};
  check_shape(dy0, row_shape, "dy");
  if (dlast0.defined()) check_shape(dlast0, {Bn, Dn, N}, "dlast_state");
  SSMKIT_CHECK(dy0.dtype() == dt && (!dlast0.defined() || dlast0.dtype() == dt),
               "selective_scan_backward: gradients must have the inputs' dtype ", dtype_name(dt));

  const Tensor u = in0.u.contiguous(), delta = in0.delta.contiguous(), A = in0.A.contiguous();
  const Tensor D = in0.D.defined() ? in0.D.contiguous() : Tensor{};
  const Tensor z = in0.z.defined() && !tok ? in0.z.contiguous() : Tensor{};
  const bool has_z = in0.z.defined();
  const Tensor bias = in0.delta_bias.defined() ? in0.delta_bias.contiguous() : Tensor{};
  const Tensor dy = dy0.contiguous();
  const Tensor dlast = dlast0.defined() ? dlast0.contiguous() : Tensor{};
  const Tensor states = saved.chunk_states.contiguous();
  const ScanOperands<T> ops = scan_operands<T>(in0, s);
  const std::vector<T>&Bt = ops.Bt, &Ct = ops.Ct;
  const TokenRows<T>&zr = ops.z, &br = ops.B, &cr = ops.C;

  // New row gradients (or given buffers with write_rows) are written by the float kernels, not zero-filled
  // and added into; all three must be new, since one flag serves them. New dB, dC are zeroed bg by bg inside
  // the threaded reduction at the end instead of all at once here.
  SSMKIT_CHECK(!gr.write_rows || (std::is_same_v<T, float> && gr.du.defined() && gr.ddelta.defined() &&
                                   (!has_z || gr.dz.defined())),
               "selective_scan_backward: write_rows needs F32 inputs and du, ddelta (and dz with z) given");
  const bool fresh_rows = gr.write_rows || (std::is_same_v<T, float> && !gr.du.defined() && !gr.ddelta.defined() &&
                                            (!has_z || !gr.dz.defined()));
  const bool fresh_bc = !gr.dB.defined() && !gr.dC.defined();
  if (fresh_rows && !gr.write_rows) {
    gr.du = Tensor::uninitialized(row_shape, dt);
    gr.ddelta = Tensor::uninitialized(row_shape, dt);
    if (has_z) gr.dz = Tensor::uninitialized(row_shape, dt);
  }
  if (fresh_bc) {
    gr.dB = Tensor::uninitialized(in0.B.shape(), dt);
    gr.dC = Tensor::uninitialized(in0.C.shape(), dt);
  }
  prepare_grad(gr.du, row_shape, dt, "du");
  prepare_grad(gr.ddelta, row_shape, dt, "ddelta");
  prepare_grad(gr.dA, {Dn, N}, dt, "dA");
  if (!tok) prepare_grad(gr.dB, in0.B.shape(), dt, "dB");
  if (!tok) prepare_grad(gr.dC, in0.C.shape(), dt, "dC");
  if (D.defined()) prepare_grad(gr.dD, {Dn}, dt, "dD");
  if (has_z && !tok) prepare_grad(gr.dz, row_shape, dt, "dz");
  if (bias.defined()) prepare_grad(gr.ddelta_bias, {Dn}, dt, "ddelta_bias");
  if (in0.h0.defined()) prepare_grad(gr.dh0, {Bn, Dn, N}, dt, "dh0");
  // kTokens: dz, dB, dC may be row views, written or added into in place (zeros when not given).
  auto in_place = [&](Tensor& g, const Shape& shape, const char* name) {
    if (!tok) return TokenRows<T>{};
    if (!g.defined()) g = Tensor::zeros(shape, dt);
    SSMKIT_CHECK(g.shape() == shape && g.dtype() == dt, "selective_scan_backward: ", name, " must be ",
                 shape_str(shape), " ", dtype_name(dt), ", got ", shape_str(g.shape()), " ", dtype_name(g.dtype()));
    TokenRows<T> r = token_rows<T>(g);
    SSMKIT_CHECK(r.keep.same_storage(g) && r.p == g.template data<T>(), "selective_scan_backward: ", name,
                 " must have a contiguous last dim and evenly spaced rows to be written in place");
    return r;
  };
  const TokenRows<T> dzr = has_z ? in_place(gr.dz, row_shape, "dz") : TokenRows<T>{};
  const TokenRows<T> dbr = in_place(gr.dB, in0.B.shape(), "dB");
  const TokenRows<T> dcr = in_place(gr.dC, in0.C.shape(), "dC");

  const T* pu = u.data<T>();
  const T* pdelta = delta.data<T>();
  const T* pA = A.data<T>();
  const T* pD = ptr_or_null<T>(D);
  const T* pz = tok ? zr.p : ptr_or_null<T>(z);
  const T* pbias = ptr_or_null<T>(bias);
  const T* pdy = dy.data<T>();
  const T* pdlast = ptr_or_null<T>(dlast);
  const T* pstates = states.data<T>();
  T* pdu = gr.du.data<T>();
  T* pddelta = gr.ddelta.data<T>();
  T* pdz = has_z ? gr.dz.data<T>() : nullptr;
  T* pdh0 = in0.h0.defined() ? gr.dh0.data<T>() : nullptr;
  const bool softplus_on = in0.delta_softplus;

  // Per-thread partial sums of the parameter gradients, reduced in thread order (deterministic for a
  // fixed thread count). dB, dC partials are (B,G,L,N) like Bt.
  const int n_threads = omp_get_max_threads();
  const int64_t bc_size = Bn * G * L * N;
  std::vector<std::vector<T>> part_dA(n_threads), part_dD(n_threads), part_dbias(n_threads);
  std::vector<std::vector<T>> part_dB(n_threads), part_dC(n_threads);
  int used_threads = 1;
  const int64_t V = std::is_same_v<T, float> ? scan_kernels::scan_block_channels_f32() : 1;
  const std::vector<ChannelBlock> blocks = channel_blocks(s, V);
  const int64_t nblk = static_cast<int64_t>(blocks.size());

#pragma omp parallel num_threads(n_threads) if (Bn * Dn * L * N > kParallelMinWork)
  {
    const FlushDenormals flush;
    const int ith = omp_get_thread_num();
#pragma omp single
    used_threads = omp_get_num_threads();
    std::vector<T>& dA = part_dA[ith];
    std::vector<T>& dDp = part_dD[ith];
    std::vector<T>& dbias = part_dbias[ith];
    std::vector<T>& dB = part_dB[ith];
    std::vector<T>& dC = part_dC[ith];
    dA.assign(static_cast<size_t>(Dn * N), T(0));
    dDp.assign(static_cast<size_t>(Dn), T(0));
    dbias.assign(static_cast<size_t>(Dn), T(0));
    dB.assign(static_cast<size_t>(bc_size), T(0));
    dC.assign(static_cast<size_t>(bc_size), T(0));
    if constexpr (std::is_same_v<T, float>) {
      // The kernels accumulate dB, dC per lane into (L,N,V); the lanes are summed into this thread's
      // (B,G,L,N) partial whenever the block's (batch, group) changes, and at the end.
      std::vector<float> work(static_cast<size_t>(scan_kernels::backward_work_floats(L, N, chunk)));
      std::vector<float> dBacc(static_cast<size_t>(L * N * V), 0.0f), dCacc(dBacc.size(), 0.0f);
      int64_t acc_bg = -1;
      auto flush = [&]() {
        if (acc_bg < 0) return;
        float* pb = dB.data() + acc_bg * L * N;
        float* pc = dC.data() + acc_bg * L * N;
        for (int64_t i = 0; i < L * N; ++i) {
          float sb = 0, sc = 0;
          for (int64_t v = 0; v < V; ++v) {
            sb += dBacc[static_cast<size_t>(i * V + v)];
            sc += dCacc[static_cast<size_t>(i * V + v)];
          }
          pb[i] += sb;
          pc[i] += sc;
        }
        std::fill(dBacc.begin(), dBacc.end(), 0.0f);
        std::fill(dCacc.begin(), dCacc.end(), 0.0f);
      };
#pragma omp for schedule(static)
      for (int64_t k = 0; k < nblk; ++k) {
        const ChannelBlock& blk = blocks[static_cast<size_t>(k)];
        const int64_t bg = blk.b * G + blk.g;
        if (bg != acc_bg) {
          flush();
          acc_bg = bg;
        }
        const int64_t row = blk.b * Dn + blk.c0;
        const int64_t xo = tok ? blk.b * L * Dn + blk.c0 : row * L;  // the block's first element of the rows
        scan_kernels::BackwardBlockF32 r;
        r.u = pu + xo;
        r.delta = pdelta + xo;
        r.z = pz ? pz + (tok ? blk.b * L * zr.ld + blk.c0 : row * L) : nullptr;
        r.dy = pdy + xo;
        r.Bt = tok ? br.p + blk.b * L * br.ld + blk.g * N : Bt.data() + bg * L * N;
        r.Ct = tok ? cr.p + blk.b * L * cr.ld + blk.g * N : Ct.data() + bg * L * N;
        r.ld = tok ? Dn : 0;
        r.ld_z = tok ? zr.ld : 0;
        r.ld_dz = tok ? dzr.ld : 0;
        r.bc_ld = tok ? br.ld : N;
        r.A = pA + blk.c0 * N;
        r.D = pD ? pD + blk.c0 : nullptr;
        r.bias = pbias ? pbias + blk.c0 : nullptr;
        r.states = pstates + row * n_chunks * N;
        r.dlast = pdlast ? pdlast + row * N : nullptr;
        r.softplus = softplus_on;
        r.nc = blk.nc;
        r.L = L;
        r.N = N;
        r.chunk = chunk;
        r.n_chunks = n_chunks;
        r.du = pdu + xo;
        r.ddelta = pddelta + xo;
        r.dz = pdz ? pdz + (tok ? blk.b * L * dzr.ld + blk.c0 : row * L) : nullptr;
        r.dA = dA.data() + blk.c0 * N;
        r.dD = pD ? dDp.data() + blk.c0 : nullptr;
        r.dbias = pbias ? dbias.data() + blk.c0 : nullptr;
        r.dh0 = pdh0 ? pdh0 + row * N : nullptr;
        r.dBacc = dBacc.data();
        r.dCacc = dCacc.data();
        r.overwrite = fresh_rows;
        r.work = work.data();
        scan_kernels::backward_block_f32(r);
      }
      flush();
    } else {
      // Scratch for one chunk: states h_l and decays exp(d_l A) (chunk,N), d_l and y_pre_l (chunk).
      std::vector<T> H(static_cast<size_t>(chunk * N)), Abar(static_cast<size_t>(chunk * N));
      std::vector<T> dsp(static_cast<size_t>(chunk)), ypre(static_cast<size_t>(chunk));
      std::vector<T> lam(static_cast<size_t>(N)), h(static_cast<size_t>(N));
#pragma omp for schedule(static)
      for (int64_t row = 0; row < Bn * Dn; ++row) {
        const int64_t b = row / Dn, c = row % Dn, g = c / (Dn / G);
        const int64_t bc_off = (b * G + g) * L * N;
        BackwardRow<T> r;
        r.urow = pu + row * L;
        r.drow = pdelta + row * L;
        r.zrow = pz ? pz + row * L : nullptr;
        r.dyrow = pdy + row * L;
        r.Bl = Bt.data() + bc_off;
        r.Cl = Ct.data() + bc_off;
        r.Ac = pA + c * N;
        r.states = pstates + row * n_chunks * N;
        r.Dc = pD ? pD[c] : T(0);
        r.bc = pbias ? pbias[c] : T(0);
        r.dBl = dB.data() + bc_off;
        r.dCl = dC.data() + bc_off;
        r.dAc = dA.data() + c * N;
        r.dDc = &dDp[c];
        r.dbiasc = &dbias[c];
        r.durow = pdu + row * L;
        r.ddrow = pddelta + row * L;
        r.dzrow = pdz ? pdz + row * L : nullptr;
        r.H = H.data();
        r.Abar = Abar.data();
        r.dsp = dsp.data();
        r.ypre = ypre.data();
        r.lam = lam.data();
        r.h = h.data();
        r.softplus_on = softplus_on;
        r.L = L;
        r.N = N;
        r.chunk = chunk;
        r.n_chunks = n_chunks;
        for (int64_t n = 0; n < N; ++n) lam[n] = pdlast ? pdlast[row * N + n] : T(0);
        backward_row<T>(r);
        if (pdh0)
          for (int64_t n = 0; n < N; ++n) pdh0[row * N + n] += lam[n];
      }
    }
  }

  // Reduce the per-thread partials in thread order.
  T* gA = gr.dA.data<T>();
  T* gB = gr.dB.data<T>();
  T* gC = gr.dC.data<T>();
  T* gD = D.defined() ? gr.dD.data<T>() : nullptr;
  T* gbias = bias.defined() ? gr.ddelta_bias.data<T>() : nullptr;
  const int64_t NL = N * L;
  for (int t = 0; t < used_threads; ++t) {
    for (int64_t i = 0; i < Dn * N; ++i) gA[i] += part_dA[t][i];
    for (int64_t c = 0; c < Dn; ++c) {
      if (gD) gD[c] += part_dD[t][c];
      if (gbias) gbias[c] += part_dbias[t][c];
    }
  }
  // partials are (B,G,L,N); gradients are (B,G,N,L), or token rows (B,L,G,N) with strides dbr.ld, dcr.ld
#pragma omp parallel for schedule(static) if (Bn * G * NL > kParallelMinWork)
  for (int64_t bg = 0; bg < Bn * G; ++bg) {
    if (tok) {
      const int64_t b = bg / G, g = bg % G;
      for (int64_t l = 0; l < L; ++l) {
        T* ob = dbr.p + (b * L + l) * dbr.ld + g * N;
        T* oc = dcr.p + (b * L + l) * dcr.ld + g * N;
        if (fresh_bc)
          for (int64_t n = 0; n < N; ++n) ob[n] = oc[n] = T(0);
        for (int t = 0; t < used_threads; ++t)
          for (int64_t n = 0; n < N; ++n) {
            ob[n] += part_dB[t][(bg * L + l) * N + n];
            oc[n] += part_dC[t][(bg * L + l) * N + n];
          }
      }
      continue;
    }
    if (fresh_bc) {  // new dB, dC: the first partial is written, not added
      std::fill(gB + bg * NL, gB + (bg + 1) * NL, T(0));
      std::fill(gC + bg * NL, gC + (bg + 1) * NL, T(0));
    }
    for (int t = 0; t < used_threads; ++t)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t n = 0; n < N; ++n) {
          gB[bg * NL + n * L + l] += part_dB[t][(bg * L + l) * N + n];
          gC[bg * NL + n * L + l] += part_dC[t][(bg * L + l) * N + n];
        }
  }
}

}  // namespace

namespace {

// The F64 path (gradient checks) runs kTokens inputs through the channel layout: transposed views in,
// transposed results out. Rows (B,L,D) <-> (B,D,L); B, C and their gradients (B,L,N) <-> (B,N,L) and
// (B,L,G,N) <-> (B,G,N,L).
Tensor rows_to_channels(const Tensor& t) { return t.defined() ? t.transpose(1, 2) : t; }
Tensor bc_to_channels(const Tensor& t) {
  if (!t.defined()) return t;
  return t.ndim() == 4 ? t.transpose(1, 2).transpose(2, 3) : t.transpose(1, 2);
}
Tensor bc_to_tokens(const Tensor& t) { return t.ndim() == 4 ? t.transpose(2, 3).transpose(1, 2) : t.transpose(1, 2); }

ScanInputs channels_of(const ScanInputs& in) {
  check_inputs(in);
  ScanInputs c = in;
  c.layout = ScanLayout::kChannels;
  c.u = rows_to_channels(in.u);
  c.delta = rows_to_channels(in.delta);
  c.z = rows_to_channels(in.z);
  c.B = bc_to_channels(in.B);
  c.C = bc_to_channels(in.C);
  return c;
}

// Hands a result computed in the channel layout back in token layout: into `out` when given, else as a new
// contiguous tensor.
void deliver_tokens(Tensor& out, const Tensor& tokens_view) {
  if (out.defined())
    out.copy_from(tokens_view);
  else
    out = tokens_view.contiguous();
}

bool f64_tokens(const ScanInputs& in) {
  return in.layout == ScanLayout::kTokens && in.u.defined() && in.u.dtype() == DType::F64;
}

}  // namespace

void selective_scan_forward(Tensor& y, Tensor* last_state, ScanSaved* saved, const ScanInputs& in, int64_t chunk) {
  if (f64_tokens(in)) {
    Tensor yc;
    scan_forward_impl<double>(yc, last_state, saved, channels_of(in), chunk);
    if (y.defined())
      SSMKIT_CHECK(y.shape() == in.u.shape() && y.dtype() == DType::F64, "selective_scan: y must be ",
                   shape_str(in.u.shape()), " float64, got ", shape_str(y.shape()));
    deliver_tokens(y, yc.transpose(1, 2));
  } else if (in.u.defined() && in.u.dtype() == DType::F64) {
    scan_forward_impl<double>(y, last_state, saved, in, chunk);
  } else {
    scan_forward_impl<float>(y, last_state, saved, in, chunk);
  }
}

void selective_scan_backward(ScanGrads& grads, const Tensor& dy, const Tensor& dlast_state, const ScanInputs& in,
                             const ScanSaved& saved) {
  if (f64_tokens(in)) {
    ScanGrads gc = grads;  // dA, dD, ddelta_bias, dh0 keep their layout (and storage)
    auto own = [](const Tensor& t) { return t.defined() ? t.contiguous() : t; };  // given ones: added into
    gc.du = own(rows_to_channels(grads.du));
    gc.ddelta = own(rows_to_channels(grads.ddelta));
    gc.dz = own(rows_to_channels(grads.dz));
    gc.dB = own(bc_to_channels(grads.dB));
    gc.dC = own(bc_to_channels(grads.dC));
    scan_backward_impl<double>(gc, dy.defined() ? dy.transpose(1, 2) : dy, dlast_state, channels_of(in), saved);
    deliver_tokens(grads.du, gc.du.transpose(1, 2));
    deliver_tokens(grads.ddelta, gc.ddelta.transpose(1, 2));
    if (gc.dz.defined()) deliver_tokens(grads.dz, gc.dz.transpose(1, 2));
    deliver_tokens(grads.dB, bc_to_tokens(gc.dB));
    deliver_tokens(grads.dC, bc_to_tokens(gc.dC));
    grads.dA = gc.dA;
    grads.dD = gc.dD;
    grads.ddelta_bias = gc.ddelta_bias;
    grads.dh0 = gc.dh0;
  } else if (in.u.defined() && in.u.dtype() == DType::F64) {
    scan_backward_impl<double>(grads, dy, dlast_state, in, saved);
  } else {
    scan_backward_impl<float>(grads, dy, dlast_state, in, saved);
  }
}

}  // namespace ssmkit::core
