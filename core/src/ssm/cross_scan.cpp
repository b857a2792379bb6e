// Cross-scan / cross-merge (VMamba SS2D) and the single-direction pair (GroupMamba), forward and backward.
// Every map is a gather through scan_direction_index; the backward of a gather is the matching scatter-add,
// which is the other map of the pair. Parallel over (batch, channel) rows; no arithmetic but sums.
#include "ssmkit/core/ssm/cross_scan.h"

#include <vector>

#include "../ops/dtype_dispatch.h"

namespace ssmkit::core {

int64_t scan_direction_index(ScanDirection k, int64_t l, int64_t H, int64_t W) {
  const int64_t L = H * W;
  switch (k) {
    case ScanDirection::RowMajor: return l;
    case ScanDirection::ColMajor: return (l % H) * W + l / H;  // l = w*H + h
    case ScanDirection::RowMajorReversed: return L - 1 - l;
    case ScanDirection::ColMajorReversed: {
      const int64_t m = L - 1 - l;
      return (m % H) * W + m / H;
    }
  }
  return l;
}

namespace {

constexpr ScanDirection kAllDirections[4] = {ScanDirection::RowMajor, ScanDirection::ColMajor,
                                             ScanDirection::RowMajorReversed, ScanDirection::ColMajorReversed};

std::vector<int64_t> direction_table(ScanDirection k, int64_t H, int64_t W) {
  std::vector<int64_t> idx(static_cast<size_t>(H * W));
  for (int64_t l = 0; l < H * W; ++l) idx[l] = scan_direction_index(k, l, H, W);
  return idx;
}

void check_dtype(const Tensor& t, const char* fn) {
  SSMKIT_CHECK(t.defined() && (t.dtype() == DType::F32 || t.dtype() == DType::F64), fn,
               ": expects a defined F32 or F64 tensor");
}

// Makes `out` a contiguous tensor of `shape`/`dt` (zeros when undefined); returns true when it must be
// accumulated into (it was defined on entry).
bool prepare_out(Tensor& out, const Shape& shape, DType dt, const char* fn, const char* name) {
  if (!out.defined()) {
    out = Tensor::zeros(shape, dt);
    return false;
  }
  SSMKIT_CHECK(out.shape() == shape && out.dtype() == dt && out.is_contiguous(), fn, ": ", name,
               " must be a contiguous ", shape_str(shape), " ", dtype_name(dt), " tensor, got ",
               shape_str(out.shape()), " ", dtype_name(out.dtype()));
  return true;
}

// For rows r < n_rows: dst[r][l] (+)= src[r][idx[l]]  (gather), or dst[r][idx[l]] += src[r][l] (scatter).
template <class T>
void gather_rows(T* dst, const T* src, int64_t n_rows, int64_t L, const int64_t* idx, int64_t dst_stride,
                 int64_t src_stride, bool accumulate) {
#pragma omp parallel for schedule(static) if (n_rows * L > 32768)
  for (int64_t r = 0; r < n_rows; ++r) {
    T* d = dst + r * dst_stride;
    const T* s = src + r * src_stride;
    if (accumulate)
      for (int64_t l = 0; l < L; ++l) d[l] += s[idx[l]];
    else
      for (int64_t l = 0; l < L; ++l) d[l] = s[idx[l]];
  }
}

template <class T>
void scatter_add_rows(T* dst, const T* src, int64_t n_rows, int64_t L, const int64_t* idx, int64_t dst_stride,
                      int64_t src_stride) {
#pragma omp parallel for schedule(static) if (n_rows * L > 32768)
  for (int64_t r = 0; r < n_rows; ++r) {
    T* d = dst + r * dst_stride;
    const T* s = src + r * src_stride;
    for (int64_t l = 0; l < L; ++l) d[idx[l]] += s[l];
  }
}

using detail::dispatch_float;

}  // namespace

void cross_scan_forward(Tensor& xs, const Tensor& x0) {
  check_dtype(x0, "cross_scan_forward");
  SSMKIT_CHECK(x0.ndim() == 4, "cross_scan_forward: x must be (B,C,H,W), got ", shape_str(x0.shape()));
  const Tensor x = x0.contiguous();
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = H * W;
  xs = Tensor::empty({B, 4, C, L}, x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (int k = 0; k < 4; ++k) {
      const std::vector<int64_t> idx = direction_table(kAllDirections[k], H, W);
      for (int64_t b = 0; b < B; ++b)
        gather_rows<T>(xs.data<T>() + (b * 4 + k) * C * L, x.data<T>() + b * C * L, C, L, idx.data(), L, L, false);
    }
  });
}

void cross_scan_backward(Tensor& dx, const Tensor& dxs0, int64_t H, int64_t W) {
  check_dtype(dxs0, "cross_scan_backward");
  SSMKIT_CHECK(dxs0.ndim() == 4 && dxs0.size(1) == 4 && dxs0.size(3) == H * W,
               "cross_scan_backward: dxs must be (B,4,C,", H * W, "), got ", shape_str(dxs0.shape()));
  const Tensor dxs = dxs0.contiguous();
  const int64_t B = dxs.size(0), C = dxs.size(2), L = H * W;
  prepare_out(dx, {B, C, H, W}, dxs.dtype(), "cross_scan_backward", "dx");
  dispatch_float(dxs.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (int k = 0; k < 4; ++k) {
      const std::vector<int64_t> idx = direction_table(kAllDirections[k], H, W);
      for (int64_t b = 0; b < B; ++b)
        scatter_add_rows<T>(dx.data<T>() + b * C * L, dxs.data<T>() + (b * 4 + k) * C * L, C, L, idx.data(), L, L);
    }
  });
}

void cross_merge_forward(Tensor& y, const Tensor& ys0, int64_t H, int64_t W) {
  check_dtype(ys0, "cross_merge_forward");
  SSMKIT_CHECK(ys0.ndim() == 4 && ys0.size(1) == 4 && ys0.size(3) == H * W,
               "cross_merge_forward: ys must be (B,4,C,", H * W, "), got ", shape_str(ys0.shape()));
  const Tensor ys = ys0.contiguous();
  const int64_t B = ys.size(0), C = ys.size(2), L = H * W;
  y = Tensor::zeros({B, C, L}, ys.dtype());
  dispatch_float(ys.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (int k = 0; k < 4; ++k) {
      const std::vector<int64_t> idx = direction_table(kAllDirections[k], H, W);
      for (int64_t b = 0; b < B; ++b)
        scatter_add_rows<T>(y.data<T>() + b * C * L, ys.data<T>() + (b * 4 + k) * C * L, C, L, idx.data(), L, L);
    }
  });
}

void cross_merge_backward(Tensor& dys, const Tensor& dy0, int64_t H, int64_t W) {
  check_dtype(dy0, "cross_merge_backward");
  SSMKIT_CHECK(dy0.ndim() == 3 && dy0.size(2) == H * W, "cross_merge_backward: dy must be (B,C,", H * W,
               "), got ", shape_str(dy0.shape()));
  const Tensor dy = dy0.contiguous();
  const int64_t B = dy.size(0), C = dy.size(1), L = H * W;
  const bool acc = prepare_out(dys, {B, 4, C, L}, dy.dtype(), "cross_merge_backward", "dys");
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (int k = 0; k < 4; ++k) {
      const std::vector<int64_t> idx = direction_table(kAllDirections[k], H, W);
      for (int64_t b = 0; b < B; ++b)
        gather_rows<T>(dys.data<T>() + (b * 4 + k) * C * L, dy.data<T>() + b * C * L, C, L, idx.data(), L, L, acc);
    }
  });
}

void direction_scan_forward(Tensor& xs, const Tensor& x0, ScanDirection k) {
  check_dtype(x0, "direction_scan_forward");
  SSMKIT_CHECK(x0.ndim() == 4, "direction_scan_forward: x must be (B,C,H,W), got ", shape_str(x0.shape()));
  const Tensor x = x0.contiguous();
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = H * W;
  xs = Tensor::empty({B, C, L}, x.dtype());
  const std::vector<int64_t> idx = direction_table(k, H, W);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gather_rows<T>(xs.data<T>(), x.data<T>(), B * C, L, idx.data(), L, L, false);
  });
}

void direction_scan_backward(Tensor& dx, const Tensor& dxs0, ScanDirection k, int64_t H, int64_t W) {
  check_dtype(dxs0, "direction_scan_backward");
  SSMKIT_CHECK(dxs0.ndim() == 3 && dxs0.size(2) == H * W, "direction_scan_backward: dxs must be (B,C,", H * W,
               "), got ", shape_str(dxs0.shape()));
  const Tensor dxs = dxs0.contiguous();
  const int64_t B = dxs.size(0), C = dxs.size(1), L = H * W;
  prepare_out(dx, {B, C, H, W}, dxs.dtype(), "direction_scan_backward", "dx");
  const std::vector<int64_t> idx = direction_table(k, H, W);
  dispatch_float(dxs.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scatter_add_rows<T>(dx.data<T>(), dxs.data<T>(), B * C, L, idx.data(), L, L);
  });
}

void direction_merge_forward(Tensor& y, const Tensor& ys0, ScanDirection k, int64_t H, int64_t W) {
  check_dtype(ys0, "direction_merge_forward");
  SSMKIT_CHECK(ys0.ndim() == 3 && ys0.size(2) == H * W, "direction_merge_forward: ys must be (B,C,", H * W,
               "), got ", shape_str(ys0.shape()));
  const Tensor ys = ys0.contiguous();
  const int64_t B = ys.size(0), C = ys.size(1), L = H * W;
  y = Tensor::zeros({B, C, L}, ys.dtype());
  const std::vector<int64_t> idx = direction_table(k, H, W);
  dispatch_float(ys.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scatter_add_rows<T>(y.data<T>(), ys.data<T>(), B * C, L, idx.data(), L, L);
  });
}

void direction_merge_backward(Tensor& dys, const Tensor& dy0, ScanDirection k, int64_t H, int64_t W) {
  check_dtype(dy0, "direction_merge_backward");
  SSMKIT_CHECK(dy0.ndim() == 3 && dy0.size(2) == H * W, "direction_merge_backward: dy must be (B,C,", H * W,
               "), got ", shape_str(dy0.shape()));
  const Tensor dy = dy0.contiguous();
  const int64_t B = dy.size(0), C = dy.size(1), L = H * W;
  const bool acc = prepare_out(dys, {B, C, L}, dy.dtype(), "direction_merge_backward", "dys");
  const std::vector<int64_t> idx = direction_table(k, H, W);
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gather_rows<T>(dys.data<T>(), dy.data<T>(), B * C, L, idx.data(), L, L, acc);
  });
}

}  // namespace ssmkit::core
