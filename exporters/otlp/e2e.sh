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

. "$root/scripts/rotel.sh"
agent="$(rotel_agent_installed)"

. "$root/scripts/debian-packages.sh"
need_packages nginx=nginx-light openssl=openssl
# The nginx package may start its own daemon on port 80; the test runs its
# own instance on free loopback ports.

. "$root/scripts/cargo-example.sh"
driver="$(build_example overrun-otlp otlp_driver)"
service="$(build_example overrun-examples-exporters service)"
"$agent" --version
python3 "$here/e2e.py" "$driver" "$agent" "$service"
