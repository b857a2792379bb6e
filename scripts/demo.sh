#!/usr/bin/env bash
# Runs every ssmkit app on bundled sample inputs. Today: the golden check of the core operators.
# Expects a build in ./build (see README quick start); BUILD_DIR overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BUILD_DIR:-build}/bin"
golden="${SSMKIT_GOLDEN_DIR:-$PWD/../shared/golden}"
echo "== ssmkit-golden: the core operators against the reference outputs and gradients"
"$bin/ssmkit-golden" "$golden/core"
