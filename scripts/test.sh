#!/usr/bin/env bash
# The whole test suite, as CI runs it: a Release build (-O2, assertions on, warnings as errors) with every
# unit test and the golden contract (on every SIMD path the CPU runs) under ctest, the benchmarks compiled
# (not run), the find_package(ssmkit) example against an installed copy, then the core tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer with Eigen as the GEMM backend (the OpenBLAS-less build).
# Golden and data paths: ../shared (or $SSMKIT_GOLDEN_DIR / $SSMKIT_DATA_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

echo "== release build and tests"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DSSMKIT_WERROR=ON -DSSMKIT_BUILD_BENCH=ON \
  -DSSMKIT_WITH_TIMESERIES=ON -DSSMKIT_WITH_VISION=ON > /dev/null
cmake --build build-test -j "$jobs"
ctest --test-dir build-test --output-on-failure -j "$jobs"

echo "== install and build the find_package example"
rm -rf build-test/install build-test/example
cmake --install build-test --prefix build-test/install > /dev/null
cmake -S docs/example -B build-test/example -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PWD/build-test/install" > /dev/null
cmake --build build-test/example -j "$jobs" > /dev/null
golden="${SSMKIT_GOLDEN_DIR:-$PWD/../shared/golden}"
build-test/example/scan_example "$golden/core/selective_scan_plain.safetensors"

echo "== core and time-series tests under ASan + UBSan (Eigen GEMM)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSSMKIT_SANITIZE=ON -DSSMKIT_WERROR=ON -DSSMKIT_BUILD_APPS=OFF \
  -DSSMKIT_WITH_BLAS=OFF -DSSMKIT_WITH_TIMESERIES=ON -DSSMKIT_WITH_VISION=OFF > /dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -L "core|timeseries"
echo "== all tests passed"
