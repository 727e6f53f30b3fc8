//! End to end: run the example binaries (built by `cargo test` before the
//! tests run) the way a user would, and check what they print and write.

#[path = "../../sdk/tests/support/report.rs"]
mod report;
use report::site;
use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> Command {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} not built", path.display());
    let mut cmd = Command::new(path);
    for var in ["OVERRUN", "OVERRUN_REPORT", "OVERRUN_REPORT_FILE"] {
        cmd.env_remove(var);
    }
    cmd
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overrun-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn data_file(lines: u64) -> PathBuf {
    let path = tmp(&format!("sales-{lines}.csv"));
    let out = example("cli")
        .args(["--generate", &lines.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    // Written aside and renamed: tests that share a size read whole files
    // while another test writes its copy.
    let part = tmp(&format!(
        "sales-{lines}.csv.{:?}.part",
        std::thread::current().id()
    ));
    std::fs::write(&part, &out.stdout).unwrap();
    std::fs::rename(&part, &path).unwrap();
    path
}

fn json_report(out: &Output, path: &PathBuf) -> serde_json::Value {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "no report at {}: {e}\n{}",
            path.display(),
            text(&out.stderr)
        )
    });
    serde_json::from_str(&body).unwrap()
}

#[test]
fn quickstart_prints_violations_and_the_report() {
    let out = example("quickstart").output().unwrap();
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(text(&out.stdout).starts_with("revenue "));
    assert!(stderr.contains("overrun report — run"), "{stderr}");
    for needle in [
        "budget violation: price",
        "time",
        "poll",
        "over budget 8",
        "bytes",
        "parse_order",
        "check_stock",
        "receipt",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in\n{stderr}");
    }
}

#[test]
fn cli_report_file_matches_the_work_done() {
    let data = data_file(5_000);
    let report = tmp("cli-report.json");
    let out = example("cli")
        .arg(&data)
        .env("OVERRUN_REPORT_FILE", &report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("revenue by region"));
    // The table still goes to stderr.
    assert!(text(&out.stderr).contains("parse_line"));
    let json = json_report(&out, &report);
    assert_eq!(json["version"], 1);
    assert_eq!(json["run"]["budget"]["time_ns"], 3_000_000_000u64);
    assert_eq!(json["run"]["budget"]["memory_bytes"], 100u64 << 20);
    assert!(json["run"]["allocs_available"].as_bool().unwrap());
    let parse = site(&json, "parse_line");
    assert_eq!(parse["calls"], 5_000);
    assert_eq!(parse["errors"], 0);
    assert_eq!(parse["allocs"], 0, "zero-copy parse");
    assert_eq!(parse["budget"]["allocs"], 0);
    assert_eq!(parse["violations"]["allocs"], 0);
    assert_eq!(site(&json, "read_input")["calls"], 1);
    assert_eq!(site(&json, "aggregate")["calls"], 1);
}

/// A report file that cannot be written is an error on stderr, and under
/// `OVERRUN_REPORT_STRICT=1` (for CI) the run's exit status is 74.
#[test]
fn an_unwritable_report_file_is_an_error_and_strict_fails_the_run() {
    let data = data_file(10);
    let run = |strict: bool| {
        let mut cmd = example("cli");
        cmd.arg(&data)
            .env("OVERRUN_REPORT", "off")
            .env("OVERRUN_REPORT_FILE", "/no/such/dir/report.json");
        if strict {
            cmd.env("OVERRUN_REPORT_STRICT", "1");
        }
        cmd.output().unwrap()
    };
    let lenient = run(false);
    assert_eq!(lenient.status.code(), Some(0));
    assert!(
        text(&lenient.stderr)
            .contains("overrun: error: cannot write the report to /no/such/dir/report.json"),
        "{}",
        text(&lenient.stderr)
    );
    assert_eq!(run(true).status.code(), Some(74));
}

/// A report says what it describes: program, version, a hash of the
/// arguments, start time, host, commit.
#[test]
fn a_report_says_what_it_describes() {
    let data = data_file(10);
    let run = |args: &[&std::ffi::OsStr], name: &str| {
        let file = tmp(name);
        let out = example("cli")
            .args(args)
            .env("OVERRUN_REPORT", "off")
            .env("OVERRUN_REPORT_FILE", &file)
            .env("OVERRUN_GIT_SHA", "0123456789abcdef")
            .output()
            .unwrap();
        json_report(&out, &file)["meta"].clone()
    };
    let meta = run(&[data.as_os_str()], "meta-a.json");
    assert_eq!(meta["program"], "cli");
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["git_sha"], "0123456789abcdef");
    let started = meta["started_at"].as_str().unwrap();
    assert_eq!(
        (started.len(), &started[10..11], &started[19..]),
        (20, "T", "Z")
    );
    assert!(meta["host"].as_str().is_some_and(|h| !h.is_empty()));
    let again = run(&[data.as_os_str()], "meta-b.json");
    assert_eq!(
        again["args_hash"], meta["args_hash"],
        "same arguments, same hash"
    );
    let other = run(&["--slow-parse".as_ref(), data.as_os_str()], "meta-c.json");
    assert_ne!(other["args_hash"], meta["args_hash"]);
}

#[test]
fn cli_exit_codes_are_unchanged() {
    let out = example("cli")
        .arg("/definitely/not/here.csv")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot read"));
    assert!(stderr.contains("overrun report"), "report still printed");

    let bad = tmp("bad.csv");
    std::fs::write(&bad, "north,p1,2,100\nnot a sale\n").unwrap();
    let out = example("cli").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn cli_memory_budget_is_a_run_violation() {
    let data = data_file(100);
    let report = tmp("cli-memory.json");
    let out = example("cli")
        .args(["--hold-mib", "150"])
        .arg(&data)
        .env("OVERRUN_REPORT_FILE", &report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "a violation does not change the exit code"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("run over its memory budget"), "{stderr}");
    let json = json_report(&out, &report);
    let v = &json["run"]["violations"][0];
    assert_eq!(v["kind"], "memory");
    assert!(v["observed"].as_u64().unwrap() > 150 << 20);
    assert_eq!(v["limit"], 100u64 << 20);
}

#[test]
fn json_on_stderr_and_runtime_switch() {
    let data = data_file(50);
    let out = example("cli")
        .arg(&data)
        .env("OVERRUN_REPORT", "json")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(site(&json, "parse_line")["calls"], 50);

    let out = example("cli")
        .arg(&data)
        .env("OVERRUN", "off")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("overrun report"),
        "off means off"
    );
}

/// An unknown `OVERRUN_REPORT` is an error naming the accepted values, and
/// the report still comes (as the table); the table says how it is sorted
/// and what `self%` is.
#[test]
fn an_unknown_report_format_is_an_error_and_the_table_explains_itself() {
    let data = data_file(50);
    let out = example("cli")
        .arg(&data)
        .env("OVERRUN_REPORT", "yaml")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(r#"overrun: error: OVERRUN_REPORT="yaml" is not one of table, json, off"#),
        "{stderr}"
    );
    assert!(stderr.contains("overrun report"), "{stderr}");
    assert!(
        stderr.contains("by total time; self% = time in the function itself"),
        "{stderr}"
    );
}

#[test]
fn tasks_example_reports_the_leak_and_the_blocked_executor() {
    let out = example("tasks").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("served 200 requests"), "{stdout}");
    assert!(
        stdout.contains("live: session-reaper at examples/tasks.rs:"),
        "{stdout}"
    );
    assert!(stdout.contains("leaked=true"), "{stdout}");
    // The events, as they happened.
    assert!(
        stderr.contains("budget violation: thumbnailer (examples/tasks.rs:"),
        "{stderr}"
    );
    assert!(stderr.contains("poll"), "{stderr}");
    assert!(
        stderr.contains("budget violation: session-reaper"),
        "{stderr}"
    );
    assert!(stderr.contains("lifetime"), "{stderr}");
    // The report at exit: the tasks table and the task still running.
    let row = |name: &str| {
        stderr
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{stderr}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // task spawned completed cancelled panicked live leaked ...
    assert_eq!(&row("request")[1..7], ["200", "200", "0", "0", "0", "0"]);
    assert_eq!(&row("session-reaper")[1..7], ["1", "0", "0", "0", "1", "1"]);
    assert!(
        row("thumbnailer").last().unwrap().starts_with("poll:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("still running: session-reaper spawned at examples/tasks.rs:"),
        "{stderr}"
    );
    assert!(stderr.contains("LEAKED"), "{stderr}");
}

/// Peak memory is the program's own: under `cargo run` (cargo's peak is
/// tens of MiB) the figure stays what the program reaches run directly.
/// Before, `getrusage`'s maximum survived `exec`, and a hello world with a
/// 20 MiB budget reported cargo's 43.8 MiB and a memory violation.
#[test]
fn peak_memory_under_cargo_run_is_the_programs_own() {
    let direct_file = tmp("direct.json");
    let out = example("cli")
        .args(["--generate", "10"])
        .env("OVERRUN_REPORT", "off")
        .env("OVERRUN_REPORT_FILE", &direct_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let direct = json_report(&out, &direct_file)["run"]["peak_rss_bytes"]
        .as_u64()
        .unwrap();

    let via_cargo_file = tmp("via-cargo.json");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "run",
            "-q",
            "-p",
            "overrun-examples",
            "--example",
            "cli",
            "--",
        ])
        .args(["--generate", "10"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OVERRUN_REPORT", "off")
        .env("OVERRUN_REPORT_FILE", &via_cargo_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let via_cargo = json_report(&out, &via_cargo_file)["run"]["peak_rss_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        via_cargo < direct * 2 + (2 << 20),
        "under cargo run: {via_cargo} bytes; run directly: {direct} bytes"
    );
    assert!(via_cargo < 20 << 20, "{via_cargo} bytes: cargo's own peak?");
}

/// The endings of a run: signals and `exit` are Unix matters.
#[cfg(unix)]
mod endings {
    use super::*;

    /// How a run of the `endings` example ended, and the report it left.
    struct Ended {
        status: std::process::ExitStatus,
        stdout: String,
        report: serde_json::Value,
    }

    /// Runs `program` with the ending `how`; with `signal`, waits for `ready` on
    /// its stdout, then sends it that signal. The child starts with SIGINT and
    /// SIGTERM at their default action, whatever the test runner inherited.
    fn end(program: &str, how: &str, signal: Option<i32>) -> Ended {
        end_with(program, how, signal, libc::SIG_DFL)
    }

    /// A started ending: the child, its stdout, and where its report goes.
    struct Started {
        child: std::process::Child,
        stdout: std::io::BufReader<std::process::ChildStdout>,
        file: PathBuf,
    }

    impl Started {
        /// Reads the `ready` line the program prints before it waits.
        fn ready(&mut self) {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut self.stdout, &mut line).unwrap();
            assert_eq!(line, "ready\n");
        }

        fn signal(&self, signal: i32) {
            // SAFETY: sends a signal to our own child, which is still running.
            assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
        }

        fn report(&self) -> serde_json::Value {
            let body = std::fs::read_to_string(&self.file)
                .unwrap_or_else(|e| panic!("no report at {}: {e}", self.file.display()));
            serde_json::from_str(&body).expect("a whole JSON report")
        }
    }

    /// Starts `program` with the ending `how`, SIGINT at `sigint` and
    /// SIGTERM at its default action, whatever the test runner inherited.
    fn start(program: &str, how: &str, tag: &str, sigint: libc::sighandler_t) -> Started {
        use std::os::unix::process::CommandExt;
        let file = tmp(&format!("ending-{program}-{how}-{tag}.json"));
        let _ = std::fs::remove_file(&file);
        let mut cmd = if program == "endings" {
            example("endings")
        } else {
            Command::new(abort_build())
        };
        cmd.arg(how)
            .env("OVERRUN_REPORT", "off")
            .env("OVERRUN_REPORT_FILE", &file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGINT, sigint);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        Started {
            child,
            stdout,
            file,
        }
    }

    fn end_with(
        program: &str,
        how: &str,
        signal: Option<i32>,
        sigint: libc::sighandler_t,
    ) -> Ended {
        use std::io::Read;
        let tag = signal.unwrap_or(0).to_string();
        let mut started = start(program, how, &tag, sigint);
        let mut out = String::new();
        if let Some(signal) = signal {
            started.ready();
            out.push_str("ready\n");
            started.signal(signal);
        }
        started.stdout.read_to_string(&mut out).unwrap();
        let status = started.child.wait().unwrap();
        Ended {
            status,
            stdout: out,
            report: started.report(),
        }
    }

    /// The `endings` program built with `-C panic=abort` (once per test run).
    fn abort_build() -> PathBuf {
        static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        BUILT
            .get_or_init(|| {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let out = Command::new(cargo)
                    .args([
                        "rustc",
                        "-q",
                        "-p",
                        "overrun-examples",
                        "--example",
                        "endings_abort",
                    ])
                    .args([
                        "--message-format=json-render-diagnostics",
                        "--",
                        "-C",
                        "panic=abort",
                    ])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", text(&out.stderr));
                text(&out.stdout)
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
                    .next_back()
                    .expect("the endings_abort executable")
            })
            .clone()
    }

    fn step_calls(report: &serde_json::Value) -> u64 {
        site(report, "step")["calls"].as_u64().unwrap()
    }

    #[test]
    fn every_ending_writes_the_report_and_keeps_the_exit_status() {
        use std::os::unix::process::ExitStatusExt;
        let returned = end("endings", "return", None);
        assert_eq!(returned.status.code(), Some(4));
        assert_eq!(step_calls(&returned.report), 10);

        let exited = end("endings", "exit", None);
        assert_eq!(exited.status.code(), Some(3), "process::exit from a thread");
        assert_eq!(step_calls(&exited.report), 10);

        let panicked = end("endings", "panic", None);
        assert_eq!(panicked.status.code(), Some(101));
        assert_eq!(step_calls(&panicked.report), 10);

        for signal in [libc::SIGINT, libc::SIGTERM] {
            let killed = end("endings", "wait", Some(signal));
            assert_eq!(killed.status.signal(), Some(signal), "ended by that signal");
            assert_eq!(step_calls(&killed.report), 10);
            assert_eq!(killed.report["run"]["budget"]["time_ns"], 60_000_000_000u64);
        }
    }

    #[test]
    fn an_aborting_panic_writes_the_report() {
        use std::os::unix::process::ExitStatusExt;
        let aborted = end("endings_abort", "panic", None);
        assert_eq!(aborted.status.signal(), Some(libc::SIGABRT));
        assert_eq!(step_calls(&aborted.report), 10);
    }

    /// A program with its own SIGINT handler keeps its behaviour: it handles
    /// the signal and exits as it chooses; its report comes when `main` returns.
    #[test]
    fn a_program_with_its_own_handler_keeps_it() {
        let own = end("endings", "own-handler", Some(libc::SIGINT));
        assert_eq!(own.status.code(), Some(7));
        assert_eq!(own.stdout, "ready\nhandled\n");
        assert_eq!(step_calls(&own.report), 10);
    }

    /// SIGINT ignored when the run starts (`nohup`, a background job): overrun
    /// leaves it ignored; SIGTERM still ends the run with its report.
    #[test]
    fn an_ignored_signal_stays_ignored() {
        use std::os::unix::process::ExitStatusExt;
        let mut started = start("endings", "wait", "ignored", libc::SIG_IGN);
        started.ready();
        started.signal(libc::SIGINT);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            started.child.try_wait().unwrap().is_none(),
            "SIGINT stayed ignored"
        );
        started.signal(libc::SIGTERM);
        let status = started.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert_eq!(step_calls(&started.report()), 10);
    }

    /// An exit hook that calls `exit` itself while the run is ending: the
    /// process ends with that status instead of hanging, report written.
    #[test]
    fn an_exit_hook_that_exits_does_not_hang() {
        let ended = end("endings", "exit-in-hook", None);
        assert_eq!(ended.status.code(), Some(6));
        assert_eq!(step_calls(&ended.report), 10);
    }

    /// A second signal while the last export takes its time ends the process
    /// at once, by that signal; the report was written before the hooks.
    #[test]
    fn a_second_signal_ends_the_process_at_once() {
        use std::os::unix::process::ExitStatusExt;
        let mut started = start("endings", "slow-hook", "second", libc::SIG_DFL);
        started.ready();
        started.signal(libc::SIGINT);
        let begun = std::time::Instant::now();
        while !started.file.exists() {
            assert!(
                begun.elapsed().as_secs() < 10,
                "no report after the first signal"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        started.signal(libc::SIGINT);
        let status = started.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGINT));
        assert!(
            begun.elapsed().as_secs() < 10,
            "ended at once, not after the 30 s hook"
        );
    }
}
