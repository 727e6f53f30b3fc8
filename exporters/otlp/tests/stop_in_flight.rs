//! The exporter stops while a request carrying violation events waits for
//! its answer: the request is answered, not abandoned and sent again, so
//! each event reaches the collector once. Until the answer, the events count
//! as pending. (Its own binary: every violation of the process reaches this
//! exporter.)

use std::sync::mpsc;
use std::time::Duration;

use overrun_otlp::{OtlpExporter, Protocol};

mod common;

#[overrun::measure(budget = "1ns")]
fn over_budget() {
    std::thread::sleep(Duration::from_micros(10));
}

#[test]
fn a_request_under_way_at_shutdown_is_answered_not_sent_twice() {
    // The receiver holds each logs request's answer until the test lets it
    // go, after the shutdown began.
    let (release, gate) = mpsc::channel();
    let (port, rx) = common::receiver_with(Vec::new(), Some(gate));
    let otlp = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(Protocol::HttpProtobuf)
        .interval(Duration::from_secs(3600))
        .events_delay(Duration::from_secs(3600))
        .events_batch(3)
        .shutdown_timeout(Duration::from_secs(3))
        .install()
        .unwrap();
    for _ in 0..3 {
        over_budget();
    }
    // The full batch leaves at once; the receiver holds its answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let first = loop {
        let req = rx
            .recv_timeout(deadline - std::time::Instant::now())
            .expect("the full batch is sent");
        if req.path == "/v1/logs" {
            break req;
        }
    };
    assert_eq!(common::log_records(&first), 3);
    let during = otlp.stats();
    assert_eq!(
        (during.events_sent, during.events_pending),
        (0, 3),
        "unanswered, the events are still pending: {during:?}"
    );
    let releasing = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        release.send(()).unwrap();
        // Further requests (none expected) are answered at once.
        drop(release);
    });
    let last = otlp.shutdown();
    releasing.join().unwrap();
    assert_eq!(
        (
            last.events_sent,
            last.events_pending,
            last.events_shutdown_dropped,
            last.log_failures
        ),
        (3, 0, 0, 0),
        "{last:?}"
    );
    assert_eq!(
        common::records_within(&rx, usize::MAX, Duration::from_millis(500)),
        0,
        "no event is sent a second time"
    );
}
