//! Where threads wait: locks whose waits and holds are measured, with
//! budgets on both.
//!
//! [`Mutex`] and [`RwLock`] (`parking_lot` underneath) and, with the
//! `tokio` feature, `TokioMutex` (`tokio::sync::Mutex`) each take a name
//! and keep the inner lock's API: `lock`, `try_lock`, `read`, `write`, and
//! guards that deref to the value.
//!
//! ```
//! use std::sync::LazyLock;
//!
//! static HITS: LazyLock<overrun::sync::Mutex<u64>> = LazyLock::new(|| {
//!     overrun::sync::Mutex::new("hits", 0)
//!         .wait_budget("1ms")
//!         .hold_budget("200us")
//! });
//! *HITS.lock() += 1;
//! let snap = overrun::snapshot();
//! let hits = snap.locks.iter().find(|l| l.name == "hits").unwrap();
//! assert_eq!(hits.acquisitions, 1);
//! assert_eq!(hits.budget.wait_ns, Some(1_000_000));
//! ```
//!
//! # What is recorded
//!
//! Per lock name (locks of one name share their figures): acquisitions,
//! contended acquisitions (the lock was not free: they waited), the wait of
//! every acquisition (0 for one that found the lock free) and the hold of
//! every guard of a lock with a hold budget, as histograms (p50, p99, max),
//! and violations. A read-write lock's reads and writes are also counted
//! apart. [`crate::snapshot`] has them in `locks`, the report in a "locks"
//! table, the exporters as `overrun.lock.*` metrics.
//!
//! # Budgets
//!
//! - `wait_budget`: an acquisition that waits longer is a `wait` violation
//!   ([`crate::ViolationKind::Wait`]), reported as soon as the budget
//!   passes, its event naming the lock (`name`) and the file and line of
//!   the `lock()` call.
//! - `hold_budget`: a guard held longer is a `hold` violation
//!   ([`crate::ViolationKind::Hold`]), reported while it is still held — a
//!   watchdog thread, started by the first lock given a hold budget, looks
//!   every 25 ms, so a deadlock or a forgotten guard shows within twice the
//!   budget or 100 ms, whichever is longer — and counted once; for as long
//!   as it lasts, `held_past_budget` counts it. The watchdog watches up to 8
//!   budgeted guards held at once per thread (more are checked when
//!   released), a guard leaked with `mem::forget` keeps its place for good,
//!   and if the watchdog thread cannot start (said once on stderr), holds
//!   are checked when released only. It runs for the rest of the process.
//!
//! A wait that reaches its budget is reported then, while the thread still
//! waits (a lock that never comes shows too; the whole wait is recorded
//! once it is acquired); a `TokioMutex` wait is checked once acquired, or
//! when its future is dropped. A hold violation found at release is
//! published after the lock is released. The watchdog publishes while the
//! lock is held by someone (that is its point): a violation hook must not
//! wait for the lock it is told about.
//!
//! # Cost model
//!
//! A lock found free: its `try_lock`, then one count on the thread's own
//! cell — no clock read, no atomic read-modify-write of overrun's (about
//! 2 ns over `parking_lot`'s lock and unlock, `benches/benches/locks.rs`).
//! A lock found taken: a clock read on each side of the wait. A lock with a
//! hold budget: a clock read when the guard is made and when it is dropped,
//! and the hold put under the watchdog's eye (plain stores to a slot of the
//! thread's own, one swap at release).

mod figures;
mod hold;
mod mutex;
mod named;
mod rwlock;
#[cfg(feature = "tokio")]
mod tokio;
mod watch;

pub use figures::{LockBudget, LockKind, LockMode, LockStats, LockViolations};
pub use hold::Held;
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
#[cfg(feature = "tokio")]
pub use tokio::{TokioMutex, TokioMutexGuard};

pub(crate) use figures::{LOCK_MODULE, stats};
