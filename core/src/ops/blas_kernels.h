// OpenBLAS kernel selection (private to core's GEMM). OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its
// kernels from a table of CPU models it knows when the library loads; a CPU newer than that table (Debian 12's
// 0.3.21 on Intel Emerald Rapids, family 6 model 207) falls back to the "Prescott" SSE3 kernels, ~5x slower
// than its AVX-512 ones on the same machine. select_blas_kernels() corrects that once per process.
#pragma once

#include <string>

namespace ssmkit::core::detail {

// Once per process, before the first BLAS call: when the BLAS is an OpenBLAS with DYNAMIC_ARCH, the user has
// not set OPENBLAS_CORETYPE, and the kernels OpenBLAS chose use a narrower vector ISA than this CPU has
// (e.g. Prescott on an AVX-512 CPU), re-runs OpenBLAS's kernel selection with the matching core forced:
// Cooperlake (AVX-512 with BF16) or SkylakeX (AVX-512), Haswell (AVX2 + FMA). Otherwise leaves OpenBLAS as
// it is. Thread-safe among ssmkit's callers; a no-op without CBLAS. It runs at load time (a static initializer
// of this file, before main in a program linked with ssmkit): a host that dlopen()s ssmkit while its own threads
// are inside OpenBLAS should set OPENBLAS_CORETYPE itself, which turns the switch off.
void select_blas_kernels();

// What select_blas_kernels() did, for gemm_backend(): "" when nothing, else e.g.
// "OpenBLAS chose Prescott for this AVX-512 CPU; switched to Cooperlake".
const std::string& blas_kernel_note();

}  // namespace ssmkit::core::detail
