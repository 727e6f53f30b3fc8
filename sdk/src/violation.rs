//! Budget violations: counted exactly per site and kind on the calling
//! thread; reported as events to hooks and to a bounded ring that exporters
//! read.
//!
//! Everything here runs on the cold path, only for a call that broke a budget.
//! Counting never loses a violation; events can be lost only to the ring's
//! bound (the oldest is evicted) or when another thread holds the ring at
//! that instant (the event is dropped rather than making a hot thread wait).
//! Both are counted in [`dropped`].

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

/// What budget was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A call took longer than its `budget`.
    Time,
    /// A call made more heap allocations than `allocs`.
    Allocs,
    /// A call allocated more heap bytes than `bytes`.
    Bytes,
    /// A single poll of an `async fn` took longer than `poll`.
    Poll,
    /// A task lived longer than its `lifetime` budget.
    Lifetime,
    /// The process' peak resident memory exceeded `memory`.
    Memory,
    /// A service-level objective (such as a p99) was missed.
    Objective,
}

impl ViolationKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ViolationKind; 7] = [
        Self::Time,
        Self::Allocs,
        Self::Bytes,
        Self::Poll,
        Self::Lifetime,
        Self::Memory,
        Self::Objective,
    ];

    /// The label value used in reports and metrics.
    ///
    /// ```
    /// assert_eq!(overrun::ViolationKind::Poll.as_str(), "poll");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Allocs => "allocs",
            Self::Bytes => "bytes",
            Self::Poll => "poll",
            Self::Lifetime => "lifetime",
            Self::Memory => "memory",
            Self::Objective => "objective",
        }
    }

    /// The unit of `observed` and `limit`: `"ns"`, `"allocs"` or `"bytes"`.
    ///
    /// ```
    /// assert_eq!(overrun::ViolationKind::Memory.unit(), "bytes");
    /// ```
    pub const fn unit(self) -> &'static str {
        match self {
            Self::Time | Self::Poll | Self::Lifetime | Self::Objective => "ns",
            Self::Allocs => "allocs",
            Self::Bytes | Self::Memory => "bytes",
        }
    }

    /// Index of the per-site counter (time, allocs, bytes, poll).
    pub(crate) const fn site_slot(self) -> Option<usize> {
        match self {
            Self::Time => Some(0),
            Self::Allocs => Some(1),
            Self::Bytes => Some(2),
            Self::Poll => Some(3),
            _ => None,
        }
    }
}

impl std::fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One budget violation.
///
/// ```
/// let v = overrun::Violation {
///     name: "parse", module: "app", file: "src/main.rs", line: 3,
///     kind: overrun::ViolationKind::Time, observed: 3_000_000, limit: 2_000_000,
///     thread: std::thread::current().id(), unix_nanos: 0, seq: 0,
/// };
/// assert_eq!(v.to_string(), "parse (src/main.rs:3): time 3.00ms over budget 2.00ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// The function (or task, or `main`) that broke its budget.
    pub name: &'static str,
    /// Its module path.
    pub module: &'static str,
    /// Its source file.
    pub file: &'static str,
    /// Its source line.
    pub line: u32,
    /// Which budget.
    pub kind: ViolationKind,
    /// What was measured, in [`ViolationKind::unit`]s.
    pub observed: u64,
    /// The budget, in the same unit.
    pub limit: u64,
    /// The thread the call ran on (for `async fn`, the one that completed it).
    pub thread: ThreadId,
    /// When it was detected, nanoseconds since the Unix epoch.
    pub unix_nanos: u64,
    /// Position in the process' sequence of violation events, from 0.
    pub seq: u64,
}

impl Violation {
    /// An event detected now on this thread (`unix_nanos` and `seq` are set
    /// when it is published).
    pub(crate) fn here(
        (name, module, file, line): (&'static str, &'static str, &'static str, u32),
        kind: ViolationKind,
        observed: u64,
        limit: u64,
    ) -> Self {
        Self {
            name,
            module,
            file,
            line,
            kind,
            observed,
            limit,
            // May allocate on a thread's first use: never charge a call.
            thread: crate::alloc::uncounted(|| std::thread::current().id()),
            unix_nanos: 0,
            seq: 0,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: u64| match self.kind.unit() {
            "ns" => crate::report::fmt_ns(v),
            "bytes" => crate::report::fmt_bytes(v),
            _ => v.to_string(),
        };
        write!(
            f,
            "{} ({}:{}): {} {} over budget {}",
            self.name,
            self.file,
            self.line,
            self.kind,
            show(self.observed),
            show(self.limit)
        )
    }
}

type Hook = Arc<dyn Fn(&Violation) + Send + Sync>;
/// The registered hooks, replaced whole on change so a caller can clone the
/// `Arc` and call them without holding the lock.
type Hooks = Option<Arc<Vec<(u64, Hook)>>>;

/// Identifies a hook registered with [`on_violation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId(u64);

static HOOKS: RwLock<Hooks> = RwLock::new(None);
static NEXT_HOOK: AtomicU64 = AtomicU64::new(0);
static HOOK_PANICS: AtomicU64 = AtomicU64::new(0);

/// Capacity of the ring of recent events.
pub const RING_CAPACITY: usize = 1024;

struct Ring {
    events: VecDeque<Violation>,
    next_seq: u64,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    events: VecDeque::new(),
    next_seq: 0,
});
static DROPPED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Calls `hook` for every violation, on the thread that detected it, right
/// after the offending call returns. Keep it short: it runs on your thread.
///
/// A hook that panics is caught (the panic is counted in
/// [`hook_panics`]) and the program goes on; violations raised while a hook
/// runs are counted but do not call hooks again.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// static SEEN: AtomicU64 = AtomicU64::new(0);
///
/// let id = overrun::on_violation(|v| {
///     if v.name == "slow_doc_fn" {
///         SEEN.fetch_add(1, Ordering::Relaxed);
///     }
/// });
///
/// #[overrun::measure(budget = "1us")]
/// fn slow_doc_fn() { std::thread::sleep(std::time::Duration::from_millis(1)) }
///
/// slow_doc_fn();
/// assert_eq!(SEEN.load(Ordering::Relaxed), 1);
/// assert!(overrun::remove_hook(id));
/// ```
pub fn on_violation(hook: impl Fn(&Violation) + Send + Sync + 'static) -> HookId {
    let id = NEXT_HOOK.fetch_add(1, Ordering::Relaxed);
    let mut hooks = HOOKS.write();
    let mut list: Vec<(u64, Hook)> = hooks.as_deref().cloned().unwrap_or_default();
    list.push((id, Arc::new(hook)));
    *hooks = Some(Arc::new(list));
    HookId(id)
}

/// Removes a hook; `false` if it was already gone.
///
/// ```
/// let id = overrun::on_violation(|_| {});
/// assert!(overrun::remove_hook(id));
/// assert!(!overrun::remove_hook(id));
/// ```
pub fn remove_hook(id: HookId) -> bool {
    let mut hooks = HOOKS.write();
    let Some(list) = hooks.as_deref() else {
        return false;
    };
    let before = list.len();
    let list: Vec<(u64, Hook)> = list.iter().filter(|(i, _)| *i != id.0).cloned().collect();
    let removed = list.len() != before;
    *hooks = Some(Arc::new(list));
    removed
}

/// How many hook calls panicked.
///
/// ```
/// let _ = overrun::violation::hook_panics();
/// ```
pub fn hook_panics() -> u64 {
    HOOK_PANICS.load(Ordering::Relaxed)
}

/// Events lost before any reader could see them: evicted from the full ring,
/// or dropped because the ring was busy at that instant.
///
/// ```
/// let _ = overrun::violation::dropped();
/// ```
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// What [`recent`] returns.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    /// Events with `seq >= from`, oldest first.
    pub events: Vec<Violation>,
    /// The `from` to pass next time.
    pub next: u64,
    /// Events after `from` that are no longer in the ring.
    pub missed: u64,
}

/// The events still in the ring with `seq >= from`. Each reader (an exporter)
/// keeps its own cursor, so several readers see every event.
///
/// ```
/// let first = overrun::violation::recent(0);
/// let again = overrun::violation::recent(first.next);
/// assert!(again.events.iter().all(|v| v.seq >= first.next));
/// ```
pub fn recent(from: u64) -> Recent {
    let ring = RING.lock();
    let oldest = ring.next_seq - ring.events.len() as u64;
    let start = from.max(oldest);
    let events = ring
        .events
        .iter()
        .skip((start - oldest) as usize)
        .copied()
        .collect();
    Recent {
        events,
        next: ring.next_seq,
        missed: start - from.min(start),
    }
}

/// Counts nothing; publishes one violation to the ring and the hooks. The
/// caller has already counted it.
#[cold]
#[inline(never)]
pub(crate) fn publish(mut v: Violation) {
    crate::alloc::uncounted(|| {
        v.unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        match RING.try_lock() {
            Some(mut ring) => {
                if ring.events.capacity() == 0 {
                    ring.events.reserve_exact(RING_CAPACITY);
                }
                v.seq = ring.next_seq;
                ring.next_seq += 1;
                if ring.events.len() == RING_CAPACITY {
                    ring.events.pop_front();
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
                ring.events.push_back(v);
            }
            None => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                v.seq = u64::MAX;
            }
        }
        if IN_HOOK.with(|h| h.replace(true)) {
            return;
        }
        let hooks = HOOKS.read().clone();
        if let Some(hooks) = hooks {
            for (_, hook) in hooks.iter() {
                if catch_unwind(AssertUnwindSafe(|| hook(&v))).is_err() {
                    HOOK_PANICS.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        IN_HOOK.with(|h| h.set(false));
    });
}
