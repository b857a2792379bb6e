// The one tensor type of ssmkit: an N-d array of a dtype with shape and element strides over shared,
// 64-byte aligned storage (or borrowed memory such as a memory-mapped file, kept alive by an owner).
// Dimensions follow PyTorch order, the last one contiguous. Views (reshape of contiguous data, permute,
// transpose, slice, select) share storage; contiguous() and clone() copy.
// Not here: autograd (the training engine builds on this type), device memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/core/error.h"

namespace ssmkit::core {

enum class DType : uint8_t { F32, F64, F16, BF16, I64, I32, U8 };

using Shape = std::vector<int64_t>;

size_t dtype_size(DType dt);           // bytes per element
const char* dtype_name(DType dt);      // the safetensors spelling: "F32", "F64", ...
DType dtype_from_name(const std::string& name);  // inverse; throws Error on an unknown name
std::string shape_str(const Shape& s);  // "(2,3,4)"
int64_t shape_numel(const Shape& s);

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };

// Raw bytes behind one or more tensors. Either owned (64-byte aligned, freed on destruction) or
// borrowed from memory whose lifetime `owner` controls (e.g. an mmap'ed safetensors file).
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<void> owner;  // frees the memory when the last reference goes
  static std::shared_ptr<Storage> allocate(size_t bytes, bool zero = true);  // 64-byte aligned; zero-filled unless zero = false
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() == false (used for absent optional inputs)

  static Tensor empty(const Shape& shape, DType dt = DType::F32);  // zero-filled
  static Tensor zeros(const Shape& shape, DType dt = DType::F32) { return empty(shape, dt); }
  // Contents undefined (not cleared): for outputs and scratch that are written in full before being read.
  static Tensor uninitialized(const Shape& shape, DType dt = DType::F32);
  static Tensor full(const Shape& shape, double value, DType dt = DType::F32);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& v);
  static Tensor from_vector(const Shape& shape, const std::vector<double>& v);
  // A view on external memory (not copied); `owner` keeps it alive. Contiguous layout.
  static Tensor borrow(void* data, const Shape& shape, DType dt, std::shared_ptr<void> owner);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }   // in elements
  int64_t size(int64_t dim) const;                    // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }
  bool storage_unique() const { return storage_ && storage_.use_count() == 1; }  // no other tensor shares it

  // Typed pointer to element 0 of this view; throws if T does not match dtype().
  template <class T> T* data() { check_dtype(dtype_of<T>::value); return static_cast<T*>(raw()); }
  template <class T> const T* data() const { check_dtype(dtype_of<T>::value); return static_cast<const T*>(raw()); }
  void* raw();
  const void* raw() const;

  // Element access by full index (slow; for tests and setup code).
  template <class T> T& at(std::initializer_list<int64_t> idx) { return data<T>()[offset_of(idx)]; }
  template <class T> const T& at(std::initializer_list<int64_t> idx) const { return data<T>()[offset_of(idx)]; }

  // Views (share storage).
  Tensor view(const Shape& shape) const;        // requires contiguous; one dim may be -1
  Tensor reshape(const Shape& shape) const;     // view when contiguous, else a contiguous copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // [start,end)
  Tensor select(int64_t dim, int64_t index) const;  // drops dim

  // Copies.
  Tensor contiguous() const;  // *this when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(DType dt) const;  // converted contiguous copy (F32/F64/F16/BF16/I64/I32/U8)
  void copy_from(const Tensor& src);  // same shape; converts dtype; any strides
  void fill(double value);
  void add_(const Tensor& other);  // *this += other (same shape and dtype F32/F64; any strides)

  // Values as double, in row-major order (any dtype, any strides). For tests and tools.
  std::vector<double> to_double_vector() const;

 private:
  void copy_strided_same_dtype(const Tensor& src);
  void check_dtype(DType want) const;
  int64_t offset_of(std::initializer_list<int64_t> idx) const;
  int64_t wrap_dim(int64_t dim) const;

  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::F32;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;  // in elements
};

// Max |a - b| over all elements (any dtypes, same shape), computed in double.
double max_abs_diff(const Tensor& a, const Tensor& b);
// Max |a| over all elements, in double.
double max_abs(const Tensor& a);

}  // namespace ssmkit::core
