// Large tensor buffers are reused instead of being mapped afresh: without this, a loop that allocates the
// same large tensors each iteration gets fresh pages that fault in (and are zeroed by the kernel) on first
// touch, every iteration (W4's 64 MB output: ~16k page faults per call; a selective-scan training step with
// 4 MB gradients: ~1000). Two parts, both on by default:
// - blocks of 32 MB and more (those malloc always maps) are kept after they are freed and reused by size
//   class (sizes rounded up by at most 1/8); the oldest are freed once the cache holds more than its limit;
// - on glibc, at the first allocation, malloc's mmap threshold is fixed at 32 MB (where its own dynamic
//   adjustment ends up after freeing large blocks), so that smaller tensors and scratch come from the heap
//   from the start, and its trim threshold at the cache limit (at most 1 GiB), so that the memory a step frees
//   at the heap top is kept for the next step instead of being handed back and faulted in again.
// SSMKIT_STORAGE_CACHE_MB in the environment sets the cache limit in megabytes (default 1024); 0 turns both
// parts off. Builds with AddressSanitizer keep no blocks, so use-after-free stays visible.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ssmkit::core {

struct StorageCacheStats {
  size_t cached_bytes = 0;   // held for reuse now
  size_t cached_blocks = 0;
  size_t limit_bytes = 0;    // 0: caching off
  uint64_t hits = 0;         // allocations of 32 MB and more served from the cache
  uint64_t misses = 0;       // allocations of 32 MB and more that went to the system
};

StorageCacheStats storage_cache_stats();
// Frees every cached block now, and on glibc hands free heap memory back (malloc_trim); memory in use by
// tensors is not affected.
void release_cached_storage();
// The most the cache may hold, in bytes; 0 turns caching off (and frees what is held). The default is 1 GiB,
// or SSMKIT_STORAGE_CACHE_MB (megabytes, 0 = off) from the environment at the first allocation. The malloc
// thresholds stay as the first allocation set them.
void set_storage_cache_limit(size_t bytes);

}  // namespace ssmkit::core
