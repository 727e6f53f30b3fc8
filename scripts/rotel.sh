# Sourced by the scripts that run the real OTLP collector (the OTLP e2e, the
# soak). `rotel_agent_installed` installs rotel from PyPI when it is missing
# or another version (it ships the rotel-agent binary) and prints the
# binary's path; it fails when there is none after installing.

# The collector's debug output is what the tests parse: pin the version.
rotel_version="0.0.1a15"

rotel_agent_path() {
    python3 - <<'PY' 2>/dev/null
import os, rotel
path = os.path.join(os.path.dirname(rotel.__file__), "rotel-agent")
print(path if os.access(path, os.X_OK) else "")
PY
}

rotel_agent_installed() {
    local agent
    agent="$(rotel_agent_path || true)"
    if [ -z "$agent" ] || [ "$(python3 -c 'import importlib.metadata as m; print(m.version("rotel"))' 2>/dev/null)" != "$rotel_version" ]; then
        echo "installing rotel==$rotel_version from PyPI" >&2
        python3 -m pip install -q "rotel==$rotel_version" >&2
        agent="$(rotel_agent_path || true)"
    fi
    [ -n "$agent" ] || { echo "rotel-agent not found after installing rotel" >&2; return 1; }
    printf '%s\n' "$agent"
}
