//! The text exposition format, rendered from one [`overrun::Snapshot`].

use std::fmt::Write as _;

use overrun::Snapshot;
use overrun::export::{self, Metric, MetricKind, Point, Value};

/// Default upper bounds of `overrun_duration_seconds`, in seconds: 1 µs to
/// 10 s, three per decade.
pub use overrun::stats::DEFAULT_BUCKETS;

/// Counters an exporter keeps about itself.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Health {
    pub(crate) scrapes: u64,
    pub(crate) failures: u64,
}

/// Escapes a label value (`\`, `"`, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders `snap` (and the exporter's own health) as Prometheus text: the
/// sdk's schema ([`overrun::export`]) with Prometheus names, nothing more.
/// Cost: sites × buckets + tasks; independent of the number of calls.
pub(crate) fn render(snap: &Snapshot, buckets: &[f64], health: Health) -> String {
    let mut out = String::with_capacity(256 + snap.sites.len() * (buckets.len() + 12) * 96);
    for s in export::series(snap) {
        series(&mut out, s.metric, &s.points, buckets);
    }
    let own = |v: u64| vec![Point::new(vec![("exporter", "prometheus")], Value::Int(v))];
    series(
        &mut out,
        &export::EXPORTER_SCRAPES,
        &own(health.scrapes),
        buckets,
    );
    series(
        &mut out,
        &export::EXPORT_FAILURES,
        &own(health.failures),
        buckets,
    );
    out
}

/// One metric: its `# HELP` and `# TYPE` lines and every point.
fn series(out: &mut String, metric: &Metric, points: &[Point<'_>], bounds: &[f64]) {
    let name = metric.prometheus_name();
    let kind = match metric.kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
        _ => "untyped",
    };
    let _ = writeln!(out, "# HELP {name} {}", metric.help);
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for p in points {
        let labels = p
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        match p.value {
            Value::Int(v) => line(out, &name, &labels, v),
            Value::Float(v) => line(out, &name, &labels, v),
            Value::Histogram {
                histogram,
                count,
                sum_seconds,
                thresholds_ns,
                exemplars: _,
            } => {
                let sep = if labels.is_empty() { "" } else { "," };
                // The site's budget and objective thresholds are bounds too.
                let own;
                let bounds = if thresholds_ns.is_empty() {
                    bounds
                } else {
                    own = export::bounds_with(bounds, thresholds_ns);
                    &own[..]
                };
                for (le, cumulative) in bounds.iter().zip(histogram.cumulative_counts(bounds)) {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
                line(out, &format!("{name}_sum"), &labels, sum_seconds);
                line(out, &format!("{name}_count"), &labels, count);
            }
            // A kind of value this exporter does not know yet: left out.
            _ => {}
        }
    }
}

fn line(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
