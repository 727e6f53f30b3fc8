//! The read API of tasks: live tasks and figures per name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::registry::{RUNNING, SCHEDULED, TASK_SITES, TaskSite, TaskState, for_each_live};
use super::watchdog::check_lifetimes;
use crate::record::clock;
use crate::record::stats::Histogram;

/// One live task, as [`live`] lists it.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct LiveTask {
    /// The task's name.
    pub name: &'static str,
    /// Where it was spawned: file.
    pub file: &'static str,
    /// Line.
    pub line: u32,
    /// Column.
    pub column: u32,
    /// Time since spawn.
    #[serde(rename = "age_ns", serialize_with = "as_nanos")]
    pub age: Duration,
    /// Polls so far.
    pub polls: u64,
    /// Time spent in polls.
    #[serde(rename = "busy_ns", serialize_with = "as_nanos")]
    pub busy: Duration,
    /// Scheduled, running or idle.
    pub state: TaskState,
    /// Older than its lifetime budget.
    pub leaked: bool,
}

fn as_nanos<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_nanos() as u64)
}

/// Every live task, oldest first.
///
/// ```
/// let pending = overrun::track("listed", std::future::pending::<()>());
/// let live = overrun::tasks::live();
/// let me = live.iter().find(|t| t.name == "listed").unwrap();
/// assert_eq!(me.state, overrun::tasks::TaskState::Scheduled);
/// assert!(me.file.ends_with(".rs"));
/// drop(pending); // cancelled
/// assert!(overrun::tasks::live().iter().all(|t| t.name != "listed"));
/// ```
pub fn live() -> Vec<LiveTask> {
    check_lifetimes();
    let now = clock::now();
    let mut out = Vec::new();
    for_each_live(|e| {
        out.push(LiveTask {
            name: e.site.name,
            file: e.location.file(),
            line: e.location.line(),
            column: e.location.column(),
            age: Duration::from_nanos(clock::ticks_to_ns(now.saturating_sub(e.spawned_at))),
            polls: e.polls.load(Ordering::Relaxed),
            busy: Duration::from_nanos(clock::ticks_to_ns(e.busy.load(Ordering::Relaxed))),
            state: match e.state.load(Ordering::Relaxed) {
                SCHEDULED => TaskState::Scheduled,
                RUNNING => TaskState::Running,
                _ => TaskState::Idle,
            },
            leaked: e.leaked.load(Ordering::Relaxed),
        });
    });
    out.sort_by_key(|t| std::cmp::Reverse(t.age));
    out
}

/// Figures of all tasks of one name.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct TaskStats {
    /// The name.
    pub name: &'static str,
    /// Tasks created.
    pub spawned: u64,
    /// Ran to completion.
    pub completed: u64,
    /// Dropped before completion.
    pub cancelled: u64,
    /// Ended by a panic in a poll.
    pub panicked: u64,
    /// Alive now.
    pub live: u64,
    /// Outlived their lifetime budget (live or not).
    pub leaked: u64,
    /// Polls over the poll budget.
    pub poll_violations: u64,
    /// Polls, live tasks included.
    pub polls: u64,
    /// Time in polls, ns, live tasks included.
    pub busy_ns: u64,
    /// Ended tasks' lifetime minus busy time, ns; `None` until a task ends.
    pub idle_ns: Option<u64>,
    /// Longest single poll, ns; `None` before the first poll.
    pub max_poll_ns: Option<u64>,
    /// Mean spawn → first poll delay of ended tasks, ns; `None` until a
    /// task that was polled ends.
    pub first_poll_delay_ns: Option<u64>,
    /// Median lifetime of ended tasks, ns; `None` until a task ends.
    pub lifetime_p50_ns: Option<u64>,
    /// 99th percentile lifetime, ns; `None` until a task ends.
    pub lifetime_p99_ns: Option<u64>,
    /// Longest lifetime of an ended task, ns; `None` until a task ends.
    pub lifetime_max_ns: Option<u64>,
    /// Median poll duration, ns; `None` before the first poll.
    pub poll_p50_ns: Option<u64>,
    /// 99th percentile poll duration, ns; `None` before the first poll.
    pub poll_p99_ns: Option<u64>,
    /// Durations of every poll (not in the JSON).
    #[serde(skip)]
    pub poll_histogram: Histogram,
}

/// Figures per task name, by name.
///
/// ```
/// overrun::tasks::block_on(overrun::track("counted", async {}));
/// let s = overrun::tasks::stats();
/// assert!(s.iter().any(|t| t.name == "counted" && t.completed == 1));
/// ```
pub fn stats() -> Vec<TaskStats> {
    check_lifetimes();
    let sites: Vec<&'static TaskSite> = TASK_SITES
        .read()
        .as_ref()
        .map(|m| m.values().copied().collect())
        .unwrap_or_default();
    let mut live: HashMap<&'static str, (u64, u64, u64, u64)> = HashMap::new();
    for_each_live(|e| {
        let v = live.entry(e.site.name).or_default();
        v.0 += 1;
        v.1 += e.polls.load(Ordering::Relaxed);
        v.2 += e.busy.load(Ordering::Relaxed);
        v.3 = v.3.max(e.max_poll.load(Ordering::Relaxed));
    });
    let to_ns = clock::ticks_to_ns;
    let mut out: Vec<TaskStats> = sites
        .into_iter()
        .map(|s| {
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let (n_live, live_polls, live_busy, live_max) =
                live.get(s.name).copied().unwrap_or_default();
            let dense: Vec<u64> = s.lifetimes.iter().map(load).collect();
            let h = Histogram::from_dense(&dense, load(&s.lifetime_max), clock::ns_per_tick());
            let ended_busy = load(&s.busy);
            let polls_hist = s
                .polls_site
                .registered_index()
                .map(crate::record::stats::site_histogram)
                .unwrap_or_default();
            let ended = h.count() > 0;
            let polled = polls_hist.count() > 0;
            let if_ended = |v: u64| ended.then_some(v);
            let if_polled = |v: u64| polled.then_some(v);
            let first_polled = load(&s.first_polled);
            TaskStats {
                name: s.name,
                spawned: load(&s.spawned),
                completed: load(&s.completed),
                cancelled: load(&s.cancelled),
                panicked: load(&s.panicked),
                live: n_live,
                leaked: load(&s.leaked),
                poll_violations: load(&s.poll_violations),
                polls: load(&s.polls) + live_polls,
                busy_ns: to_ns(ended_busy + live_busy),
                idle_ns: if_ended(to_ns(load(&s.lifetime_total).saturating_sub(ended_busy))),
                max_poll_ns: if_polled(to_ns(load(&s.max_poll).max(live_max))),
                first_poll_delay_ns: (first_polled > 0)
                    .then(|| to_ns(load(&s.first_poll_delay) / first_polled)),
                lifetime_p50_ns: if_ended(h.quantile(0.5)),
                lifetime_p99_ns: if_ended(h.quantile(0.99)),
                lifetime_max_ns: if_ended(h.max()),
                poll_p50_ns: if_polled(polls_hist.quantile(0.5)),
                poll_p99_ns: if_polled(polls_hist.quantile(0.99)),
                poll_histogram: polls_hist,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(b.name));
    out
}
