#!/usr/bin/env bash
# Runs every ssmkit app on bundled sample inputs:
#  1. ssmkit-golden: the core operators against the reference outputs and gradients (../shared/golden/core)
#  2. ssm-selective-copy: 300 training steps of a small 2-layer Mamba on the selective-copying task (about
#     15 s on 2 cores): it shows the pipeline (progress, evaluation, curve, model file), not convergence,
#     which takes about 2000 steps of the full configuration (docs/selective_copying.md: 99.95 %)
# Expects a build in ./build (see README quick start); BUILD_DIR overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BUILD_DIR:-build}/bin"
golden="${SSMKIT_GOLDEN_DIR:-$PWD/../shared/golden}"
echo "== ssmkit-golden: the core operators against the reference outputs and gradients"
"$bin/ssmkit-golden" "$golden/core"
echo "== ssm-selective-copy: 300 training steps of a 2-layer Mamba (context 32, 4 tokens to copy)"
out="${TMPDIR:-/tmp}/ssmkit-demo"
mkdir -p "$out"
"$bin/ssm-selective-copy" train --steps 300 --eval-every 100 --context 32 --memorize 4 --d-model 32 \
  --curve "$out/selective_copy_curve.csv" --out "$out/selective_copy.safetensors"
echo "learning curve: $out/selective_copy_curve.csv"
