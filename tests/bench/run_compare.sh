#!/usr/bin/env bash
# ssmkit against PyTorch on the performance issue's workloads (W1..W5), one markdown table on stdout.
# Installs what is missing (as root: Debian's python3-torch, and libopenblas0 so that the libblas.so.3 torch
# links resolves to OpenBLAS rather than the reference BLAS), builds ssmkit-bench (Release,
# -DSSMKIT_BUILD_BENCH=ON) in build-bench or the directory given, then runs compare_torch.py.
# Usage: tests/bench/run_compare.sh [BUILD_DIR] [compare_torch.py options, e.g. --reps 5 --save out.json]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build-bench"
if [[ $# -gt 0 && "$1" != -* ]]; then BUILD="$(realpath -m "$1")"; shift; fi
PY=/usr/bin/python3  # Debian's python3 (the one python3-torch installs into), not a pyenv/venv one

missing=()
dpkg -s python3-torch >/dev/null 2>&1 || missing+=(python3-torch)
dpkg -s libopenblas0 >/dev/null 2>&1 || missing+=(libopenblas0)
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ "$(id -u)" -eq 0 ]]; then
    echo "run_compare.sh: installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "run_compare.sh: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and rerun" >&2
    exit 1
  fi
fi
echo "run_compare.sh: libblas.so.3 -> $(readlink -f /usr/lib/"$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"/libblas.so.3)" >&2

export CCACHE_BASEDIR="$ROOT"
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSSMKIT_BUILD_BENCH=ON -DSSMKIT_BUILD_TESTS=OFF \
        -DSSMKIT_BUILD_APPS=OFF >&2
elif ! grep -q '^SSMKIT_BUILD_BENCH:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  cmake -S "$ROOT" -B "$BUILD" -DSSMKIT_BUILD_BENCH=ON >&2
fi
if ! cmake --build "$BUILD" -j"$(nproc)" --target ssmkit-bench >&2; then
  [[ -x "$BUILD/bin/ssmkit-bench" ]] || exit 1
  echo "run_compare.sh: WARNING: the build failed; timing the existing $BUILD/bin/ssmkit-bench" >&2
fi

exec "$PY" "$ROOT/tests/bench/compare_torch.py" --bench "$BUILD/bin/ssmkit-bench" "$@"
