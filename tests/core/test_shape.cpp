// Shape and indexing ops: values worked out by hand (or taken from the PyTorch docs' examples), central-
// difference gradients in double for every differentiable input, non-contiguous inputs, integer dtypes in
// the element movers, the parallel paths against per-slice runs, and errors that name the problem.
#include <functional>
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/ops/elementwise.h"
#include "ssmkit/core/ops/shape.h"

using namespace ssmkit::core;
using ssmkit::test::expect_error;
using ssmkit::test::f64;
using ssmkit::test::gradcheck_op;
using ssmkit::test::indices;
using ssmkit::test::random_tensor;
using ssmkit::test::values;
using V = std::vector<Var>;

namespace {

Tensor U8(const Shape& s, const std::vector<uint8_t>& v) {
  Tensor t = Tensor::empty(s, DType::U8);
  std::copy(v.begin(), v.end(), t.data<uint8_t>());
  return t;
}
std::vector<double> range(int n, double start = 1) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = start + i;
  return v;
}

}  // namespace

TEST(Shape, ConcatAndStack) {
  Var a(f64({2, 2}, {1, 2, 3, 4})), b(f64({2, 1}, {5, 6}));
  Var c = concat({a, b}, 1);
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  EXPECT_EQ(values(c), (std::vector<double>{1, 2, 5, 3, 4, 6}));
  EXPECT_EQ(values(concat({a, a}, -2)), (std::vector<double>{1, 2, 3, 4, 1, 2, 3, 4}));
  Var s = stack({a, a}, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(values(s), (std::vector<double>{1, 1, 2, 2, 3, 3, 4, 4}));
  EXPECT_EQ(stack({a, a}, 0).shape(), (Shape{2, 2, 2}));
  gradcheck_op([](const V& v) { return concat({v[0], v[1], v[0]}, 1); },
               {random_tensor({2, 3, 2}, 1), random_tensor({2, 1, 2}, 2)}, "concat");
  gradcheck_op([](const V& v) { return stack({v[0], v[1]}, -1); }, {random_tensor({3, 2}, 3), random_tensor({3, 2}, 4)},
               "stack");
  // integer tensors move as bits
  Var i(indices({3}, {7, -8, 9}));
  EXPECT_EQ(concat({i, i}).value().to_double_vector(), (std::vector<double>{7, -8, 9, 7, -8, 9}));
  expect_error([&] { concat({a, Var(f64({3, 1}, {1, 2, 3}))}, 1); }, "concat: tensor 1 of shape (3,1)");
  expect_error([&] { concat({a, b}, 2); }, "concat: dim 2 out of range");
  expect_error([&] { stack({a, b}); }, "stack: tensor 1 has shape (2,1)");
}

TEST(Shape, SplitAndChunk) {
  Var x(f64({2, 5}, range(10)));
  auto p = split(x, 2, 1);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(values(p[0]), (std::vector<double>{1, 2, 6, 7}));
  EXPECT_EQ(values(p[2]), (std::vector<double>{5, 10}));
  auto q = split(x, std::vector<int64_t>{1, 4}, -1);
  EXPECT_EQ(q[1].shape(), (Shape{2, 4}));
  auto c = chunk(x, 2, 1);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(c[1].shape(), (Shape{2, 2}));
  EXPECT_EQ(chunk(Var(f64({6}, range(6))), 4).size(), 3u);  // ceil(6/4) = 2 per chunk
  gradcheck_op([](const V& v) {
    auto parts = split(v[0], 2, 1);
    return concat({mul(parts[2], parts[2]), parts[0]}, 1);  // parts[1] unused: zero gradient
  }, {random_tensor({2, 5}, 5)}, "split");
  gradcheck_op([](const V& v) { return chunk(v[0], 3, 0)[1]; }, {random_tensor({5, 2}, 6)}, "chunk");
  expect_error([&] { split(x, std::vector<int64_t>{2, 2}, 1); }, "split: split_sizes sum to 4");
  expect_error([&] { split(x, 0, 1); }, "split: split_size must be positive");
}

TEST(Shape, SliceSelectSqueeze) {
  Var x(f64({2, 5}, range(10)));
  EXPECT_EQ(values(slice(x, 1, 1, 5, 2)), (std::vector<double>{2, 4, 7, 9}));
  EXPECT_EQ(values(slice(x, -1, -2, 100)), (std::vector<double>{4, 5, 9, 10}));
  EXPECT_EQ(values(select(x, 1, -1)), (std::vector<double>{5, 10}));
  EXPECT_EQ(select(x, 0, 1).shape(), (Shape{5}));
  EXPECT_EQ(unsqueeze(x, -1).shape(), (Shape{2, 5, 1}));
  EXPECT_EQ(unsqueeze(x, 0).shape(), (Shape{1, 2, 5}));
  Var y(Tensor::zeros({1, 3, 1}, DType::F64));
  EXPECT_EQ(squeeze(y).shape(), (Shape{3}));
  EXPECT_EQ(squeeze(y, 2).shape(), (Shape{1, 3}));
  EXPECT_EQ(squeeze(y, 1).shape(), (Shape{1, 3, 1}));  // size 3: unchanged, as in PyTorch
  gradcheck_op([](const V& v) { return slice(v[0], 1, 1, 5, 2); }, {random_tensor({3, 6}, 7)}, "slice");
  gradcheck_op([](const V& v) { return select(v[0], 0, -1); }, {random_tensor({3, 4}, 8)}, "select");
  gradcheck_op([](const V& v) { return squeeze(unsqueeze(v[0], 1), 1); }, {random_tensor({3, 4}, 9)}, "squeeze");
  expect_error([&] { slice(x, 1, 0, 2, 0); }, "slice: step must be positive");
  expect_error([&] { select(x, 1, 5); }, "select: index 5 out of range");
  expect_error([&] { unsqueeze(x, 3); }, "unsqueeze: dim 3 out of range");
}

TEST(Shape, PadModesByHand) {
  Var x(f64({3}, {1, 2, 3}));
  EXPECT_EQ(values(pad(x, {2, 1}, "constant", 9)), (std::vector<double>{9, 9, 1, 2, 3, 9}));
  EXPECT_EQ(values(pad(x, {2, 2}, "reflect")), (std::vector<double>{3, 2, 1, 2, 3, 2, 1}));
  EXPECT_EQ(values(pad(x, {2, 1}, "replicate")), (std::vector<double>{1, 1, 1, 2, 3, 3}));
  EXPECT_EQ(values(pad(x, {2, 1}, "circular")), (std::vector<double>{2, 3, 1, 2, 3, 1}));
  EXPECT_EQ(values(pad(x, {-1, 1})), (std::vector<double>{2, 3, 0}));  // negative pads crop
  // 2-D: pads (left, right) of the last dim first, then (top, bottom).
  Var m(f64({2, 2}, {1, 2, 3, 4}));
  Var pm = pad(m, {1, 0, 0, 1}, "constant", -1);
  EXPECT_EQ(pm.shape(), (Shape{3, 3}));
  EXPECT_EQ(values(pm), (std::vector<double>{-1, 1, 2, -1, 3, 4, -1, -1, -1}));
  EXPECT_EQ(values(pad(m, {1, 1, 1, 1}, "reflect")),
            (std::vector<double>{4, 3, 4, 3, 2, 1, 2, 1, 4, 3, 4, 3, 2, 1, 2, 1}));
  Var i(indices({2}, {5, 6}));
  EXPECT_EQ(pad(i, {1, 0}, "constant", 7).value().to_double_vector(), (std::vector<double>{7, 5, 6}));
}

TEST(Shape, PadGradients) {
  Tensor x = random_tensor({2, 3, 4}, 10);
  for (const char* mode : {"constant", "reflect", "replicate", "circular"}) {
    gradcheck_op([mode](const V& v) { return pad(v[0], {2, 3, 1, 2}, mode, 0.5); }, {x}, std::string("pad ") + mode);
    gradcheck_op([mode](const V& v) { return pad(v[0], {-1, 2}, mode); }, {x}, std::string("pad crop ") + mode);
  }
  gradcheck_op([](const V& v) { return pad(permute(v[0], {2, 0, 1}), {1, 1, 1, 1, 1, 1}, "replicate"); }, {x},
               "pad of a permuted view");
  Var xv(x);
  expect_error([&] { pad(xv, {1, 2, 3}); }, "pad: 3 pad entries");
  expect_error([&] { pad(xv, {4, 0}, "reflect"); }, "pad: reflect padding (4, 0) must be less than the size 4");
  expect_error([&] { pad(xv, {5, 0}, "circular"); }, "pad: circular padding");
  expect_error([&] { pad(xv, {-3, -2}); }, "negative size");
  expect_error([&] { pad(xv, {1, 1}, "wrap"); }, "pad: unknown mode \"wrap\"");
}

TEST(Shape, FlipAndRoll) {
  Var x(f64({4, 2}, range(8)));
  EXPECT_EQ(values(flip(x, {0})), (std::vector<double>{7, 8, 5, 6, 3, 4, 1, 2}));
  EXPECT_EQ(values(flip(x, {0, 1})), (std::vector<double>{8, 7, 6, 5, 4, 3, 2, 1}));
  // torch.roll documentation examples on arange(1, 9).view(4, 2)
  EXPECT_EQ(values(roll(x, {1})), (std::vector<double>{8, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(values(roll(x, {1}, {0})), (std::vector<double>{7, 8, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(values(roll(x, {-1}, {0})), (std::vector<double>{3, 4, 5, 6, 7, 8, 1, 2}));
  EXPECT_EQ(values(roll(x, {2, 1}, {0, 1})), (std::vector<double>{6, 5, 8, 7, 2, 1, 4, 3}));
  EXPECT_EQ(values(roll(x, {9}, {0})), values(roll(x, {1}, {0})));
  Tensor t = random_tensor({3, 4}, 11);
  gradcheck_op([](const V& v) { return flip(v[0], {1, 0}); }, {t}, "flip");
  gradcheck_op([](const V& v) { return roll(v[0], {-5, 2}, {1, 0}); }, {t}, "roll");
  gradcheck_op([](const V& v) { return roll(v[0], {5}); }, {t}, "roll flattened");
  expect_error([&] { flip(x, {0, -2}); }, "flip: dim -2 appears more than once");
  expect_error([&] { roll(x, {1, 2}, {0}); }, "roll: 2 shifts for 1 dims");
}

TEST(Shape, ExpandAndRepeat) {
  Var x(f64({3}, {1, 2, 3}));
  Var r = repeat(x, {4, 2});  // torch docs: x.repeat(4, 2)
  EXPECT_EQ(r.shape(), (Shape{4, 6}));
  EXPECT_EQ(values(slice(r, 0, 3, 4)), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(repeat(x, {4, 2, 1}).shape(), (Shape{4, 2, 3}));
  Var c(f64({3, 1}, {1, 2, 3}));
  Var e = expand(c, {2, -1, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(values(select(e, 0, 1)), (std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}));
  EXPECT_EQ(broadcast_to(x, {2, 3}).shape(), (Shape{2, 3}));
  gradcheck_op([](const V& v) { return expand(v[0], {2, 3, 4}); }, {random_tensor({3, 1}, 12)}, "expand");
  gradcheck_op([](const V& v) { return repeat(v[0], {2, 1, 3}); }, {random_tensor({2, 3}, 13)}, "repeat");
  expect_error([&] { expand(c, {2, 2}); }, "expand: the tensor's size 3 cannot be expanded to 2");
  expect_error([&] { expand(c, {-1, 3, 1}); }, "expand: size -1 at dim 0");
  expect_error([&] { repeat(c, {2}); }, "repeat: 1 repeats for a tensor of rank 2");
}

TEST(Shape, GatherAndScatterAdd) {
  // torch.gather docs: t = [[1,2],[3,4]], gather(t, 1, [[0,0],[1,0]]) = [[1,1],[4,3]]
  Var t(f64({2, 2}, {1, 2, 3, 4}));
  EXPECT_EQ(values(gather(t, 1, indices({2, 2}, {0, 0, 1, 0}))), (std::vector<double>{1, 1, 4, 3}));
  EXPECT_EQ(values(gather(t, 0, indices({1, 2}, {1, 0}))), (std::vector<double>{3, 2}));
  // Tensor.scatter_add_ docs: zeros(3,5).scatter_add_(0, [[0,1,2,0,0]], ones(2,5))
  Var z(Tensor::zeros({3, 5}, DType::F64)), ones(Tensor::full({2, 5}, 1.0, DType::F64));
  EXPECT_EQ(values(scatter_add(z, 0, indices({1, 5}, {0, 1, 2, 0, 0}), ones)),
            (std::vector<double>{1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0}));
  // index smaller than x outside dim, with repeated targets
  const Tensor idx = indices({2, 3, 2}, {0, 3, 3, 3, 1, 0, 2, 2, 0, 1, 3, 0});
  gradcheck_op([idx](const V& v) { return gather(v[0], 1, idx); }, {random_tensor({3, 4, 2}, 14)}, "gather dim 1");
  const Tensor idx0 = indices({2, 2}, {1, 1, 0, 1});
  gradcheck_op([idx0](const V& v) { return gather(v[0], 0, idx0); }, {random_tensor({3, 3}, 15)}, "gather dim 0");
  gradcheck_op([idx](const V& v) { return scatter_add(v[0], 1, idx, v[1]); },
               {random_tensor({3, 4, 2}, 16), random_tensor({2, 4, 3}, 17)}, "scatter_add");
  gradcheck_op([idx0](const V& v) { return scatter_add(v[0], 0, idx0, v[1]); },
               {random_tensor({3, 2}, 18), random_tensor({2, 2}, 19)}, "scatter_add dim 0");
  expect_error([&] { gather(t, 1, indices({2, 2}, {0, 2, 0, 0})); }, "gather: index value 2 out of range for size 2");
  expect_error([&] { gather(t, 1, Tensor::zeros({2, 2}, DType::I32)); }, "gather: index must be I64");
  expect_error([&] { gather(t, 1, indices({2}, {0, 0})); }, "must have the rank of the input");
  expect_error([&] { scatter_add(z, 0, indices({1, 6}, {0, 0, 0, 0, 0, 0}), ones); }, "is larger than");
}

TEST(Shape, IndexSelectAndIndexAdd) {
  Var x(f64({3, 2}, range(6)));
  EXPECT_EQ(values(index_select(x, 0, indices({3}, {2, 0, 2}))), (std::vector<double>{5, 6, 1, 2, 5, 6}));
  EXPECT_EQ(values(index_select(x, 1, indices({1}, {1}))), (std::vector<double>{2, 4, 6}));
  Var src(f64({2, 2}, {10, 20, 30, 40}));
  // duplicates add up: row 1 = [3,4] + [10,20] + [30,40]
  EXPECT_EQ(values(index_add(x, 0, indices({2}, {1, 1}), src)), (std::vector<double>{1, 2, 43, 64, 5, 6}));
  EXPECT_EQ(values(index_add(x, 0, indices({2}, {0, 2}), src, -1.0)), (std::vector<double>{-9, -18, 3, 4, -25, -34}));
  Var i(indices({3}, {4, 5, 6}));
  EXPECT_EQ(index_select(i, 0, indices({2}, {2, 2})).value().to_double_vector(), (std::vector<double>{6, 6}));
  const Tensor idx = indices({4}, {2, 0, 2, 1});
  gradcheck_op([idx](const V& v) { return index_select(v[0], 1, idx); }, {random_tensor({2, 3, 2}, 20)},
               "index_select");
  gradcheck_op([idx](const V& v) { return index_add(v[0], 0, idx, v[1], 0.5); },
               {random_tensor({3, 2}, 21), random_tensor({4, 2}, 22)}, "index_add");
  expect_error([&] { index_select(x, 0, indices({1}, {3})); }, "index_select: index value 3 out of range for size 3");
  expect_error([&] { index_select(x, 0, indices({1, 1}, {0})); }, "index_select: index must be a vector");
  expect_error([&] { index_add(x, 0, indices({1}, {0}), src); }, "index_add: source must be (1,2)");
}

TEST(Shape, WhereMaskedFillClamp) {
  Var a(f64({2, 2}, {1, 2, 3, 4})), b(f64({2}, {-1, -2}));
  const Tensor m = U8({2, 1}, {1, 0});
  EXPECT_EQ(values(where(m, a, b)), (std::vector<double>{1, 2, -1, -2}));
  EXPECT_EQ(values(masked_fill(a, U8({2}, {0, 1}), 9)), (std::vector<double>{1, 9, 3, 9}));
  Var c(f64({5}, {-2, -1, 0, 1, 2}));
  EXPECT_EQ(values(clamp(c, -1.0, 1.0)), (std::vector<double>{-1, -1, 0, 1, 1}));
  EXPECT_EQ(values(clamp(c, std::nullopt, 0.5)), (std::vector<double>{-2, -1, 0, 0.5, 0.5}));
  EXPECT_EQ(values(clamp(c, 1.0, -1.0)), (std::vector<double>{-1, -1, -1, -1, -1}));  // min > max: all max
  // PyTorch passes the gradient at the boundaries (min <= x <= max)
  Var cg(f64({5}, {-2, -1, 0, 1, 2}), true);
  sum(clamp(cg, -1.0, 1.0)).backward();
  EXPECT_EQ(cg.grad().to_double_vector(), (std::vector<double>{0, 1, 1, 1, 0}));
  const Tensor mask = U8({3, 1}, {1, 0, 1});
  gradcheck_op([mask](const V& v) { return where(mask, v[0], v[1]); },
               {random_tensor({3, 2}, 23), random_tensor({2}, 24)}, "where");
  gradcheck_op([mask](const V& v) { return masked_fill(v[0], mask, -3); }, {random_tensor({2, 3, 4}, 25)},
               "masked_fill broadcast");
  Tensor away = f64({6}, {-1.7, -0.6, -0.2, 0.3, 0.55, 1.9});
  gradcheck_op([](const V& v) { return clamp(v[0], -0.5, 0.5); }, {away}, "clamp");
  expect_error([&] { where(Tensor::zeros({2, 1}, DType::F64), a, b); }, "where: mask must be a U8 tensor");
  expect_error([&] { where(m, a, Var(f64({3}, {1, 2, 3}))); }, "cannot broadcast");
  expect_error([&] { clamp(c, std::nullopt, std::nullopt); }, "clamp: at least one of min and max");
}

// Large tensors take the OpenMP paths; each batch row must equal the op run on that row alone (small, serial).
TEST(Shape, ParallelPathsMatchPerSliceRuns) {
  const int64_t B = 6;
  Tensor x = random_tensor({B, 70, 90}, 26);
  Tensor w = random_tensor({B, 74, 92}, 27);
  Var xv(x, true);
  Var y = pad(xv, {1, 1, 2, 2}, "reflect");
  y.backward(w);
  const Tensor rep_w = random_tensor({B, 140, 90}, 28);
  Var xr(x, true);
  Var r = repeat(xr, {1, 2, 1});
  r.backward(rep_w);
  const Tensor gi = indices({B, 70, 3}, std::vector<int64_t>(static_cast<size_t>(B * 70 * 3), 89));
  for (int64_t b = 0; b < B; ++b) {
    Var xb(x.select(0, b).contiguous(), true);
    Var yb = pad(xb, {1, 1, 2, 2}, "reflect");
    EXPECT_EQ(max_abs_diff(yb.value(), y.value().select(0, b)), 0.0);
    yb.backward(w.select(0, b).contiguous());
    EXPECT_EQ(max_abs_diff(xb.grad(), xv.grad().select(0, b)), 0.0) << "pad backward, row " << b;
    Var xc(x.select(0, b).contiguous(), true);
    repeat(xc, {2, 1}).backward(rep_w.select(0, b).contiguous());
    EXPECT_EQ(max_abs_diff(xc.grad(), xr.grad().select(0, b)), 0.0) << "repeat backward, row " << b;
  }
  Var g = gather(Var(x), 2, gi);
  EXPECT_EQ(max_abs_diff(g.value().select(2, 1), x.select(2, 89)), 0.0);
}
