//! Sites: one `static` per instrumented place.
//!
//! `#[measure]` declares a `static Site` inside the function it instruments.
//! On its first call the site registers (cold, once, under a lock) and gets a
//! dense id; every later call reads that id with one load and indexes the
//! calling thread's shard with it. The budget is also converted to clock ticks
//! at registration, so the per-call check is a plain integer comparison.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::record::clock;
use crate::record::stats::shard::MAX_SITES;
use crate::vocab::budget::{Budget, NONE};

/// What a site instruments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// A synchronous function.
    Sync,
    /// An `async fn`: latency is first poll → completion.
    Async,
    /// The whole run, from `#[overrun::main]`.
    Main,
    /// The polls of tracked tasks of one name (see [`crate::tasks`]); not
    /// listed among the functions of a snapshot.
    TaskPoll,
}

/// One instrumented place: its static metadata, its budget and its id.
///
/// Sites are created by the macros; user code reads them through
/// [`Violation`](crate::Violation) and [`crate::snapshot`].
///
/// ```
/// #[overrun::measure(budget = "1s")]
/// fn work() {}
/// work();
/// let snap = overrun::snapshot();
/// let site = snap.site("work").unwrap();
/// assert_eq!(site.budget.time_ns, Some(1_000_000_000));
/// ```
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    module: &'static str,
    file: &'static str,
    line: u32,
    kind: SiteKind,
    budget: Budget,
    /// `0` until registered, then `index + 1`; `u32::MAX` when the site could
    /// not be registered (too many sites).
    pub(crate) id: AtomicU32,
    /// The budget in clock ticks (time, poll) and counts (allocs, bytes): read
    /// with `Relaxed` on every call, written at registration before the id is
    /// published with `Release`.
    pub(crate) time_ticks: AtomicU64,
    pub(crate) poll_ticks: AtomicU64,
    pub(crate) allocs: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// Id marking a site that could not be registered.
pub(crate) const REJECTED: u32 = u32::MAX;

static SITES: RwLock<Vec<&'static Site>> = RwLock::new(Vec::new());

impl Site {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        module: &'static str,
        file: &'static str,
        line: u32,
        kind: SiteKind,
        budget: Budget,
    ) -> Self {
        Self {
            name,
            module,
            file,
            line,
            kind,
            budget,
            id: AtomicU32::new(0),
            time_ticks: AtomicU64::new(NONE),
            poll_ticks: AtomicU64::new(NONE),
            allocs: AtomicU64::new(NONE),
            bytes: AtomicU64::new(NONE),
        }
    }

    /// The name: the function's name, or `name = "…"` from the attribute.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The module path of the function.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// The source file of the function.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The line of the function's attribute.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// What kind of place this is.
    pub fn kind(&self) -> SiteKind {
        self.kind
    }

    /// The budget declared in the source.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The site's index, registering it on first use; `None` if the process
    /// already has the maximum number of sites.
    #[inline(always)]
    pub(crate) fn index(&'static self) -> Option<usize> {
        // Acquire pairs with the Release in `register`, so the tick budgets
        // written before the id are visible once the id is (a plain load on
        // x86_64).
        let id = self.id.load(Ordering::Acquire);
        if id.wrapping_sub(1) < MAX_SITES as u32 {
            Some((id - 1) as usize)
        } else {
            self.register()
        }
    }

    /// The site's index if it has registered (never registers).
    pub(crate) fn registered_index(&self) -> Option<usize> {
        let id = self.id.load(Ordering::Acquire);
        (id.wrapping_sub(1) < MAX_SITES as u32).then(|| (id - 1) as usize)
    }

    #[cold]
    #[inline(never)]
    fn register(&'static self) -> Option<usize> {
        crate::record::alloc::uncounted(|| {
            let mut sites = SITES.write();
            match self.id.load(Ordering::Acquire) {
                0 => {}
                REJECTED => return None,
                id => return Some((id - 1) as usize),
            }
            if sites.len() >= MAX_SITES {
                self.id.store(REJECTED, Ordering::Release);
                drop(sites);
                eprintln!(
                    "overrun: more than {MAX_SITES} instrumented sites; `{}` ({}:{}) is not measured",
                    self.name, self.file, self.line
                );
                return None;
            }
            clock::ensure_calibrated();
            let index = sites.len();
            sites.push(self);
            self.apply_budget(&self.budget);
            self.id.store(index as u32 + 1, Ordering::Release);
            Some(index)
        })
    }

    /// Stores `budget` as the limits checked on every call.
    pub(crate) fn apply_budget(&self, budget: &Budget) {
        self.time_ticks
            .store(clock::ns_to_ticks(budget.time_ns), Ordering::Relaxed);
        self.poll_ticks
            .store(clock::ns_to_ticks(budget.poll_ns), Ordering::Relaxed);
        self.allocs.store(budget.allocs, Ordering::Relaxed);
        self.bytes.store(budget.bytes, Ordering::Relaxed);
    }
}

/// Every registered site, in id order.
pub(crate) fn all() -> Vec<&'static Site> {
    SITES.read().clone()
}
