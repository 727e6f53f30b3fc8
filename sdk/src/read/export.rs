//! The metric schema, defined once: what every exporter publishes.
//!
//! [`series`] walks a [`Snapshot`] and yields each series once — its
//! [`Metric`] (name, kind, unit, help) and its points (labels and a value or
//! a histogram). An exporter only renames ([`Metric::prometheus_name`] for
//! the text format; OTLP uses [`Metric::name`] as it is) and encodes. A new
//! signal becomes new series here, and every exporter publishes it.
//!
//! ```
//! #[overrun::measure(budget = "1s")]
//! fn schema_doc_fn() {}
//! schema_doc_fn();
//!
//! let snap = overrun::snapshot();
//! let all = overrun::export::series(&snap);
//! let calls = all.iter().find(|s| s.metric.name == "overrun.calls").unwrap();
//! assert_eq!(calls.metric.prometheus_name(), "overrun_calls_total");
//! let point = calls.points.iter().find(|p| p.label("function") == Some("schema_doc_fn")).unwrap();
//! assert!(matches!(point.value, overrun::export::Value::Int(1)));
//! ```
//!
//! The exporters' own health (failed exports, events they dropped) is not in
//! a snapshot; its metrics are declared here too ([`EXPORT_FAILURES`],
//! [`VIOLATIONS_DROPPED`], [`EXPORTER_SCRAPES`]) and each exporter supplies
//! the points.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::read::snapshot::{SiteSnapshot, Snapshot};
use crate::record::objective::ObjectiveStatus;
use crate::record::stats::Histogram;
use crate::sync::LockStats;
use crate::tasks::TaskStats;
use crate::vocab::budget::Objective;

/// The `module` label of a lock's budget violations (`function` is the
/// lock's name, [`crate::sync`]).
///
/// ```
/// assert_eq!(overrun::export::LOCK_MODULE, "lock");
/// ```
pub const LOCK_MODULE: &str = crate::sync::LOCK_MODULE;

/// How a metric's points combine over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// Monotonic, cumulative since the process started.
    Counter,
    /// A value at the instant of the snapshot.
    Gauge,
    /// Distribution of durations, cumulative; values in seconds.
    Histogram,
}

/// One metric: name, kind, unit and help, the same for every exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metric {
    /// The OpenTelemetry name, dotted (`overrun.calls`).
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// UCUM unit as OpenTelemetry writes it: `s`, `By`, or an annotation
    /// such as `{call}`.
    pub unit: &'static str,
    /// One sentence for people.
    pub help: &'static str,
}

impl Metric {
    /// The Prometheus name, by OpenTelemetry's compatibility rules: dots
    /// become underscores, the unit is appended (`_seconds`, `_bytes`) unless
    /// the name already ends with it, and counters end in `_total`.
    ///
    /// ```
    /// use overrun::export::{DURATION, SELF_DURATION, ALLOCATED_BYTES};
    /// assert_eq!(DURATION.prometheus_name(), "overrun_duration_seconds");
    /// assert_eq!(SELF_DURATION.prometheus_name(), "overrun_self_duration_seconds_total");
    /// assert_eq!(ALLOCATED_BYTES.prometheus_name(), "overrun_allocated_bytes_total");
    /// ```
    pub fn prometheus_name(&self) -> String {
        let mut name = self.name.replace('.', "_");
        let suffix = match self.unit {
            "s" => "seconds",
            "By" => "bytes",
            _ => "",
        };
        if !suffix.is_empty() && !name.ends_with(suffix) {
            name.push('_');
            name.push_str(suffix);
        }
        if self.kind == MetricKind::Counter {
            name.push_str("_total");
        }
        name
    }
}

/// The `module` label of a task's budget violations (`function` is the
/// task's name).
///
/// ```
/// assert_eq!(overrun::export::TASK_MODULE, "task");
/// ```
pub const TASK_MODULE: &str = "task";

/// The `module` label of the whole run's budget violations (`function` is
/// `main`).
///
/// ```
/// assert_eq!(overrun::export::RUN_MODULE, "run");
/// ```
pub const RUN_MODULE: &str = "run";

macro_rules! metrics {
    ($($(#[$doc:meta])* $id:ident = $name:literal, $kind:ident, $unit:literal, $help:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $id: Metric = Metric {
                name: $name,
                kind: MetricKind::$kind,
                unit: $unit,
                help: $help,
            };
        )*

        /// Every metric of the schema, in the order [`series`] yields them
        /// (the exporters' own health last).
        pub const ALL: &[Metric] = &[$($id),*];
    };
}

metrics! {
    /// Completed calls of a measured function.
    CALLS = "overrun.calls", Counter, "{call}", "Completed calls of a measured function.";
    /// Calls that returned `Err` or panicked.
    ERRORS = "overrun.errors", Counter, "{call}", "Calls that returned Err or panicked.";
    /// Call durations.
    DURATION = "overrun.duration", Histogram, "s", "Duration of calls (async fn: first poll to completion).";
    /// Self time: measured callees excluded.
    SELF_DURATION = "overrun.self_duration", Counter, "s", "Time spent in the function itself, measured callees excluded.";
    /// Heap allocations during calls (needs `CountingAlloc`).
    ALLOCATIONS = "overrun.allocations", Counter, "{allocation}", "Heap allocations made during calls, callees included.";
    /// Heap bytes allocated during calls (needs `CountingAlloc`).
    ALLOCATED_BYTES = "overrun.allocated_bytes", Counter, "By", "Heap bytes allocated during calls, callees included.";
    /// The time budget of one call in force.
    BUDGET = "overrun.budget", Gauge, "s", "The time budget of one call in force (the code's, or a policy file's).";
    /// A latency objective over a window, by `quantile` ([`crate::objective`]).
    OBJECTIVE = "overrun.objective", Gauge, "s", "A latency objective over a window: the most the window's quantile may be.";
    /// The window's observed quantile, at the evaluator's last tick.
    OBJECTIVE_WINDOW = "overrun.objective.window", Gauge, "s", "The quantile of the calls in the objective's window, at the evaluator's last tick.";
    /// An error-rate objective over a window.
    OBJECTIVE_ERROR_RATIO = "overrun.objective.error_ratio", Gauge, "1", "An error-rate objective over a window: the most the share of failed calls in the window may be.";
    /// The window's observed share of failed calls.
    OBJECTIVE_WINDOW_ERROR_RATIO = "overrun.objective.window_error_ratio", Gauge, "1", "The share of failed calls in the objective's window, at the evaluator's last tick.";
    /// Whether an objective is breached now (`quantile` is `error_rate` for the error rate).
    OBJECTIVE_BREACHED = "overrun.objective.breached", Gauge, "{objective}", "1 while the window's figure is over its objective, else 0 (quantile=\"error_rate\" for the error-rate objective).";
    /// Budget violations by kind, of sites, tasks and the run.
    BUDGET_VIOLATIONS = "overrun.budget.violations", Counter, "{violation}", "Calls, polls, tasks or runs over their budget, by kind.";
    /// Tasks created.
    TASKS_SPAWNED = "overrun.tasks.spawned", Counter, "{task}", "Tasks created.";
    /// Tasks that ran to completion.
    TASKS_COMPLETED = "overrun.tasks.completed", Counter, "{task}", "Tasks that ran to completion.";
    /// Tasks dropped before completion.
    TASKS_CANCELLED = "overrun.tasks.cancelled", Counter, "{task}", "Tasks dropped before completion.";
    /// Tasks ended by a panic.
    TASKS_PANICKED = "overrun.tasks.panicked", Counter, "{task}", "Tasks ended by a panic.";
    /// Tasks alive now.
    TASKS_LIVE = "overrun.tasks.live", Gauge, "{task}", "Tasks alive now.";
    /// Tasks that outlived their lifetime budget.
    TASKS_LEAKED = "overrun.tasks.leaked", Counter, "{task}", "Tasks that outlived their lifetime budget.";
    /// Polls of tasks.
    TASK_POLLS = "overrun.task.polls", Counter, "{poll}", "Polls of tasks.";
    /// Time tasks spent in polls.
    TASK_BUSY = "overrun.task.busy", Counter, "s", "Time tasks spent in polls.";
    /// Durations of single polls.
    TASK_POLL_DURATION = "overrun.task.poll_duration", Histogram, "s", "Duration of single polls of tracked tasks.";
    /// Longest single poll.
    TASK_POLL_MAX = "overrun.task.poll_max", Gauge, "s", "Longest single poll of a task of this name.";
    /// Acquisitions of locks, by `mode` and `contended`.
    LOCK_ACQUISITIONS = "overrun.lock.acquisitions", Counter, "{acquisition}", "Acquisitions of a lock, by mode (exclusive, shared) and whether it was contended (taken: the thread waited).";
    /// Waits to acquire locks (0 for a lock found free).
    LOCK_WAIT = "overrun.lock.wait", Histogram, "s", "Wait to acquire a lock, every acquisition (0 when the lock was free), by mode.";
    /// Holds of locks with a hold budget.
    LOCK_HOLD = "overrun.lock.hold", Histogram, "s", "How long a lock was held (locks with a hold budget).";
    /// Holds in progress past their budget.
    LOCK_HELD_PAST_BUDGET = "overrun.lock.held_past_budget", Gauge, "{hold}", "Holds of a lock in progress now that are past its hold budget (a deadlock or a forgotten guard, for as long as it lasts).";
    /// Resident memory now.
    RESIDENT_MEMORY = "overrun.process.resident_memory", Gauge, "By", "Resident memory of the process now.";
    /// Peak resident memory since the program started.
    PEAK_RESIDENT_MEMORY = "overrun.process.peak_resident_memory", Gauge, "By", "Peak resident memory of the process since it started.";
    /// Live heap bytes (needs `CountingAlloc`).
    HEAP_LIVE = "overrun.heap.live", Gauge, "By", "Live heap bytes (CountingAlloc).";
    /// Policy files rejected ([`crate::config`]).
    CONFIG_ERRORS = "overrun.config.errors", Counter, "{error}", "Budget policy files rejected (unreadable or invalid).";
    /// Policy file loads and reloads, by `result` (`ok`, `error`).
    CONFIG_RELOADS = "overrun.config.reloads", Counter, "{reload}", "Budget policy file loads and reloads, by result.";
    /// Exports that did not reach their backend (points from the exporter).
    EXPORT_FAILURES = "overrun.export.failures", Counter, "{export}", "Exports that could not be delivered in full, by exporter.";
    /// Violation events an exporter did not deliver (points from the exporter).
    VIOLATIONS_DROPPED = "overrun.violations.dropped", Counter, "{event}", "Violation events an exporter did not deliver, by reason.";
    /// Scrapes served (points from the Prometheus exporter).
    EXPORTER_SCRAPES = "overrun.exporter.scrapes", Counter, "{scrape}", "Scrapes served.";
}

/// Why a list of histogram bounds cannot be used by an exporter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BucketsError {
    /// No bound at all.
    #[error("no bucket bound given")]
    Empty,
    /// A bound that is not a positive, finite number of seconds.
    #[error("bound {value} is not a positive number of seconds")]
    NotPositive {
        /// The bound.
        value: f64,
    },
    /// Bounds that do not strictly increase.
    #[error("bounds must increase: {before} is followed by {after}")]
    NotIncreasing {
        /// The earlier bound.
        before: f64,
        /// The bound after it.
        after: f64,
    },
}

/// Checks the upper bounds (seconds) of an exporter's duration histograms:
/// at least one, each positive and finite, strictly increasing. Both
/// exporters call it on their `buckets(..)` setting.
///
/// ```
/// use overrun::export::{BucketsError, check_buckets};
/// assert_eq!(check_buckets(overrun::stats::DEFAULT_BUCKETS), Ok(()));
/// assert_eq!(check_buckets(&[]), Err(BucketsError::Empty));
/// assert_eq!(check_buckets(&[0.1, -1.0]), Err(BucketsError::NotPositive { value: -1.0 }));
/// assert_eq!(
///     check_buckets(&[0.1, 0.1]),
///     Err(BucketsError::NotIncreasing { before: 0.1, after: 0.1 })
/// );
/// ```
pub fn check_buckets(bounds: &[f64]) -> Result<(), BucketsError> {
    if bounds.is_empty() {
        return Err(BucketsError::Empty);
    }
    if let Some(&value) = bounds.iter().find(|v| !v.is_finite() || **v <= 0.0) {
        return Err(BucketsError::NotPositive { value });
    }
    match bounds.windows(2).find(|w| w[0] >= w[1]) {
        Some(w) => Err(BucketsError::NotIncreasing {
            before: w[0],
            after: w[1],
        }),
        None => Ok(()),
    }
}

/// The bounds of one histogram series: the exporter's `bounds` (seconds,
/// ascending) with the series' `thresholds_ns` added, ascending, each once.
///
/// ```
/// use overrun::export::bounds_with;
/// assert_eq!(bounds_with(&[0.01, 0.1], &[50_000_000]), [0.01, 0.05, 0.1]);
/// assert_eq!(bounds_with(&[0.01, 0.1], &[10_000_000]), [0.01, 0.1]);
/// ```
pub fn bounds_with(bounds: &[f64], thresholds_ns: &[u64]) -> Vec<f64> {
    let mut all: Vec<f64> = bounds.to_vec();
    all.extend(thresholds_ns.iter().map(|&ns| threshold_seconds(ns)));
    all.sort_by(f64::total_cmp);
    all.dedup();
    all
}

pub use crate::record::stats::histogram::bound_seconds as threshold_seconds;

/// A label value, or a PromQL string literal's content, escaped: `\`,
/// `"` and line breaks (both grammars read the same three escapes).
///
/// ```
/// use overrun::export::escape_label_value;
/// assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
/// assert_eq!(escape_label_value("x\ny"), "x\\ny");
/// ```
pub fn escape_label_value(value: &str) -> String {
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

/// A bucket bound as OpenMetrics writes it, canonically: with a decimal
/// point (`1.0`, not `1`), as Prometheus 3 stores `le` whatever the format.
///
/// ```
/// use overrun::export::canonical_bound;
/// assert_eq!(canonical_bound(1.0), "1.0");
/// assert_eq!(canonical_bound(0.05), "0.05");
/// assert_eq!(canonical_bound(2.5e-7), "0.00000025");
/// ```
pub fn canonical_bound(seconds: f64) -> String {
    let text = seconds.to_string();
    if text.contains(['.', 'e', 'E', 'i', 'N']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// A point's value.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Value<'a> {
    /// A count.
    Int(u64),
    /// Seconds, or another fractional figure.
    Float(f64),
    /// A duration distribution: the histogram (ns), the number of values
    /// and their sum in seconds.
    Histogram {
        /// Values in nanoseconds; bucket counts come from
        /// [`Histogram::cumulative_counts`].
        histogram: &'a Histogram,
        /// Number of values.
        count: u64,
        /// Sum of values, seconds.
        sum_seconds: f64,
        /// Bounds (ns, ascending) this series adds to the exporter's own: a
        /// site's time budget and its objectives' thresholds, so a backend's
        /// `le` bucket sits at each of them ([`bounds_with`]). Empty for
        /// other histograms.
        thresholds_ns: &'a [u64],
        /// Slow calls and the traces they ran in, oldest first: each on the
        /// bucket of its duration ([`crate::exemplar`]). Empty for other
        /// histograms.
        exemplars: &'a [crate::record::exemplar::Exemplar],
    },
}

/// One point: its labels and its value.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Point<'a> {
    /// Label (attribute) keys and values, in a fixed order.
    pub labels: Vec<(&'static str, &'a str)>,
    /// The value.
    pub value: Value<'a>,
}

impl<'a> Point<'a> {
    /// A point of an exporter's own (its health figures).
    ///
    /// ```
    /// use overrun::export::{Point, Value};
    /// let p = Point::new(vec![("exporter", "mine")], Value::Int(3));
    /// assert_eq!(p.label("exporter"), Some("mine"));
    /// ```
    pub fn new(labels: Vec<(&'static str, &'a str)>, value: Value<'a>) -> Self {
        Self { labels, value }
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }
}

/// One metric and its points.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Series<'a> {
    /// What it is.
    pub metric: &'static Metric,
    /// Its points; never empty.
    pub points: Vec<Point<'a>>,
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn site_labels(s: &SiteSnapshot) -> Vec<(&'static str, &str)> {
    vec![("function", s.name), ("module", s.module)]
}

fn task_labels(t: &TaskStats) -> Vec<(&'static str, &str)> {
    vec![("task", t.name)]
}

/// What [`series_of`] covers of a snapshot: its sites, its process-wide
/// figures (tasks, locks, run, memory), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// Everything.
    All,
    /// Only the sites `[from, to)` of `snapshot.sites` followed by
    /// `snapshot.never_ran` (an exporter that splits a large snapshot into
    /// several requests).
    Sites {
        /// First site.
        from: usize,
        /// One past the last site.
        to: usize,
    },
    /// Only the process-wide series: tasks, locks, the run's violations,
    /// memory.
    Process,
}

/// Every series of `snap`, each once, in the order of [`ALL`]. Metrics with
/// no point (no sites yet, no `CountingAlloc`) are left out.
pub fn series(snap: &Snapshot) -> Vec<Series<'_>> {
    series_of(snap, Part::All)
}

/// The series of one [`Part`] of `snap`.
///
/// ```
/// use overrun::export::{Part, series_of};
/// let snap = overrun::snapshot();
/// let process = series_of(&snap, Part::Process);
/// assert!(process.iter().any(|s| s.metric.name == "overrun.process.peak_resident_memory"));
/// assert!(process.iter().all(|s| s.metric.name != "overrun.calls"));
/// ```
pub fn series_of(snap: &Snapshot, part: Part) -> Vec<Series<'_>> {
    // Sites that never ran have series too, all zero, from the start (so the
    // first call's violation shows in `increase()`): after those that ran.
    let all: Vec<&SiteSnapshot> = snap.sites.iter().chain(&snap.never_ran).collect();
    let (sites, process) = match part {
        Part::All => (&all[..], true),
        Part::Sites { from, to } => {
            let to = to.min(all.len());
            (&all[from.min(to)..to], false)
        }
        Part::Process => (&[][..], true),
    };
    let mut out: Vec<Series<'_>> = Vec::new();
    fn add<'a>(out: &mut Vec<Series<'a>>, metric: &'static Metric, points: Vec<Point<'a>>) {
        let points = unique(metric, points);
        if !points.is_empty() {
            out.push(Series { metric, points });
        }
    }
    macro_rules! push {
        ($metric:expr, $points:expr $(,)?) => {
            add(&mut out, $metric, $points)
        };
    }
    let per_site = |f: &dyn Fn(&SiteSnapshot) -> Option<Value<'_>>| -> Vec<Point<'_>> {
        sites
            .iter()
            .filter_map(|s| {
                f(s).map(|value| Point {
                    labels: site_labels(s),
                    value,
                })
            })
            .collect()
    };
    push!(&CALLS, per_site(&|s| Some(Value::Int(s.calls))));
    push!(&ERRORS, per_site(&|s| Some(Value::Int(s.errors))));
    push!(
        &DURATION,
        sites
            .iter()
            .map(|s| Point {
                labels: site_labels(s),
                value: Value::Histogram {
                    histogram: &s.histogram,
                    // The histogram's own count, not `calls`: a call being
                    // recorded while the snapshot is taken may be in one and
                    // not yet in the other, and a count above the buckets'
                    // sum would put it in the last bucket for one export
                    // and move it out in the next (an OTLP bucket count
                    // that falls).
                    count: s.histogram.count(),
                    sum_seconds: seconds(s.total_ns),
                    thresholds_ns: &s.thresholds_ns,
                    exemplars: &s.exemplars,
                },
            })
            .collect(),
    );
    push!(
        &SELF_DURATION,
        per_site(&|s| Some(Value::Float(seconds(s.self_ns)))),
    );
    push!(&ALLOCATIONS, per_site(&|s| s.allocs.map(Value::Int)));
    push!(
        &ALLOCATED_BYTES,
        per_site(&|s| s.alloc_bytes.map(Value::Int))
    );
    push!(
        &BUDGET,
        per_site(&|s| s.budget.time_ns.map(|ns| Value::Float(seconds(ns)))),
    );

    let objective_points = |f: &dyn Fn(&ObjectiveStatus) -> Option<(f64, bool)>| -> Vec<Point<'_>> {
        sites
            .iter()
            .flat_map(|s| {
                s.objectives.iter().filter_map(move |o| {
                    let (value, with_quantile) = f(o)?;
                    let mut labels = site_labels(s);
                    if with_quantile {
                        labels.push(("quantile", o.objective.label()));
                    }
                    Some(Point {
                        labels,
                        value: Value::Float(value),
                    })
                })
            })
            .collect()
    };
    let latency = |o: &ObjectiveStatus| matches!(o.objective, Objective::Quantile(_));
    push!(
        &OBJECTIVE,
        objective_points(&|o| latency(o).then(|| (seconds(o.limit), true))),
    );
    push!(
        &OBJECTIVE_WINDOW,
        objective_points(&|o| {
            latency(o)
                .then_some(o.observed)
                .flatten()
                .map(|ns| (seconds(ns), true))
        }),
    );
    push!(
        &OBJECTIVE_ERROR_RATIO,
        objective_points(&|o| (!latency(o)).then(|| (o.limit as f64 / 1e6, false))),
    );
    push!(
        &OBJECTIVE_WINDOW_ERROR_RATIO,
        objective_points(&|o| {
            (!latency(o))
                .then_some(o.observed)
                .flatten()
                .map(|ppm| (ppm as f64 / 1e6, false))
        }),
    );
    push!(
        &OBJECTIVE_BREACHED,
        objective_points(&|o| Some((if o.breached { 1.0 } else { 0.0 }, true))),
    );

    let mut violations = Vec::new();
    for s in sites {
        for (kind, n) in s.violation_counts() {
            let mut labels = site_labels(s);
            labels.push(("kind", kind.as_str()));
            violations.push(Point {
                labels,
                value: Value::Int(n),
            });
        }
    }
    let tasks: &[TaskStats] = if process { &snap.tasks } else { &[] };
    if process {
        for t in tasks {
            for (kind, n) in [("poll", t.poll_violations), ("lifetime", t.leaked)] {
                violations.push(Point {
                    labels: vec![
                        ("function", t.name),
                        ("module", TASK_MODULE),
                        ("kind", kind),
                    ],
                    value: Value::Int(n),
                });
            }
        }
        for l in &snap.locks {
            for (kind, n) in l.violation_counts() {
                violations.push(Point {
                    labels: vec![
                        ("function", l.name),
                        ("module", LOCK_MODULE),
                        ("kind", kind.as_str()),
                    ],
                    value: Value::Int(n),
                });
            }
        }
        for v in &snap.run.violations {
            violations.push(Point {
                labels: vec![
                    ("function", "main"),
                    ("module", RUN_MODULE),
                    ("kind", v.kind.as_str()),
                ],
                value: Value::Int(1),
            });
        }
    }
    push!(&BUDGET_VIOLATIONS, violations);

    let per_task = |f: fn(&TaskStats) -> Value<'_>| -> Vec<Point<'_>> {
        tasks
            .iter()
            .map(|t| Point {
                labels: task_labels(t),
                value: f(t),
            })
            .collect()
    };
    push!(&TASKS_SPAWNED, per_task(|t| Value::Int(t.spawned)));
    push!(&TASKS_COMPLETED, per_task(|t| Value::Int(t.completed)));
    push!(&TASKS_CANCELLED, per_task(|t| Value::Int(t.cancelled)));
    push!(&TASKS_PANICKED, per_task(|t| Value::Int(t.panicked)));
    push!(&TASKS_LIVE, per_task(|t| Value::Int(t.live)));
    push!(&TASKS_LEAKED, per_task(|t| Value::Int(t.leaked)));
    push!(&TASK_POLLS, per_task(|t| Value::Int(t.polls)));
    push!(&TASK_BUSY, per_task(|t| Value::Float(seconds(t.busy_ns))));
    push!(
        &TASK_POLL_DURATION,
        per_task(|t| Value::Histogram {
            histogram: &t.poll_histogram,
            count: t.poll_histogram.count(),
            sum_seconds: seconds(t.busy_ns),
            thresholds_ns: &[],
            exemplars: &[],
        }),
    );
    push!(
        &TASK_POLL_MAX,
        tasks
            .iter()
            .filter_map(|t| {
                t.max_poll_ns.map(|ns| Point {
                    labels: task_labels(t),
                    value: Value::Float(seconds(ns)),
                })
            })
            .collect(),
    );

    let locks: &[LockStats] = if process { &snap.locks } else { &[] };
    let mut acquisitions = Vec::new();
    let mut waits = Vec::new();
    for l in locks {
        for (mode, acquired, contended, histogram, total_ns) in lock_modes(l) {
            for (label, n) in [("false", acquired - contended), ("true", contended)] {
                acquisitions.push(Point {
                    labels: vec![("lock", l.name), ("mode", mode), ("contended", label)],
                    value: Value::Int(n),
                });
            }
            waits.push(Point {
                labels: vec![("lock", l.name), ("mode", mode)],
                value: Value::Histogram {
                    histogram,
                    count: histogram.count(),
                    sum_seconds: seconds(total_ns),
                    thresholds_ns: &[],
                    exemplars: &[],
                },
            });
        }
    }
    push!(&LOCK_ACQUISITIONS, acquisitions);
    push!(&LOCK_WAIT, waits);
    let budgeted = || {
        locks
            .iter()
            .filter(|l| l.budget.hold_ns.is_some() || l.hold_histogram.count() > 0)
    };
    push!(
        &LOCK_HOLD,
        budgeted()
            .map(|l| Point {
                labels: vec![("lock", l.name)],
                value: Value::Histogram {
                    histogram: &l.hold_histogram,
                    count: l.hold_histogram.count(),
                    sum_seconds: seconds(l.total_hold_ns),
                    thresholds_ns: &[],
                    exemplars: &[],
                },
            })
            .collect(),
    );
    push!(
        &LOCK_HELD_PAST_BUDGET,
        budgeted()
            .map(|l| Point {
                labels: vec![("lock", l.name)],
                value: Value::Int(l.held_past_budget),
            })
            .collect(),
    );

    if process {
        let run = &snap.run;
        let unlabelled = |v: Option<u64>| -> Vec<Point<'_>> {
            v.map(|v| Point {
                labels: Vec::new(),
                value: Value::Int(v),
            })
            .into_iter()
            .collect()
        };
        push!(&RESIDENT_MEMORY, unlabelled(run.rss_bytes));
        push!(
            &PEAK_RESIDENT_MEMORY,
            unlabelled((run.peak_rss_bytes > 0).then_some(run.peak_rss_bytes)),
        );
        push!(&HEAP_LIVE, unlabelled(run.heap_live_bytes));
        let config = &snap.config;
        push!(&CONFIG_ERRORS, unlabelled(Some(config.errors)));
        push!(
            &CONFIG_RELOADS,
            vec![
                Point {
                    labels: vec![("result", "ok")],
                    value: Value::Int(config.reloads_ok),
                },
                Point {
                    labels: vec![("result", "error")],
                    value: Value::Int(config.reloads_failed),
                },
            ]
        );
    }
    out
}

/// A lock's acquisitions per mode: (mode, acquisitions, contended, waits,
/// total wait ns); a mutex has only `exclusive`.
fn lock_modes(l: &LockStats) -> Vec<(&'static str, u64, u64, &Histogram, u64)> {
    match (&l.exclusive, &l.shared) {
        (Some(e), Some(s)) => vec![
            (
                "exclusive",
                e.acquisitions,
                e.contended,
                &e.wait_histogram,
                e.total_wait_ns,
            ),
            (
                "shared",
                s.acquisitions,
                s.contended,
                &s.wait_histogram,
                s.total_wait_ns,
            ),
        ],
        _ => vec![(
            "exclusive",
            l.acquisitions,
            l.contended,
            &l.wait_histogram,
            l.total_wait_ns,
        )],
    }
}

static DUPLICATES: AtomicU64 = AtomicU64::new(0);

/// The guard every exporter relies on: within one metric, no two points
/// with the same labels (a backend keeps one and silently drops the other).
/// Site identities are unique, so this never fires for sites; should two
/// series still collide, the later one is left out, counted in
/// [`duplicates_dropped`] and reported once on stderr.
fn unique<'a>(metric: &Metric, points: Vec<Point<'a>>) -> Vec<Point<'a>> {
    let mut seen = HashSet::with_capacity(points.len());
    let before = points.len();
    let kept: Vec<Point<'a>> = points
        .into_iter()
        .filter(|p| seen.insert(p.labels.clone()))
        .collect();
    let dropped = (before - kept.len()) as u64;
    if dropped > 0 && DUPLICATES.fetch_add(dropped, Ordering::Relaxed) == 0 {
        eprintln!(
            "overrun: {} has two series with the same labels; the later is not exported",
            metric.name
        );
    }
    kept
}

/// Points [`series`] left out because another point of the same metric had
/// the same labels (see the guard above); 0 in every correct program.
///
/// ```
/// let _ = overrun::export::series(&overrun::snapshot());
/// assert_eq!(overrun::export::duplicates_dropped(), 0);
/// ```
pub fn duplicates_dropped() -> u64 {
    DUPLICATES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_names_follow_the_compatibility_rules() {
        let names: Vec<String> = ALL.iter().map(Metric::prometheus_name).collect();
        for expected in [
            "overrun_calls_total",
            "overrun_errors_total",
            "overrun_duration_seconds",
            "overrun_self_duration_seconds_total",
            "overrun_allocations_total",
            "overrun_allocated_bytes_total",
            "overrun_budget_seconds",
            "overrun_budget_violations_total",
            "overrun_objective_seconds",
            "overrun_objective_window_seconds",
            "overrun_objective_breached",
            "overrun_objective_error_ratio",
            "overrun_objective_window_error_ratio",
            "overrun_tasks_live",
            "overrun_task_busy_seconds_total",
            "overrun_task_poll_duration_seconds",
            "overrun_task_poll_max_seconds",
            "overrun_process_resident_memory_bytes",
            "overrun_process_peak_resident_memory_bytes",
            "overrun_heap_live_bytes",
            "overrun_config_errors_total",
            "overrun_config_reloads_total",
            "overrun_export_failures_total",
            "overrun_violations_dropped_total",
            "overrun_exporter_scrapes_total",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
    }

    #[test]
    fn the_guard_leaves_out_a_second_series_with_the_same_labels() {
        let point = |function, n| Point {
            labels: vec![("function", function), ("module", "m")],
            value: Value::Int(n),
        };
        let kept = unique(&CALLS, vec![point("a", 1), point("b", 2), point("a", 3)]);
        let values: Vec<_> = kept
            .iter()
            .map(|p| {
                (
                    p.label("function").unwrap(),
                    matches!(p.value, Value::Int(1 | 2)),
                )
            })
            .collect();
        assert_eq!(values, [("a", true), ("b", true)]);
        assert!(duplicates_dropped() >= 1);
    }

    #[test]
    fn every_name_is_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
