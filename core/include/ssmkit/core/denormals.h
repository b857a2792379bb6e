// FlushDenormals: while one is alive, the calling thread's SSE/AVX arithmetic flushes denormal results to zero
// and reads denormal inputs as zero (the MXCSR's FTZ and DAZ bits); the previous mode comes back when it is
// destroyed. The recurrences hold one on each thread that runs them (selective scan, S4D, the 2-D scan, the
// vision scans): a state that decays with no input (zero padding, silence) passes through denormals, and on x86
// each multiply that reads or makes one takes a microcode assist (a selective scan over 8,192 steps of zero
// input ran 12x slower). Values below 1.2e-38 (float) or 2.2e-308 (double) become 0; PyTorch keeps them, so
// results can differ from it by less than that. No-op where the CPU is not x86.
#pragma once

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define SSMKIT_HAVE_MXCSR 1
#endif

namespace ssmkit::core {

class FlushDenormals {
 public:
#ifdef SSMKIT_HAVE_MXCSR
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
#else
  FlushDenormals() = default;
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
#ifdef SSMKIT_HAVE_MXCSR
  static constexpr unsigned kFtzDaz = 0x8040;  // flush-to-zero (bit 15) | denormals-are-zero (bit 6)
  unsigned saved_;
#endif
};

}  // namespace ssmkit::core
