//! # overrun
//!
//! Performance budgets written next to the code they guard. `#[measure]`
//! times a function (sync or `async`), counts the heap allocations and bytes
//! it makes, and checks every call against its budget for a few nanoseconds;
//! `#[overrun::main]` does the same for a whole CLI run and prints a report at
//! exit.
//!
//! # Quick start
//!
//! ```
//! #[global_allocator]
//! static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();
//!
//! #[overrun::measure(budget = "2ms", allocs = 8)]
//! fn parse(line: &str) -> Result<Vec<u32>, std::num::ParseIntError> {
//!     line.split(',').map(str::parse).collect()
//! }
//!
//! assert!(parse("1,2,3").is_ok());
//! assert!(parse("1,x").is_err());
//!
//! let snap = overrun::snapshot();
//! let site = snap.site("parse").unwrap();
//! assert_eq!((site.calls, site.errors), (2, 1));
//! assert_eq!(site.allocs, Some(2)); // one Vec per call
//! ```
//!
//! In a binary, put `#[overrun::main(budget = "3s", memory = "100MiB")]` on
//! `main` to get the report table on stderr at exit (or JSON, see
//! [`report()`]).
//!
//! # Budgets
//!
//! | attribute | checked |
//! | --- | --- |
//! | `#[measure]` | nothing: time, allocations and errors are recorded |
//! | `#[measure(budget = "100ms")]` | each call's wall time (`async fn`: first poll → completion) |
//! | `#[measure(allocs = 10, bytes = "64KiB")]` | heap allocations / bytes per call, callees included |
//! | `#[measure(poll = "1ms")]` | each single poll of an `async fn` |
//! | `#[measure(p99 = "50ms", window = "5m")]` | the window's p99 (also `p50`, `p90`, `p95`, `p999`), off the call path ([`objective`]) |
//! | `#[measure(error_rate = "1%")]` | the window's share of calls that failed ([`objective`]) |
//! | `#[measure(name = "db.load")]` | (the name in reports; default: the function's) |
//! | `#[main(budget = "3s", memory = "100MiB")]` | the whole run's wall time and peak RSS |
//!
//! Durations: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, decimals allowed
//! (`"1.5ms"`); sizes: `B`, `kB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`. A literal
//! that does not parse is a compile error on the literal. Every call over a
//! budget is counted by kind and passed to [`on_violation`] hooks.
//!
//! # Budgets as tests
//!
//! [`testing::check`] asserts a closure's percentiles and allocations per
//! call; [`testing::capture`] gives the exact per-site figures of what ran on
//! the current thread. [`baseline`] and the `overrun diff` command compare
//! two JSON reports in CI.
//!
//! # Feature flags
//!
//! - `enabled` (default): instrumentation on. Without it the macros check
//!   their arguments and emit the function unchanged — zero cost, same
//!   machine code. Libraries should depend on `overrun` with
//!   `default-features = false` and let the application decide.
//! - `tokio`: [`spawn`], [`spawn_named`], [`spawn_blocking_named`] — tokio's
//!   spawn functions with task tracking ([`tasks`]). [`track`] works on any
//!   executor without it.
//! - `cli`: the `overrun` command (`overrun diff base.json head.json`,
//!   `overrun check overrun.toml`).
//! - `tracing`: `overrun::tracing::layer()`, budgets on `tracing` spans.
//!
//! At run time, `OVERRUN=off` (or [`set_enabled`]) turns measuring off: each
//! call then costs one relaxed atomic load.
//!
//! # Cost model
//!
//! Per measured call: two clock reads (TSC where invariant), two reads of
//! the thread's allocation counters, and plain loads and stores to a
//! per-thread, per-site cell — no lock, no atomic read-modify-write, no
//! syscall, no allocation after a site's first call on a thread, and no cache
//! line written by two threads. One branch compares the call with its
//! budget; only a violation takes the slow path. The `benches/` crate
//! measures this against `Instant`, `tracing`, `fastrace` and `metrics`.
//!
//! # In libraries and in applications
//!
//! Libraries annotate their hot paths and depend on `overrun` without default
//! features; applications enable `enabled`, install [`CountingAlloc`] if they
//! want allocation figures, and choose exporters.

#![warn(missing_docs)]

// The crate in layers; each uses only the layers above it in this list (a
// test, `tests/layers.rs`, fails on any cycle among them):
//
// vocab   units, `Budget`, `ViolationKind`: the words every layer speaks
// record  the hot path: clock, alloc counters, shards, sites, `#[measure]`
// sync    locks whose waits and holds are measured, into the same shards
// tasks   async task lifetimes, recorded into the same sites and shards
// run     the whole run: start, resource usage, the run's budget
// config  policy files: budgets set per environment, reloaded live (the
//         layers above reach it through hooks they own)
// tracing `tracing` spans as sites (feature `tracing`)
// read    the snapshot model, the export schema, the report and `#[main]`
// tools   budgets as tests, baselines and `overrun diff`
pub mod config;
#[cfg(feature = "load")]
pub mod load;
mod read;
mod record;
pub mod run;
pub mod sync;
pub mod tasks;
mod tools;
#[cfg(feature = "tracing")]
pub mod tracing;
mod vocab;

pub use read::{export, report};
pub use record::{alloc, clock, exemplar, objective, stats, violation};
pub use tools::{baseline, testing};
pub use vocab::{budget, units};

pub use read::report::{Snapshot, report};
pub use read::snapshot::snapshot;
pub use record::alloc::CountingAlloc;
pub use record::measure::{enabled, set_enabled};
pub use record::objective::{Recovery, on_recovery};
pub use record::site::{Site, SiteKind};
pub use record::violation::{HookId, Violation, on_violation, remove_hook};
#[cfg(feature = "tokio")]
pub use tasks::{spawn, spawn_blocking, spawn_blocking_named, spawn_named};
pub use tasks::{task, track};
pub use vocab::budget::Budget;
pub use vocab::kind::ViolationKind;

/// Measures a function: time, allocations, errors, budget violations.
///
/// ```
/// #[overrun::measure(budget = "10ms", allocs = 2)]
/// fn double(v: &[u32]) -> Vec<u32> {
///     v.iter().map(|x| x * 2).collect()
/// }
/// assert_eq!(double(&[1, 2]), vec![2, 4]);
/// ```
///
/// Works on free functions, methods (`self`, `&self`, `&mut self`), generic
/// functions, `impl Trait` arguments and returns, returns that coerce to the
/// declared type, `-> !`, recursion and `async fn` (also in traits). A
/// `Result::Err` return or a panic counts as an error; the panic still
/// propagates. See the crate docs for the keys.
///
/// On an `impl` block it measures every method (a method's own attribute
/// wins); methods are reported with their type:
///
/// ```
/// struct Cart(Vec<u32>);
///
/// #[overrun::measure(budget = "10ms")]
/// impl Cart {
///     fn total(&self) -> u32 {
///         self.0.iter().sum()
///     }
/// }
///
/// assert_eq!(Cart(vec![1, 2]).total(), 3);
/// let snap = overrun::snapshot();
/// assert_eq!(snap.site("Cart::total").unwrap().calls, 1);
/// ```
pub use overrun_macros::measure;

/// Measures a whole program run and prints the report when `main` returns.
///
/// ```no_run
/// #[overrun::main(budget = "3s", memory = "100MiB")]
/// fn main() {
///     // ...
/// }
/// ```
///
/// Works with `#[tokio::main]` too (either order). The report comes however
/// the run ends — `main` returning, a panic (also with `panic = "abort"`),
/// and on Unix `std::process::exit` from any thread, SIGINT, SIGTERM — and the exit
/// status is unchanged (a signal still ends the process as that signal).
/// A program with its own SIGINT/SIGTERM handler keeps it; its report then
/// comes when `main` returns.
///
/// `config = "overrun.toml"` applies that policy file (a path relative to
/// the working directory) and watches it for the whole run, as
/// [`config::watch`] does; a file that is missing or invalid is reported
/// and the code's budgets stay (see [`config`]). `OVERRUN_CONFIG`, when
/// set, wins: the deployment's file over the one the code names.
///
/// ```no_run
/// #[overrun::main(budget = "3s", config = "overrun.toml")]
/// fn main() {
///     // ...
/// }
/// ```
pub use overrun_macros::main;

/// A duration literal, checked at compile time (the attributes' syntax):
/// a `Duration`, so a run-time budget given with it can never panic.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(overrun::duration!("1.5ms"), Duration::from_micros(1_500));
/// let fut = overrun::track("job", async {}).poll_budget(overrun::duration!("5ms"));
/// overrun::tasks::block_on(fut);
/// ```
///
/// ```compile_fail
/// let _ = overrun::duration!("5 parsecs"); // error: invalid duration: unknown duration unit
/// ```
pub use overrun_macros::duration;

/// A size literal in bytes, checked at compile time (the attributes'
/// syntax).
///
/// ```
/// assert_eq!(overrun::size!("64KiB"), 65_536);
/// ```
pub use overrun_macros::size;

/// Macro plumbing. Not public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    /// `#[overrun::main(config = "…")]`'s policy file, watched for the run.
    pub fn watch_config(path: &str) -> crate::config::ConfigWatch {
        crate::config::main_config(path)
    }
    pub use crate::read::report::Run;
    pub use crate::record::measure::is_err::{NotResult, ResultErr};
    pub use crate::record::measure::{Guard, Instrumented, mark_async_error};
    pub use crate::record::objective::Ticker as ObjectiveTicker;
    #[cfg(overrun_linker_list)]
    pub use crate::record::site::SITES;
    pub use crate::record::site::{Site, SiteKind};
    pub use crate::vocab::budget::{Budget, Quantile};
    pub use core::any::type_name_of_val;
    pub use core::{file, line, module_path};
    pub use linkme;

    /// Registers `site` now, as its first call would (the `threads` bench
    /// measures each thread's memory apart from this one-time cost).
    pub fn register(site: &'static Site) -> bool {
        site.index().is_some()
    }

    /// A token moved into a measured body so its closure is `FnOnce`.
    pub struct Once;

    impl Once {
        /// Takes the token by value.
        #[inline(always)]
        pub fn consume(self) {}
    }
}
