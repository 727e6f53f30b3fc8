#!/usr/bin/env python3
"""Compile time of `#[measure]`: three crates of 500 functions each —
plain, with `#[overrun::measure]`, with `tracing`'s `#[instrument]` — built
in debug once for their dependencies, then timed rebuilding only the crate
itself (best of 3). Prints seconds in all and per function, and the ratios.

    python3 benches/compile_time.py [--functions 500] [--release]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ATTRS = {
    "plain": "",
    "measure": "#[overrun::measure(budget = \"1ms\")]",
    "instrument": "#[tracing::instrument(skip_all)]",
}


def crate(dir_, kind, n):
    os.makedirs(os.path.join(dir_, "src"), exist_ok=True)
    deps = ""
    if kind == "measure":
        deps = f'overrun = {{ path = "{ROOT}/sdk" }}'
    elif kind == "instrument":
        deps = 'tracing = { version = "0.1", features = ["attributes"] }'
    with open(os.path.join(dir_, "Cargo.toml"), "w") as f:
        f.write(f"""[package]
name = "ct-{kind}"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
{deps}
""")
    body = []
    for i in range(n):
        body.append(f"""{ATTRS[kind]}
pub fn f{i}(x: u64, y: &str) -> Result<u64, String> {{
    if y.is_empty() {{
        return Err(format!("empty at {i}"));
    }}
    let v = x.wrapping_mul({i + 3}) ^ y.len() as u64;
    Ok(v)
}}
""")
    with open(os.path.join(dir_, "src", "lib.rs"), "w") as f:
        f.write("".join(body))


def build(dir_, target, release):
    cmd = ["cargo", "build", "-q"] + (["--release"] if release else [])
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    subprocess.run(cmd, cwd=dir_, check=True, env=env)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--functions", type=int, default=500)
    p.add_argument("--release", action="store_true")
    p.add_argument("--only", choices=list(ATTRS), action="append",
                   help="time only these crates (repeatable)")
    p.add_argument("--target-dir", help="reuse this target directory")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="overrun-compile-time-")
    target = a.target_dir or os.path.join(work, "target")
    results = {}
    try:
        for kind in a.only or ATTRS:
            d = os.path.join(work, kind)
            crate(d, kind, a.functions)
            build(d, target, a.release)  # dependencies, once
            best = None
            for _ in range(3):
                os.utime(os.path.join(d, "src", "lib.rs"))
                start = time.monotonic()
                build(d, target, a.release)
                took = time.monotonic() - start
                best = took if best is None else min(best, took)
            results[kind] = best
        profile = "release" if a.release else "debug"
        print(f"compile time of {a.functions} functions, {profile} (best of 3, the crate alone):")
        for kind, t in results.items():
            print(f"COMPILE|{profile}|{kind}|{t:.2f} s|{t / a.functions * 1000:.2f} ms per function")
        if len(results) == len(ATTRS):
            m, i = results["measure"], results["instrument"]
            print(f"#[measure] / #[instrument]: {m / i:.2f}; #[measure] - plain: "
                  f"{(m - results['plain']) / a.functions * 1000:.2f} ms per function")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
