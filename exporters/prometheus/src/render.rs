//! The text exposition format, rendered from one [`overrun::Snapshot`].

use std::fmt::Write as _;

use overrun::Snapshot;

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

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Renders `snap` (and the exporter's own health) as Prometheus text.
/// Cost: sites × buckets + tasks; independent of the number of calls.
pub(crate) fn render(snap: &Snapshot, buckets: &[f64], health: Health) -> String {
    let mut out = String::with_capacity(256 + snap.sites.len() * (buckets.len() + 12) * 96);
    let fm: Vec<String> = snap
        .sites
        .iter()
        .map(|s| {
            format!(
                "function=\"{}\",module=\"{}\"",
                escape(s.name),
                escape(s.module)
            )
        })
        .collect();

    type Field = fn(&overrun::report::SiteSnapshot) -> Option<f64>;
    let simple: [(&str, &str, &str, Field); 5] = [
        (
            "overrun_calls_total",
            "counter",
            "Completed calls of a measured function.",
            |s| Some(s.calls as f64),
        ),
        (
            "overrun_errors_total",
            "counter",
            "Calls that returned Err or panicked.",
            |s| Some(s.errors as f64),
        ),
        (
            "overrun_self_duration_seconds_total",
            "counter",
            "Time spent in the function itself, measured callees excluded.",
            |s| Some(seconds(s.self_ns)),
        ),
        (
            "overrun_allocations_total",
            "counter",
            "Heap allocations made during calls, callees included.",
            |s| s.allocs.map(|a| a as f64),
        ),
        (
            "overrun_allocated_bytes_total",
            "counter",
            "Heap bytes allocated during calls, callees included.",
            |s| s.alloc_bytes.map(|b| b as f64),
        ),
    ];
    for (name, kind, help, field) in simple {
        let values: Vec<(usize, f64)> = snap
            .sites
            .iter()
            .enumerate()
            .filter_map(|(i, s)| field(s).map(|v| (i, v)))
            .collect();
        if values.is_empty() {
            continue;
        }
        header(&mut out, name, kind, help);
        for (i, v) in values {
            let _ = writeln!(out, "{name}{{{}}} {v}", fm[i]);
        }
    }

    if !snap.sites.is_empty() {
        let name = "overrun_duration_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "Duration of calls (async fn: first poll to completion).",
        );
        for (i, s) in snap.sites.iter().enumerate() {
            histogram(
                &mut out,
                name,
                &fm[i],
                &s.histogram,
                s.calls,
                seconds(s.total_ns),
                buckets,
            );
        }
    }

    let budgets: Vec<(usize, u64)> = snap
        .sites
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.budget.time_ns.map(|b| (i, b)))
        .collect();
    if !budgets.is_empty() {
        let name = "overrun_budget_seconds";
        header(
            &mut out,
            name,
            "gauge",
            "The time budget of one call, as declared.",
        );
        for (i, b) in budgets {
            let _ = writeln!(out, "{name}{{{}}} {}", fm[i], seconds(b));
        }
    }

    let name = "overrun_budget_violations_total";
    header(
        &mut out,
        name,
        "counter",
        "Calls, polls, tasks or runs over their budget, by kind.",
    );
    for (i, s) in snap.sites.iter().enumerate() {
        for (kind, n) in s.violation_counts() {
            let _ = writeln!(out, "{name}{{{},kind=\"{kind}\"}} {n}", fm[i]);
        }
    }
    for t in &snap.tasks {
        let task = escape(t.name);
        for (kind, n) in [("poll", t.poll_violations), ("lifetime", t.leaked)] {
            let _ = writeln!(
                out,
                "{name}{{function=\"{task}\",module=\"task\",kind=\"{kind}\"}} {n}"
            );
        }
    }
    for v in &snap.run.violations {
        let _ = writeln!(
            out,
            "{name}{{function=\"main\",module=\"run\",kind=\"{}\"}} 1",
            v.kind
        );
    }

    if !snap.tasks.is_empty() {
        type TaskField = fn(&overrun::tasks::TaskStats) -> f64;
        let task_metrics: [(&str, &str, &str, TaskField); 8] = [
            (
                "overrun_tasks_spawned_total",
                "counter",
                "Tasks created.",
                |t| t.spawned as f64,
            ),
            (
                "overrun_tasks_completed_total",
                "counter",
                "Tasks that ran to completion.",
                |t| t.completed as f64,
            ),
            (
                "overrun_tasks_cancelled_total",
                "counter",
                "Tasks dropped before completion.",
                |t| t.cancelled as f64,
            ),
            (
                "overrun_tasks_panicked_total",
                "counter",
                "Tasks ended by a panic.",
                |t| t.panicked as f64,
            ),
            ("overrun_tasks_live", "gauge", "Tasks alive now.", |t| {
                t.live as f64
            }),
            (
                "overrun_tasks_leaked_total",
                "counter",
                "Tasks that outlived their lifetime budget.",
                |t| t.leaked as f64,
            ),
            (
                "overrun_task_polls_total",
                "counter",
                "Polls of tasks.",
                |t| t.polls as f64,
            ),
            (
                "overrun_task_busy_seconds_total",
                "counter",
                "Time tasks spent in polls.",
                |t| seconds(t.busy_ns),
            ),
        ];
        for (name, kind, help, field) in task_metrics {
            header(&mut out, name, kind, help);
            for t in &snap.tasks {
                let _ = writeln!(out, "{name}{{task=\"{}\"}} {}", escape(t.name), field(t));
            }
        }
        let name = "overrun_task_poll_duration_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "Duration of single polls of tracked tasks.",
        );
        for t in &snap.tasks {
            let labels = format!("task=\"{}\"", escape(t.name));
            let h = &t.poll_histogram;
            histogram(
                &mut out,
                name,
                &labels,
                h,
                h.count(),
                seconds(t.busy_ns),
                buckets,
            );
        }
        let name = "overrun_task_poll_max_seconds";
        header(
            &mut out,
            name,
            "gauge",
            "Longest single poll of a task of this name.",
        );
        for t in &snap.tasks {
            let _ = writeln!(
                out,
                "{name}{{task=\"{}\"}} {}",
                escape(t.name),
                seconds(t.max_poll_ns)
            );
        }
    }

    header(
        &mut out,
        "overrun_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
    );
    let _ = writeln!(
        out,
        "overrun_process_resident_memory_bytes {}",
        resident_bytes().unwrap_or(snap.run.peak_rss_bytes)
    );
    if let Some(live) = snap.run.heap_live_bytes {
        header(
            &mut out,
            "overrun_heap_live_bytes",
            "gauge",
            "Live heap bytes (CountingAlloc).",
        );
        let _ = writeln!(out, "overrun_heap_live_bytes {live}");
    }
    let exporter = "exporter=\"prometheus\"";
    header(
        &mut out,
        "overrun_exporter_scrapes_total",
        "counter",
        "Scrapes served.",
    );
    let _ = writeln!(
        out,
        "overrun_exporter_scrapes_total{{{exporter}}} {}",
        health.scrapes
    );
    header(
        &mut out,
        "overrun_export_failures_total",
        "counter",
        "Scrapes that could not be answered in full.",
    );
    let _ = writeln!(
        out,
        "overrun_export_failures_total{{{exporter}}} {}",
        health.failures
    );
    header(
        &mut out,
        "overrun_violations_dropped_total",
        "counter",
        "Violation events lost from overrun's ring before a reader saw them.",
    );
    let _ = writeln!(
        out,
        "overrun_violations_dropped_total{{{exporter}}} {}",
        snap.run.violations_dropped
    );
    out
}

/// One histogram's `_bucket`, `_sum` and `_count` lines.
fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    h: &overrun::stats::Histogram,
    count: u64,
    sum_seconds: f64,
    bounds: &[f64],
) {
    for (le, cumulative) in bounds.iter().zip(h.cumulative_counts(bounds)) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum_seconds}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Current resident set size (Linux), bytes.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
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
