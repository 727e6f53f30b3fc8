//! The context a task was spawned in, carried to where its violations are
//! raised: a poll violation on the thread that polled it, a lifetime
//! violation on the watchdog thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

/// What a task carries from where it was spawned (a trace context, say) to
/// where its violations are raised, so a violation hook sees it current.
///
/// The OpenTelemetry exporter installs one that carries the active span's
/// ids: a leaked task's `lifetime` violation, raised on the watchdog thread
/// long after, carries the trace it was spawned in.
///
/// ```
/// use std::sync::Arc;
/// use overrun::tasks::SpawnContext;
///
/// thread_local! {
///     static REQUEST: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
/// }
///
/// /// The request a task was spawned for.
/// struct Request(u64);
///
/// impl SpawnContext for Request {
///     fn within(&self, f: &mut dyn FnMut()) {
///         let before = REQUEST.replace(self.0);
///         f();
///         REQUEST.set(before);
///     }
/// }
///
/// overrun::tasks::on_spawn(|| {
///     let id = REQUEST.get();
///     (id != 0).then(|| Arc::new(Request(id)) as Arc<dyn SpawnContext>)
/// });
/// ```
pub trait SpawnContext: Send + Sync + 'static {
    /// Runs `f` (which publishes a violation) with this context current on
    /// the calling thread.
    fn within(&self, f: &mut dyn FnMut());
}

type Capture = fn() -> Option<Arc<dyn SpawnContext>>;

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Sets how a task's context is captured: `capture` runs on the spawning
/// thread when a task is tracked ([`track`](crate::track), `spawn*`,
/// [`task`](crate::tasks::task)), and the task's `poll` and `lifetime`
/// violations are published [`within`](SpawnContext::within) what it
/// returned. One capture per process: the first set stays (the OTLP
/// exporter sets one when it installs); returns whether this one was set.
///
/// A capture that panics counts as `None` (with `panic = "unwind"`). What
/// it allocates is not counted against the spawning code. It must not track
/// a task itself (that would capture again, without end); violations
/// raised by `within`'s own code reach the hooks like any other.
///
/// ```
/// fn nothing() -> Option<std::sync::Arc<dyn overrun::tasks::SpawnContext>> {
///     None
/// }
/// let _first = overrun::tasks::on_spawn(nothing);
/// assert!(!overrun::tasks::on_spawn(nothing), "set once");
/// ```
pub fn on_spawn(capture: Capture) -> bool {
    CAPTURE.set(capture).is_ok()
}

/// The spawning thread's context, if a capture is set (its allocations are
/// not the caller's).
pub(super) fn capture() -> Option<Arc<dyn SpawnContext>> {
    let capture = CAPTURE.get()?;
    crate::record::alloc::uncounted(|| catch_unwind(capture).ok().flatten())
}

/// Runs `publish` within `context` (or without one if it has none, or its
/// `within` panics before running it): it runs exactly once.
pub(super) fn publish_within(context: Option<&Arc<dyn SpawnContext>>, publish: impl FnOnce()) {
    let mut publish = Some(publish);
    if let Some(context) = context {
        crate::record::alloc::uncounted(|| {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                context.within(&mut || {
                    if let Some(p) = publish.take() {
                        p();
                    }
                });
            }));
        });
    }
    if let Some(p) = publish.take() {
        p();
    }
}
