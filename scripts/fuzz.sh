#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for a bounded time each:
# `scripts/fuzz.sh [SECONDS]` (default 30, or FUZZ_SECONDS). Installs
# cargo-fuzz from crates.io when missing; uses the nightly toolchain that
# the test command installs for Miri. Fails on a panic (a failed assertion
# included), a hang (an input running over 10 s) or an input needing over
# 2 GiB; the input that did it is printed, to become a unit test.
#
# The checked-in seed corpora (fuzz/corpus/<target>) are read, never written:
# what a run discovers goes to a temporary directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-${FUZZ_SECONDS:-30}}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cd "$root/fuzz"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

# No sanitizer: the targets drive safe-Rust parsers (the unsafe code is
# under Miri), and without one they build and run several times faster.
# Debug assertions stay on, so an arithmetic overflow is a failure too.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
# Every target file is fuzzed: a list that came back short fails the run.
targets="$(cargo +nightly fuzz list)"
expected="$(ls fuzz_targets | sed 's/\.rs$//' | sort | tr '\n' ' ')"
if [ "$(printf '%s\n' $targets | sort | tr '\n' ' ')" != "$expected" ]; then
    echo "cargo fuzz list gave '$targets'; fuzz_targets/ has $expected" >&2
    exit 1
fi
for target in $targets; do
    mkdir -p "$work/$target/new" "$work/$target/artifacts"
    printf '\n==> fuzz %s for %s s\n' "$target" "$seconds"
    if cargo +nightly fuzz run "${flags[@]}" "$target" "$work/$target/new" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/$target/artifacts/" -print_final_stats=1 \
        >"$work/$target/log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target/log" | tail -1)"
        rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$target/log" | tail -1)"
        found="$(ls "$work/$target/new" | wc -l)"
        seeds="$(ls "corpus/$target" | wc -l)"
        echo "ok   $target: $runs runs, $found new inputs beyond the $seeds seeds, peak $rss MB"
        echo "RELIABILITY|fuzz|$target for $seconds s (from $seeds seeds)|$runs inputs run, $found new ones found, peak resident $rss MB; no panic, hang or out-of-memory|pass"
    else
        tail -40 "$work/$target/log"
        for a in "$work/$target/artifacts"/*; do
            [ -f "$a" ] || continue
            echo "FAIL $target: input $(basename "$a"), base64: $(base64 -w0 "$a")"
        done
        echo "RELIABILITY|fuzz|$target for $seconds s|a failing input (printed above)|FAIL"
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]}"
    exit 1
fi
echo "fuzzing: every target ran $seconds s without a failure"
