// Shape and indexing ops on Vars, with PyTorch semantics: concat/stack/split/chunk, slice/select, pad
// (F.pad: constant, reflect, replicate, circular), flip, roll, gather/scatter_add, index_select/index_add,
// expand/broadcast_to, unsqueeze/squeeze, repeat (torch.Tensor.repeat), where, masked_fill, clamp.
// Forward works on any dtype where it only moves elements (concat, pad, gather, ...); gradients are F32/F64.
// Index tensors are I64, masks U8 (PyTorch's bool). Backward of every gathering op is a deterministic
// scatter-add. Not here: advanced (tensor) indexing, scatter with reductions other than add, unfold.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ssmkit/core/autograd/var.h"

namespace ssmkit::core {

// --- joining and splitting ----------------------------------------------------------------------------

// xs: k tensors of one dtype and rank, equal except at dim -> (..., sum of sizes at dim, ...). torch.cat.
Var concat(const std::vector<Var>& xs, int64_t dim = 0);
inline Var cat(const std::vector<Var>& xs, int64_t dim = 0) { return concat(xs, dim); }
// xs: k tensors of one shape S -> S with a new dim of size k inserted at dim (in [-(rank+1), rank]).
Var stack(const std::vector<Var>& xs, int64_t dim = 0);
// x (..., n at dim, ...) -> pieces of split_size along dim (the last one smaller). torch.split.
std::vector<Var> split(const Var& x, int64_t split_size, int64_t dim = 0);
// x (..., n at dim, ...) -> pieces of the given sizes (summing to n). torch.split with a list.
std::vector<Var> split(const Var& x, const std::vector<int64_t>& split_sizes, int64_t dim = 0);
// x (..., n at dim, ...) -> at most `chunks` pieces of ceil(n / chunks). torch.chunk.
std::vector<Var> chunk(const Var& x, int64_t chunks, int64_t dim = 0);

// --- views --------------------------------------------------------------------------------------------

// x (..., n at dim, ...) -> (..., ceil((end - start) / step), ...); negative start/end count from the end,
// both clamped to [0, n]; step > 0. A view of x; backward writes into a zero tensor.
Var slice(const Var& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
// x (..., n at dim, ...) -> x with dim removed, taking entry index (negative counts from the end). A view.
Var select(const Var& x, int64_t dim, int64_t index);
// x S -> S with a dim of size 1 inserted at dim (in [-(rank+1), rank]).
Var unsqueeze(const Var& x, int64_t dim);
// x S -> S without its size-1 dims.
Var squeeze(const Var& x);
// x S -> S without dim when its size is 1; unchanged otherwise (PyTorch).
Var squeeze(const Var& x, int64_t dim);

// --- copies with an index map -------------------------------------------------------------------------

// x S -> padded copy. pad = (left, right) pairs starting from the LAST dim (F.pad): (l_last, r_last,
// l_second_last, r_second_last, ...), at most 2 * rank entries. mode: "constant" (fills `value`; negative
// pads crop), "reflect" (pads < size, edge not repeated), "replicate" (size > 0), "circular" (pads <= size).
// Negative pads crop in every mode. Any rank (PyTorch restricts the non-constant modes to the last 3 dims).
Var pad(const Var& x, const std::vector<int64_t>& pad, const std::string& mode = "constant", double value = 0.0);
// x S -> x reversed along each dim in dims (distinct).
Var flip(const Var& x, const std::vector<int64_t>& dims);
// x S -> x rolled: out[i] = x[(i - shift) mod n] along each dims[k] by shifts[k]; with dims empty, shifts
// has one entry and the flattened tensor is rolled (torch.roll).
Var roll(const Var& x, const std::vector<int64_t>& shifts, const std::vector<int64_t>& dims = {});
// x S (rank r) -> copy broadcast to shape (rank >= r; -1 keeps a dim; size-1 dims may grow). Backward sums.
Var expand(const Var& x, const Shape& shape);
inline Var broadcast_to(const Var& x, const Shape& shape) { return expand(x, shape); }
// x S (rank r) -> tiled copy: repeats (length >= r) times along each dim, x first viewed with leading 1s
// (torch.Tensor.repeat).
Var repeat(const Var& x, const std::vector<int64_t>& repeats);

// --- gather and scatter -------------------------------------------------------------------------------

// x (rank r), index I64 (rank r, index.size(d) <= x.size(d) for d != dim, values in [0, x.size(dim)))
// -> out of index's shape: out[i..j..k] = x[i..index[i..j..k]..k] (j at dim). Backward: scatter_add.
Var gather(const Var& x, int64_t dim, const Tensor& index);
// x (rank r), index I64 (rank r), src (rank r, >= index in every dim; index.size(d) <= x.size(d) for
// d != dim) -> copy of x with out[i..index[i..j..k]..k] += src[i..j..k] over index's positions.
Var scatter_add(const Var& x, int64_t dim, const Tensor& index, const Var& src);
// x (..., n at dim, ...), index I64 (k) or 0-d, values in [0, n) -> (..., k at dim, ...).
// Backward: index_add (deterministic: duplicates summed in index order).
Var index_select(const Var& x, int64_t dim, const Tensor& index);
// x (..., n at dim, ...), index I64 (k), source (..., k at dim, ...) -> copy of x with
// out[.., index[j], ..] += alpha * source[.., j, ..].
Var index_add(const Var& x, int64_t dim, const Tensor& index, const Var& source, double alpha = 1.0);

// --- masks and limits ---------------------------------------------------------------------------------

// mask U8, a, b (one float dtype), all broadcast together -> out[i] = mask[i] ? a[i] : b[i] (torch.where).
Var where(const Tensor& mask, const Var& a, const Var& b);
// x, mask U8 broadcast together -> x with `value` where mask is nonzero. Gradient 0 there.
Var masked_fill(const Var& x, const Tensor& mask, double value);
// x -> min(max(x, min), max) (either bound may be absent, not both). Gradient passes where
// min <= x <= max, the boundaries included (PyTorch), 0 elsewhere.
Var clamp(const Var& x, std::optional<double> min, std::optional<double> max);

}  // namespace ssmkit::core
