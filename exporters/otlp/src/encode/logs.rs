//! Violation events, and objectives' recoveries, as OTLP log records.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{EVENT_NAME, RECOVERED_EVENT_NAME, attributes, kv, kv_int, scope, string};
use crate::events::Event;

/// The violation events as one logs request.
pub(crate) fn logs(events: &[Event], resource: &Resource) -> ExportLogsServiceRequest {
    let log_records = events.iter().map(record).collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn record(e: &Event) -> LogRecord {
    let v = &e.violation;
    let as_int = |x: u64| x.min(i64::MAX as u64) as i64;
    // The site as the metrics name it (`code.function.name`, or
    // `overrun.task` for a task), then the semantic conventions' keys where
    // one exists and `overrun.` otherwise.
    let mut attributes = attributes(&[("function", v.name), ("module", v.module)]);
    attributes.extend([
        kv("overrun.kind", v.kind.as_str()),
        kv_int("overrun.observed", as_int(v.observed)),
        kv_int("overrun.limit", as_int(v.limit)),
        kv("overrun.unit", v.unit()),
        kv(
            "thread.name",
            e.thread
                .as_deref()
                .map_or_else(|| format!("{:?}", v.thread), str::to_owned),
        ),
        kv("code.file.path", v.file),
        kv_int("code.line.number", i64::from(v.line)),
    ]);
    if let Some(objective) = v.objective {
        attributes.push(kv("overrun.objective", objective.key()));
    }
    if let Some(r) = &e.recovery {
        attributes.push(kv_int("overrun.window_ns", as_int(r.window_ns)));
    }
    if e.suppressed > 0 {
        // Violations of this site and kind not sent since its last event.
        attributes.push(kv_int("overrun.suppressed", as_int(e.suppressed)));
    }
    let (trace_id, span_id, flags) = match &e.trace {
        Some(t) => (t.trace_id.to_vec(), t.span_id.to_vec(), u32::from(t.flags)),
        None => (Vec::new(), Vec::new(), 0),
    };
    // A recovery is not a violation: INFO, under its own event name.
    let (severity, text, body, name) = match &e.recovery {
        Some(r) => (
            SeverityNumber::Info,
            "INFO",
            r.to_string(),
            RECOVERED_EVENT_NAME,
        ),
        None => (SeverityNumber::Warn, "WARN", v.to_string(), EVENT_NAME),
    };
    LogRecord {
        time_unix_nano: v.unix_nanos,
        observed_time_unix_nano: v.unix_nanos,
        severity_number: severity as i32,
        severity_text: text.to_owned(),
        body: string(body),
        attributes,
        flags,
        trace_id,
        span_id,
        event_name: name.to_owned(),
        ..LogRecord::default()
    }
}
