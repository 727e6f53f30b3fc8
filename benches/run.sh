#!/usr/bin/env bash
# Runs every bench (release, LTO) and prints the per-call figures and ratios.
# Takes a few minutes; keep the machine otherwise idle.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
cargo bench -p overrun-benches 2>&1 | tee target/bench.txt
python3 benches/summary.py target/bench.txt
