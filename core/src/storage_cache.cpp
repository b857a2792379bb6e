// The cache of freed large tensor buffers and the malloc thresholds (storage_cache.h): blocks by size class in
// a multimap, and their insertion order in a map, so that a lookup takes the newest block of a class and
// eviction frees the oldest. One mutex; blocks of 32 MB and more are rare enough for it not to matter.
#include "ssmkit/core/storage_cache.h"

#include <algorithm>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <map>
#include <mutex>
#include <string>

#include "storage_blocks.h"

#if defined(__SANITIZE_ADDRESS__)
#define SSMKIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SSMKIT_ASAN 1
#endif
#endif

namespace ssmkit::core {

namespace {

size_t default_limit() {
#ifdef SSMKIT_ASAN
  return 0;
#else
  if (const char* env = std::getenv("SSMKIT_STORAGE_CACHE_MB")) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0') return static_cast<size_t>(mb) << 20;
  }
  return size_t(1) << 30;
#endif
}

// glibc raises its mmap threshold (initially 128 KB) to the size of each mapped block freed, up to 32 MB, and
// trims the heap top when more than twice that is free there. The threshold is fixed at 32 MB from the start,
// so that tensors under 32 MB come from the heap, and the trim threshold at the cache limit (at least 64 MB):
// a training step frees hundreds of MB at the heap top, which would otherwise be handed back and faulted in
// again every step. Once per process, before the first tensor, unless the cache is turned off.
bool tune_malloc() {
#if defined(__GLIBC__) && !defined(SSMKIT_ASAN)
  if (const size_t limit = default_limit(); limit > 0) {
    const size_t trim = std::clamp<size_t>(limit, 2 * detail::kCachedBlockMin, size_t(1) << 30);
    mallopt(M_MMAP_THRESHOLD, static_cast<int>(detail::kCachedBlockMin));
    mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim));
    return true;
  }
#endif
  return false;
}

class BlockCache {
 public:
  static BlockCache& instance() {
    static BlockCache* cache = new BlockCache;  // never destroyed: tensors may be freed during static destruction
    return *cache;
  }

  void* take(size_t size) {
    {
      std::lock_guard<std::mutex> lock(m_);
      auto hi = by_size_.upper_bound(size);
      if (hi != by_size_.begin() && std::prev(hi)->first == size) {
        auto it = std::prev(hi);
        void* p = it->second.block;
        by_age_.erase(it->second.seq);
        by_size_.erase(it);
        bytes_ -= size;
        ++hits_;
        return p;
      }
      ++misses_;
    }
    void* p = std::aligned_alloc(64, size);
    if (p == nullptr) {  // out of memory: give the cached blocks back and try once more
      release();
      p = std::aligned_alloc(64, size);
    }
    return p;
  }

  void give(void* p, size_t size) {
    {
      std::lock_guard<std::mutex> lock(m_);
      if (size <= limit_) {
        const uint64_t seq = next_seq_++;
        auto it = by_size_.emplace(size, Entry{p, seq});
        by_age_.emplace(seq, it);
        bytes_ += size;
        p = nullptr;
        evict_locked();
      }
    }
    std::free(p);  // null when kept
  }

  void release() {
    std::lock_guard<std::mutex> lock(m_);
    for (auto& [size, e] : by_size_) std::free(e.block);
    by_size_.clear();
    by_age_.clear();
    bytes_ = 0;
#if defined(__GLIBC__)
    malloc_trim(0);  // and the free heap memory the raised trim threshold keeps
#endif
  }

  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(m_);
    limit_ = bytes;
    evict_locked();
  }

  StorageCacheStats stats() {
    std::lock_guard<std::mutex> lock(m_);
    return {bytes_, by_size_.size(), limit_, hits_, misses_};
  }

 private:
  struct Entry {
    void* block;
    uint64_t seq;
  };
  using BySize = std::multimap<size_t, Entry>;

  BlockCache() : limit_(default_limit()) {}

  void evict_locked() {
    while (bytes_ > limit_ && !by_age_.empty()) {
      auto oldest = by_age_.begin();
      BySize::iterator it = oldest->second;
      std::free(it->second.block);
      bytes_ -= it->first;
      by_size_.erase(it);
      by_age_.erase(oldest);
    }
  }

  std::mutex m_;
  size_t limit_, bytes_ = 0;
  uint64_t next_seq_ = 0, hits_ = 0, misses_ = 0;
  BySize by_size_;
  std::map<uint64_t, BySize::iterator> by_age_;
};

}  // namespace

namespace detail {

size_t storage_block_size(size_t bytes) {
  const size_t padded = storage_padded_bytes(bytes);
  if (padded < kCachedBlockMin) return padded;
  const int top = 63 - __builtin_clzll(static_cast<unsigned long long>(padded));
  const size_t step = size_t(1) << (top - 3);
  return (padded + step - 1) / step * step;
}

void* storage_block_take(size_t size) {
  [[maybe_unused]] static const bool tuned = tune_malloc();
  if (size < kCachedBlockMin) return std::aligned_alloc(64, size);
  return BlockCache::instance().take(size);
}

void storage_block_give(void* p, size_t size) {
  if (size < kCachedBlockMin)
    std::free(p);
  else
    BlockCache::instance().give(p, size);
}

}  // namespace detail

StorageCacheStats storage_cache_stats() { return BlockCache::instance().stats(); }
void release_cached_storage() { BlockCache::instance().release(); }
void set_storage_cache_limit(size_t bytes) { BlockCache::instance().set_limit(bytes); }

}  // namespace ssmkit::core
