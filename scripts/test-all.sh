#!/usr/bin/env bash
# Every test of the workspace, as CI runs it. Installs what the tests need
# (the nightly toolchain's Miri component, cargo-fuzz, the Debian and PyPI
# packages of the end-to-end runs) when it is missing. Fails, never skips,
# when a step cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Disk: a run builds the workspace several ways (features on and off, Miri,
# the fuzz targets, the examples' end-to-end runs). Incremental caches and
# full debug info in every test binary are what fill a small disk (a CI run
# once failed with "No space left on device"); a CI run rebuilds from
# scratch anyway, and line tables keep the backtraces readable.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check
(cd fuzz && cargo fmt --check)

step "clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
step "clippy with the 'enabled' feature off"
cargo clippy -p overrun -p overrun-macros --all-targets --no-default-features -- -D warnings

step "docs (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "tests (unit, integration, UI, examples end to end, doctests)"
cargo test --workspace

step "sdk with every feature: tasks (tokio), overrun diff end to end on cli reports (cli)"
cargo test -p overrun --all-features

step "benches, one quick iteration each (smoke; figures come from benches/run.sh)"
cargo test -p overrun-benches --benches

step "Prometheus exporter with TLS (feature tls): unit tests and doctests"
cargo test -p overrun-prometheus --all-features

step "Prometheus exporter against a real Prometheus server (installs the prometheus package if missing)"
bash exporters/prometheus/e2e.sh

step "OTLP exporter against a real collector, rotel (installs rotel from PyPI, nginx for TLS, if missing)"
bash exporters/otlp/e2e.sh

step "tests with the 'enabled' feature off: macros emit functions unchanged"
cargo test -p overrun-macros --no-default-features
cargo test -p overrun --no-default-features --test feature_off

step "Miri: CountingAlloc, shards, histogram, the hold watch (unsafe code)"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src
fi
cargo +nightly miri setup
MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}" \
    cargo +nightly miri test -p overrun --lib --test miri

step "reliability, quick: the endpoint under attack, storms, fuzzing (30 s a target), a 60 s soak against rotel and Prometheus"
bash scripts/reliability.sh --quick
