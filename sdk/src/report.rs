//! Snapshots and the end-of-run report: a table for people, JSON for tools.
//!
//! [`snapshot`] merges every thread's figures into plain numbers (cost grows
//! with sites × threads × histogram octaves in use, never with the number of
//! calls). [`report`] prints the table to stderr, or JSON as chosen by the
//! environment:
//!
//! | variable | effect |
//! | --- | --- |
//! | `OVERRUN_REPORT=table` (default) | table on stderr |
//! | `OVERRUN_REPORT=json` | the JSON report on stderr instead of the table |
//! | `OVERRUN_REPORT=off` | nothing on stderr |
//! | `OVERRUN_REPORT_FILE=path` | also write the JSON report to `path` |

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;

use crate::budget::limit;
use crate::site::{self, SiteKind};
use crate::stats::{Histogram, collect};
use crate::violation::ViolationKind;

/// Version of the JSON report format.
pub const REPORT_VERSION: u32 = 1;

static START: OnceLock<(Instant, u64)> = OnceLock::new();

/// The instant the run started, and the process CPU time then: the start of
/// `#[overrun::main]`, or the first time overrun was asked. CPU time is
/// reported from there, not from `exec` (resource usage survives `exec`, so a
/// program started by `cargo run` would otherwise be charged cargo's CPU).
pub(crate) fn run_start() -> (Instant, u64) {
    *START.get_or_init(|| (Instant::now(), crate::run::usage().cpu_ns))
}

/// Everything overrun knows at one instant.
///
/// ```
/// #[overrun::measure]
/// fn step() -> u32 { 7 }
/// step();
/// let snap = overrun::snapshot();
/// assert_eq!(snap.site("step").unwrap().calls, 1);
/// assert_eq!(snap.version, 1);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Format version ([`REPORT_VERSION`]).
    pub version: u32,
    /// Process-wide figures.
    pub run: RunSnapshot,
    /// One entry per site that was called at least once, in registration order.
    pub sites: Vec<SiteSnapshot>,
    /// Async task figures per task name ([`crate::tasks`]).
    pub tasks: Vec<crate::tasks::TaskStats>,
    /// Tasks alive at the time of the snapshot, oldest first.
    pub live_tasks: Vec<crate::tasks::LiveTask>,
}

impl Snapshot {
    /// The first site called `name`.
    pub fn site(&self, name: &str) -> Option<&SiteSnapshot> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// The report as JSON (the public, versioned format).
    ///
    /// ```
    /// let json = overrun::snapshot().to_json();
    /// assert!(json.starts_with('{'));
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a snapshot is always serialisable")
    }
}

/// Process-wide figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunSnapshot {
    /// Wall time since the run started, ns.
    pub wall_ns: u64,
    /// CPU time of the process (user + system) since the run started, ns.
    pub cpu_ns: u64,
    /// Peak resident set size, bytes.
    pub peak_rss_bytes: u64,
    /// Peak live heap bytes (needs [`crate::CountingAlloc`]).
    pub heap_peak_bytes: Option<u64>,
    /// Live heap bytes now (needs [`crate::CountingAlloc`]).
    pub heap_live_bytes: Option<u64>,
    /// Whether allocation figures are available.
    pub allocs_available: bool,
    /// The run's budget (`#[overrun::main]`).
    pub budget: RunBudget,
    /// The run's own violations.
    pub violations: Vec<RunViolation>,
    /// Violation events lost before a reader saw them.
    pub violations_dropped: u64,
}

/// The budget of the whole run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RunBudget {
    /// Wall time, ns.
    pub time_ns: Option<u64>,
    /// Peak resident memory, bytes.
    pub memory_bytes: Option<u64>,
}

/// A broken run budget.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunViolation {
    /// `time` or `memory`.
    pub kind: ViolationKind,
    /// Measured, ns or bytes.
    pub observed: u64,
    /// Budget, same unit.
    pub limit: u64,
}

/// Figures of one site.
#[derive(Debug, Clone, Serialize)]
pub struct SiteSnapshot {
    /// Function name.
    pub name: &'static str,
    /// Module path.
    pub module: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
    /// Sync, async or main.
    pub kind: SiteKind,
    /// Completed calls (for `async fn`, including cancelled ones).
    pub calls: u64,
    /// Calls that returned `Err` or panicked.
    pub errors: u64,
    /// `async fn` calls dropped before completion.
    pub cancelled: u64,
    /// Sum of call durations, ns (inclusive of callees).
    pub total_ns: u64,
    /// Sum of self time, ns: `total` minus measured callees (for `async fn`,
    /// busy time in polls minus callees).
    pub self_ns: u64,
    /// Median call duration, ns.
    pub p50_ns: u64,
    /// 95th percentile, ns.
    pub p95_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Longest call, ns.
    pub max_ns: u64,
    /// Polls of an `async fn`.
    pub polls: u64,
    /// Longest single poll, ns.
    pub max_poll_ns: u64,
    /// Heap allocations in all calls, callees included; `None` without
    /// [`crate::CountingAlloc`].
    pub allocs: Option<u64>,
    /// Heap bytes allocated in all calls; `None` without
    /// [`crate::CountingAlloc`].
    pub alloc_bytes: Option<u64>,
    /// The budget in force.
    pub budget: SiteBudget,
    /// Calls over budget, by kind.
    pub violations: SiteViolations,
    /// The latency histogram (not in the JSON).
    #[serde(skip)]
    pub histogram: Histogram,
}

impl SiteSnapshot {
    /// The violation counts an exporter publishes for this site: one per
    /// budget the site declares (from 0, so rates work from the start), plus
    /// any other kind that happened. A kind without a budget cannot be
    /// violated, so it gets no series.
    ///
    /// ```
    /// #[overrun::measure(budget = "1s")]
    /// fn timed() {}
    /// timed();
    /// let snap = overrun::snapshot();
    /// let kinds: Vec<_> = snap.site("timed").unwrap().violation_counts().collect();
    /// assert_eq!(kinds, [(overrun::ViolationKind::Time, 0)]);
    /// ```
    pub fn violation_counts(&self) -> impl Iterator<Item = (ViolationKind, u64)> + '_ {
        let (v, b) = (&self.violations, &self.budget);
        [
            (ViolationKind::Time, v.time, b.time_ns.is_some()),
            (ViolationKind::Allocs, v.allocs, b.allocs.is_some()),
            (ViolationKind::Bytes, v.bytes, b.bytes.is_some()),
            (ViolationKind::Poll, v.poll, b.poll_ns.is_some()),
        ]
        .into_iter()
        .filter(|&(_, n, declared)| declared || n > 0)
        .map(|(kind, n, _)| (kind, n))
    }

    /// Mean call duration, ns.
    pub fn mean_ns(&self) -> u64 {
        self.total_ns.checked_div(self.calls).unwrap_or(0)
    }

    /// Allocations per call (`None` without [`crate::CountingAlloc`]).
    pub fn allocs_per_call(&self) -> Option<f64> {
        self.allocs.map(|a| a as f64 / self.calls.max(1) as f64)
    }

    /// Bytes per call (`None` without [`crate::CountingAlloc`]).
    pub fn bytes_per_call(&self) -> Option<f64> {
        self.alloc_bytes
            .map(|b| b as f64 / self.calls.max(1) as f64)
    }
}

/// A site's budget; `None` is "no limit".
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SiteBudget {
    /// Per call, ns.
    pub time_ns: Option<u64>,
    /// Allocations per call.
    pub allocs: Option<u64>,
    /// Bytes per call.
    pub bytes: Option<u64>,
    /// Per poll, ns.
    pub poll_ns: Option<u64>,
}

/// Violations of one site, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SiteViolations {
    /// Calls over the time budget.
    pub time: u64,
    /// Calls over the allocation budget.
    pub allocs: u64,
    /// Calls over the bytes budget.
    pub bytes: u64,
    /// Polls over the poll budget.
    pub poll: u64,
}

impl SiteViolations {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.time + self.allocs + self.bytes + self.poll
    }
}

/// Merges every thread's figures into a [`Snapshot`]. Safe to call at any
/// time from any thread; it never blocks measured calls.
///
/// ```
/// let snap = overrun::snapshot();
/// assert!(snap.run.wall_ns > 0);
/// ```
pub fn snapshot() -> Snapshot {
    // Fold this thread's pending heap balance so a small program's peak is
    // not reported as zero.
    crate::alloc::flush_thread();
    crate::alloc::uncounted(|| {
        let sites = site::all();
        let totals = collect(sites.len());
        let allocs_available = crate::alloc::is_installed();
        let to_ns = crate::clock::ticks_to_ns;
        let sites = sites
            .iter()
            .zip(totals)
            .filter(|(site, t)| t.calls > 0 && site.kind() != SiteKind::TaskPoll)
            .map(|(site, t)| {
                let budget = site.budget();
                let h = &t.histogram;
                SiteSnapshot {
                    name: site.name(),
                    module: site.module(),
                    file: site.file(),
                    line: site.line(),
                    kind: site.kind(),
                    calls: t.calls,
                    errors: t.errors,
                    cancelled: t.cancelled,
                    total_ns: to_ns(t.total),
                    self_ns: to_ns(t.self_time),
                    p50_ns: h.quantile(0.50),
                    p95_ns: h.quantile(0.95),
                    p99_ns: h.quantile(0.99),
                    max_ns: h.max(),
                    polls: t.polls,
                    max_poll_ns: to_ns(t.max_poll),
                    allocs: allocs_available.then_some(t.allocs),
                    alloc_bytes: allocs_available.then_some(t.bytes),
                    budget: SiteBudget {
                        time_ns: limit(budget.time_ns),
                        allocs: limit(budget.allocs),
                        bytes: limit(budget.bytes),
                        poll_ns: limit(budget.poll_ns),
                    },
                    violations: SiteViolations {
                        time: t.violations[0],
                        allocs: t.violations[1],
                        bytes: t.violations[2],
                        poll: t.violations[3],
                    },
                    histogram: t.histogram,
                }
            })
            .collect();
        let usage = crate::run::usage();
        let (start, start_cpu) = run_start();
        let (budget, violations) = crate::run::budget_and_violations();
        Snapshot {
            version: REPORT_VERSION,
            run: RunSnapshot {
                wall_ns: start.elapsed().as_nanos() as u64,
                cpu_ns: usage.cpu_ns.saturating_sub(start_cpu),
                peak_rss_bytes: usage.peak_rss_bytes,
                heap_peak_bytes: crate::alloc::heap_peak_bytes(),
                heap_live_bytes: crate::alloc::heap_live_bytes(),
                allocs_available,
                budget,
                violations,
                violations_dropped: crate::violation::dropped(),
            },
            sites,
            tasks: crate::tasks::stats(),
            live_tasks: crate::tasks::live(),
        }
    })
}

/// Where the report goes, from `OVERRUN_REPORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Off,
}

fn format_from_env() -> Format {
    match std::env::var("OVERRUN_REPORT")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "json" => Format::Json,
        "off" | "none" | "0" | "false" => Format::Off,
        _ => Format::Table,
    }
}

/// Takes a snapshot and reports it as the environment says (see the module
/// docs): by default a table on stderr; `OVERRUN_REPORT_FILE` also writes the
/// JSON to a file. Returns the snapshot.
///
/// ```
/// // SAFETY: doctests run single-threaded here.
/// unsafe { std::env::set_var("OVERRUN_REPORT", "off") };
/// let snap = overrun::report();
/// assert_eq!(snap.version, 1);
/// ```
pub fn report() -> Snapshot {
    let snap = snapshot();
    match format_from_env() {
        Format::Table => eprint!("{}", render_table(&snap)),
        Format::Json => eprintln!("{}", snap.to_json()),
        Format::Off => {}
    }
    let file = std::env::var_os("OVERRUN_REPORT_FILE").filter(|p| !p.is_empty());
    if let Some(path) = file
        && let Err(err) = std::fs::write(&path, snap.to_json() + "\n")
    {
        eprintln!(
            "overrun: cannot write the report to {}: {err}",
            std::path::Path::new(&path).display()
        );
    }
    snap
}

/// Formats nanoseconds for people: `812ns`, `1.25µs`, `3.40ms`, `2.00s`.
///
/// ```
/// assert_eq!(overrun::report::fmt_ns(1_250), "1.25µs");
/// assert_eq!(overrun::report::fmt_ns(90_000_000_000), "90.0s");
/// ```
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => precise(v / 1e3, "µs"),
        1_000_000..1_000_000_000 => precise(v / 1e6, "ms"),
        _ => precise(v / 1e9, "s"),
    }
}

/// Formats bytes for people: `512B`, `1.50KiB`, `12.3MiB`.
///
/// ```
/// assert_eq!(overrun::report::fmt_bytes(1536), "1.50KiB");
/// ```
pub fn fmt_bytes(bytes: u64) -> String {
    let v = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes}B"),
        1024..1_048_576 => precise(v / 1024.0, "KiB"),
        1_048_576..1_073_741_824 => precise(v / 1_048_576.0, "MiB"),
        _ => precise(v / 1_073_741_824.0, "GiB"),
    }
}

fn precise(v: f64, unit: &str) -> String {
    if v >= 100.0 {
        format!("{v:.0}{unit}")
    } else if v >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}

fn per_call(v: Option<f64>, bytes: bool) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if bytes => fmt_bytes(v.round() as u64),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// Renders the report table, as printed by [`report`].
///
/// ```
/// let table = overrun::report::render_table(&overrun::snapshot());
/// assert!(table.contains("overrun"));
/// ```
pub fn render_table(snap: &Snapshot) -> String {
    let run = &snap.run;
    let mut out = String::new();
    let wall = run.wall_ns.max(1);
    let check = |over: bool| if over { "OVER BUDGET" } else { "ok" };
    let _ = write!(out, "overrun report — run {}", fmt_ns(run.wall_ns));
    if let Some(b) = run.budget.time_ns {
        let over = run.violations.iter().any(|v| v.kind == ViolationKind::Time);
        let _ = write!(out, " (budget {}: {})", fmt_ns(b), check(over));
    }
    let _ = write!(
        out,
        ", CPU {} ({:.0}%), peak RSS {}",
        fmt_ns(run.cpu_ns),
        run.cpu_ns as f64 * 100.0 / wall as f64,
        fmt_bytes(run.peak_rss_bytes)
    );
    if let Some(b) = run.budget.memory_bytes {
        let over = run
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Memory);
        let _ = write!(out, " (budget {}: {})", fmt_bytes(b), check(over));
    }
    match run.heap_peak_bytes {
        Some(peak) => {
            let _ = write!(out, ", heap peak {}", fmt_bytes(peak));
        }
        None => out.push_str(", allocations n/a (no CountingAlloc)"),
    }
    out.push('\n');

    let mut sites: Vec<&SiteSnapshot> = snap.sites.iter().collect();
    sites.sort_by_key(|s| std::cmp::Reverse(s.total_ns));
    let name_width = sites
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 40);
    if !sites.is_empty() {
        let _ = writeln!(
            out,
            "  {:<name_width$} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9}  violations",
            "function",
            "calls",
            "errors",
            "p50",
            "p95",
            "p99",
            "max",
            "self%",
            "allocs/c",
            "bytes/c"
        );
    }
    for s in sites {
        let name: String = s.name.chars().take(name_width).collect();
        let v = s.violations;
        let mut violations = String::new();
        for (kind, n) in [
            ("time", v.time),
            ("allocs", v.allocs),
            ("bytes", v.bytes),
            ("poll", v.poll),
        ] {
            if n > 0 {
                let _ = write!(violations, "{kind}:{n} ");
            }
        }
        if violations.is_empty() {
            violations.push('-');
        }
        let _ = writeln!(
            out,
            "  {:<name_width$} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6.1}% {:>9} {:>9}  {}",
            name,
            s.calls,
            s.errors,
            fmt_ns(s.p50_ns),
            fmt_ns(s.p95_ns),
            fmt_ns(s.p99_ns),
            fmt_ns(s.max_ns),
            s.self_ns as f64 * 100.0 / wall as f64,
            per_call(s.allocs_per_call(), false),
            per_call(s.bytes_per_call(), true),
            violations.trim_end()
        );
    }
    if !snap.tasks.is_empty() {
        let width = snap
            .tasks
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 40);
        let _ = writeln!(
            out,
            "  {:<width$} {:>8} {:>9} {:>9} {:>8} {:>5} {:>6} {:>8} {:>9} {:>9} {:>9}",
            "task",
            "spawned",
            "completed",
            "cancelled",
            "panicked",
            "live",
            "leaked",
            "polls",
            "max poll",
            "life p50",
            "life p99"
        );
        for t in &snap.tasks {
            let _ = writeln!(
                out,
                "  {:<width$} {:>8} {:>9} {:>9} {:>8} {:>5} {:>6} {:>8} {:>9} {:>9} {:>9}{}",
                t.name,
                t.spawned,
                t.completed,
                t.cancelled,
                t.panicked,
                t.live,
                t.leaked,
                t.polls,
                fmt_ns(t.max_poll_ns),
                fmt_ns(t.lifetime_p50_ns),
                fmt_ns(t.lifetime_p99_ns),
                if t.poll_violations > 0 {
                    format!("  poll:{}", t.poll_violations)
                } else {
                    String::new()
                }
            );
        }
    }
    for t in &snap.live_tasks {
        let _ = writeln!(
            out,
            "  still running: {} spawned at {}:{}, age {}, {} polls{}",
            t.name,
            t.file,
            t.line,
            fmt_ns(t.age.as_nanos() as u64),
            t.polls,
            if t.leaked {
                " (LEAKED: over its lifetime budget)"
            } else {
                ""
            }
        );
    }
    for v in &run.violations {
        let show = |x| match v.kind {
            ViolationKind::Memory => fmt_bytes(x),
            _ => fmt_ns(x),
        };
        let _ = writeln!(
            out,
            "  run over its {} budget: {} > {}",
            v.kind,
            show(v.observed),
            show(v.limit)
        );
    }
    let dropped = run.violations_dropped;
    if dropped > 0 {
        let _ = writeln!(out, "  ({dropped} violation events dropped from the ring)");
    }
    out
}
