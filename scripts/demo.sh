#!/usr/bin/env bash
# Runs the apps on bundled sample inputs (samples/) with the shipped checkpoints (models/):
#  1. ssm-forecast: the next 96 hours of the 7 ETTh1 variables after samples/timeseries/ETTh1_last480.csv
#     (rows the benchmark never uses) with models/chimera_etth1_96.safetensors -> forecast CSV + PNG
#  2. ssm-classify: the 10 Fashion-MNIST sample images with models/groupmamba_micro_fashion.safetensors
#  3. ssmkit-golden: the core operators against the reference outputs and gradients (../shared/golden/core)
#  4. ssm-selective-copy: 300 training steps of a small Mamba (about 15 s; the pipeline, not convergence)
# Expects a build in ./build (see README quick start); BUILD_DIR overrides. Outputs go to $TMPDIR/ssmkit-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BUILD_DIR:-build}/bin"
golden="${SSMKIT_GOLDEN_DIR:-$PWD/../shared/golden}"
out="${TMPDIR:-/tmp}/ssmkit-demo"
mkdir -p "$out"

echo "== ssm-forecast: 96 hours after the ETTh1 sample (Chimera, models/chimera_etth1_96.safetensors)"
"$bin/ssm-forecast" predict --model models/chimera_etth1_96.safetensors --csv samples/timeseries/ETTh1_last480.csv \
  --out "$out/forecast.csv" --plot "$out/forecast.png"
head -4 "$out/forecast.csv"
echo "forecast: $out/forecast.csv, plot: $out/forecast.png"

echo "== ssm-classify: Fashion-MNIST samples (GroupMamba-micro, models/groupmamba_micro_fashion.safetensors)"
"$bin/ssm-classify" predict --weights models/groupmamba_micro_fashion.safetensors --topk 2 samples/vision

echo "== ssmkit-golden: the core operators against the reference outputs and gradients"
"$bin/ssmkit-golden" "$golden/core"

echo "== ssm-selective-copy: 300 training steps of a 2-layer Mamba (context 32, 4 tokens to copy)"
"$bin/ssm-selective-copy" train --steps 300 --eval-every 100 --context 32 --memorize 4 --d-model 32 \
  --curve "$out/selective_copy_curve.csv" --out "$out/selective_copy.safetensors"
echo "learning curve: $out/selective_copy_curve.csv"
