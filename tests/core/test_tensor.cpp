// Tensor: storage alignment, the cache of large freed buffers, views (view, reshape, permute, transpose, slice,
// select), copies, dtype conversion (F16/BF16 rounding), and error messages.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "gradcheck.h"
#include "ssmkit/core/eigen_map.h"
#include "ssmkit/core/ops/linear.h"
#include "ssmkit/core/storage_cache.h"
#include "ssmkit/core/tensor.h"

using namespace ssmkit::core;

namespace ssmkit::core::detail {
size_t storage_block_size(size_t bytes);  // core/src/storage_blocks.h (internal)
}

static Tensor iota(const Shape& s) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(s, v);
}

TEST(Tensor, AlignedZeroFilledStorage) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
    EXPECT_EQ(max_abs(t), 0.0);
  }
  Tensor s = Tensor::full({}, 2.5);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.to_double_vector()[0], 2.5);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = iota({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.at<float>({3, 1, 2}), t.at<float>({1, 2, 3}));
  Tensor s = t.slice(2, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.at<float>({1, 2, 1}), 23.0f);
  Tensor sel = t.select(1, 2);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_EQ(sel.at<float>({1, 0}), 20.0f);
  sel.at<float>({1, 0}) = -1;
  EXPECT_EQ(t.at<float>({1, 2, 0}), -1.0f);  // same storage
  Tensor v = t.view({6, -1});
  EXPECT_EQ(v.shape(), (Shape{6, 4}));
  EXPECT_TRUE(v.same_storage(t));
  Tensor r = p.reshape({24});  // non-contiguous: copies
  EXPECT_FALSE(r.same_storage(t));
  EXPECT_EQ(r.to_double_vector()[1], t.at<float>({0, 1, 0}));
  Tensor c = t.transpose(0, 2).contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.at<float>({3, 2, 1}), t.at<float>({1, 2, 3}));
}

// Strided copies (contiguous() of permuted and sliced views, copy_from into a strided view) for each element
// size, small (one thread) and large (rows in parallel), against element-wise at(); a large contiguous copy
// (pieces over the threads, a partial last piece).
TEST(Tensor, StridedCopiesMatchElementwise) {
  {
    Tensor big = Tensor::uninitialized({3, 1000, 333}, DType::F32);  // 4 MB
    for (int64_t i = 0; i < big.numel(); ++i) big.data<float>()[i] = static_cast<float>(i % 1009);
    Tensor copy = Tensor::zeros({3, 1000, 333}, DType::F32);
    copy.copy_from(big);
    for (int64_t i = 0; i < big.numel(); ++i) ASSERT_EQ(copy.data<float>()[i], static_cast<float>(i % 1009)) << i;
  }
  for (DType dt : {DType::F32, DType::F64, DType::I64, DType::U8, DType::BF16}) {
    for (int64_t n : {3, 120}) {  // 120: 144 k elements, rows in parallel
      Tensor a = Tensor::zeros({n, 5, 2 * n}, DType::F64);
      for (int64_t i = 0; i < a.numel(); ++i) a.data<double>()[i] = static_cast<double>(i % 251);
      const Tensor t = a.to(dt);
      const Tensor p = t.permute({2, 0, 1}).contiguous();
      ASSERT_EQ(p.shape(), (Shape{2 * n, n, 5}));
      const Tensor s = t.slice(2, 1, 2 * n, 2).transpose(0, 1).contiguous();  // (5, n, n)
      const Tensor pd = p.to(DType::F64), sd = s.to(DType::F64);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < 5; ++j)
          for (int64_t k = 0; k < 2 * n; ++k) {
            ASSERT_EQ(pd.at<double>({k, i, j}), static_cast<double>((i * 10 * n + j * 2 * n + k) % 251));
            if (k % 2 == 1) {
              ASSERT_EQ(sd.at<double>({j, i, k / 2}), static_cast<double>((i * 10 * n + j * 2 * n + k) % 251));
            }
          }
      // copy_from into a strided destination view
      Tensor dst = Tensor::zeros({5, n, 2 * n}, dt);
      Tensor view = dst.permute({1, 0, 2});
      view.copy_from(t);
      const Tensor dd = dst.to(DType::F64);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < 5; ++j)
          for (int64_t k = 0; k < 2 * n; ++k)
            ASSERT_EQ(dd.at<double>({j, i, k}), static_cast<double>((i * 10 * n + j * 2 * n + k) % 251));
    }
  }
}

// contiguous() of every permutation of 2-4-d tensors, plain, of a sliced view and of a stepped slice (no unit
// stride left), sizes around the 16-wide transpose tiles, small and large enough for the parallel walk: the
// values in row-major order must equal to_double_vector()'s independent index walk of the view.
TEST(Tensor, PermutedCopiesMatchTheIndexWalk) {
  const std::vector<Shape> shapes = {{17, 5}, {3, 33, 16}, {2, 7, 12, 32}, {4, 19, 3, 18}, {2, 96, 24, 40}};
  for (const Shape& shape : shapes) {
    Tensor a = Tensor::uninitialized(shape, DType::F32);
    for (int64_t i = 0; i < a.numel(); ++i) a.data<float>()[i] = static_cast<float>(i % 4093);
    std::vector<int64_t> perm(shape.size());
    std::iota(perm.begin(), perm.end(), 0);
    do {
      for (int variant = 0; variant < 3; ++variant) {
        Tensor v = a;
        if (variant == 1) v = a.slice(0, 1, shape[0]);  // offset view
        if (variant == 2) v = a.slice(static_cast<int64_t>(shape.size()) - 1, 0, shape.back(), 2);  // no unit stride
        const Tensor view = v.permute(perm);
        const Tensor c = view.contiguous();
        ASSERT_EQ(c.shape(), view.shape());
        const std::vector<double> want = view.to_double_vector();
        for (int64_t i = 0; i < c.numel(); ++i)
          ASSERT_EQ(c.data<float>()[i], want[static_cast<size_t>(i)])
              << shape_str(shape) << " perm " << perm[0] << perm[1] << " variant " << variant << " at " << i;
      }
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(Tensor, DtypeConversionsRoundCorrectly) {
  Tensor t = Tensor::from_vector({6}, std::vector<double>{1.0, -2.5, 65504.0, 1e-7, 3.14159265, 1e6});
  std::vector<double> h = t.to(DType::F16).to_double_vector();
  EXPECT_EQ(h[0], 1.0);
  EXPECT_EQ(h[1], -2.5);
  EXPECT_EQ(h[2], 65504.0);
  EXPECT_NEAR(h[3], 1e-7, 6e-8);  // subnormal in half precision
  EXPECT_EQ(h[4], 3.140625);
  EXPECT_TRUE(std::isinf(h[5]));
  std::vector<double> b = t.to(DType::BF16).to_double_vector();
  EXPECT_EQ(b[4], 3.140625);
  EXPECT_NEAR(b[5], 1e6, 4e3);
  std::vector<double> i = t.to(DType::I32).to_double_vector();
  EXPECT_EQ(i[1], -2);
}

TEST(Tensor, ErrorsNameTheProblem) {
  Tensor t = iota({2, 3});
  try {
    (void)t.view({4, 2});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot view (2,3)"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)t.data<double>(), Error);
  EXPECT_THROW((void)t.permute({0, 0}), Error);
  EXPECT_THROW((void)t.transpose(0, 1).view({6}), Error);
  EXPECT_THROW((void)t.size(2), Error);
}

TEST(Tensor, ShapesTooLargeToAllocateAreRefused) {
  // 2^62 floats is 2^64 bytes: the byte count wraps to 0 in size_t, which must not give a 64-byte tensor.
  for (const Shape& s : {Shape{int64_t(1) << 62}, Shape{int64_t(1) << 40, int64_t(1) << 40}, Shape{3, int64_t(1) << 59}}) {
    for (bool zeroed : {true, false}) {
      try {
        Tensor big = zeroed ? Tensor::empty(s) : Tensor::uninitialized(s);
        FAIL() << shape_str(s) << " was allocated";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("too large to allocate"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(shape_str(s)), std::string::npos) << e.what();
      }
    }
  }
  Tensor none = Tensor::empty({int64_t(1) << 62, 0});  // no elements: fine whatever the other dims
  EXPECT_EQ(none.numel(), 0);
  EXPECT_THROW((void)Tensor::empty({2, -1}), Error);
}

TEST(Tensor, EigenMatrixAndLinear) {
  Tensor x = iota({2, 3}), W = iota({4, 3});
  Tensor y;
  linear_forward(y, x, W, Tensor::full({4}, 1.0));
  auto X = as_matrix<float>(x);
  auto Wm = as_matrix<float>(W);
  Eigen::MatrixXf ref = X * Wm.transpose();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(y.at<float>({i, j}), ref(i, j) + 1);
}

TEST(Linear, GradcheckInDouble) {
  using ssmkit::test::random_tensor;
  Tensor x = random_tensor({2, 3, 5}, 1), W = random_tensor({4, 5}, 2), b = random_tensor({4}, 3);
  Tensor w = random_tensor({2, 3, 4}, 4);
  auto loss = [&] {
    Tensor y;
    linear_forward(y, x, W, b);
    return ssmkit::test::dot(y, w);
  };
  Tensor dx, dW, db;
  linear_backward(&dx, dW, &db, w, x, W);
  ssmkit::test::gradcheck(loss, x, dx, "x");
  ssmkit::test::gradcheck(loss, W, dW, "W");
  ssmkit::test::gradcheck(loss, b, db, "b");
}

TEST(StorageCache, BlockSizes) {
  const size_t big = size_t(1) << 25;  // 32 MB: from here on blocks are cached by size class
  for (size_t b : {size_t(1), size_t(63), size_t(64), size_t(65), size_t(1000), size_t(262145), big - 1, big,
                   big + 1, 3 * big + 12345, size_t(1) << 31}) {
    const size_t s = detail::storage_block_size(b);
    EXPECT_GE(s, b) << b;
    EXPECT_EQ(s % 64, 0u) << b;
    if (b >= big) {
      EXPECT_LE(s, b + b / 8) << b;                       // a size class wastes at most 1/8
      EXPECT_EQ(detail::storage_block_size(s), s) << b;  // a class size is its own class
    } else {
      EXPECT_EQ(s, std::max<size_t>(64, (b + 63) / 64 * 64)) << b;
    }
  }
}

constexpr int64_t kBigFloats = int64_t(1) << 23;  // 32 MB of floats

TEST(StorageCache, ReusesFreedBlocksZeroedWhenAsked) {
  if (storage_cache_stats().limit_bytes == 0) GTEST_SKIP() << "storage cache off (AddressSanitizer build or env)";
  release_cached_storage();
  void* first = nullptr;
  {
    Tensor t = Tensor::uninitialized({kBigFloats + 1000});
    first = t.raw();
    std::memset(first, 0xAB, static_cast<size_t>(kBigFloats + 1000) * 4);
  }
  EXPECT_EQ(storage_cache_stats().cached_blocks, 1u);
  const uint64_t hits = storage_cache_stats().hits;
  Tensor z = Tensor::empty({kBigFloats + 2000});  // the same size class (above 32 MB, up to 36 MB)
  EXPECT_EQ(z.raw(), first);
  EXPECT_EQ(storage_cache_stats().hits, hits + 1);
  EXPECT_EQ(storage_cache_stats().cached_blocks, 0u);
  const float* p = z.data<float>();
  for (int64_t i = 0; i < z.numel(); ++i) ASSERT_EQ(p[i], 0.0f) << i;  // empty() zero-fills a reused block
  Tensor other = Tensor::uninitialized({2 * kBigFloats});  // another class: a new block
  EXPECT_NE(other.raw(), first);
}

TEST(StorageCache, LimitEvictsOldestAndReleaseFrees) {
  if (storage_cache_stats().limit_bytes == 0) GTEST_SKIP() << "storage cache off (AddressSanitizer build or env)";
  const size_t limit = storage_cache_stats().limit_bytes, block = size_t(kBigFloats) * 4;
  release_cached_storage();
  set_storage_cache_limit(block * 5 / 2);  // room for two blocks
  {
    std::vector<Tensor> ts;
    for (int i = 0; i < 4; ++i) ts.push_back(Tensor::uninitialized({kBigFloats}));
  }
  StorageCacheStats st = storage_cache_stats();
  EXPECT_EQ(st.cached_blocks, 2u);
  EXPECT_EQ(st.cached_bytes, 2 * block);
  set_storage_cache_limit(block);  // lowering the limit evicts at once
  EXPECT_EQ(storage_cache_stats().cached_blocks, 1u);
  release_cached_storage();
  EXPECT_EQ(storage_cache_stats().cached_bytes, 0u);
  set_storage_cache_limit(0);  // off: freed blocks go back to the system
  { Tensor t = Tensor::uninitialized({kBigFloats}); }
  EXPECT_EQ(storage_cache_stats().cached_blocks, 0u);
  set_storage_cache_limit(limit);
}

TEST(StorageCache, ThreadsAllocateAndFreeConcurrently) {
  // Every thread allocates, marks, checks and frees blocks of a few size classes many times; a block handed
  // to two owners at once would show up as a wrong mark.
  int bad = 0;
#pragma omp parallel num_threads(4) reduction(+ : bad)
  {
    const int t = omp_get_thread_num();
    for (int it = 0; it < 40; ++it) {
      const int64_t n = kBigFloats * (1 + (it + t) % 3) / 2;
      Tensor a = Tensor::uninitialized({n});
      float* p = a.data<float>();
      const float mark = static_cast<float>(t * 1000 + it);
      for (int64_t i = 0; i < n; i += n / 7) p[i] = mark;
      for (int64_t i = 0; i < n; i += n / 7) bad += p[i] != mark;
    }
  }
  EXPECT_EQ(bad, 0);
}
