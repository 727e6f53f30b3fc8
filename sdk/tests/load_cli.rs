//! `overrun load`, end to end: the real binary against an HTTP/1.1 server in
//! this test process of known capacity (4 requests at once, 10 ms each: 400
//! requests per second), and every kind of bad input refused before any
//! load is sent. Built with `--features cli`.
#![cfg(feature = "cli")]

use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[path = "support/cli.rs"]
mod cli;
use cli::{overrun, scratch};

const PERMITS: usize = 4;
const SERVICE: Duration = Duration::from_millis(10);

/// Serves `GET` with `200 ok` (`503` at `/busy`; at `/flaky`, every other
/// request is answered by closing the connection; at `/stall`, only the
/// first request is answered), each request holding one of `PERMITS`
/// permits for `SERVICE` (slept on a blocking thread: the OS timer is
/// precise), connections kept alive. Runs on its own runtime thread for as
/// long as the test process.
fn server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let permits = Arc::new(Semaphore::new(PERMITS));
            let flakes = Arc::new(AtomicU64::new(0));
            let stalls = Arc::new(AtomicU64::new(0));
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let (permits, flakes, stalls) = (permits.clone(), flakes.clone(), stalls.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: its head, up to the empty line.
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let busy = buf.starts_with(b"GET /busy ");
                        let flaky = buf.starts_with(b"GET /flaky ");
                        let stall = buf.starts_with(b"GET /stall ");
                        buf.drain(..end);
                        if stall && stalls.fetch_add(1, Ordering::Relaxed) > 0 {
                            std::future::pending::<()>().await;
                        }
                        if flaky && flakes.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
                            return;
                        }
                        let permit = permits.clone().acquire_owned().await.unwrap();
                        tokio::task::spawn_blocking(move || {
                            std::thread::sleep(SERVICE);
                            drop(permit);
                        })
                        .await
                        .unwrap();
                        let reply: &[u8] = if busy {
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                        };
                        if conn.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}

fn load(args: &[&str]) -> Output {
    overrun().arg("load").args(args).output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn finds_the_breaking_point_of_a_server_and_writes_json_and_svg() {
    let addr = server();
    let dir = scratch("load");
    let (json, svg) = (dir.join("out.json"), dir.join("out.svg"));
    let url = format!("http://{addr}/");
    let out = load(&[
        &url,
        "--rate",
        "50..3200",
        "--step",
        "1s",
        "--p99",
        "30ms",
        "--header",
        "Accept: text/plain",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("breaking point:"), "{stdout}");
    assert!(stdout.contains("statuses: 200 ×"), "{stdout}");
    // Progress on stderr, one line per level.
    assert!(
        stderr.matches("overrun load: level ").count() >= 5,
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let found = report["breaking_point"].as_f64().unwrap();
    let capacity = PERMITS as f64 / SERVICE.as_secs_f64();
    assert!(
        (found - capacity).abs() <= capacity * 0.10,
        "breaking point {found:.1} req/s, capacity {capacity:.1}\n{stdout}"
    );
    assert_eq!(report["end"], "found");
    // The library's keys, then how the requests ended.
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.starts_with("{\n  \"breaking_point\""), "{text}");
    assert!(report["outcomes"]["statuses"]["200"].as_u64().unwrap() > 0);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("breaking point"));
}

#[test]
fn exit_1_when_the_lowest_level_fails_and_3_when_the_highest_passes() {
    let url = format!("http://{}/", server());
    let out = load(&[
        &url,
        "--rate",
        "2000..4000",
        "--step",
        "500ms",
        "--p99",
        "15ms",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the lowest level already fails"),
        "{stdout}"
    );
    let out = load(&[&url, "--rate", "20..40", "--step", "300ms", "--p99", "1s"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("no breaking point up to 40.0"), "{stdout}");
    // The closed model, same exits.
    let out = load(&[
        &url,
        "--concurrency",
        "1..2",
        "--step",
        "300ms",
        "--p99",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
}

#[test]
fn errors_are_summed_up_by_cause_after_the_table() {
    let addr = server();
    let dir = scratch("load-causes");
    let json = dir.join("out.json");
    let run = |path: &str| {
        let url = format!("http://{addr}{path}");
        let out = load(&[
            &url,
            "--rate",
            "20..40",
            "--step",
            "300ms",
            "--p99",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ]);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let errors: u64 = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["errors"].as_u64().unwrap())
            .sum();
        (out, errors, report["outcomes"].clone())
    };
    // Every answer a 503: the lowest level fails on its error rate, and
    // every error of the levels (the first request is not one of them) is
    // a 503.
    let (out, errors, outcomes) = run("/busy");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("a first request got status 503"),
        "{stderr}"
    );
    assert!(errors > 0, "{stdout}");
    assert!(
        stdout.contains(&format!("\nstatuses: 503 ×{errors}\n")),
        "{errors} errors\n{stdout}"
    );
    assert!(!stdout.contains("no answer"), "{stdout}");
    assert!(!stdout.contains("not sent or cut off"), "{stdout}");
    // The same in the JSON.
    assert_eq!(
        outcomes["statuses"]["503"].as_u64(),
        Some(errors),
        "{outcomes}"
    );
    assert_eq!(
        outcomes["statuses"].as_object().unwrap().len(),
        1,
        "{outcomes}"
    );
    assert_eq!(outcomes["no_answer"], serde_json::json!([]), "{outcomes}");
    assert_eq!(outcomes["not_sent_or_cut_off"], 0, "{outcomes}");
    // Every other request answered by closing the connection: failures
    // without an answer, by their cause, beside the answers.
    let (out, errors, outcomes) = run("/flaky");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let failed: u64 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("no answer ×"))
        .map(|l| l.split(':').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(failed, errors, "{stdout}");
    assert!(stdout.contains("statuses: 200 ×"), "{stdout}");
    // The same in the JSON, each cause with its count.
    let causes = outcomes["no_answer"].as_array().unwrap();
    assert!(!causes.is_empty(), "{outcomes}");
    assert!(
        causes
            .iter()
            .all(|c| c["cause"].as_str().is_some_and(|c| !c.is_empty())
                && stdout.contains(&format!(
                    "no answer ×{}: {}\n",
                    c["requests"],
                    c["cause"].as_str().unwrap()
                ))),
        "{outcomes}\n{stdout}"
    );
    assert!(
        outcomes["statuses"]["200"].as_u64().unwrap() > 0,
        "{outcomes}"
    );
}

/// `overrun load` with piped output, read as it runs, and interrupted.
#[cfg(unix)]
struct Interruptible {
    child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    /// Its stderr so far.
    seen: String,
}

#[cfg(unix)]
impl Interruptible {
    fn spawn(args: &[&str]) -> Self {
        let mut child = overrun()
            .arg("load")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        Self {
            child,
            stderr,
            seen: String::new(),
        }
    }

    /// Reads its stderr until `text` is in it.
    fn wait_for(&mut self, text: &str) {
        while !self.seen.contains(text) {
            let mut line = String::new();
            let read = std::io::BufRead::read_line(&mut self.stderr, &mut line).unwrap();
            assert!(read > 0, "{}", self.seen);
            self.seen.push_str(&line);
        }
    }

    /// Ctrl-C.
    fn interrupt(&self) {
        // SAFETY: `kill` with a child's pid and a signal number has no
        // memory effects on this process.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        assert_eq!(sent, 0);
    }

    /// Waits for it to exit, after Ctrl-C: its exit status, its stdout,
    /// and all its stderr (for messages).
    fn finish(mut self) -> (Option<i32>, String, String) {
        let out = self.child.wait_with_output().unwrap();
        std::io::Read::read_to_string(&mut self.stderr, &mut self.seen).unwrap();
        (out.status.code(), text(&out).0, self.seen)
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_run_and_prints_what_was_measured() {
    let url = format!("http://{}/", server());
    let mut run = Interruptible::spawn(&[
        &url,
        "--rate",
        "10..100000",
        "--step",
        "500ms",
        "--p99",
        "1s",
    ]);
    // Once a level has ended (the run is under way, Ctrl-C watched).
    run.wait_for("overrun load: level ");
    run.interrupt();
    let (code, stdout, seen) = run.finish();
    assert_eq!(code, Some(130), "{stdout}\n{seen}");
    assert!(
        stdout.contains("stopped before the search ended"),
        "{stdout}"
    );
    assert!(
        stdout.lines().filter(|l| l.contains("pass")).count() >= 1,
        "{stdout}"
    );
    // The level under way when Ctrl-C came, as far as it went.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with("stopped part way"))
        .collect();
    assert_eq!(rows.len(), 1, "{stdout}");
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_quits_at_once() {
    let url = format!("http://{}/stall", server());
    let mut run = Interruptible::spawn(&[&url, "--rate", "50..50", "--step", "10s", "--p99", "1s"]);
    // Into the level: requests out, none of them answered.
    run.wait_for("a level");
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    // The first stops the run, whose requests still out get a second…
    run.wait_for("Ctrl-C again to quit at once");
    // …and the second quits before then, printing nothing more.
    run.interrupt();
    let (code, stdout, seen) = run.finish();
    assert_eq!(code, Some(130), "{stdout}\n{seen}");
    assert_eq!(stdout, "", "{seen}");
}

#[test]
fn bad_input_is_refused_before_any_load_with_exit_2() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/", free.local_addr().unwrap());
    drop(free);
    let cases: [(&[&str], &str); 14] = [
        (&["not a url", "--rate", "1..2"], "is not a URL"),
        (&["localhost:8080/x", "--rate", "1..2"], "is not a URL"),
        (
            &["https://example.invalid/", "--rate", "1..2"],
            "only http:// is supported",
        ),
        (&[&closed, "--rate", "100..10"], "the range is upside down"),
        (&[&closed, "--rate", "0..10"], "above 0"),
        (&[&closed, "--rate", "lots"], "want LO..HI"),
        (
            &[&closed, "--rate", "1..2", "--header", "NoColon"],
            "want 'Name: value'",
        ),
        (
            &[&closed, "--rate", "1..2", "--body", "/no/such/file"],
            "--body /no/such/file",
        ),
        (&[&closed, "--rate", "1..2"], "a first request failed"),
        (
            &[&closed, "--concurrency", "1..99999999999"],
            "from 1 to 100000 callers",
        ),
        (
            &[&closed, "--rate", "1..2", "--error-rate", "1%%"],
            "want a percentage",
        ),
        (
            &[&closed, "--rate", "1..2", "--timeout", "soon"],
            "--timeout",
        ),
        (
            &[&closed, "--rate", "1..2", "--json", "/no/such/dir/out.json"],
            "/no/such/dir/out.json",
        ),
        (
            &[
                &closed,
                "--rate",
                "1..2",
                "--connections",
                "18446744073709551615",
            ],
            "--connections",
        ),
    ];
    for (args, message) in cases {
        let started = Instant::now();
        let out = load(args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: no table: {stdout}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    // Both models, or neither: usage errors.
    let out = load(&[&closed, "--rate", "1..2", "--concurrency", "1..2"]);
    assert_eq!(out.status.code(), Some(2));
    let out = load(&[&closed]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("give --rate LO..HI or --concurrency LO..HI")
    );
}
