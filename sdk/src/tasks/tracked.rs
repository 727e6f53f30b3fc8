//! The tracked future: a task's polls, end and poll budget, recorded into its
//! registry entry.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::registry::{Entry, IDLE, RUNNING, SCHEDULED, register, task_site, unregister};
use super::watchdog::start_watchdog;
use crate::record::clock;
use crate::record::violation::{Violation, publish};
use crate::vocab::budget::NONE;
use crate::vocab::kind::ViolationKind;

pin_project! {
    /// A future whose task lifetime is tracked; made by [`track`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        task: Task,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            this.project().task.end(End::Cancelled);
        }
    }
}

/// The task's side of a [`Tracked`] future: its registry entry and whether
/// it has ended (a task ends once, however it ends).
struct Task {
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
    let entry = crate::record::alloc::uncounted(|| {
        Arc::new(Entry {
            site,
            location,
            spawned_at: clock::now(),
            first_poll: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            max_poll: AtomicU64::new(0),
            state: AtomicU8::new(SCHEDULED),
            code_poll: AtomicU64::new(NONE),
            code_lifetime: AtomicU64::new(NONE),
            leaked: AtomicBool::new(false),
            context: super::context::capture(),
        })
    });
    let slot = crate::record::alloc::uncounted(|| register(entry.clone()));
    if entry.lifetime() != NONE {
        // A policy file gives this name a lifetime.
        start_watchdog();
    }
    Tracked {
        inner: fut,
        task: Task {
            entry,
            slot,
            ended: false,
        },
    }
}

impl<F> Tracked<F> {
    /// A single poll longer than `limit` (such as `"1ms"`) is a `poll`
    /// violation (unless a policy file sets this task name's: the file
    /// wins). Panics on a malformed `&str` literal; give
    /// `overrun::duration!("1ms")` to have it checked at compile time.
    #[track_caller]
    pub fn poll_budget(self, limit: impl crate::vocab::units::TimeLimit) -> Self {
        let e = &self.task.entry;
        let code = clock::ns_to_ticks(limit.nanos());
        e.code_poll.store(code, Ordering::Relaxed);
        self
    }

    /// A task alive longer than `limit` (such as `"30s"`) is counted once as
    /// leaked (unless a policy file sets this task name's lifetime: the
    /// file wins). Panics on a malformed `&str` literal; give
    /// `overrun::duration!("30s")` to have it checked at compile time.
    #[track_caller]
    pub fn lifetime(self, limit: impl crate::vocab::units::TimeLimit) -> Self {
        let e = &self.task.entry;
        let code = clock::ns_to_ticks(limit.nanos());
        e.code_lifetime.store(code, Ordering::Relaxed);
        start_watchdog();
        self
    }

    /// Where the task was spawned.
    pub fn location(&self) -> &'static Location<'static> {
        self.task.entry.location
    }
}

impl Task {
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
        site.lifetimes[crate::record::stats::bucket_index(lifetime)]
            .fetch_add(1, Ordering::Relaxed);
        site.lifetime_max.fetch_max(lifetime, Ordering::Relaxed);
        let (shard, slot) = self.slot;
        crate::record::alloc::uncounted(|| unregister(shard, slot));
    }
}

enum End {
    Completed,
    Cancelled,
    Panicked,
}

/// Ends the task as panicked if a poll unwinds.
struct PollGuard<'a> {
    task: &'a mut Task,
    start: u64,
    armed: bool,
}

impl Drop for PollGuard<'_> {
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
    let _ = crate::record::measure::record_sample(e.site.polls_site, took);
    if took > e.poll_budget() {
        poll_violation(e, took);
    }
}

#[cold]
#[inline(never)]
fn poll_violation(e: &Entry, took: u64) {
    e.site.poll_violations.fetch_add(1, Ordering::Relaxed);
    publish_task_violation(
        e,
        ViolationKind::Poll,
        clock::ticks_to_ns(took),
        clock::ticks_to_ns(e.poll_budget()),
    );
}

/// Publishes a violation of the task, within the context it was spawned in.
pub(super) fn publish_task_violation(e: &Entry, kind: ViolationKind, observed: u64, limit: u64) {
    let at = (e.site.name, "task", e.location.file(), e.location.line());
    let v = Violation::here(at, kind, observed, limit);
    super::context::publish_within(e.context.as_ref(), || publish(v));
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.task.ended {
            return this.inner.poll(cx);
        }
        let start = clock::now();
        let e = &this.task.entry;
        if e.first_poll.load(Ordering::Relaxed) == 0 {
            e.first_poll.store(start.max(1), Ordering::Relaxed);
        }
        e.state.store(RUNNING, Ordering::Relaxed);
        let mut guard = PollGuard {
            task: this.task,
            start,
            armed: true,
        };
        let result = this.inner.poll(cx);
        guard.armed = false;
        record_poll(&guard.task.entry, start, clock::now());
        if result.is_ready() {
            guard.task.end(End::Completed);
        }
        result
    }
}
