// Private: SSMKIT_VISION_KERNEL marks a hot loop function for GCC function multi-versioning: compiled for
// x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, the best chosen at load time (ifunc), so the
// library keeps running on any x86-64 while its loops vectorize with the wide units where they exist.
// Elsewhere (other compilers or architectures) it expands to nothing.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SSMKIT_NO_CLONES)
#define SSMKIT_VISION_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SSMKIT_VISION_KERNEL
#endif
