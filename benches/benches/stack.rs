//! Bytes of stack per frame, for `#[measure]` beside a plain function and
//! `tracing`'s `#[instrument]`, in a build without optimisations and in a
//! release build, from one run: the measurement is the `stack_frames`
//! example (`benches/examples/stack_frames.rs`), built and run here in both
//! profiles. `cargo bench --bench stack` runs both; the test command's quick
//! pass (`cargo test --benches`) runs the debug one.

use std::process::Command;

fn run(release: bool) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "-q",
        "-p",
        "overrun-benches",
        "--example",
        "stack_frames",
    ]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "stack_frames failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut lines = run(false);
    if bench {
        lines += &run(true);
    }
    println!("{:<8} {:<40} {:>14}", "profile", "frame", "bytes / frame");
    for line in lines.lines().filter(|l| l.starts_with("STACK|")) {
        let parts: Vec<&str> = line.split('|').collect();
        println!("{:<8} {:<40} {:>14}", parts[1], parts[2], parts[3]);
    }
}
