// Broadcasting elementwise ops, unary math and reductions: Tensor kernels and their autograd wrappers.
// The broadcast loop walks the output in row-major order with per-operand strides (0 on broadcast dims)
// and runs the innermost dimension as a plain loop.
#include "ssmkit/core/ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "dtype_dispatch.h"

namespace ssmkit::core {

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SSMKIT_CHECK(da == db || da == 1 || db == 1, "cannot broadcast shapes ", shape_str(a), " and ", shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

// Element strides of t viewed with `out` shape (0 where broadcast).
Shape broadcast_strides(const Tensor& t, const Shape& out) {
  const size_t n = out.size(), k = t.shape().size();
  Shape st(n, 0);
  for (size_t i = 0; i < k; ++i) {
    const size_t o = n - k + i;
    st[o] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  return st;
}

// Calls row(o, oa, ob) for every run of the last dim of `out` (o: its first output index; oa, ob: the matching
// offsets in operands with strides sa, sb), in row-major order.
template <class Fn>
void for_each_broadcast_row(const Shape& out, const Shape& sa, const Shape& sb, Fn row) {
  const int64_t total = shape_numel(out);
  if (total == 0) return;
  const size_t nd = out.size();
  if (nd == 0) {
    row(0, 0, 0);
    return;
  }
  const int64_t inner = out[nd - 1];
  const int64_t outer = total / inner;
  std::vector<int64_t> idx(nd, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t r = 0; r < outer; ++r) {
    row(r * inner, oa, ob);
    for (int64_t d = static_cast<int64_t>(nd) - 2; d >= 0; --d) {
      if (++idx[d] < out[d]) {
        oa += sa[d];
        ob += sb[d];
        break;
      }
      oa -= sa[d] * (out[d] - 1);
      ob -= sb[d] * (out[d] - 1);
      idx[d] = 0;
    }
  }
}

// Calls fn(i, ia, ib) for every element of `out` in row-major order.
template <class Fn>
void for_each_broadcast(const Shape& out, const Shape& sa, const Shape& sb, Fn fn) {
  const int64_t inner = out.empty() ? 1 : out.back(), ia = out.empty() ? 0 : sa.back(),
                ib = out.empty() ? 0 : sb.back();
  for_each_broadcast_row(out, sa, sb, [&](int64_t o, int64_t oa, int64_t ob) {
    for (int64_t j = 0; j < inner; ++j) fn(o + j, oa + j * ia, ob + j * ib);
  });
}

template <class T, class Op>
Tensor binary_kernel(const Tensor& a, const Tensor& b, Op op) {
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::uninitialized(out_shape, a.dtype());  // every element written below
  T* o = out.data<T>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
    const int64_t n = out.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) o[i] = op(pa[i], pb[i]);
    return out;
  }
  // Broadcast: row by row, with loops the compiler vectorizes for the usual last-dim strides (both
  // contiguous, or one operand repeated along the row).
  const Shape sa = broadcast_strides(a, out_shape), sb = broadcast_strides(b, out_shape);
  const int64_t inner = out_shape.empty() ? 1 : out_shape.back();
  const int64_t ia = out_shape.empty() ? 0 : sa.back(), ib = out_shape.empty() ? 0 : sb.back();
  for_each_broadcast_row(out_shape, sa, sb, [&](int64_t i0, int64_t a0, int64_t b0) {
    T* orow = o + i0;
    const T* arow = pa + a0;
    const T* brow = pb + b0;
    if (ia == 1 && ib == 1) {
      for (int64_t j = 0; j < inner; ++j) orow[j] = op(arow[j], brow[j]);
    } else if (ia == 1 && ib == 0) {
      const T bv = *brow;
      for (int64_t j = 0; j < inner; ++j) orow[j] = op(arow[j], bv);
    } else if (ia == 0 && ib == 1) {
      const T av = *arow;
      for (int64_t j = 0; j < inner; ++j) orow[j] = op(av, brow[j]);
    } else {
      for (int64_t j = 0; j < inner; ++j) orow[j] = op(arow[j * ia], brow[j * ib]);
    }
  });
  return out;
}

template <class T, class Op>
Tensor unary_kernel(const Tensor& a0, Op op) {
  const Tensor a = a0.contiguous();
  Tensor out = Tensor::uninitialized(a.shape(), a.dtype());
  const T* pa = a.data<T>();
  T* o = out.data<T>();
  const int64_t n = a.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) o[i] = op(pa[i]);
  return out;
}

void check_float_pair(const Tensor& a, const Tensor& b, const char* op) {
  SSMKIT_CHECK(a.dtype() == b.dtype(), op, ": dtypes ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()),
               " differ");
  SSMKIT_CHECK(a.dtype() == DType::F32 || a.dtype() == DType::F64, op, ": needs F32 or F64, got ",
               dtype_name(a.dtype()));
}

// Dispatches a generic lambda on F32/F64.
template <class Fn>
Tensor dispatch(DType dt, Fn fn) {
  SSMKIT_CHECK(dt == DType::F32 || dt == DType::F64, "elementwise op: needs F32 or F64, got ", dtype_name(dt));
  return detail::dispatch_float(dt, fn);
}

Tensor map2(const Tensor& a, const Tensor& b, const char* name, auto op) {
  check_float_pair(a, b, name);
  return dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return binary_kernel<T>(a, b, [&](T x, T y) { return op(x, y); });
  });
}

Tensor map1(const Tensor& a, auto op) {
  return dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return unary_kernel<T>(a, [&](T x) { return static_cast<T>(op(x)); });
  });
}

}  // namespace

namespace {

// A reduction of t's shape to `shape` (right-aligned, 1 = summed) that sums one block of adjacent dims:
// t viewed as (outer, R, inner) and the result as (outer, inner). False for other patterns.
bool block_reduction(const Shape& ts, const Shape& shape, int64_t& outer, int64_t& R, int64_t& inner) {
  if (shape.size() > ts.size()) return false;
  const size_t lead = ts.size() - shape.size();
  int state = 0;  // 0: before the summed block, 1: in it, 2: after it
  outer = R = inner = 1;
  for (size_t d = 0; d < ts.size(); ++d) {
    const int64_t n = ts[d], k = d < lead ? 1 : shape[d - lead];
    if (n == 1 && k == 1) continue;  // neutral
    const bool summed = k == 1;
    if (!summed && k != n) return false;
    if (summed) {
      if (state == 2) return false;
      state = 1;
      R *= n;
    } else {
      if (state == 1) state = 2;
      (state == 0 ? outer : inner) *= n;
    }
  }
  return true;
}

// out (outer, inner) = sum over r of p (outer, R, inner), r ascending for every output (the order of the
// generic loop, so the result is the same to the bit), over the threads for large inputs.
template <class T>
void sum_block(T* out, const T* p, int64_t outer, int64_t R, int64_t inner) {
  constexpr int64_t kCols = 256;
  const int64_t ncol = (inner + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (outer * R * inner > (1 << 16) && outer * ncol > 1)
  for (int64_t task = 0; task < outer * ncol; ++task) {
    const int64_t o = task / ncol, i0 = (task % ncol) * kCols, n = std::min(kCols, inner - i0);
    T acc[kCols] = {};
    for (int64_t r = 0; r < R; ++r) {
      const T* row = p + (o * R + r) * inner + i0;
      for (int64_t i = 0; i < n; ++i) acc[i] += row[i];
    }
    std::copy(acc, acc + n, out + o * inner + i0);
  }
}

// dx (outer, R, inner) = g (outer, inner) repeated over r.
template <class T>
void repeat_block(T* dx, const T* g, int64_t outer, int64_t R, int64_t inner) {
#pragma omp parallel for schedule(static) if (outer * R * inner > (1 << 16))
  for (int64_t k = 0; k < outer * R; ++k) std::copy(g + (k / R) * inner, g + (k / R + 1) * inner, dx + k * inner);
}

}  // namespace

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t.contiguous();
  int64_t outer = 0, R = 0, inner = 0;
  if (block_reduction(t.shape(), shape, outer, R, inner)) {
    const Tensor tc = t.contiguous();
    Tensor out = Tensor::uninitialized(shape, t.dtype());  // every element written
    dispatch(t.dtype(), [&](auto tag) {
      using T = decltype(tag);
      sum_block<T>(out.data<T>(), tc.data<T>(), outer, R, inner);
      return Tensor{};
    });
    return out;
  }
  // Several runs of summed dims (e.g. (B,H,L) -> (1,H,1)): sum the outermost run first, as a block whose rows
  // (everything after it) are long and contiguous, then the rest of the (smaller) intermediate.
  if (shape.size() <= t.shape().size()) {
    const Shape& ts = t.shape();
    const size_t lead = ts.size() - shape.size();
    Shape mid = ts;  // ts with the outermost run of summed dims set to 1
    bool in_run = false;
    for (size_t d = 0; d < ts.size(); ++d) {
      const int64_t k = d < lead ? 1 : shape[d - lead];
      if (k == 1 && ts[d] != 1) {
        mid[d] = 1;
        in_run = true;
      } else if (in_run && ts[d] != 1) {
        break;
      }
    }
    int64_t o2 = 0, r2 = 0, i2 = 0;
    if (in_run && block_reduction(ts, mid, o2, r2, i2)) return sum_to(sum_to(t, mid), shape);
  }
  Tensor out = Tensor::zeros(shape, t.dtype());
  // View `out` with t's shape (stride 0 on broadcast dims) and accumulate.
  const Shape so = broadcast_strides(out, t.shape());
  const Shape st = t.strides();
  dispatch(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* p = t.data<T>();
    for_each_broadcast(t.shape(), so, st, [&](int64_t, int64_t io, int64_t it) { o[io] += p[it]; });
    return Tensor{};
  });
  return out;
}

// ------------------------------------------------------------------------------------------------------
// autograd wrappers

Var add(const Var& a, const Var& b) {
  Tensor y = map2(a.value(), b.value(), "add", [](auto x, auto z) { return x + z; });
  const Shape sa = a.shape(), sb = b.shape();
  return make_result(y, {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? sum_to(g, sa) : Tensor{}, need[1] ? sum_to(g, sb) : Tensor{}};
  }, "add");
}

Var sub(const Var& a, const Var& b) {
  Tensor y = map2(a.value(), b.value(), "sub", [](auto x, auto z) { return x - z; });
  const Shape sa = a.shape(), sb = b.shape();
  return make_result(y, {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& need) {
    Tensor gb;
    if (need[1]) gb = sum_to(map1(g, [](auto x) { return -x; }), sb);
    return std::vector<Tensor>{need[0] ? sum_to(g, sa) : Tensor{}, gb};
  }, "sub");
}

Var mul(const Var& a, const Var& b) {
  Tensor av = a.value(), bv = b.value();
  Tensor y = map2(av, bv, "mul", [](auto x, auto z) { return x * z; });
  return make_result(y, {a, b}, [av, bv](const Tensor& g, const std::vector<bool>& need) {
    Tensor ga, gb;
    if (need[0]) ga = sum_to(map2(g, bv, "mul", [](auto x, auto z) { return x * z; }), av.shape());
    if (need[1]) gb = sum_to(map2(g, av, "mul", [](auto x, auto z) { return x * z; }), bv.shape());
    return std::vector<Tensor>{ga, gb};
  }, "mul");
}

Var div(const Var& a, const Var& b) {
  Tensor av = a.value(), bv = b.value();
  Tensor y = map2(av, bv, "div", [](auto x, auto z) { return x / z; });
  return make_result(y, {a, b}, [av, bv, y](const Tensor& g, const std::vector<bool>& need) {
    Tensor ga, gb;
    if (need[0]) ga = sum_to(map2(g, bv, "div", [](auto x, auto z) { return x / z; }), av.shape());
    if (need[1]) {
      // d(a/b)/db = -y/b
      Tensor t = map2(g, y, "div", [](auto x, auto z) { return -x * z; });
      gb = sum_to(map2(t, bv, "div", [](auto x, auto z) { return x / z; }), bv.shape());
    }
    return std::vector<Tensor>{ga, gb};
  }, "div");
}

Var add_scalar(const Var& a, double s) {
  Tensor y = map1(a.value(), [s](auto x) { return x + s; });
  return make_result(y, {a}, [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; },
                     "add_scalar");
}

Var mul_scalar(const Var& a, double s) {
  Tensor y = map1(a.value(), [s](auto x) { return x * s; });
  return make_result(y, {a}, [s](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map1(g, [s](auto x) { return x * s; })};
  }, "mul_scalar");
}

Var pow_scalar(const Var& a, double p) {
  Tensor av = a.value();
  Tensor y = map1(av, [p](auto x) { return std::pow(x, p); });
  return make_result(y, {a}, [av, p](const Tensor& g, const std::vector<bool>&) {
    Tensor d = map1(av, [p](auto x) { return p * std::pow(x, p - 1); });
    return std::vector<Tensor>{map2(g, d, "pow", [](auto x, auto z) { return x * z; })};
  }, "pow_scalar");
}

Var neg(const Var& a) { return mul_scalar(a, -1.0); }

Var exp(const Var& a) {
  Tensor y = map1(a.value(), [](auto x) { return std::exp(x); });
  return make_result(y, {a}, [y](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map2(g, y, "exp", [](auto x, auto z) { return x * z; })};
  }, "exp");
}

Var log(const Var& a) {
  Tensor av = a.value();
  Tensor y = map1(av, [](auto x) { return std::log(x); });
  return make_result(y, {a}, [av](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map2(g, av, "log", [](auto x, auto z) { return x / z; })};
  }, "log");
}

Var sqrt(const Var& a) {
  Tensor y = map1(a.value(), [](auto x) { return std::sqrt(x); });
  return make_result(y, {a}, [y](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map2(g, y, "sqrt", [](auto x, auto z) { return x / (2 * z); })};
  }, "sqrt");
}

Var square(const Var& a) {
  Tensor av = a.value();
  Tensor y = map1(av, [](auto x) { return x * x; });
  return make_result(y, {a}, [av](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map2(g, av, "square", [](auto x, auto z) { return 2 * x * z; })};
  }, "square");
}

Var abs(const Var& a) {
  Tensor av = a.value();
  Tensor y = map1(av, [](auto x) { return std::abs(x); });
  return make_result(y, {a}, [av](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map2(g, av, "abs", [](auto x, auto z) { return z > 0 ? x : (z < 0 ? -x : 0 * x); })};
  }, "abs");
}

// ------------------------------------------------------------------------------------------------------
// reductions

namespace {

std::vector<bool> reduced_mask(int64_t nd, const std::vector<int64_t>& dims) {
  std::vector<bool> m(static_cast<size_t>(nd), false);
  for (int64_t d : dims) {
    const int64_t w = d < 0 ? d + nd : d;
    SSMKIT_CHECK(w >= 0 && w < nd, "reduction: dim ", d, " out of range for rank ", nd);
    SSMKIT_CHECK(!m[w], "reduction: dim ", d, " listed twice");
    m[w] = true;
  }
  return m;
}

}  // namespace

Var sum(const Var& a, const std::vector<int64_t>& dims, bool keepdim) {
  const Shape in = a.shape();
  const std::vector<bool> m = reduced_mask(a.ndim(), dims);
  Shape kept = in, out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (m[i]) kept[i] = 1;
    if (!m[i] || keepdim) out.push_back(kept[i]);
  }
  Tensor y = sum_to(a.value(), kept).view(out);
  return make_result(y, {a}, [in, kept](const Tensor& g, const std::vector<bool>&) {
    // broadcast g (viewed with kept dims) back to the input shape
    const Tensor gk = g.contiguous().view(kept);
    Tensor dx = Tensor::uninitialized(in, g.dtype());  // every element written
    int64_t outer = 0, R = 0, inner = 0;
    if (block_reduction(in, kept, outer, R, inner)) {
      dispatch(g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        repeat_block<T>(dx.data<T>(), gk.data<T>(), outer, R, inner);
        return Tensor{};
      });
      return std::vector<Tensor>{dx};
    }
    const Shape sg = broadcast_strides(gk, in);
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      T* o = dx.data<T>();
      const T* p = gk.data<T>();
      for_each_broadcast(in, sg, sg, [&](int64_t i, int64_t ig, int64_t) { o[i] = p[ig]; });
      return Tensor{};
    });
    return std::vector<Tensor>{dx};
  }, "sum");
}

Var mean(const Var& a, const std::vector<int64_t>& dims, bool keepdim) {
  const std::vector<bool> m = reduced_mask(a.ndim(), dims);
  int64_t count = 1;
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i]) count *= a.shape()[i];
  return mul_scalar(sum(a, dims, keepdim), 1.0 / static_cast<double>(std::max<int64_t>(count, 1)));
}

Var sum(const Var& a) {
  std::vector<int64_t> all(static_cast<size_t>(a.ndim()));
  std::iota(all.begin(), all.end(), 0);
  return sum(a, all, false);
}

Var mean(const Var& a) {
  return mul_scalar(sum(a), 1.0 / static_cast<double>(std::max<int64_t>(a.numel(), 1)));
}

// ------------------------------------------------------------------------------------------------------
// views

Var reshape(const Var& a, const Shape& shape) {
  const Shape in = a.shape();
  Tensor y = a.value().reshape(shape);
  return make_result(y, {a}, [in](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.reshape(in)};
  }, "reshape");
}

Var permute(const Var& a, const std::vector<int64_t>& dims) {
  Tensor y = a.value().permute(dims);
  std::vector<int64_t> inv(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inv[static_cast<size_t>(dims[i] < 0 ? dims[i] + a.ndim() : dims[i])] = static_cast<int64_t>(i);
  return make_result(y, {a}, [inv](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.permute(inv).contiguous()};
  }, "permute");
}

Var transpose(const Var& a, int64_t d0, int64_t d1) {
  std::vector<int64_t> dims(static_cast<size_t>(a.ndim()));
  std::iota(dims.begin(), dims.end(), 0);
  const int64_t n = a.ndim();
  std::swap(dims[static_cast<size_t>(d0 < 0 ? d0 + n : d0)], dims[static_cast<size_t>(d1 < 0 ? d1 + n : d1)]);
  return permute(a, dims);
}

Var contiguous(const Var& a) {
  Tensor y = a.value().contiguous();
  return make_result(y, {a}, [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; },
                     "contiguous");
}

}  // namespace ssmkit::core
