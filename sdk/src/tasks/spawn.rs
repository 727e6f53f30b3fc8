//! Tracked drop-ins for tokio's spawn functions (feature `tokio`).

use super::track;
use std::future::Future;

/// `tokio::spawn`, tracked under the name `"unnamed"` (prefer
/// [`spawn_named`]).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let h = overrun::spawn(async { 3 });
/// assert_eq!(h.await.unwrap(), 3);
/// # });
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(track("unnamed", fut))
}

/// `tokio::spawn`, tracked under `name` (a static label).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let h = overrun::spawn_named("session-reaper", async { 1 });
/// assert_eq!(h.await.unwrap(), 1);
/// # });
/// ```
#[track_caller]
pub fn spawn_named<F>(name: &'static str, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(track(name, fut))
}

/// `tokio::task::spawn_blocking`, tracked under `name`: one "poll" that
/// lasts as long as the closure runs.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let h = overrun::spawn_blocking_named("hash", || 6 * 7);
/// assert_eq!(h.await.unwrap(), 42);
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking_named<F, R>(name: &'static str, f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let mut tracked = Some(track(name, BlockingOnce(Some(f))));
    tokio::task::spawn_blocking(move || {
        let fut = tracked.take().expect("runs once");
        super::executor::run_to_completion(fut)
    })
}

/// `tokio::task::spawn_blocking`, tracked under the name `"blocking"`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(overrun::spawn_blocking(|| 1).await.unwrap(), 1);
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_blocking_named("blocking", f)
}

/// A closure as a future that completes in its first poll.
struct BlockingOnce<F>(Option<F>);

impl<F> Unpin for BlockingOnce<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingOnce<F> {
    type Output = R;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<R> {
        let f = self.0.take().expect("polled once");
        std::task::Poll::Ready(f())
    }
}
