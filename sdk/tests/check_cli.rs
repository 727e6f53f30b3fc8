//! `overrun check` and `OVERRUN_CONFIG`, end to end: the real binary on a
//! real report of the `cli` example, and the example run under a policy
//! file. Built with `--features cli` (the test command runs
//! `cargo test -p overrun --all-features`, after the workspace tests have
//! built the examples).
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};

#[path = "support/cli.rs"]
mod cli;
use cli::{cli_example, generated, overrun, row, scratch};
#[path = "support/report.rs"]
mod report;
use report::site;

fn dir() -> PathBuf {
    scratch("check")
}

fn write(name: &str, text: &str) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the cli example on generated data, with `env`; returns its JSON
/// report and its stderr.
fn run_cli(name: &str, env: &[(&str, &Path)]) -> (serde_json::Value, String) {
    // Made once for both tests (they run at once), and renamed into place
    // whole.
    static DATA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let data = DATA.get_or_init(|| {
        let (part, whole) = (dir().join("sales.csv.part"), dir().join("sales.csv"));
        generated(&part, 2000);
        std::fs::rename(&part, &whole).unwrap();
        whole
    });
    let report = dir().join(name);
    let mut cmd = cli_example();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .arg(data)
        .env("OVERRUN_REPORT_FILE", &report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let json = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (json, stderr)
}

const POLICY: &str = "\
[[budget]]
match = \"cli::parse_*\"
time = \"1ms\"

[[budget]]
match = \"cli::parse_*\"
env = \"production\"
time = \"50us\"
allocs = \"none\"

[[budget]]
match = \"cli::cache::*\"
time = \"1ms\"

[[task]]
match = \"session-*\"
lifetime = \"1h\"

[run]
time = \"1ns\"
";

#[test]
fn the_example_runs_under_overrun_config_and_overrun_env() {
    let policy = write("policy.toml", POLICY);
    let (code, _) = run_cli("code.json", &[]);
    assert_eq!(site(&code, "parse_line")["budget"]["time_ns"], 20_000);
    assert_eq!(site(&code, "parse_line")["budget_source"], "code");

    let (report, _) = run_cli("file.json", &[("OVERRUN_CONFIG", &policy)]);
    let parse = site(&report, "parse_line");
    assert_eq!(parse["budget"]["time_ns"], 1_000_000);
    assert_eq!(parse["budget"]["allocs"], 0, "the code's: no rule sets it");
    assert_eq!(parse["budget_source"], format!("{}:1", policy.display()));
    assert_eq!(
        site(&report, "read_input")["budget_source"],
        "code",
        "matched by no rule"
    );
    // `[run]` beats `#[overrun::main(budget = "3s")]`.
    assert_eq!(report["run"]["budget"]["time_ns"], 1);
    assert_eq!(
        report["run"]["violations"][0]["kind"], "time",
        "{}",
        report["run"]
    );

    let production = Path::new("production");
    let (report, _) = run_cli(
        "production.json",
        &[("OVERRUN_CONFIG", &policy), ("OVERRUN_ENV", production)],
    );
    let parse = site(&report, "parse_line");
    assert_eq!(parse["budget"]["time_ns"], 50_000);
    assert!(parse["budget"]["allocs"].is_null(), "`none` removes it");
    assert_eq!(parse["budget_source"], format!("{}:5", policy.display()));

    // A broken file: the run goes on with the code's budgets, and says why.
    let broken = write(
        "broken.toml",
        "[[budget]]\nmatch = \"cli::*\"\ntime = \"fast\"\n",
    );
    let (report, stderr) = run_cli("broken.json", &[("OVERRUN_CONFIG", &broken)]);
    assert_eq!(site(&report, "parse_line")["budget"]["time_ns"], 20_000);
    assert!(
        stderr.contains(&format!("{}:3:8: `time`: ", broken.display())),
        "{stderr}"
    );
}

#[test]
fn check_validates_and_resolves_a_report() {
    let policy = write("check.toml", POLICY);
    let (_, _) = run_cli("for-check.json", &[]);
    let report = dir().join("for-check.json");

    let out = overrun().arg("check").arg(&policy).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("valid (4 rule(s))"), "{stdout}");

    let out = overrun()
        .arg("check")
        .arg(&policy)
        .args(["--env", "production", "--sites"])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let cells = |name: &str| row(&stdout, name).split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        cells("parse_line")[1..],
        ["50.0µs", "-", "-", "-", &format!("{}:5", policy.display())]
    );
    assert_eq!(cells("read_input")[1..], ["200ms", "-", "-", "-", "code"]);
    assert!(
        stdout.contains(&format!(
            "warning: {}:11: the [[budget]] rule `cli::cache::*` matches no site",
            policy.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("the [[task]] rule `session-*` matches no task"),
        "{stdout}"
    );
    // Without --env, the environment the applications take: OVERRUN_ENV.
    let resolve = |env: &str| {
        let out = overrun()
            .arg("check")
            .arg(&policy)
            .arg("--sites")
            .arg(&report)
            .env("OVERRUN_ENV", env)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(resolve("production"), stdout);
    let elsewhere = resolve("");
    assert!(elsewhere.contains("valid (4 rule(s))\n"), "{elsewhere}");
    assert_eq!(
        row(&elsewhere, "parse_line").split_whitespace().nth(1),
        Some("1.00ms"),
        "{elsewhere}"
    );

    // A report made under a policy: resolved against the code's budgets.
    let (_, _) = run_cli("under-policy.json", &[("OVERRUN_CONFIG", &policy)]);
    let empty = write("empty.toml", "");
    let out = overrun()
        .arg("check")
        .arg(&empty)
        .arg("--sites")
        .arg(dir().join("under-policy.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parse = row(&stdout, "parse_line");
    assert_eq!(
        parse.split_whitespace().collect::<Vec<_>>()[1..],
        ["20.0µs", "0", "-", "-", "code"],
        "the code's budget, not the policy the report ran under"
    );

    let bad = write("bad.toml", "[[budget]]\nmatch = \"x\"\nallocs = -3\n");
    let out = overrun().arg("check").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:10: `allocs`: ", bad.display())),
        "{stderr}"
    );
    let out = overrun()
        .arg("check")
        .arg(&policy)
        .arg("--sites")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a report that is not JSON");
}
