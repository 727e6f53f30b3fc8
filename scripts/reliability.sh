#!/usr/bin/env bash
# Measures what RELIABILITY.md reports and writes it: the endpoint under
# attack, the storms, the fuzzers and the soak, each figure with what was
# tried and pass or fail, as the measuring programs printed them
# (`RELIABILITY|area|what|figure|verdict` lines).
#
#   scripts/reliability.sh            the full run (soak 10 min, storm bench
#                                     in release, fuzzers 60 s each):
#                                     rewrites RELIABILITY.md
#   scripts/reliability.sh --quick    the test command's run (soak 60 s,
#                                     storm in a debug build judging counts
#                                     and bounds only, fuzzers 30 s each):
#                                     writes target/reliability/RELIABILITY.md
#
# `--out PATH` writes elsewhere. Every part runs even when one fails; the
# script fails if any did.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

quick=0
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --out) out="$2"; shift ;;
        *) echo "usage: reliability.sh [--quick] [--out PATH]" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    soak=60; fuzz=30; storm=(cargo test -p overrun-benches --bench storm)
    out="${out:-target/reliability/RELIABILITY.md}"
else
    soak=600; fuzz=60; storm=(cargo bench -p overrun-benches --bench storm)
    out="${out:-RELIABILITY.md}"
fi
mkdir -p "$(dirname "$out")"
rows="$(mktemp)"
logs="$(mktemp -d)"
trap 'rm -rf "$rows" "$logs"' EXIT
failed=()

# part NAME AREA COMMAND...: runs COMMAND, keeps its RELIABILITY lines; a
# failure is a FAIL row of its own, so the table never hides one.
part() {
    local name="$1" area="$2"
    shift 2
    printf '\n==> %s\n' "$name"
    if "$@" >"$logs/$name.log" 2>&1; then
        status=0
    else
        status=$?
    fi
    grep -h '^RELIABILITY|' "$logs/$name.log" | tee -a "$rows" || true
    local found failing
    found="$(grep -c '^RELIABILITY|' "$logs/$name.log" || true)"
    failing="$(grep -c '^RELIABILITY|.*|FAIL$' "$logs/$name.log" || true)"
    if [ "$status" -ne 0 ] || [ "$found" -eq 0 ] || [ "$failing" -ne 0 ]; then
        tail -40 "$logs/$name.log"
        if [ "$status" -ne 0 ]; then
            echo "RELIABILITY|$area|$name|exited with status $status (its log is printed by the run)|FAIL" | tee -a "$rows"
        elif [ "$found" -eq 0 ]; then
            echo "RELIABILITY|$area|$name|printed no figure|FAIL" | tee -a "$rows"
        fi
        failed+=("$name")
    fi
}

part "endpoint under attack" endpoint \
    cargo test -p overrun-prometheus --test hostile -- --nocapture
part "storm" storm "${storm[@]}"
part "maximum number of sites" storm cargo test -p overrun --test max_sites
part "fuzzing" fuzz bash scripts/fuzz.sh "$fuzz"
part "soak" soak bash scripts/soak.sh "$soak"

python3 - "$rows" "$out" "$quick" <<'PY'
import datetime, os, platform, subprocess, sys
rows, out, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
titles = {
    "endpoint": "The /metrics endpoint under attack",
    "storm": "Storms",
    "fuzz": "Fuzzing (cargo-fuzz, libFuzzer)",
    "soak": "Soak: steady load, collector killed every 20 s, Prometheus scraping",
}
seen = []
by_area = {}
for line in open(rows):
    # The figure may hold a `|`: the verdict is the last field.
    head, _, verdict = line.rstrip("\n").rpartition("|")
    parts = head.split("|", 3)
    if len(parts) != 4:
        continue
    _, area, what, figure = parts
    figure = figure.replace("|", "\\|")
    if area not in by_area:
        seen.append(area)
    by_area.setdefault(area, []).append((what, figure, verdict))
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
cpus = os.cpu_count()
lines = [
    "# Reliability",
    "",
    "What overrun was put through, and what it did. Written by `scripts/reliability.sh`"
    + (" --quick" if quick else "") + " from the figures its programs printed; not edited by hand.",
    "Rerun it to check them: the full run takes about 25 minutes; `--quick` (in the test command) about 8.",
    "",
    f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
    f"{cpus} CPUs, {rustc}.",
    "",
]
for area in ["endpoint", "storm", "fuzz", "soak"] + [a for a in seen if a not in titles]:
    if area not in by_area:
        continue
    lines += [f"## {titles.get(area, area)}", "", "| what was tried | figure | result |", "| --- | --- | --- |"]
    for what, figure, verdict in by_area[area]:
        lines.append(f"| {what} | {figure} | {verdict} |")
    lines.append("")
open(out, "w").write("\n".join(lines))
print(f"\nwrote {out}")
PY

if [ "${#failed[@]}" -gt 0 ]; then
    echo "reliability: failed: ${failed[*]}"
    exit 1
fi
echo "reliability: every part passed"
