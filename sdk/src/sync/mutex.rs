//! [`Mutex`]: `parking_lot::Mutex` with its waits and holds measured.

use std::fmt;
use std::panic::Location;

use super::figures::{LockKind, LockSite, Mode};
use super::hold::{Held, Hold, Limits};
use super::named::named;
use crate::vocab::units::TimeLimit;

/// A mutual-exclusion lock (`parking_lot::Mutex` underneath) whose
/// acquisitions, waits and holds are counted under its name.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::LazyLock;
///
/// static CACHE: LazyLock<overrun::sync::Mutex<HashMap<u64, String>>> = LazyLock::new(|| {
///     overrun::sync::Mutex::new("cache", HashMap::new())
///         .wait_budget("1ms")
///         .hold_budget("200us")
/// });
/// CACHE.lock().insert(1, "one".into());
/// assert_eq!(CACHE.lock().get(&1).map(String::as_str), Some("one"));
/// ```
pub struct Mutex<T: ?Sized> {
    site: &'static LockSite,
    limits: Limits,
    inner: parking_lot::Mutex<T>,
}

named!(Mutex, parking_lot::Mutex<T>, LockKind::Mutex, "*l.lock()");

impl<T: ?Sized> Mutex<T> {
    /// Acquires the lock, waiting for it if it is taken. The wait is
    /// measured only then: a lock found free costs a count, no clock read.
    ///
    /// ```
    /// let m = overrun::sync::Mutex::new("lock_doc", 1);
    /// *m.lock() += 1;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let at = Location::caller();
        match self.inner.try_lock() {
            Some(inner) => {
                self.site.acquired(Mode::Exclusive);
                Held::new(inner, Hold::start(self.site, &self.limits, at))
            }
            None => self.limits.contended(
                self.site,
                Mode::Exclusive,
                at,
                |budget| self.inner.try_lock_for(budget),
                || self.inner.lock(),
            ),
        }
    }

    /// Acquires the lock if it is free (an acquisition), else `None` (not
    /// one).
    ///
    /// ```
    /// let m = overrun::sync::Mutex::new("try_lock_doc", ());
    /// let held = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_none());
    /// drop(held);
    /// ```
    #[track_caller]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let inner = self.inner.try_lock()?;
        self.site.acquired(Mode::Exclusive);
        Some(Held::new(
            inner,
            Hold::start(self.site, &self.limits, Location::caller()),
        ))
    }

    /// Whether the lock is taken now.
    ///
    /// ```
    /// let m = overrun::sync::Mutex::new("is_locked_doc", ());
    /// let g = m.lock();
    /// assert!(m.is_locked());
    /// drop(g);
    /// assert!(!m.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }
}

impl<T: Default> Default for Mutex<T> {
    /// A lock named `"mutex"`.
    #[track_caller]
    fn default() -> Self {
        Self::new("mutex", T::default())
    }
}

/// The guard of a [`Mutex`]: the value while the lock is held, released
/// (and the hold measured) when dropped.
///
/// ```
/// let m = overrun::sync::Mutex::new("guard_doc", String::new());
/// let mut g: overrun::sync::MutexGuard<'_, String> = m.lock();
/// g.push('x');
/// assert_eq!(g.len(), 1);
/// ```
pub type MutexGuard<'a, T> = Held<parking_lot::MutexGuard<'a, T>>;
