//! A task with its budgets, given before it is tracked or spawned.

use std::future::Future;
use std::time::Duration;

use super::tracked::{Tracked, track};
use crate::vocab::units::TimeLimit;

/// A task to track or spawn, with its budgets; made by [`task`].
///
/// ```
/// let fut = overrun::task("reaper")
///     .poll_budget(overrun::duration!("5ms"))
///     .lifetime(overrun::duration!("1h"))
///     .track(async { 3 });
/// assert_eq!(overrun::tasks::block_on(fut), 3);
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a task builder does nothing until `.track(..)` or `.spawn(..)`"]
pub struct TaskBuilder {
    name: &'static str,
    poll: Option<Duration>,
    lifetime: Option<Duration>,
}

/// Starts a task called `name` (a static label) with budgets: see
/// [`TaskBuilder`]. With [`duration!`](crate::duration) literals the budgets
/// are checked at compile time and can never panic.
pub fn task(name: &'static str) -> TaskBuilder {
    TaskBuilder {
        name,
        poll: None,
        lifetime: None,
    }
}

impl TaskBuilder {
    /// A single poll longer than `limit` is a `poll` violation. A `&str`
    /// literal is parsed now and panics if malformed; `overrun::duration!`
    /// checks it at compile time instead.
    #[track_caller]
    pub fn poll_budget(mut self, limit: impl TimeLimit) -> Self {
        self.poll = Some(Duration::from_nanos(limit.nanos()));
        self
    }

    /// A task alive longer than `limit` is counted once as leaked.
    #[track_caller]
    pub fn lifetime(mut self, limit: impl TimeLimit) -> Self {
        self.lifetime = Some(Duration::from_nanos(limit.nanos()));
        self
    }

    /// Tracks `fut` with these budgets (any executor); the spawn location
    /// is the caller's.
    #[track_caller]
    pub fn track<F: Future>(self, fut: F) -> Tracked<F> {
        let mut tracked = track(self.name, fut);
        if let Some(poll) = self.poll {
            tracked = tracked.poll_budget(poll);
        }
        if let Some(lifetime) = self.lifetime {
            tracked = tracked.lifetime(lifetime);
        }
        tracked
    }

    /// `tokio::spawn` of the tracked future (feature `tokio`).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let h = overrun::task("reaper").poll_budget(overrun::duration!("5ms")).spawn(async { 1 });
    /// assert_eq!(h.await.unwrap(), 1);
    /// # });
    /// ```
    #[cfg(feature = "tokio")]
    #[track_caller]
    pub fn spawn<F>(self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(self.track(fut))
    }
}
