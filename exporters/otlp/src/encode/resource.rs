//! The resource every request carries: service identity and host.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::string;

/// The resource of every request, later entries winning: the telemetry SDK
/// attributes (overrun's own: it encodes the data), `service.name =
/// unknown_service:<program>`, `OTEL_RESOURCE_ATTRIBUTES` (percent-decoded,
/// as the specification asks; the SDK's own detector leaves `%20` as is),
/// `OTEL_SERVICE_NAME`, the application's own `Resource` (so its traces and
/// overrun's data share one), the builder's attributes, the builder's
/// service name; then a `service.instance.id` (a random UUID) and
/// `host.name` when nothing set them.
pub(crate) fn resource(
    service_name: Option<&str>,
    attributes: &[(String, String)],
    app: &[(String, AnyValue)],
    env: crate::config::Env<'_>,
) -> Resource {
    let mut attrs: Vec<(String, AnyValue)> = Vec::new();
    /// Sets `key` (replacing an earlier value); `None` leaves it alone.
    fn set(key: &str, value: Option<AnyValue>, attrs: &mut Vec<(String, AnyValue)>) {
        let Some(value) = value else { return };
        attrs.retain(|(k, _)| k != key);
        attrs.push((key.to_owned(), value));
    }
    set("telemetry.sdk.name", string("overrun"), &mut attrs);
    set("telemetry.sdk.language", string("rust"), &mut attrs);
    set(
        "telemetry.sdk.version",
        string(env!("CARGO_PKG_VERSION")),
        &mut attrs,
    );
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
    // The application's resource, but for its SDK's `telemetry.sdk.*`:
    // overrun, not that SDK, encodes this data.
    for (k, v) in app.iter().filter(|(k, _)| !k.starts_with("telemetry.sdk.")) {
        set(k, Some(v.clone()), &mut attrs);
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

/// A random (version 4) UUID, as the semantic conventions recommend for
/// `service.instance.id`; from the OS's random source, else from the
/// process' hash seeds, the clock and the pid.
fn instance_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        use std::hash::{BuildHasher as _, Hasher as _};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (i, half) in b.chunks_mut(8).enumerate() {
            let mut h = std::hash::RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            h.write_usize(i);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// An application's OpenTelemetry resource as OTLP attributes (the
/// conversion `opentelemetry-proto` provides).
pub(crate) fn from_sdk(resource: &opentelemetry_sdk::Resource) -> Vec<(String, AnyValue)> {
    resource
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), AnyValue::from(v.clone())))
        .collect()
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
