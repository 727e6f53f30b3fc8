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

fn string(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(AnyInner::StringValue(v.into())),
    })
}

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
