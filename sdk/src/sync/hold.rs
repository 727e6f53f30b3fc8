//! What every lock type shares: its budgets, the measured wait of a
//! contended acquisition, and the measured hold of a guard.

use std::mem::ManuallyDrop;
use std::panic::Location;

use super::figures::LockSite;
use super::watch::{Watched, watch};
use crate::record::clock;
use crate::record::measure::enabled;
use crate::vocab::budget::NONE;

/// A lock's budgets, in ns (as given) and in clock ticks (as checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    wait_ns: u64,
    hold_ns: u64,
    wait_ticks: u64,
    hold_ticks: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wait_ns: NONE,
            hold_ns: NONE,
            wait_ticks: NONE,
            hold_ticks: NONE,
        }
    }
}

impl Limits {
    pub(crate) fn set_wait(&mut self, site: &LockSite, ns: u64) {
        self.wait_ns = ns;
        self.wait_ticks = clock::ns_to_ticks(ns);
        site.set_budgets(self.wait_ns, self.hold_ns);
    }

    pub(crate) fn set_hold(&mut self, site: &LockSite, ns: u64) {
        self.hold_ns = ns;
        self.hold_ticks = clock::ns_to_ticks(ns);
        site.set_budgets(self.wait_ns, self.hold_ns);
    }

    pub(crate) fn wait_ticks(&self) -> u64 {
        self.wait_ticks
    }

    /// Runs `acquire` (an acquisition that found the lock taken) and
    /// measures how long it waited, in ticks.
    #[inline]
    pub(crate) fn wait<G>(&self, acquire: impl FnOnce() -> G) -> (G, u64) {
        let start = clock::now();
        let guard = acquire();
        (guard, clock::now().saturating_sub(start))
    }

    /// Waits for `acquire` (a future that found the lock taken), measuring
    /// the wait in ticks.
    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_async<G>(&self, acquire: impl Future<Output = G>) -> (G, u64) {
        let start = clock::now();
        let guard = acquire.await;
        (guard, clock::now().saturating_sub(start))
    }
}

/// One hold of a lock with a hold budget: started when the guard is made,
/// ended when it is dropped.
pub(crate) struct Hold {
    site: &'static LockSite,
    start: u64,
    limit: u64,
    at: &'static Location<'static>,
    watched: Option<Watched>,
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
        let start = clock::now();
        Some(Self {
            site,
            start,
            limit: limits.hold_ticks,
            at,
            watched: watch(site, start, limits.hold_ticks, at),
        })
    }

    /// The hold ended at `end` (the clock read before the lock was
    /// released): recorded, and a violation unless the watchdog reported
    /// it already.
    pub(crate) fn end(self, end: u64) {
        let reported = self.watched.is_some_and(Watched::release);
        self.site.held(
            end.saturating_sub(self.start),
            self.limit,
            reported,
            self.at,
        );
    }
}

/// Reads the clock for `hold`, releases the lock (drops `inner`), then
/// records the hold: the lock is not held while a violation is published.
///
/// # Safety
///
/// Called once, from the drop of the guard that owns `inner`, which is not
/// used afterwards.
#[inline(always)]
pub(crate) unsafe fn release<G>(hold: &mut Option<Hold>, inner: &mut ManuallyDrop<G>) {
    let end = hold.as_ref().map(|_| clock::now());
    // SAFETY: the caller's promise: `inner` is dropped once, here.
    unsafe { ManuallyDrop::drop(inner) };
    if let (Some(hold), Some(end)) = (hold.take(), end) {
        hold.end(end);
    }
}
