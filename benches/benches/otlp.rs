//! The OTLP exporter, all in one process and run:
//!
//! - the instrumented call with no exporter, with the exporter sending to a
//!   live receiver every 50 ms, and with the collector down (every export
//!   failing) — the call path must not notice any of it;
//! - the peer: the OpenTelemetry SDK's own way to time a call (an `Instant`
//!   pair and `Histogram::record` with function/module attributes, exported
//!   by `opentelemetry-otlp` through a periodic reader to the same receiver);
//! - one full export round for 1 000 sites: snapshot, encoding, and the
//!   HTTP round trip to a loopback receiver.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use overrun_benches::{batch, floors, work};
use parking_lot::Mutex;

floors!();

#[overrun::measure(budget = "1s")]
fn measured(x: u64) -> u64 {
    work(x)
}

fn sink() -> &'static str {
    static SINK: OnceLock<String> = OnceLock::new();
    SINK.get_or_init(overrun_benches::http_sink)
}

static EXPORTER: Mutex<Option<overrun_otlp::OtlpExporter>> = Mutex::new(None);

/// Installs (or removes) the exporter this case needs; each case sets its
/// own state, whatever order they run in.
fn exporter_for(case: &str) {
    let mut slot = EXPORTER.lock();
    drop(slot.take());
    let endpoint = match case {
        "none" => return,
        "collector_up" => sink().to_owned(),
        // Nothing listens on port 1: every export fails at connect.
        "collector_down" => "http://127.0.0.1:1".to_owned(),
        other => unreachable!("{other}"),
    };
    let exporter = overrun_otlp::OtlpExporter::builder()
        .endpoint(endpoint)
        .protocol(overrun_otlp::Protocol::HttpProtobuf)
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(500))
        .install()
        .expect("install the OTLP exporter");
    *slot = Some(exporter);
}

#[divan::bench(args = ["none", "collector_up", "collector_down"])]
fn overrun_measure_exporter(bencher: divan::Bencher<'_, '_>, case: &str) {
    exporter_for(case);
    bencher.bench_local(|| batch(measured));
    if case != "none" {
        let stats = EXPORTER
            .lock()
            .as_ref()
            .map(|e| e.stats())
            .unwrap_or_default();
        let worked = match case {
            "collector_up" => stats.metric_exports > 0 && stats.metric_failures == 0,
            _ => stats.metric_failures > 0 && stats.metric_exports == 0,
        };
        // A smoke run may be too short for an export; a real run is not.
        assert!(
            worked || stats.metric_exports + stats.metric_failures == 0,
            "{case}: {stats:?}"
        );
    }
    exporter_for("none");
}

/// The peer: what a team using the OpenTelemetry SDK directly writes.
#[divan::bench]
fn otel_sdk_histogram_record(bencher: divan::Bencher<'_, '_>) {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/metrics", sink()))
        .build()
        .expect("build the OTLP metric exporter");
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
        .with_interval(Duration::from_millis(50))
        .build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .build();
    let histogram = provider
        .meter("bench")
        .f64_histogram("duration")
        .with_unit("s")
        .build();
    let attributes = [
        opentelemetry::KeyValue::new("function", "measured"),
        opentelemetry::KeyValue::new("module", "otlp"),
    ];
    bencher.bench_local(|| {
        batch(|x| {
            let start = std::time::Instant::now();
            let r = work(x);
            histogram.record(start.elapsed().as_secs_f64(), &attributes);
            r
        })
    });
    let _ = provider.shutdown();
}

/// One export round for 1 000 sites (23 buckets each) to a loopback
/// receiver: snapshot, encoding, HTTP round trip.
#[divan::bench(sample_count = 30, sample_size = 1)]
fn export_1000_sites(bencher: divan::Bencher<'_, '_>) {
    overrun_benches::thousand_sites();
    let exporter = overrun_otlp::OtlpExporter::builder()
        .endpoint(sink())
        .protocol(overrun_otlp::Protocol::HttpProtobuf)
        .interval(Duration::from_secs(3600))
        .install()
        .expect("install the OTLP exporter");
    bencher.bench_local(|| assert!(exporter.flush()));
}

fn main() {
    divan::main();
}
