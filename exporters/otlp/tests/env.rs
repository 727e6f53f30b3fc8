//! The standard variables through the public `install()`. One test per
//! binary: it changes the process environment.

use std::time::Duration;

use overrun_otlp::OtlpExporter;

fn set(name: &str, value: &str) {
    // SAFETY: this test binary runs a single test on a single thread; no
    // other thread reads the environment while it is changed.
    unsafe { std::env::set_var(name, value) };
}

fn unset(name: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(name) };
}

#[overrun::measure(budget = "1ns")]
fn over_budget() {
    std::thread::sleep(Duration::from_micros(10));
}

#[test]
fn variables_never_stop_start_up_and_none_turns_a_signal_off() {
    // Invalid values, as a platform may inject them: warned about on
    // stderr, replaced by the defaults; the exporter starts and works.
    set("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1");
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=hunter2,oops"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ("OTEL_SDK_DISABLED", "maybe"),
    ] {
        set(var, value);
        let exporter = OtlpExporter::builder()
            .install()
            .unwrap_or_else(|e| panic!("{var}={value} stopped start-up: {e}"));
        assert!(!exporter.flush(), "it exports (to nothing: port 1)");
        assert_eq!(exporter.stats().metric_failures, 1, "{var}={value}");
        drop(exporter);
        unset(var);
    }
    // A builder value is still an error, and names its method.
    let err = OtlpExporter::builder()
        .timeout(Duration::ZERO)
        .install()
        .unwrap_err();
    assert_eq!(err.to_string(), "timeout(): must be greater than zero");

    // Logs off: no violation event is even queued; metrics still go.
    set("OTEL_LOGS_EXPORTER", "none");
    let exporter = OtlpExporter::builder().install().unwrap();
    over_budget();
    assert!(!exporter.flush());
    let stats = exporter.stats();
    assert_eq!(
        (stats.events_pending, stats.log_failures),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.metric_failures, 1);
    drop(exporter);
    unset("OTEL_LOGS_EXPORTER");

    // Metrics off: events still go (and fail: port 1), no metric request.
    set("OTEL_METRICS_EXPORTER", "none");
    let exporter = OtlpExporter::builder().install().unwrap();
    over_budget();
    assert!(!exporter.flush());
    let stats = exporter.stats();
    assert_eq!(
        (stats.metric_exports, stats.metric_failures),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(
        (stats.log_failures, stats.events_pending),
        (1, 1),
        "{stats:?}"
    );
    drop(exporter);
    unset("OTEL_METRICS_EXPORTER");

    // The whole SDK off: nothing runs, nothing is sent or kept.
    set("OTEL_SDK_DISABLED", "true");
    let exporter = OtlpExporter::builder().install().unwrap();
    over_budget();
    assert!(exporter.flush(), "nothing to send");
    assert_eq!(
        exporter.stats(),
        OtlpExporter::builder().install().unwrap().stats()
    );
    assert_eq!(exporter.stats().events_pending, 0);
    assert_eq!(exporter.rounds(), 0);
    unset("OTEL_SDK_DISABLED");
}
