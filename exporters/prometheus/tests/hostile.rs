//! The endpoint under attack: 2 000 idle connections, 64 slowloris clients,
//! 1 MiB headers, 100 kB paths, wrong methods and binary garbage, all at
//! once — and all the while a normal scrape gets its full answer within a
//! second, every time, with the exporter's threads and the process' memory
//! bounded. Prints its figures as `RELIABILITY|…` lines, which
//! `scripts/reliability.sh` gathers into RELIABILITY.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use overrun_prometheus::PrometheusExporter;

#[overrun::measure(budget = "1s")]
fn handled(i: u64) -> u64 {
    i * 3
}

/// Raises this process' open-file limit to what the attack needs (2 000
/// client and up to 1 024 server sockets in one process), or fails saying
/// why: a soft limit of 1 024 is common.
fn enough_descriptors() {
    const NEED: libc::rlim_t = 4_096;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0);
    if limit.rlim_cur >= NEED {
        return;
    }
    assert!(
        limit.rlim_max >= NEED,
        "this test needs {NEED} open files; the hard limit (ulimit -Hn) is {}",
        limit.rlim_max
    );
    limit.rlim_cur = NEED;
    // SAFETY: `limit` is a valid `rlimit`; raising the soft limit up to the
    // hard one is allowed.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0);
}

/// `Threads:` and `VmRSS:` (KiB) of this process.
fn threads_and_rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:"))
}

/// One normal scrape: (status, body, time to the last byte).
fn scrape(addr: SocketAddr) -> (u16, String, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let took = start.elapsed();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    // The full answer: as long as its Content-Length says.
    let length: usize = resp
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert_eq!(body.len(), length, "a partial answer: {resp:.300}");
    (status, body, took)
}

/// Sends `request` on a fresh connection; the status line's code, or 0 if
/// the server closed without one.
fn send(addr: SocketAddr, request: &[u8]) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request);
    let mut head = [0u8; 12];
    match s.read_exact(&mut head) {
        Ok(()) => std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[test]
fn a_scrape_is_answered_within_a_second_under_attack() {
    for i in 0..10 {
        handled(i);
    }
    let exporter = PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .install()
        .unwrap();
    let addr = exporter.local_addr();
    enough_descriptors();
    // One scrape first: the render threads start on demand.
    assert_eq!(scrape(addr).0, 200);
    let (threads_before, rss_before) = threads_and_rss();

    // 2 000 connections that never send a byte (scanners, TCP checks).
    let idle: Vec<TcpStream> = (0..2_000)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
        .collect();
    assert_eq!(idle.len(), 2_000, "the backlog took every connection");

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();

    // 64 slowloris clients: a header line every half second, reconnecting
    // when the server gives up on them.
    attackers.push({
        let stop = stop.clone();
        std::thread::spawn(move || {
            let connect = || {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
                s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
                s.write_all(b"GET /metrics HTTP/1.1\r\n").ok()?;
                Some(s)
            };
            let mut clients: Vec<Option<TcpStream>> = (0..64).map(|_| connect()).collect();
            let mut reconnects = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for c in &mut clients {
                    let alive = c
                        .as_mut()
                        .is_some_and(|s| s.write_all(b"X-Slow: still-coming\r\n").is_ok());
                    if !alive {
                        *c = connect();
                        reconnects += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            reconnects
        })
    });
    // Oversized requests, wrong methods and garbage, one after another.
    let big_header = {
        let mut r = b"GET /metrics HTTP/1.1\r\nHost: test\r\nX-Big: ".to_vec();
        r.extend(std::iter::repeat_n(b'a', 1 << 20));
        r.extend_from_slice(b"\r\n\r\n");
        r
    };
    let long_path = {
        let mut r = b"GET /".to_vec();
        r.extend(std::iter::repeat_n(b'p', 100_000));
        r.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\n\r\n");
        r
    };
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let hostile: Vec<(&'static str, Vec<u8>, &'static [u16])> = vec![
        ("1 MiB header", big_header, &[431, 0]),
        ("100 kB path", long_path, &[431, 414, 0]),
        (
            "POST",
            b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            &[405],
        ),
        (
            "BREW",
            b"BREW /metrics HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            &[405],
        ),
        ("binary garbage", garbage, &[400, 0]),
    ];
    for (what, request, allowed) in hostile {
        let stop = stop.clone();
        let answered = answered.clone();
        attackers.push(std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let status = send(addr, &request);
                assert!(allowed.contains(&status), "{what}: answered {status}");
                answered.fetch_add(1, Ordering::Relaxed);
                sent += 1;
            }
            sent
        }));
    }

    // The scrapes: 40, over 8 s (past the 5 s head deadline, so the
    // slowloris clients are cut off and come back meanwhile).
    let mut slowest = Duration::ZERO;
    let mut threads_max = 0;
    let mut rss_max = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(200));
        let (status, body, took) = scrape(addr);
        assert_eq!(status, 200);
        assert!(
            body.contains("overrun_calls_total{function=\"handled\""),
            "a full scrape"
        );
        assert!(
            took < Duration::from_secs(1),
            "a scrape took {took:?} under attack"
        );
        slowest = slowest.max(took);
        let (threads, rss) = threads_and_rss();
        threads_max = threads_max.max(threads);
        rss_max = rss_max.max(rss);
    }
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<u64> = attackers.into_iter().map(|a| a.join().unwrap()).collect();
    drop(idle);
    let closed = exporter.closed();

    // The exporter's threads: its runtime's (1 accept, 2 workers, up to 2
    // rendering) and no more however many clients; the test's own are the 6
    // attackers.
    let attacker_threads = 6;
    assert!(
        threads_max <= threads_before + attacker_threads,
        "threads grew: {threads_before} before, {threads_max} at most"
    );
    // Memory: 2 000 client sockets and as many server-side ones live in
    // this one process; bounded well under 64 MiB more.
    let grew_kib = rss_max.saturating_sub(rss_before);
    assert!(
        grew_kib < 64 * 1024,
        "resident memory grew by {grew_kib} KiB"
    );
    assert!(closed.evicted >= 2_000 - 1_024, "{closed:?}");
    assert!(closed.timed_out >= 1, "{closed:?}");

    let row = |what: &str, figure: String, pass: bool| {
        println!(
            "RELIABILITY|endpoint|{what}|{figure}|{}",
            if pass { "pass" } else { "FAIL" }
        );
    };
    row(
        "40 scrapes during 2 000 idle connections, 64 slowloris clients, 1 MiB headers, 100 kB paths, wrong methods, binary garbage",
        format!(
            "slowest full answer {:.1} ms (bound 1 000 ms)",
            slowest.as_secs_f64() * 1e3
        ),
        true,
    );
    row(
        "threads of the process during the attack",
        format!(
            "{threads_before} before, {threads_max} at most (the test's own {attacker_threads} attackers included)"
        ),
        true,
    );
    row(
        "resident memory during the attack (client and server sockets in one process)",
        format!(
            "{} MiB before, {} MiB at most",
            rss_before / 1024,
            rss_max / 1024
        ),
        true,
    );
    row(
        "hostile requests answered (431, 414, 405, 400 or closed)",
        format!(
            "{} requests; slowloris reconnects {}; closed: {} evicted, {} timed out, {} on error",
            answered.load(Ordering::Relaxed),
            sent[0],
            closed.evicted,
            closed.timed_out,
            closed.errors
        ),
        true,
    );
}
