//! Figures per lock name: where acquisitions, waits and holds are counted,
//! and how they are read back.
//!
//! Each name owns three sites of kind [`SiteKind::Lock`] — exclusive
//! acquisitions, shared acquisitions, holds — so counting goes through the
//! same per-thread cells as a measured call: plain loads and stores on the
//! thread's own cell, no atomic read-modify-write, no shared cache line.
//! An acquisition site's `calls` counts the acquisitions that found the lock
//! free (each a wait of 0), its `errors` those that found it taken (their
//! waits in its histogram): the two only ever grow, so no figure derived
//! from them can fall between two exports.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::record::clock;
use crate::record::measure::{own_cell, record_sample};
use crate::record::site::{Site, SiteKind};
use crate::record::stats::shard::{SiteCell, bump, raise};
use crate::record::stats::{Histogram, Totals};
use crate::record::violation::{Violation, ViolationKind, publish};
use crate::vocab::budget::{Budget, NONE, limit};

/// The `module` of a lock's budget violations (`function` is the lock's
/// name); published as `overrun::export::LOCK_MODULE`.
pub(crate) const LOCK_MODULE: &str = "lock";

/// What kind of lock a name belongs to (the first lock made with it).
///
/// ```
/// let _ = overrun::sync::RwLock::new("kind_doc", ()).read();
/// let snap = overrun::snapshot();
/// let l = snap.locks.iter().find(|l| l.name == "kind_doc").unwrap();
/// assert_eq!(l.kind, overrun::sync::LockKind::RwLock);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LockKind {
    /// [`crate::sync::Mutex`].
    Mutex,
    /// [`crate::sync::RwLock`].
    RwLock,
    /// `overrun::sync::TokioMutex` (feature `tokio`).
    TokioMutex,
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Alone: a mutex, or a read-write lock for writing.
    Exclusive,
    /// Beside other readers: a read-write lock for reading.
    Shared,
}

/// The figures of every lock of one name.
pub(crate) struct LockSite {
    pub(crate) name: &'static str,
    kind: LockKind,
    exclusive: &'static Site,
    shared: &'static Site,
    hold: &'static Site,
    /// The budgets last given to a lock of this name, ns (for the report).
    wait_ns: AtomicU64,
    hold_ns: AtomicU64,
    /// Whether a lock of this name is read-write (its modes reported apart).
    rw: AtomicU8,
}

static LOCK_SITES: RwLock<Option<HashMap<&'static str, &'static LockSite>>> = RwLock::new(None);

impl LockSite {
    /// The figures of `name`, made on first use (`at`: where that lock was
    /// made).
    pub(crate) fn of(
        name: &'static str,
        kind: LockKind,
        at: &'static Location<'static>,
    ) -> &'static Self {
        if let Some(site) = LOCK_SITES.read().as_ref().and_then(|m| m.get(name)) {
            return site;
        }
        crate::record::alloc::uncounted(|| {
            let mut sites = LOCK_SITES.write();
            let site: &'static Self = sites
                .get_or_insert_with(HashMap::new)
                .entry(name)
                .or_insert_with(|| {
                    let site = |what: &'static str| -> &'static Site {
                        Box::leak(Box::new(Site::new(
                            name,
                            what,
                            at.file(),
                            at.line(),
                            SiteKind::Lock,
                            Budget::none(),
                        )))
                    };
                    Box::leak(Box::new(Self {
                        name,
                        kind,
                        exclusive: site("lock.exclusive"),
                        shared: site("lock.shared"),
                        hold: site("lock.hold"),
                        wait_ns: AtomicU64::new(NONE),
                        hold_ns: AtomicU64::new(NONE),
                        rw: AtomicU8::new(0),
                    }))
                });
            if kind == LockKind::RwLock {
                site.rw.store(1, Ordering::Relaxed);
            }
            site
        })
    }

    /// Records the wait budget a lock of this name was given (ns; `NONE`:
    /// none), for the report.
    pub(crate) fn set_wait_ns(&self, ns: u64) {
        self.wait_ns.store(ns, Ordering::Relaxed);
    }

    /// Records the hold budget a lock of this name was given.
    pub(crate) fn set_hold_ns(&self, ns: u64) {
        self.hold_ns.store(ns, Ordering::Relaxed);
    }

    fn mode_site(&self, mode: Mode) -> &'static Site {
        match mode {
            Mode::Exclusive => self.exclusive,
            Mode::Shared => self.shared,
        }
    }

    /// An acquisition that found the lock free: one count, no clock read
    /// (its wait of 0 is added to the histogram when it is read).
    #[inline(always)]
    pub(crate) fn acquired(&self, mode: Mode) {
        if let Some(cell) = own_cell(self.mode_site(mode)) {
            bump(&cell.calls, 1);
        }
    }

    /// An acquisition that found the lock taken and waited `ticks` for it
    /// (its violation, if any, was reported by `wait_over`).
    #[cold]
    #[inline(never)]
    pub(crate) fn waited(&'static self, mode: Mode, ticks: u64) {
        let Some(cell) = own_cell(self.mode_site(mode)) else {
            return;
        };
        bump(&cell.rare().errors, 1);
        bump(&cell.total, ticks);
        raise(&cell.max, ticks);
        cell.record_value(ticks);
    }

    /// A wait that passed its budget (`ticks` so far, over `limit`): a
    /// `wait` violation, counted and published now.
    #[cold]
    #[inline(never)]
    pub(crate) fn wait_over(
        &'static self,
        mode: Mode,
        ticks: u64,
        limit: u64,
        at: &'static Location<'static>,
    ) {
        if let Some(cell) = own_cell(self.mode_site(mode)) {
            self.violate(cell, ViolationKind::Wait, ticks, limit, at);
        }
    }

    /// A hold of `ticks` ended; a violation when it is over `limit` and the
    /// watchdog did not report it already (`reported`).
    #[inline]
    pub(crate) fn held(
        &'static self,
        ticks: u64,
        limit: u64,
        reported: bool,
        at: &'static Location<'static>,
    ) {
        let Some(cell) = record_sample(self.hold, ticks) else {
            return;
        };
        if ticks > limit && !reported {
            self.violate(cell, ViolationKind::Hold, ticks, limit, at);
        }
    }

    /// A hold the watchdog found past its budget while it is still held
    /// (published on the watchdog's thread, as the task watchdog's are).
    #[cold]
    pub(crate) fn held_too_long(
        &'static self,
        ticks: u64,
        limit: u64,
        at: &'static Location<'static>,
    ) {
        if let Some(cell) = own_cell(self.hold) {
            self.violate(cell, ViolationKind::Hold, ticks, limit, at);
        }
    }

    #[cold]
    #[inline(never)]
    fn violate(
        &self,
        cell: &SiteCell,
        kind: ViolationKind,
        ticks: u64,
        limit: u64,
        at: &'static Location<'static>,
    ) {
        bump(&cell.rare().violations[0], 1);
        publish(self.violation(kind, ticks, limit, at));
    }

    fn violation(
        &self,
        kind: ViolationKind,
        ticks: u64,
        limit: u64,
        at: &'static Location<'static>,
    ) -> Violation {
        Violation::here(
            (self.name, LOCK_MODULE, at.file(), at.line()),
            kind,
            clock::ticks_to_ns(ticks),
            clock::ticks_to_ns(limit),
        )
    }
}

/// The figures of the locks of one name, as [`crate::snapshot`] gives them
/// and the JSON report writes them (`locks[]`).
///
/// ```
/// let lock = overrun::sync::Mutex::new("stats_doc", 0u32);
/// *lock.lock() += 1;
/// let snap = overrun::snapshot();
/// let l = snap.locks.iter().find(|l| l.name == "stats_doc").unwrap();
/// assert_eq!((l.acquisitions, l.contended), (1, 0));
/// assert_eq!(l.wait_p99_ns, Some(0));
/// ```
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct LockStats {
    /// The lock's name.
    pub name: &'static str,
    /// Mutex, read-write lock or tokio mutex.
    pub kind: LockKind,
    /// Acquisitions, every mode (a failed `try_lock` is none).
    pub acquisitions: u64,
    /// Acquisitions that found the lock taken and waited.
    pub contended: u64,
    /// Median wait, ns, over every acquisition (one that found the lock free
    /// waited 0); `None` before the first.
    pub wait_p50_ns: Option<u64>,
    /// 99th percentile wait, ns.
    pub wait_p99_ns: Option<u64>,
    /// Longest wait, ns.
    pub max_wait_ns: Option<u64>,
    /// All waits together, ns.
    pub total_wait_ns: u64,
    /// Median hold, ns; `None` until a hold was measured (holds are
    /// measured when the lock has a hold budget).
    pub hold_p50_ns: Option<u64>,
    /// 99th percentile hold, ns.
    pub hold_p99_ns: Option<u64>,
    /// Longest hold, ns.
    pub max_hold_ns: Option<u64>,
    /// All measured holds together, ns.
    pub total_hold_ns: u64,
    /// Holds in progress now that are past the hold budget (a deadlock or a
    /// forgotten guard shows here for as long as it lasts); holds the
    /// watchdog watches, up to 8 at once per thread.
    pub held_past_budget: u64,
    /// The budgets last given to a lock of this name.
    pub budget: LockBudget,
    /// Violations by kind.
    pub violations: LockViolations,
    /// A read-write lock's acquisitions for writing (`None` for a mutex).
    pub exclusive: Option<LockMode>,
    /// A read-write lock's acquisitions for reading (`None` for a mutex).
    pub shared: Option<LockMode>,
    /// Every wait, ns (not in the JSON).
    #[serde(skip)]
    pub wait_histogram: Histogram,
    /// Every measured hold, ns (not in the JSON).
    #[serde(skip)]
    pub hold_histogram: Histogram,
}

impl LockStats {
    /// Violations by kind, as the exporters publish them: one per budget
    /// the lock declares (from 0), and any other kind that happened — the
    /// rule a function's follow.
    ///
    /// ```
    /// let l = overrun::sync::Mutex::new("counts_doc", ()).hold_budget("1s");
    /// drop(l.lock());
    /// let snap = overrun::snapshot();
    /// let s = snap.locks.iter().find(|l| l.name == "counts_doc").unwrap();
    /// let kinds: Vec<_> = s.violation_counts().collect();
    /// assert_eq!(kinds, [(overrun::ViolationKind::Hold, 0)]);
    /// ```
    pub fn violation_counts(&self) -> impl Iterator<Item = (ViolationKind, u64)> + '_ {
        let (v, b) = (&self.violations, &self.budget);
        [
            (ViolationKind::Wait, v.wait, b.wait_ns.is_some()),
            (ViolationKind::Hold, v.hold, b.hold_ns.is_some()),
        ]
        .into_iter()
        .filter(|&(_, n, declared)| declared || n > 0)
        .map(|(kind, n, _)| (kind, n))
    }
}

/// A lock's budgets, ns.
///
/// ```
/// let _ = overrun::sync::Mutex::new("budget_doc", ()).hold_budget("2ms").lock();
/// let snap = overrun::snapshot();
/// let l = snap.locks.iter().find(|l| l.name == "budget_doc").unwrap();
/// assert_eq!((l.budget.wait_ns, l.budget.hold_ns), (None, Some(2_000_000)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LockBudget {
    /// Longest wait to acquire.
    pub wait_ns: Option<u64>,
    /// Longest hold.
    pub hold_ns: Option<u64>,
}

/// A lock's violations, by kind.
///
/// ```
/// let m = overrun::sync::Mutex::new("violations_doc", ()).hold_budget("1ns");
/// let g = m.lock();
/// std::thread::sleep(std::time::Duration::from_millis(1));
/// drop(g);
/// let snap = overrun::snapshot();
/// let l = snap.locks.iter().find(|l| l.name == "violations_doc").unwrap();
/// assert_eq!((l.violations.wait, l.violations.hold), (0, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LockViolations {
    /// Waits past the wait budget: acquisitions, and `TokioMutex` waits
    /// given up (their future dropped) after the budget had passed.
    pub wait: u64,
    /// Holds past the hold budget.
    pub hold: u64,
}

/// The acquisitions of a read-write lock in one mode.
///
/// ```
/// let l = overrun::sync::RwLock::new("mode_doc", ());
/// drop((l.read(), l.read()));
/// drop(l.write());
/// let snap = overrun::snapshot();
/// let s = snap.locks.iter().find(|l| l.name == "mode_doc").unwrap();
/// assert_eq!(s.shared.as_ref().unwrap().acquisitions, 2);
/// assert_eq!(s.exclusive.as_ref().unwrap().acquisitions, 1);
/// ```
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct LockMode {
    /// Acquisitions in this mode.
    pub acquisitions: u64,
    /// Those that waited.
    pub contended: u64,
    /// Median wait, ns; `None` before the first acquisition.
    pub wait_p50_ns: Option<u64>,
    /// 99th percentile wait, ns.
    pub wait_p99_ns: Option<u64>,
    /// Longest wait, ns.
    pub max_wait_ns: Option<u64>,
    /// All waits of this mode together, ns.
    pub total_wait_ns: u64,
    /// Every wait of this mode, ns (not in the JSON).
    #[serde(skip)]
    pub wait_histogram: Histogram,
}

/// One mode's waits: the contended ones as recorded (`errors`, their waits
/// in the histogram), plus a zero for every acquisition that found the lock
/// free (`calls`).
fn waits(site: &Site, totals: &[Totals]) -> Totals {
    let t = site.registered_index().and_then(|i| totals.get(i));
    let mut t = t.cloned().unwrap_or_default();
    t.histogram.add_zeros(t.calls);
    t
}

fn mode(t: &Totals) -> LockMode {
    let acquisitions = t.calls + t.errors;
    let any = acquisitions > 0;
    let h = &t.histogram;
    LockMode {
        acquisitions,
        contended: t.errors,
        wait_p50_ns: any.then(|| h.quantile(0.5)),
        wait_p99_ns: any.then(|| h.quantile(0.99)),
        max_wait_ns: any.then(|| h.max()),
        total_wait_ns: clock::ticks_to_ns(t.total),
        wait_histogram: t.histogram.clone(),
    }
}

/// The figures of every lock name, by name, from the merged figures of
/// every site (`totals`, by site index: the snapshot's).
pub(crate) fn stats(totals: &[Totals]) -> Vec<LockStats> {
    let sites: Vec<&'static LockSite> = LOCK_SITES
        .read()
        .as_ref()
        .map(|m| m.values().copied().collect())
        .unwrap_or_default();
    if sites.is_empty() {
        return Vec::new();
    }
    let overdue = super::watch::overdue();
    let mut out: Vec<LockStats> = sites
        .into_iter()
        .map(|s| {
            let (exclusive, shared) = (
                mode(&waits(s.exclusive, totals)),
                mode(&waits(s.shared, totals)),
            );
            let hold = s
                .hold
                .registered_index()
                .and_then(|i| totals.get(i))
                .cloned()
                .unwrap_or_default();
            let mut all = exclusive.wait_histogram.clone();
            all.merge(&shared.wait_histogram);
            let any = all.count() > 0;
            let held = hold.calls > 0;
            let rw = s.rw.load(Ordering::Relaxed) != 0;
            let violations = |site: &Site| {
                site.registered_index()
                    .and_then(|i| totals.get(i))
                    .map_or(0, |t| t.violations[0])
            };
            LockStats {
                name: s.name,
                kind: s.kind,
                acquisitions: exclusive.acquisitions + shared.acquisitions,
                contended: exclusive.contended + shared.contended,
                wait_p50_ns: any.then(|| all.quantile(0.5)),
                wait_p99_ns: any.then(|| all.quantile(0.99)),
                max_wait_ns: any.then(|| all.max()),
                total_wait_ns: exclusive.total_wait_ns + shared.total_wait_ns,
                hold_p50_ns: held.then(|| hold.histogram.quantile(0.5)),
                hold_p99_ns: held.then(|| hold.histogram.quantile(0.99)),
                max_hold_ns: held.then(|| hold.histogram.max()),
                total_hold_ns: clock::ticks_to_ns(hold.total),
                held_past_budget: overdue.iter().filter(|&&p| std::ptr::eq(p, s)).count() as u64,
                budget: LockBudget {
                    wait_ns: limit(s.wait_ns.load(Ordering::Relaxed)),
                    hold_ns: limit(s.hold_ns.load(Ordering::Relaxed)),
                },
                violations: LockViolations {
                    wait: violations(s.exclusive) + violations(s.shared),
                    hold: violations(s.hold),
                },
                exclusive: rw.then_some(exclusive),
                shared: rw.then_some(shared),
                wait_histogram: all,
                hold_histogram: hold.histogram,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(b.name));
    out
}
