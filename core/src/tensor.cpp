// Tensor: storage allocation, views, copies and dtype conversion (F16/BF16 converted in software).
#include "ssmkit/core/tensor.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <sstream>

#include "storage_blocks.h"

namespace ssmkit::core {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::U8})
    if (name == dtype_name(d)) return d;
  throw Error("unsupported dtype \"" + name + "\" (ssmkit reads F32, F64, F16, BF16, I64, I32, U8)");
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ")";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Runs fn(offset, length) over [0, bytes) in 256 KB pieces: on all threads when there are at least four
// pieces and no parallel region is active (large buffers: memset / memcpy bandwidth of both cores, and first
// touch spreads the page faults over the threads), else as one call.
template <class Fn>
static void for_each_piece(size_t bytes, Fn fn) {
  constexpr size_t kPiece = size_t(1) << 18;
  if (bytes < 4 * kPiece || omp_in_parallel()) {
    fn(size_t(0), bytes);
    return;
  }
  const int64_t pieces = static_cast<int64_t>((bytes + kPiece - 1) / kPiece);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < pieces; ++k) {
    const size_t off = static_cast<size_t>(k) * kPiece;
    fn(off, std::min(kPiece, bytes - off));
  }
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes, bool zero) {
  auto st = std::make_shared<Storage>();
  const size_t size = detail::storage_block_size(bytes);  // >= bytes rounded up to 64
  void* p = detail::storage_block_take(size);              // a cached block of that size class, or a new one
  SSMKIT_CHECK(p != nullptr, "out of memory allocating ", bytes, " bytes");
  if (zero) {  // else the contents are left undefined
    char* c = static_cast<char*>(p);
    for_each_piece(detail::storage_padded_bytes(bytes), [c](size_t off, size_t n) { std::memset(c + off, 0, n); });
  }
  st->data = p;
  st->bytes = bytes;
  st->owner = std::shared_ptr<void>(p, [size](void* q) { detail::storage_block_give(q, size); });
  return st;
}

static Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

// Bytes of a new contiguous tensor of this shape; refuses negative dimensions and sizes past 2^60 bytes (whose
// element count or byte count would overflow, or which no machine could hold). A zero dimension gives 0 bytes
// whatever the others are.
static size_t checked_bytes(const char* fn, const Shape& shape, DType dt) {
  for (int64_t d : shape) SSMKIT_CHECK(d >= 0, fn, ": negative dimension in ", shape_str(shape));
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  constexpr uint64_t kMaxBytes = uint64_t(1) << 60;
  uint64_t bytes = dtype_size(dt);
  for (int64_t d : shape)
    SSMKIT_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes) && bytes <= kMaxBytes, fn,
                 ": shape ", shape_str(shape), " of ", dtype_name(dt), " is too large to allocate (more than 2^60 bytes)");
  return static_cast<size_t>(bytes);
}

Tensor Tensor::empty(const Shape& shape, DType dt) {
  Tensor t;
  t.storage_ = Storage::allocate(checked_bytes("Tensor::empty()", shape, dt));
  t.dtype_ = dt;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::uninitialized(const Shape& shape, DType dt) {
  Tensor t;
  t.storage_ = Storage::allocate(checked_bytes("Tensor::uninitialized()", shape, dt), /*zero=*/false);
  t.dtype_ = dt;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dt) {
  Tensor t = empty(shape, dt);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& v) {
  SSMKIT_CHECK(shape_numel(shape) == static_cast<int64_t>(v.size()), "Tensor::from_vector(): ", v.size(),
               " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<double>& v) {
  SSMKIT_CHECK(shape_numel(shape) == static_cast<int64_t>(v.size()), "Tensor::from_vector(): ", v.size(),
               " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F64);
  std::copy(v.begin(), v.end(), t.data<double>());
  return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dt, std::shared_ptr<void> owner) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->data = data;
  t.storage_->bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dt);
  t.storage_->owner = std::move(owner);
  t.dtype_ = dt;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

int64_t Tensor::wrap_dim(int64_t dim) const {
  int64_t n = ndim();
  int64_t d = dim < 0 ? dim + n : dim;
  SSMKIT_CHECK(d >= 0 && d < n, "dimension ", dim, " out of range for a tensor of shape ", shape_str(shape_));
  return d;
}

int64_t Tensor::size(int64_t dim) const { return shape_[wrap_dim(dim)]; }
int64_t Tensor::stride(int64_t dim) const { return strides_[wrap_dim(dim)]; }

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (int64_t i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != s) return false;
    s *= shape_[i];
  }
  return true;
}

void* Tensor::raw() {
  SSMKIT_CHECK(defined(), "access to an undefined tensor");
  return static_cast<char*>(storage_->data) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}
const void* Tensor::raw() const {
  SSMKIT_CHECK(defined(), "access to an undefined tensor");
  return static_cast<const char*>(storage_->data) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

void Tensor::check_dtype(DType want) const {
  SSMKIT_CHECK(dtype_ == want, "tensor of dtype ", dtype_name(dtype_), " accessed as ", dtype_name(want));
}

int64_t Tensor::offset_of(std::initializer_list<int64_t> idx) const {
  SSMKIT_CHECK(static_cast<int64_t>(idx.size()) == ndim(), "index of rank ", idx.size(), " for a tensor of shape ",
               shape_str(shape_));
  int64_t off = 0, i = 0;
  for (int64_t v : idx) {
    SSMKIT_CHECK(v >= 0 && v < shape_[i], "index ", v, " out of range in dim ", i, " of ", shape_str(shape_));
    off += v * strides_[i++];
  }
  return off;
}

Tensor Tensor::view(const Shape& shape) const {
  SSMKIT_CHECK(is_contiguous(), "Tensor::view(): tensor of shape ", shape_str(shape_),
               " is not contiguous; use reshape()");
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      SSMKIT_CHECK(infer < 0, "Tensor::view(): more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    SSMKIT_CHECK(known > 0 && numel() % known == 0, "Tensor::view(): cannot view ", shape_str(shape_), " as ",
                 shape_str(shape));
    s[infer] = numel() / known;
  }
  SSMKIT_CHECK(shape_numel(s) == numel(), "Tensor::view(): cannot view ", shape_str(shape_), " (", numel(),
               " elements) as ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const { return is_contiguous() ? view(shape) : contiguous().view(shape); }

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  SSMKIT_CHECK(static_cast<int64_t>(dims.size()) == ndim(), "Tensor::permute(): ", dims.size(),
               " dims for a tensor of rank ", ndim());
  std::vector<bool> seen(dims.size(), false);
  Tensor t = *this;
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i]);
    SSMKIT_CHECK(!seen[d], "Tensor::permute(): repeated dim ", dims[i]);
    seen[d] = true;
    t.shape_[i] = shape_[d];
    t.strides_[i] = strides_[d];
  }
  return t;
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> dims(ndim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(a)], dims[wrap_dim(b)]);
  return permute(dims);
}

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  int64_t d = wrap_dim(dim);
  int64_t n = shape_[d];
  SSMKIT_CHECK(step > 0, "Tensor::slice(): step must be positive, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.shape_[d] = (end - start + step - 1) / step;
  t.strides_[d] = strides_[d] * step;
  return t;
}

Tensor Tensor::select(int64_t dim, int64_t index) const {
  int64_t d = wrap_dim(dim);
  if (index < 0) index += shape_[d];
  SSMKIT_CHECK(index >= 0 && index < shape_[d], "Tensor::select(): index ", index, " out of range for dim ", dim,
               " of ", shape_str(shape_));
  Tensor t = *this;
  t.offset_ += index * strides_[d];
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

// --- element conversion --------------------------------------------------------------------------

static float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static uint16_t float_to_half(float f) {  // round to nearest even
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff);
  uint32_t mant = x & 0x7fffffu;
  if (exp == 255) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  int32_t e = exp - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;
  return static_cast<uint16_t>(half);
}

static float bf16_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN stays NaN
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

static double load_as_double(const void* p, DType dt) {
  switch (dt) {
    case DType::F32: return *static_cast<const float*>(p);
    case DType::F64: return *static_cast<const double*>(p);
    case DType::F16: return half_to_float(*static_cast<const uint16_t*>(p));
    case DType::BF16: return bf16_to_float(*static_cast<const uint16_t*>(p));
    case DType::I64: return static_cast<double>(*static_cast<const int64_t*>(p));
    case DType::I32: return *static_cast<const int32_t*>(p);
    case DType::U8: return *static_cast<const uint8_t*>(p);
  }
  return 0;
}

static void store_from_double(void* p, DType dt, double v) {
  switch (dt) {
    case DType::F32: *static_cast<float*>(p) = static_cast<float>(v); break;
    case DType::F64: *static_cast<double*>(p) = v; break;
    case DType::F16: *static_cast<uint16_t*>(p) = float_to_half(static_cast<float>(v)); break;
    case DType::BF16: *static_cast<uint16_t*>(p) = float_to_bf16(static_cast<float>(v)); break;
    case DType::I64: *static_cast<int64_t*>(p) = static_cast<int64_t>(v); break;
    case DType::I32: *static_cast<int32_t*>(p) = static_cast<int32_t>(v); break;
    case DType::U8: *static_cast<uint8_t*>(p) = static_cast<uint8_t>(v); break;
  }
}

// Calls fn(offset_in_elements) for every element in row-major order.
template <class Fn>
static void for_each_offset(const Shape& shape, const Shape& strides, Fn fn) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t k = 0; k < n; ++k) {
    fn(off);
    for (int64_t d = static_cast<int64_t>(nd) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

namespace {

// The same-dtype strided copy behind copy_from() (permute(...).contiguous() and friends), elements moved as
// words W of their size, so float rows compile to a strided load loop. The last dim is copied as rows; the other dims
// are walked with an odometer (one div/mod decomposition per thread, then increments), so short rows cost no
// index arithmetic. When the destination's last dim is contiguous but the source's is not, and the source is
// contiguous along another dim kt (a permuted view: a layout change), that dim joins the row as the other side
// of a 2-D transpose, copied in 16 x 16 tiles so both sides stay in L1.
template <class W>
void copy_strided(W* d, const W* s, const Shape& shape, const Shape& dstr, const Shape& sstr) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  const auto at = [](const Shape& v, int64_t k) { return v[static_cast<size_t>(k)]; };
  const int64_t inner = nd == 0 ? 1 : at(shape, nd - 1);
  const int64_t ss = nd == 0 ? 1 : at(sstr, nd - 1), ds = nd == 0 ? 1 : at(dstr, nd - 1);
  int64_t kt = -1;  // the source's unit-stride dim, for the transpose path
  if (nd >= 2 && ds == 1 && ss != 1 && inner > 1)
    for (int64_t k = nd - 2; k >= 0; --k)
      if (at(sstr, k) == 1 && at(shape, k) > 1) {
        kt = k;
        break;
      }
  std::vector<int64_t> od;  // the dims the odometer walks, outermost first
  for (int64_t k = 0; k + 1 < nd; ++k)
    if (k != kt) od.push_back(k);
  const int64_t nod = static_cast<int64_t>(od.size());
  int64_t outer = 1;
  for (int64_t k : od) outer *= at(shape, k);
  const int64_t ni = kt >= 0 ? at(shape, kt) : 1, di = kt >= 0 ? at(dstr, kt) : 0;
  const int64_t total = outer * ni * inner;
#pragma omp parallel if (total > 65536 && outer > 1)
  {
    const int64_t nt = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t o0 = outer * tid / nt, o1 = outer * (tid + 1) / nt;
    std::vector<int64_t> idx(static_cast<size_t>(nod), 0);
    int64_t so = 0, dof = 0;
    for (int64_t q = nod - 1, r = o0; q >= 0; --q) {
      const int64_t k = od[static_cast<size_t>(q)], n = at(shape, k);
      idx[static_cast<size_t>(q)] = r % n;
      r /= n;
      so += idx[static_cast<size_t>(q)] * at(sstr, k);
      dof += idx[static_cast<size_t>(q)] * at(dstr, k);
    }
    for (int64_t o = o0; o < o1; ++o) {
      const W* sp = s + so;
      W* dp = d + dof;
      if (kt < 0) {
        for (int64_t j = 0; j < inner; ++j) dp[j * ds] = sp[j * ss];
      } else {  // dp[i·di + j] = sp[i + j·ss], i < ni, j < inner
        constexpr int64_t kTile = 16;
        for (int64_t i0 = 0; i0 < ni; i0 += kTile) {
          const int64_t i1 = std::min(ni, i0 + kTile);
          for (int64_t j0 = 0; j0 < inner; j0 += kTile) {
            const int64_t j1 = std::min(inner, j0 + kTile);
            for (int64_t i = i0; i < i1; ++i)
              for (int64_t j = j0; j < j1; ++j) dp[i * di + j] = sp[i + j * ss];
          }
        }
      }
      for (int64_t q = nod - 1; q >= 0; --q) {  // next outer index
        const int64_t k = od[static_cast<size_t>(q)];
        so += at(sstr, k);
        dof += at(dstr, k);
        if (++idx[static_cast<size_t>(q)] < at(shape, k)) break;
        so -= at(sstr, k) * at(shape, k);
        dof -= at(dstr, k) * at(shape, k);
        idx[static_cast<size_t>(q)] = 0;
      }
    }
  }
}

}  // namespace

void Tensor::copy_strided_same_dtype(const Tensor& src) {
  auto copy_words = [&](auto word) {
    using W = decltype(word);
    copy_strided(static_cast<W*>(raw()), static_cast<const W*>(src.raw()), shape_, strides_, src.strides_);
  };
  switch (dtype_size(dtype_)) {
    case 1: copy_words(uint8_t{}); break;
    case 2: copy_words(uint16_t{}); break;
    case 4: copy_words(uint32_t{}); break;
    case 8: copy_words(uint64_t{}); break;
    default: SSMKIT_CHECK(false, "Tensor::copy_from(): element size ", dtype_size(dtype_), " not supported");
  }
}

void Tensor::copy_from(const Tensor& src) {
  SSMKIT_CHECK(src.shape_ == shape_, "Tensor::copy_from(): shape ", shape_str(src.shape_), " into ",
               shape_str(shape_));
  if (src.dtype_ == dtype_ && src.is_contiguous() && is_contiguous()) {
    const size_t n = nbytes();
    char* d = static_cast<char*>(raw());
    const char* s = static_cast<const char*>(src.raw());
    if (d < s + n && s < d + n)  // overlapping views of one storage
      std::memmove(d, s, n);
    else
      for_each_piece(n, [d, s](size_t off, size_t len) { std::memcpy(d + off, s + off, len); });
    return;
  }
  if (src.dtype_ == dtype_ && numel() > 0) return copy_strided_same_dtype(src);
  std::vector<int64_t> src_offsets;
  src_offsets.reserve(static_cast<size_t>(numel()));
  for_each_offset(src.shape_, src.strides_, [&](int64_t o) { src_offsets.push_back(o); });
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(raw());
  size_t ss = dtype_size(src.dtype_), ds = dtype_size(dtype_);
  size_t k = 0;
  for_each_offset(shape_, strides_, [&](int64_t o) {
    const char* sp = s + src_offsets[k++] * static_cast<int64_t>(ss);
    char* dp = d + o * static_cast<int64_t>(ds);
    if (src.dtype_ == dtype_)
      std::memcpy(dp, sp, ds);
    else
      store_from_double(dp, dtype_, load_as_double(sp, src.dtype_));
  });
}

void Tensor::fill(double value) {
  char* d = static_cast<char*>(raw());
  size_t ds = dtype_size(dtype_);
  for_each_offset(shape_, strides_, [&](int64_t o) { store_from_double(d + o * static_cast<int64_t>(ds), dtype_, value); });
}

void Tensor::add_(const Tensor& other) {
  SSMKIT_CHECK(other.shape_ == shape_ && other.dtype_ == dtype_ && (dtype_ == DType::F32 || dtype_ == DType::F64),
               "Tensor::add_(): ", shape_str(other.shape_), " ", dtype_name(other.dtype_), " into ", shape_str(shape_),
               " ", dtype_name(dtype_));
  if (is_contiguous() && other.is_contiguous()) {
    const int64_t n = numel();
    if (dtype_ == DType::F32) {
      float* d = data<float>();
      const float* s = other.data<float>();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) d[i] += s[i];
    } else {
      double* d = data<double>();
      const double* s = other.data<double>();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) d[i] += s[i];
    }
    return;
  }
  std::vector<int64_t> src_offsets;
  src_offsets.reserve(static_cast<size_t>(numel()));
  for_each_offset(other.shape_, other.strides_, [&](int64_t o) { src_offsets.push_back(o); });
  size_t k = 0;
  if (dtype_ == DType::F32) {
    float* d = data<float>();
    const float* s = other.data<float>();
    for_each_offset(shape_, strides_, [&](int64_t o) { d[o] += s[src_offsets[k++]]; });
  } else {
    double* d = data<double>();
    const double* s = other.data<double>();
    for_each_offset(shape_, strides_, [&](int64_t o) { d[o] += s[src_offsets[k++]]; });
  }
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor t = uninitialized(shape_, dtype_);  // copy_from writes every element
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dt) const {
  Tensor t = uninitialized(shape_, dt);
  t.copy_from(*this);
  return t;
}

std::vector<double> Tensor::to_double_vector() const {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(numel()));
  const char* s = static_cast<const char*>(raw());
  size_t ss = dtype_size(dtype_);
  for_each_offset(shape_, strides_, [&](int64_t o) { out.push_back(load_as_double(s + o * static_cast<int64_t>(ss), dtype_)); });
  return out;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  SSMKIT_CHECK(a.shape() == b.shape(), "max_abs_diff(): shapes ", shape_str(a.shape()), " and ",
               shape_str(b.shape()), " differ");
  std::vector<double> x = a.to_double_vector(), y = b.to_double_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double d = std::abs(x[i] - y[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (double v : a.to_double_vector()) {
    if (std::isnan(v)) return v;
    m = std::max(m, std::abs(v));
  }
  return m;
}

}  // namespace ssmkit::core
