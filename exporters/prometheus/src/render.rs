//! The text exposition format, rendered from one [`overrun::Snapshot`].

use std::fmt::Write as _;

use overrun::Snapshot;
use overrun::export::{self, Metric, MetricKind, Point, Value, escape_label_value};

/// Default upper bounds of `overrun_duration_seconds`, in seconds: 1 µs to
/// 10 s, three per decade.
pub use overrun::stats::DEFAULT_BUCKETS;

/// Counters an exporter keeps about itself.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Health {
    pub(crate) scrapes: u64,
    pub(crate) failures: u64,
}

/// The two text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The classic text exposition format (`text/plain; version=0.0.4`).
    Classic,
    /// OpenMetrics 1.0 (`application/openmetrics-text`): counters as
    /// families without `_total`, exemplars on histogram buckets, `# EOF`.
    OpenMetrics,
}

/// Renders `snap` (and the exporter's own health) as Prometheus text: the
/// sdk's schema ([`overrun::export`]) with Prometheus names, nothing more.
/// Cost: sites × buckets + tasks; independent of the number of calls.
/// OpenMetrics without its closing `# EOF` (the caller appends text first).
pub(crate) fn render(snap: &Snapshot, buckets: &[f64], health: Health, format: Format) -> String {
    let mut out = String::with_capacity(256 + snap.sites.len() * (buckets.len() + 12) * 96);
    for s in export::series(snap) {
        series(&mut out, s.metric, &s.points, buckets, format);
    }
    let own = |v: u64| vec![Point::new(vec![("exporter", "prometheus")], Value::Int(v))];
    series(
        &mut out,
        &export::EXPORTER_SCRAPES,
        &own(health.scrapes),
        buckets,
        format,
    );
    series(
        &mut out,
        &export::EXPORT_FAILURES,
        &own(health.failures),
        buckets,
        format,
    );
    out
}

/// One metric: its `# HELP` and `# TYPE` lines and every point.
fn series(out: &mut String, metric: &Metric, points: &[Point<'_>], bounds: &[f64], format: Format) {
    let name = metric.prometheus_name();
    let kind = match metric.kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
        _ if format == Format::OpenMetrics => "unknown",
        _ => "untyped",
    };
    // OpenMetrics names a counter's family without `_total`; its samples
    // keep it, so the series are the same in both formats.
    let family = match (format, metric.kind) {
        (Format::OpenMetrics, MetricKind::Counter) => name.strip_suffix("_total").unwrap_or(&name),
        _ => &name,
    };
    let help = match format {
        // OpenMetrics escapes `"` in HELP text too.
        Format::OpenMetrics => openmetrics_help(metric.help),
        Format::Classic => metric.help.to_owned(),
    };
    let _ = writeln!(out, "# HELP {family} {help}");
    let _ = writeln!(out, "# TYPE {family} {kind}");
    for p in points {
        let labels = p
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
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
                exemplars,
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
                let mut below = 0.0;
                for (&bound, cumulative) in bounds.iter().zip(histogram.cumulative_counts(bounds)) {
                    let le = match format {
                        Format::OpenMetrics => export::canonical_bound(bound),
                        Format::Classic => bound.to_string(),
                    };
                    let _ = write!(
                        out,
                        "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
                    );
                    if format == Format::OpenMetrics {
                        exemplar(out, exemplars, below, bound);
                    }
                    out.push('\n');
                    below = bound;
                }
                let _ = write!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
                if format == Format::OpenMetrics {
                    exemplar(out, exemplars, below, f64::INFINITY);
                }
                out.push('\n');
                line(out, &format!("{name}_sum"), &labels, sum_seconds);
                line(out, &format!("{name}_count"), &labels, count);
            }
            // A kind of value this exporter does not know yet: left out.
            _ => {}
        }
    }
}

/// The newest exemplar whose value lies in the bucket `(above, le]`, as
/// OpenMetrics writes it after the bucket's count:
/// ` # {trace_id="…",span_id="…"} 0.062 1700000000.123`.
fn exemplar(out: &mut String, exemplars: &[overrun::exemplar::Exemplar], above: f64, le: f64) {
    let newest = exemplars
        .iter()
        .filter(|e| {
            let v = e.value_ns as f64 / 1e9;
            v > above && v <= le
        })
        .max_by_key(|e| e.unix_nanos);
    if let Some(e) = newest {
        let _ = write!(
            out,
            " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {}.{:09}",
            e.trace_id_hex(),
            e.span_id_hex(),
            e.value_ns as f64 / 1e9,
            e.unix_nanos / 1_000_000_000,
            e.unix_nanos % 1_000_000_000,
        );
    }
}

/// HELP text as OpenMetrics writes it: `\\`, `"` and line breaks escaped
/// (the classic format leaves `"` as it is).
fn openmetrics_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // Already an escape of the classic format: kept.
            '\\' if matches!(chars.peek(), Some('\\' | 'n')) => {
                out.push(c);
                out.push(chars.next().unwrap_or('\\'));
            }
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Where a sample line's name and labels end (label values may hold
/// spaces and braces, quoted).
fn after_labels(line: &str) -> usize {
    let Some(open) = line.find('{').filter(|&o| !line[..o].contains(' ')) else {
        return line.find(' ').unwrap_or(line.len());
    };
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return open + i + 1,
            _ => {}
        }
    }
    line.len()
}

/// Text in the classic format (an `append`ed registry's) made OpenMetrics:
/// a counter's family loses its `_total` (one without it becomes
/// `unknown`, its name kept), `untyped` is `unknown`, HELP text is escaped
/// as OpenMetrics asks, other comments and blank lines go, and a sample's
/// timestamp turns from milliseconds to seconds. Samples keep their names
/// and labels: the same series in both formats.
pub(crate) fn classic_to_openmetrics(text: &str) -> String {
    // The counters' names, from their TYPE lines (a HELP line comes first).
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if meta.is_none() && line.starts_with('#') {
            // A free comment: OpenMetrics has none.
            continue;
        }
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let (name, tail) = if counters.contains(name) {
                    match name.strip_suffix("_total") {
                        Some(family) => (family, tail),
                        None if prefix == "# TYPE " => (name, "unknown"),
                        None => (name, tail),
                    }
                } else if prefix == "# TYPE " && tail == "untyped" {
                    (name, "unknown")
                } else {
                    (name, tail)
                };
                let tail = if prefix == "# HELP " {
                    openmetrics_help(tail)
                } else {
                    tail.to_owned()
                };
                let _ = writeln!(out, "{prefix}{name} {tail}");
            }
            None => {
                let (series, rest) = line.split_at(after_labels(line));
                let mut fields = rest.split_whitespace();
                let value = fields.next().unwrap_or("");
                match fields.next().and_then(|ms| ms.parse::<i64>().ok()) {
                    Some(ms) => {
                        let _ = writeln!(
                            out,
                            "{series} {value} {}.{:03}",
                            ms.div_euclid(1000),
                            ms.rem_euclid(1000)
                        );
                    }
                    None => {
                        let _ = writeln!(out, "{series} {value}");
                    }
                }
            }
        }
    }
    out
}

/// The format a scrape's `Accept` header asks for: OpenMetrics when it
/// accepts it (any version) at least as much as the classic text, as
/// Prometheus does when it can store exemplars; else the classic text.
pub(crate) fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Classic;
    };
    let (mut open, mut classic) = (0.0f64, 0.0f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        // A weight that is not a number from 0 to 1 makes the range
        // unacceptable.
        let q = parts
            .find_map(|p| {
                let (key, value) = p.split_once('=')?;
                key.trim().eq_ignore_ascii_case("q").then(|| value.trim())
            })
            .map_or(Some(1.0), |q| {
                q.parse::<f64>().ok().filter(|q| (0.0..=1.0).contains(q))
            })
            .unwrap_or(0.0);
        match media.as_str() {
            "application/openmetrics-text" => open = open.max(q),
            "text/plain" | "*/*" | "text/*" => classic = classic.max(q),
            _ => {}
        }
    }
    if open > 0.0 && open >= classic {
        Format::OpenMetrics
    } else {
        Format::Classic
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
    fn negotiation_follows_the_accept_header() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(negotiate(None), Format::Classic);
        assert_eq!(negotiate(Some("text/plain")), Format::Classic);
        assert_eq!(negotiate(Some("*/*")), Format::Classic);
        assert_eq!(
            negotiate(Some("text/plain;q=1, application/openmetrics-text;q=0.5")),
            Format::Classic
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text; q=0")),
            Format::Classic
        );
        assert_eq!(
            negotiate(Some(
                "application/openmetrics-text; Q=0.9, text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        for bad in ["x", "2", "NaN", "inf"] {
            assert_eq!(
                negotiate(Some(&format!("application/openmetrics-text;q={bad}"))),
                Format::Classic,
                "q={bad}"
            );
        }
    }

    #[test]
    fn classic_text_becomes_openmetrics() {
        let classic = "# HELP lookups_total Lookups, \"all\".\n# TYPE lookups_total counter\nlookups_total 3\n\n# a free comment\n# TYPE odd counter\nodd 1 1700000000123\n# TYPE g gauge\ng{a=\"b c}\"} 2\n# TYPE u untyped\nu 1\n";
        assert_eq!(
            classic_to_openmetrics(classic),
            "# HELP lookups Lookups, \\\"all\\\".\n# TYPE lookups counter\nlookups_total 3\n# TYPE odd unknown\nodd 1 1700000000.123\n# TYPE g gauge\ng{a=\"b c}\"} 2\n# TYPE u unknown\nu 1\n"
        );
    }

    #[test]
    fn an_exemplar_goes_on_the_bucket_of_its_value() {
        let slow = overrun::exemplar::Exemplar::new(
            40_000_000,
            [0xab; 16],
            [0xcd; 8],
            1_700_000_000_123_000_000,
        );
        let older = overrun::exemplar::Exemplar::new(30_000_000, [1; 16], [2; 8], 1);
        let both = [older, slow];
        let h = overrun::stats::Histogram::from_values([1_000_000, 40_000_000]);
        let point = Point::new(
            vec![("function", "f")],
            Value::Histogram {
                histogram: &h,
                count: 2,
                sum_seconds: 0.041,
                thresholds_ns: &[],
                exemplars: &both,
            },
        );
        let mut out = String::new();
        series(
            &mut out,
            &export::DURATION,
            std::slice::from_ref(&point),
            &[0.01, 0.05],
            Format::OpenMetrics,
        );
        assert!(out.contains(
            "overrun_duration_seconds_bucket{function=\"f\",le=\"0.05\"} 2 # {trace_id=\"abababababababababababababababab\",span_id=\"cdcdcdcdcdcdcdcd\"} 0.04 1700000000.123000000\n"
        ), "{out}");
        assert!(
            out.contains("le=\"0.01\"} 1\n"),
            "no exemplar in a bucket without one: {out}"
        );
        let mut classic = String::new();
        series(
            &mut classic,
            &export::DURATION,
            &[point],
            &[0.01, 0.05],
            Format::Classic,
        );
        assert!(!classic.contains("trace_id"), "{classic}");
        assert!(classic.contains("le=\"0.05\"} 2\n"), "{classic}");
        // Counters: the family without `_total`, the samples with it.
        let mut counters = String::new();
        let calls = Point::new(vec![("function", "f")], Value::Int(3));
        series(
            &mut counters,
            &export::CALLS,
            &[calls],
            &[],
            Format::OpenMetrics,
        );
        assert!(
            counters.contains("# TYPE overrun_calls counter\n"),
            "{counters}"
        );
        assert!(
            counters.contains("overrun_calls_total{function=\"f\"} 3\n"),
            "{counters}"
        );
    }

    #[test]
    fn label_values_are_escaped_in_both_formats() {
        let calls = Point::new(vec![("function", "a\"b\\c\nd")], Value::Int(3));
        for format in [Format::Classic, Format::OpenMetrics] {
            let mut out = String::new();
            series(
                &mut out,
                &export::CALLS,
                std::slice::from_ref(&calls),
                &[],
                format,
            );
            assert!(
                out.contains("overrun_calls_total{function=\"a\\\"b\\\\c\\nd\"} 3\n"),
                "{out}"
            );
        }
    }
}
