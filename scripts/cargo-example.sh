# Sourced by the end-to-end scripts. `build_example PACKAGE EXAMPLE [FEATURES]`
# builds an example and prints the path of its binary as cargo reports it, so the
# scripts work wherever the target directory is (CARGO_TARGET_DIR, a CI
# cache, a workspace setting). Compiler errors still reach the terminal.
build_example() {
    cargo build -q -p "$1" --example "$2" ${3:+--features "$3"} --message-format=json-render-diagnostics |
        python3 -c '
import json, sys
name = sys.argv[1]
paths = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m.get("executable")
         and m["target"]["name"] == name and "example" in m["target"]["kind"]]
if not paths:
    sys.exit(f"cargo built no executable for example {name}")
print(paths[-1])
' "$2"
}

# `wait_for_server NAME URL LOG [TRIES]`: polls URL until it answers; if it
# never does, prints the server's log and which one failed, and returns 1.
wait_for_server() {
    local name="$1" url="$2" log="$3" tries="${4:-100}"
    for _ in $(seq "$tries"); do
        curl -sf "$url" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "$name did not come up at $url; its log ($log):" >&2
    cat "$log" >&2 || true
    echo "FAILED: $name did not start" >&2
    return 1
}
