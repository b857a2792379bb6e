"""The OpenBLAS kernels to force for PyTorch workers on this CPU, as ssmkit's core does for itself
(core/src/ops/blas_kernels.cpp): Debian 12's OpenBLAS 0.3.21 does not know newer CPUs (Intel Emerald Rapids,
family 6 model 207) and falls back to its SSE3 "Prescott" kernels, ~5x slower GEMMs, which would make PyTorch
a strawman. Benchmark-only."""
import os


def best_coretype():
    """'Cooperlake' / 'SkylakeX' on AVX-512 CPUs, 'Haswell' on AVX2 + FMA ones, else None (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    if all(f in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq")):
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


def with_openblas_core(env):
    """env with OPENBLAS_CORETYPE set to best_coretype() unless the caller set it already."""
    env = dict(env)
    core = best_coretype()
    if core and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = core
    return env
