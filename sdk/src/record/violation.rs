//! Budget violations: counted exactly per site and kind on the calling
//! thread, and delivered as events to the hooks registered with
//! [`on_violation`] (the OTLP exporter is one).
//!
//! Everything here runs on the cold path, only for a call that broke a budget.
//! Counting never loses a violation. An event is not delivered to hooks only
//! when it is raised while a hook runs on the same thread (a hook that itself
//! breaks a budget): such events are counted in [`dropped`], and only while
//! some hook is registered, so the figure is what readers missed.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

pub use crate::vocab::kind::ViolationKind;

/// One budget violation.
///
/// ```
/// let v = overrun::Violation {
///     name: "parse", module: "app", file: "src/main.rs", line: 3,
///     kind: overrun::ViolationKind::Time, observed: 3_000_000, limit: 2_000_000,
///     thread: std::thread::current().id(), unix_nanos: 0, seq: 0, objective: None,
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
    /// For [`ViolationKind::Objective`], which objective (a quantile, or
    /// the error rate, whose `observed` and `limit` are in parts per
    /// million of the window's calls); `None` for every other kind.
    pub objective: Option<crate::vocab::budget::Objective>,
    /// A number no other violation event of the process has, increasing
    /// on each thread (0 until it is published). Threads take numbers in
    /// blocks of 256, so the numbers of two threads do not tell which came
    /// first: use `unix_nanos` for that.
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
            objective: None,
            // May allocate on a thread's first use: never charge a call.
            thread: crate::record::alloc::uncounted(|| std::thread::current().id()),
            unix_nanos: 0,
            seq: 0,
        }
    }
}

impl Violation {
    /// The unit of `observed` and `limit`: the kind's
    /// ([`ViolationKind::unit`]), or `ppm` for an error-rate objective.
    ///
    /// ```
    /// # let v = overrun::Violation {
    /// #     name: "parse", module: "app", file: "src/main.rs", line: 3,
    /// #     kind: overrun::ViolationKind::Time, observed: 3_000_000, limit: 2_000_000,
    /// #     thread: std::thread::current().id(), unix_nanos: 0, seq: 0, objective: None,
    /// # };
    /// assert_eq!(v.unit(), "ns");
    /// ```
    pub fn unit(&self) -> &'static str {
        match self.objective {
            Some(o) => o.unit(),
            None => self.kind.unit(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(objective) = self.objective {
            let show = |v| crate::vocab::units::fmt_objective(objective, v);
            return write!(
                f,
                "{} ({}:{}): {} {} over objective {}",
                self.name,
                self.file,
                self.line,
                objective.key(),
                show(self.observed),
                show(self.limit)
            );
        }
        let show = |v: u64| match self.kind.unit() {
            "ns" => crate::vocab::units::fmt_ns(v),
            "bytes" => crate::vocab::units::fmt_bytes(v),
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
pub struct HookId(pub(crate) u64);

static HOOKS: RwLock<Hooks> = RwLock::new(None);
static NEXT_HOOK: AtomicU64 = AtomicU64::new(0);
static HOOK_PANICS: AtomicU64 = AtomicU64::new(0);

/// Bumped (under the write lock) on every change of `HOOKS`: a thread
/// that has seen this generation uses its own copy of the hooks, so the
/// violation path takes no lock and writes no shared line.
static HOOKS_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The next block of sequence numbers a thread takes.
static NEXT_SEQ_BLOCK: AtomicU64 = AtomicU64::new(0);
/// Sequence numbers per block: one shared write per 256 violations.
const SEQ_BLOCK: u64 = 256;
static DROPPED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    /// This thread's copy of the hooks and the generation it was taken at.
    static CACHED_HOOKS: std::cell::RefCell<(u64, Hooks)> =
        const { std::cell::RefCell::new((0, None)) };
    /// This thread's next sequence number and the end of its block.
    static SEQ: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The next sequence number, from this thread's block.
fn next_seq() -> u64 {
    // A `const` cell without a destructor: readable even while the thread
    // is torn down.
    SEQ.with(|seq| {
        let (mut next, mut end) = seq.get();
        if next == end {
            next = NEXT_SEQ_BLOCK.fetch_add(SEQ_BLOCK, Ordering::Relaxed);
            end = next + SEQ_BLOCK;
        }
        seq.set((next + 1, end));
        next
    })
}

/// Calls `f` with the registered hooks, from this thread's copy while it is
/// current: no lock and no shared write (not even a reference count) on the
/// violation path. `f` must not publish (callers set `IN_HOOK` first).
fn with_hooks(f: impl FnOnce(&[(u64, Hook)])) {
    let generation = HOOKS_GENERATION.load(Ordering::Acquire);
    let mut f = Some(f);
    let cached = CACHED_HOOKS.try_with(|cached| {
        if cached.borrow().0 != generation {
            let fresh = HOOKS.read().clone();
            // The old copy is dropped after the lock is released: it may
            // hold the last reference to a removed hook, whose captured
            // values may add or remove hooks when they drop.
            let old = cached.replace((generation, fresh));
            drop(old);
        }
        let cached = cached.borrow();
        if let Some(f) = f.take() {
            f(cached.1.as_deref().map_or(&[], Vec::as_slice));
        }
    });
    // A thread being torn down has no copy: the shared list, once.
    if cached.is_err()
        && let Some(f) = f.take()
    {
        let hooks = HOOKS.read().clone();
        f(hooks.as_deref().map_or(&[], Vec::as_slice));
    }
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
    let id = next_hook_id().0;
    let mut hooks = HOOKS.write();
    let mut list: Vec<(u64, Hook)> = hooks.as_deref().cloned().unwrap_or_default();
    list.push((id, Arc::new(hook)));
    *hooks = Some(Arc::new(list));
    HOOKS_GENERATION.fetch_add(1, Ordering::Release);
    HookId(id)
}

/// Removes a hook; `false` if it was already gone. Once this returns, no
/// later violation calls it; a call already under way on another thread
/// finishes. The closure itself is dropped when the last thread that held
/// it lets it go (at its next violation, or when it exits), so what it
/// captures may be dropped later and on another thread.
///
/// ```
/// let id = overrun::on_violation(|_| {});
/// assert!(overrun::remove_hook(id));
/// assert!(!overrun::remove_hook(id));
/// ```
pub fn remove_hook(id: HookId) -> bool {
    if crate::record::objective::remove_recovery_hook(id) {
        return true;
    }
    let mut hooks = HOOKS.write();
    let Some(list) = hooks.as_deref() else {
        return false;
    };
    let before = list.len();
    let list: Vec<(u64, Hook)> = list.iter().filter(|(i, _)| *i != id.0).cloned().collect();
    let removed = list.len() != before;
    if removed {
        *hooks = Some(Arc::new(list));
        HOOKS_GENERATION.fetch_add(1, Ordering::Release);
    }
    removed
}

/// A hook id no other hook has (violation and recovery hooks alike).
pub(crate) fn next_hook_id() -> HookId {
    HookId(NEXT_HOOK.fetch_add(1, Ordering::Relaxed))
}

/// Counts a hook call that panicked.
pub(crate) fn count_hook_panic() {
    HOOK_PANICS.fetch_add(1, Ordering::Relaxed);
}

/// How many hook calls panicked.
///
/// ```
/// let _ = overrun::violation::hook_panics();
/// ```
pub fn hook_panics() -> u64 {
    HOOK_PANICS.load(Ordering::Relaxed)
}

/// Events that registered hooks did not receive: raised while a hook was
/// running on the same thread. Counted only while at least one hook is
/// registered.
///
/// ```
/// let id = overrun::on_violation(|_| {
///     #[overrun::measure(allocs = 0)]
///     fn inside_hook() -> Vec<u8> { Vec::with_capacity(8) }
///     inside_hook(); // breaks its budget inside a hook: not delivered
/// });
/// # #[global_allocator]
/// # static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();
/// #[overrun::measure(allocs = 0)]
/// fn outside() -> Vec<u8> { Vec::with_capacity(8) }
///
/// let before = overrun::violation::dropped();
/// outside(); // delivered; the hook's own violation is dropped
/// assert_eq!(overrun::violation::dropped(), before + 1);
/// overrun::remove_hook(id);
/// ```
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Counts nothing; publishes one violation to the hooks. The caller has
/// already counted it.
#[cold]
#[inline(never)]
pub(crate) fn publish(mut v: Violation) {
    crate::record::alloc::uncounted(|| {
        v.unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        v.seq = next_seq();
        // A violation raised by a hook's own code reaches no hook.
        if IN_HOOK.with(|h| h.replace(true)) {
            // Inside a hook, this thread's copy of the hooks is current (and
            // borrowed only for reading): no lock here either.
            let hooked = CACHED_HOOKS
                .try_with(|c| c.borrow().1.as_ref().is_some_and(|h| !h.is_empty()))
                .unwrap_or(true);
            if hooked {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        with_hooks(|hooks| {
            for (_, hook) in hooks {
                if catch_unwind(AssertUnwindSafe(|| hook(&v))).is_err() {
                    HOOK_PANICS.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        IN_HOOK.with(|h| h.set(false));
    });
}
