#!/usr/bin/env bash
# Installs what ssmkit needs on Debian 12 (idempotent, non-interactive). Run as root or with sudo rights.
# Core: compiler, CMake, Eigen, FFTW, nlohmann-json, Highway, OpenBLAS (OpenMP build), oneDNN (sgemm), OpenMP (with g++); tests: GoogleTest, Google Benchmark.
# The domain libraries add their own packages here when they land (only the components they use).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
packages=(
  g++ make cmake pkg-config ccache git
  libeigen3-dev libfftw3-dev nlohmann-json3-dev libhwy-dev libopenblas-openmp-dev libdnnl-dev
  libcli11-dev libgtest-dev libbenchmark-dev libsleef-dev
  libopencv-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
