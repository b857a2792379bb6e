// Eigen views of Tensors, for linear algebra on tensor data without copies. Kept out of tensor.h so that
// code that does no linear algebra does not parse Eigen.
#pragma once

#include <Eigen/Core>

#include "ssmkit/core/tensor.h"

namespace ssmkit::core {

template <class T>
using RowMatrixMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// A contiguous 2-D tensor as a row-major matrix (rows = size(0), cols = size(1)); shares the storage.
template <class T>
RowMatrixMap<T> as_matrix(Tensor& t) {
  SSMKIT_CHECK(t.ndim() == 2 && t.is_contiguous(), "as_matrix(): needs a contiguous 2-D tensor, got ",
               shape_str(t.shape()));
  return {t.data<T>(), t.size(0), t.size(1)};
}

}  // namespace ssmkit::core
