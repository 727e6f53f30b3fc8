//! Metrics requests: the sdk's schema ([`overrun::export`]) encoded as OTLP.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar::Value as ExemplarValue,
    metric::Data, number_data_point::Value as Number,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use overrun::Snapshot;
use overrun::export::{self, Metric as ExportMetric, MetricKind, Part, Point, Value};

use super::scope;

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

/// The metrics of one request, built from the sdk's schema
/// ([`overrun::export`]): this only encodes.
pub(super) struct Encoder<'b> {
    pub(super) start: u64,
    pub(super) now: u64,
    pub(super) bounds: &'b [f64],
    pub(super) metrics: Vec<Metric>,
}

impl Encoder<'_> {
    fn attributes(labels: &[(&'static str, &str)]) -> Vec<KeyValue> {
        super::attributes(labels)
    }

    fn number(&self, p: &Point<'_>, start: u64) -> Option<NumberDataPoint> {
        Some(NumberDataPoint {
            attributes: Self::attributes(&p.labels),
            start_time_unix_nano: start,
            time_unix_nano: self.now,
            value: Some(match p.value {
                Value::Int(i) => Number::AsInt(i.min(i64::MAX as u64) as i64),
                Value::Float(d) => Number::AsDouble(d),
                Value::Histogram { count, .. } => Number::AsInt(count.min(i64::MAX as u64) as i64),
                _ => return None,
            }),
            ..NumberDataPoint::default()
        })
    }

    fn histogram_point(&self, p: &Point<'_>) -> Option<HistogramDataPoint> {
        let Value::Histogram {
            histogram,
            count,
            sum_seconds,
            thresholds_ns,
            exemplars,
        } = p.value
        else {
            return None;
        };
        // The site's budget and objective thresholds are bounds too.
        let bounds = overrun::export::bounds_with(self.bounds, thresholds_ns);
        let cumulative = histogram.cumulative_counts(&bounds);
        let mut bucket_counts = Vec::with_capacity(bounds.len() + 1);
        let mut last = 0;
        for c in cumulative {
            bucket_counts.push(c - last);
            last = c;
        }
        bucket_counts.push(count.saturating_sub(last));
        Some(HistogramDataPoint {
            attributes: Self::attributes(&p.labels),
            start_time_unix_nano: self.start,
            time_unix_nano: self.now,
            count,
            sum: Some(sum_seconds),
            bucket_counts,
            explicit_bounds: bounds,
            max: (count > 0).then(|| histogram.max() as f64 / 1e9),
            exemplars: exemplars
                .iter()
                .map(|e| Exemplar {
                    time_unix_nano: e.unix_nanos,
                    trace_id: e.trace_id.to_vec(),
                    span_id: e.span_id.to_vec(),
                    value: Some(ExemplarValue::AsDouble(e.value_ns as f64 / 1e9)),
                    ..Exemplar::default()
                })
                .collect(),
            ..HistogramDataPoint::default()
        })
    }

    /// Adds the points of one metric; a metric already in the request (the
    /// violations of sites and of the process) gets them appended.
    pub(super) fn add(&mut self, metric: &ExportMetric, points: &[Point<'_>]) {
        if points.is_empty() {
            return;
        }
        let data = match metric.kind {
            MetricKind::Counter => Data::Sum(Sum {
                data_points: points
                    .iter()
                    .filter_map(|p| self.number(p, self.start))
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            MetricKind::Gauge => Data::Gauge(Gauge {
                data_points: points.iter().filter_map(|p| self.number(p, 0)).collect(),
            }),
            MetricKind::Histogram => Data::Histogram(Histogram {
                data_points: points
                    .iter()
                    .filter_map(|p| self.histogram_point(p))
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
            // A kind this exporter does not know yet: left out.
            _ => return,
        };
        if let Some(existing) = self.metrics.iter_mut().find(|m| m.name == metric.name) {
            match (existing.data.as_mut(), data) {
                (Some(Data::Sum(a)), Data::Sum(b)) => a.data_points.extend(b.data_points),
                (Some(Data::Gauge(a)), Data::Gauge(b)) => a.data_points.extend(b.data_points),
                (Some(Data::Histogram(a)), Data::Histogram(b)) => {
                    a.data_points.extend(b.data_points)
                }
                _ => unreachable!("one metric name, one kind"),
            }
            return;
        }
        self.metrics.push(Metric {
            name: metric.name.to_owned(),
            description: metric.help.to_owned(),
            unit: metric.unit.to_owned(),
            data: Some(data),
            ..Metric::default()
        });
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
    let sites = snap.sites.len() + snap.never_ran.len();
    let requests = sites.div_ceil(SITES_PER_REQUEST).max(1);
    (0..requests)
        .map(|i| {
            let mut e = Encoder {
                start,
                now,
                bounds,
                metrics: Vec::new(),
            };
            let from = i * SITES_PER_REQUEST;
            let part = Part::Sites {
                from,
                to: from + SITES_PER_REQUEST,
            };
            for s in export::series_of(snap, part) {
                e.add(s.metric, &s.points);
            }
            if i == 0 {
                for s in export::series_of(snap, Part::Process) {
                    e.add(s.metric, &s.points);
                }
                health.encode(&mut e);
            }
            finish(e.metrics, resource)
        })
        .collect()
}

impl Health {
    fn encode(&self, e: &mut Encoder<'_>) {
        let point =
            |labels: Vec<(&'static str, &'static str)>, n: u64| Point::new(labels, Value::Int(n));
        let exporter = ("exporter", "otlp");
        e.add(
            &export::EXPORT_FAILURES,
            &[
                point(vec![exporter, ("signal", "metrics")], self.metric_failures),
                point(vec![exporter, ("signal", "logs")], self.log_failures),
            ],
        );
        e.add(
            &export::VIOLATIONS_DROPPED,
            &[
                point(vec![exporter, ("reason", "rate_limit")], self.rate_dropped),
                point(vec![exporter, ("reason", "queue_full")], self.queue_dropped),
            ],
        );
    }
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
