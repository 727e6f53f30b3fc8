//! What `#[measure]` expands to: a guard for synchronous functions and a
//! future wrapper for `async fn`.
//!
//! # The hot path
//!
//! Entry: one relaxed load of the global switch, one load of the site id,
//! a clock read, a read of the thread's allocation totals and of its
//! callee-time accumulator. Exit: a clock read, the allocation totals again,
//! then plain load/add/store on the thread's own cell (count, total, self
//! time, max, allocations, one histogram bucket) and one branch that compares
//! the call with its budget. Only a call over budget leaves this path — or,
//! on a site with a latency objective or a time budget, one past the start
//! of the bucket just under the lowest threshold's (the gate). Past the gate, a
//! few integer compares against each threshold's tick window; only a call
//! inside one (the bucket that straddles a threshold, or a neighbour) is
//! counted exactly, on its side of the threshold (`near_threshold`).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use crate::record::alloc::{ThreadAllocs, thread_allocs};
use crate::record::site::Site;
use crate::record::stats::shard::{LOCAL, SiteCell, bump, raise};
use crate::record::violation::{Violation, ViolationKind, publish};

const UNKNOWN: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static SWITCH: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether measuring is on: it is unless the environment variable
/// `OVERRUN` is `off`, `0` or `false` when first asked, or
/// [`set_enabled`] switched it.
///
/// ```
/// overrun::set_enabled(false);
/// assert!(!overrun::enabled());
/// overrun::set_enabled(true);
/// assert!(overrun::enabled());
/// ```
#[inline(always)]
pub fn enabled() -> bool {
    // Relaxed: the switch guards no other data; a thread that sees the change
    // a little late measures (or skips) a few more calls.
    match SWITCH.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => init_switch(),
    }
}

#[cold]
#[inline(never)]
fn init_switch() -> bool {
    let off = std::env::var("OVERRUN").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    });
    let _ = SWITCH.compare_exchange(
        UNKNOWN,
        if off { OFF } else { ON },
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    SWITCH.load(Ordering::Relaxed) == ON
}

/// Switches measuring on or off for the whole process, at run time. Calls
/// already under way finish as they started.
///
/// ```
/// overrun::set_enabled(true);
/// ```
pub fn set_enabled(on: bool) {
    SWITCH.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// What one call (or one completed `async fn`) measured, in ticks.
struct Call {
    elapsed: u64,
    self_time: u64,
    allocs: u64,
    bytes: u64,
    error: bool,
}

/// Adds a finished call to the thread's cell and checks its budget.
#[inline(always)]
fn record(site: &'static Site, index: usize, call: Call) {
    let Some(cell) = LOCAL.with(|l| l.shard()).map(|s| s.cell(index)) else {
        return;
    };
    let over = over_limits(site, call.elapsed, call.allocs, call.bytes);
    count_one_as(
        cell,
        call.elapsed,
        histogram_value(site, call.elapsed, over),
    );
    if call.error {
        bump(&cell.rare().errors, 1);
    }
    bump(&cell.self_time, call.self_time);
    bump(&cell.allocs, call.allocs);
    bump(&cell.bytes, call.bytes);
    if over {
        // The figures by value, in registers: a struct passed by reference
        // would take room in the measured function's frame.
        over_budget(site, cell, call.elapsed, call.allocs, call.bytes);
    }
}

/// Counts one timed event of `elapsed` ticks in `cell` — a call, a task's
/// poll, a lock's hold: the count, the time, the maximum and the histogram.
#[inline(always)]
pub(crate) fn count_one(cell: &SiteCell, elapsed: u64) {
    count_one_as(cell, elapsed, elapsed);
}

/// As [`count_one`], with `in_histogram` as the value the histogram counts
/// (the duration itself, or a neighbour bucket's: see [`near_threshold`]).
#[inline(always)]
fn count_one_as(cell: &SiteCell, elapsed: u64, in_histogram: u64) {
    bump(&cell.calls, 1);
    bump(&cell.total, elapsed);
    raise(&cell.max, elapsed);
    cell.record_value(in_histogram);
}

/// The value a call's histogram counts: its duration, unless it left the
/// fast path (`over`), where it may sit in the bucket that straddles a
/// threshold.
#[inline(always)]
fn histogram_value(site: &Site, elapsed: u64, over: bool) -> u64 {
    if over {
        near_threshold(site, elapsed)
    } else {
        elapsed
    }
}

/// A call of `elapsed` ticks in the histogram bucket that straddles one of
/// the site's thresholds (its time budget, a latency objective) is counted
/// on its true side of it: in the bucket below when it is at or under the
/// threshold (in ticks, as the budget is checked) but the exporters count
/// its bucket over it (by its midpoint), in the bucket above in the
/// opposite case. So a backend's bucket at the threshold (`le="0.05"`)
/// holds exactly the calls at or under it. A move that would put the call
/// on the wrong side of another threshold (two within one bucket's width,
/// 1.6%, of each other) is not made: those two are exact to the
/// histogram's resolution only, as is an exporter's own bound the move
/// crosses, and a threshold in the last bucket (over 2^52 ticks). Its time,
/// maximum and every other figure are its own.
#[cold]
#[inline(never)]
fn near_threshold(site: &Site, elapsed: u64) -> u64 {
    use crate::record::clock::{ns_to_ticks, ticks_to_ns};
    use crate::record::stats::histogram::{at_or_below, bound_seconds, bounds, index};
    // Most calls past the gate are far from every threshold: counted as
    // they are, without the conversions below.
    let near = site.near_ticks.iter().any(|[from, to]| {
        (from.load(Ordering::Relaxed)..to.load(Ordering::Relaxed)).contains(&elapsed)
    });
    if !near {
        return elapsed;
    }
    let thresholds = || {
        site.thresholds_ns
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .take_while(|&ns| ns != crate::vocab::budget::NONE)
    };
    let bucket_ns = |i: usize| {
        let (low, width) = bounds(i);
        (ticks_to_ns(low), ticks_to_ns(low + width))
    };
    // Whether the bucket of ticks `i` puts the call on its side of each.
    let right_side = |i: usize, ns: u64| {
        let (low_ns, high_ns) = bucket_ns(i);
        at_or_below(low_ns, high_ns, bound_seconds(ns)) == (elapsed <= ns_to_ticks(ns))
    };
    let here = index(elapsed);
    let (low, width) = bounds(here);
    let Some(wrong) = thresholds().find(|&ns| !right_side(here, ns)) else {
        return elapsed;
    };
    let target = if elapsed <= ns_to_ticks(wrong) {
        match low.checked_sub(1) {
            Some(below) => below,
            None => return elapsed,
        }
    } else {
        low + width
    };
    let there = index(target);
    // Only a move that puts every threshold right that was right here.
    if there == here || thresholds().any(|ns| right_side(here, ns) && !right_side(there, ns)) {
        return elapsed;
    }
    target
}

/// Whether a call is over any of its site's per-call limits, in one branch
/// ("no limit" is `u64::MAX`).
#[inline(always)]
fn over_limits(site: &Site, elapsed: u64, allocs: u64, bytes: u64) -> bool {
    (elapsed > site.time_ticks.load(Ordering::Relaxed))
        | (allocs > site.allocs.load(Ordering::Relaxed))
        | (bytes > site.bytes.load(Ordering::Relaxed))
}

/// This thread's cell of `site`; `None` when measuring is off, the site
/// cannot register, or the thread is being torn down.
#[inline(always)]
pub(crate) fn own_cell(site: &'static Site) -> Option<&'static SiteCell> {
    if !enabled() {
        return None;
    }
    let index = site.index()?;
    LOCAL.with(|l| l.shard()).map(|s| s.cell(index))
}

/// Counts one timed event of `site` on this thread (a tracked task's poll,
/// a lock's hold); its cell, to check a limit against, or `None` as
/// [`own_cell`].
#[inline]
pub(crate) fn record_sample(site: &'static Site, ticks: u64) -> Option<&'static SiteCell> {
    let cell = own_cell(site)?;
    count_one(cell, ticks);
    Some(cell)
}

#[cold]
#[inline(never)]
fn over_budget(site: &'static Site, cell: &SiteCell, elapsed: u64, allocs: u64, bytes: u64) {
    // Past the fast path's gate, which may be under the time budget (a
    // threshold's bucket): the budget itself decides.
    let time_limit = site.budget_ticks.load(Ordering::Relaxed);
    let alloc_limit = site.allocs.load(Ordering::Relaxed);
    let byte_limit = site.bytes.load(Ordering::Relaxed);
    if elapsed > time_limit {
        let ns = crate::record::clock::ticks_to_ns(elapsed);
        if let Some(index) = site.registered_index() {
            // The trace it ran in, for the bucket of its duration.
            crate::record::alloc::uncounted(|| crate::record::exemplar::capture(index, ns));
        }
        violate(
            site,
            cell,
            ViolationKind::Time,
            ns,
            site.budget_ns.load(Ordering::Relaxed),
        );
    }
    if allocs > alloc_limit {
        violate(site, cell, ViolationKind::Allocs, allocs, alloc_limit);
    }
    if bytes > byte_limit {
        violate(site, cell, ViolationKind::Bytes, bytes, byte_limit);
    }
}

#[cold]
#[inline(never)]
fn violate(site: &'static Site, cell: &SiteCell, kind: ViolationKind, observed: u64, limit: u64) {
    if let Some(slot) = kind.site_slot() {
        bump(&cell.rare().violations[slot], 1);
    }
    publish(site_violation(site, kind, observed, limit));
}

pub(crate) fn site_violation(
    site: &'static Site,
    kind: ViolationKind,
    observed: u64,
    limit: u64,
) -> Violation {
    let at = (site.name(), site.module(), site.file(), site.line());
    Violation::here(at, kind, observed, limit)
}

/// Start-of-call state shared by the sync guard and one poll of a future.
struct Scope {
    start: u64,
    allocs: ThreadAllocs,
    /// The enclosing call's callee time, restored (plus ours) on exit.
    saved_child: u64,
}

impl Scope {
    #[inline(always)]
    fn open() -> Self {
        let saved_child = LOCAL.with(|l| l.child.replace(0));
        let allocs = thread_allocs();
        Self {
            start: crate::record::clock::now(),
            allocs,
            saved_child,
        }
    }

    /// Closes the innermost scope (see `close_with`).
    #[inline(always)]
    fn close(&self) -> (u64, u64, u64, u64) {
        self.close_with(true)
    }

    /// Closes the scope: (elapsed, self time, allocs, bytes). `nested`: the
    /// innermost scope open on this thread, its elapsed time charged to the
    /// enclosing call's callees; otherwise (a span exited out of order) the
    /// thread's callee-time bookkeeping is left as it is and self time is
    /// the elapsed time.
    #[inline(always)]
    fn close_with(&self, nested: bool) -> (u64, u64, u64, u64) {
        let end = crate::record::clock::now();
        let allocs = thread_allocs();
        let elapsed = end.saturating_sub(self.start);
        let child = if nested {
            LOCAL.with(|l| l.child.replace(self.saved_child.wrapping_add(elapsed)))
        } else {
            0
        };
        (
            elapsed,
            elapsed.saturating_sub(child),
            allocs.count.wrapping_sub(self.allocs.count),
            allocs.bytes.wrapping_sub(self.allocs.bytes),
        )
    }
}

/// The guard of one synchronous call. Created on entry; [`finish`](Self::finish)
/// records a normal return, and dropping it unfinished (a panic unwinding
/// through the function) records the call as an error.
#[doc(hidden)]
#[must_use]
pub struct Guard {
    active: Option<(&'static Site, usize, Scope)>,
}

// In a build without optimisations the measured function's frame would
// hold every temporary of the inlined entry and exit paths (some 1.8 KB a
// frame, a recursive function's stack overflowing early): there they are
// calls of their own, and only the guard stays in the caller's frame.
impl Guard {
    /// Opens a call of `site`.
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline(never))]
    pub fn enter(site: &'static Site) -> Self {
        if !enabled() {
            return Self { active: None };
        }
        let active = site.index().map(|index| (site, index, Scope::open()));
        Self { active }
    }

    /// Records the call as finished, an error if `error`.
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline(never))]
    pub fn finish(self, error: bool) {
        let mut this = ManuallyDrop::new(self);
        this.record(error);
    }

    #[inline(always)]
    fn record(&mut self, error: bool) {
        if let Some((site, index, scope)) = self.active.take() {
            let (elapsed, self_time, allocs, bytes) = scope.close();
            record(
                site,
                index,
                Call {
                    elapsed,
                    self_time,
                    allocs,
                    bytes,
                    error,
                },
            );
        }
    }
}

impl Drop for Guard {
    #[inline(always)]
    fn drop(&mut self) {
        // Only reached when `finish` was not: the body panicked.
        if let Some((site, index, scope)) = self.active.take() {
            let Scope {
                start,
                allocs: ThreadAllocs { count, bytes },
                saved_child,
            } = scope;
            unwound(site, index, start, count, bytes, saved_child);
        }
    }
}

/// Records a call its body's panic unwound, an error. Out of line, its
/// figures in registers (six arguments: all in registers in the System V
/// calling convention, not in Windows x64's): the caller's frame keeps no
/// copy of the guard for the unwinding path.
#[cold]
#[inline(never)]
fn unwound(
    site: &'static Site,
    index: usize,
    start: u64,
    count: u64,
    bytes: u64,
    saved_child: u64,
) {
    let scope = Scope {
        start,
        allocs: ThreadAllocs { count, bytes },
        saved_child,
    };
    Guard {
        active: Some((site, index, scope)),
    }
    .record(true);
}

/// Marks the `async fn` body that is finishing on this thread as an error.
#[doc(hidden)]
#[inline]
pub fn mark_async_error() {
    LOCAL.with(|l| l.async_err.set(true));
}

/// State of one `async fn` call across its polls.
struct AsyncCall {
    site: &'static Site,
    index: usize,
    first_poll: u64,
    self_time: u64,
    allocs: u64,
    bytes: u64,
    polls: u64,
    max_poll: u64,
    done: bool,
}

impl AsyncCall {
    /// A call not polled yet (its first poll sets `first_poll`).
    fn new(site: &'static Site, index: usize) -> Self {
        Self {
            site,
            index,
            first_poll: 0,
            self_time: 0,
            allocs: 0,
            bytes: 0,
            polls: 0,
            max_poll: 0,
            done: false,
        }
    }

    /// Adds one poll.
    #[inline]
    fn add_poll(&mut self, elapsed: u64, self_time: u64, allocs: u64, bytes: u64) {
        self.self_time += self_time;
        self.allocs += allocs;
        self.bytes += bytes;
        self.polls += 1;
        self.max_poll = self.max_poll.max(elapsed);
    }

    /// Records the call: `error` for an `Err` result or a panic, `cancelled`
    /// when dropped before completion.
    fn end(&mut self, end: u64, error: bool, cancelled: bool) {
        self.done = true;
        let Some(cell) = LOCAL.with(|l| l.shard()).map(|s| s.cell(self.index)) else {
            return;
        };
        let rare = cell.rare();
        bump(&rare.polls, self.polls);
        raise(&rare.max_poll, self.max_poll);
        if cancelled {
            bump(&rare.cancelled, 1);
        }
        record(
            self.site,
            self.index,
            Call {
                elapsed: end.saturating_sub(self.first_poll),
                self_time: self.self_time,
                allocs: self.allocs,
                bytes: self.bytes,
                error,
            },
        );
    }
}

/// Ends a poll that unwinds: the call is recorded as an error.
struct PollScope<'a> {
    call: &'a mut AsyncCall,
    scope: Scope,
    armed: bool,
}

impl PollScope<'_> {
    #[inline]
    fn close(&mut self) -> u64 {
        let (elapsed, self_time, allocs, bytes) = self.scope.close();
        let call = &mut *self.call;
        call.add_poll(elapsed, self_time, allocs, bytes);
        if elapsed > call.site.poll_ticks.load(Ordering::Relaxed) {
            poll_violation_of(call.site, call.index, elapsed);
        }
        self.scope.start + elapsed
    }
}

#[cold]
#[inline(never)]
fn poll_violation_of(site: &'static Site, index: usize, elapsed: u64) {
    if let Some(cell) = LOCAL.with(|l| l.shard()).map(|s| s.cell(index)) {
        violate(
            site,
            cell,
            ViolationKind::Poll,
            crate::record::clock::ticks_to_ns(elapsed),
            site.budget().poll_ns,
        );
    }
}

impl Drop for PollScope<'_> {
    fn drop(&mut self) {
        if self.armed {
            let end = self.close();
            self.call.end(end, true, false);
        }
    }
}

pin_project_lite::pin_project! {
    /// The future an instrumented `async fn` returns: measures latency (first
    /// poll to completion), busy and self time, polls and allocations across
    /// every poll, on whichever threads they run.
    #[doc(hidden)]
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        call: Option<AsyncCall>,
        site: &'static Site,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(call) = this.call.as_mut().filter(|c| !c.done) {
                call.end(crate::record::clock::now(), false, true);
            }
        }
    }
}

impl<F> Instrumented<F> {
    /// Wraps the body of an `async fn` measured as `site`.
    #[inline]
    pub fn new(site: &'static Site, inner: F) -> Self {
        Self {
            inner,
            call: None,
            site,
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.call.is_none() {
            if !enabled() {
                return this.inner.poll(cx);
            }
            match this.site.index() {
                Some(index) => *this.call = Some(AsyncCall::new(this.site, index)),
                None => return this.inner.poll(cx),
            }
        }
        let Some(call) = this.call.as_mut().filter(|c| !c.done) else {
            return this.inner.poll(cx);
        };
        let mut poll_scope = begin_poll(call);
        let result = this.inner.poll(cx);
        end_poll(poll_scope_disarmed(&mut poll_scope), result.is_ready());
        result
    }
}

/// Opens a poll. (A call of its own without optimisations, so the poll's
/// frame, on the stack under the inner future's, holds only the scope.)
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))]
fn begin_poll(call: &mut AsyncCall) -> PollScope<'_> {
    LOCAL.with(|l| l.async_err.set(false));
    let scope = Scope::open();
    if call.polls == 0 {
        call.first_poll = scope.start;
    }
    PollScope {
        call,
        scope,
        armed: true,
    }
}

/// The inner poll returned (it did not unwind): the scope is closed here,
/// not by its drop.
#[inline(always)]
fn poll_scope_disarmed<'a, 'b>(scope: &'a mut PollScope<'b>) -> &'a mut PollScope<'b> {
    scope.armed = false;
    scope
}

/// Closes a poll, and the call if the future is ready.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))]
fn end_poll(poll_scope: &mut PollScope<'_>, ready: bool) {
    let end = poll_scope.close();
    if ready {
        let error = LOCAL.with(|l| l.async_err.replace(false));
        poll_scope.call.end(end, error, false);
    }
}

#[cfg(feature = "tracing")]
pub(crate) use span::{span_close, span_enter, span_exit, span_interval};

#[cfg(feature = "tracing")]
mod span {
    use super::*;
    use std::cell::Cell;

    /// Entered intervals open on this thread, innermost last: the layer
    /// and span id of each (a span is named by both: two subscribers give
    /// out the same ids) and its scope, `None` for a span entered again
    /// while already entered here. A fixed array in a thread-local without
    /// a destructor: no registration, borrow flag or growth on the way.
    /// Bounded: deeper nesting is not measured.
    const OPEN_MAX: usize = 64;

    struct Open {
        len: Cell<usize>,
        names: [Cell<(usize, u64)>; OPEN_MAX],
        scopes: [Cell<Option<Scope>>; OPEN_MAX],
    }

    thread_local! {
        static OPEN: Open = const {
            Open {
                len: Cell::new(0),
                names: [const { Cell::new((0, 0)) }; OPEN_MAX],
                scopes: [const { Cell::new(None) }; OPEN_MAX],
            }
        };
    }

    /// The span `id` of layer `owner` is entered on this thread: an
    /// interval opens (no lookup of the span: its figures are added when it
    /// is exited).
    #[inline]
    pub(crate) fn span_enter(owner: usize, id: u64) {
        OPEN.with(|open| {
            let len = open.len.get();
            if len >= OPEN_MAX {
                return;
            }
            let again = open.names[..len].iter().any(|n| n.get() == (owner, id));
            open.names[len].set((owner, id));
            open.scopes[len].set((!again).then(Scope::open));
            open.len.set(len + 1);
        });
    }

    /// One entered interval, closed.
    pub(crate) struct Interval {
        pub(crate) elapsed: u64,
        pub(crate) self_time: u64,
        pub(crate) allocs: u64,
        pub(crate) bytes: u64,
    }

    /// The span `id` of layer `owner` is exited on this thread: its
    /// interval, if one was open here. Exited out of order (not the
    /// innermost), its callee time is not handed back to the frames around
    /// it, which stay as they were.
    #[inline]
    pub(crate) fn span_exit(owner: usize, id: u64) -> Option<Interval> {
        OPEN.with(|open| {
            let len = open.len.get();
            let at = open.names[..len]
                .iter()
                .rposition(|n| n.get() == (owner, id))?;
            let scope = open.scopes[at].take();
            for i in at + 1..len {
                open.names[i - 1].set(open.names[i].get());
                open.scopes[i - 1].set(open.scopes[i].take());
            }
            open.len.set(len - 1);
            let (elapsed, self_time, allocs, bytes) = scope?.close_with(at + 1 == len);
            Some(Interval {
                elapsed,
                self_time,
                allocs,
                bytes,
            })
        })
    }

    /// An entered interval of a span of `site` ended on this thread: its
    /// busy and self time, its allocations and the interval itself (one
    /// "poll") go to this thread's cell, and it is checked against the
    /// `poll` budget (returned when over it, to publish inside the span). The span's call is recorded when it closes.
    /// Measured whether or not measuring was switched off since: a span
    /// that was measured when it was created is measured to its close.
    #[inline]
    pub(crate) fn span_interval(site: &'static Site, interval: &Interval) -> Option<PollOver> {
        let index = site.index()?;
        let cell = LOCAL.with(|l| l.shard()).map(|s| s.cell(index))?;
        let rare = cell.rare();
        bump(&rare.polls, 1);
        raise(&rare.max_poll, interval.elapsed);
        bump(&cell.self_time, interval.self_time);
        bump(&cell.allocs, interval.allocs);
        bump(&cell.bytes, interval.bytes);
        (interval.elapsed > site.poll_ticks.load(Ordering::Relaxed)).then_some(PollOver {
            site,
            index,
            elapsed: interval.elapsed,
        })
    }

    /// A span of `site` created at `start` closed now: one call, an error if
    /// `error`, checked against the time budget and, with the allocations
    /// of all its intervals (`allocs`, `bytes`), the allocation budgets
    /// (returned when over one, to publish where the caller chooses). Its
    /// intervals' figures are in the cells already.
    #[inline]
    pub(crate) fn span_close(
        site: &'static Site,
        start: u64,
        error: bool,
        allocs: u64,
        bytes: u64,
    ) -> Option<CloseOver> {
        // No `enabled()` here: see `span_interval`.
        let elapsed = crate::record::clock::now().saturating_sub(start);
        let index = site.index()?;
        let cell = LOCAL.with(|l| l.shard()).map(|s| s.cell(index))?;
        let over = over_limits(site, elapsed, allocs, bytes);
        count_one_as(cell, elapsed, histogram_value(site, elapsed, over));
        if error {
            bump(&cell.rare().errors, 1);
        }
        over.then_some(CloseOver {
            site,
            index,
            elapsed,
            allocs,
            bytes,
        })
    }

    /// A span over a budget at its close, to publish.
    #[must_use]
    pub(crate) struct CloseOver {
        site: &'static Site,
        index: usize,
        elapsed: u64,
        allocs: u64,
        bytes: u64,
    }

    impl CloseOver {
        /// Counts and publishes the violations (on the closing thread).
        #[cold]
        pub(crate) fn publish(self) {
            if let Some(cell) = LOCAL.with(|l| l.shard()).map(|s| s.cell(self.index)) {
                over_budget(self.site, cell, self.elapsed, self.allocs, self.bytes);
            }
        }
    }

    /// An entered interval over the `poll` budget, to publish inside its span.
    #[must_use]
    pub(crate) struct PollOver {
        site: &'static Site,
        index: usize,
        elapsed: u64,
    }

    impl PollOver {
        /// Counts and publishes the violation (on the thread that measured
        /// it).
        #[cold]
        pub(crate) fn publish(self) {
            poll_violation_of(self.site, self.index, self.elapsed);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn intervals_nest_reenter_leave_out_of_order_and_stop_at_the_bound() {
            // Entered again while entered: one interval, the outer one.
            span_enter(1, 10);
            span_enter(1, 11);
            span_enter(1, 10);
            assert!(span_exit(1, 10).is_none(), "the inner re-entry");
            // A span of another layer with the same id is another span.
            span_enter(2, 11);
            assert!(span_exit(2, 11).is_some());
            // Out of order: 10 leaves before 11, which stays open.
            let outer = span_exit(1, 10).expect("the outer interval");
            assert_eq!(outer.self_time, outer.elapsed, "not innermost");
            assert!(span_exit(1, 10).is_none(), "closed once");
            assert!(span_exit(1, 11).is_some());
            // Past the bound, intervals are not measured; the rest are.
            let deep = OPEN_MAX as u64 + 6;
            for id in 0..deep {
                span_enter(3, id);
            }
            for id in (0..deep).rev() {
                assert_eq!(span_exit(3, id).is_some(), id < OPEN_MAX as u64, "{id}");
            }
            assert_eq!(OPEN.with(|o| o.len.get()), 0);
        }
    }
}

/// Autoref-specialised test for `Result::Err`, so the macro can count errors
/// without knowing the return type's name (works through aliases such as
/// `io::Result`).
#[doc(hidden)]
pub(crate) mod is_err {
    /// Chosen for `Result`.
    pub trait ResultErr {
        /// Whether this is an `Err`.
        fn __overrun_is_err(&self) -> bool;
    }
    impl<T, E> ResultErr for Result<T, E> {
        #[inline(always)]
        fn __overrun_is_err(&self) -> bool {
            self.is_err()
        }
    }
    /// Chosen for everything else (through one more autoref).
    pub trait NotResult {
        /// Never an error.
        #[inline(always)]
        fn __overrun_is_err(&self) -> bool {
            false
        }
    }
    impl<T: ?Sized> NotResult for &T {}
}

#[cfg(test)]
mod threshold_tests {
    use super::*;
    use crate::record::clock::{ns_to_ticks, ticks_to_ns};
    use crate::record::stats::histogram::{at_or_below, bound_seconds, bounds, index};
    use crate::vocab::budget::{Budget, Quantile};

    /// Every tick value around each threshold lands, in the histogram, in
    /// a bucket that the exporters' bound at the threshold counts on the
    /// call's true side; and only calls from the bucket below the
    /// threshold's leave the fast path.
    #[test]
    #[cfg_attr(miri, ignore)] // a few thousand values per threshold
    fn calls_at_a_threshold_are_counted_on_their_side_of_it() {
        for (budget_ns, p99_ns) in [
            (50_000_000, 20_000_000),
            (1_500_000, 123_457),
            (777, 50_000_000_000),
            // Within one bucket of each other: a call between them is moved
            // for neither (it would cross the other), and nothing else
            // ends on a wrong side.
            (50_000_000, 50_500_000),
        ] {
            let site: &'static Site = Box::leak(Box::new(Site::new(
                "threshold_site",
                "tests",
                file!(),
                line!(),
                crate::record::site::SiteKind::Sync,
                Budget::none()
                    .with_time_ns(budget_ns)
                    .with_quantile_ns(Quantile::P99, p99_ns),
            )));
            site.apply_budget(&site.budget());
            let gate = site.time_ticks.load(Ordering::Relaxed);
            assert!(gate <= site.budget_ticks.load(Ordering::Relaxed));
            // The fast path keeps every call below the bucket under the
            // lowest threshold's.
            let lowest = budget_ns.min(p99_ns);
            let fast_below = bounds(index(ns_to_ticks(lowest)).saturating_sub(1)).0;
            for v in [0, 1, fast_below / 2, fast_below.saturating_sub(1)] {
                assert!(!over_limits(site, v, 0, 0), "{v} ticks left the fast path");
            }
            let close = budget_ns.abs_diff(p99_ns) < budget_ns / 50;
            // Whether the bucket of ticks `i` counts a call of `v` ticks on
            // its side of threshold `t`, as the exporters' bound does.
            let right = |i: usize, v: u64, t: u64| {
                let (low, width) = bounds(i);
                at_or_below(ticks_to_ns(low), ticks_to_ns(low + width), bound_seconds(t))
                    == (v <= ns_to_ticks(t))
            };
            for t in [budget_ns, p99_ns] {
                let b = index(ns_to_ticks(t));
                let from = bounds(b.saturating_sub(2)).0;
                let to = {
                    let (low, width) = bounds(b + 2);
                    low + width
                };
                let step = ((to - from) / 4_000).max(1);
                let mut v = from;
                while v < to {
                    let over = over_limits(site, v, 0, 0);
                    let counted = histogram_value(site, v, over);
                    for u in [budget_ns, p99_ns] {
                        // A move never puts a call on the wrong side of a
                        // threshold it was on the right side of; apart, both
                        // thresholds are exact.
                        assert!(
                            !right(index(v), v, u) || right(index(counted), v, u),
                            "{v} ticks moved to {counted} crosses {u} ns"
                        );
                        if !close {
                            assert!(
                                right(index(counted), v, u),
                                "{v} ticks ({} ns) against {u} ns: counted as {counted}",
                                ticks_to_ns(v)
                            );
                        }
                    }
                    v += step;
                }
            }
        }
    }
}
