//! Out of file descriptors: the accept that fails closes the oldest
//! connection still waiting for its request, and the scrape is answered.
//! (Its own test binary: it lowers the process' open-file limit.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn set_soft_limit(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0);
    limit.rlim_cur = n as libc::rlim_t;
    // SAFETY: `limit` is a valid `rlimit`; lowering the soft limit is allowed.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0);
}

#[test]
fn out_of_descriptors_the_oldest_waiting_connection_makes_room() {
    let exporter = overrun_prometheus::PrometheusExporter::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .install()
        .unwrap();
    let addr = exporter.local_addr();
    // 50 connections that send nothing, all accepted (a socket each side).
    let before = open_descriptors();
    let idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_descriptors() < before + 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        open_descriptors() >= before + 100,
        "every connection accepted"
    );

    // Every descriptor taken but one; the scrape's own socket takes that,
    // so the server's accept fails until it closes an idle connection.
    set_soft_limit(open_descriptors() + 64);
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
    }
    filler.pop();
    let mut s = TcpStream::connect(addr).expect("the last descriptor");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    drop(filler);
    set_soft_limit(4_096);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
    let closed = exporter.closed();
    assert!(closed.evicted >= 1, "{closed:?}");
    assert!(closed.evicted <= 3, "no cascade of evictions: {closed:?}");
    drop(idle);
}
