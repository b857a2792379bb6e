// Mamba-1 block: forward, then backward (reverse order of the same steps). Long sequences keep every
// activation between the projections channel-major (B,E,L) / (B,R+2N,L), the scan's layout: each projection
// is one gemm() per batch element with the transposes folded into the gemm flags, so no layout copies run.
// Short ones (L < kTokenMajorMaxL with B > 1, e.g. S-Mamba's 11 variate tokens) stay token-major (B*L, width)
// throughout: each projection is one gemm() over all B*L tokens, the conv runs along the token rows, and the
// scan reads and writes token rows in place (ScanLayout::kTokens). The causal depthwise conv is fused with
// SiLU (forward) and with the SiLU derivative (backward). Not here: the scan itself (ssm/selective_scan).
// Follows mamba_simple.Mamba's slow path (../shared/specs/core-ssm.md §2.4).
// Shapes: B batch, L length, M d_model, E d_inner, R dt_rank, N d_state, K d_conv, X = R + 2N.
#include "ssmkit/core/ssm/mamba_block.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/ops/linear.h"
#include "ssmkit/core/ops/vec_math.h"

namespace ssmkit::core {

namespace {

// Below this many elements a loop runs on one thread: waking a team costs more.
constexpr int64_t kParallelMinWork = 32768;

// Below this length (and with more than one batch element) the block runs token-major: per-batch products
// with L < 64 columns (or an inner dimension of L for the weight gradients) keep no GEMM kernel busy, while
// one product over B*L tokens does.
constexpr int64_t kTokenMajorMaxL = 64;
bool token_major(int64_t Bn, int64_t L) { return Bn > 1 && L < kTokenMajorMaxL; }

// The block's buffers come from a small recycling pool: a buffer whose last tensor goes away is parked,
// and the next request of about its size takes it back. Without any reuse every call maps its ~100 MB of
// activations afresh and the kernel zeroes each new page: about a tenth of W3's time. The storage cache
// (storage_cache.h) now keeps large tensors and malloc's heap the smaller ones, but through malloc these
// sizes fragment the heap: W3 with plain tensors instead of the pool faulted ~230 pages per call against
// ~40, and its peak RSS rose from 95 to 154 MB. At most kPoolBytes stay parked; the rest is freed.
class BufferPool {
 public:
  static constexpr size_t kPoolBytes = size_t(512) << 20;
  // Never destroyed: tensors may release their buffers during static destruction.
  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool;
    return *pool;
  }
  // A block of at least `bytes` (64-byte aligned); its capacity is written to *cap.
  void* take(size_t bytes, size_t* cap) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = parked_.lower_bound(bytes);
      if (it != parked_.end() && it->first <= bytes + bytes / 8) {  // close fit: little waste
        void* mem = it->second;
        *cap = it->first;
        parked_bytes_ -= it->first;
        parked_.erase(it);
        return mem;
      }
    }
    void* mem = std::aligned_alloc(64, bytes);
    SSMKIT_CHECK(mem != nullptr, "mamba_block: out of memory for a buffer of ", bytes, " bytes");
    *cap = bytes;
    return mem;
  }
  void give(void* mem, size_t cap) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (parked_bytes_ + cap <= kPoolBytes) {
        parked_.emplace(cap, mem);
        parked_bytes_ += cap;
        return;
      }
    }
    std::free(mem);
  }

 private:
  std::mutex mu_;
  std::multimap<size_t, void*> parked_;  // capacity -> block
  size_t parked_bytes_ = 0;
};

// A buffer that is written in full before it is read: no zero fill (Tensor::empty zero-fills, which
// costs as much as a pass over the data).
Tensor uninit(const Shape& shape, DType dt) {
  const size_t bytes = std::max<size_t>(64, (static_cast<size_t>(shape_numel(shape)) * dtype_size(dt) + 63) / 64 * 64);
  size_t cap = 0;
  void* mem = BufferPool::instance().take(bytes, &cap);
  auto give_back = [cap](void* q) { BufferPool::instance().give(q, cap); };
  return Tensor::borrow(mem, shape, dt, std::shared_ptr<void>(mem, give_back));
}

// A zero-filled buffer (a gradient the scan adds into), zeroed on all threads.
Tensor zeros(const Shape& shape, DType dt) {
  Tensor t = uninit(shape, dt);
  char* p = static_cast<char*>(t.raw());
  const int64_t bytes = static_cast<int64_t>(t.nbytes()), block = int64_t(1) << 16;
#pragma omp parallel for schedule(static) if (bytes > 16 * block)
  for (int64_t i = 0; i < bytes; i += block) std::memset(p + i, 0, static_cast<size_t>(std::min(block, bytes - i)));
  return t;
}

template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// One row of the causal depthwise conv1d: x (L), w (K), prev (K-1) the inputs just before x[0] (nullptr:
// zeros) -> y (L), y[t] = bias + sum_k w[k] x[t-(K-1)+k]. kK is the tap count when known at compile time
// (the official d_conv is 4), 0 when only the run-time K is; the main loop vectorizes over t (omp simd).
template <class T, int kK>
void conv_row_forward_k(T* y, const T* x, const T* prev, const T* w, T bias, int64_t L, int64_t K_run) {
  const int64_t K = kK > 0 ? kK : K_run, head = std::min(K - 1, L);
  for (int64_t t = 0; t < head; ++t) {  // taps reaching before x[0]
    T acc = bias;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t s = t - (K - 1) + k;
      acc += w[k] * (s >= 0 ? x[s] : prev ? prev[K - 1 + s] : T(0));
    }
    y[t] = acc;
  }
#pragma omp simd
  for (int64_t t = head; t < L; ++t) {
    T acc = bias;
    for (int64_t k = 0; k < K; ++k) acc += w[k] * x[t - (K - 1) + k];
    y[t] = acc;
  }
}

// Its backward (zero history): g (L) the gradient of y -> dx (L) written, dw (K) +=, *db +=.
template <class T, int kK>
void conv_row_backward_k(T* dx, T* dw, T* db, const T* g, const T* x, const T* w, int64_t L, int64_t K_run) {
  const int64_t K = kK > 0 ? kK : K_run, body = std::max<int64_t>(L - (K - 1), 0);
  // dx[t] = sum_k w[k] g[t + K-1-k] over the taps that stay inside [0, L)
#pragma omp simd
  for (int64_t t = 0; t < body; ++t) {
    T acc = 0;
    for (int64_t k = 0; k < K; ++k) acc += w[k] * g[t + K - 1 - k];
    dx[t] = acc;
  }
  for (int64_t t = body; t < L; ++t) {
    T acc = 0;
    for (int64_t k = 0; k < K; ++k)
      if (t + K - 1 - k < L) acc += w[k] * g[t + K - 1 - k];
    dx[t] = acc;
  }
  for (int64_t k = 0; k < K; ++k) {
    const int64_t back = K - 1 - k;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t t = back; t < L; ++t) acc += g[t] * x[t - back];
    dw[k] += acc;
  }
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t t = 0; t < L; ++t) acc += g[t];
  *db += acc;
}

// The row kernels with the tap count fixed for the common sizes.
template <class T>
void conv_row_forward(T* y, const T* x, const T* prev, const T* w, T bias, int64_t L, int64_t K) {
  switch (K) {
    case 4: return conv_row_forward_k<T, 4>(y, x, prev, w, bias, L, K);
    case 3: return conv_row_forward_k<T, 3>(y, x, prev, w, bias, L, K);
    case 2: return conv_row_forward_k<T, 2>(y, x, prev, w, bias, L, K);
    default: return conv_row_forward_k<T, 0>(y, x, prev, w, bias, L, K);
  }
}
template <class T>
void conv_row_backward(T* dx, T* dw, T* db, const T* g, const T* x, const T* w, int64_t L, int64_t K) {
  switch (K) {
    case 4: return conv_row_backward_k<T, 4>(dx, dw, db, g, x, w, L, K);
    case 3: return conv_row_backward_k<T, 3>(dx, dw, db, g, x, w, L, K);
    case 2: return conv_row_backward_k<T, 2>(dx, dw, db, g, x, w, L, K);
    default: return conv_row_backward_k<T, 0>(dx, dw, db, g, x, w, L, K);
  }
}

void check_params(const MambaParams& p, const MambaConfig& cfg, const char* what) {
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv;
  auto want = [what](const Tensor& t, const Shape& s, const char* key) {
    SSMKIT_CHECK(t.defined() && t.shape() == s, "mamba_block: ", what, " ", key, " has shape ",
                 t.defined() ? shape_str(t.shape()) : std::string("<missing>"), ", expected ", shape_str(s));
  };
  want(p.in_proj_weight, {2 * E, M}, "in_proj.weight");
  want(p.conv1d_weight, {E, 1, K}, "conv1d.weight");
  want(p.x_proj_weight, {R + 2 * N, E}, "x_proj.weight");
  want(p.dt_proj_weight, {E, R}, "dt_proj.weight");
  want(p.dt_proj_bias, {E}, "dt_proj.bias");
  want(p.A_log, {E, N}, "A_log");
  want(p.D, {E}, "D");
  want(p.out_proj_weight, {M, E}, "out_proj.weight");
  if (cfg.conv_bias) want(p.conv1d_bias, {E}, "conv1d.bias");
  if (cfg.bias) {
    want(p.in_proj_bias, {2 * E}, "in_proj.bias");
    want(p.out_proj_bias, {M}, "out_proj.bias");
  }
  MambaParams q = p;
  for (auto& [key, t] : q.names())
    SSMKIT_CHECK(t->dtype() == p.in_proj_weight.dtype(), "mamba_block: ", what, " ", key, " has dtype ",
                 dtype_name(t->dtype()), ", in_proj.weight has ", dtype_name(p.in_proj_weight.dtype()));
}

// The parameters as contiguous tensors (no copy when they already are).
MambaParams contiguous_params(const MambaParams& p) {
  MambaParams c = p;
  for (auto& [key, t] : c.names()) *t = t->contiguous();
  return c;
}

// ----------------------------------------------------------------------------------------------------------
// Short sequences, token-major: every activation stays in token rows (B*L, width), the layout of the
// projections; the conv runs along the rows vectorized across channels and the scan reads and writes token
// rows in place (ScanLayout::kTokens), so no activation is transposed.

// w (E,K) -> (K,E), so that a tap's weights are contiguous across channels.
template <class T>
std::vector<T> taps_by_channel(const T* w, int64_t E, int64_t K) {
  std::vector<T> wt(static_cast<size_t>(K * E));
  for (int64_t e = 0; e < E; ++e)
    for (int64_t k = 0; k < K; ++k) wt[static_cast<size_t>(k * E + e)] = w[e * K + k];
  return wt;
}

// Causal depthwise conv + SiLU on token rows: x (B*L rows of E, row stride ldx), wt (K,E), cb (E) or null,
// st (B,E,K) the carried conv state or null -> pre (B*L,E) before SiLU, u (B*L,E) = SiLU(pre) (pre may be u).
template <class T>
void conv_tokens_forward(T* pre, T* u, const T* x, int64_t ldx, const T* wt, const T* cb, const T* st, int64_t Bn,
                         int64_t L, int64_t E, int64_t K) {
#pragma omp parallel for schedule(static) if (Bn * L * E * K > kParallelMinWork)
  for (int64_t r = 0; r < Bn * L; ++r) {
    const int64_t b = r / L, t = r % L;
    T* o = pre + r * E;
    for (int64_t e = 0; e < E; ++e) o[e] = cb ? cb[e] : T(0);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t src = t - (K - 1) + k;  // the input step this tap reads
      const T* wk = wt + k * E;
      if (src >= 0) {
        const T* xs = x + (b * L + src) * ldx;
#pragma omp simd
        for (int64_t e = 0; e < E; ++e) o[e] += wk[e] * xs[e];
      } else if (st) {  // before x[0]: the state's newest K-1 inputs, st[(b,e), K + src]
        const T* ss = st + b * E * K + K + src;
        for (int64_t e = 0; e < E; ++e) o[e] += wk[e] * ss[e * K];
      }
    }
    vec_silu(o, u + r * E, E);
  }
}

// Its backward (zero history): du (B*L,E), pre (B*L,E), x (token rows, stride ldx) -> dx (token rows, stride
// ldd), written; dw (E,K) and db (E) (or null) added into. Threads over blocks of kCols channels, each summing
// its channels' weight gradients over the rows in order (deterministic for any thread count).
template <class T>
void conv_tokens_backward(T* dx, int64_t ldd, T* dw, T* db, const T* du, const T* pre, const T* x, int64_t ldx,
                          const T* wt, int64_t Bn, int64_t L, int64_t E, int64_t K) {
  constexpr int64_t kCols = 64;
  const int64_t nblk = (E + kCols - 1) / kCols;
#pragma omp parallel if (Bn * L * E * K > kParallelMinWork)
  {
    std::vector<T> dp(static_cast<size_t>(L * kCols)), sg(kCols), aw(static_cast<size_t>(K * kCols)), ab(kCols);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const int64_t e0 = blk * kCols, n = std::min(kCols, E - e0);
      std::fill(aw.begin(), aw.end(), T(0));
      std::fill(ab.begin(), ab.end(), T(0));
      for (int64_t b = 0; b < Bn; ++b) {
        for (int64_t t = 0; t < L; ++t) {  // d pre = du * silu'(pre)
          const T* pr = pre + (b * L + t) * E + e0;
          const T* g = du + (b * L + t) * E + e0;
          T* d = dp.data() + t * kCols;
          vec_sigmoid(pr, sg.data(), n);
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) d[j] = g[j] * sg[j] * (T(1) + pr[j] * (T(1) - sg[j]));
          for (int64_t j = 0; j < n; ++j) ab[j] += d[j];
        }
        for (int64_t t = 0; t < L; ++t) {  // dx[t] = sum_k w[k] dpre[t + K-1-k]; dw[k] += dpre[t] x[t-(K-1)+k]
          T* o = dx + (b * L + t) * ldd + e0;
          std::fill(o, o + n, T(0));
          const T* d = dp.data() + t * kCols;
          for (int64_t k = 0; k < K; ++k) {
            const T* wk = wt + k * E + e0;
            const int64_t later = t + K - 1 - k, src = t - (K - 1) + k;
            if (later < L) {
              const T* dl = dp.data() + later * kCols;
#pragma omp simd
              for (int64_t j = 0; j < n; ++j) o[j] += wk[j] * dl[j];
            }
            if (src >= 0) {
              const T* xs = x + (b * L + src) * ldx + e0;
              T* a = aw.data() + k * kCols;
#pragma omp simd
              for (int64_t j = 0; j < n; ++j) a[j] += d[j] * xs[j];
            }
          }
        }
      }
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t k = 0; k < K; ++k) dw[(e0 + j) * K + k] += aw[static_cast<size_t>(k * kCols + j)];
        if (db) db[e0 + j] += ab[static_cast<size_t>(j)];
      }
    }
  }
}

// rows (n,W) <- the bias (W) in every row, before a product that adds into them (beta 1)
template <class T>
void fill_rows_with(T* rows, const T* bias, int64_t n, int64_t W) {
  for (int64_t r = 0; r < n; ++r) std::copy(bias, bias + W, rows + r * W);
}

// sums (W) += the column sums of x (n,W), rows in order (a bias gradient)
template <class T>
void add_column_sums(T* sums, const T* x, int64_t n, int64_t W) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < W; ++j) sums[j] += x[r * W + j];
}

// The block's output (B,L,M): `out` itself when it can be overwritten, else a new pool buffer.
void output_buffer(Tensor& out, const Shape& shape, DType dt) {
  if (!(out.defined() && out.shape() == shape && out.dtype() == dt && out.is_contiguous() && out.storage_unique()))
    out = uninit(shape, dt);
}

// The scan of either path: A = -exp(A_log), D, dt_proj.bias (softplus) on the inputs already in c.scan
// (u, delta, B, C, z in its layout); y_scan (y_shape) written; the state carried (inference) or the chunk
// states saved for the backward.
template <class T>
void run_scan(MambaCache& c, const MambaParams& p, const Shape& y_shape, MambaState* state) {
  ScanInputs& s = c.scan;
  const DType dt = p.A_log.dtype();
  s.A = uninit(p.A_log.shape(), dt);
  const T* a = p.A_log.data<T>();
  T* A = s.A.data<T>();
  for (int64_t i = 0; i < p.A_log.numel(); ++i) A[i] = -std::exp(a[i]);
  s.D = p.D;
  s.delta_bias = p.dt_proj_bias;
  s.delta_softplus = true;
  c.y_scan = uninit(y_shape, dt);
  if (state) {
    s.h0 = state->ssm;
    selective_scan_forward(c.y_scan, &state->ssm, nullptr, s);
  } else {
    selective_scan_forward(c.y_scan, nullptr, &c.saved, s);
  }
}

// A = -exp(A_log): dA_log += dA * A
template <class T>
void add_dA_log(MambaParams& g, const Tensor& dA, const Tensor& A) {
  const T* da = dA.data<T>();
  const T* a = A.data<T>();
  T* d = g.A_log.data<T>();
  for (int64_t i = 0; i < A.numel(); ++i) d[i] += da[i] * a[i];
}

template <class T>
void forward_tokens_impl(Tensor& out, MambaCache& c, bool keep, const Tensor& hidden, const MambaParams& p,
                         const MambaConfig& cfg, MambaState* state) {
  const int64_t Bn = hidden.size(0), L = hidden.size(1), BL = Bn * L;
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv, X = R + 2 * N;
  const DType dt = hidden.dtype();
  const T* h = hidden.data<T>();
  c = MambaCache{};
  c.hidden = hidden;

  // in_proj: xz (B*L,2E) = h W_in^T (+ bias); x = xz[:, :E], z = xz[:, E:]
  Tensor xz = uninit({BL, 2 * E}, dt);
  {
    const T* b_in = cfg.bias ? p.in_proj_bias.data<T>() : nullptr;
    T* pxz = xz.data<T>();
    if (b_in) fill_rows_with(pxz, b_in, BL, 2 * E);
    gemm(false, true, BL, 2 * E, M, T(1), h, M, p.in_proj_weight.data<T>(), M, b_in ? T(1) : T(0), pxz, 2 * E);
  }

  // causal depthwise conv (from the carried conv state, if any) + SiLU; in place without a backward to feed
  Tensor u = uninit({BL, E}, dt);
  Tensor x_pre = keep ? uninit({BL, E}, dt) : u;
  {
    const std::vector<T> wt = taps_by_channel(p.conv1d_weight.data<T>(), E, K);
    T* pst = state ? state->conv.data<T>() : nullptr;
    const T* px = xz.data<T>();
    conv_tokens_forward(x_pre.data<T>(), u.data<T>(), px, 2 * E, wt.data(),
                        cfg.conv_bias ? p.conv1d_bias.data<T>() : nullptr, pst, Bn, L, E, K);
    if (pst)  // the state keeps the last K inputs of [state, x], newest last (in place: reads run ahead)
      for (int64_t b = 0; b < Bn; ++b)
        for (int64_t e = 0; e < E; ++e) {
          T* sr = pst + (b * E + e) * K;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t i = L - 1 + k;  // index into [state[1:], x]
            sr[k] = i < K - 1 ? sr[i + 1] : px[(b * L + i - (K - 1)) * 2 * E + e];
          }
        }
  }

  // x_proj: x_dbl (B*L,X) = u W_x^T, columns [0,R) dt_in, [R,R+N) B, [R+N,X) C; delta (B*L,E) = dt_in W_dt^T
  Tensor x_dbl = uninit({BL, X}, dt), delta = uninit({BL, E}, dt);
  gemm(false, true, BL, X, E, T(1), u.data<T>(), E, p.x_proj_weight.data<T>(), E, T(0), x_dbl.data<T>(), X);
  gemm(false, true, BL, E, R, T(1), x_dbl.data<T>(), X, p.dt_proj_weight.data<T>(), R, T(0), delta.data<T>(), E);

  ScanInputs& s = c.scan;
  s.layout = ScanLayout::kTokens;
  s.u = u.view({Bn, L, E});
  s.delta = delta.view({Bn, L, E});
  const Tensor xd = x_dbl.view({Bn, L, X});
  s.B = xd.slice(2, R, R + N);  // column views, read in place
  s.C = xd.slice(2, R + N, X);
  s.z = xz.view({Bn, L, 2 * E}).slice(2, E, 2 * E);
  run_scan<T>(c, p, {Bn, L, E}, state);

  // out_proj: out (B*L,M) = y W_out^T (+ bias)
  output_buffer(out, {Bn, L, M}, dt);
  const T* b_out = cfg.bias ? p.out_proj_bias.data<T>() : nullptr;
  T* po = out.data<T>();
  if (b_out) fill_rows_with(po, b_out, BL, M);
  gemm(false, true, BL, M, E, T(1), c.y_scan.data<T>(), E, p.out_proj_weight.data<T>(), E, b_out ? T(1) : T(0), po,
       M);
  c.xz = xz;
  c.x_pre = x_pre;
  c.x_dbl = xd;
}

template <class T>
void backward_tokens_impl(Tensor* dhidden, MambaParams& g, const Tensor& dout, const MambaCache& c,
                          const MambaParams& p, const MambaConfig& cfg) {
  const int64_t Bn = c.hidden.size(0), L = c.hidden.size(1), BL = Bn * L;
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv, X = R + 2 * N;
  const DType dt = dout.dtype();
  const T* pdo = dout.data<T>();
  SSMKIT_CHECK(c.scan.layout == ScanLayout::kTokens && c.xz.defined() && c.x_pre.defined(),
               "mamba_block_backward: the cache was not filled by mamba_block_forward on this input");

  // out_proj: dy (B*L,E) = dout W_out; dW_out += dout^T y; db_out += column sums of dout
  Tensor dy = uninit({BL, E}, dt);
  gemm(false, false, BL, E, M, T(1), pdo, M, p.out_proj_weight.data<T>(), E, T(0), dy.data<T>(), E);
  gemm(true, false, M, E, BL, T(1), pdo, M, c.y_scan.data<T>(), E, T(1), g.out_proj_weight.data<T>(), E);
  if (cfg.bias) add_column_sums(g.out_proj_bias.data<T>(), pdo, BL, M);

  // scan: du, ddelta (B*L,E); dz straight into dxz[:, E:]; dB, dC added into the zeroed columns of dx_dbl
  Tensor dxz = uninit({BL, 2 * E}, dt), dx_dbl = uninit({BL, X}, dt);
  T* pdxz = dxz.data<T>();
  T* pdxd = dx_dbl.data<T>();
  for (int64_t r = 0; r < BL; ++r) std::fill(pdxd + r * X + R, pdxd + (r + 1) * X, T(0));
  ScanGrads sg;
  sg.write_rows = std::is_same_v<T, float>;
  if (!sg.write_rows)  // F64: gradients are added into
    for (int64_t r = 0; r < BL; ++r) std::fill(pdxz + r * 2 * E + E, pdxz + (r + 1) * 2 * E, T(0));
  auto rows = [&] { return sg.write_rows ? uninit({Bn, L, E}, dt) : zeros({Bn, L, E}, dt); };
  sg.du = rows();
  sg.ddelta = rows();
  sg.dz = dxz.view({Bn, L, 2 * E}).slice(2, E, 2 * E);
  const Tensor dxd = dx_dbl.view({Bn, L, X});
  sg.dB = dxd.slice(2, R, R + N);
  sg.dC = dxd.slice(2, R + N, X);
  sg.dD = g.D;
  sg.ddelta_bias = g.dt_proj_bias;
  selective_scan_backward(sg, dy.view({Bn, L, E}), Tensor{}, c.scan, c.saved);
  add_dA_log<T>(g, sg.dA, c.scan.A);

  // dt_proj and x_proj: dW_dt += ddelta^T dt_in; d dt_in = ddelta W_dt (into dx_dbl[:, :R]);
  // dW_x += dx_dbl^T u; du += dx_dbl W_x
  const T* pdd = sg.ddelta.data<T>();
  const T* pxd = c.x_dbl.data<T>();
  const T* pu = c.scan.u.data<T>();
  T* pdu = sg.du.data<T>();
  gemm(true, false, E, R, BL, T(1), pdd, E, pxd, X, T(1), g.dt_proj_weight.data<T>(), R);
  gemm(false, false, BL, R, E, T(1), pdd, E, p.dt_proj_weight.data<T>(), R, T(0), pdxd, X);
  gemm(true, false, X, E, BL, T(1), pdxd, X, pu, E, T(1), g.x_proj_weight.data<T>(), E);
  gemm(false, false, BL, E, X, T(1), pdxd, X, p.x_proj_weight.data<T>(), E, T(1), pdu, E);

  // through SiLU and the conv: dx into dxz[:, :E]
  {
    const std::vector<T> wt = taps_by_channel(p.conv1d_weight.data<T>(), E, K);
    conv_tokens_backward(pdxz, 2 * E, g.conv1d_weight.data<T>(), cfg.conv_bias ? g.conv1d_bias.data<T>() : nullptr,
                         pdu, c.x_pre.data<T>(), c.xz.data<T>(), 2 * E, wt.data(), Bn, L, E, K);
  }

  // in_proj: dh (B*L,M) = dxz W_in; dW_in += dxz^T h; db_in += column sums of dxz
  if (dhidden) {
    *dhidden = uninit({Bn, L, M}, dt);
    gemm(false, false, BL, M, 2 * E, T(1), pdxz, 2 * E, p.in_proj_weight.data<T>(), M, T(0), dhidden->data<T>(), M);
  }
  gemm(true, false, 2 * E, M, BL, T(1), pdxz, 2 * E, c.hidden.data<T>(), M, T(1), g.in_proj_weight.data<T>(), M);
  if (cfg.bias) add_column_sums(g.in_proj_bias.data<T>(), pdxz, BL, 2 * E);
}

template <class T>
void forward_impl(Tensor& out, MambaCache& c, bool keep, const Tensor& hidden, const MambaParams& p,
                  const MambaConfig& cfg, MambaState* state) {
  const int64_t Bn = hidden.size(0), L = hidden.size(1);
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv, X = R + 2 * N;
  const DType dt = hidden.dtype();
  const T* h = hidden.data<T>();
  const T* w_in = p.in_proj_weight.data<T>();
  const T* b_in = cfg.bias ? p.in_proj_bias.data<T>() : nullptr;
  if (token_major(Bn, L)) return forward_tokens_impl<T>(out, c, keep, hidden, p, cfg, state);
  c = MambaCache{};
  c.hidden = hidden;

  // in_proj, channel-major: x_b (E,L) = W_in[:E] h_b^T, z_b (E,L) = W_in[E:] h_b^T (+ bias).
  Tensor x = uninit({Bn, E, L}, dt), z = uninit({Bn, E, L}, dt);
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t half = 0; half < 2; ++half) {
      T* dst = (half == 0 ? x : z).template data<T>() + b * E * L;
      if (b_in)
        for (int64_t e = 0; e < E; ++e) std::fill(dst + e * L, dst + (e + 1) * L, b_in[half * E + e]);
      gemm(false, true, E, L, M, T(1), w_in + half * E * M, M, h + b * L * M, M, b_in ? T(1) : T(0), dst, L);
    }

  // causal depthwise conv (continuing from the carried conv state, if any) + SiLU; without a backward
  // to feed, SiLU runs in place
  Tensor u = uninit({Bn, E, L}, dt);
  Tensor x_pre = keep ? uninit({Bn, E, L}, dt) : u;
  {
    const T* px = x.data<T>();
    const T* w = p.conv1d_weight.data<T>();
    const T* cb = cfg.conv_bias ? p.conv1d_bias.data<T>() : nullptr;
    T* pst = state ? state->conv.data<T>() : nullptr;
    T* pre = x_pre.data<T>();
    T* pu = u.data<T>();
#pragma omp parallel for schedule(static) if (Bn * E * L * K > kParallelMinWork)
    for (int64_t row = 0; row < Bn * E; ++row) {
      const int64_t e = row % E;
      const T* xr = px + row * L;
      T* st = pst ? pst + row * K : nullptr;
      conv_row_forward(pre + row * L, xr, st ? st + 1 : nullptr, w + e * K, cb ? cb[e] : T(0), L, K);
      vec_silu(pre + row * L, pu + row * L, L);
      if (st)  // the state keeps the last K inputs of [state, x], newest last (in place: reads run ahead)
        for (int64_t k = 0; k < K; ++k) {
          const int64_t i = L - 1 + k;  // index into [state[1:], x]
          st[k] = i < K - 1 ? st[i + 1] : xr[i - (K - 1)];
        }
    }
  }

  // x_proj: x_dbl_b (X,L) = W_x u_b; rows [0,R) dt_in, [R,R+N) B, [R+N,X) C.
  Tensor x_dbl = uninit({Bn, X, L}, dt);
  Tensor delta = uninit({Bn, E, L}, dt);
  {
    const T* w_x = p.x_proj_weight.data<T>();
    const T* w_dt = p.dt_proj_weight.data<T>();
    const T* pu = u.data<T>();
    T* pxd = x_dbl.data<T>();
    T* pdl = delta.data<T>();
    for (int64_t b = 0; b < Bn; ++b) {
      gemm(false, false, X, L, E, T(1), w_x, E, pu + b * E * L, L, T(0), pxd + b * X * L, L);
      // dt_proj: delta_b (E,L) = W_dt dt_in_b (its bias goes to the scan as delta_bias)
      gemm(false, false, E, L, R, T(1), w_dt, R, pxd + b * X * L, L, T(0), pdl + b * E * L, L);
    }
  }

  ScanInputs& s = c.scan;
  s.u = u;
  s.delta = delta;
  s.B = x_dbl.slice(1, R, R + N);  // (B,N,L) views; the scan copies them when B > 1
  s.C = x_dbl.slice(1, R + N, X);
  s.z = z;
  run_scan<T>(c, p, {Bn, E, L}, state);

  // out_proj: out_b (L,M) = y_b^T W_out^T (+ bias)
  output_buffer(out, {Bn, L, M}, dt);
  {
    const T* w_out = p.out_proj_weight.data<T>();
    const T* b_out = cfg.bias ? p.out_proj_bias.data<T>() : nullptr;
    const T* py = c.y_scan.data<T>();
    T* po = out.data<T>();
    if (b_out) fill_rows_with(po, b_out, Bn * L, M);
    for (int64_t b = 0; b < Bn; ++b)
      gemm(true, true, L, M, E, T(1), py + b * E * L, L, w_out, E, b_out ? T(1) : T(0), po + b * L * M, M);
  }
  c.xz = Tensor{};  // the two halves are kept channel-major: x_conv and scan.z
  c.x_conv = x;
  c.x_pre = x_pre;
  c.x_dbl = x_dbl.transpose(1, 2);  // (B,L,X) view of the channel-major buffer
}

// dhidden == nullptr skips the input gradient (one in_proj GEMM less).
template <class T>
void backward_impl(Tensor* dhidden, MambaParams& g, const Tensor& dout, const MambaCache& c, const MambaParams& p,
                   const MambaConfig& cfg) {
  const int64_t Bn = c.hidden.size(0), L = c.hidden.size(1);
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv, X = R + 2 * N;
  const DType dt = dout.dtype();
  const T* pdo = dout.data<T>();
  if (token_major(Bn, L)) return backward_tokens_impl<T>(dhidden, g, dout, c, p, cfg);  // the forward's choice
  SSMKIT_CHECK(c.scan.layout == ScanLayout::kChannels && c.x_conv.defined(),
               "mamba_block_backward: the cache was not filled by mamba_block_forward on this input");

  // out_proj: dy_b (E,L) = W_out^T dout_b^T; dW_out += dout_b^T y_b^T; db_out += column sums of dout
  Tensor dy = uninit({Bn, E, L}, dt);
  {
    const T* w_out = p.out_proj_weight.data<T>();
    const T* py = c.y_scan.data<T>();
    T* pdy = dy.data<T>();
    T* gw = g.out_proj_weight.data<T>();
    for (int64_t b = 0; b < Bn; ++b) {
      gemm(true, true, E, L, M, T(1), w_out, E, pdo + b * L * M, M, T(0), pdy + b * E * L, L);
      gemm(true, true, M, E, L, T(1), pdo + b * L * M, M, py + b * E * L, L, T(1), gw, E);
    }
    if (cfg.bias) add_column_sums(g.out_proj_bias.data<T>(), pdo, Bn * L, M);
  }

  // scan (adds into D's and dt_proj.bias's gradients directly)
  ScanGrads sg;  // the large gradients from the pool; the scan writes them (F32) or adds into zeros (F64)
  sg.write_rows = std::is_same_v<T, float>;
  auto rows = [&] { return sg.write_rows ? uninit({Bn, E, L}, dt) : zeros({Bn, E, L}, dt); };
  sg.du = rows();
  sg.ddelta = rows();
  sg.dz = rows();
  sg.dD = g.D;
  sg.ddelta_bias = g.dt_proj_bias;
  selective_scan_backward(sg, dy, Tensor{}, c.scan, c.saved);
  add_dA_log<T>(g, sg.dA, c.scan.A);

  // dt_proj and x_proj, per batch element: dx_dbl_b (X,L) = [W_dt^T ddelta_b; dB_b; dC_b]
  Tensor du = sg.du.contiguous();  // the scan's du; x_proj's share is added below
  {
    const Tensor x_dbl = c.x_dbl.transpose(1, 2).contiguous();  // (B,X,L): the forward's buffer itself
    const Tensor ddelta = sg.ddelta.contiguous(), dB = sg.dB.contiguous(), dC = sg.dC.contiguous();
    const T* pxd = x_dbl.data<T>();
    const T* pdd = ddelta.data<T>();
    const T* pdB = dB.data<T>();
    const T* pdC = dC.data<T>();
    const T* pu = c.scan.u.data<T>();
    const T* w_x = p.x_proj_weight.data<T>();
    const T* w_dt = p.dt_proj_weight.data<T>();
    T* gw_x = g.x_proj_weight.data<T>();
    T* gw_dt = g.dt_proj_weight.data<T>();
    T* pdu = du.data<T>();
    {
      Tensor dx_dbl = uninit({X, L}, dt);  // one batch element at a time
      T* pdx = dx_dbl.data<T>();
      for (int64_t b = 0; b < Bn; ++b) {
        const T* dd_b = pdd + b * E * L;
        const T* u_b = pu + b * E * L;
        gemm(false, true, E, R, L, T(1), dd_b, L, pxd + b * X * L, L, T(1), gw_dt, R);  // dW_dt += ddelta dt_in^T
        gemm(true, false, R, L, E, T(1), w_dt, R, dd_b, L, T(0), pdx, L);              // d dt_in = W_dt^T ddelta
        std::copy(pdB + b * N * L, pdB + (b + 1) * N * L, pdx + R * L);
        std::copy(pdC + b * N * L, pdC + (b + 1) * N * L, pdx + (R + N) * L);
        gemm(false, true, X, E, L, T(1), pdx, L, u_b, L, T(1), gw_x, E);           // dW_x += dx_dbl u^T
        gemm(true, false, E, L, X, T(1), w_x, E, pdx, L, T(1), pdu + b * E * L, L);  // du += W_x^T dx_dbl
      }
    }
  }

  // through SiLU and the conv: d x_pre = du * silu'(x_pre); channels outer so each channel's weight
  // gradient has one writer.
  Tensor dx = uninit({Bn, E, L}, dt);
  {
    const T* pdu = du.data<T>();
    const T* pre = c.x_pre.data<T>();
    const T* px = c.x_conv.data<T>();
    const T* w = p.conv1d_weight.data<T>();
    T* pdx = dx.data<T>();
    T* gw = g.conv1d_weight.data<T>();
    T* gb = cfg.conv_bias ? g.conv1d_bias.data<T>() : nullptr;
#pragma omp parallel if (Bn * E * L * K > kParallelMinWork)
    {
      std::vector<T> dpre(static_cast<size_t>(L));
#pragma omp for schedule(static)
      for (int64_t e = 0; e < E; ++e) {
        T db = 0;
        for (int64_t b = 0; b < Bn; ++b) {
          const int64_t row = b * E + e;
          const T* xp = pre + row * L;
          const T* gu = pdu + row * L;
          T* d = dpre.data();
          vec_sigmoid(xp, d, L);
#pragma omp simd
          for (int64_t l = 0; l < L; ++l) d[l] = gu[l] * d[l] * (T(1) + xp[l] * (T(1) - d[l]));
          conv_row_backward(pdx + row * L, gw + e * K, &db, d, px + row * L, w + e * K, L, K);
        }
        if (gb) gb[e] += db;
      }
    }
  }

  // in_proj: dh_b (L,M) = dx_b^T W_in[:E] + dz_b^T W_in[E:]; dW_in[:E] += dx_b h_b, dW_in[E:] += dz_b h_b
  if (dhidden) *dhidden = uninit({Bn, L, M}, dt);
  {
    const Tensor dz = sg.dz.contiguous();
    const T* h = c.hidden.data<T>();
    const T* w_in = p.in_proj_weight.data<T>();
    T* gw_in = g.in_proj_weight.data<T>();
    T* pdh = dhidden ? dhidden->data<T>() : nullptr;
    {
      for (int64_t b = 0; b < Bn; ++b)
        for (int64_t half = 0; half < 2; ++half) {
          const T* d = (half == 0 ? dx : dz).template data<T>() + b * E * L;
          if (pdh) gemm(true, false, L, M, E, T(1), d, L, w_in + half * E * M, M, T(half), pdh + b * L * M, M);
          gemm(false, false, E, M, L, T(1), d, L, h + b * L * M, M, T(1), gw_in + half * E * M, M);
        }
    }
    if (cfg.bias) {
      T* gb = g.in_proj_bias.data<T>();
      for (int64_t half = 0; half < 2; ++half) {
        const T* d = (half == 0 ? dx : dz).template data<T>();
        for (int64_t b = 0; b < Bn; ++b)
          for (int64_t e = 0; e < E; ++e) {
            T acc = 0;
            for (int64_t l = 0; l < L; ++l) acc += d[(b * E + e) * L + l];
            gb[half * E + e] += acc;
          }
      }
    }
  }
}

}  // namespace

MambaParams MambaParams::zeros(const MambaConfig& cfg, DType dt) {
  const int64_t M = cfg.d_model, E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv;
  MambaParams p;
  p.in_proj_weight = Tensor::zeros({2 * E, M}, dt);
  if (cfg.bias) p.in_proj_bias = Tensor::zeros({2 * E}, dt);
  p.conv1d_weight = Tensor::zeros({E, 1, K}, dt);
  if (cfg.conv_bias) p.conv1d_bias = Tensor::zeros({E}, dt);
  p.x_proj_weight = Tensor::zeros({R + 2 * N, E}, dt);
  p.dt_proj_weight = Tensor::zeros({E, R}, dt);
  p.dt_proj_bias = Tensor::zeros({E}, dt);
  p.A_log = Tensor::zeros({E, N}, dt);
  p.D = Tensor::zeros({E}, dt);
  p.out_proj_weight = Tensor::zeros({M, E}, dt);
  if (cfg.bias) p.out_proj_bias = Tensor::zeros({M}, dt);
  return p;
}

MambaParams MambaParams::bind(const MambaConfig& cfg, const std::vector<Tensor>& values) {
  MambaParams p;  // names() lists an optional entry when it is defined: mark the ones cfg has
  if (cfg.bias) p.in_proj_bias = p.out_proj_bias = Tensor::empty({0});
  if (cfg.conv_bias) p.conv1d_bias = Tensor::empty({0});
  auto slots = p.names();
  SSMKIT_CHECK(values.size() == slots.size(), "mamba_block: ", values.size(),
               " parameters given, the configuration has ", slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    SSMKIT_CHECK(values[i].defined(), "mamba_block: parameter ", slots[i].first, " is undefined");
    *slots[i].second = values[i];
  }
  return p;
}

std::vector<std::pair<std::string, Tensor*>> MambaParams::names() {
  std::vector<std::pair<std::string, Tensor*>> v = {{"A_log", &A_log}, {"D", &D}, {"in_proj.weight", &in_proj_weight}};
  if (in_proj_bias.defined()) v.push_back({"in_proj.bias", &in_proj_bias});
  v.push_back({"conv1d.weight", &conv1d_weight});
  if (conv1d_bias.defined()) v.push_back({"conv1d.bias", &conv1d_bias});
  v.push_back({"x_proj.weight", &x_proj_weight});
  v.push_back({"dt_proj.weight", &dt_proj_weight});
  v.push_back({"dt_proj.bias", &dt_proj_bias});
  v.push_back({"out_proj.weight", &out_proj_weight});
  if (out_proj_bias.defined()) v.push_back({"out_proj.bias", &out_proj_bias});
  return v;
}

void MambaParams::load(const SafetensorsFile& f, const std::string& prefix, const MambaConfig& cfg, DType dt) {
  *this = zeros(cfg, dt);
  std::string problems;
  for (auto& [key, t] : names()) {
    const std::string full = prefix + key;
    if (!f.has(full)) {
      problems += "\n  missing " + full + " " + shape_str(t->shape());
      continue;
    }
    const Tensor& src = f.get(full);
    if (src.shape() != t->shape()) {
      problems += "\n  " + full + " has shape " + shape_str(src.shape()) + ", expected " + shape_str(t->shape());
      continue;
    }
    t->copy_from(src);
  }
  SSMKIT_CHECK(problems.empty(), f.path, ": cannot load the Mamba block (d_model ", cfg.d_model, "):", problems);
}

MambaState MambaState::zeros(int64_t batch, const MambaConfig& cfg, DType dt) {
  return {Tensor::zeros({batch, cfg.d_inner(), cfg.d_conv}, dt), Tensor::zeros({batch, cfg.d_inner(), cfg.d_state}, dt)};
}

static void check_state(const MambaState& st, int64_t batch, const MambaConfig& cfg, DType dt) {
  SSMKIT_CHECK(st.conv.defined() && st.conv.shape() == Shape({batch, cfg.d_inner(), cfg.d_conv}) &&
                   st.conv.dtype() == dt && st.conv.is_contiguous(),
               "mamba_block: state.conv must be a contiguous (", batch, ",", cfg.d_inner(), ",", cfg.d_conv, ") ",
               dtype_name(dt), " tensor (MambaState::zeros makes one)");
  SSMKIT_CHECK(st.ssm.defined() && st.ssm.shape() == Shape({batch, cfg.d_inner(), cfg.d_state}) && st.ssm.dtype() == dt,
               "mamba_block: state.ssm must be (", batch, ",", cfg.d_inner(), ",", cfg.d_state, ") ", dtype_name(dt));
}

void mamba_block_forward(Tensor& out, MambaCache* cache, const Tensor& hidden, const MambaParams& p0,
                         const MambaConfig& cfg, MambaState* state) {
  check_params(p0, cfg, "parameter");
  SSMKIT_CHECK(hidden.ndim() == 3 && hidden.size(2) == cfg.d_model, "mamba_block_forward: hidden must be (B,L,",
               cfg.d_model, "), got ", shape_str(hidden.shape()));
  SSMKIT_CHECK(hidden.dtype() == p0.in_proj_weight.dtype(), "mamba_block_forward: input dtype ",
               dtype_name(hidden.dtype()), " differs from the parameters' ", dtype_name(p0.in_proj_weight.dtype()));
  SSMKIT_CHECK(!(cache && state), "mamba_block_forward: a carried state is for inference only (no backward cache)");
  if (state) check_state(*state, hidden.size(0), cfg, hidden.dtype());
  const MambaParams p = contiguous_params(p0);
  MambaCache local;
  MambaCache& c = cache ? *cache : local;
  const Tensor h = hidden.contiguous();
  if (h.dtype() == DType::F64)
    forward_impl<double>(out, c, cache != nullptr, h, p, cfg, state);
  else
    forward_impl<float>(out, c, cache != nullptr, h, p, cfg, state);
}

// The official Mamba.step: roll the conv state, convolve, then one scan step, all in plain loops.
template <class T>
void step_impl(Tensor& out, MambaState& st, const Tensor& x, const MambaParams& p, const MambaConfig& cfg) {
  const int64_t Bn = x.size(0), E = cfg.d_inner(), R = cfg.rank(), N = cfg.d_state, K = cfg.d_conv;
  Tensor xz;
  linear_forward(xz, x, p.in_proj_weight, cfg.bias ? p.in_proj_bias : Tensor{});  // (B,2E)
  Tensor u = Tensor::empty({Bn, E}, x.dtype());
  T* cs = st.conv.data<T>();
  const T* pxz = xz.data<T>();
  const T* w = p.conv1d_weight.data<T>();
  const T* cb = cfg.conv_bias ? p.conv1d_bias.data<T>() : nullptr;
  T* pu = u.data<T>();
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t e = 0; e < E; ++e) {
      T* row = cs + (b * E + e) * K;
      for (int64_t k = 0; k + 1 < K; ++k) row[k] = row[k + 1];
      row[K - 1] = pxz[b * 2 * E + e];
      T acc = cb ? cb[e] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += row[k] * w[e * K + k];
      pu[b * E + e] = acc * sigmoid(acc);
    }
  Tensor x_db, dt;
  linear_forward(x_db, u, p.x_proj_weight, Tensor{});  // (B,R+2N)
  linear_forward(dt, x_db.slice(1, 0, R).contiguous(), p.dt_proj_weight, p.dt_proj_bias);  // (B,E)
  Tensor y = Tensor::empty({Bn, E}, x.dtype());
  const T* pdb = x_db.data<T>();
  const T* pdt = dt.data<T>();
  const T* Alog = p.A_log.data<T>();
  const T* Dp = p.D.data<T>();
  T* hs = st.ssm.data<T>();
  T* py = y.data<T>();
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t e = 0; e < E; ++e) {
      const T xd = pdt[b * E + e];
      const T d = xd > T(20) ? xd : std::log1p(std::exp(xd));
      const T uv = pu[b * E + e];
      const T* Bv = pdb + b * (R + 2 * N) + R;
      const T* Cv = Bv + N;
      T* h = hs + (b * E + e) * N;
      T acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        h[n] = std::exp(d * -std::exp(Alog[e * N + n])) * h[n] + d * Bv[n] * uv;
        acc += h[n] * Cv[n];
      }
      const T zv = pxz[b * 2 * E + E + e];
      py[b * E + e] = (acc + Dp[e] * uv) * zv * sigmoid(zv);
    }
  linear_forward(out, y, p.out_proj_weight, cfg.bias ? p.out_proj_bias : Tensor{});
}

void mamba_block_step(Tensor& out, MambaState& state, const Tensor& x, const MambaParams& p, const MambaConfig& cfg) {
  check_params(p, cfg, "parameter");
  SSMKIT_CHECK(x.ndim() == 2 && x.size(1) == cfg.d_model, "mamba_block_step: x must be (B,", cfg.d_model, "), got ",
               shape_str(x.shape()));
  check_state(state, x.size(0), cfg, x.dtype());
  const Tensor xc = x.contiguous();
  if (xc.dtype() == DType::F64)
    step_impl<double>(out, state, xc, p, cfg);
  else
    step_impl<float>(out, state, xc, p, cfg);
}

void mamba_block_backward(Tensor& dhidden, MambaParams& grads, const Tensor& dout, const MambaCache& cache,
                          const MambaParams& p0, const MambaConfig& cfg) {
  check_params(p0, cfg, "parameter");
  check_params(grads, cfg, "gradient");
  SSMKIT_CHECK(cache.hidden.defined() && cache.saved.chunk_states.defined() && dout.shape() == cache.hidden.shape(),
               "mamba_block_backward: dout ", shape_str(dout.shape()), " must match the forward's input ",
               cache.hidden.defined() && cache.saved.chunk_states.defined() ? shape_str(cache.hidden.shape())
                                                                            : std::string("<no forward cache>"));
  SSMKIT_CHECK(dout.dtype() == cache.hidden.dtype(), "mamba_block_backward: dout dtype ", dtype_name(dout.dtype()),
               " differs from the forward's ", dtype_name(cache.hidden.dtype()));
  for (auto& [key, t] : grads.names())
    SSMKIT_CHECK(t->dtype() == dout.dtype() && t->is_contiguous(), "mamba_block_backward: gradient ", key,
                 " must be a contiguous ", dtype_name(dout.dtype()),
                 " tensor to add into (MambaParams::zeros makes them)");
  const MambaParams p = contiguous_params(p0);
  const Tensor d = dout.contiguous();
  if (d.dtype() == DType::F64)
    backward_impl<double>(&dhidden, grads, d, cache, p, cfg);
  else
    backward_impl<float>(&dhidden, grads, d, cache, p, cfg);
}

}  // namespace ssmkit::core
