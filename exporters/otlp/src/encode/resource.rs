//! The resource every request carries: service identity and host.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::string;

/// The resource of every request, later entries winning: the telemetry SDK
/// attributes (`opentelemetry_sdk`'s detector), `service.name =
/// unknown_service:<program>`, `OTEL_RESOURCE_ATTRIBUTES` (percent-decoded,
/// as the specification asks; the SDK's own detector leaves `%20` as is),
/// `OTEL_SERVICE_NAME`, the builder's attributes, the builder's service
/// name; then a `service.instance.id` and `host.name` when nothing set them.
pub(crate) fn resource(
    service_name: Option<&str>,
    attributes: &[(String, String)],
    env: crate::config::Env<'_>,
) -> Resource {
    use opentelemetry_sdk::resource::ResourceDetector as _;
    let mut attrs: Vec<(String, AnyValue)> = Vec::new();
    /// Sets `key` (replacing an earlier value); `None` leaves it alone.
    fn set(key: &str, value: Option<AnyValue>, attrs: &mut Vec<(String, AnyValue)>) {
        let Some(value) = value else { return };
        attrs.retain(|(k, _)| k != key);
        attrs.push((key.to_owned(), value));
    }
    let telemetry = opentelemetry_sdk::resource::TelemetryResourceDetector.detect();
    for (k, v) in telemetry.iter() {
        set(k.as_str(), string(v.to_string()), &mut attrs);
    }
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    set(
        "service.name",
        string(format!("unknown_service:{program}")),
        &mut attrs,
    );
    if let Some(list) = env("OTEL_RESOURCE_ATTRIBUTES") {
        for entry in list.split(',') {
            if let Some((k, v)) = entry.split_once('=') {
                let value =
                    crate::config::percent_decode(v.trim()).unwrap_or_else(|| v.trim().to_owned());
                set(k.trim(), string(value), &mut attrs);
            }
        }
    }
    if let Some(name) = env("OTEL_SERVICE_NAME") {
        set("service.name", string(name), &mut attrs);
    }
    for (k, v) in attributes {
        set(k, string(v.clone()), &mut attrs);
    }
    if let Some(name) = service_name {
        set("service.name", string(name), &mut attrs);
    }
    if !attrs.iter().any(|(k, _)| k == "service.instance.id") {
        set("service.instance.id", string(instance_id()), &mut attrs);
    }
    if !attrs.iter().any(|(k, _)| k == "host.name") {
        set("host.name", hostname().and_then(string), &mut attrs);
    }
    Resource {
        attributes: attrs
            .into_iter()
            .map(|(key, value)| KeyValue {
                key,
                value: Some(value),
                ..KeyValue::default()
            })
            .collect(),
        ..Resource::default()
    }
}

/// Unique enough across processes and restarts: pid, start time and the
/// address of a stack value.
fn instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let local = 0u8;
    let addr = std::ptr::addr_of!(local) as usize;
    format!(
        "{:08x}-{:016x}-{:04x}",
        std::process::id(),
        nanos as u64,
        addr & 0xffff
    )
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
