// Shape and indexing ops: Tensor kernels (element movers by dtype size, scatter-adds in F32/F64) and their
// autograd wrappers, forward next to backward. Most copies go through one kernel, gather_maps: each output
// dim has a table of input indices (-1 = outside, filled with a constant), which covers pad, flip, roll,
// repeat and expand; its backward is scatter_maps. Semantics follow PyTorch (torch.cat, F.pad, torch.roll,
// torch.gather, Tensor.index_add_, ...). Not here: autograd of the index tensors (they are integer).
#include "ssmkit/core/ops/shape.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>

#include "ssmkit/core/ops/elementwise.h"
#include "dtype_dispatch.h"

namespace ssmkit::core {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements; below this, loops stay on one thread
constexpr int64_t kOutside = INT64_MIN;     // offset-table entry for "not in the input"

int64_t wrap_dim(const char* op, int64_t dim, int64_t nd) {
  const int64_t d = dim < 0 ? dim + nd : dim;
  SSMKIT_CHECK(d >= 0 && d < nd, op, ": dim ", dim, " out of range for a tensor of rank ", nd);
  return d;
}

using detail::check_float_dtype;
using detail::dispatch_float;

// Calls fn(tag) with an unsigned integer type of the element size (elements are moved as bits).
template <class Fn>
void dispatch_bytes(DType dt, Fn fn) {
  switch (dtype_size(dt)) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fn(uint64_t{}); break;
  }
}

// Strides of t seen with the broadcast shape `out` (0 on broadcast and missing dims).
Shape broadcast_strides(const Tensor& t, const Shape& out) {
  const size_t n = out.size(), k = t.shape().size();
  Shape st(n, 0);
  for (size_t i = 0; i < k; ++i) st[n - k + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

// Calls fn(o, off) for every element o (row-major) of `out`, where off[k] is the element offset in
// operand k (strides st[k], 0 on broadcast dims). Rows (all dims but the last) run in parallel when large,
// so fn must only write to places owned by o.
template <size_t K, class Fn>
void for_each_broadcast(const Shape& out, const std::array<Shape, K>& st, Fn fn) {
  const int64_t total = shape_numel(out);
  if (total == 0) return;
  const int64_t nd = static_cast<int64_t>(out.size());
  if (nd == 0) {
    fn(int64_t{0}, std::array<int64_t, K>{});
    return;
  }
  const int64_t inner = out[nd - 1], rows = total / inner;
#pragma omp parallel for schedule(static) if (total > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    std::array<int64_t, K> base{};
    int64_t rem = r;
    for (int64_t d = nd - 2; d >= 0; --d) {
      const int64_t i = rem % out[d];
      rem /= out[d];
      for (size_t k = 0; k < K; ++k) base[k] += i * st[k][d];
    }
    std::array<int64_t, K> off;
    for (int64_t j = 0; j < inner; ++j) {
      for (size_t k = 0; k < K; ++k) off[k] = base[k] + j * st[k][nd - 1];
      fn(r * inner + j, off);
    }
  }
}

// ----------------------------------------------------------------------------------------------------------
// gather / scatter through per-dim index maps

using IndexMaps = std::vector<std::vector<int64_t>>;  // maps[d][o] = input index along d, or -1

std::vector<int64_t> identity_map(int64_t n) {
  std::vector<int64_t> m(static_cast<size_t>(n));
  std::iota(m.begin(), m.end(), 0);
  return m;
}

// maps (one per dim of x) -> offset tables in elements for strides `st` (kOutside for -1).
IndexMaps offset_tables(const IndexMaps& maps, const Shape& st) {
  IndexMaps offs(maps.size());
  for (size_t d = 0; d < maps.size(); ++d) {
    offs[d].resize(maps[d].size());
    for (size_t o = 0; o < maps[d].size(); ++o) offs[d][o] = maps[d][o] < 0 ? kOutside : maps[d][o] * st[d];
  }
  return offs;
}

// x (any dtype, any strides), maps[d] of length n_d -> out (n_0, ..., n_{r-1}), contiguous:
//   out[o] = x[maps[0][o_0], ..., maps[r-1][o_{r-1}]], or `fill` where any entry is -1.
Tensor gather_maps(const Tensor& x, const IndexMaps& maps, double fill) {
  const int64_t nd = x.ndim();
  Shape out_shape(static_cast<size_t>(nd));
  for (int64_t d = 0; d < nd; ++d) out_shape[d] = static_cast<int64_t>(maps[d].size());
  Tensor out = Tensor::empty(out_shape, x.dtype());
  const int64_t total = out.numel();
  if (total == 0) return out;
  if (nd == 0) {
    out.copy_from(x);
    return out;
  }
  const IndexMaps offs = offset_tables(maps, x.strides());
  const Tensor fill_t = Tensor::full({1}, fill, x.dtype());
  const int64_t inner = out_shape[nd - 1], rows = total / inner;
  dispatch_bytes(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    const E* src = static_cast<const E*>(x.raw());
    E* dst = static_cast<E*>(out.raw());
    const E fv = *static_cast<const E*>(fill_t.raw());
    const int64_t* last = offs[nd - 1].data();
#pragma omp parallel for schedule(static) if (total > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      int64_t base = 0, rem = r;
      bool outside = false;
      for (int64_t d = nd - 2; d >= 0; --d) {
        const int64_t o = offs[d][rem % out_shape[d]];
        rem /= out_shape[d];
        if (o == kOutside)
          outside = true;
        else
          base += o;
      }
      E* row = dst + r * inner;
      for (int64_t j = 0; j < inner; ++j) row[j] = (outside || last[j] == kOutside) ? fv : src[base + last[j]];
    }
  });
  return out;
}

// The backward of gather_maps. g (n_0, ..., n_{r-1}), F32/F64 -> dx (x_shape), contiguous:
//   dx[maps(o)] += g[o] for every o whose entries are all >= 0.
// Parallel over dim 0 when maps[0] hits no input index twice (rows then write disjoint parts), else serial;
// deterministic either way.
Tensor scatter_maps(const Tensor& g0, const Shape& x_shape, const IndexMaps& maps) {
  const Tensor g = g0.contiguous();
  Tensor dx = Tensor::zeros(x_shape, g.dtype());
  const int64_t nd = static_cast<int64_t>(x_shape.size()), total = g.numel();
  if (total == 0 || dx.numel() == 0) return dx;
  if (nd == 0) {
    dx.copy_from(g);
    return dx;
  }
  const IndexMaps offs = offset_tables(maps, dx.strides());
  const Shape& gs = g.shape();
  const int64_t inner = gs[nd - 1], rows = total / inner, n0 = gs[0], rows_per_0 = n0 ? rows / n0 : 0;
  std::vector<int> hits(static_cast<size_t>(x_shape[0]), 0);
  bool injective = nd > 1;
  for (int64_t i : maps[0])
    if (i >= 0 && ++hits[static_cast<size_t>(i)] > 1) injective = false;
  dispatch_float(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* src = g.data<T>();
    T* dst = dx.data<T>();
    const int64_t* last = offs[nd - 1].data();
    auto do_row = [&](int64_t r) {
      int64_t base = 0, rem = r;
      for (int64_t d = nd - 2; d >= 0; --d) {
        const int64_t o = offs[d][rem % gs[d]];
        rem /= gs[d];
        if (o == kOutside) return;
        base += o;
      }
      const T* row = src + r * inner;
      for (int64_t j = 0; j < inner; ++j)
        if (last[j] != kOutside) dst[base + last[j]] += row[j];
    };
    if (injective) {
#pragma omp parallel for schedule(static) if (total > kParallelMin)
      for (int64_t i0 = 0; i0 < n0; ++i0)
        for (int64_t r = i0 * rows_per_0; r < (i0 + 1) * rows_per_0; ++r) do_row(r);
    } else {
      for (int64_t r = 0; r < rows; ++r) do_row(r);
    }
  });
  return dx;
}

// A Var op made of gather_maps with its scatter_maps backward.
Var map_op(const Var& x, const IndexMaps& maps, double fill, const char* op) {
  const Shape in_shape = x.shape();
  Tensor y = gather_maps(x.value(), maps, fill);
  return make_result(y, {x}, [in_shape, maps](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{scatter_maps(g, in_shape, maps)};
  }, op);
}

}  // namespace

// ----------------------------------------------------------------------------------------------------------
// joining and splitting

Var concat(const std::vector<Var>& xs, int64_t dim) {
  SSMKIT_CHECK(!xs.empty(), "concat: needs at least one tensor");
  const Shape& s0 = xs[0].shape();
  const int64_t nd = static_cast<int64_t>(s0.size());
  SSMKIT_CHECK(nd >= 1, "concat: zero-dimensional tensor 0 cannot be concatenated");
  const int64_t d = wrap_dim("concat", dim, nd);
  Shape out_shape = s0;
  out_shape[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Shape& si = xs[i].shape();
    SSMKIT_CHECK(xs[i].dtype() == xs[0].dtype(), "concat: tensor ", i, " has dtype ", dtype_name(xs[i].dtype()),
                 " but tensor 0 has ", dtype_name(xs[0].dtype()));
    bool same = static_cast<int64_t>(si.size()) == nd;
    for (int64_t k = 0; same && k < nd; ++k) same = k == d || si[k] == s0[k];
    SSMKIT_CHECK(same, "concat: tensor ", i, " of shape ", shape_str(si), " does not match tensor 0 of shape ",
                 shape_str(s0), " outside dim ", dim);
    out_shape[d] += si[d];
  }
  Tensor out = Tensor::empty(out_shape, xs[0].dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= s0[k];
  for (int64_t k = d + 1; k < nd; ++k) inner *= s0[k];
  const int64_t es = static_cast<int64_t>(dtype_size(out.dtype()));
  const int64_t row_bytes = out_shape[d] * inner * es;
  std::vector<Tensor> parts;
  std::vector<int64_t> sizes;
  for (const Var& x : xs) {
    parts.push_back(x.value().contiguous());
    sizes.push_back(x.shape()[d]);
  }
  char* dst = static_cast<char*>(out.raw());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t at = o * row_bytes;
    for (size_t i = 0; i < parts.size(); ++i) {
      const int64_t bytes = sizes[i] * inner * es;
      if (bytes > 0) std::memcpy(dst + at, static_cast<const char*>(parts[i].raw()) + o * bytes, static_cast<size_t>(bytes));
      at += bytes;
    }
  }
  return make_result(out, xs, [d, sizes](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(sizes.size());
    int64_t at = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs[i]) grads[i] = g.slice(d, at, at + sizes[i]).contiguous();
      at += sizes[i];
    }
    return grads;
  }, "concat");
}

Var stack(const std::vector<Var>& xs, int64_t dim) {
  SSMKIT_CHECK(!xs.empty(), "stack: needs at least one tensor");
  const int64_t nd = xs[0].ndim();
  const int64_t d = dim < 0 ? dim + nd + 1 : dim;
  SSMKIT_CHECK(d >= 0 && d <= nd, "stack: dim ", dim, " out of range for tensors of rank ", nd);
  std::vector<Var> parts;
  for (size_t i = 0; i < xs.size(); ++i) {
    SSMKIT_CHECK(xs[i].shape() == xs[0].shape(), "stack: tensor ", i, " has shape ", shape_str(xs[i].shape()),
                 " but tensor 0 has ", shape_str(xs[0].shape()));
    parts.push_back(unsqueeze(xs[i], d));
  }
  return concat(parts, d);
}

std::vector<Var> split(const Var& x, const std::vector<int64_t>& split_sizes, int64_t dim) {
  const int64_t d = wrap_dim("split", dim, x.ndim());
  int64_t total = 0;
  for (int64_t s : split_sizes) {
    SSMKIT_CHECK(s >= 0, "split: negative size ", s, " in split_sizes");
    total += s;
  }
  SSMKIT_CHECK(total == x.shape()[d], "split: split_sizes sum to ", total, " but dim ", dim, " of ",
               shape_str(x.shape()), " has size ", x.shape()[d]);
  std::vector<Var> out;
  int64_t at = 0;
  for (int64_t s : split_sizes) {
    out.push_back(slice(x, d, at, at + s));
    at += s;
  }
  return out;
}

std::vector<Var> split(const Var& x, int64_t split_size, int64_t dim) {
  const int64_t d = wrap_dim("split", dim, x.ndim());
  SSMKIT_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  const int64_t n = x.shape()[d];
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < n; at += split_size) sizes.push_back(std::min(split_size, n - at));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, d);
}

std::vector<Var> chunk(const Var& x, int64_t chunks, int64_t dim) {
  const int64_t d = wrap_dim("chunk", dim, x.ndim());
  SSMKIT_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  const int64_t n = x.shape()[d];
  if (n == 0) return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), d);
  return split(x, (n + chunks - 1) / chunks, d);
}

// ----------------------------------------------------------------------------------------------------------
// views

Var slice(const Var& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  const int64_t d = wrap_dim("slice", dim, x.ndim());
  SSMKIT_CHECK(step > 0, "slice: step must be positive, got ", step);
  const Shape in_shape = x.shape();
  Tensor y = x.value().slice(d, start, end, step);
  return make_result(y, {x}, [in_shape, d, start, end, step](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = Tensor::zeros(in_shape, g.dtype());
    dx.slice(d, start, end, step).copy_from(g);
    return std::vector<Tensor>{dx};
  }, "slice");
}

Var select(const Var& x, int64_t dim, int64_t index) {
  const int64_t d = wrap_dim("select", dim, x.ndim());
  const int64_t n = x.shape()[d];
  SSMKIT_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", dim, " of ",
               shape_str(x.shape()));
  const int64_t i = index < 0 ? index + n : index;
  const Shape in_shape = x.shape();
  Tensor y = x.value().select(d, i);
  return make_result(y, {x}, [in_shape, d, i](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = Tensor::zeros(in_shape, g.dtype());
    dx.select(d, i).copy_from(g);
    return std::vector<Tensor>{dx};
  }, "select");
}

Var unsqueeze(const Var& x, int64_t dim) {
  const int64_t nd = x.ndim();
  const int64_t d = dim < 0 ? dim + nd + 1 : dim;
  SSMKIT_CHECK(d >= 0 && d <= nd, "unsqueeze: dim ", dim, " out of range for a tensor of rank ", nd);
  Shape s = x.shape();
  s.insert(s.begin() + d, 1);
  return reshape(x, s);
}

Var squeeze(const Var& x) {
  Shape s;
  for (int64_t n : x.shape())
    if (n != 1) s.push_back(n);
  return reshape(x, s);
}

Var squeeze(const Var& x, int64_t dim) {
  const int64_t d = wrap_dim("squeeze", dim, x.ndim());
  Shape s = x.shape();
  if (s[d] == 1) s.erase(s.begin() + d);
  return reshape(x, s);
}

// ----------------------------------------------------------------------------------------------------------
// copies with an index map

Var pad(const Var& x, const std::vector<int64_t>& pad, const std::string& mode, double value) {
  const bool constant = mode == "constant", reflect = mode == "reflect", replicate = mode == "replicate",
             circular = mode == "circular";
  SSMKIT_CHECK(constant || reflect || replicate || circular, "pad: unknown mode \"", mode,
               "\" (expected constant, reflect, replicate or circular)");
  const int64_t nd = x.ndim();
  const Shape& s = x.shape();
  SSMKIT_CHECK(pad.size() % 2 == 0 && static_cast<int64_t>(pad.size()) <= 2 * nd, "pad: ", pad.size(),
               " pad entries for a tensor of shape ", shape_str(s), " (need an even number, at most 2 * rank)");
  IndexMaps maps(static_cast<size_t>(nd));
  for (int64_t d = 0; d < nd; ++d) maps[d] = identity_map(s[d]);
  for (size_t k = 0; k < pad.size() / 2; ++k) {
    const int64_t d = nd - 1 - static_cast<int64_t>(k), lo = pad[2 * k], hi = pad[2 * k + 1], n = s[d];
    const int64_t m = n + lo + hi;
    SSMKIT_CHECK(m >= 0, "pad: dim ", d, " of size ", n, " with padding (", lo, ", ", hi,
                 ") gives a negative size");
    if (reflect)
      SSMKIT_CHECK(lo < n && hi < n, "pad: reflect padding (", lo, ", ", hi, ") must be less than the size ", n,
                   " of dim ", d, " of ", shape_str(s));
    if (replicate) SSMKIT_CHECK(n > 0, "pad: replicate padding of the empty dim ", d, " of ", shape_str(s));
    if (circular)
      SSMKIT_CHECK(lo <= n && hi <= n && n > 0, "pad: circular padding (", lo, ", ", hi,
                   ") must be at most the size ", n, " of dim ", d, " of ", shape_str(s));
    std::vector<int64_t>& map = maps[d];
    map.resize(static_cast<size_t>(m));
    for (int64_t o = 0; o < m; ++o) {
      int64_t i = o - lo;
      if (constant) {
        i = (i >= 0 && i < n) ? i : -1;
      } else if (reflect) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
      } else if (replicate) {
        i = std::clamp<int64_t>(i, 0, n - 1);
      } else {
        i = ((i % n) + n) % n;
      }
      map[o] = i;
    }
  }
  return map_op(x, maps, value, "pad");
}

Var flip(const Var& x, const std::vector<int64_t>& dims) {
  const int64_t nd = x.ndim();
  IndexMaps maps(static_cast<size_t>(nd));
  for (int64_t d = 0; d < nd; ++d) maps[d] = identity_map(x.shape()[d]);
  std::vector<bool> seen(static_cast<size_t>(nd), false);
  for (int64_t dim : dims) {
    const int64_t d = wrap_dim("flip", dim, nd);
    SSMKIT_CHECK(!seen[d], "flip: dim ", dim, " appears more than once in dims");
    seen[d] = true;
    std::reverse(maps[d].begin(), maps[d].end());
  }
  return map_op(x, maps, 0.0, "flip");
}

Var roll(const Var& x, const std::vector<int64_t>& shifts, const std::vector<int64_t>& dims) {
  if (dims.empty()) {
    SSMKIT_CHECK(shifts.size() == 1, "roll: without dims, shifts must have one entry, got ", shifts.size());
    return reshape(roll(reshape(x, {x.numel()}), shifts, {0}), x.shape());
  }
  SSMKIT_CHECK(shifts.size() == dims.size(), "roll: ", shifts.size(), " shifts for ", dims.size(), " dims");
  const int64_t nd = x.ndim();
  std::vector<int64_t> total(static_cast<size_t>(nd), 0);
  for (size_t k = 0; k < dims.size(); ++k) total[wrap_dim("roll", dims[k], nd)] += shifts[k];
  IndexMaps maps(static_cast<size_t>(nd));
  for (int64_t d = 0; d < nd; ++d) {
    const int64_t n = x.shape()[d];
    maps[d] = identity_map(n);
    if (n == 0) continue;
    const int64_t sh = ((total[d] % n) + n) % n;
    for (int64_t o = 0; o < n; ++o) maps[d][o] = (o - sh + n) % n;
  }
  return map_op(x, maps, 0.0, "roll");
}

Var expand(const Var& x, const Shape& shape) {
  const int64_t nd = x.ndim(), nt = static_cast<int64_t>(shape.size()), lead = nt - nd;
  SSMKIT_CHECK(nt >= nd, "expand: target ", shape_str(shape), " has fewer dims than the tensor ",
               shape_str(x.shape()));
  Shape padded(static_cast<size_t>(nt), 1), out(static_cast<size_t>(nt));
  for (int64_t d = 0; d < nd; ++d) padded[lead + d] = x.shape()[d];
  IndexMaps maps(static_cast<size_t>(nt));
  for (int64_t d = 0; d < nt; ++d) {
    const int64_t want = shape[d], have = padded[d];
    SSMKIT_CHECK(want >= 0 || (want == -1 && d >= lead), "expand: size ", want, " at dim ", d, " of target ",
                 shape_str(shape), " is invalid for a tensor of shape ", shape_str(x.shape()));
    out[d] = want == -1 ? have : want;
    SSMKIT_CHECK(have == out[d] || have == 1, "expand: the tensor's size ", have, " cannot be expanded to ",
                 out[d], " at dim ", d, " (tensor ", shape_str(x.shape()), ", target ", shape_str(shape), ")");
    maps[d] = have == out[d] ? identity_map(have) : std::vector<int64_t>(static_cast<size_t>(out[d]), 0);
  }
  const Shape in_shape = x.shape();
  Tensor y = gather_maps(x.value().reshape(padded), maps, 0.0);
  return make_result(y, {x}, [in_shape](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{sum_to(g, in_shape)};
  }, "expand");
}

Var repeat(const Var& x, const std::vector<int64_t>& repeats) {
  const int64_t nd = x.ndim(), nt = static_cast<int64_t>(repeats.size()), lead = nt - nd;
  SSMKIT_CHECK(nt >= nd, "repeat: ", nt, " repeats for a tensor of rank ", nd, " (need at least as many)");
  Shape padded(static_cast<size_t>(nt), 1);
  for (int64_t d = 0; d < nd; ++d) padded[lead + d] = x.shape()[d];
  IndexMaps maps(static_cast<size_t>(nt));
  for (int64_t d = 0; d < nt; ++d) {
    SSMKIT_CHECK(repeats[d] >= 0, "repeat: negative repeat ", repeats[d], " at dim ", d);
    const int64_t n = padded[d];
    maps[d].resize(static_cast<size_t>(n * repeats[d]));
    for (int64_t o = 0; o < n * repeats[d]; ++o) maps[d][o] = o % n;
  }
  const Shape in_shape = x.shape();
  Tensor y = gather_maps(x.value().reshape(padded), maps, 0.0);
  return make_result(y, {x}, [in_shape, padded, maps](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{scatter_maps(g, padded, maps).view(in_shape)};
  }, "repeat");
}

// ----------------------------------------------------------------------------------------------------------
// gather and scatter along one dim

namespace {

// index I64 of x's rank with every value in [0, n_dim): checked once, before any kernel runs.
void check_index_values(const char* op, const Tensor& index, int64_t n, int64_t dim) {
  for (double v : index.to_double_vector())
    SSMKIT_CHECK(v >= 0 && v < static_cast<double>(n), op, ": index value ", static_cast<int64_t>(v),
                 " out of range for size ", n, " of dim ", dim);
}

// Walks the positions of `index` (contiguous, rank r >= 1) row by row (rows = all dims but the last) and
// calls fn(p, xoff, toff): p the linear position, xoff the offset in a tensor of strides `xs` with the dim-d
// coordinate replaced by index[p], toff the offset of the same position in a tensor of strides `ts`.
// The rows are cut into n_blocks consecutive blocks that run in parallel (rows within a block in order), so
// fn may write only where its block owns.
template <class Fn>
void walk_index(const Tensor& index, int64_t d, const Shape& xs, const Shape& ts, int64_t n_blocks, Fn fn) {
  const Shape& is = index.shape();
  const int64_t nd = index.ndim(), total = index.numel();
  if (total == 0) return;
  const int64_t inner = is[nd - 1], rows = total / inner, per_block = rows / n_blocks;
  const int64_t* idx = index.data<int64_t>();
  auto do_row = [&](int64_t r) {
    int64_t xb = 0, tb = 0, rem = r;
    for (int64_t k = nd - 2; k >= 0; --k) {
      const int64_t i = rem % is[k];
      rem /= is[k];
      if (k != d) xb += i * xs[k];
      tb += i * ts[k];
    }
    for (int64_t j = 0; j < inner; ++j) {
      const int64_t p = r * inner + j;
      const int64_t xo = xb + idx[p] * xs[d] + (d == nd - 1 ? 0 : j * xs[nd - 1]);
      fn(p, xo, tb + j * ts[nd - 1]);
    }
  };
#pragma omp parallel for schedule(static) if (n_blocks > 1 && total > kParallelMin)
  for (int64_t b = 0; b < n_blocks; ++b)
    for (int64_t r = b * per_block; r < (b + 1) * per_block; ++r) do_row(r);
}

// x (any dtype, strides), index (contiguous I64) -> out of index's shape, out[p] = x[index-replaced p].
Tensor gather_kernel(const Tensor& x, int64_t d, const Tensor& index) {
  Tensor out = Tensor::empty(index.shape(), x.dtype());
  dispatch_bytes(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    const E* src = static_cast<const E*>(x.raw());
    E* dst = static_cast<E*>(out.raw());
    const int64_t rows = index.numel() / std::max<int64_t>(1, index.size(-1));
    walk_index(index, d, x.strides(), out.strides(), std::max<int64_t>(1, rows),
               [&](int64_t p, int64_t xo, int64_t) { dst[p] = src[xo]; });
  });
  return out;
}

// out (contiguous F32/F64) [index-replaced p] += src[p] for every position p of index; src any strides with
// each dim >= index's. With d != 0 the blocks are dim-0 coordinates of index, which write distinct parts
// of out; with d == 0 one serial block. Deterministic on any thread count.
void scatter_add_kernel(Tensor& out, int64_t d, const Tensor& index, const Tensor& src) {
  const int64_t n_blocks = (d != 0 && index.ndim() > 1) ? std::max<int64_t>(1, index.size(0)) : 1;
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dst = out.data<T>();
    const T* s = src.data<T>();
    walk_index(index, d, out.strides(), src.strides(), n_blocks,
               [&](int64_t, int64_t xo, int64_t so) { dst[xo] += s[so]; });
  });
}

void check_gather_args(const char* op, const Tensor& x, int64_t d, const Tensor& index) {
  SSMKIT_CHECK(index.dtype() == DType::I64, op, ": index must be I64, got ", dtype_name(index.dtype()));
  SSMKIT_CHECK(index.ndim() == x.ndim(), op, ": index of shape ", shape_str(index.shape()),
               " must have the rank of the input ", shape_str(x.shape()));
  for (int64_t k = 0; k < x.ndim(); ++k)
    SSMKIT_CHECK(k == d || index.size(k) <= x.size(k), op, ": index of shape ", shape_str(index.shape()),
                 " is larger than the input ", shape_str(x.shape()), " at dim ", k);
  check_index_values(op, index, x.size(d), d);
}

}  // namespace

Var gather(const Var& x, int64_t dim, const Tensor& index) {
  SSMKIT_CHECK(x.ndim() >= 1, "gather: needs a tensor of rank >= 1, got shape ", shape_str(x.shape()));
  const int64_t d = wrap_dim("gather", dim, x.ndim());
  check_gather_args("gather", x.value(), d, index);
  const Tensor idx = index.contiguous();
  const Shape in_shape = x.shape();
  Tensor y = gather_kernel(x.value(), d, idx);
  return make_result(y, {x}, [in_shape, d, idx](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = Tensor::zeros(in_shape, g.dtype());
    scatter_add_kernel(dx, d, idx, g);
    return std::vector<Tensor>{dx};
  }, "gather");
}

Var scatter_add(const Var& x, int64_t dim, const Tensor& index, const Var& src) {
  SSMKIT_CHECK(x.ndim() >= 1, "scatter_add: needs a tensor of rank >= 1, got shape ", shape_str(x.shape()));
  const int64_t d = wrap_dim("scatter_add", dim, x.ndim());
  check_float_dtype(x.value(), "scatter_add", "x");
  SSMKIT_CHECK(src.dtype() == x.dtype(), "scatter_add: src has dtype ", dtype_name(src.dtype()), " but x has ",
               dtype_name(x.dtype()));
  check_gather_args("scatter_add", x.value(), d, index);
  SSMKIT_CHECK(src.ndim() == index.ndim(), "scatter_add: src of shape ", shape_str(src.shape()),
               " must have the rank of index ", shape_str(index.shape()));
  for (int64_t k = 0; k < index.ndim(); ++k)
    SSMKIT_CHECK(index.size(k) <= src.size(k), "scatter_add: index of shape ", shape_str(index.shape()),
                 " is larger than src ", shape_str(src.shape()), " at dim ", k);
  const Tensor idx = index.contiguous();
  Tensor y = x.value().clone();
  scatter_add_kernel(y, d, idx, src.value());
  const Shape src_shape = src.shape();
  return make_result(y, {x, src}, [d, idx, src_shape](const Tensor& g, const std::vector<bool>& needs) {
    Tensor gsrc;
    if (needs[1]) {
      gsrc = Tensor::zeros(src_shape, g.dtype());
      Tensor part = gather_kernel(g, d, idx);
      Tensor region = gsrc;
      for (int64_t k = 0; k < idx.ndim(); ++k) region = region.slice(k, 0, idx.size(k));
      region.copy_from(part);
    }
    return std::vector<Tensor>{needs[0] ? g : Tensor{}, gsrc};
  }, "scatter_add");
}

namespace {

struct SelectSizes {
  int64_t outer, n, inner;
};

SelectSizes select_sizes(const Shape& s, int64_t d) {
  SelectSizes z{1, s[d], 1};
  for (int64_t k = 0; k < d; ++k) z.outer *= s[k];
  for (int64_t k = d + 1; k < static_cast<int64_t>(s.size()); ++k) z.inner *= s[k];
  return z;
}

// x (outer, n, inner) contiguous, idx (k) -> out (outer, k, inner); any dtype.
void index_select_kernel(Tensor& out, const Tensor& x, const int64_t* idx, int64_t k, SelectSizes z) {
  const int64_t es = static_cast<int64_t>(dtype_size(x.dtype())), row = z.inner * es;
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(out.raw());
  if (row == 0) return;
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
  for (int64_t o = 0; o < z.outer; ++o)
    for (int64_t j = 0; j < k; ++j)
      std::memcpy(dst + (o * k + j) * row, src + (o * z.n + idx[j]) * row, static_cast<size_t>(row));
}

// out (outer, n, inner) contiguous F32/F64 += alpha * src (outer, k, inner) contiguous at rows idx (k).
// Tasks are (outer, block of inner) pairs; within one the index order is serial, so duplicates add in
// index order on any thread count.
void index_add_kernel(Tensor& out, const Tensor& src, const int64_t* idx, int64_t k, SelectSizes z, double alpha) {
  constexpr int64_t kBlock = 256;
  const int64_t nb = (z.inner + kBlock - 1) / kBlock, tasks = z.outer * nb;
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dst = out.data<T>();
    const T* s = src.data<T>();
    const T a = static_cast<T>(alpha);
#pragma omp parallel for schedule(static) if (src.numel() > kParallelMin)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / nb, b0 = (t % nb) * kBlock, b1 = std::min(z.inner, b0 + kBlock);
      for (int64_t j = 0; j < k; ++j) {
        T* drow = dst + (o * z.n + idx[j]) * z.inner;
        const T* srow = s + (o * k + j) * z.inner;
        for (int64_t i = b0; i < b1; ++i) drow[i] += a * srow[i];
      }
    }
  });
}

void check_index_vector(const char* op, const Tensor& index, int64_t n, int64_t dim) {
  SSMKIT_CHECK(index.dtype() == DType::I64, op, ": index must be I64, got ", dtype_name(index.dtype()));
  SSMKIT_CHECK(index.ndim() <= 1, op, ": index must be a vector, got shape ", shape_str(index.shape()));
  check_index_values(op, index, n, dim);
}

}  // namespace

Var index_select(const Var& x, int64_t dim, const Tensor& index) {
  SSMKIT_CHECK(x.ndim() >= 1, "index_select: needs a tensor of rank >= 1, got shape ", shape_str(x.shape()));
  const int64_t d = wrap_dim("index_select", dim, x.ndim());
  check_index_vector("index_select", index, x.shape()[d], dim);
  const Tensor idx = index.reshape({index.numel()});
  const int64_t k = idx.numel();
  const Shape in_shape = x.shape();
  const SelectSizes z = select_sizes(in_shape, d);
  Shape out_shape = in_shape;
  out_shape[d] = k;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  index_select_kernel(y, x.value().contiguous(), idx.data<int64_t>(), k, z);
  return make_result(y, {x}, [in_shape, idx, k, z](const Tensor& g, const std::vector<bool>&) {
    Tensor dx = Tensor::zeros(in_shape, g.dtype());
    index_add_kernel(dx, g.contiguous(), idx.data<int64_t>(), k, z, 1.0);
    return std::vector<Tensor>{dx};
  }, "index_select");
}

Var index_add(const Var& x, int64_t dim, const Tensor& index, const Var& source, double alpha) {
  SSMKIT_CHECK(x.ndim() >= 1, "index_add: needs a tensor of rank >= 1, got shape ", shape_str(x.shape()));
  const int64_t d = wrap_dim("index_add", dim, x.ndim());
  check_float_dtype(x.value(), "index_add", "x");
  SSMKIT_CHECK(source.dtype() == x.dtype(), "index_add: source has dtype ", dtype_name(source.dtype()),
               " but x has ", dtype_name(x.dtype()));
  check_index_vector("index_add", index, x.shape()[d], dim);
  const Tensor idx = index.reshape({index.numel()});
  const int64_t k = idx.numel();
  Shape want = x.shape();
  want[d] = k;
  SSMKIT_CHECK(source.shape() == want, "index_add: source must be ", shape_str(want), " for x ",
               shape_str(x.shape()), " and ", k, " indices, got ", shape_str(source.shape()));
  const SelectSizes z = select_sizes(x.shape(), d);
  Tensor y = x.value().clone();
  index_add_kernel(y, source.value().contiguous(), idx.data<int64_t>(), k, z, alpha);
  return make_result(y, {x, source}, [idx, k, z, want, alpha](const Tensor& g, const std::vector<bool>& needs) {
    Tensor gs;
    if (needs[1]) {
      gs = Tensor::empty(want, g.dtype());
      index_select_kernel(gs, g.contiguous(), idx.data<int64_t>(), k, z);
      if (alpha != 1.0) {
        dispatch_float(gs.dtype(), [&](auto tag) {
          using T = decltype(tag);
          T* p = gs.data<T>();
          for (int64_t i = 0; i < gs.numel(); ++i) p[i] *= static_cast<T>(alpha);
        });
      }
    }
    return std::vector<Tensor>{needs[0] ? g : Tensor{}, gs};
  }, "index_add");
}

// ----------------------------------------------------------------------------------------------------------
// masks and limits

namespace {

void check_mask(const char* op, const Tensor& mask) {
  SSMKIT_CHECK(mask.defined() && mask.dtype() == DType::U8, op, ": mask must be a U8 tensor, got ",
               mask.defined() ? dtype_name(mask.dtype()) : "undefined");
}

// g (out shape), mask broadcast to it -> g where (mask != 0) == keep_set, 0 elsewhere; summed to `shape`.
Tensor masked_grad(const Tensor& g0, const Tensor& mask, bool keep_set, const Shape& shape) {
  const Tensor g = g0.contiguous();
  Tensor r = Tensor::empty(g.shape(), g.dtype());
  const std::array<Shape, 2> st{broadcast_strides(mask, g.shape()), g.strides()};
  const uint8_t* m = mask.data<uint8_t>();
  dispatch_float(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pg = g.data<T>();
    T* pr = r.data<T>();
    for_each_broadcast<2>(g.shape(), st, [&](int64_t o, const std::array<int64_t, 2>& off) {
      pr[o] = ((m[off[0]] != 0) == keep_set) ? pg[off[1]] : T(0);
    });
  });
  return sum_to(r, shape);
}

}  // namespace

Var where(const Tensor& mask, const Var& a, const Var& b) {
  check_mask("where", mask);
  check_float_dtype(a.value(), "where", "a");
  SSMKIT_CHECK(a.dtype() == b.dtype(), "where: a has dtype ", dtype_name(a.dtype()), " but b has ",
               dtype_name(b.dtype()));
  const Shape out = broadcast_shapes(broadcast_shapes(mask.shape(), a.shape()), b.shape());
  Tensor y = Tensor::empty(out, a.dtype());
  const Tensor av = a.value(), bv = b.value();
  const std::array<Shape, 3> st{broadcast_strides(mask, out), broadcast_strides(av, out),
                                broadcast_strides(bv, out)};
  const uint8_t* m = mask.data<uint8_t>();
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = av.data<T>();
    const T* pb = bv.data<T>();
    T* py = y.data<T>();
    for_each_broadcast<3>(out, st, [&](int64_t o, const std::array<int64_t, 3>& off) {
      py[o] = m[off[0]] ? pa[off[1]] : pb[off[2]];
    });
  });
  const Shape sa = a.shape(), sb = b.shape();
  return make_result(y, {a, b}, [mask, sa, sb](const Tensor& g, const std::vector<bool>& needs) {
    return std::vector<Tensor>{needs[0] ? masked_grad(g, mask, true, sa) : Tensor{},
                               needs[1] ? masked_grad(g, mask, false, sb) : Tensor{}};
  }, "where");
}

Var masked_fill(const Var& x, const Tensor& mask, double value) {
  check_mask("masked_fill", mask);
  check_float_dtype(x.value(), "masked_fill", "x");
  const Shape out = broadcast_shapes(x.shape(), mask.shape());
  Tensor y = Tensor::empty(out, x.dtype());
  const Tensor xv = x.value();
  const std::array<Shape, 2> st{broadcast_strides(xv, out), broadcast_strides(mask, out)};
  const uint8_t* m = mask.data<uint8_t>();
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = xv.data<T>();
    T* py = y.data<T>();
    const T v = static_cast<T>(value);
    for_each_broadcast<2>(out, st, [&](int64_t o, const std::array<int64_t, 2>& off) {
      py[o] = m[off[1]] ? v : px[off[0]];
    });
  });
  const Shape sx = x.shape();
  return make_result(y, {x}, [mask, sx](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{masked_grad(g, mask, false, sx)};
  }, "masked_fill");
}

Var clamp(const Var& x, std::optional<double> min, std::optional<double> max) {
  SSMKIT_CHECK(min || max, "clamp: at least one of min and max must be given");
  check_float_dtype(x.value(), "clamp", "x");
  const Tensor xv = x.value().contiguous();
  Tensor y = Tensor::empty(xv.shape(), xv.dtype());
  const double lo = min ? *min : -INFINITY, hi = max ? *max : INFINITY;
  const int64_t n = xv.numel();
  dispatch_float(xv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = xv.data<T>();
    T* py = y.data<T>();
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) py[i] = std::min(std::max(px[i], l), h);
  });
  return make_result(y, {x}, [xv, lo, hi](const Tensor& g0, const std::vector<bool>&) {
    const Tensor g = g0.contiguous();
    Tensor dx = Tensor::empty(g.shape(), g.dtype());
    const int64_t m = g.numel();
    dispatch_float(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = xv.data<T>();
      const T* pg = g.data<T>();
      T* pd = dx.data<T>();
      const T l = static_cast<T>(lo), h = static_cast<T>(hi);
#pragma omp parallel for schedule(static) if (m > kParallelMin)
      for (int64_t i = 0; i < m; ++i) pd[i] = (px[i] >= l && px[i] <= h) ? pg[i] : T(0);
    });
    return std::vector<Tensor>{dx};
  }, "clamp");
}

}  // namespace ssmkit::core
