//! Async task lifetimes: spawn → first poll → completion, poll durations,
//! and tasks that never finish.
//!
//! [`track`] wraps any future (any executor); with the `tokio` feature,
//! `overrun::spawn`, `overrun::spawn_named` and
//! `overrun::spawn_blocking_named` are drop-in replacements for tokio's.
//!
//! ```
//! use std::time::Duration;
//!
//! let fut = overrun::track("upload", async { 40 + 2 })
//!     .poll_budget("1ms")
//!     .lifetime("30s");
//! assert_eq!(overrun::tasks::block_on(fut), 42);
//! let stats = overrun::tasks::stats();
//! let upload = stats.iter().find(|s| s.name == "upload").unwrap();
//! assert_eq!((upload.spawned, upload.completed, upload.live), (1, 1, 0));
//! ```
//!
//! # What is recorded
//!
//! Per task name: spawned, completed, cancelled (dropped before completion,
//! e.g. `JoinHandle::abort`), panicked, live, leaked, polls, busy time (the
//! sum of polls), idle time (lifetime minus busy), scheduled-to-first-poll
//! delay, longest poll, and a histogram of lifetimes. Per live task
//! ([`live`]): name, spawn location, age, polls, busy time, state.
//!
//! # Budgets
//!
//! - `poll_budget`: a single poll longer than this blocked the executor; it
//!   is a `poll` violation naming the task and where it was spawned.
//! - `lifetime`: a task still alive after this long is a suspected leak: it
//!   is counted once as `leaked` (a `lifetime` violation) and flagged in
//!   [`live`]. A watchdog thread, started with the first task that has a
//!   lifetime budget, checks every 10 ms.
//!
//! A task's violations are published within the context it was spawned in,
//! when a [`SpawnContext`] capture is set (the OpenTelemetry exporter sets
//! one: the event carries the trace the task was spawned in).
//!
//! # Cost model
//!
//! Per task: one small allocation (the task's entry, freed when it ends,
//! however it ends; a second when an [`on_spawn`] capture returns a
//! context — the OTLP exporter's does for a task spawned inside a span), and two short locks of one of 16 registry shards
//! chosen per thread (one at spawn, one at the end), so threads spawning at
//! once rarely meet; a shard's slot table
//! follows its peak number of live tasks and is released when it empties. Per poll: two clock
//! reads and plain stores to the task's own entry — no lock, no atomic
//! read-modify-write. Aggregates per name are updated once, when the task
//! ends.

mod builder;
mod context;
mod executor;
mod read;
mod registry;
#[cfg(feature = "tokio")]
mod spawn;
mod tracked;
mod watchdog;

pub use builder::{TaskBuilder, task};
pub use context::{SpawnContext, on_spawn};
pub use executor::block_on;
pub use read::{LiveTask, TaskStats, live, stats};
pub use registry::{TaskState, registry_bytes};
#[cfg(feature = "tokio")]
pub use spawn::{spawn, spawn_blocking, spawn_blocking_named, spawn_named};
pub use tracked::{Tracked, track};

pub(crate) use registry::{POLICY, apply_policy};
