//! The data model of the read side: everything overrun knows at one
//! instant, as plain numbers. Exporters, the report and the tools read a
//! [`Snapshot`]; nothing above this layer touches the per-thread shards.
//!
//! [`snapshot`] merges every thread's figures (cost grows with sites ×
//! threads × histogram octaves in use, never with the number of calls).

use serde::Serialize;

use crate::record::objective::ObjectiveStatus;
use crate::record::site::Site;
use crate::record::site::{self, SiteKind};
use crate::record::stats::{Histogram, Totals, collect};
use crate::run::{RunBudget, RunViolation};
use crate::vocab::budget::{Budget, limit};
use crate::vocab::kind::ViolationKind;

/// Version of the JSON report format.
pub const REPORT_VERSION: u32 = 1;

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
#[non_exhaustive]
pub struct Snapshot {
    /// Format version ([`REPORT_VERSION`]).
    pub version: u32,
    /// What the report describes: program, version, arguments' hash, start,
    /// host, commit.
    pub meta: crate::run::Meta,
    /// Process-wide figures.
    pub run: RunSnapshot,
    /// One entry per site that was called at least once, in registration order.
    pub sites: Vec<SiteSnapshot>,
    /// Async task figures per task name ([`crate::tasks`]).
    pub tasks: Vec<crate::tasks::TaskStats>,
    /// Tasks alive at the time of the snapshot, oldest first.
    pub live_tasks: Vec<crate::tasks::LiveTask>,
    /// Lock figures per lock name ([`crate::sync`]), by name.
    pub locks: Vec<crate::sync::LockStats>,
    /// Measured functions that have not run yet, in registration order:
    /// their figures are all zero, so exporters publish their series from
    /// the start; the report table leaves them out, and the JSON lists only
    /// who they are (name, module, file, line, kind, budget).
    #[serde(serialize_with = "identities")]
    pub never_ran: Vec<SiteSnapshot>,
    /// Policy files loaded, reloaded and rejected ([`crate::config`]).
    pub config: crate::config::ConfigStats,
}

fn sparse_buckets<S: serde::Serializer>(h: &Histogram, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(h.buckets().map(|(low, high, count)| [low, high, count]))
}

/// One site's figures, from its merged totals.
fn site_snapshot(site: &Site, t: Totals, allocs_available: bool) -> SiteSnapshot {
    let to_ns = crate::record::clock::ticks_to_ns;
    let h = &t.histogram;
    let (budget, budget_source) = crate::config::state::in_force(site);
    let objectives = objectives_of(site, &budget);
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
        max_poll_ns: (t.polls > 0).then(|| to_ns(t.max_poll)),
        allocs: allocs_available.then_some(t.allocs),
        alloc_bytes: allocs_available.then_some(t.bytes),
        budget: site_budget(&budget),
        budget_source,
        code_budget: site_budget(&site.budget()),
        violations: SiteViolations {
            time: t.violations[0],
            allocs: t.violations[1],
            bytes: t.violations[2],
            poll: t.violations[3],
            objective: site
                .registered_index()
                .map_or(0, crate::record::objective::violations),
        },
        thresholds_ns: budget.thresholds_ns(),
        exemplars: site
            .registered_index()
            .map(crate::record::exemplar::of)
            .unwrap_or_default(),
        objectives,
        histogram: t.histogram,
    }
}

/// The objectives of `budget` (the budget in force), each with what the
/// evaluator last saw of it.
fn objectives_of(site: &Site, budget: &Budget) -> Vec<ObjectiveStatus> {
    let seen = site
        .registered_index()
        .map(crate::record::objective::status)
        .unwrap_or_default();
    let window_ns = budget.objectives.window_ns();
    budget
        .objectives
        .targets()
        .map(|(objective, limit)| {
            seen.iter()
                .find(|s| s.objective == objective && s.limit == limit && s.window_ns == window_ns)
                .copied()
                .unwrap_or_else(|| ObjectiveStatus::unseen(objective, limit, window_ns))
        })
        .collect()
}

fn site_budget(budget: &crate::vocab::budget::Budget) -> SiteBudget {
    let o = &budget.objectives;
    SiteBudget {
        time_ns: limit(budget.time_ns),
        allocs: limit(budget.allocs),
        bytes: limit(budget.bytes),
        poll_ns: limit(budget.poll_ns),
        p50_ns: limit(o.quantiles[0]),
        p90_ns: limit(o.quantiles[1]),
        p95_ns: limit(o.quantiles[2]),
        p99_ns: limit(o.quantiles[3]),
        p999_ns: limit(o.quantiles[4]),
        error_rate_ppm: limit(o.error_rate_ppm),
        window_ns: o.is_set().then(|| o.window_ns()),
    }
}

/// The JSON of sites that never ran: who they are, not figures that do not
/// exist.
fn identities<S: serde::Serializer>(sites: &[SiteSnapshot], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Identity<'a> {
        name: &'a str,
        module: &'a str,
        file: &'a str,
        line: u32,
        kind: SiteKind,
        budget: &'a SiteBudget,
        budget_source: &'a crate::config::BudgetSource,
        code_budget: &'a SiteBudget,
    }
    s.collect_seq(sites.iter().map(|site| Identity {
        name: site.name,
        module: site.module,
        file: site.file,
        line: site.line,
        kind: site.kind,
        budget: &site.budget,
        budget_source: &site.budget_source,
        code_budget: &site.code_budget,
    }))
}

impl Snapshot {
    /// The site whose identity ([`crate::Site::name`]) is `name`: `"parse"`,
    /// `"Cart::total"`, `"<Cart as Display>::fmt"`.
    pub fn site(&self, name: &str) -> Option<&SiteSnapshot> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// The report as JSON (the public, versioned format).
    ///
    /// ```
    /// #[overrun::measure(budget = "1s")]
    /// fn json_doc_fn() {}
    /// json_doc_fn();
    /// let json: serde_json::Value = serde_json::from_str(&overrun::snapshot().to_json()).unwrap();
    /// assert_eq!(json["version"], 1);
    /// let site = json["sites"].as_array().unwrap().iter().find(|s| s["name"] == "json_doc_fn").unwrap();
    /// assert_eq!(site["calls"], 1);
    /// assert_eq!(site["budget"]["time_ns"], 1_000_000_000u64);
    /// assert!(site["budget"]["allocs"].is_null());
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a snapshot is always serialisable")
    }
}

/// Process-wide figures.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RunSnapshot {
    /// Wall time since the run started, ns.
    pub wall_ns: u64,
    /// CPU time of the process (user + system) since the run started, ns.
    pub cpu_ns: u64,
    /// Peak resident set size since the program started, bytes.
    pub peak_rss_bytes: u64,
    /// Resident set size now, bytes (`null` where the system does not say).
    pub rss_bytes: Option<u64>,
    /// Peak live heap bytes (needs [`crate::CountingAlloc`]).
    pub heap_peak_bytes: Option<u64>,
    /// Live heap bytes now (needs [`crate::CountingAlloc`]).
    pub heap_live_bytes: Option<u64>,
    /// Whether allocation figures are available.
    pub allocs_available: bool,
    /// The run's budget (`#[overrun::main]`).
    pub budget: RunBudget,
    /// Violations of the whole run's own budgets (`#[overrun::main]`'s
    /// `budget` and `memory`) only; functions' violations are in each site.
    pub violations: Vec<RunViolation>,
    /// Violation events that registered hooks did not receive (raised
    /// while a hook ran; see [`crate::violation::dropped`]).
    pub violations_dropped: u64,
}

/// Figures of one site.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
    pub max_poll_ns: Option<u64>,
    /// Heap allocations in all calls, callees included; `None` without
    /// [`crate::CountingAlloc`].
    pub allocs: Option<u64>,
    /// Heap bytes allocated in all calls; `None` without
    /// [`crate::CountingAlloc`].
    pub alloc_bytes: Option<u64>,
    /// The budget in force: the code's, or a policy file's
    /// ([`crate::config`]).
    pub budget: SiteBudget,
    /// Where the budget in force came from: `"code"`, or the file and line
    /// of the rule (`"overrun.toml:12"`; with several rules, the one that
    /// set the first of time, allocs, bytes, poll, then the objectives).
    pub budget_source: crate::config::BudgetSource,
    /// The budget written in the code (what `overrun check` resolves a
    /// policy file against).
    pub code_budget: SiteBudget,
    /// Calls over budget, by kind.
    pub violations: SiteViolations,
    /// The objectives in force over a window (`p99 = "50ms"`), with the
    /// window's figure at the evaluator's last tick and whether it is over
    /// ([`crate::objective`]); empty for a site without one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<ObjectiveStatus>,
    /// The latency histogram. In the JSON, its non-empty buckets as
    /// `[lower_ns, upper_ns, count]`, ascending (what `overrun diff` tests
    /// changes against).
    #[serde(serialize_with = "sparse_buckets")]
    pub histogram: Histogram,
    /// The site's time budget and its latency objectives' thresholds, ns,
    /// ascending, each once: the exporters add them to this site's bucket
    /// bounds, where the histogram counts exactly the calls at or under
    /// each (not in the JSON).
    #[serde(skip)]
    pub thresholds_ns: Vec<u64>,
    /// The newest calls over the time budget that ran in an OpenTelemetry
    /// span, oldest first ([`crate::exemplar`]; not in the JSON).
    #[serde(skip)]
    pub exemplars: Vec<crate::record::exemplar::Exemplar>,
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
            (
                ViolationKind::Objective,
                v.objective,
                !self.objectives.is_empty(),
            ),
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
#[non_exhaustive]
pub struct SiteBudget {
    /// Per call, ns.
    pub time_ns: Option<u64>,
    /// Allocations per call.
    pub allocs: Option<u64>,
    /// Bytes per call.
    pub bytes: Option<u64>,
    /// Per poll, ns.
    pub poll_ns: Option<u64>,
    /// Objective on the window's median, ns (absent when not set, as are
    /// the other objectives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ns: Option<u64>,
    /// Objective on the window's 90th percentile, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ns: Option<u64>,
    /// Objective on the window's 95th percentile, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ns: Option<u64>,
    /// Objective on the window's 99th percentile, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<u64>,
    /// Objective on the window's 99.9th percentile, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_ns: Option<u64>,
    /// Objective on the window's errors, per million calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate_ppm: Option<u64>,
    /// The objectives' window, ns (only with an objective).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_ns: Option<u64>,
}

/// Violations of one site, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SiteViolations {
    /// Calls over the time budget.
    pub time: u64,
    /// Calls over the allocation budget.
    pub allocs: u64,
    /// Calls over the bytes budget.
    pub bytes: u64,
    /// Polls over the poll budget.
    pub poll: u64,
    /// Times an objective's window went over it (once per crossing).
    #[serde(skip_serializing_if = "is_zero")]
    pub objective: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SiteViolations {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.time + self.allocs + self.bytes + self.poll + self.objective
    }
}

/// Merges every thread's figures into a [`Snapshot`]. Safe to call at any
/// time from any thread. A measured call never waits for it, except a
/// thread's very first one and a thread's end (they take the lock the merge
/// holds, for milliseconds at most: 1 000 sites × 256 threads take about
/// 7 ms).
///
/// ```
/// let snap = overrun::snapshot();
/// assert!(snap.run.wall_ns > 0);
/// ```
pub fn snapshot() -> Snapshot {
    // Where the linker gathers no hook, `OVERRUN_CONFIG` is read here.
    crate::config::from_env_once();
    // Fold this thread's pending heap balance so a small program's peak is
    // not reported as zero.
    crate::record::alloc::flush_thread();
    crate::record::alloc::uncounted(|| {
        let sites = site::all();
        let totals = collect(sites.len());
        let locks = crate::sync::stats(&totals);
        let allocs_available = crate::record::alloc::is_installed();
        let (sites, mut never_ran): (Vec<SiteSnapshot>, Vec<SiteSnapshot>) = sites
            .iter()
            .zip(totals)
            .filter(|(site, _)| site.kind().is_call())
            .map(|(site, t)| site_snapshot(site, t, allocs_available))
            // Ran: a completed call, or a poll of one still running.
            .partition(|s| s.calls > 0 || s.polls > 0);
        // Declared but not registered: not run yet, with zero figures.
        never_ran.extend(
            site::unregistered()
                .map(|site| site_snapshot(site, Totals::default(), allocs_available)),
        );
        let usage = crate::run::usage();
        let (start, start_cpu) = crate::run::run_start();
        let (budget, violations) = crate::run::budget_and_violations();
        Snapshot {
            version: REPORT_VERSION,
            meta: crate::run::meta(),
            run: RunSnapshot {
                wall_ns: start.elapsed().as_nanos() as u64,
                cpu_ns: usage.cpu_ns.saturating_sub(start_cpu),
                peak_rss_bytes: usage.peak_rss_bytes,
                rss_bytes: usage.rss_bytes,
                heap_peak_bytes: crate::record::alloc::heap_peak_bytes(),
                heap_live_bytes: crate::record::alloc::heap_live_bytes(),
                allocs_available,
                budget,
                violations,
                violations_dropped: crate::record::violation::dropped(),
            },
            sites,
            tasks: crate::tasks::stats(),
            live_tasks: crate::tasks::live(),
            locks,
            never_ran,
            config: crate::config::stats(),
        }
    })
}
