// OpenBLAS kernel selection: see blas_kernels.h. OpenBLAS's DYNAMIC_ARCH entry points used here,
// gotoblas_dynamic_quit() (forget the chosen kernel table) and gotoblas_dynamic_init() (choose again, reading
// OPENBLAS_CORETYPE first), are exported by the library but not declared in cblas.h; they are declared weak so
// that a BLAS without them (a single-target OpenBLAS build) links and is left alone.
#include "blas_kernels.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <strings.h>

#ifdef SSMKIT_HAVE_CBLAS
#include <cblas.h>

extern "C" {
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
}
#endif

namespace ssmkit::core::detail {

namespace {

std::string& note_storage() {
  static std::string note;
  return note;
}

#ifdef SSMKIT_HAVE_CBLAS
// Vector ISA levels, ordered: what the CPU runs and what a kernel table of OpenBLAS uses.
enum class Isa { kOlder = 0, kAvx2 = 1, kAvx512 = 2 };

Isa cpu_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kOlder;
}

// OpenBLAS's x86-64 core names (openblas_get_corename) by the widest ISA their kernels use.
Isa core_isa(const char* name) {
  for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"})
    if (strcasecmp(name, n) == 0) return Isa::kAvx512;
  for (const char* n : {"haswell", "zen"})
    if (strcasecmp(name, n) == 0) return Isa::kAvx2;
  return Isa::kOlder;
}

const char* core_for(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  if (isa == Isa::kAvx512) return __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
#endif
  return isa == Isa::kAvx2 ? "Haswell" : nullptr;
}

const char* isa_name(Isa isa) { return isa == Isa::kAvx512 ? "AVX-512" : isa == Isa::kAvx2 ? "AVX2" : "older"; }

void select_once() {
  if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) return;   // not a DYNAMIC_ARCH OpenBLAS
  if (std::strstr(openblas_get_config(), "DYNAMIC_ARCH") == nullptr) return;
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;       // the user's choice
  const std::string chosen = openblas_get_corename();
  const Isa cpu = cpu_isa();
  if (core_isa(chosen.c_str()) >= cpu) return;
  const char* want = core_for(cpu);
  if (want == nullptr) return;
  setenv("OPENBLAS_CORETYPE", want, 0);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
  note_storage() = "OpenBLAS chose " + chosen + " for this " + isa_name(cpu) + " CPU; switched to " +
                   openblas_get_corename();
}
#endif

// Before main (no other thread can be inside OpenBLAS yet) whenever the GEMM code is linked in.
[[maybe_unused]] const bool kSelectedAtLoad = (select_blas_kernels(), true);

}  // namespace

void select_blas_kernels() {
#ifdef SSMKIT_HAVE_CBLAS
  static std::once_flag once;
  std::call_once(once, select_once);
#endif
}

const std::string& blas_kernel_note() {
  select_blas_kernels();
  return note_storage();
}

}  // namespace ssmkit::core::detail
