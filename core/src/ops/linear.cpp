// Linear layer forward and backward as Eigen GEMMs on row-major maps of the contiguous operands.
#include "ssmkit/core/ops/linear.h"

#include <Eigen/Dense>

namespace ssmkit::core {

namespace {

template <class T>
using RowMat = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class T>
using ConstRowMat = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

void check_operands(const Tensor& x, const Tensor& W, const char* fn) {
  SSMKIT_CHECK(W.ndim() == 2, fn, ": weight must be (out, in), got ", shape_str(W.shape()));
  SSMKIT_CHECK(x.ndim() >= 1 && x.size(-1) == W.size(1), fn, ": input ", shape_str(x.shape()),
               " does not end in the weight's in-features ", W.size(1));
  SSMKIT_CHECK(x.dtype() == W.dtype() && (x.dtype() == DType::F32 || x.dtype() == DType::F64), fn,
               ": input and weight must both be F32 or both F64");
}

template <class T>
void forward_impl(Tensor& y, const Tensor& x, const Tensor& W, const Tensor& b) {
  const int64_t I = W.size(1), O = W.size(0), rows = x.numel() / std::max<int64_t>(I, 1);
  Shape ys = x.shape();
  ys.back() = O;
  if (!(y.defined() && y.shape() == ys && y.dtype() == x.dtype() && y.is_contiguous())) y = Tensor::empty(ys, x.dtype());
  ConstRowMat<T> X(x.data<T>(), rows, I), Wm(W.data<T>(), O, I);
  RowMat<T> Y(y.data<T>(), rows, O);
  Y.noalias() = X * Wm.transpose();
  if (b.defined()) {
    SSMKIT_CHECK(b.shape() == Shape({O}) && b.dtype() == x.dtype(), "linear_forward: bias must be (", O, ")");
    Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> bv(b.data<T>(), O);
    Y.rowwise() += bv;
  }
}

template <class T>
void backward_impl(Tensor* dx, Tensor& dW, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& W) {
  const int64_t I = W.size(1), O = W.size(0), rows = x.numel() / std::max<int64_t>(I, 1);
  SSMKIT_CHECK(dy.numel() == rows * O && dy.size(-1) == O && dy.dtype() == x.dtype(), "linear_backward: dy ",
               shape_str(dy.shape()), " does not match the output of input ", shape_str(x.shape()));
  ConstRowMat<T> X(x.data<T>(), rows, I), Wm(W.data<T>(), O, I), dY(dy.data<T>(), rows, O);
  if (!dW.defined()) dW = Tensor::zeros(W.shape(), W.dtype());
  SSMKIT_CHECK(dW.shape() == W.shape() && dW.dtype() == W.dtype() && dW.is_contiguous(),
               "linear_backward: dW must match the weight ", shape_str(W.shape()));
  RowMat<T>(dW.data<T>(), O, I).noalias() += dY.transpose() * X;
  if (db) {
    if (!db->defined()) *db = Tensor::zeros({O}, W.dtype());
    SSMKIT_CHECK(db->shape() == Shape({O}) && db->dtype() == W.dtype(), "linear_backward: db must be (", O, ")");
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db->data<T>(), O) += dY.colwise().sum();
  }
  if (dx) {
    if (!dx->defined()) {
      *dx = Tensor::empty(x.shape(), x.dtype());
      RowMat<T>(dx->data<T>(), rows, I).noalias() = dY * Wm;
    } else {
      SSMKIT_CHECK(dx->shape() == x.shape() && dx->dtype() == x.dtype() && dx->is_contiguous(),
                   "linear_backward: dx must match the input ", shape_str(x.shape()));
      RowMat<T>(dx->data<T>(), rows, I).noalias() += dY * Wm;
    }
  }
}

}  // namespace

void linear_forward(Tensor& y, const Tensor& x0, const Tensor& W0, const Tensor& b) {
  check_operands(x0, W0, "linear_forward");
  const Tensor x = x0.contiguous(), W = W0.contiguous();
  const Tensor bc = b.defined() ? b.contiguous() : Tensor{};
  if (x.dtype() == DType::F64)
    forward_impl<double>(y, x, W, bc);
  else
    forward_impl<float>(y, x, W, bc);
}

void linear_backward(Tensor* dx, Tensor& dW, Tensor* db, const Tensor& dy0, const Tensor& x0, const Tensor& W0) {
  check_operands(x0, W0, "linear_backward");
  const Tensor x = x0.contiguous(), W = W0.contiguous(), dy = dy0.contiguous();
  if (x.dtype() == DType::F64)
    backward_impl<double>(dx, dW, db, dy, x, W);
  else
    backward_impl<float>(dx, dW, db, dy, x, W);
}

}  // namespace ssmkit::core
