//! A list of callbacks with ids, for the cold paths that call out to the
//! application (exit hooks, policy-file error hooks): added and removed
//! under a lock, taken as a copy to be called outside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// See the module docs. `F` is the callback's `dyn Fn(..)` type.
pub(crate) struct HookList<F: ?Sized> {
    next: AtomicU64,
    hooks: Mutex<Vec<(u64, Arc<F>)>>,
}

impl<F: ?Sized> HookList<F> {
    pub(crate) const fn new() -> Self {
        Self {
            next: AtomicU64::new(0),
            hooks: Mutex::new(Vec::new()),
        }
    }

    /// Adds `hook`; returns its id.
    pub(crate) fn add(&self, hook: Arc<F>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.hooks.lock().push((id, hook));
        id
    }

    /// Removes the hook `id`; `false` if it was already gone.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut hooks = self.hooks.lock();
        let before = hooks.len();
        hooks.retain(|(i, _)| *i != id);
        hooks.len() != before
    }

    /// The hooks now, to call outside the lock.
    pub(crate) fn copy(&self) -> Vec<Arc<F>> {
        self.hooks.lock().iter().map(|(_, h)| h.clone()).collect()
    }

    /// Every hook, removed (each is called once).
    pub(crate) fn take(&self) -> Vec<Arc<F>> {
        std::mem::take(&mut *self.hooks.lock())
            .into_iter()
            .map(|(_, h)| h)
            .collect()
    }
}
