//! Cases the real collector (e2e.sh) cannot show: what exactly is on the
//! wire over HTTP (headers, content type, delta temporality when the
//! collector refused an export). A small HTTP/1.1 receiver decodes each
//! request with the OTLP protobuf types.

use std::io::Read as _;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric::Data};
use overrun_otlp::{OtlpExporter, Protocol, Temporality};
use prost::Message as _;

mod common;
use common::{Request, receiver};

#[overrun::measure]
fn delta_fn() -> u64 {
    std::hint::black_box(3)
}

#[overrun::measure]
fn cumulative_fn() -> u64 {
    std::hint::black_box(4)
}

/// The calls of `function` in a metrics request, with the temporality.
fn calls_of(req: &ExportMetricsServiceRequest, function: &str) -> (i64, i32, u64) {
    let metric = req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "overrun.calls")
        .expect("overrun.calls sent");
    let Some(Data::Sum(sum)) = &metric.data else {
        panic!("overrun.calls is a sum")
    };
    let point = sum
        .data_points
        .iter()
        .find(|p| {
            p.attributes.iter().any(|a| {
                a.key == "code.function.name"
                    && a.value.as_ref().and_then(|v| v.value.as_ref())
                        == Some(&Value::StringValue(format!(
                            "{}::{function}",
                            module_path!()
                        )))
            })
        })
        .expect("a point for the function");
    let value = match point.value {
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i,
        _ => panic!("an integer count"),
    };
    (
        value,
        sum.aggregation_temporality,
        point.start_time_unix_nano,
    )
}

fn calls(req: &ExportMetricsServiceRequest) -> (i64, i32, u64) {
    calls_of(req, "delta_fn")
}

fn next_metrics(rx: &mpsc::Receiver<Request>) -> Request {
    loop {
        let r = rx.recv_timeout(Duration::from_secs(20)).expect("a request");
        if r.path == "/v1/metrics" {
            return r;
        }
    }
}

#[test]
fn delta_after_a_refused_export_covers_both_windows() {
    // First export accepted, second refused (503), third accepted.
    let (port, rx) = receiver(vec![200, 503, 200]);
    for _ in 0..4 {
        delta_fn();
    }
    let exporter = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(Protocol::HttpProtobuf)
        .temporality(Temporality::Delta)
        .interval(Duration::from_secs(3600))
        .header("api-key", "k-123")
        .install()
        .unwrap();

    // The interval is an hour: each `flush` below is the only thing that
    // sends.
    assert!(exporter.flush());
    let first = next_metrics(&rx);
    assert!(first.headers.contains(&("api-key".into(), "k-123".into())));
    assert!(
        first
            .headers
            .contains(&("content-type".into(), "application/x-protobuf".into()))
    );
    let req = ExportMetricsServiceRequest::decode(&*first.body).unwrap();
    let (n, temporality, start1) = calls(&req);
    assert_eq!(n, 4);
    assert_eq!(temporality, AggregationTemporality::Delta as i32);

    for _ in 0..3 {
        delta_fn();
    }
    assert!(!exporter.flush()); // refused
    let refused = ExportMetricsServiceRequest::decode(&*next_metrics(&rx).body).unwrap();
    assert_eq!(calls(&refused).0, 3);
    assert_eq!(exporter.stats().metric_failures, 1);
    assert!(
        exporter
            .stats()
            .last_error
            .unwrap()
            .contains("HTTP 503 Service Unavailable")
    );

    for _ in 0..2 {
        delta_fn();
    }
    assert!(exporter.flush());
    let third = ExportMetricsServiceRequest::decode(&*next_metrics(&rx).body).unwrap();
    let (n, _, start3) = calls(&third);
    // Nothing lost: the refused window's 3 calls come with the new 2, and
    // the window starts where the last accepted one ended.
    assert_eq!(n, 5);
    assert!(start3 > start1);
    assert_eq!(exporter.stats().metric_exports, 2);
}

#[test]
fn cumulative_by_default_with_an_instance_id() {
    let (port, rx) = receiver(vec![]);
    cumulative_fn();
    let exporter = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}/"))
        .protocol(Protocol::HttpProtobuf)
        .interval(Duration::from_secs(3600))
        .install()
        .unwrap();
    assert!(exporter.flush());
    let req = ExportMetricsServiceRequest::decode(&*next_metrics(&rx).body).unwrap();
    let (n, temporality, _) = calls_of(&req, "cumulative_fn");
    assert_eq!(n, 1);
    assert_eq!(temporality, AggregationTemporality::Cumulative as i32);
    let resource = req.resource_metrics[0].resource.as_ref().unwrap();
    assert!(
        resource
            .attributes
            .iter()
            .any(|a| a.key == "service.instance.id")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn installs_and_stops_inside_an_async_runtime() {
    // A service's `main` is usually async: the exporter's own runtime lives
    // on its own thread, so installing, flushing and dropping it from inside
    // another runtime neither panics nor blocks that runtime for long.
    let (port, rx) = receiver(vec![]);
    let exporter = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(Protocol::HttpProtobuf)
        .interval(Duration::from_secs(3600))
        .install()
        .unwrap();
    assert!(exporter.flush());
    assert!(!next_metrics(&rx).body.is_empty());
    tokio::task::yield_now().await;
    drop(exporter);
}

#[overrun::measure]
fn gzip_fn() -> u64 {
    std::hint::black_box(5)
}

#[test]
fn gzip_bodies_are_gzip() {
    let (port, rx) = receiver(vec![]);
    gzip_fn();
    let exporter = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(Protocol::HttpProtobuf)
        .compression(overrun_otlp::Compression::Gzip)
        .interval(Duration::from_secs(3600))
        .install()
        .unwrap();
    assert!(exporter.flush());
    let request = next_metrics(&rx);
    assert!(
        request
            .headers
            .contains(&("content-encoding".into(), "gzip".into()))
    );
    let mut protobuf = Vec::new();
    flate2::read::GzDecoder::new(&*request.body)
        .read_to_end(&mut protobuf)
        .unwrap();
    assert!(protobuf.len() > request.body.len());
    let req = ExportMetricsServiceRequest::decode(&*protobuf).unwrap();
    assert_eq!(calls_of(&req, "gzip_fn").0, 1);
}

#[overrun::measure(budget = "1ns")]
fn eventful() {
    std::thread::sleep(Duration::from_micros(10));
}

/// Violation events leave on their own schedule (the batch log processor's),
/// not with the metrics: with an hour between metric exports, they arrive
/// within the events delay, and a full batch goes at once.
#[test]
fn events_leave_on_their_own_schedule() {
    let (port, rx) = receiver(Vec::new());
    let otlp = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(Protocol::HttpProtobuf)
        .interval(Duration::from_secs(3600))
        .events_delay(Duration::from_millis(200))
        .events_batch(5)
        .install()
        .unwrap();
    let records = |expected: usize, timeout: Duration| -> usize {
        common::records_within(&rx, expected, timeout)
    };
    // Two events: sent by the schedule, well before the metrics' hour.
    eventful();
    eventful();
    assert_eq!(records(2, Duration::from_secs(3)), 2);
    // Twelve more: sent on the schedule too.
    for _ in 0..12 {
        eventful();
    }
    assert_eq!(records(12, Duration::from_secs(3)), 12);
    // The worker counts a request once its answer is read.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while otlp.stats().events_sent < 14 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = otlp.stats();
    assert_eq!(
        (
            stats.events_sent,
            stats.events_pending,
            stats.metric_exports
        ),
        (14, 0, 0),
        "{stats:?}"
    );
    drop(otlp);
    // With an hour between event sends, only full batches go at once.
    let otlp = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(Protocol::HttpProtobuf)
        .interval(Duration::from_secs(3600))
        .events_delay(Duration::from_secs(3600))
        .events_batch(5)
        .install()
        .unwrap();
    for _ in 0..12 {
        eventful();
    }
    assert_eq!(records(10, Duration::from_secs(3)), 10, "two full batches");
    assert_eq!(
        records(1, Duration::from_millis(500)),
        0,
        "the other 2 wait"
    );
    assert_eq!(otlp.stats().events_pending, 2);
}
