//! A collector that is down, one that never answers, and settings that are
//! wrong: a clear error or a counted failure, never a panic, never a wait
//! past the configured timeout.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use overrun_otlp::{OtlpExporter, Protocol};

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

#[overrun::measure(budget = "1ns")]
fn always_over() -> u64 {
    std::thread::sleep(Duration::from_micros(10));
    std::hint::black_box(1)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn unreachable_collector_is_a_counted_failure() {
    for protocol in PROTOCOLS {
        let exporter = OtlpExporter::builder()
            .endpoint(format!("http://127.0.0.1:{}", closed_port()))
            .protocol(protocol)
            .interval(Duration::from_millis(20))
            .timeout(Duration::from_secs(2))
            .install()
            .unwrap();
        always_over();
        assert!(exporter.wait_rounds(2, Duration::from_secs(20)));
        let stats = exporter.stats();
        assert!(stats.metric_failures >= 2, "{protocol:?}: {stats:?}");
        assert_eq!(stats.metric_exports, 0);
        let error = stats.last_error.clone().unwrap_or_default().to_lowercase();
        assert!(error.contains("connect"), "{protocol:?}: {error}");
        // The event waits for the collector rather than being lost.
        assert!(stats.events_pending >= 1, "{stats:?}");
        let started = Instant::now();
        let last = exporter.shutdown();
        assert!(started.elapsed() < Duration::from_secs(3), "{protocol:?}");
        assert!(last.metric_failures > stats.metric_failures);
    }
}

#[test]
fn silent_collector_times_out_and_shutdown_is_bounded() {
    // Accepts connections (the kernel completes the handshake) and never
    // answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut sockets = Vec::new();
        for s in listener.incoming().take(16) {
            sockets.push(s);
        }
    });
    for protocol in PROTOCOLS {
        let timeout = Duration::from_millis(300);
        let exporter = OtlpExporter::builder()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .protocol(protocol)
            .interval(Duration::from_millis(10))
            .timeout(timeout)
            .install()
            .unwrap();
        assert!(exporter.wait_rounds(1, Duration::from_secs(20)));
        let stats = exporter.stats();
        assert!(stats.metric_failures >= 1, "{protocol:?}: {stats:?}");
        let error = stats.last_error.clone().unwrap_or_default().to_lowercase();
        assert!(
            error.contains("timed out") || error.contains("timeout"),
            "{protocol:?}: {error}"
        );
        always_over();
        let started = Instant::now();
        let last = exporter.shutdown();
        // The last export is bounded by the timeout; allow scheduling slack.
        assert!(
            started.elapsed() < timeout + Duration::from_millis(1500),
            "{protocol:?}: shutdown took {:?}",
            started.elapsed()
        );
        // The event the last round could not deliver is accounted for:
        // dropped with the exporter and counted, not left looking pending
        // (tests/hung_collector.rs counts every one).
        assert_eq!(last.events_sent, 0, "{protocol:?}: {last:?}");
        assert_eq!(last.events_pending, 0, "{protocol:?}: {last:?}");
        assert!(last.events_shutdown_dropped >= 1, "{protocol:?}: {last:?}");
    }
    drop(held);
}

#[test]
fn malformed_endpoints_are_clear_errors() {
    let cases = [
        (
            "localhost:4317",
            "has no scheme; write http://localhost:4317",
        ),
        ("ftp://collector:21", "scheme \"ftp\" is not http or https"),
        ("http://", "is not a URL"),
        ("http://bad host:4317", "is not a URL"),
    ];
    for protocol in PROTOCOLS {
        for (endpoint, expected) in cases {
            let err = OtlpExporter::builder()
                .endpoint(endpoint)
                .protocol(protocol)
                .install()
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("endpoint(): "), "{err}");
            assert!(err.contains(expected), "{endpoint}: {err}");
        }
    }
}

#[test]
fn bad_builder_values_are_clear_errors() {
    let err = OtlpExporter::builder()
        .interval(Duration::ZERO)
        .install()
        .unwrap_err();
    assert_eq!(err.to_string(), "interval(): must be greater than zero");
    let err = OtlpExporter::builder()
        .buckets(vec![0.1, 0.01])
        .install()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "buckets(): bounds must increase: 0.1 is followed by 0.01"
    );
    let err = OtlpExporter::builder()
        .header("api key", "hunter2")
        .install()
        .unwrap_err()
        .to_string();
    assert_eq!(err, "header(): \"api key\" is not a valid header name");
    let err = OtlpExporter::builder()
        .header("api-key", "hunter2\n")
        .install()
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    for protocol in PROTOCOLS {
        let err = OtlpExporter::builder()
            .endpoint("https://127.0.0.1:1")
            .protocol(protocol)
            .ca_certificate_pem("not a certificate")
            .install()
            .unwrap_err()
            .to_string();
        assert_eq!(err, "CA certificate: no certificate found in the PEM");
    }
}

#[test]
fn events_stay_bounded_through_an_outage() {
    let exporter = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{}", closed_port()))
        .interval(Duration::from_secs(3600))
        .timeout(Duration::from_millis(500))
        .events_per_second(1_000)
        .max_pending_events(10)
        .install()
        .unwrap();
    let before = exporter.stats();
    for _ in 0..200 {
        over_in_outage();
    }
    // Some of the 200 may be over the rate limit if a second boundary falls
    // in between; the queue never holds more than its bound either way.
    assert!(!exporter.flush());
    let stats = exporter.stats();
    assert_eq!(stats.events_pending, 10, "{stats:?}");
    // Other tests in this binary may add a violation or two of their own.
    let admitted = 200 - (stats.events_rate_limited - before.events_rate_limited);
    assert!(stats.events_queue_dropped >= admitted - 10, "{stats:?}");
    assert_eq!(stats.events_sent, 0);
}

#[overrun::measure(budget = "1ns")]
fn over_in_outage() -> u64 {
    std::hint::black_box(2)
}

/// A setting that fails while the transport is built (here a CA bundle
/// with no certificate) is an error naming it, also when `install()` runs
/// inside the application's runtime: the exporter's own runtime is built
/// and dropped on its thread, never in the caller's async context (where
/// dropping a runtime panics).
#[test]
fn install_inside_a_runtime_returns_the_error() {
    for multi_thread in [false, true] {
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().build()
        } else {
            tokio::runtime::Builder::new_current_thread().build()
        }
        .unwrap();
        let err = runtime.block_on(async {
            OtlpExporter::builder()
                .endpoint("https://127.0.0.1:1")
                .ca_certificate_pem("not a certificate")
                .install()
                .unwrap_err()
        });
        let text = err.to_string();
        assert!(text.starts_with("CA certificate"), "{text}");
        // And a working one, installed and dropped there too.
        runtime.block_on(async {
            let otlp = OtlpExporter::builder()
                .endpoint("http://127.0.0.1:1")
                .timeout(Duration::from_millis(200))
                .install()
                .unwrap();
            drop(otlp);
        });
    }
}
