//! What every lock type shares: its budgets, the measured wait of a
//! contended acquisition, the guard, and the measured hold.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::time::Duration;

use super::figures::{LockSite, Mode};
use super::watch::{Watched, start_watchdog, watch};
use crate::record::clock;
use crate::record::measure::enabled;
use crate::vocab::budget::NONE;

/// A lock's budgets in clock ticks (as checked), the wait budget also as a
/// timeout (the lock's name keeps them in ns, for the report).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    wait_ticks: u64,
    hold_ticks: u64,
    wait: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wait_ticks: NONE,
            hold_ticks: NONE,
            wait: None,
        }
    }
}

impl Limits {
    pub(crate) fn set_wait(&mut self, site: &LockSite, ns: u64) {
        self.wait_ticks = clock::ns_to_ticks(ns);
        self.wait = (ns != NONE).then(|| Duration::from_nanos(ns));
        site.set_wait_ns(ns);
    }

    /// Also starts the watchdog (for a budget that is not "none"), so no
    /// hold pays for that.
    pub(crate) fn set_hold(&mut self, site: &LockSite, ns: u64) {
        self.hold_ticks = clock::ns_to_ticks(ns);
        site.set_hold_ns(ns);
        if ns != NONE {
            start_watchdog();
        }
    }

    /// An acquisition that found the lock taken (by `site`, in `mode`, at
    /// `at`): waits with `timed` up to the wait budget, then with `untimed`,
    /// and makes its guard. A wait that reaches its budget is a violation
    /// reported then, while the thread still waits — a lock that never
    /// comes shows too — and with the lock not held, so a violation hook may
    /// take it; the whole wait is recorded once the lock is acquired.
    #[cold]
    #[inline(never)]
    pub(crate) fn contended<G>(
        &self,
        site: &'static LockSite,
        mode: Mode,
        at: &'static Location<'static>,
        timed: impl FnOnce(Duration) -> Option<G>,
        untimed: impl FnOnce() -> G,
    ) -> Held<G> {
        if !enabled() {
            return Held::new(untimed(), None);
        }
        let start = clock::now();
        let guard = match self.wait {
            Some(budget) => timed(budget).unwrap_or_else(|| {
                let so_far = clock::now().saturating_sub(start);
                site.wait_over(mode, so_far, self.wait_ticks, at);
                untimed()
            }),
            None => untimed(),
        };
        site.waited(mode, clock::now().saturating_sub(start));
        Held::new(guard, Hold::start(site, self, at))
    }
}

/// The guard of every lock of this module: the inner lock's guard, and the
/// hold being measured (for a lock with a hold budget). Derefs to the
/// value; dropping it releases the lock, then records the hold.
///
/// ```
/// let m = overrun::sync::Mutex::new("held_doc", vec![1]).hold_budget("1s");
/// let mut g: overrun::sync::Held<_> = m.lock();
/// g.push(2);
/// assert_eq!(*g, [1, 2]);
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct Held<G> {
    // Dropped after `Drop::drop` stopped the hold, in this order: the lock
    // is released, then the hold records itself (and publishes a hold
    // violation it finds).
    inner: G,
    hold: Option<Hold>,
}

impl<G> Held<G> {
    #[inline(always)]
    pub(crate) fn new(inner: G, hold: Option<Hold>) -> Self {
        Self { inner, hold }
    }
}

impl<G: Deref> Deref for Held<G> {
    type Target = G::Target;
    #[inline(always)]
    fn deref(&self) -> &G::Target {
        &self.inner
    }
}

impl<G: DerefMut> DerefMut for Held<G> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.inner
    }
}

impl<G> Drop for Held<G> {
    /// The hold ends before the lock is released (the fields' drops, after
    /// this, release it and then record the hold).
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(hold) = &mut self.hold {
            hold.stop();
        }
    }
}

impl<G: Deref<Target: fmt::Debug>> fmt::Debug for Held<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// One hold of a lock with a hold budget: started when the guard is made,
/// stopped when the guard is dropped (before the lock is released), and
/// recorded when it is dropped itself (after).
pub(crate) struct Hold {
    site: &'static LockSite,
    start: u64,
    limit: u64,
    at: &'static Location<'static>,
    watched: Option<Watched>,
    /// When it stopped (0: not yet), and whether the watchdog had reported
    /// it by then.
    end: u64,
    reported: bool,
}

impl Hold {
    /// A hold starting now, if the lock has a hold budget (and measuring is
    /// on): no clock read otherwise.
    #[inline(always)]
    pub(crate) fn start(
        site: &'static LockSite,
        limits: &Limits,
        at: &'static Location<'static>,
    ) -> Option<Self> {
        if limits.hold_ticks == NONE || !enabled() {
            return None;
        }
        let (start, watched) = watch(site, limits.hold_ticks, at);
        Some(Self {
            site,
            start,
            limit: limits.hold_ticks,
            at,
            watched,
            end: 0,
            reported: false,
        })
    }

    /// The hold ends now: the clock is read and the watch ends, both while
    /// the lock is still held (so the watchdog cannot find it past its
    /// budget after it ended).
    #[inline]
    fn stop(&mut self) {
        if self.end == 0 {
            self.end = clock::now().max(1);
            self.reported = self.watched.take().is_some_and(Watched::release);
        }
    }
}

impl Drop for Hold {
    /// Records the hold: once the lock is released when the guard dropped
    /// it (a violation unless the watchdog reported it already).
    fn drop(&mut self) {
        self.stop();
        self.site.held(
            self.end.saturating_sub(self.start),
            self.limit,
            self.reported,
            self.at,
        );
    }
}

/// A `TokioMutex` acquisition waiting for the lock: if the future is
/// dropped while it waits (a timeout, a `select!`), its wait is still
/// checked against the wait budget.
#[cfg(feature = "tokio")]
pub(crate) struct Waiting {
    site: &'static LockSite,
    start: u64,
    limit: u64,
    at: &'static Location<'static>,
}

#[cfg(feature = "tokio")]
impl Waiting {
    pub(crate) fn new(
        site: &'static LockSite,
        limits: &Limits,
        at: &'static Location<'static>,
    ) -> Self {
        Self {
            site,
            start: clock::now(),
            limit: limits.wait_ticks,
            at,
        }
    }

    /// The lock was acquired: the wait, recorded (its budget is checked
    /// when `self` drops, with the lock held: an async lock's wait cannot be
    /// checked while it waits without a timer).
    pub(crate) fn acquired(self) {
        let waited = clock::now().saturating_sub(self.start);
        self.site.waited(Mode::Exclusive, waited);
    }
}

#[cfg(feature = "tokio")]
impl Drop for Waiting {
    /// Acquired or given up (the future dropped while it waited), a wait
    /// past its budget is a violation.
    fn drop(&mut self) {
        let waited = clock::now().saturating_sub(self.start);
        if waited > self.limit {
            self.site
                .wait_over(Mode::Exclusive, waited, self.limit, self.at);
        }
    }
}
