//! A collector that accepts connections and never answers, with the default
//! timeouts (10 s): the exporter stops within its shutdown timeout, the
//! request under way gets half of it and then gives way to the last round,
//! and every violation event
//! is either sent or counted as dropped with its reason. (Its own binary:
//! every violation of the process reaches this exporter.)

use std::net::TcpListener;
use std::time::{Duration, Instant};

use overrun_otlp::{OtlpExporter, Protocol};

#[overrun::measure(budget = "1ns")]
fn over_budget() {
    std::thread::sleep(Duration::from_micros(10));
}

#[test]
fn every_event_is_sent_or_counted_when_the_collector_hangs() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || listener.incoming().take(16).collect::<Vec<_>>());
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let exporter = OtlpExporter::builder()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .protocol(protocol)
            .events_delay(Duration::from_millis(20))
            .shutdown_timeout(Duration::from_millis(500))
            .install()
            .unwrap();
        // Batches are taken and sent (and hang) while violations go on.
        for _ in 0..86 {
            over_budget();
            std::thread::sleep(Duration::from_millis(2));
        }
        let started = Instant::now();
        let last = exporter.shutdown();
        let took = started.elapsed();
        // The shutdown timeout, not the 10 s request timeout, bounds it.
        assert!(
            took < Duration::from_millis(2_000),
            "{protocol:?}: shutdown took {took:?}"
        );
        let accounted = last.events_sent
            + last.events_pending
            + last.events_rate_limited
            + last.events_queue_dropped
            + last.events_shutdown_dropped;
        assert_eq!(accounted, 86, "{protocol:?}: {last:?}");
        assert_eq!(last.events_shutdown_dropped, 86, "{protocol:?}: {last:?}");
    }
    drop(held);
}
