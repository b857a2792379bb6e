// matmul: both operands made contiguous, 1-D ones promoted to matrices, batch dims broadcast by a table
// of per-batch matrix offsets; each batch is one gemm() (ops/gemm.h, OpenBLAS), the transposes of the
// backward folded into its flags. Many small batches run on threads over batches (each gemm then runs on
// one thread); few large ones run one after another with the threads inside the gemm. A 2-D b folds a's
// batch into the rows: one gemm. Backward: da = dc b^T, db = a^T dc, summed over broadcast batches.
// Follows torch.matmul. linear: the autograd wrapper of ops/linear.h (nn.functional.linear).
// Shapes: a (..., m, k), b (..., k, n), c (..., m, n).
#include "ssmkit/core/ops/matmul.h"

#include <omp.h>

#include <algorithm>

#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/gemm.h"
#include "ssmkit/core/ops/linear.h"
#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

// Multiply-adds below which a batched product stays on one thread (a parallel region costs more).
constexpr int64_t kThreadWork = 1 << 17;
// Multiply-adds of one product from which the gemm's own threads pay off better than threads over batches.
constexpr int64_t kGemmThreadWork = 1 << 22;

using detail::dispatch_float;

// Everything about one matmul's shapes.
struct Plan {
  Shape a2, b2;       // operands promoted to >= 2-D
  Shape batch;        // broadcast batch shape
  Shape out2, out;    // result with both matrix dims, and as returned (promoted dims dropped)
  int64_t m, k, n;
  int64_t nb;                        // batches
  std::vector<int64_t> a_off, b_off;  // per batch: element offset of its matrix in a, b
  bool a_full, b_full;               // operand has one matrix per batch (no broadcast)
};

// Offsets (in elements) of the matrix of each batch of `batch` inside an operand with batch dims `sub`
// (right-aligned, size-1 dims broadcast) and matrices of `mat` elements.
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& sub, int64_t mat) {
  const int64_t nb = shape_numel(batch), shift = static_cast<int64_t>(batch.size() - sub.size());
  Shape stride(sub.size(), mat);
  for (int64_t d = static_cast<int64_t>(sub.size()) - 2; d >= 0; --d) stride[d] = stride[d + 1] * sub[d + 1];
  std::vector<int64_t> off(static_cast<size_t>(nb), 0);
  for (int64_t i = 0; i < nb; ++i) {
    int64_t rem = i, o = 0;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      const int64_t id = rem % batch[d];
      rem /= batch[d];
      const int64_t sd = d - shift;
      if (sd >= 0 && sub[sd] != 1) o += id * stride[sd];
    }
    off[static_cast<size_t>(i)] = o;
  }
  return off;
}

// Right-aligned dims equal or 1.
bool broadcast_ok(const Shape& a, const Shape& b) {
  for (size_t i = 1; i <= std::min(a.size(), b.size()); ++i) {
    const int64_t x = a[a.size() - i], y = b[b.size() - i];
    if (x != y && x != 1 && y != 1) return false;
  }
  return true;
}

Plan make_plan(const Tensor& a, const Tensor& b) {
  SSMKIT_CHECK(a.defined() && b.defined(), "matmul: operand is undefined");
  SSMKIT_CHECK(a.dtype() == b.dtype() && (a.dtype() == DType::F32 || a.dtype() == DType::F64),
               "matmul: operands must both be F32 or both F64, got ", dtype_name(a.dtype()), " and ",
               dtype_name(b.dtype()));
  SSMKIT_CHECK(a.ndim() >= 1 && b.ndim() >= 1, "matmul: operands must have at least 1 dim, got ",
               shape_str(a.shape()), " and ", shape_str(b.shape()));
  Plan p;
  p.a2 = a.ndim() == 1 ? Shape{1, a.size(0)} : a.shape();
  p.b2 = b.ndim() == 1 ? Shape{b.size(0), 1} : b.shape();
  p.m = p.a2[p.a2.size() - 2];
  p.k = p.a2.back();
  p.n = p.b2.back();
  SSMKIT_CHECK(p.b2[p.b2.size() - 2] == p.k, "matmul: inner sizes differ: a ", shape_str(a.shape()), " has k = ",
               p.k, ", b ", shape_str(b.shape()), " has k = ", p.b2[p.b2.size() - 2]);
  const Shape ab(p.a2.begin(), p.a2.end() - 2), bb(p.b2.begin(), p.b2.end() - 2);
  SSMKIT_CHECK(broadcast_ok(ab, bb), "matmul: batch dims of ", shape_str(a.shape()), " and ", shape_str(b.shape()),
               " do not broadcast");
  p.batch = broadcast_shapes(ab, bb);
  p.nb = shape_numel(p.batch);
  p.out2 = p.batch;
  p.out2.push_back(p.m);
  p.out2.push_back(p.n);
  p.out = p.batch;
  if (a.ndim() > 1) p.out.push_back(p.m);
  if (b.ndim() > 1) p.out.push_back(p.n);
  p.a_off = batch_offsets(p.batch, ab, p.m * p.k);
  p.b_off = batch_offsets(p.batch, bb, p.k * p.n);
  p.a_full = shape_numel(ab) == p.nb;
  p.b_full = shape_numel(bb) == p.nb;
  return p;
}

// Row-major C (M,N) = op(A) op(B) + beta C with leading dimensions clamped to 1 (gemm() rejects 0, which
// an empty matrix would give).
template <class T>
void gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
             T beta, T* C, int64_t ldc) {
  gemm(ta, tb, M, N, K, T(1), A, std::max<int64_t>(lda, 1), B, std::max<int64_t>(ldb, 1), beta, C,
       std::max<int64_t>(ldc, 1));
}

// Threads over batches: several batches, enough work in all, and each product too small to thread well.
bool thread_batches(const Plan& p) {
  const int64_t one = p.m * p.n * p.k;
  return p.nb > 1 && p.nb * one > kThreadWork && (one < kGemmThreadWork || p.nb >= 2 * omp_get_max_threads());
}

// c (nb,m,n) = a_i b_i per batch
template <class T>
void forward_impl(T* c, const T* a, const T* b, const Plan& p, bool fold) {
  const int64_t m = p.m, k = p.k, n = p.n;
  if (fold) {  // b has no batch dims: a's batches are just more rows
    gemm_rm<T>(false, false, p.nb * m, n, k, a, k, b, n, T(0), c, n);
    return;
  }
#pragma omp parallel for schedule(static) if (thread_batches(p))
  for (int64_t i = 0; i < p.nb; ++i)
    gemm_rm<T>(false, false, m, n, k, a + p.a_off[static_cast<size_t>(i)], k, b + p.b_off[static_cast<size_t>(i)], n,
               T(0), c + i * m * n, n);
}

// dc (nb,m,n) -> da (a's matrices) = dc b^T, db (b's matrices) = a^T dc; both zero on entry (their
// broadcast batches accumulate).
template <class T>
void backward_impl(T* da, T* db, const T* dc, const T* a, const T* b, const Plan& p, bool fold) {
  const int64_t m = p.m, k = p.k, n = p.n;
  if (fold) {
    const int64_t rows = p.nb * m;
    if (da) gemm_rm<T>(false, true, rows, k, n, dc, n, b, n, T(0), da, k);
    if (db) gemm_rm<T>(true, false, k, n, rows, a, k, dc, n, T(0), db, n);
    return;
  }
  // da[a_off(i)] += dc_i b_i^T. Batches write disjoint matrices when a is not broadcast (threads), else
  // they accumulate in batch order (one after another, threads inside the gemm).
  if (da) {
#pragma omp parallel for schedule(static) if (p.a_full && thread_batches(p))
    for (int64_t i = 0; i < p.nb; ++i)
      gemm_rm<T>(false, true, m, k, n, dc + i * m * n, n, b + p.b_off[static_cast<size_t>(i)], n, T(1),
                 da + p.a_off[static_cast<size_t>(i)], k);
  }
  if (db) {
#pragma omp parallel for schedule(static) if (p.b_full && thread_batches(p))
    for (int64_t i = 0; i < p.nb; ++i)
      gemm_rm<T>(true, false, k, n, m, a + p.a_off[static_cast<size_t>(i)], k, dc + i * m * n, n, T(1),
                 db + p.b_off[static_cast<size_t>(i)], n);
  }
}

}  // namespace

Tensor matmul_forward(const Tensor& a0, const Tensor& b0) {
  const Plan p = make_plan(a0, b0);
  const Tensor a = a0.contiguous(), b = b0.contiguous();
  Tensor c = Tensor::uninitialized(p.out2, a.dtype());  // gemm with beta 0 writes every element
  const bool fold = p.b2.size() == 2;
  dispatch_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    forward_impl<T>(c.data<T>(), a.data<T>(), b.data<T>(), p, fold);
  });
  return c.view(p.out);
}

void matmul_backward(Tensor* da, Tensor* db, const Tensor& dc0, const Tensor& a0, const Tensor& b0) {
  const Plan p = make_plan(a0, b0);
  SSMKIT_CHECK(dc0.shape() == p.out && dc0.dtype() == a0.dtype(), "matmul_backward: gradient ",
               shape_str(dc0.shape()), " does not match the result ", shape_str(p.out));
  const Tensor a = a0.contiguous(), b = b0.contiguous(), dc = dc0.contiguous();
  const bool fold = p.b2.size() == 2;
  if (da) *da = Tensor::empty(a.shape(), a.dtype());  // zeros
  if (db) *db = Tensor::empty(b.shape(), b.dtype());
  dispatch_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    backward_impl<T>(da ? da->data<T>() : nullptr, db ? db->data<T>() : nullptr, dc.data<T>(), a.data<T>(),
                     b.data<T>(), p, fold);
  });
}

Var matmul(const Var& a, const Var& b) {
  const Tensor av = a.value(), bv = b.value();
  Tensor c = matmul_forward(av, bv);
  return make_result(c, {a, b}, [av, bv](const Tensor& g, const std::vector<bool>& need) {
    Tensor da, db;
    matmul_backward(need[0] ? &da : nullptr, need[1] ? &db : nullptr, g, av, bv);
    return std::vector<Tensor>{da, db};
  }, "matmul");
}

// ------------------------------------------------------------------------------------------------------
// linear: y = x W^T + b; dx = dy W, dW = dy^T x, db = sum dy (ops/linear.h kernels)

Var linear(const Var& x, const Var& weight, const Var& bias) {
  const Tensor xv = x.value(), wv = weight.value();
  const bool has_bias = bias.defined();
  Tensor y;
  linear_forward(y, xv, wv, has_bias ? bias.value() : Tensor{});
  std::vector<Var> inputs{x, weight};
  if (has_bias) inputs.push_back(bias);
  return make_result(y, inputs, [xv, wv, has_bias](const Tensor& g, const std::vector<bool>& need) {
    Tensor dx, dW, db;
    const bool need_b = has_bias && need[2];
    if (need[1]) {
      linear_backward(need[0] ? &dx : nullptr, dW, need_b ? &db : nullptr, g, xv, wv);
    } else {  // frozen weight: skip dW
      const int64_t O = wv.size(0);
      if (need[0]) dx = matmul_forward(g.reshape({-1, O}), wv).view(xv.shape());
      if (need_b) db = sum_to(g, {O});
    }
    std::vector<Tensor> grads{dx, dW};
    if (has_bias) grads.push_back(db);
    return grads;
  }, "linear");
}

}  // namespace ssmkit::core
