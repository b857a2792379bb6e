// Internal: the block sizes and the cache behind Storage::allocate (storage_cache.cpp).
#pragma once

#include <cstddef>

namespace ssmkit::core::detail {

// 32 MB: glibc's largest dynamic mmap threshold, so that every block this cache keeps is one malloc would have
// mapped and unmapped each time; smaller blocks stay with malloc's heap (see storage_cache.h).
constexpr size_t kCachedBlockMin = size_t(1) << 25;

// `bytes` rounded up to a multiple of 64, at least 64: what every block holds and zero-filling clears.
inline size_t storage_padded_bytes(size_t bytes) { return bytes <= 64 ? 64 : (bytes + 63) / 64 * 64; }

// The size actually allocated for `bytes`: a multiple of 64, and for blocks of kCachedBlockMin or more
// rounded up to a multiple of 1/8 of their highest power of two (the size class a cached block is reused in).
size_t storage_block_size(size_t bytes);

// A 64-byte aligned block of `size` (a storage_block_size value): a cached one when there is one, else a new
// one; nullptr when the system has no memory left even after the cache is emptied.
void* storage_block_take(size_t size);
// Gives a block from storage_block_take back: cached while there is room, else freed.
void storage_block_give(void* p, size_t size);

}  // namespace ssmkit::core::detail
