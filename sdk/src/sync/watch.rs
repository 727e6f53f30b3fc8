//! Holds in progress, for the watchdog that reports a guard held past its
//! hold budget while it is still held.
//!
//! Each thread owns a block of [`SLOTS`] slots. A guard with a hold budget
//! takes a free slot of its thread's block with plain stores (only the
//! owner fills a slot) and empties it with one swap when it is released, on
//! whichever thread. The watchdog, a thread started with the first lock
//! given a hold budget, looks at every slot every [`PERIOD`]: a hold past
//! its budget is marked reported by a compare-and-swap, so the watchdog and
//! the release never both count it. A slot's state carries a count of its
//! fills beside the hold's start, so a refill never looks like the hold it
//! replaced. A thread's block is reused by a later thread once the first
//! ends. A thread holding more than [`SLOTS`] budgeted guards at once has
//! the others checked when they are released only; a guard that is
//! forgotten (`mem::forget`) keeps its slot for good.

use std::cell::Cell;
use std::panic::Location;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::figures::LockSite;
use crate::record::clock;

/// Budgeted holds one thread can have watched at once.
pub(crate) const SLOTS: usize = 8;

/// How often the watchdog looks: a hold past a budget `b` is reported
/// within `b + PERIOD`, inside the promised `max(2·b, 100 ms)`.
pub(crate) const PERIOD: Duration = Duration::from_millis(25);

/// A slot's `state`: 0 when free; else the hold's start (the clock's ticks,
/// 62 bits, the lowest 8 replaced by the slot's count of fills) with
/// [`HELD`] set, and [`REPORTED`] once the watchdog counted it.
const HELD: u64 = 1 << 62;
const REPORTED: u64 = 1 << 63;
const START: u64 = HELD - 1;
const FILLS: u64 = 0xFF;

struct Slot {
    state: AtomicU64,
    /// Fills so far (written by the owner only).
    fills: AtomicU64,
    lock: AtomicPtr<LockSite>,
    limit: AtomicU64,
    at: AtomicPtr<Location<'static>>,
}

/// One thread's slots, on cache lines of their own (blocks of different
/// threads are written by different threads).
#[repr(align(64))]
struct Block {
    slots: [Slot; SLOTS],
}

impl Block {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot {
                state: AtomicU64::new(0),
                fills: AtomicU64::new(0),
                lock: AtomicPtr::new(std::ptr::null_mut()),
                limit: AtomicU64::new(0),
                at: AtomicPtr::new(std::ptr::null_mut()),
            }),
        }
    }
}

/// Every block ever made (never freed), and those free for a new thread.
static BLOCKS: Mutex<(Vec<&'static Block>, Vec<&'static Block>)> =
    Mutex::new((Vec::new(), Vec::new()));

/// The thread's block; handed back when the thread ends.
struct Owned(Cell<Option<&'static Block>>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(block) = self.0.take() {
            BLOCKS.lock().1.push(block);
        }
    }
}

thread_local! {
    static MINE: Owned = const { Owned(Cell::new(None)) };
}

fn my_block() -> Option<&'static Block> {
    MINE.try_with(|mine| {
        if let Some(block) = mine.0.get() {
            return block;
        }
        let block = crate::record::alloc::uncounted(|| {
            let mut blocks = BLOCKS.lock();
            match blocks.1.pop() {
                Some(block) => block,
                None => {
                    let block: &'static Block = Box::leak(Box::new(Block::new()));
                    blocks.0.push(block);
                    block
                }
            }
        });
        mine.0.set(Some(block));
        block
    })
    .ok()
}

/// A hold being watched: its slot and the state it was given.
pub(crate) struct Watched {
    slot: &'static Slot,
    state: u64,
}

/// Puts a hold that starts now under watch: its start (read after the
/// slot is found, so a thread's first hold is not charged for getting its
/// block) and its slot, `None` when this thread's slots are all taken (or
/// the thread is ending).
pub(crate) fn watch(
    lock: &'static LockSite,
    limit: u64,
    at: &'static Location<'static>,
) -> (u64, Option<Watched>) {
    let slot = my_block().and_then(|block| {
        // Acquire pairs with a release's swap: the slot's last hold is over
        // before it is filled again.
        block
            .slots
            .iter()
            .find(|s| s.state.load(Ordering::Acquire) == 0)
    });
    let start = clock::now();
    let Some(slot) = slot else {
        return (start, None);
    };
    // Only this thread fills its block's slots, and only empty ones: the
    // fields are stored before the state that publishes them (Release).
    let fills = slot.fills.load(Ordering::Relaxed).wrapping_add(1);
    slot.fills.store(fills, Ordering::Relaxed);
    slot.lock
        .store(std::ptr::from_ref(lock).cast_mut(), Ordering::Relaxed);
    slot.limit.store(limit, Ordering::Relaxed);
    slot.at
        .store(std::ptr::from_ref(at).cast_mut(), Ordering::Relaxed);
    let state = (start & START & !FILLS) | (fills & FILLS) | HELD;
    slot.state.store(state, Ordering::Release);
    (start, Some(Watched { slot, state }))
}

impl Watched {
    /// Ends the watch: whether the watchdog reported the hold already.
    pub(crate) fn release(self) -> bool {
        let before = self.slot.state.swap(0, Ordering::AcqRel);
        debug_assert_eq!(before & !REPORTED, self.state);
        before & REPORTED != 0
    }
}

/// Holds in progress past their budget now, per lock (by address).
pub(crate) fn overdue() -> Vec<*const LockSite> {
    let now = clock::now() & START;
    let blocks: Vec<&'static Block> = crate::record::alloc::uncounted(|| BLOCKS.lock().0.clone());
    blocks
        .iter()
        .flat_map(|b| &b.slots)
        .filter_map(|slot| {
            let state = slot.state.load(Ordering::Acquire);
            let over = state & HELD != 0
                && now.saturating_sub(state & START) > slot.limit.load(Ordering::Relaxed);
            let lock = slot.lock.load(Ordering::Relaxed).cast_const();
            // Still the same hold (not refilled meanwhile for another lock).
            (over && slot.state.load(Ordering::Acquire) == state).then_some(lock)
        })
        .collect()
}

static WATCHDOG: OnceLock<()> = OnceLock::new();

/// Starts the watchdog (once), when a lock is given a hold budget.
pub(crate) fn start_watchdog() {
    WATCHDOG.get_or_init(|| {
        crate::record::periodic::spawn_periodic(
            "overrun-locks",
            PERIOD,
            check_holds,
            "holds are checked when released only",
        );
    });
}

/// Reports every hold past its budget that is not reported yet (once).
pub(crate) fn check_holds() {
    let now = clock::now() & START;
    let blocks: Vec<&'static Block> = crate::record::alloc::uncounted(|| BLOCKS.lock().0.clone());
    for block in blocks {
        for slot in &block.slots {
            let state = slot.state.load(Ordering::Acquire);
            if state & HELD == 0 || state & REPORTED != 0 {
                continue;
            }
            let held = now.saturating_sub(state & START);
            let limit = slot.limit.load(Ordering::Relaxed);
            if held <= limit {
                continue;
            }
            let lock = slot.lock.load(Ordering::Relaxed);
            let at = slot.at.load(Ordering::Relaxed);
            // The fields read above belong to this hold if the state is
            // still the one read first: a slot is refilled only after its
            // hold released it (state 0), and a refill's state differs (its
            // count of fills, its start).
            if slot
                .state
                .compare_exchange(state, state | REPORTED, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // SAFETY: both pointers were stored by `watch` from `&'static`
            // references (a leaked `LockSite`, a `Location` of the program),
            // so they are valid for the rest of the process, and never null
            // in a held slot. They are the ones stored for this hold: the
            // owner stores them before the state (Release), read here after
            // it (Acquire), and refills only after reading the state 0 that
            // a release's swap left (Acquire, pairing with that AcqRel), so
            // the compare-exchange above, on the state read first, fails if
            // a refill happened in between.
            let (lock, at) = unsafe { (&*lock, &*at) };
            lock.held_too_long(held, limit, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::figures::LockKind;

    #[test]
    fn a_hold_is_reported_once_by_the_watchdog_or_its_release() {
        let at = Location::caller();
        let lock = LockSite::of("watch-unit", LockKind::Mutex, at);
        // Past its budget: the watchdog's pass reports it, the release not.
        let (_, w) = watch(lock, 0, at);
        std::thread::sleep(Duration::from_millis(1));
        assert!(overdue().contains(&std::ptr::from_ref(lock)));
        check_holds();
        assert!(
            w.expect("a free slot").release(),
            "reported by the watchdog"
        );
        // Released first: the watchdog finds nothing.
        let (_, w) = watch(lock, u64::MAX >> 2, at);
        check_holds();
        assert!(!w.expect("a free slot").release());
        // The same slot refilled: a state of its own.
        let (_, a) = watch(lock, u64::MAX >> 2, at);
        let a = a.unwrap();
        let first = a.state;
        assert!(!a.release());
        let (_, b) = watch(lock, u64::MAX >> 2, at);
        let b = b.unwrap();
        assert_ne!(b.state, first);
        assert!(!b.release());
        // All slots taken: the next hold is not watched.
        let all: Vec<Watched> = (0..SLOTS)
            .map(|_| watch(lock, u64::MAX >> 2, at).1.unwrap())
            .collect();
        assert!(watch(lock, 0, at).1.is_none());
        for w in all {
            assert!(!w.release());
        }
    }

    #[test]
    fn guards_release_their_lock_once_with_and_without_a_hold_budget() {
        // Through the watch slots (a hold budget) and without.
        let m = crate::sync::Mutex::new("watch-unit-mutex", vec![1]).hold_budget("1s");
        m.lock().push(2);
        assert_eq!(m.try_lock().map(|g| g.len()), Some(2));
        let rw = crate::sync::RwLock::new("watch-unit-rw", String::from("a"));
        rw.write().push('b');
        let (a, b) = (rw.read(), rw.read());
        assert_eq!(a.len() + b.len(), 4);
        drop((a, b));
        assert!(rw.try_write().is_some());
    }
}
