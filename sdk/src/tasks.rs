//! Async task lifetimes: spawn → first poll → completion, poll durations,
//! and tasks that never finish.
//!
//! [`track`] wraps any future (any executor); with the `tokio` feature,
//! `overrun::spawn`, `overrun::spawn_named` and
//! `overrun::spawn_blocking_named` are drop-in replacements for tokio's.
//!
//! ```
//! use std::time::Duration;
//!
//! let fut = overrun::track("upload", async { 40 + 2 })
//!     .poll_budget("1ms")
//!     .lifetime("30s");
//! assert_eq!(overrun::tasks::block_on(fut), 42);
//! let stats = overrun::tasks::stats();
//! let upload = stats.iter().find(|s| s.name == "upload").unwrap();
//! assert_eq!((upload.spawned, upload.completed, upload.live), (1, 1, 0));
//! ```
//!
//! # What is recorded
//!
//! Per task name: spawned, completed, cancelled (dropped before completion,
//! e.g. `JoinHandle::abort`), panicked, live, leaked, polls, busy time (the
//! sum of polls), idle time (lifetime minus busy), scheduled-to-first-poll
//! delay, longest poll, and a histogram of lifetimes. Per live task
//! ([`live`]): name, spawn location, age, polls, busy time, state.
//!
//! # Budgets
//!
//! - `poll_budget`: a single poll longer than this blocked the executor; it
//!   is a `poll` violation naming the task and where it was spawned.
//! - `lifetime`: a task still alive after this long is a suspected leak: it
//!   is counted once as `leaked` (a `lifetime` violation) and flagged in
//!   [`live`]. A watchdog thread, started with the first task that has a
//!   lifetime budget, checks every 10 ms.
//!
//! # Cost model
//!
//! Per task: one small allocation (the task's entry, freed when it ends,
//! however it ends), one lock of one of 16 registry shards chosen per
//! thread, so threads spawning at once rarely meet; a shard's slot table
//! follows its peak number of live tasks and is released when it empties. Per poll: two clock
//! reads and plain stores to the task's own entry — no lock, no atomic
//! read-modify-write. Aggregates per name are updated once, when the task
//! ends.

use std::collections::HashMap;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::budget::NONE;
use crate::clock;
use crate::stats::Histogram;
use crate::violation::{Violation, ViolationKind, publish};

/// Registry shards.
const SHARDS: usize = 16;
/// How often the watchdog looks for tasks over their lifetime budget.
pub const WATCHDOG_PERIOD: Duration = Duration::from_millis(10);

/// Aggregates of all tasks of one name. Updated at spawn and at task end.
struct TaskSite {
    name: &'static str,
    /// Where every poll of these tasks is recorded, per thread.
    polls_site: &'static crate::Site,
    spawned: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    panicked: AtomicU64,
    leaked: AtomicU64,
    poll_violations: AtomicU64,
    /// Figures of ended tasks (live ones are read from the registry).
    polls: AtomicU64,
    busy: AtomicU64,
    max_poll: AtomicU64,
    first_poll_delay: AtomicU64,
    first_polled: AtomicU64,
    lifetime_total: AtomicU64,
    lifetimes: Box<[AtomicU64]>,
    lifetime_max: AtomicU64,
}

static TASK_SITES: RwLock<Option<HashMap<&'static str, &'static TaskSite>>> = RwLock::new(None);

thread_local! {
    /// The last name this thread looked up (spawn loops repeat one literal):
    /// a hit skips the shared lock and the hash.
    static LAST_SITE: std::cell::Cell<Option<&'static TaskSite>> = const { std::cell::Cell::new(None) };
}

fn task_site(name: &'static str) -> &'static TaskSite {
    if let Some(site) = LAST_SITE
        .with(|c| c.get())
        .filter(|s| std::ptr::eq(s.name, name))
    {
        return site;
    }
    let site = lookup_task_site(name);
    LAST_SITE.with(|c| c.set(Some(site)));
    site
}

fn lookup_task_site(name: &'static str) -> &'static TaskSite {
    if let Some(site) = TASK_SITES.read().as_ref().and_then(|m| m.get(name)) {
        return site;
    }
    crate::alloc::uncounted(|| {
        let mut sites = TASK_SITES.write();
        *sites
            .get_or_insert_with(HashMap::new)
            .entry(name)
            .or_insert_with(|| {
                Box::leak(Box::new(TaskSite {
                    name,
                    polls_site: Box::leak(Box::new(crate::Site::new(
                        name,
                        "task",
                        "",
                        0,
                        crate::SiteKind::TaskPoll,
                        crate::Budget::none(),
                    ))),
                    spawned: AtomicU64::new(0),
                    completed: AtomicU64::new(0),
                    cancelled: AtomicU64::new(0),
                    panicked: AtomicU64::new(0),
                    leaked: AtomicU64::new(0),
                    poll_violations: AtomicU64::new(0),
                    polls: AtomicU64::new(0),
                    busy: AtomicU64::new(0),
                    max_poll: AtomicU64::new(0),
                    first_poll_delay: AtomicU64::new(0),
                    first_polled: AtomicU64::new(0),
                    lifetime_total: AtomicU64::new(0),
                    lifetimes: (0..crate::stats::BUCKETS)
                        .map(|_| AtomicU64::new(0))
                        .collect(),
                    lifetime_max: AtomicU64::new(0),
                }))
            })
    })
}

/// The state of a live task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Spawned, never polled yet.
    Scheduled,
    /// Being polled right now.
    Running,
    /// Waiting to be woken.
    Idle,
}

const SCHEDULED: u8 = 0;
const RUNNING: u8 = 1;
const IDLE: u8 = 2;

/// One live task's entry in the registry, shared by the task and readers.
struct Entry {
    site: &'static TaskSite,
    location: &'static Location<'static>,
    spawned_at: u64,
    /// Written only by the thread polling the task (one at a time).
    first_poll: AtomicU64,
    polls: AtomicU64,
    busy: AtomicU64,
    max_poll: AtomicU64,
    state: AtomicU8,
    poll_budget: AtomicU64,
    lifetime: AtomicU64,
    leaked: AtomicBool,
}

/// One registry shard: a slab of live entries and a free list of slots.
struct Shard {
    slots: Vec<Option<Arc<Entry>>>,
    free: Vec<usize>,
    live: usize,
}

static REGISTRY: [Mutex<Option<Shard>>; SHARDS] = [const { Mutex::new(None) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn my_shard() -> usize {
    MY_SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

fn register(entry: Arc<Entry>) -> (usize, usize) {
    let shard = my_shard();
    let mut guard = REGISTRY[shard].lock();
    let s = guard.get_or_insert_with(|| Shard {
        slots: Vec::new(),
        free: Vec::new(),
        live: 0,
    });
    s.live += 1;
    let slot = match s.free.pop() {
        Some(slot) => {
            s.slots[slot] = Some(entry);
            slot
        }
        None => {
            s.slots.push(Some(entry));
            s.slots.len() - 1
        }
    };
    (shard, slot)
}

fn unregister(shard: usize, slot: usize) {
    let mut guard = REGISTRY[shard].lock();
    if let Some(s) = guard.as_mut() {
        s.slots[slot] = None;
        s.live -= 1;
        if s.live == 0 {
            // Give the memory back once the shard is empty.
            *guard = None;
        } else {
            s.free.push(slot);
        }
    }
}

/// Bytes the live-task registry holds right now (its tables and the entries
/// of live tasks): back to its starting value once every task has ended.
///
/// ```
/// let _bytes = overrun::tasks::registry_bytes();
/// ```
pub fn registry_bytes() -> usize {
    REGISTRY
        .iter()
        .map(|shard| {
            shard.lock().as_ref().map_or(0, |s| {
                s.slots.capacity() * std::mem::size_of::<Option<Arc<Entry>>>()
                    + s.free.capacity() * std::mem::size_of::<usize>()
                    + s.live * (std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<usize>())
            })
        })
        .sum()
}

fn for_each_live(mut f: impl FnMut(&Entry)) {
    for shard in &REGISTRY {
        let entries: Vec<Arc<Entry>> = shard
            .lock()
            .as_ref()
            .map(|s| s.slots.iter().flatten().cloned().collect())
            .unwrap_or_default();
        for e in &entries {
            f(e);
        }
    }
}

/// A future whose task lifetime is tracked; made by [`track`].
#[must_use = "futures do nothing unless polled"]
pub struct Tracked<F> {
    inner: F,
    entry: Arc<Entry>,
    slot: (usize, usize),
    ended: bool,
}

/// Tracks `fut` as a task called `name` (a static label: cardinality stays
/// bounded). The spawn location is the caller's. Works on any executor.
///
/// ```
/// let fut = overrun::track("job", async { 1 });
/// assert_eq!(overrun::tasks::block_on(fut), 1);
/// ```
#[track_caller]
pub fn track<F: Future>(name: &'static str, fut: F) -> Tracked<F> {
    // Read here: `#[track_caller]` does not reach into closures.
    let location = Location::caller();
    let site = task_site(name);
    site.spawned.fetch_add(1, Ordering::Relaxed);
    let entry = crate::alloc::uncounted(|| {
        Arc::new(Entry {
            site,
            location,
            spawned_at: clock::now(),
            first_poll: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            max_poll: AtomicU64::new(0),
            state: AtomicU8::new(SCHEDULED),
            poll_budget: AtomicU64::new(NONE),
            lifetime: AtomicU64::new(NONE),
            leaked: AtomicBool::new(false),
        })
    });
    let slot = crate::alloc::uncounted(|| register(entry.clone()));
    Tracked {
        inner: fut,
        entry,
        slot,
        ended: false,
    }
}

impl<F> Tracked<F> {
    /// A single poll longer than `limit` (such as `"1ms"`) is a `poll`
    /// violation. Panics on a malformed literal.
    pub fn poll_budget(self, limit: impl crate::testing::TimeLimit) -> Self {
        self.entry
            .poll_budget
            .store(clock::ns_to_ticks(limit.nanos()), Ordering::Relaxed);
        self
    }

    /// A task alive longer than `limit` (such as `"30s"`) is counted once as
    /// leaked. Panics on a malformed literal.
    pub fn lifetime(self, limit: impl crate::testing::TimeLimit) -> Self {
        self.entry
            .lifetime
            .store(clock::ns_to_ticks(limit.nanos()), Ordering::Relaxed);
        start_watchdog();
        self
    }

    /// Where the task was spawned.
    pub fn location(&self) -> &'static Location<'static> {
        self.entry.location
    }

    fn end(&mut self, how: End) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let e = &self.entry;
        let site = e.site;
        let now = clock::now();
        let lifetime = now.saturating_sub(e.spawned_at);
        let counter = match how {
            End::Completed => &site.completed,
            End::Cancelled => &site.cancelled,
            End::Panicked => &site.panicked,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        site.polls
            .fetch_add(e.polls.load(Ordering::Relaxed), Ordering::Relaxed);
        site.busy
            .fetch_add(e.busy.load(Ordering::Relaxed), Ordering::Relaxed);
        site.max_poll
            .fetch_max(e.max_poll.load(Ordering::Relaxed), Ordering::Relaxed);
        let first = e.first_poll.load(Ordering::Relaxed);
        if first != 0 {
            site.first_poll_delay
                .fetch_add(first.saturating_sub(e.spawned_at), Ordering::Relaxed);
            site.first_polled.fetch_add(1, Ordering::Relaxed);
        }
        site.lifetime_total.fetch_add(lifetime, Ordering::Relaxed);
        site.lifetimes[crate::stats::bucket_index(lifetime)].fetch_add(1, Ordering::Relaxed);
        site.lifetime_max.fetch_max(lifetime, Ordering::Relaxed);
        let (shard, slot) = self.slot;
        crate::alloc::uncounted(|| unregister(shard, slot));
    }
}

enum End {
    Completed,
    Cancelled,
    Panicked,
}

/// Ends the task as panicked if a poll unwinds.
struct PollGuard<'a, F> {
    task: &'a mut Tracked<F>,
    start: u64,
    armed: bool,
}

impl<F> Drop for PollGuard<'_, F> {
    fn drop(&mut self) {
        if self.armed {
            record_poll(&self.task.entry, self.start, clock::now());
            self.task.end(End::Panicked);
        }
    }
}

fn record_poll(e: &Entry, start: u64, end: u64) {
    let took = end.saturating_sub(start);
    // Single writer (the polling thread): load + store, no read-modify-write.
    e.polls
        .store(e.polls.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    e.busy
        .store(e.busy.load(Ordering::Relaxed) + took, Ordering::Relaxed);
    if took > e.max_poll.load(Ordering::Relaxed) {
        e.max_poll.store(took, Ordering::Relaxed);
    }
    e.state.store(IDLE, Ordering::Relaxed);
    crate::measure::record_task_poll(e.site.polls_site, took);
    if took > e.poll_budget.load(Ordering::Relaxed) {
        poll_violation(e, took);
    }
}

#[cold]
#[inline(never)]
fn poll_violation(e: &Entry, took: u64) {
    e.site.poll_violations.fetch_add(1, Ordering::Relaxed);
    publish(task_violation(
        e,
        ViolationKind::Poll,
        clock::ticks_to_ns(took),
        clock::ticks_to_ns(e.poll_budget.load(Ordering::Relaxed)),
    ));
}

fn task_violation(e: &Entry, kind: ViolationKind, observed: u64, limit: u64) -> Violation {
    let at = (e.site.name, "task", e.location.file(), e.location.line());
    Violation::here(at, kind, observed, limit)
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of
        // `self` (no method hands it out by value and `Drop` only reads the
        // other fields), and `Tracked` is `Unpin` only when `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        if this.ended {
            // SAFETY: as above.
            return unsafe { Pin::new_unchecked(&mut this.inner) }.poll(cx);
        }
        let start = clock::now();
        let e = &this.entry;
        if e.first_poll.load(Ordering::Relaxed) == 0 {
            e.first_poll.store(start.max(1), Ordering::Relaxed);
        }
        e.state.store(RUNNING, Ordering::Relaxed);
        let mut guard = PollGuard {
            task: this,
            start,
            armed: true,
        };
        // SAFETY: as above.
        let inner = unsafe { Pin::new_unchecked(&mut guard.task.inner) };
        let result = inner.poll(cx);
        guard.armed = false;
        record_poll(&guard.task.entry, start, clock::now());
        if result.is_ready() {
            guard.task.end(End::Completed);
        }
        result
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.end(End::Cancelled);
    }
}

static WATCHDOG: OnceLock<()> = OnceLock::new();

fn start_watchdog() {
    WATCHDOG.get_or_init(|| {
        crate::alloc::uncounted(|| {
            let spawned = std::thread::Builder::new()
                .name("overrun-watchdog".into())
                .spawn(|| {
                    loop {
                        std::thread::sleep(WATCHDOG_PERIOD);
                        check_lifetimes();
                    }
                });
            if let Err(err) = spawned {
                eprintln!("overrun: cannot start the task watchdog: {err}; lifetime budgets are checked on snapshot only");
            }
        });
    });
}

/// Flags every live task older than its lifetime budget (once per task).
/// Called by the watchdog, and by [`live`] and [`stats`].
pub fn check_lifetimes() {
    let now = clock::now();
    for_each_live(|e| {
        let limit = e.lifetime.load(Ordering::Relaxed);
        let age = now.saturating_sub(e.spawned_at);
        if limit != NONE && age > limit && !e.leaked.swap(true, Ordering::Relaxed) {
            e.site.leaked.fetch_add(1, Ordering::Relaxed);
            publish(task_violation(
                e,
                ViolationKind::Lifetime,
                clock::ticks_to_ns(age),
                clock::ticks_to_ns(limit),
            ));
        }
    });
}

/// One live task, as [`live`] lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveTask {
    /// The task's name.
    pub name: &'static str,
    /// Where it was spawned: file.
    pub file: &'static str,
    /// Line.
    pub line: u32,
    /// Column.
    pub column: u32,
    /// Time since spawn.
    #[serde(rename = "age_ns", serialize_with = "as_nanos")]
    pub age: Duration,
    /// Polls so far.
    pub polls: u64,
    /// Time spent in polls.
    #[serde(rename = "busy_ns", serialize_with = "as_nanos")]
    pub busy: Duration,
    /// Scheduled, running or idle.
    pub state: TaskState,
    /// Older than its lifetime budget.
    pub leaked: bool,
}

fn as_nanos<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_nanos() as u64)
}

/// Every live task, oldest first.
///
/// ```
/// let pending = overrun::track("listed", std::future::pending::<()>());
/// let live = overrun::tasks::live();
/// let me = live.iter().find(|t| t.name == "listed").unwrap();
/// assert_eq!(me.state, overrun::tasks::TaskState::Scheduled);
/// assert!(me.file.ends_with(".rs"));
/// drop(pending); // cancelled
/// assert!(overrun::tasks::live().iter().all(|t| t.name != "listed"));
/// ```
pub fn live() -> Vec<LiveTask> {
    check_lifetimes();
    let now = clock::now();
    let mut out = Vec::new();
    for_each_live(|e| {
        out.push(LiveTask {
            name: e.site.name,
            file: e.location.file(),
            line: e.location.line(),
            column: e.location.column(),
            age: Duration::from_nanos(clock::ticks_to_ns(now.saturating_sub(e.spawned_at))),
            polls: e.polls.load(Ordering::Relaxed),
            busy: Duration::from_nanos(clock::ticks_to_ns(e.busy.load(Ordering::Relaxed))),
            state: match e.state.load(Ordering::Relaxed) {
                SCHEDULED => TaskState::Scheduled,
                RUNNING => TaskState::Running,
                _ => TaskState::Idle,
            },
            leaked: e.leaked.load(Ordering::Relaxed),
        });
    });
    out.sort_by_key(|t| std::cmp::Reverse(t.age));
    out
}

/// Figures of all tasks of one name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskStats {
    /// The name.
    pub name: &'static str,
    /// Tasks created.
    pub spawned: u64,
    /// Ran to completion.
    pub completed: u64,
    /// Dropped before completion.
    pub cancelled: u64,
    /// Ended by a panic in a poll.
    pub panicked: u64,
    /// Alive now.
    pub live: u64,
    /// Outlived their lifetime budget (live or not).
    pub leaked: u64,
    /// Polls over the poll budget.
    pub poll_violations: u64,
    /// Polls, live tasks included.
    pub polls: u64,
    /// Time in polls, ns, live tasks included.
    pub busy_ns: u64,
    /// Ended tasks' lifetime minus busy time, ns.
    pub idle_ns: u64,
    /// Longest single poll, ns.
    pub max_poll_ns: u64,
    /// Mean spawn → first poll delay, ns.
    pub first_poll_delay_ns: u64,
    /// Median lifetime of ended tasks, ns.
    pub lifetime_p50_ns: u64,
    /// 99th percentile lifetime, ns.
    pub lifetime_p99_ns: u64,
    /// Longest lifetime of an ended task, ns.
    pub lifetime_max_ns: u64,
    /// Median poll duration, ns.
    pub poll_p50_ns: u64,
    /// 99th percentile poll duration, ns.
    pub poll_p99_ns: u64,
    /// Durations of every poll (not in the JSON).
    #[serde(skip)]
    pub poll_histogram: Histogram,
}

/// Figures per task name, by name.
///
/// ```
/// overrun::tasks::block_on(overrun::track("counted", async {}));
/// let s = overrun::tasks::stats();
/// assert!(s.iter().any(|t| t.name == "counted" && t.completed == 1));
/// ```
pub fn stats() -> Vec<TaskStats> {
    check_lifetimes();
    let sites: Vec<&'static TaskSite> = TASK_SITES
        .read()
        .as_ref()
        .map(|m| m.values().copied().collect())
        .unwrap_or_default();
    let mut live: HashMap<&'static str, (u64, u64, u64, u64)> = HashMap::new();
    for_each_live(|e| {
        let v = live.entry(e.site.name).or_default();
        v.0 += 1;
        v.1 += e.polls.load(Ordering::Relaxed);
        v.2 += e.busy.load(Ordering::Relaxed);
        v.3 = v.3.max(e.max_poll.load(Ordering::Relaxed));
    });
    let to_ns = clock::ticks_to_ns;
    let mut out: Vec<TaskStats> = sites
        .into_iter()
        .map(|s| {
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let (n_live, live_polls, live_busy, live_max) =
                live.get(s.name).copied().unwrap_or_default();
            let dense: Vec<u64> = s.lifetimes.iter().map(load).collect();
            let h = Histogram::from_dense(&dense, load(&s.lifetime_max), clock::ns_per_tick());
            let ended_busy = load(&s.busy);
            let polls_hist = s
                .polls_site
                .registered_index()
                .map(crate::stats::site_histogram)
                .unwrap_or_default();
            TaskStats {
                name: s.name,
                spawned: load(&s.spawned),
                completed: load(&s.completed),
                cancelled: load(&s.cancelled),
                panicked: load(&s.panicked),
                live: n_live,
                leaked: load(&s.leaked),
                poll_violations: load(&s.poll_violations),
                polls: load(&s.polls) + live_polls,
                busy_ns: to_ns(ended_busy + live_busy),
                idle_ns: to_ns(load(&s.lifetime_total).saturating_sub(ended_busy)),
                max_poll_ns: to_ns(load(&s.max_poll).max(live_max)),
                first_poll_delay_ns: to_ns(
                    load(&s.first_poll_delay)
                        .checked_div(load(&s.first_polled))
                        .unwrap_or(0),
                ),
                lifetime_p50_ns: h.quantile(0.5),
                lifetime_p99_ns: h.quantile(0.99),
                lifetime_max_ns: h.max(),
                poll_p50_ns: polls_hist.quantile(0.5),
                poll_p99_ns: polls_hist.quantile(0.99),
                poll_histogram: polls_hist,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(b.name));
    out
}

/// Runs a future to completion on the current thread (a minimal executor
/// for examples and tests; use a real runtime in applications).
///
/// ```
/// assert_eq!(overrun::tasks::block_on(async { 5 }), 5);
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(feature = "tokio")]
mod spawn {
    use super::track;
    use std::future::Future;

    /// `tokio::spawn`, tracked under the name `"unnamed"` (prefer
    /// [`spawn_named`]).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let h = overrun::spawn(async { 3 });
    /// assert_eq!(h.await.unwrap(), 3);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(track("unnamed", fut))
    }

    /// `tokio::spawn`, tracked under `name` (a static label).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let h = overrun::spawn_named("session-reaper", async { 1 });
    /// assert_eq!(h.await.unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_named<F>(name: &'static str, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(track(name, fut))
    }

    /// `tokio::task::spawn_blocking`, tracked under `name`: one "poll" that
    /// lasts as long as the closure runs.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let h = overrun::spawn_blocking_named("hash", || 6 * 7);
    /// assert_eq!(h.await.unwrap(), 42);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_blocking_named<F, R>(name: &'static str, f: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let mut tracked = Some(track(name, BlockingOnce(Some(f))));
        tokio::task::spawn_blocking(move || {
            let fut = tracked.take().expect("runs once");
            super::block_on(fut)
        })
    }

    /// `tokio::task::spawn_blocking`, tracked under the name `"blocking"`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// assert_eq!(overrun::spawn_blocking(|| 1).await.unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_blocking_named("blocking", f)
    }

    /// A closure as a future that completes in its first poll.
    struct BlockingOnce<F>(Option<F>);

    impl<F> Unpin for BlockingOnce<F> {}

    impl<F: FnOnce() -> R, R> Future for BlockingOnce<F> {
        type Output = R;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<R> {
            let f = self.0.take().expect("polled once");
            std::task::Poll::Ready(f())
        }
    }
}

#[cfg(feature = "tokio")]
pub use spawn::{spawn, spawn_blocking, spawn_blocking_named, spawn_named};
