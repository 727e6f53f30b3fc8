//! overrun snapshots and violation events as OTLP protobuf messages.
//!
//! Metrics are built from cumulative snapshots, so the cost of one export is
//! sites × buckets + tasks, whatever the number of calls. Delta temporality
//! subtracts the figures of the last export the collector accepted, so an
//! export that failed is folded into the next one and nothing is lost.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as AnyInner,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point::Value as Number,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use overrun::Snapshot;

use crate::Temporality;
use crate::events::Event;

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

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Counters the exporter keeps about itself, exported with the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Health {
    pub(crate) metric_failures: u64,
    pub(crate) log_failures: u64,
    /// Events over the rate limit.
    pub(crate) rate_dropped: u64,
    /// Events evicted because the pending queue was full (collector down).
    pub(crate) queue_dropped: u64,
}

/// One metric under construction: its points accumulate as the snapshot is
/// walked.
struct Builder {
    start: u64,
    now: u64,
    temporality: Temporality,
    metrics: Vec<Metric>,
}

/// Values of numbers go through this so one function makes every point.
#[derive(Clone, Copy)]
enum Val {
    Int(u64),
    Double(f64),
}

impl Builder {
    fn point(&self, attributes: Vec<KeyValue>, v: Val) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            start_time_unix_nano: self.start,
            time_unix_nano: self.now,
            value: Some(match v {
                Val::Int(i) => Number::AsInt(i.min(i64::MAX as u64) as i64),
                Val::Double(d) => Number::AsDouble(d),
            }),
            ..NumberDataPoint::default()
        }
    }

    fn sum(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        points: impl IntoIterator<Item = (Vec<KeyValue>, Val)>,
    ) {
        let data_points: Vec<_> = points.into_iter().map(|(a, v)| self.point(a, v)).collect();
        if data_points.is_empty() {
            return;
        }
        self.metrics.push(Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            data: Some(Data::Sum(Sum {
                data_points,
                aggregation_temporality: self.temporality.proto() as i32,
                is_monotonic: true,
            })),
            ..Metric::default()
        });
    }

    fn gauge(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        points: impl IntoIterator<Item = (Vec<KeyValue>, Val)>,
    ) {
        let data_points: Vec<_> = points
            .into_iter()
            .map(|(a, v)| NumberDataPoint {
                start_time_unix_nano: 0,
                ..self.point(a, v)
            })
            .collect();
        if data_points.is_empty() {
            return;
        }
        self.metrics.push(Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            data: Some(Data::Gauge(Gauge { data_points })),
            ..Metric::default()
        });
    }

    fn histogram<'h>(
        &mut self,
        name: &str,
        description: &str,
        bounds: &[f64],
        points: impl IntoIterator<Item = (Vec<KeyValue>, &'h overrun::stats::Histogram, u64, u64)>,
    ) {
        let data_points: Vec<_> = points
            .into_iter()
            .map(|(attributes, h, count, sum_ns)| {
                let cumulative = h.cumulative_counts(bounds);
                let mut bucket_counts = Vec::with_capacity(bounds.len() + 1);
                let mut last = 0;
                for c in cumulative {
                    bucket_counts.push(c - last);
                    last = c;
                }
                bucket_counts.push(count.saturating_sub(last));
                HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: self.start,
                    time_unix_nano: self.now,
                    count,
                    sum: Some(seconds(sum_ns)),
                    bucket_counts,
                    explicit_bounds: bounds.to_vec(),
                    max: (count > 0).then(|| seconds(h.max())),
                    ..HistogramDataPoint::default()
                }
            })
            .collect();
        if data_points.is_empty() {
            return;
        }
        self.metrics.push(Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: "s".to_owned(),
            data: Some(Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: self.temporality.proto() as i32,
            })),
            ..Metric::default()
        });
    }
}

impl Temporality {
    fn proto(self) -> AggregationTemporality {
        match self {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta => AggregationTemporality::Delta,
        }
    }
}

/// Sites per metrics request: about 100 KiB of protobuf, far below the
/// 4 MiB a collector accepts by default, however many sites there are.
pub(crate) const SITES_PER_REQUEST: usize = 200;

/// The cumulative metrics of `snap` (times in Unix nanoseconds), as one
/// request per [`SITES_PER_REQUEST`] sites; the process-wide series (tasks,
/// memory, exporter health) go in the first.
pub(crate) fn metrics(
    snap: &Snapshot,
    resource: &Resource,
    bounds: &[f64],
    health: Health,
    start: u64,
    now: u64,
) -> Vec<ExportMetricsServiceRequest> {
    let mut chunks: Vec<&[overrun::report::SiteSnapshot]> =
        snap.sites.chunks(SITES_PER_REQUEST).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, sites)| {
            let process = (i == 0).then_some((snap, health));
            request(sites, process, resource, bounds, start, now)
        })
        .collect()
}

fn request(
    sites: &[overrun::report::SiteSnapshot],
    process: Option<(&Snapshot, Health)>,
    resource: &Resource,
    bounds: &[f64],
    start: u64,
    now: u64,
) -> ExportMetricsServiceRequest {
    let mut b = Builder {
        start,
        now,
        temporality: Temporality::Cumulative,
        metrics: Vec::new(),
    };
    let site_attrs =
        |s: &overrun::report::SiteSnapshot| vec![kv("function", s.name), kv("module", s.module)];
    let per_site = |f: fn(&overrun::report::SiteSnapshot) -> Option<Val>| {
        sites
            .iter()
            .filter_map(move |s| f(s).map(|v| (site_attrs(s), v)))
    };

    b.sum(
        "overrun.calls",
        "{call}",
        "Completed calls of a measured function.",
        per_site(|s| Some(Val::Int(s.calls))),
    );
    b.sum(
        "overrun.errors",
        "{call}",
        "Calls that returned Err or panicked.",
        per_site(|s| Some(Val::Int(s.errors))),
    );
    b.histogram(
        "overrun.duration",
        "Duration of calls (async fn: first poll to completion).",
        bounds,
        sites
            .iter()
            .map(|s| (site_attrs(s), &s.histogram, s.calls, s.total_ns)),
    );
    b.sum(
        "overrun.self_duration",
        "s",
        "Time spent in the function itself, measured callees excluded.",
        per_site(|s| Some(Val::Double(seconds(s.self_ns)))),
    );
    b.sum(
        "overrun.allocations",
        "{allocation}",
        "Heap allocations made during calls, callees included.",
        per_site(|s| s.allocs.map(Val::Int)),
    );
    b.sum(
        "overrun.allocated_bytes",
        "By",
        "Heap bytes allocated during calls, callees included.",
        per_site(|s| s.alloc_bytes.map(Val::Int)),
    );
    b.gauge(
        "overrun.budget",
        "s",
        "The time budget of one call, as declared.",
        per_site(|s| s.budget.time_ns.map(|ns| Val::Double(seconds(ns)))),
    );

    let mut violations = Vec::new();
    for s in sites {
        for (kind, n) in s.violation_counts() {
            let mut a = site_attrs(s);
            a.push(kv("kind", kind.as_str()));
            violations.push((a, Val::Int(n)));
        }
    }
    let Some((snap, health)) = process else {
        b.sum(
            "overrun.budget.violations",
            "{violation}",
            "Calls, polls, tasks or runs over their budget, by kind.",
            violations,
        );
        return finish(b.metrics, resource);
    };
    for t in &snap.tasks {
        for (kind, n) in [("poll", t.poll_violations), ("lifetime", t.leaked)] {
            let a = vec![
                kv("function", t.name),
                kv("module", "task"),
                kv("kind", kind),
            ];
            violations.push((a, Val::Int(n)));
        }
    }
    for v in &snap.run.violations {
        let a = vec![
            kv("function", "main"),
            kv("module", "run"),
            kv("kind", v.kind.as_str()),
        ];
        violations.push((a, Val::Int(1)));
    }
    b.sum(
        "overrun.budget.violations",
        "{violation}",
        "Calls, polls, tasks or runs over their budget, by kind.",
        violations,
    );

    type TaskField = fn(&overrun::tasks::TaskStats) -> Val;
    let task_sums: [(&str, &str, &str, TaskField); 7] = [
        ("overrun.tasks.spawned", "{task}", "Tasks created.", |t| {
            Val::Int(t.spawned)
        }),
        (
            "overrun.tasks.completed",
            "{task}",
            "Tasks that ran to completion.",
            |t| Val::Int(t.completed),
        ),
        (
            "overrun.tasks.cancelled",
            "{task}",
            "Tasks dropped before completion.",
            |t| Val::Int(t.cancelled),
        ),
        (
            "overrun.tasks.panicked",
            "{task}",
            "Tasks ended by a panic.",
            |t| Val::Int(t.panicked),
        ),
        (
            "overrun.tasks.leaked",
            "{task}",
            "Tasks that outlived their lifetime budget.",
            |t| Val::Int(t.leaked),
        ),
        ("overrun.task.polls", "{poll}", "Polls of tasks.", |t| {
            Val::Int(t.polls)
        }),
        (
            "overrun.task.busy",
            "s",
            "Time tasks spent in polls.",
            |t| Val::Double(seconds(t.busy_ns)),
        ),
    ];
    let task_attrs = |t: &overrun::tasks::TaskStats| vec![kv("task", t.name)];
    for (name, unit, description, field) in task_sums {
        b.sum(
            name,
            unit,
            description,
            snap.tasks.iter().map(|t| (task_attrs(t), field(t))),
        );
    }
    b.gauge(
        "overrun.tasks.live",
        "{task}",
        "Tasks alive now.",
        snap.tasks.iter().map(|t| (task_attrs(t), Val::Int(t.live))),
    );
    b.histogram(
        "overrun.task.poll_duration",
        "Duration of single polls of tracked tasks.",
        bounds,
        snap.tasks.iter().map(|t| {
            let h = &t.poll_histogram;
            (task_attrs(t), h, h.count(), t.busy_ns)
        }),
    );
    b.gauge(
        "overrun.task.poll_max",
        "s",
        "Longest single poll of a task of this name.",
        snap.tasks
            .iter()
            .map(|t| (task_attrs(t), Val::Double(seconds(t.max_poll_ns)))),
    );

    b.gauge(
        "overrun.process.peak_resident_memory",
        "By",
        "Peak resident memory of the process.",
        [(Vec::new(), Val::Int(snap.run.peak_rss_bytes))],
    );
    b.gauge(
        "overrun.heap.live",
        "By",
        "Live heap bytes (CountingAlloc).",
        snap.run.heap_live_bytes.map(|l| (Vec::new(), Val::Int(l))),
    );
    let exporter = || kv("exporter", "otlp");
    b.sum(
        "overrun.export.failures",
        "{export}",
        "Exports that did not reach the collector, by signal.",
        [
            (
                vec![exporter(), kv("signal", "metrics")],
                Val::Int(health.metric_failures),
            ),
            (
                vec![exporter(), kv("signal", "logs")],
                Val::Int(health.log_failures),
            ),
        ],
    );
    b.sum(
        "overrun.violations.dropped",
        "{event}",
        "Violation events not exported, by reason.",
        [
            ("rate_limit", health.rate_dropped),
            ("queue_full", health.queue_dropped),
        ]
        .map(|(reason, n)| (vec![exporter(), kv("reason", reason)], Val::Int(n))),
    );

    finish(b.metrics, resource)
}

fn finish(metrics: Vec<Metric>, resource: &Resource) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

/// The last accepted cumulative value of one series.
#[derive(Debug, Clone)]
pub(crate) enum Prev {
    Int(i64),
    Double(f64),
    Histogram {
        count: u64,
        sum: f64,
        buckets: Vec<u64>,
    },
}

/// Turns cumulative requests into deltas against the last values the
/// collector accepted, series by series (a round may send several requests
/// and only some may get through).
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    /// Per series: its last accepted cumulative value and when it was taken
    /// (Unix ns), the start of its next delta.
    accepted: HashMap<String, (Prev, u64)>,
    /// Start of a series never accepted before.
    start: u64,
}

/// What [`DeltaState::apply`] hands back for [`DeltaState::accept`].
pub(crate) type Pending = Vec<(String, Prev, u64)>;

fn series_key(metric: &str, attributes: &[KeyValue]) -> String {
    let mut key = String::from(metric);
    for a in attributes {
        key.push('\u{1f}');
        key.push_str(&a.key);
        key.push('=');
        if let Some(AnyValue {
            value: Some(AnyInner::StringValue(s)),
        }) = &a.value
        {
            key.push_str(s);
        }
    }
    key
}

impl DeltaState {
    pub(crate) fn new(start: u64) -> Self {
        Self {
            accepted: HashMap::new(),
            start,
        }
    }

    fn baseline(&self, key: &str) -> (Option<&Prev>, u64) {
        match self.accepted.get(key) {
            Some((prev, at)) => (Some(prev), *at),
            None => (None, self.start),
        }
    }

    /// Rewrites the sums and histograms of the cumulative `req` as deltas
    /// since each series' last accepted export; returns the cumulative
    /// values to [`DeltaState::accept`] once the collector took it.
    pub(crate) fn apply(&self, req: &mut ExportMetricsServiceRequest) -> Pending {
        let mut next = Vec::new();
        for m in req
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
            .flat_map(|s| &mut s.metrics)
        {
            match &mut m.data {
                Some(Data::Sum(sum)) => {
                    sum.aggregation_temporality = AggregationTemporality::Delta as i32;
                    for p in &mut sum.data_points {
                        let key = series_key(&m.name, &p.attributes);
                        let (old, since) = self.baseline(&key);
                        p.start_time_unix_nano = since;
                        let now = p.time_unix_nano;
                        match &mut p.value {
                            Some(Number::AsInt(v)) => {
                                let cumulative = *v;
                                if let Some(Prev::Int(old)) = old {
                                    *v -= old;
                                }
                                next.push((key, Prev::Int(cumulative), now));
                            }
                            Some(Number::AsDouble(v)) => {
                                let cumulative = *v;
                                if let Some(Prev::Double(old)) = old {
                                    *v -= old;
                                }
                                next.push((key, Prev::Double(cumulative), now));
                            }
                            None => {}
                        }
                    }
                }
                Some(Data::Histogram(h)) => {
                    h.aggregation_temporality = AggregationTemporality::Delta as i32;
                    for p in &mut h.data_points {
                        let key = series_key(&m.name, &p.attributes);
                        let (old, since) = self.baseline(&key);
                        p.start_time_unix_nano = since;
                        let cumulative = Prev::Histogram {
                            count: p.count,
                            sum: p.sum.unwrap_or(0.0),
                            buckets: p.bucket_counts.clone(),
                        };
                        // The maximum is over the whole run, not this window.
                        p.max = None;
                        if let Some(Prev::Histogram {
                            count,
                            sum,
                            buckets,
                        }) = old
                        {
                            p.count -= count;
                            p.sum = p.sum.map(|s| s - sum);
                            for (b, old) in p.bucket_counts.iter_mut().zip(buckets) {
                                *b -= old;
                            }
                        }
                        next.push((key, cumulative, p.time_unix_nano));
                    }
                }
                _ => {}
            }
        }
        next
    }

    /// The collector took the request `apply` returned these values for.
    pub(crate) fn accept(&mut self, values: Pending) {
        for (key, prev, at) in values {
            self.accepted.insert(key, (prev, at));
        }
    }
}

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
    let attributes = vec![
        kv("function", v.name),
        kv("module", v.module),
        kv("kind", v.kind.as_str()),
        kv_int("observed", as_int(v.observed)),
        kv_int("limit", as_int(v.limit)),
        kv("unit", v.kind.unit()),
        kv("thread", e.thread.clone()),
        kv("code.file.path", v.file),
        kv_int("code.line.number", i64::from(v.line)),
    ];
    let (trace_id, span_id, flags) = match &e.trace {
        Some(t) => (t.trace_id.to_vec(), t.span_id.to_vec(), u32::from(t.flags)),
        None => (Vec::new(), Vec::new(), 0),
    };
    LogRecord {
        time_unix_nano: v.unix_nanos,
        observed_time_unix_nano: v.unix_nanos,
        severity_number: SeverityNumber::Warn as i32,
        severity_text: "WARN".to_owned(),
        body: string(v.to_string()),
        attributes,
        flags,
        trace_id,
        span_id,
        event_name: EVENT_NAME.to_owned(),
        ..LogRecord::default()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn point_int(req: &ExportMetricsServiceRequest, metric: &str, function: &str) -> Option<i64> {
        let m = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == metric)?;
        let Some(Data::Sum(s)) = &m.data else {
            return None;
        };
        s.data_points
            .iter()
            .find(|p| {
                p.attributes
                    .iter()
                    .any(|a| a.key == "function" && a.value == string(function))
            })
            .and_then(|p| match p.value {
                Some(Number::AsInt(i)) => Some(i),
                _ => None,
            })
    }

    #[overrun::measure]
    fn encoded_fn(n: u64) -> u64 {
        std::hint::black_box(n * 2)
    }

    /// The request that carries `encoded_fn` (other tests of this binary
    /// register sites too, so there may be several).
    fn one(snap: &Snapshot, now: u64) -> ExportMetricsServiceRequest {
        let reqs = metrics(
            snap,
            &Resource::default(),
            &[0.001],
            Health::default(),
            1,
            now,
        );
        reqs.into_iter()
            .find(|r| point_int(r, "overrun.calls", "encoded_fn").is_some())
            .expect("encoded_fn exported")
    }

    #[test]
    fn cumulative_then_delta() {
        for i in 0..10 {
            encoded_fn(i);
        }
        let req = one(&overrun::snapshot(), 2);
        assert_eq!(point_int(&req, "overrun.calls", "encoded_fn"), Some(10));

        let mut delta = DeltaState::new(1);
        let mut first = req.clone();
        let accepted = delta.apply(&mut first);
        assert_eq!(point_int(&first, "overrun.calls", "encoded_fn"), Some(10));
        delta.accept(accepted);

        for i in 0..5 {
            encoded_fn(i);
        }
        let mut req = one(&overrun::snapshot(), 3);
        // A rejected export is not accepted: the next delta covers both.
        let _rejected = delta.apply(&mut req.clone());
        let accepted = delta.apply(&mut req);
        assert_eq!(point_int(&req, "overrun.calls", "encoded_fn"), Some(5));
        let m = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == "overrun.duration")
            .unwrap();
        let Some(Data::Histogram(h)) = &m.data else {
            panic!("not a histogram")
        };
        let p = h
            .data_points
            .iter()
            .find(|p| p.attributes[0].value == string("encoded_fn"))
            .unwrap();
        assert_eq!(p.count, 5);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 5);
        assert_eq!(p.start_time_unix_nano, 2);
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        delta.accept(accepted);
        let key = series_key(
            "overrun.calls",
            &[kv("function", "encoded_fn"), kv("module", module_path!())],
        );
        assert!(matches!(delta.accepted.get(&key), Some((Prev::Int(15), 3))));
    }

    #[overrun::measure(budget = "1s")]
    fn chunked_fn(site: usize) -> usize {
        site
    }

    #[test]
    fn many_sites_are_split_into_requests() {
        use overrun::__private::{Budget, Guard, Site, SiteKind};
        for i in 0..(SITES_PER_REQUEST * 2 + 1) {
            let name: &'static str = Box::leak(format!("chunk_site_{i}").into_boxed_str());
            let site: &'static Site = Box::leak(Box::new(Site::new(
                name,
                "chunks",
                file!(),
                i as u32,
                SiteKind::Sync,
                Budget::none(),
            )));
            Guard::enter(site).finish(false);
        }
        chunked_fn(1);
        let snap = overrun::snapshot();
        let reqs = metrics(
            &snap,
            &Resource::default(),
            &[0.001],
            Health::default(),
            1,
            2,
        );
        assert_eq!(reqs.len(), snap.sites.len().div_ceil(SITES_PER_REQUEST));
        let names = |r: &ExportMetricsServiceRequest| -> Vec<String> {
            r.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .map(|m| m.name.clone())
                .collect()
        };
        // Process-wide series once, in the first request.
        assert!(names(&reqs[0]).contains(&"overrun.export.failures".to_owned()));
        assert!(
            reqs[1..]
                .iter()
                .all(|r| !names(r).contains(&"overrun.export.failures".to_owned()))
        );
        // Every site's calls exactly once across the requests.
        let total: usize = reqs
            .iter()
            .map(|r| {
                r.resource_metrics[0].scope_metrics[0]
                    .metrics
                    .iter()
                    .filter(|m| m.name == "overrun.calls")
                    .map(|m| match &m.data {
                        Some(Data::Sum(s)) => s.data_points.len(),
                        _ => 0,
                    })
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(total, snap.sites.len());
        // A site without budgets has no violation series; one with a time
        // budget has exactly the `time` one.
        let kinds_of = |function: &str| -> Vec<String> {
            reqs.iter()
                .flat_map(|r| &r.resource_metrics[0].scope_metrics[0].metrics)
                .filter(|m| m.name == "overrun.budget.violations")
                .flat_map(|m| match &m.data {
                    Some(Data::Sum(s)) => s.data_points.clone(),
                    _ => Vec::new(),
                })
                .filter(|p| p.attributes[0].value == string(function))
                .map(|p| match &p.attributes[2].value {
                    Some(AnyValue {
                        value: Some(AnyInner::StringValue(k)),
                    }) => k.clone(),
                    _ => String::new(),
                })
                .collect()
        };
        assert!(kinds_of("chunk_site_0").is_empty());
        assert_eq!(kinds_of("chunked_fn"), ["time"]);
    }

    #[test]
    fn histogram_buckets_add_up() {
        let h = overrun::stats::Histogram::from_values([500, 1_500, 2_000_000, 20_000_000_000]);
        let mut b = Builder {
            start: 0,
            now: 1,
            temporality: Temporality::Cumulative,
            metrics: Vec::new(),
        };
        b.histogram("x", "", &[0.000_001, 0.001, 1.0], [(Vec::new(), &h, 4, 10)]);
        let Some(Data::Histogram(hist)) = &b.metrics[0].data else {
            panic!()
        };
        let p = &hist.data_points[0];
        assert_eq!(p.bucket_counts, [1, 1, 1, 1]);
        assert_eq!(p.explicit_bounds, [0.000_001, 0.001, 1.0]);
        assert_eq!(p.max, Some(20.0));
    }

    #[test]
    fn resource_layers_env_and_builder() {
        let env = |name: &str| match name {
            "OTEL_RESOURCE_ATTRIBUTES" => Some(
                "service.name=from-attrs, team=perf%20tools,deployment.environment=ci,broken"
                    .into(),
            ),
            "OTEL_SERVICE_NAME" => Some("from-env".into()),
            _ => None,
        };
        let get = |r: &Resource, k: &str| {
            r.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
        };
        let r = resource(
            None,
            &[("deployment.environment".into(), "prod".into())],
            &env,
        );
        assert_eq!(get(&r, "service.name"), string("from-env"));
        assert_eq!(get(&r, "team"), string("perf tools"));
        assert_eq!(get(&r, "deployment.environment"), string("prod"));
        assert_eq!(get(&r, "telemetry.sdk.language"), string("rust"));
        assert!(get(&r, "service.instance.id").is_some());
        let r = resource(Some("svc"), &[], &env);
        assert_eq!(get(&r, "service.name"), string("svc"));
        let r = resource(None, &[], &|_| None);
        let Some(AnyValue {
            value: Some(AnyInner::StringValue(name)),
        }) = get(&r, "service.name")
        else {
            panic!("no service.name")
        };
        assert!(name.starts_with("unknown_service:"), "{name}");
    }
}
