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
pub fn block_on<F: Future>(fut: F) -> F::Output {
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
