//! Run-once that its own thread may re-enter: what runs once (reading a
//! policy file before the first site registers) calls hooks, and a hook may
//! call a measured function, which comes back here. `std::sync::Once` would
//! deadlock; this returns at once to the thread running it, and makes the
//! others wait until it is done.

use std::sync::atomic::{AtomicU64, Ordering};

const NOT_RUN: u64 = 0;
const DONE: u64 = u64::MAX;

/// See the module docs.
pub(crate) struct ReentrantOnce(AtomicU64);

impl ReentrantOnce {
    pub(crate) const fn new() -> Self {
        Self(AtomicU64::new(NOT_RUN))
    }

    /// Runs `f` the first time; later calls wait until it is done, except
    /// on the thread running it, where they return at once.
    pub(crate) fn call(&self, f: impl FnOnce()) {
        let me = thread_token();
        loop {
            // Acquire pairs with the Release below: what `f` did is seen
            // by those who find it done.
            match self.0.load(Ordering::Acquire) {
                DONE => return,
                NOT_RUN => {
                    if self
                        .0
                        .compare_exchange(NOT_RUN, me, Ordering::Acquire, Ordering::Acquire)
                        .is_ok()
                    {
                        // Done even if `f` panics: nobody waits for ever.
                        struct Done<'a>(&'a AtomicU64);
                        impl Drop for Done<'_> {
                            fn drop(&mut self) {
                                self.0.store(DONE, Ordering::Release);
                            }
                        }
                        let _done = Done(&self.0);
                        f();
                        return;
                    }
                }
                owner if owner == me => return,
                _ => std::thread::yield_now(),
            }
        }
    }
}

/// A number of this thread's own, never 0 or `DONE`.
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.try_with(|t| *t).unwrap_or(DONE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn runs_once_waits_elsewhere_and_returns_when_reentered() {
        static ONCE: ReentrantOnce = ReentrantOnce::new();
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        static DONE_SEEN: AtomicUsize = AtomicUsize::new(0);
        let (done, returned) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let done = done.clone();
            std::thread::spawn(move || {
                ONCE.call(|| {
                    RUNS.fetch_add(1, Ordering::SeqCst);
                    // Re-entered from inside: returns at once, without
                    // running (with `std::sync::Once` this would hang).
                    ONCE.call(|| {
                        RUNS.fetch_add(100, Ordering::SeqCst);
                    });
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    DONE_SEEN.store(1, Ordering::SeqCst);
                });
                // Every caller returns only once it is done.
                done.send(DONE_SEEN.load(Ordering::SeqCst)).unwrap();
            });
        }
        for _ in 0..4 {
            let seen = returned
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("every caller returns (a hang is a failure)");
            assert_eq!(seen, 1);
        }
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "once, and not re-entered");
    }
}
