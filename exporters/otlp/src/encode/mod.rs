//! overrun snapshots and violation events as OTLP protobuf messages.
//!
//! Metrics are built from cumulative snapshots, so the cost of one export is
//! sites × buckets + tasks, whatever the number of calls. Delta temporality
//! subtracts the figures of the last export the collector accepted, so an
//! export that failed is folded into the next one and nothing is lost.

mod delta;
mod logs;
mod metrics;
mod resource;
#[cfg(test)]
mod tests;

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as AnyInner,
};

pub(crate) use delta::DeltaState;
pub(crate) use logs::logs;
pub(crate) use metrics::{Health, metrics};
pub(crate) use resource::{from_sdk, resource};

/// The event name of every violation log record.
///
/// ```
/// assert_eq!(overrun_otlp::EVENT_NAME, "overrun.budget.violation");
/// ```
pub const EVENT_NAME: &str = "overrun.budget.violation";

/// The event name of the log record of an objective met again after a
/// breach (severity INFO; a recovery is not a violation).
///
/// ```
/// assert_eq!(overrun_otlp::RECOVERED_EVENT_NAME, "overrun.objective.recovered");
/// ```
pub const RECOVERED_EVENT_NAME: &str = "overrun.objective.recovered";

fn string(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(AnyInner::StringValue(v.into())),
    })
}

/// The schema's labels as OTLP attributes: OpenTelemetry's semantic
/// conventions where one exists, `overrun.` otherwise. A site's `function`
/// and `module` become `code.function.name`, fully qualified
/// (`app::db::load_user`); a task's become `overrun.task`, a lock's
/// `overrun.lock`; the run's (`main` in `run`) `code.function.name =
/// "main"`; `kind`, `task`, `lock`, `exporter`, `signal`, `reason` and
/// `result` go under `overrun.`, a lock's `mode` and `contended` under
/// `overrun.lock.`. (Prometheus keeps its labels as they are.)
pub(crate) fn attributes(labels: &[(&'static str, &str)]) -> Vec<KeyValue> {
    let get = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut out = Vec::with_capacity(labels.len());
    match (get("function"), get("module")) {
        (Some(task), Some(overrun::export::TASK_MODULE)) => out.push(kv("overrun.task", task)),
        (Some(lock), Some(overrun::export::LOCK_MODULE)) => out.push(kv("overrun.lock", lock)),
        (Some(main), Some(overrun::export::RUN_MODULE)) => out.push(kv(FUNCTION, main)),
        (Some(function), Some(module)) => out.push(kv(FUNCTION, format!("{module}::{function}"))),
        (Some(function), None) => out.push(kv(FUNCTION, function)),
        _ => {}
    }
    for &(k, v) in labels {
        let key = match k {
            "function" | "module" => continue,
            "kind" => "overrun.kind",
            "task" => "overrun.task",
            "lock" => "overrun.lock",
            "mode" => "overrun.lock.mode",
            "contended" => "overrun.lock.contended",
            "exporter" => "overrun.exporter",
            "signal" => "overrun.signal",
            "reason" => "overrun.reason",
            "result" => "overrun.result",
            "quantile" => "overrun.quantile",
            other => other,
        };
        out.push(kv(key, v));
    }
    out
}

/// OpenTelemetry's key for a function's fully qualified name.
pub(crate) const FUNCTION: &str = "code.function.name";

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: string(value),
        ..KeyValue::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(AnyInner::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "overrun".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}
