//! Budgets as tests: assert a closure's latency and allocations
//! ([`check`]), or the exact per-site figures of what it ran ([`capture`]).
//!
//! The method this serves is "no optimisation without a failing benchmark
//! first": write the budget as a test, watch it fail, fix the code, watch it
//! pass — and keep it as a regression test.
//!
//! ```
//! #[overrun::measure(budget = "50ms")]
//! fn parse(line: &str) -> usize {
//!     line.split(',').count()
//! }
//!
//! overrun::testing::check(|| parse("a,b,c"))
//!     .iterations(2_000)
//!     .p99("5ms")
//!     .assert();
//!
//! let stats = overrun::testing::capture(|| {
//!     parse("x,y");
//!     parse("z");
//! });
//! assert_eq!(stats.site("parse").calls(), 2);
//! stats.site("parse").assert_within_budget();
//! ```
//!
//! # How `check` stays steady on a noisy machine
//!
//! Time: the iterations are split into batches (10 by default); each batch's
//! quantiles are computed exactly from its sorted samples, and each figure is
//! the best (lowest) over the batches. Noise on a shared machine only ever
//! adds time, so the quietest batch is the closest to the code's own speed,
//! while a real slowdown slows every batch. Allocations: counted exactly per
//! call by [`CountingAlloc`](crate::CountingAlloc); the worst call is what
//! `allocs_per_call` is checked against.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use crate::record::stats::{CellCopy, Histogram, this_thread};
pub use crate::vocab::units::{SizeLimit, TimeLimit};
use crate::vocab::units::{fmt_bytes, fmt_ns};

/// Starts a budget check of `f`; see [`Check`].
///
/// ```
/// overrun::testing::check(|| (0..100u64).sum::<u64>())
///     .iterations(1_000)
///     .p50("1ms")
///     .max("100ms")
///     .assert();
/// ```
pub fn check<R, F: FnMut() -> R>(f: F) -> Check<F> {
    Check {
        f,
        iterations: 10_000,
        warmup: None,
        batches: None,
        limits: [None; 5],
        allocs: None,
        bytes: None,
    }
}

const FIGURES: [&str; 5] = ["p50", "p95", "p99", "max", "mean"];

/// A budget check of a closure, built by [`check`].
#[must_use = "a check does nothing until `.assert()` or `.run()`"]
pub struct Check<F> {
    f: F,
    iterations: u64,
    warmup: Option<u64>,
    batches: Option<u32>,
    /// p50, p95, p99, max, mean (ns).
    limits: [Option<u64>; 5],
    allocs: Option<u64>,
    bytes: Option<u64>,
}

impl<F> Check<F> {
    /// Timed calls (default 10 000), split evenly over the batches.
    pub fn iterations(mut self, n: u64) -> Self {
        self.iterations = n.max(1);
        self
    }

    /// Untimed calls first (default: a tenth of the iterations).
    pub fn warmup(mut self, n: u64) -> Self {
        self.warmup = Some(n);
        self
    }

    /// Batches; each figure is the best batch's. Default: batches of 100
    /// calls (at least 10 batches), so that on a busy machine some batch
    /// likely ran without being preempted.
    pub fn batches(mut self, k: u32) -> Self {
        self.batches = Some(k.max(1));
        self
    }

    /// Median budget.
    #[track_caller]
    pub fn p50(mut self, limit: impl TimeLimit) -> Self {
        self.limits[0] = Some(limit.nanos());
        self
    }

    /// 95th percentile budget.
    #[track_caller]
    pub fn p95(mut self, limit: impl TimeLimit) -> Self {
        self.limits[1] = Some(limit.nanos());
        self
    }

    /// 99th percentile budget.
    #[track_caller]
    pub fn p99(mut self, limit: impl TimeLimit) -> Self {
        self.limits[2] = Some(limit.nanos());
        self
    }

    /// Budget for the slowest call (of the best batch).
    #[track_caller]
    pub fn max(mut self, limit: impl TimeLimit) -> Self {
        self.limits[3] = Some(limit.nanos());
        self
    }

    /// Mean budget.
    pub fn mean(mut self, limit: impl TimeLimit) -> Self {
        self.limits[4] = Some(limit.nanos());
        self
    }

    /// Most heap allocations any one call may make (needs
    /// [`CountingAlloc`](crate::CountingAlloc)).
    pub fn allocs_per_call(mut self, n: u64) -> Self {
        self.allocs = Some(n);
        self
    }

    /// Most heap bytes any one call may allocate (needs
    /// [`CountingAlloc`](crate::CountingAlloc)).
    #[track_caller]
    pub fn bytes_per_call(mut self, limit: impl SizeLimit) -> Self {
        self.bytes = Some(limit.bytes());
        self
    }

    fn need_allocator(&self, what: &str) {
        if (self.allocs.is_some() || self.bytes.is_some()) && !crate::record::alloc::is_installed()
        {
            panic!(
                "overrun::testing::{what}: allocs_per_call/bytes_per_call need \
                 `#[global_allocator] static A: overrun::CountingAlloc = overrun::CountingAlloc::system();` \
                 in the test binary"
            );
        }
    }

    fn plan(&self) -> Plan {
        let warmup = self.warmup.unwrap_or(self.iterations / 10);
        let batches = self
            .batches
            .map_or((self.iterations / 100).max(10), u64::from)
            .min(self.iterations);
        Plan {
            iterations: self.iterations,
            warmup,
            batches,
            per_batch: self.iterations / batches,
        }
    }
}

/// How the iterations are split.
struct Plan {
    iterations: u64,
    warmup: u64,
    batches: u64,
    per_batch: u64,
}

impl Plan {
    /// Calls in batch `b` (the last takes the remainder).
    fn calls_in(&self, b: u64) -> u64 {
        if b + 1 == self.batches {
            self.iterations - self.per_batch * (self.batches - 1)
        } else {
            self.per_batch
        }
    }
}

/// The figures of a check as its calls come in: each batch's quantiles
/// exactly from its sorted samples, each figure the best batch's.
struct Sampler {
    samples: Vec<u64>,
    best: [u64; 5],
    preempted: u32,
    switches: i64,
    /// The thread a batch started on: a batch that moved (async) tells
    /// nothing about preemption.
    thread: Option<std::thread::ThreadId>,
    alloc_max: u64,
    alloc_total: u64,
    bytes_max: u64,
    bytes_total: u64,
}

impl Sampler {
    fn new(plan: &Plan) -> Self {
        // Sized for the largest batch, so `push` never reallocates in a run.
        let largest = plan.calls_in(plan.batches - 1).max(plan.per_batch);
        Self {
            samples: Vec::with_capacity(largest as usize),
            best: [u64::MAX; 5],
            preempted: 0,
            switches: 0,
            thread: None,
            alloc_max: 0,
            alloc_total: 0,
            bytes_max: 0,
            bytes_total: 0,
        }
    }

    fn start_batch(&mut self) {
        self.samples.clear();
        self.switches = involuntary_switches();
        self.thread = Some(std::thread::current().id());
    }

    fn record(&mut self, ticks: u64, allocs: u64, bytes: u64) {
        self.samples.push(ticks);
        self.alloc_max = self.alloc_max.max(allocs);
        self.bytes_max = self.bytes_max.max(bytes);
        self.alloc_total += allocs;
        self.bytes_total += bytes;
    }

    fn end_batch(&mut self) {
        let same_thread = self.thread == Some(std::thread::current().id());
        if same_thread && involuntary_switches() != self.switches {
            self.preempted += 1;
        }
        let samples = &mut self.samples;
        samples.sort_unstable();
        let q = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            crate::record::clock::ticks_to_ns(samples[rank - 1])
        };
        let mean =
            crate::record::clock::ticks_to_ns(samples.iter().sum::<u64>() / samples.len() as u64);
        let figures = [q(0.50), q(0.95), q(0.99), q(1.0), mean];
        for (best, f) in self.best.iter_mut().zip(figures) {
            *best = (*best).min(f);
        }
    }

    fn report<F>(self, plan: &Plan, check: &Check<F>) -> CheckReport {
        let calls = plan.iterations;
        CheckReport {
            iterations: calls,
            batches: plan.batches as u32,
            preempted: self.preempted,
            warmup: plan.warmup,
            figures: self.best,
            limits: check.limits,
            allocs_available: crate::record::alloc::is_installed(),
            allocs_max: self.alloc_max,
            allocs_mean: self.alloc_total as f64 / calls as f64,
            bytes_max: self.bytes_max,
            bytes_mean: self.bytes_total as f64 / calls as f64,
            allocs_limit: check.allocs,
            bytes_limit: check.bytes,
        }
    }
}

impl<R, F: FnMut() -> R> Check<F> {
    /// Runs the check and returns what it measured, without asserting.
    ///
    /// ```
    /// let report = overrun::testing::check(|| 2 + 2).iterations(100).p99("1s").run();
    /// assert!(report.passed());
    /// assert_eq!(report.iterations, 100);
    /// ```
    pub fn run(mut self) -> CheckReport {
        self.need_allocator("check");
        let plan = self.plan();
        for _ in 0..plan.warmup {
            black_box((self.f)());
        }
        let mut sampler = Sampler::new(&plan);
        for b in 0..plan.batches {
            sampler.start_batch();
            for _ in 0..plan.calls_in(b) {
                let a0 = crate::record::alloc::thread_allocs();
                let t0 = crate::record::clock::now();
                let out = black_box((self.f)());
                let t1 = crate::record::clock::now();
                let a1 = crate::record::alloc::thread_allocs();
                drop(out);
                sampler.record(
                    t1.saturating_sub(t0),
                    a1.count - a0.count,
                    a1.bytes - a0.bytes,
                );
            }
            sampler.end_batch();
        }
        sampler.report(&plan, &self)
    }

    /// Runs the check and panics with the measured table if any budget is
    /// broken.
    #[track_caller]
    pub fn assert(self) {
        let report = self.run();
        if !report.passed() {
            panic!("{report}");
        }
    }
}

/// The closure of an async check: see [`check_async`].
#[doc(hidden)]
pub struct Async<F>(F);

/// [`check`] for async code: `f` makes a future per call; each call is timed
/// from making the future to its completion, and its allocations are
/// counted on whichever threads its polls ran. The same builder methods, ending with
/// `.run().await` or `.assert().await`. Works on any executor, in
/// `#[tokio::test]` with either flavor.
///
/// ```
/// #[overrun::measure]
/// async fn lookup(id: u32) -> u32 { id * 2 }
///
/// # overrun::tasks::block_on(async {
/// overrun::testing::check_async(|| lookup(21))
///     .iterations(1_000)
///     .p99("5ms")
///     .assert()
///     .await;
/// # });
/// ```
pub fn check_async<F, Fut>(f: F) -> Check<Async<F>>
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    let Check {
        iterations,
        warmup,
        batches,
        limits,
        allocs,
        bytes,
        ..
    } = check(|| ());
    Check {
        f: Async(f),
        iterations,
        warmup,
        batches,
        limits,
        allocs,
        bytes,
    }
}

impl<F, Fut> Check<Async<F>>
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    /// Runs the check and returns what it measured, without asserting.
    ///
    /// ```
    /// # overrun::tasks::block_on(async {
    /// let report = overrun::testing::check_async(|| async { 2 + 2 })
    ///     .iterations(100)
    ///     .p99("1s")
    ///     .run()
    ///     .await;
    /// assert!(report.passed());
    /// assert_eq!(report.iterations, 100);
    /// # });
    /// ```
    pub async fn run(mut self) -> CheckReport {
        self.need_allocator("check_async");
        let plan = self.plan();
        for _ in 0..plan.warmup {
            black_box((self.f.0)().await);
        }
        let mut sampler = Sampler::new(&plan);
        for b in 0..plan.batches {
            sampler.start_batch();
            for _ in 0..plan.calls_in(b) {
                // Making the future is part of the call, as in `check`.
                let a0 = crate::record::alloc::thread_allocs();
                let start = crate::record::clock::now();
                let inner = (self.f.0)();
                let a1 = crate::record::alloc::thread_allocs();
                let timed = Timed {
                    inner,
                    start,
                    allocs: a1.count - a0.count,
                    bytes: a1.bytes - a0.bytes,
                };
                let (out, ticks, allocs, bytes) = timed.await;
                drop(black_box(out));
                sampler.record(ticks, allocs, bytes);
            }
            sampler.end_batch();
        }
        sampler.report(&plan, &self)
    }

    /// Runs the check and panics with the measured table if any budget is
    /// broken.
    pub async fn assert(self) {
        let report = self.run().await;
        if !report.passed() {
            panic!("{report}");
        }
    }
}

pin_project! {
    /// One call of an async check: from making the future to its
    /// completion, and the allocations of every poll on its own thread.
    struct Timed<F> {
        #[pin]
        inner: F,
        start: u64,
        allocs: u64,
        bytes: u64,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, u64, u64, u64);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let start = *this.start;
        let a0 = crate::record::alloc::thread_allocs();
        let polled = this.inner.poll(cx);
        let a1 = crate::record::alloc::thread_allocs();
        *this.allocs += a1.count - a0.count;
        *this.bytes += a1.bytes - a0.bytes;
        match polled {
            Poll::Ready(out) => {
                let ticks = crate::record::clock::now().saturating_sub(start);
                Poll::Ready((out, ticks, *this.allocs, *this.bytes))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Involuntary context switches of this thread so far (Linux), to tell a
/// batch that ran undisturbed from one that was preempted.
fn involuntary_switches() -> i64 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: `rusage` is plain old data (all-zero is valid) and
        // `getrusage` only writes into the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable `rusage`.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } == 0 {
            return ru.ru_nivcsw;
        }
    }
    0
}

/// What a [`Check`] measured. `Display` renders the table a failed
/// [`Check::assert`] panics with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckReport {
    /// Timed calls.
    pub iterations: u64,
    /// Batches they were split into.
    pub batches: u32,
    /// Batches during which the OS preempted the thread (Linux; 0 elsewhere).
    pub preempted: u32,
    /// Untimed calls before.
    pub warmup: u64,
    /// p50, p95, p99, max, mean in ns, each the best over the batches.
    pub figures: [u64; 5],
    limits: [Option<u64>; 5],
    /// Whether allocation figures are real (`CountingAlloc` installed).
    pub allocs_available: bool,
    /// Most allocations made by one call.
    pub allocs_max: u64,
    /// Mean allocations per call.
    pub allocs_mean: f64,
    /// Most bytes allocated by one call.
    pub bytes_max: u64,
    /// Mean bytes per call.
    pub bytes_mean: f64,
    allocs_limit: Option<u64>,
    bytes_limit: Option<u64>,
}

impl CheckReport {
    /// The broken budgets, one line each (empty when all held).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ((name, &value), limit) in FIGURES.iter().zip(&self.figures).zip(self.limits) {
            if let Some(limit) = limit.filter(|&l| value > l) {
                out.push(format!(
                    "{name} {} is over its budget of {}",
                    fmt_ns(value),
                    fmt_ns(limit)
                ));
            }
        }
        if let Some(limit) = self.allocs_limit.filter(|&l| self.allocs_max > l) {
            out.push(format!(
                "allocs/call {} is over its budget of {limit}",
                self.allocs_max
            ));
        }
        if let Some(limit) = self.bytes_limit.filter(|&l| self.bytes_max > l) {
            out.push(format!(
                "bytes/call {} is over its budget of {}",
                fmt_bytes(self.bytes_max),
                fmt_bytes(limit)
            ));
        }
        out
    }

    /// Whether every budget held.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failures = self.failures();
        let head = if failures.is_empty() {
            "budget held".to_string()
        } else {
            format!("budget broken: {}", failures.join("; "))
        };
        writeln!(f, "overrun::testing::check — {head}")?;
        writeln!(
            f,
            "  {} calls in {} batches ({} preempted by the OS) after {} warm-up calls; \
             times are the best batch's",
            self.iterations, self.batches, self.preempted, self.warmup
        )?;
        writeln!(
            f,
            "  {:<12} {:>14} {:>12}  verdict",
            "figure", "measured", "budget"
        )?;
        let verdict = |over: bool| if over { "OVER" } else { "ok" };
        for ((name, &value), limit) in FIGURES.iter().zip(&self.figures).zip(self.limits) {
            let (budget, v) = match limit {
                Some(l) => (fmt_ns(l), verdict(value > l)),
                None => ("-".to_string(), ""),
            };
            writeln!(f, "  {name:<12} {:>14} {budget:>12}  {v}", fmt_ns(value))?;
        }
        if self.allocs_available {
            let mut row =
                |name: &str, max: String, mean: f64, limit: Option<String>, over: bool| {
                    let shown = format!("{max} (mean {mean:.1})");
                    let (budget, v) = match limit {
                        Some(l) => (l, verdict(over)),
                        None => ("-".to_string(), ""),
                    };
                    writeln!(f, "  {name:<12} {shown:>14} {budget:>12}  {v}")
                };
            row(
                "allocs/call",
                self.allocs_max.to_string(),
                self.allocs_mean,
                self.allocs_limit.map(|l| l.to_string()),
                self.allocs_limit.is_some_and(|l| self.allocs_max > l),
            )?;
            row(
                "bytes/call",
                fmt_bytes(self.bytes_max),
                self.bytes_mean,
                self.bytes_limit.map(fmt_bytes),
                self.bytes_limit.is_some_and(|l| self.bytes_max > l),
            )?;
        } else {
            writeln!(f, "  allocations: n/a (no CountingAlloc)")?;
        }
        Ok(())
    }
}

/// Runs `f` and returns the exact per-site figures of the measured calls it
/// made **on this thread** — including `async fn`s it polled here (a
/// current-thread runtime's `block_on`). Calls on other threads, such as
/// other tests running in parallel, are not included.
///
/// ```
/// #[overrun::measure(allocs = 1)]
/// fn one_box() -> Box<u8> { Box::new(1) }
///
/// let stats = overrun::testing::capture(|| { one_box(); one_box(); });
/// assert_eq!(stats.site("one_box").calls(), 2);
/// assert_eq!(stats.site("never_called").calls(), 0);
/// ```
pub fn capture(f: impl FnOnce()) -> Captured {
    capture_value(f).1
}

/// [`capture`], also returning the closure's value.
///
/// ```
/// let (v, stats) = overrun::testing::capture_value(|| 40 + 2);
/// assert_eq!(v, 42);
/// assert!(stats.sites().is_empty());
/// ```
pub fn capture_value<R>(f: impl FnOnce() -> R) -> (R, Captured) {
    let before = crate::record::alloc::uncounted(|| this_thread(crate::record::site::all().len()));
    let value = f();
    let captured = crate::record::alloc::uncounted(|| {
        let after = this_thread(crate::record::site::all().len());
        captured(
            after
                .iter()
                .enumerate()
                .map(|(i, now)| {
                    now.as_ref()
                        .map(|now| now.minus(before.get(i).and_then(Option::as_ref)))
                })
                .collect(),
        )
    });
    (value, captured)
}

/// The [`Captured`] of per-site figures, by site index.
fn captured(copies: Vec<Option<CellCopy>>) -> Captured {
    let sites = crate::record::site::all();
    let figures = copies
        .into_iter()
        .enumerate()
        .filter_map(|(i, copy)| {
            let copy = copy?;
            let call = sites[i].kind().is_call();
            (call && copy.counters[0] > 0).then(|| CapturedSite::new(sites[i], copy))
        })
        .collect();
    Captured {
        sites: figures,
        allocs_available: crate::record::alloc::is_installed(),
    }
}

/// [`capture`] for async code: the exact per-site figures of the measured
/// calls made while `fut` was polled — on whichever threads its polls ran —
/// including the `async fn`s it awaited. Works on any executor, in
/// `#[tokio::test]` with either flavor. Tasks it spawned are not included
/// (they run outside its polls).
///
/// ```
/// #[overrun::measure]
/// async fn load(id: u32) -> u32 { id + 1 }
///
/// # overrun::tasks::block_on(async {
/// let stats = overrun::testing::capture_async(async {
///     load(1).await;
///     load(2).await;
/// })
/// .await;
/// assert_eq!(stats.site("load").calls(), 2);
/// # });
/// ```
pub async fn capture_async<F: Future>(fut: F) -> Captured {
    capture_value_async(fut).await.1
}

/// [`capture_async`], also returning the future's output.
///
/// ```
/// # overrun::tasks::block_on(async {
/// let (v, stats) = overrun::testing::capture_value_async(async { 40 + 2 }).await;
/// assert_eq!(v, 42);
/// assert!(stats.sites().is_empty());
/// # });
/// ```
pub async fn capture_value_async<F: Future>(fut: F) -> (F::Output, Captured) {
    let (value, copies) = Captures {
        inner: fut,
        copies: Vec::new(),
    }
    .await;
    let captured = crate::record::alloc::uncounted(|| captured(copies));
    (value, captured)
}

pin_project! {
    /// Sums, poll by poll, the per-site figures of the polling thread.
    struct Captures<F> {
        #[pin]
        inner: F,
        copies: Vec<Option<CellCopy>>,
    }
}

impl<F: Future> Future for Captures<F> {
    type Output = (F::Output, Vec<Option<CellCopy>>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let before =
            crate::record::alloc::uncounted(|| this_thread(crate::record::site::all().len()));
        let polled = this.inner.poll(cx);
        crate::record::alloc::uncounted(|| {
            let after = this_thread(crate::record::site::all().len());
            if this.copies.len() < after.len() {
                this.copies.resize(after.len(), None);
            }
            for (i, now) in after.iter().enumerate() {
                let Some(now) = now else { continue };
                let delta = now.minus(before.get(i).and_then(Option::as_ref));
                match &mut this.copies[i] {
                    Some(sum) => sum.add(&delta),
                    empty => *empty = Some(delta),
                }
            }
        });
        match polled {
            Poll::Ready(value) => Poll::Ready((value, std::mem::take(this.copies))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The figures [`capture`] took.
#[derive(Debug, Clone)]
pub struct Captured {
    sites: Vec<CapturedSite>,
    allocs_available: bool,
}

impl Captured {
    /// The site whose identity is `name` (as in the report: `"parse"`,
    /// `"Cart::total"`). A site that was not
    /// called during the capture reads as zero calls.
    pub fn site(&self, name: &str) -> CapturedSite {
        self.sites
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| CapturedSite::empty(name))
    }

    /// Every site called during the capture.
    pub fn sites(&self) -> &[CapturedSite] {
        &self.sites
    }

    /// Whether allocation figures are real.
    pub fn allocs_available(&self) -> bool {
        self.allocs_available
    }
}

/// One site's figures within a [`Captured`].
#[derive(Debug, Clone)]
pub struct CapturedSite {
    name: String,
    site: Option<&'static crate::record::site::Site>,
    counters: [u64; 8],
    violations: [u64; 4],
    histogram: Histogram,
}

impl CapturedSite {
    fn new(site: &'static crate::record::site::Site, copy: CellCopy) -> Self {
        Self {
            name: site.name().to_string(),
            site: Some(site),
            counters: copy.counters,
            violations: copy.violations,
            histogram: copy.histogram(),
        }
    }

    fn empty(name: &str) -> Self {
        Self {
            name: name.to_string(),
            site: None,
            counters: [0; 8],
            violations: [0; 4],
            histogram: Histogram::default(),
        }
    }

    /// The site's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls completed.
    pub fn calls(&self) -> u64 {
        self.counters[0]
    }

    /// Calls that returned `Err` or panicked.
    pub fn errors(&self) -> u64 {
        self.counters[1]
    }

    /// Sum of call durations.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(crate::record::clock::ticks_to_ns(self.counters[3]))
    }

    /// Heap allocations, callees included.
    pub fn allocs(&self) -> u64 {
        self.counters[5]
    }

    /// Heap bytes allocated, callees included.
    pub fn bytes(&self) -> u64 {
        self.counters[6]
    }

    /// Allocations per call.
    pub fn allocs_per_call(&self) -> f64 {
        self.allocs() as f64 / self.calls().max(1) as f64
    }

    /// A quantile of the call durations (histogram estimate, within 2%).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.histogram.quantile(q))
    }

    /// Calls over budget, by kind: time, allocs, bytes, poll.
    pub fn violations(&self) -> [u64; 4] {
        self.violations
    }

    /// Panics, naming each broken budget and how often, unless every call
    /// kept the budget declared by `#[measure]`.
    #[track_caller]
    pub fn assert_within_budget(&self) {
        let Some(site) = self.site else {
            panic!("{}: not called during the capture", self.name);
        };
        let budget = site.budget();
        let kinds = ["time", "allocs", "bytes", "poll"];
        let limits = [
            fmt_ns(budget.time_ns),
            budget.allocs.to_string(),
            fmt_bytes(budget.bytes),
            fmt_ns(budget.poll_ns),
        ];
        let mut msg = String::new();
        for ((kind, n), limit) in kinds.iter().zip(self.violations).zip(limits) {
            if n > 0 {
                let _ = write!(msg, "; {kind} budget {limit} broken {n} time(s)");
            }
        }
        if !msg.is_empty() {
            panic!(
                "{} broke its budget in {} calls{msg} (max call {}, {:.1} allocs/call)",
                self.name,
                self.calls(),
                fmt_ns(self.histogram.max()),
                self.allocs_per_call()
            );
        }
    }
}
