// Linear layer forward and backward: three gemm() calls (ops/gemm.h, OpenBLAS) on the contiguous
// operands viewed as row-major matrices, rows = all leading dims folded together. The bias is written
// into the output first and the product added on top (beta = 1), so no second pass runs.
// Not here: the autograd wrapper (ops/matmul.cpp), integer or half-precision inputs.
// Shapes: x (rows, I), W (O, I), b (O), y (rows, O).
#include "ssmkit/core/ops/linear.h"

#include <algorithm>
#include <vector>

#include "ssmkit/core/ops/gemm.h"
#include "gemm_bias_rows.h"

namespace ssmkit::core {

namespace {

template <class T>
bool try_gemm_bias(const T* x, const T* W, const T* b, T* y, int64_t rows, int64_t I, int64_t O) {
  const int64_t ldi = std::max<int64_t>(I, 1), ldo = std::max<int64_t>(O, 1);
  return detail::gemm_bias_rows(false, true, rows, O, I, x, ldi, W, ldi, b, y, ldo);
}

void check_operands(const Tensor& x, const Tensor& W, const char* fn) {
  SSMKIT_CHECK(W.ndim() == 2, fn, ": weight must be (out, in), got ", shape_str(W.shape()));
  SSMKIT_CHECK(x.ndim() >= 1 && x.size(-1) == W.size(1), fn, ": input ", shape_str(x.shape()),
               " does not end in the weight's in-features ", W.size(1));
  SSMKIT_CHECK(x.dtype() == W.dtype() && (x.dtype() == DType::F32 || x.dtype() == DType::F64), fn,
               ": input and weight must both be F32 or both F64");
}

// The product of all dims but the last (the GEMM's row count).
int64_t leading_rows(const Tensor& x) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.ndim(); ++d) rows *= x.size(d);
  return rows;
}

// y (rows,O) = b in every row, over the threads for large outputs (the GEMM that follows is threaded, so a
// serial fill would leave the other threads waiting). Inline copies (GCC would otherwise call memcpy per row,
// costly for short rows).
template <class T>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void fill_rows(T* __restrict y, const T* __restrict b,
                                                                             int64_t rows, int64_t O) {
#pragma omp parallel for schedule(static) if (rows * O > (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < O; ++o) y[r * O + o] = b[o];
}

// x (rows,I), W (O,I), b (O) or null -> y (rows,O)
template <class T>
void forward_impl(T* y, const T* x, const T* W, const T* b, int64_t rows, int64_t I, int64_t O) {
  if (b && try_gemm_bias(x, W, b, y, rows, I, O)) return;
  if (b) fill_rows(y, b, rows, O);
  gemm(false, true, rows, O, I, T(1), x, std::max<int64_t>(I, 1), W, std::max<int64_t>(I, 1), b ? T(1) : T(0), y,
       std::max<int64_t>(O, 1));
}

// dy (rows,O) -> dW (O,I) = or += dy^T x; db (O) += column sums of dy (when non-null); dx (rows,I) = or += dy W
template <class T>
void backward_impl(T* dx, bool dx_add, T* dW, bool dW_add, T* db, const T* dy, const T* x, const T* W, int64_t rows,
                   int64_t I, int64_t O) {
  const int64_t ldi = std::max<int64_t>(I, 1), ldo = std::max<int64_t>(O, 1);
  gemm(true, false, O, I, rows, T(1), dy, ldo, x, ldi, dW_add ? T(1) : T(0), dW, ldi);
  if (db) {
    // fixed chunks of rows summed in parallel, the partial sums added in chunk order (deterministic)
    constexpr int64_t kRows = 256;
    const int64_t nchunk = (rows + kRows - 1) / kRows;
    std::vector<T> part(static_cast<size_t>(nchunk * O), T(0));
#pragma omp parallel for schedule(static) if (rows * O > (1 << 16))
    for (int64_t k = 0; k < nchunk; ++k) {
      T* acc = part.data() + k * O;
      for (int64_t r = k * kRows; r < std::min(rows, (k + 1) * kRows); ++r)
        for (int64_t o = 0; o < O; ++o) acc[o] += dy[r * O + o];
    }
    for (int64_t k = 0; k < nchunk; ++k)
      for (int64_t o = 0; o < O; ++o) db[o] += part[static_cast<size_t>(k * O + o)];
  }
  if (dx) gemm(false, false, rows, I, O, T(1), dy, ldo, W, ldi, dx_add ? T(1) : T(0), dx, ldi);
}

}  // namespace

void linear_forward(Tensor& y, const Tensor& x0, const Tensor& W0, const Tensor& b) {
  check_operands(x0, W0, "linear_forward");
  const Tensor x = x0.contiguous(), W = W0.contiguous();
  const int64_t I = W.size(1), O = W.size(0), rows = leading_rows(x);
  Tensor bc;
  if (b.defined()) {
    SSMKIT_CHECK(b.shape() == Shape({O}) && b.dtype() == x.dtype(), "linear_forward: bias must be (", O, ") of the ",
                 "input's dtype, got ", shape_str(b.shape()), " ", dtype_name(b.dtype()));
    bc = b.contiguous();
  }
  Shape ys = x.shape();
  ys.back() = O;
  if (!(y.defined() && y.shape() == ys && y.dtype() == x.dtype() && y.is_contiguous()))
    y = Tensor::uninitialized(ys, x.dtype());  // written in full (bias rows, or the product with beta 0)
  if (x.dtype() == DType::F64)
    forward_impl<double>(y.data<double>(), x.data<double>(), W.data<double>(),
                         bc.defined() ? bc.data<double>() : nullptr, rows, I, O);
  else
    forward_impl<float>(y.data<float>(), x.data<float>(), W.data<float>(), bc.defined() ? bc.data<float>() : nullptr,
                        rows, I, O);
}

void linear_backward(Tensor* dx, Tensor& dW, Tensor* db, const Tensor& dy0, const Tensor& x0, const Tensor& W0) {
  check_operands(x0, W0, "linear_backward");
  const Tensor x = x0.contiguous(), W = W0.contiguous(), dy = dy0.contiguous();
  const int64_t I = W.size(1), O = W.size(0), rows = leading_rows(x);
  const DType dt = x.dtype();
  SSMKIT_CHECK(dy.numel() == rows * O && dy.size(-1) == O && dy.dtype() == dt, "linear_backward: dy ",
               shape_str(dy.shape()), " does not match the output of input ", shape_str(x.shape()));
  const bool dW_add = dW.defined();
  if (!dW_add) dW = Tensor::uninitialized(W.shape(), dt);  // the product with beta 0
  SSMKIT_CHECK(dW.shape() == W.shape() && dW.dtype() == dt && dW.is_contiguous(),
               "linear_backward: dW must be a contiguous ", shape_str(W.shape()), " ", dtype_name(dt), " tensor");
  if (db) {
    if (!db->defined()) *db = Tensor::zeros({O}, dt);
    SSMKIT_CHECK(db->shape() == Shape({O}) && db->dtype() == dt && db->is_contiguous(),
                 "linear_backward: db must be a contiguous (", O, ") ", dtype_name(dt), " tensor");
  }
  bool dx_add = false;
  if (dx) {
    if (dx->defined()) {
      SSMKIT_CHECK(dx->shape() == x.shape() && dx->dtype() == dt && dx->is_contiguous(),
                   "linear_backward: dx must be a contiguous ", shape_str(x.shape()), " ", dtype_name(dt), " tensor");
      dx_add = true;
    } else {
      *dx = Tensor::uninitialized(x.shape(), dt);  // the product with beta 0
    }
  }
  if (dt == DType::F64)
    backward_impl<double>(dx ? dx->data<double>() : nullptr, dx_add, dW.data<double>(), dW_add,
                          db ? db->data<double>() : nullptr, dy.data<double>(), x.data<double>(), W.data<double>(),
                          rows, I, O);
  else
    backward_impl<float>(dx ? dx->data<float>() : nullptr, dx_add, dW.data<float>(), dW_add,
                         db ? db->data<float>() : nullptr, dy.data<float>(), x.data<float>(), W.data<float>(), rows, I,
                         O);
}

}  // namespace ssmkit::core
