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
    let rows: Vec<Vec<&str>> = lines
        .lines()
        .filter(|l| l.starts_with("STACK|"))
        .map(|l| l.split('|').collect())
        .collect();
    for parts in &rows {
        println!("{:<8} {:<40} {:>14}", parts[1], parts[2], parts[3]);
    }
    // The bound, in every profile run (the quick pass too): a
    // measured frame no larger than `tracing`'s.
    let bytes = |profile: &str, variant: &str| -> usize {
        rows.iter()
            .find(|p| p[1] == profile && p[2] == variant)
            .unwrap_or_else(|| panic!("no {profile} {variant} row"))[3]
            .parse()
            .unwrap()
    };
    for profile in ["debug", "release"] {
        if rows.iter().any(|p| p[1] == profile) {
            let (ours, theirs) = (
                bytes(profile, "#[measure] fn"),
                bytes(profile, "tracing #[instrument] fn"),
            );
            assert!(
                ours <= theirs,
                "{profile}: #[measure] takes {ours} bytes a frame, tracing's {theirs}"
            );
        }
    }
}
