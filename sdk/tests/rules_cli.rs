//! `overrun rules`, end to end: the real binary on a real report (this
//! test's own snapshot, with objectives in code) and on a policy file; bad
//! input exits 2. (promtool checks and tests the rules it writes in
//! `exporters/prometheus/e2e.sh`.)
#![cfg(feature = "cli")]

use std::path::PathBuf;

#[path = "support/cli.rs"]
mod cli;
use cli::{overrun, scratch};

#[overrun::measure(p99 = "50ms", error_rate = "0.5%", window = "10m")]
fn with_objectives() -> Result<(), ()> {
    Ok(())
}

#[overrun::measure(budget = "10ms")]
fn without_objectives() {}

fn write(name: &str, text: &str) -> PathBuf {
    let path = scratch("rules").join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn rules(args: &[&str]) -> (Option<i32>, String, String) {
    let out = overrun().arg("rules").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn rules_from_a_report_and_from_a_policy_file() {
    with_objectives().unwrap();
    without_objectives();
    let report = write("report.json", &overrun::snapshot().to_json());
    let report = report.to_str().unwrap();

    let (code, yaml, err) = rules(&["--sites", report]);
    assert_eq!(code, Some(0), "{err}");
    let site = r#"function="with_objectives",module="rules_cli""#;
    // The p99's bad calls are those over the bucket the exporters add at
    // exactly 50 ms, recorded once per threshold over 7 windows; the error
    // rate's, the failed calls.
    assert!(
        yaml.contains(r#"rate(overrun_duration_seconds_bucket{le="0.05"}[5m])"#),
        "{yaml}"
    );
    assert!(yaml.contains("rate(overrun_errors_total[3d])"));
    assert_eq!(yaml.matches("- record: ").count(), 14);
    // Per objective a page and a ticket; a latency objective also warns
    // when its bucket is missing.
    let alerts = |name: &str| yaml.matches(&format!("- alert: {name}\n")).count();
    assert_eq!(alerts("OverrunObjectiveBurnRatePage"), 2);
    assert_eq!(alerts("OverrunObjectiveBurnRateTicket"), 2);
    assert_eq!(alerts("OverrunObjectiveBucketMissing"), 1);
    // Page: 14.4x the budget of bad calls (1% for a p99, 0.5% for the error
    // rate) on the last 5 minutes and hour.
    assert!(
        yaml.contains(&format!(
            r#"overrun:objective_slow_ratio:rate5m{{threshold="0.05",{site}}} > 0.144"#
        )),
        "{yaml}"
    );
    assert!(yaml.contains(&format!(
        r#"overrun:objective_error_ratio:rate1h{{{site}}} > 0.072"#
    )));
    assert!(yaml.contains(r#"overrun_match: "rules_cli::with_objectives""#));
    assert!(
        !yaml.contains("without_objectives"),
        "no objective, no rule"
    );

    // A policy file over the code's objectives: its p99 moves the bucket.
    let policy = write(
        "overrun.toml",
        "[[budget]]\nmatch = \"with_objectives\"\np99 = \"20ms\"\nerror_rate = \"none\"\n",
    );
    let policy = policy.to_str().unwrap();
    let (code, yaml, err) = rules(&["--sites", report, "--config", policy]);
    assert_eq!(code, Some(0), "{err}");
    assert!(yaml.contains(r#"le="0.02""#), "{yaml}");
    assert!(
        !yaml.contains("objective: error_rate"),
        "the file removed it"
    );

    // A rule for one environment: taken from --env, else OVERRUN_ENV, as
    // the program would (that an empty one is none, check_cli tests: the
    // two commands share the argument).
    let staging = write(
        "staging.toml",
        "[[budget]]\nmatch = \"with_objectives\"\nenv = \"staging\"\np99 = \"30ms\"\n",
    );
    let staging = staging.to_str().unwrap();
    let with_env = |env: &str| {
        let out = overrun()
            .args(["rules", "--sites", report, "--config", staging])
            .env("OVERRUN_ENV", env)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(with_env("staging").contains(r#"le="0.03""#));
    assert_eq!(
        with_env("staging"),
        rules(&["--sites", report, "--config", staging, "--env", "staging"]).1
    );
    let elsewhere = with_env("");
    assert!(
        elsewhere.contains(r#"le="0.05""#) && !elsewhere.contains(r#"le="0.03""#),
        "{elsewhere}"
    );

    // The policy file alone: its patterns select the recorded series by
    // `module::function` or by the bare name.
    let (code, yaml, err) = rules(&["--config", policy]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        yaml.contains(
            r#"(overrun:objective_slow_ratio:rate5m{threshold="0.02",overrun_path=~"with_objectives"} or overrun:objective_slow_ratio:rate5m{threshold="0.02",function=~"with_objectives"})"#
        ),
        "{yaml}"
    );

    // Nothing to alert on: an empty group, said on stderr.
    let empty = write("none.toml", "[[budget]]\nmatch = \"x\"\ntime = \"1s\"\n");
    let (code, yaml, err) = rules(&["--config", empty.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(yaml.contains("rules: []"), "{yaml}");
    assert!(err.contains("no objective"), "{err}");
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let (code, _, err) = rules(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--sites REPORT.json, --config FILE"), "{err}");
    let (code, _, err) = rules(&["--sites", "/nonexistent/report.json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read the report"), "{err}");
    let bad = write(
        "bad.toml",
        "[[budget]]\nmatch = \"f\"\np99 = \"5 parsecs\"\n",
    );
    let (code, _, err) = rules(&["--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("bad.toml:3:7: `p99`"), "{err}");
}
