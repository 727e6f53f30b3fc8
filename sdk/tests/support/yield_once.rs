//! Shared by the integration tests: `#[path = "support/yield_once.rs"] mod yield_once;`

/// Pending once (waking itself at once), then ready. Unlike
/// `tokio::task::yield_now` it never touches a runtime's own (allocating)
/// bookkeeping inside the poll that measures it.
pub(crate) struct YieldOnce(pub(crate) bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}
