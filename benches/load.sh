#!/usr/bin/env bash
# The load driver beside oha, in one run, against the same service (the
# service example, release build), on this machine (issue "Load tests to
# the breaking point"):
#
# 1. the driver's own ceiling against a closure that does nothing
#    (`cargo bench --bench load_driver`);
# 2. the highest rate each achieves over HTTP with 64 connections:
#    `oha -c 64` and `overrun load --concurrency 64..64`;
# 3. p50 and p99 at fixed rates below saturation, both corrected for
#    coordinated omission (`oha -q R --latency-correction`,
#    `overrun load --rate R..R`), FIXED_ROUNDS times each (5 unless set),
#    the two tools taking turns (which goes first alternates by round);
#    compared by the median of the rounds, as
#    one 5 s run's p99 moves by a fifth on this 2-core machine (the driver
#    and the service share it): 1 000 req/s on `/users/1`, 300 req/s on
#    the service's CPU-bound handler (`/work?us=1000`), and one round at a
#    third of oha's highest rate, where oha's own pacing sends a
#    millisecond's requests at once (its timer ticks every millisecond);
# 4. the service's breaking point with OVERRUN=off and on, back to back,
#    ROUNDS times (2 unless set): single searches here move by a quarter.
#
# Prints `LOAD|…` lines and a summary; `benches/results/` keeps a run.
# Installs oha if missing (`--locked`: without it its newest dependencies
# want a newer rustc than this machine has).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
STEP="${STEP:-5s}"
PORT="${PORT:-3111}"

command -v oha >/dev/null || cargo install oha --locked
cargo build --release -p overrun --features cli --bin overrun
cargo build --release -p overrun-examples-exporters --example service
BIN=target/release/overrun
SERVICE=target/release/examples/service
OUT="$(mktemp -d)"
trap 'kill "${PID:-0}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

start() { # $1: the OVERRUN variable ("" for on)
    OVERRUN="$1" "$SERVICE" --listen "127.0.0.1:$PORT" >"$OUT/service.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the service did not start:" >&2
    cat "$OUT/service.log" >&2
    exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
# $1: the path on the service; the rest, the tool's flags.
oha_json() { local path="$1"; shift; oha --no-tui --output-format json "$@" "http://127.0.0.1:$PORT$path"; }
# `overrun load` exits 0/1/3 by what it found; only 2 is a failure here.
overrun_load() { local path="$1"; shift; "$BIN" load "http://127.0.0.1:$PORT$path" "$@" || [ $? -ne 2 ]; }

echo "== 1. the driver against a no-op closure"
cargo bench -p overrun-benches --bench load_driver | tee "$OUT/driver.txt" | grep -v '^LOAD'

start ""
echo "== 2. highest rate, 64 connections, $STEP"
oha_json /users/1 -z "$STEP" -c 64 >"$OUT/oha_max.json"
overrun_load /users/1 --concurrency 64..64 --step "$STEP" --p99 10s --error-rate 100% \
    --json "$OUT/ov_max.json" >/dev/null 2>&1
RATE="$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['summary']['requestsPerSec'] / 3))" "$OUT/oha_max.json")"
fixed() { # $1 name, $2 path, $3 rate, $4 rounds
    echo "== 3. $1: a fixed rate of $3 req/s, $STEP, $4 rounds"
    for round in $(seq "$4"); do
        local oha_args=("$2" -z "$STEP" -c 64 -q "$3" --latency-correction)
        local ov_args=("$2" --rate "$3..$3" --step "$STEP" --p99 10s --json "$OUT/fixed_ov_${1}_$round.json")
        if [ $((round % 2)) -eq 1 ]; then
            oha_json "${oha_args[@]}" >"$OUT/fixed_oha_${1}_$round.json"
            overrun_load "${ov_args[@]}" >/dev/null 2>&1
        else
            overrun_load "${ov_args[@]}" >/dev/null 2>&1
            oha_json "${oha_args[@]}" >"$OUT/fixed_oha_${1}_$round.json"
        fi
    done
}
FIXED_ROUNDS="${FIXED_ROUNDS:-5}"
fixed users_1000 /users/1 1000 "$FIXED_ROUNDS"
fixed work_1ms '/work?us=1000' 300 "$FIXED_ROUNDS"
fixed users_third /users/1 "$RATE" 1
stop

ROUNDS="${ROUNDS:-2}"
echo "== 4. the breaking point (p99 at most 10ms), OVERRUN=off then on, $ROUNDS rounds"
HI="$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['summary']['requestsPerSec'] * 2))" "$OUT/oha_max.json")"
for round in $(seq "$ROUNDS"); do
    for mode in off on; do
        start "$([ "$mode" = off ] && echo off || echo '')"
        overrun_load /users/1 --rate "250..$HI" --step 2s --p99 10ms --json "$OUT/bp_${mode}_$round.json" \
            >"$OUT/bp_${mode}_$round.txt" 2>/dev/null
        stop
        echo "-- round $round, OVERRUN=$mode"
        cat "$OUT/bp_${mode}_$round.txt"
    done
done

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
j = lambda name: json.load(open(f"{out}/{name}"))
driver = [l.strip() for l in open(f"{out}/driver.txt") if l.startswith("LOAD_DRIVER")]
for l in driver:
    print(l)
oha_max, ov_max = j("oha_max.json"), j("ov_max.json")
oha_rps, ov_rps = oha_max["summary"]["requestsPerSec"], ov_max["steps"][0]["achieved"]
print(f"LOAD|max_rate|oha|{oha_rps:.0f}|overrun|{ov_rps:.0f}|ratio|{ov_rps / oha_rps:.3f}")
print(f"  highest rate, 64 connections: oha {oha_rps:.0f}/s, overrun {ov_rps:.0f}/s "
      f"({ov_rps / oha_rps * 100:.1f}% of oha; goal ≥ 80%)")
import glob, statistics
for name in ("users_1000", "work_1ms", "users_third"):
    rounds = sorted(int(p.rsplit("_", 1)[1][:-5]) for p in glob.glob(f"{out}/fixed_oha_{name}_*.json"))
    oha_r = [j(f"fixed_oha_{name}_{r}.json") for r in rounds]
    ov_r = [j(f"fixed_ov_{name}_{r}.json")["steps"][0] for r in rounds]
    rate = ov_r[0]["offered"]
    for q in ("p50", "p99"):
        o = [x["latencyPercentiles"][q] * 1e9 for x in oha_r]
        v = [x[f"{q}_ns"] for x in ov_r]
        for r, a, b in zip(rounds, o, v):
            print(f"LOAD|fixed_rate|{name}|{rate:.0f}|{q}|round|{r}|oha|{a:.0f}|overrun|{b}|ratio|{b / a:.3f}")
        mo, mv = statistics.median(o), statistics.median(v)
        print(f"LOAD|fixed_rate|{name}|{rate:.0f}|{q}|median|oha|{mo:.0f}|overrun|{mv:.0f}|ratio|{mv / mo:.3f}")
        runs = f"median of {len(rounds)}" if len(rounds) > 1 else "one round"
        print(f"  {name}, {q} at {rate:.0f} req/s, {runs}: oha {mo / 1e6:.3f} ms, "
              f"overrun {mv / 1e6:.3f} ms ({(mv / mo - 1) * 100:+.1f}%; goal within 10%)")
rounds = sorted(int(p.rsplit("_", 1)[1][:-5]) for p in glob.glob(f"{out}/bp_off_*.json"))
ratios = []
for r in rounds:
    b_off = j(f"bp_off_{r}.json")["breaking_point"] or 0
    b_on = j(f"bp_on_{r}.json")["breaking_point"] or 0
    ratio = b_on / b_off if b_off else 0
    ratios.append(ratio)
    print(f"LOAD|breaking_point|round|{r}|off|{b_off:.0f}|on|{b_on:.0f}|ratio|{ratio:.3f}")
    print(f"  breaking point (p99 ≤ 10 ms), round {r}: OVERRUN=off {b_off:.0f} req/s, "
          f"on {b_on:.0f} req/s (on/off {ratio:.3f})")
print(f"LOAD|breaking_point|median_ratio|{statistics.median(ratios):.3f}")
PY
