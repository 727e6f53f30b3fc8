//! [`RwLock`]: `parking_lot::RwLock` with its waits and holds measured,
//! reads and writes counted apart.

use std::fmt;
use std::panic::Location;

use super::figures::{LockKind, LockSite, Mode};
use super::hold::{Held, Hold, Limits};
use super::named::named;
use crate::vocab::units::TimeLimit;

/// A reader-writer lock (`parking_lot::RwLock` underneath) whose
/// acquisitions, waits and holds are counted under its name; acquisitions
/// for reading (shared) and for writing (exclusive) are counted apart.
///
/// ```
/// let config = overrun::sync::RwLock::new("config", vec![1, 2])
///     .wait_budget("1ms")
///     .hold_budget("10ms");
/// let a = config.read();
/// let b = config.read(); // readers do not wait for readers
/// assert_eq!(a.len() + b.len(), 4);
/// drop((a, b));
/// config.write().push(3);
/// ```
pub struct RwLock<T: ?Sized> {
    site: &'static LockSite,
    limits: Limits,
    inner: parking_lot::RwLock<T>,
}

named!(
    RwLock,
    parking_lot::RwLock<T>,
    LockKind::RwLock,
    "*l.read()"
);

impl<T: ?Sized> RwLock<T> {
    /// Acquires the lock for reading, beside other readers; waits only
    /// while a writer holds it or waits for it.
    ///
    /// ```
    /// let l = overrun::sync::RwLock::new("rw_read_doc", 2);
    /// assert_eq!(*l.read() * *l.read(), 4);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        let at = Location::caller();
        match self.inner.try_read() {
            Some(inner) => {
                self.site.acquired(Mode::Shared);
                Held::new(inner, Hold::start(self.site, &self.limits, at))
            }
            None => self.limits.contended(
                self.site,
                Mode::Shared,
                at,
                |budget| self.inner.try_read_for(budget),
                || self.inner.read(),
            ),
        }
    }

    /// Acquires the lock for writing, alone.
    ///
    /// ```
    /// let l = overrun::sync::RwLock::new("rw_write_doc", 2);
    /// *l.write() += 1;
    /// assert_eq!(*l.read(), 3);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        let at = Location::caller();
        match self.inner.try_write() {
            Some(inner) => {
                self.site.acquired(Mode::Exclusive);
                Held::new(inner, Hold::start(self.site, &self.limits, at))
            }
            None => self.limits.contended(
                self.site,
                Mode::Exclusive,
                at,
                |budget| self.inner.try_write_for(budget),
                || self.inner.write(),
            ),
        }
    }

    /// Acquires the lock for reading if no writer holds it, else `None`.
    ///
    /// ```
    /// let l = overrun::sync::RwLock::new("rw_try_read_doc", ());
    /// let w = l.write();
    /// assert!(l.try_read().is_none());
    /// drop(w);
    /// assert!(l.try_read().is_some());
    /// ```
    #[track_caller]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let inner = self.inner.try_read()?;
        self.site.acquired(Mode::Shared);
        Some(Held::new(
            inner,
            Hold::start(self.site, &self.limits, Location::caller()),
        ))
    }

    /// Acquires the lock for writing if it is free, else `None`.
    ///
    /// ```
    /// let l = overrun::sync::RwLock::new("rw_try_write_doc", ());
    /// let r = l.read();
    /// assert!(l.try_write().is_none());
    /// drop(r);
    /// assert!(l.try_write().is_some());
    /// ```
    #[track_caller]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let inner = self.inner.try_write()?;
        self.site.acquired(Mode::Exclusive);
        Some(Held::new(
            inner,
            Hold::start(self.site, &self.limits, Location::caller()),
        ))
    }
}

/// A [`RwLock`] held for reading.
///
/// ```
/// let l = overrun::sync::RwLock::new("rw_read_guard_doc", vec![1]);
/// let g: overrun::sync::RwLockReadGuard<'_, Vec<u32>> = l.read();
/// assert_eq!(g.len(), 1);
/// ```
pub type RwLockReadGuard<'a, T> = Held<parking_lot::RwLockReadGuard<'a, T>>;

/// A [`RwLock`] held for writing.
///
/// ```
/// let l = overrun::sync::RwLock::new("rw_write_guard_doc", vec![1]);
/// let mut g: overrun::sync::RwLockWriteGuard<'_, Vec<u32>> = l.write();
/// g.push(2);
/// assert_eq!(g.len(), 2);
/// ```
pub type RwLockWriteGuard<'a, T> = Held<parking_lot::RwLockWriteGuard<'a, T>>;
