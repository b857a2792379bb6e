// Private: tensors whose memory is not zero-filled (core's Tensor::empty always clears), for kernel outputs
// and scratch that are written in full before being read. 64-byte aligned, owned through the Tensor.
#pragma once

#include <cstdlib>
#include <memory>

#include "ssmkit/core/tensor.h"

namespace ssmkit::vision::detail {

inline core::Tensor uninit(const core::Shape& shape, core::DType dt) {
  const size_t bytes = static_cast<size_t>(core::shape_numel(shape)) * core::dtype_size(dt);
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  SSMKIT_CHECK(p != nullptr, "vision: out of memory allocating ", bytes, " bytes for a ", core::shape_str(shape),
               " tensor");
  std::shared_ptr<void> owner(p, [](void* q) { std::free(q); });
  return core::Tensor::borrow(p, shape, dt, owner);
}

}  // namespace ssmkit::vision::detail
