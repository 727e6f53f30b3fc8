//! The standard variables through the public `install()`. One test per
//! binary: it changes the process environment.

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

#[test]
fn environment_errors_name_the_variable() {
    set("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml");
    let err = OtlpExporter::builder().install().unwrap_err().to_string();
    assert_eq!(
        err,
        "OTEL_EXPORTER_OTLP_PROTOCOL: \"http/xml\" is not a protocol; expected grpc or http/protobuf"
    );
    set("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    set("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317");
    let err = OtlpExporter::builder().install().unwrap_err().to_string();
    assert_eq!(
        err,
        "OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4317\" has no scheme; write http://collector:4317 or https://collector:4317"
    );
    set("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1");
    set("OTEL_EXPORTER_OTLP_HEADERS", "api-key=hunter2,oops");
    let err = OtlpExporter::builder().install().unwrap_err().to_string();
    assert_eq!(
        err,
        "OTEL_EXPORTER_OTLP_HEADERS: entry 2 has no '=' (expected key=value)"
    );
    unset("OTEL_EXPORTER_OTLP_HEADERS");
    set("OTEL_EXPORTER_OTLP_TIMEOUT", "soon");
    let err = OtlpExporter::builder().install().unwrap_err().to_string();
    assert!(err.starts_with("OTEL_EXPORTER_OTLP_TIMEOUT: "), "{err}");
    // The builder wins over a bad variable it overrides.
    let exporter = OtlpExporter::builder()
        .timeout(std::time::Duration::from_millis(200))
        .install()
        .unwrap();
    drop(exporter);
    set("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem");
    unset("OTEL_EXPORTER_OTLP_TIMEOUT");
    let err = OtlpExporter::builder().install().unwrap_err().to_string();
    assert!(
        err.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
}
