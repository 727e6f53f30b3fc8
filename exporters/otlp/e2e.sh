#!/usr/bin/env bash
# End to end against a real OTLP collector: installs rotel from PyPI (it
# ships the rotel-agent binary) and nginx + openssl (a TLS proxy for the TLS
# checks) when missing, builds the driver example, and runs e2e.py: exact
# metric values and violation log records over gRPC and HTTP/protobuf, over
# TLS with a test CA, and complete cumulative figures after the collector is
# stopped and restarted mid-run. Fails, never skips, when anything is missing
# or cannot start.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# The collector's debug output is what the test parses: pin the version.
rotel_version="0.0.1a15"
rotel_agent() {
    python3 - <<'PY' 2>/dev/null
import os, rotel
path = os.path.join(os.path.dirname(rotel.__file__), "rotel-agent")
print(path if os.access(path, os.X_OK) else "")
PY
}
agent="$(rotel_agent || true)"
if [ -z "$agent" ] || [ "$(python3 -c 'import importlib.metadata as m; print(m.version("rotel"))')" != "$rotel_version" ]; then
    echo "installing rotel==$rotel_version from PyPI"
    python3 -m pip install -q "rotel==$rotel_version"
    agent="$(rotel_agent)"
fi
[ -n "$agent" ] || { echo "rotel-agent not found after installing rotel" >&2; exit 1; }

. "$root/scripts/debian-packages.sh"
need_packages nginx=nginx-light openssl=openssl
# The nginx package may start its own daemon on port 80; the test runs its
# own instance on free loopback ports.

. "$root/scripts/cargo-example.sh"
driver="$(build_example overrun-otlp otlp_driver)"
service="$(build_example overrun-examples-exporters service)"
"$agent" --version
python3 "$here/e2e.py" "$driver" "$agent" "$service"
