//! [`TokioMutex`]: `tokio::sync::Mutex` with its waits and holds measured
//! (feature `tokio`).

use std::fmt;
use std::panic::Location;

use super::figures::{LockKind, LockSite, Mode};
use super::hold::{Held, Hold, Limits, Waiting};
use super::named::named;
use crate::vocab::units::TimeLimit;

/// An async mutex (`tokio::sync::Mutex` underneath), for a guard held
/// across `.await`, whose acquisitions, waits and holds are counted under
/// its name. The guard may be released on another thread than the one
/// that took it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let queue = overrun::sync::TokioMutex::new("queue", Vec::<u32>::new())
///     .wait_budget("5ms")
///     .hold_budget("50ms");
/// queue.lock().await.push(1);
/// assert_eq!(queue.lock().await.len(), 1);
/// # });
/// ```
pub struct TokioMutex<T: ?Sized> {
    site: &'static LockSite,
    limits: Limits,
    inner: tokio::sync::Mutex<T>,
}

named!(
    TokioMutex,
    tokio::sync::Mutex<T>,
    LockKind::TokioMutex,
    "*l.try_lock().unwrap()"
);

impl<T: ?Sized> TokioMutex<T> {
    /// Acquires the lock, waiting (asynchronously) if it is taken.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let m = overrun::sync::TokioMutex::new("tokio_lock_doc", 1);
    /// *m.lock().await += 1;
    /// assert_eq!(*m.lock().await, 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn lock(&self) -> impl Future<Output = TokioMutexGuard<'_, T>> {
        // The caller's location is taken here: `#[track_caller]` does not
        // reach into an `async` body.
        let at = Location::caller();
        async move {
            match self.inner.try_lock() {
                Ok(inner) => {
                    self.site.acquired(Mode::Exclusive);
                    Held::new(inner, Hold::start(self.site, &self.limits, at))
                }
                Err(_) if !crate::record::measure::enabled() => {
                    Held::new(self.inner.lock().await, None)
                }
                Err(_) => {
                    // Checked even if this future is dropped while it waits.
                    let waiting = Waiting::new(self.site, &self.limits, at);
                    let inner = self.inner.lock().await;
                    waiting.acquired();
                    Held::new(inner, Hold::start(self.site, &self.limits, at))
                }
            }
        }
    }

    /// Acquires the lock if it is free, else tokio's error.
    ///
    /// ```
    /// let m = overrun::sync::TokioMutex::new("tokio_try_doc", ());
    /// let g = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_err());
    /// drop(g);
    /// ```
    #[track_caller]
    pub fn try_lock(&self) -> Result<TokioMutexGuard<'_, T>, tokio::sync::TryLockError> {
        let inner = self.inner.try_lock()?;
        self.site.acquired(Mode::Exclusive);
        Ok(Held::new(
            inner,
            Hold::start(self.site, &self.limits, Location::caller()),
        ))
    }
}

/// The guard of a [`TokioMutex`]; it may be held across `.await` and sent
/// to another thread.
///
/// ```
/// let m = overrun::sync::TokioMutex::new("tokio_guard_doc", vec![1]);
/// let mut g: overrun::sync::TokioMutexGuard<'_, Vec<u32>> = m.try_lock().unwrap();
/// g.push(2);
/// assert_eq!(g.len(), 2);
/// ```
pub type TokioMutexGuard<'a, T> = Held<tokio::sync::MutexGuard<'a, T>>;
