#!/usr/bin/env bash
# The soak (scripts/soak.py): `scripts/soak.sh [SECONDS] [ROWS]` runs the
# service example under steady load for SECONDS (default 600; the test
# command runs 60) with its OTLP collector killed and restarted every 20 s
# and a real Prometheus server scraping it, prints its figures and appends
# them to ROWS (default: a temporary file). Installs prometheus (Debian) and
# rotel (PyPI) when missing. Fails when a check fails or a server cannot
# start.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${1:-600}"
rows="${2:-}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

. "$root/scripts/debian-packages.sh"
. "$root/scripts/cargo-example.sh"
. "$root/scripts/rotel.sh"
need_packages prometheus=prometheus
agent="$(rotel_agent_installed)"
service="$(build_example overrun-examples-exporters service)"

if [ -z "$rows" ]; then
    rows="$(mktemp)"
    trap 'rm -f "$rows"' EXIT
fi
python3 "$root/scripts/soak.py" "$service" "$agent" "$seconds" "$rows"
