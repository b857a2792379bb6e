// SSMKIT_SIMD_CLONES marks a hot plain-loop function for GCC function multi-versioning: compiled for
// x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, the best chosen at load time (ifunc), so a
// portable build keeps running on any x86-64 while the function's loops vectorize with the wide units where
// they exist. The clones may contract a*b+c into fused multiply-adds, so results can differ in the last bits
// between CPUs. Elsewhere (other compilers or architectures, or -DSSMKIT_NO_CLONES) it expands to nothing.
// Put it on functions without OpenMP regions inside (the outlined region would not inherit the target):
// a row-range kernel called from the parallel loop.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SSMKIT_NO_CLONES)
#define SSMKIT_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SSMKIT_SIMD_CLONES
#endif
