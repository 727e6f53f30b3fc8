//! A minimal executor for examples and tests.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Runs a future to completion on the current thread (a minimal executor
/// for examples and tests; use a real runtime in applications).
///
/// ```
/// assert_eq!(overrun::tasks::block_on(async { 5 }), 5);
/// ```
///
/// # Panics
///
/// With the `tokio` feature, inside a tokio runtime: on a multi-thread
/// runtime it runs the future through `tokio::task::block_in_place` (the
/// other workers go on); on a current-thread runtime, where parking the
/// thread could wait forever for the runtime it blocks, it panics at once,
/// saying to `.await` the future (in tests: `overrun::testing::capture_async`
/// or `check_async`).
#[track_caller]
pub fn block_on<F: Future>(fut: F) -> F::Output {
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
            panic!(
                "overrun::tasks::block_on inside a current-thread tokio runtime would block \
                 the runtime it waits for: `.await` the future instead (in tests: \
                 overrun::testing::capture_async or check_async)"
            );
        }
        return tokio::task::block_in_place(|| run_to_completion(fut));
    }
    run_to_completion(fut)
}

/// [`block_on`] without the runtime check: for a closure run as a one-poll
/// future on tokio's blocking pool, where nothing waits on the runtime.
pub(crate) fn run_to_completion<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
