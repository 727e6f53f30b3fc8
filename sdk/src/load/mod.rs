//! Load tests to the breaking point, with budgets as the pass line (feature
//! `load`; runs on tokio).
//!
//! [`run`] drives a closure at rising load — requests per second (open
//! model) or callers (closed model) — and searches for the breaking point:
//! the highest level that still meets every pass line. The search ramps up
//! geometrically (×2) until a level fails, bisects between the last level
//! that passed and the first that failed to within 5%, then runs the level
//! found again to confirm it.
//!
//! - **Open model, coordinated omission corrected:** each request is timed
//!   from the moment it was scheduled, so a service that stalls cannot hide
//!   its queue; a request that cannot start because `max_in_flight` are out
//!   is an error of its level.
//! - **Pass lines:** `.p50()`, `.p95()`, `.p99()` and `.error_rate()` (1%
//!   unless set). Without a latency line, the budgets of the measured
//!   functions and spans the load reaches are the line: a level fails when
//!   one of them is over its budgets in more than 1% of its calls.
//! - **The bottleneck:** each level keeps the figures of overrun's own
//!   sites, and the report names the function that broke first as load
//!   rose, with its share of the time.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//!
//! async fn call_service() -> Result<(), std::io::Error> {
//!     tokio::time::sleep(Duration::from_millis(1)).await;
//!     Ok(())
//! }
//!
//! let report = overrun::load::run(|| async { call_service().await })
//!     .rate(50.0..=200.0)
//!     .step("200ms")
//!     .p99("50ms")
//!     .max_in_flight(1_000)
//!     .await;
//! assert_eq!(report.end(), overrun::load::End::HighestPasses);
//! assert_eq!(report.breaking_point(), Some(200.0));
//! println!("{}", report.table());
//! # }
//! ```

mod drive;
mod report;

use std::future::{Future, IntoFuture};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use report::{Bottleneck, End, LoadReport, SiteStep, Step};

use crate::read::snapshot::SiteSnapshot;
use crate::vocab::units::TimeLimit;

/// What a request's result says: an error or not. Implemented for `()`
/// (never an error) and `Result` (`Err` is one).
pub trait Outcome {
    /// Whether the request failed.
    fn is_error(&self) -> bool;
}

impl Outcome for () {
    fn is_error(&self) -> bool {
        false
    }
}

impl<T, E> Outcome for Result<T, E> {
    fn is_error(&self) -> bool {
        self.is_err()
    }
}

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    /// Requests per second, each scheduled at an even interval.
    Rate(f64, f64),
    /// Callers, each sending its next request when the last one ended.
    Concurrency(usize, usize),
}

/// The pass lines, in ns and parts of one.
#[derive(Debug, Clone, Copy, Default)]
struct Lines {
    p50: Option<u64>,
    p95: Option<u64>,
    p99: Option<u64>,
    error_rate: Option<f64>,
}

/// Called with each level as it ends.
type Progress = Box<dyn Fn(&Step) + Send + Sync>;

/// A load run being set up: see [`run`]. Awaiting it runs the search.
#[must_use = "a load run does nothing until it is awaited"]
pub struct Load<F> {
    f: Arc<F>,
    model: Model,
    step: Duration,
    lines: Lines,
    max_in_flight: usize,
    progress: Option<Progress>,
    stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// A load run of `f`, a closure returning a future of `Result<_, E>` or
/// `()`: by default 10 to 10 000 requests per second, 3 s a level, at most
/// 10 000 in flight, the budgets of the sites it reaches as the pass line.
/// Await it inside a tokio runtime with the timer enabled.
///
/// ```
/// let load = overrun::load::run(|| async {}).concurrency(1..=64).step("1s");
/// # drop(load);
/// ```
pub fn run<F, Fut>(f: F) -> Load<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    Load {
        f: Arc::new(f),
        model: Model::Rate(10.0, 10_000.0),
        step: Duration::from_secs(3),
        lines: Lines::default(),
        max_in_flight: 10_000,
        progress: None,
        stop: None,
    }
}

impl<F, Fut> Load<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    /// Offered requests per second, lowest to highest (open model). Panics
    /// on a range that is empty, upside down or not above zero.
    #[track_caller]
    pub fn rate(mut self, range: RangeInclusive<f64>) -> Self {
        let (lo, hi) = range.into_inner();
        assert!(
            lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi,
            "overrun::load: rate {lo}..={hi}: the lowest rate must be above 0 and at most the highest"
        );
        self.model = Model::Rate(lo, hi);
        self
    }

    /// Callers sending one request after another, fewest to most (closed
    /// model). Panics on an upside-down range or 0 callers.
    #[track_caller]
    pub fn concurrency(mut self, range: RangeInclusive<usize>) -> Self {
        let (lo, hi) = range.into_inner();
        assert!(
            lo >= 1 && lo <= hi && hi <= u32::MAX as usize,
            "overrun::load: concurrency {lo}..={hi}: at least 1 caller, the fewest at most the most"
        );
        self.model = Model::Concurrency(lo, hi);
        self
    }

    /// Time spent at each level (`"3s"`).
    #[track_caller]
    pub fn step(mut self, step: impl TimeLimit) -> Self {
        self.step = Duration::from_nanos(step.nanos().max(1));
        self
    }

    /// Pass line: the level's median latency at most this.
    #[track_caller]
    pub fn p50(mut self, limit: impl TimeLimit) -> Self {
        self.lines.p50 = Some(limit.nanos());
        self
    }

    /// Pass line: the level's 95th percentile latency at most this.
    #[track_caller]
    pub fn p95(mut self, limit: impl TimeLimit) -> Self {
        self.lines.p95 = Some(limit.nanos());
        self
    }

    /// Pass line: the level's 99th percentile latency at most this.
    #[track_caller]
    pub fn p99(mut self, limit: impl TimeLimit) -> Self {
        self.lines.p99 = Some(limit.nanos());
        self
    }

    /// Pass line: the share of requests that failed at most this (`"1%"`,
    /// `"0.1%"`; 1% unless set; see [`parse_percent`]). Panics on a
    /// malformed percentage.
    #[track_caller]
    pub fn error_rate(mut self, rate: &str) -> Self {
        let share = parse_percent(rate).unwrap_or_else(|| {
            panic!("overrun::load: error rate {rate:?}: want a percentage such as \"1%\"")
        });
        self.lines.error_rate = Some(share);
        self
    }

    /// Most requests out at once (open model); one more is an error.
    /// Panics on 0.
    #[track_caller]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        assert!(n >= 1, "overrun::load: max_in_flight must be at least 1");
        self.max_in_flight = n.min(u32::MAX as usize);
        self
    }

    /// Called with each level as it ends (progress for a command line).
    pub fn on_step(mut self, f: impl Fn(&Step) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Stops the search when `signal` completes (Ctrl-C, a deadline): the
    /// report keeps the levels that ended and the one under way as far as
    /// it went ([`Step::stopped`]: its requests still out get at most a
    /// second more), and its end is [`End::Stopped`], unless the search
    /// had just ended anyway (its last level whole).
    pub fn stop_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.stop = Some(Box::pin(signal));
        self
    }
}

impl<F, Fut> IntoFuture for Load<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    type Output = LoadReport;
    type IntoFuture = Pin<Box<dyn Future<Output = LoadReport> + Send>>;

    fn into_future(mut self) -> Self::IntoFuture {
        Box::pin(async move {
            let signal = self.stop.take();
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            let mut search = Search::new(self, stop);
            // Tells the search to stop, and holds the sender until it has:
            // the level under way ends early and is kept.
            let watch = async move {
                if let Some(signal) = signal {
                    signal.await;
                    let _ = stop_tx.send(true);
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = search.run() => {}
                () = watch => {}
            }
            search.report()
        })
    }
}

/// Parses a share of requests given as a percentage, `"1%"` → 0.01 (0 to
/// 100%), as [`Load::error_rate`] and `overrun load --error-rate` take it.
///
/// ```
/// assert_eq!(overrun::load::parse_percent("0.5%"), Some(0.005));
/// assert_eq!(overrun::load::parse_percent("1%%"), None);
/// assert_eq!(overrun::load::parse_percent("1"), None);
/// ```
pub fn parse_percent(s: &str) -> Option<f64> {
    let v: f64 = s.trim().strip_suffix('%')?.trim().parse().ok()?;
    (v.is_finite() && (0.0..=100.0).contains(&v)).then_some(v / 100.0)
}

/// One site's cumulative figures, to take differences across a level.
#[derive(Clone)]
struct SiteTotals {
    name: &'static str,
    module: &'static str,
    /// Where it is: two sites may share a name and a module.
    file: &'static str,
    line: u32,
    calls: u64,
    errors: u64,
    self_ns: u64,
    violations: u64,
    budgeted: bool,
}

fn site_totals() -> Vec<SiteTotals> {
    crate::read::snapshot::snapshot()
        .sites
        .iter()
        .map(|s: &SiteSnapshot| SiteTotals {
            name: s.name,
            module: s.module,
            file: s.file,
            line: s.line,
            calls: s.calls,
            errors: s.errors,
            self_ns: s.self_ns,
            // Per call: a poll's violations are counted against polls.
            violations: s.violations.time + s.violations.allocs + s.violations.bytes,
            budgeted: s.budget.time_ns.is_some()
                || s.budget.allocs.is_some()
                || s.budget.bytes.is_some()
                || s.budget.poll_ns.is_some(),
        })
        .collect()
}

/// What each site did between two totals (sites that ran only).
fn sites_between(before: &[SiteTotals], after: &[SiteTotals]) -> Vec<SiteStep> {
    after
        .iter()
        .filter_map(|a| {
            let b = before
                .iter()
                .find(|b| (b.name, b.module, b.file, b.line) == (a.name, a.module, a.file, a.line));
            let (calls, errors, self_ns, violations) = match b {
                Some(b) => (
                    a.calls.saturating_sub(b.calls),
                    a.errors.saturating_sub(b.errors),
                    a.self_ns.saturating_sub(b.self_ns),
                    a.violations.saturating_sub(b.violations),
                ),
                None => (a.calls, a.errors, a.self_ns, a.violations),
            };
            (calls > 0).then_some(SiteStep {
                function: a.name,
                module: a.module,
                file: a.file,
                line: a.line,
                calls,
                errors,
                self_ns,
                violations,
                budgeted: a.budgeted,
            })
        })
        .collect()
}

/// A site over its budgets in more than this share of its calls fails the
/// level (when the budgets are the pass line).
const BUDGET_SHARE: f64 = 0.01;

/// The share of `s`'s calls over its budgets, when it has budgets and that
/// share is past [`BUDGET_SHARE`].
fn over_budget(s: &SiteStep) -> Option<f64> {
    let over = s.violations as f64 / s.calls.max(1) as f64;
    (s.budgeted && over > BUDGET_SHARE).then_some(over)
}

/// Growth of self time per call since the lowest level that names a site
/// the bottleneck when no budget was broken.
const GROWTH: f64 = 1.5;

/// The ends of the search as it goes: the highest level that passed (once
/// the search ends, one that held when run again) and the lowest that
/// failed.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Bounds {
    pass: Option<f64>,
    fail: Option<f64>,
    /// Levels found that failed when run again, so far.
    unconfirmed: u32,
}

/// Levels found that may fail when run again before the search gives up:
/// a service whose levels do not hold has no breaking point to name.
const CONFIRMATIONS: u32 = 3;

/// Runs load levels for [`search`].
trait Levels {
    /// Runs `level`: whether it met every pass line; `None` when the run
    /// was stopped (the search ends).
    fn run(&mut self, level: f64) -> impl Future<Output = Option<bool>> + Send;
    /// The highest level below `level` that passed when it ran.
    fn passed_below(&self, level: f64) -> Option<f64>;
}

impl Model {
    fn range(self) -> (f64, f64) {
        match self {
            Model::Rate(lo, hi) => (lo, hi),
            Model::Concurrency(lo, hi) => (lo as f64, hi as f64),
        }
    }

    /// The ramp's next level after `level`.
    fn twice(self, level: f64) -> f64 {
        let (_, hi) = self.range();
        match self {
            Model::Rate(..) => (level * 2.0).min(hi),
            Model::Concurrency(..) => (level * 2.0).min(hi).round(),
        }
    }

    /// Whether `pass` and `fail` are close enough: within 5%, or adjacent
    /// caller counts.
    fn close(self, pass: f64, fail: f64) -> bool {
        match self {
            Model::Rate(..) => fail <= pass * 1.05,
            Model::Concurrency(..) => fail - pass <= 1.0 || fail <= pass * 1.05,
        }
    }

    /// The level between `pass` and `fail` to try next.
    fn between(self, pass: f64, fail: f64) -> f64 {
        let mid = (pass * fail).sqrt();
        match self {
            Model::Rate(..) => mid,
            Model::Concurrency(..) => mid.round().clamp(pass + 1.0, fail - 1.0),
        }
    }
}

/// The search for the breaking point, keeping `bounds` current as it goes
/// (a stopped search reports what it had): the doubling ramp until a level
/// fails; bisection to within 5%; the level found run again. A failed
/// confirmation counts as a failure there, and the search goes on between
/// it and the highest level below that passed; after [`CONFIRMATIONS`]
/// failed confirmations it names no level.
async fn search(model: Model, levels: &mut impl Levels, bounds: &mut Bounds) {
    let (lo, hi) = model.range();
    let mut level = lo;
    loop {
        let Some(passed) = levels.run(level).await else {
            return;
        };
        if passed {
            bounds.pass = Some(level);
            if level >= hi {
                return;
            }
            level = model.twice(level);
        } else {
            bounds.fail = Some(level);
            break;
        }
    }
    let Some(mut pass) = bounds.pass else {
        return;
    };
    let mut fail = level;
    loop {
        while !model.close(pass, fail) {
            let mid = model.between(pass, fail);
            let Some(passed) = levels.run(mid).await else {
                return;
            };
            if passed {
                pass = mid;
                bounds.pass = Some(pass);
            } else {
                fail = mid;
                bounds.fail = Some(fail);
            }
        }
        match levels.run(pass).await {
            Some(true) | None => return,
            Some(false) => {}
        }
        fail = pass;
        bounds.fail = Some(fail);
        bounds.unconfirmed += 1;
        if bounds.unconfirmed >= CONFIRMATIONS {
            bounds.pass = None;
            return;
        }
        bounds.pass = levels.passed_below(pass);
        match bounds.pass {
            Some(below) => pass = below,
            None => return,
        }
    }
}

/// Runs the levels of a [`Load`] and keeps what they measured.
struct Runner<F> {
    load: Load<F>,
    steps: Vec<Step>,
    /// Turns true when the run is to stop.
    stop: tokio::sync::watch::Receiver<bool>,
    /// The stop cut the search short (a level was cut, or not begun).
    stopped: bool,
}

impl<F, Fut> Levels for Runner<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    fn run(&mut self, level: f64) -> impl Future<Output = Option<bool>> + Send {
        self.level(level)
    }

    fn passed_below(&self, level: f64) -> Option<f64> {
        self.steps
            .iter()
            .filter(|s| s.passed && s.offered < level)
            .map(|s| s.offered)
            .max_by(f64::total_cmp)
    }
}

struct Search<F> {
    runner: Runner<F>,
    bounds: Bounds,
}

impl<F> Search<F> {
    fn new(load: Load<F>, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            runner: Runner {
                load,
                steps: Vec::new(),
                stop,
                stopped: false,
            },
            bounds: Bounds::default(),
        }
    }
}

impl<F, Fut> Search<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    async fn run(&mut self) {
        search(self.runner.load.model, &mut self.runner, &mut self.bounds).await;
    }

    fn report(self) -> LoadReport {
        let (_, hi) = self.runner.load.model.range();
        let Bounds {
            pass,
            fail,
            unconfirmed,
        } = self.bounds;
        let end = if self.runner.stopped {
            End::Stopped
        } else if unconfirmed >= CONFIRMATIONS {
            End::Unsteady
        } else if fail.is_none() {
            End::HighestPasses
        } else if pass.is_none() {
            End::LowestFails
        } else {
            End::Found
        };
        let breaking_point = match end {
            End::HighestPasses => Some(hi),
            _ => pass,
        };
        LoadReport {
            breaking_point,
            end,
            bottleneck: self.runner.bottleneck(),
            model: match self.runner.load.model {
                Model::Rate(..) => "rate",
                Model::Concurrency(..) => "concurrency",
            },
            steps: self.runner.steps,
        }
    }
}

impl<F, Fut> Runner<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    /// Runs one level; whether it passed, `None` when the run was stopped
    /// (a level cut short is kept, and neither passed nor failed).
    async fn level(&mut self, level: f64) -> Option<bool> {
        if *self.stop.borrow() {
            self.stopped = true;
            return None;
        }
        let before = site_totals();
        let step = self.load.step;
        let stop = &mut self.stop;
        let measured = match self.load.model {
            Model::Rate(..) => {
                drive::open(&self.load.f, level, step, self.load.max_in_flight, stop).await
            }
            Model::Concurrency(..) => drive::closed(&self.load.f, level as usize, step, stop).await,
        };
        let sites = sites_between(&before, &site_totals());
        let h = measured.latencies;
        let mut step = Step {
            offered: level,
            achieved: measured.achieved,
            p50_ns: h.quantile(0.50),
            p95_ns: h.quantile(0.95),
            p99_ns: h.quantile(0.99),
            max_ns: h.max(),
            errors: measured.errors,
            requests: measured.requests,
            passed: false,
            failed_line: None,
            stopped: measured.stopped,
            sites,
        };
        if !step.stopped {
            step.failed_line = self.broken_line(&step);
            step.passed = step.failed_line.is_none();
        }
        if let Some(progress) = &self.load.progress {
            progress(&step);
        }
        self.stopped |= step.stopped;
        let passed = (!step.stopped).then_some(step.passed);
        self.steps.push(step);
        passed
    }

    /// The first pass line `step` breaks, described.
    fn broken_line(&self, step: &Step) -> Option<String> {
        let lines = self.load.lines;
        let ms = crate::vocab::units::fmt_ns;
        for (name, limit, value) in [
            ("p50", lines.p50, step.p50_ns),
            ("p95", lines.p95, step.p95_ns),
            ("p99", lines.p99, step.p99_ns),
        ] {
            if let Some(limit) = limit.filter(|&l| value > l) {
                return Some(format!("{name} {} > {}", ms(value), ms(limit)));
            }
        }
        let allowed = lines.error_rate.unwrap_or(0.01);
        let share = step.errors as f64 / step.requests.max(1) as f64;
        if share > allowed {
            return Some(format!(
                "errors {:.2}% > {:.2}%",
                share * 100.0,
                allowed * 100.0
            ));
        }
        if lines.p50.is_none() && lines.p95.is_none() && lines.p99.is_none() {
            for s in &step.sites {
                if let Some(over) = over_budget(s) {
                    return Some(format!(
                        "{}::{} over its budget in {:.1}% of its calls",
                        s.module,
                        s.function,
                        over * 100.0
                    ));
                }
            }
        }
        None
    }

    /// The function that broke first as load rose.
    fn bottleneck(&self) -> Option<Bottleneck> {
        // Levels in rising order; the first that failed.
        let mut order: Vec<usize> = (0..self.steps.len())
            .filter(|&i| !self.steps[i].stopped)
            .collect();
        order.sort_by(|&a, &b| self.steps[a].offered.total_cmp(&self.steps[b].offered));
        let first_fail = *order.iter().find(|&&i| !self.steps[i].passed)?;
        let lowest = &self.steps[order[0]];
        let failed = &self.steps[first_fail];
        let all_self: u64 = failed.sites.iter().map(|s| s.self_ns).sum();
        let share = |s: &SiteStep| s.self_ns as f64 / all_self.max(1) as f64;
        // Over its budgets in more than 1% of its calls, most over first.
        let over = failed
            .sites
            .iter()
            .filter_map(|s| Some((s, over_budget(s)?)))
            .max_by(|(_, a), (_, b)| a.total_cmp(b));
        if let Some((s, over)) = over {
            return Some(Bottleneck {
                function: s.function,
                module: s.module,
                level: failed.offered,
                share: share(s),
                reason: format!("over its budget in {:.1}% of its calls", over * 100.0),
            });
        }
        // Else the largest growth in self time per call since the lowest level.
        let per_call = |s: &SiteStep| s.self_ns as f64 / s.calls.max(1) as f64;
        let growth = |s: &SiteStep| {
            let base = lowest
                .sites
                .iter()
                .find(|b| {
                    (b.function, b.module, b.file, b.line) == (s.function, s.module, s.file, s.line)
                })
                .map(per_call);
            match base {
                Some(base) if base > 0.0 => per_call(s) / base,
                _ => 1.0,
            }
        };
        // Only a real growth names one (a lowest level that fails does not).
        let s = failed
            .sites
            .iter()
            .filter(|s| growth(s) >= GROWTH)
            .max_by(|a, b| {
                growth(a)
                    .total_cmp(&growth(b))
                    .then(share(a).total_cmp(&share(b)))
            })?;
        Some(Bottleneck {
            function: s.function,
            module: s.module,
            level: failed.offered,
            share: share(s),
            reason: format!(
                "self time per call ×{:.1} since the lowest level",
                growth(s)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels of a service that holds up to `capacity`; the levels in
    /// `flaky` fail the first time they run anyway.
    struct Fake {
        capacity: f64,
        flaky: Vec<f64>,
        /// Every level run a second time fails.
        never_holds: bool,
        ran: Vec<(f64, bool)>,
    }

    impl Fake {
        fn new(capacity: f64) -> Self {
            Self {
                capacity,
                flaky: Vec::new(),
                never_holds: false,
                ran: Vec::new(),
            }
        }
    }

    impl Levels for Fake {
        fn run(&mut self, level: f64) -> impl Future<Output = Option<bool>> + Send {
            let flaky = self.flaky.iter().position(|&l| l == level);
            let again = self.ran.iter().any(|r| r.0 == level);
            let passed = level <= self.capacity && flaky.is_none() && !(self.never_holds && again);
            if let Some(i) = flaky {
                self.flaky.remove(i);
            }
            self.ran.push((level, passed));
            std::future::ready(Some(passed))
        }

        fn passed_below(&self, level: f64) -> Option<f64> {
            self.ran
                .iter()
                .filter(|(l, p)| *p && *l < level)
                .map(|(l, _)| *l)
                .max_by(f64::total_cmp)
        }
    }

    fn searched(model: Model, levels: &mut Fake) -> Bounds {
        let mut bounds = Bounds::default();
        crate::tasks::block_on(search(model, levels, &mut bounds));
        bounds
    }

    #[test]
    fn the_ramp_doubles_then_bisection_ends_within_5_percent_and_confirms() {
        let mut fake = Fake::new(3_000.0);
        let b = searched(Model::Rate(100.0, 50_000.0), &mut fake);
        let ramp: Vec<f64> = fake.ran.iter().take(6).map(|r| r.0).collect();
        assert_eq!(ramp, [100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0]);
        let (pass, fail) = (b.pass.unwrap(), b.fail.unwrap());
        assert!(
            pass <= 3_000.0 && fail > 3_000.0 && fail <= pass * 1.05,
            "{b:?}"
        );
        // The last level run is the one found, run again, and it held.
        assert_eq!(fake.ran.last(), Some(&(pass, true)));
        assert_eq!(fake.ran.iter().filter(|r| r.0 == pass).count(), 2);
    }

    #[test]
    fn the_ends_of_the_range() {
        let mut fake = Fake::new(1e9);
        let b = searched(Model::Rate(10.0, 100.0), &mut fake);
        assert_eq!((b.pass, b.fail), (Some(100.0), None), "the highest passes");
        let ran: Vec<f64> = fake.ran.iter().map(|r| r.0).collect();
        assert_eq!(ran, [10.0, 20.0, 40.0, 80.0, 100.0]);
        let mut fake = Fake::new(5.0);
        let b = searched(Model::Rate(10.0, 100.0), &mut fake);
        assert_eq!((b.pass, b.fail), (None, Some(10.0)), "the lowest fails");
        assert_eq!(fake.ran.len(), 1);
    }

    #[test]
    fn a_failed_confirmation_moves_the_search_below_and_what_it_names_held() {
        let mut fake = Fake::new(3_000.0);
        let first = searched(Model::Rate(100.0, 50_000.0), &mut fake)
            .pass
            .unwrap();
        // The same service, its first confirmation failing.
        let mut fake = Fake::new(3_000.0);
        fake.flaky = vec![first];
        let b = searched(Model::Rate(100.0, 50_000.0), &mut fake);
        let pass = b.pass.unwrap();
        assert!(pass < first && b.fail == Some(first), "{b:?}");
        assert_eq!(fake.ran.last(), Some(&(pass, true)), "confirmed");
        // No level holds when run again: after three tries the search ends,
        // naming none.
        let mut never = Fake::new(3_000.0);
        never.never_holds = true;
        let b = searched(Model::Rate(100.0, 50_000.0), &mut never);
        assert_eq!(
            (b.pass, b.unconfirmed),
            (None, CONFIRMATIONS),
            "{:?}",
            never.ran
        );
        assert!(never.ran.len() < 30, "{:?}", never.ran);
    }

    #[test]
    fn callers_are_whole_and_the_search_ends_next_to_the_capacity() {
        let mut fake = Fake::new(37.0);
        let b = searched(Model::Concurrency(1, 512), &mut fake);
        assert_eq!((b.pass, b.fail), (Some(37.0), Some(38.0)));
        assert!(
            fake.ran.iter().all(|r| r.0.fract() == 0.0),
            "{:?}",
            fake.ran
        );
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("1%"), Some(0.01));
        assert_eq!(parse_percent(" 0.5 % "), Some(0.005));
        assert_eq!(parse_percent("1"), None);
        assert_eq!(parse_percent("101%"), None);
        assert_eq!(parse_percent("x%"), None);
    }
}
