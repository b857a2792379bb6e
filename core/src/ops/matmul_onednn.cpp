// onednn_matmul_bias (see matmul_onednn.h). A float Linear through dnnl_sgemm needs its bias written into the
// output first and the product added with beta 1; oneDNN's matmul primitive adds the bias in its epilogue, which
// saves a write and a read of the output: GroupMamba-T's FFN products, 2 threads, 1.15-1.5x (M 3136 K 64 N 512:
// 1304 -> 929 us; M 784 K 128 N 1024: 1445 -> 1038 us; docs/performance.md, twelfth session).
// Primitives are cached per shape, strides and thread count (a primitive descriptor costs tens of
// microseconds): oneDNN (OpenMP runtime) fixes a primitive's work split for the threads in effect when it is
// created, so one is built per thread count, at one thread inside an active parallel region (data-parallel
// shards) and for small products (see gemm.cpp: waking the idle workers costs more than such a product).
// Scratchpads are the caller's (user mode), so one primitive may run on several threads at once.
#include "matmul_onednn.h"

#ifdef SSMKIT_HAVE_ONEDNN

#include <omp.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

#include "ssmkit/core/max_threads_scope.h"

namespace ssmkit::core::detail {

namespace {

using dnnl::memory;
using DT = memory::data_type;

constexpr int64_t kSmallMacs = 1 << 20;  // multiply-adds below which the product runs on the calling thread
constexpr size_t kMaxCached = 512;       // shapes kept (a long run with many distinct batch sizes starts over)

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

struct MatmulPrim {
  memory::desc src, wei, bias, dst;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};

// shape, transposes, leading dimensions, threads
using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, int>;

// The primitive of a product for the key's thread count, created once; null where oneDNN has only its reference kernel
// (much slower than the fallback) or none.
std::shared_ptr<MatmulPrim> prim_for(const Key& key) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<MatmulPrim>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() >= kMaxCached) cache.clear();
  const auto [M, N, K, ta, tb, lda, ldb, ldc, threads] = key;
  std::shared_ptr<MatmulPrim> p;
  try {
    const MaxThreadsScope create_for(threads);  // oneDNN sizes the primitive for these
    p = std::make_shared<MatmulPrim>();
    // op(A) (M,K): A stored (M,K) with row stride lda, or (K,M) transposed; op(B) (K,N) likewise.
    p->src = memory::desc({M, K}, DT::f32, ta ? memory::dims{1, lda} : memory::dims{lda, 1});
    p->wei = memory::desc({K, N}, DT::f32, tb ? memory::dims{1, ldb} : memory::dims{ldb, 1});
    p->bias = memory::desc({1, N}, DT::f32, memory::dims{N, 1});
    p->dst = memory::desc({M, N}, DT::f32, memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    p->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(p->src, p->wei, p->bias, p->dst), attr, cpu_engine());
    if (std::strncmp(p->pd.impl_info_str(), "ref", 3) == 0) p = nullptr;
    else p->prim = dnnl::matmul(p->pd);
  } catch (const dnnl::error&) {
    p = nullptr;
  }
  cache.emplace(key, p);
  return p;
}

}  // namespace

bool onednn_matmul_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                        const float* B, int64_t ldb, const float* bias, float* C, int64_t ldc) {
  const int threads = omp_in_parallel() || M * N * K < kSmallMacs ? 1 : omp_get_max_threads();
  const std::shared_ptr<MatmulPrim> p = prim_for(Key{M, N, K, ta, tb, lda, ldb, ldc, threads});
  if (!p) return false;
  // A primitive built for one thread runs on one when more are allowed; one built for more must not run inside
  // a parallel region (it is not: `threads` is 1 there).
  dnnl::stream st(cpu_engine());
  memory scratch(p->pd.scratchpad_desc(), cpu_engine());
  p->prim.execute(st, {{DNNL_ARG_SRC, memory(p->src, cpu_engine(), const_cast<float*>(A))},
                       {DNNL_ARG_WEIGHTS, memory(p->wei, cpu_engine(), const_cast<float*>(B))},
                       {DNNL_ARG_BIAS, memory(p->bias, cpu_engine(), const_cast<float*>(bias))},
                       {DNNL_ARG_DST, memory(p->dst, cpu_engine(), C)},
                       {DNNL_ARG_SCRATCHPAD, scratch}});
  st.wait();
  return true;
}

}  // namespace ssmkit::core::detail

#else

namespace ssmkit::core::detail {

bool onednn_matmul_bias(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
                        const float*, float*, int64_t) {
  return false;
}

}  // namespace ssmkit::core::detail

#endif
