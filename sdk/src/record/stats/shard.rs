//! Per-thread shards of per-site statistics.
//!
//! Every thread that runs measured code owns one [`Shard`]: a table, indexed
//! by site id, of [`SiteCell`]s that only that thread writes. Recording a call
//! is a handful of plain loads and stores to the thread's own cells — the
//! fields are atomics only so that a snapshot on another thread may read them
//! (`Relaxed`: a snapshot taken while calls are in flight may see one call's
//! count before its time; after the writers are joined it is exact). No
//! read-modify-write instruction, no lock and no cache line shared with
//! another writer is on the path.
//!
//! The table grows in buckets of doubling size (32, 64, 128, … cells), so it
//! never moves: a reader holding a pointer to a bucket stays valid while the
//! owner adds the next one. A cell's histogram allocates its octave blocks on
//! first use (see [`super::histogram`]).
//!
//! Shards are never freed. When a thread exits, its shard is folded into the
//! `retired` totals and put on a free list under the registry lock (the same
//! lock a snapshot takes, so a snapshot sees each call exactly once), and the
//! next new thread reuses it: memory is bounded by the peak number of
//! concurrent threads, not by how many threads ever ran.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::histogram::{BLOCK, BLOCKS, BUCKETS, index};

/// Cells in the first bucket, as a power of two.
const FIRST_BITS: u32 = 5;
/// Buckets per shard; bucket `k` holds `32 << k` cells.
const TABLE: usize = 11;
/// Most sites a process can have.
pub(crate) const MAX_SITES: usize = (1 << FIRST_BITS) * ((1 << TABLE) - 1);

/// Per-site violation counters kept per thread: time, allocs, bytes, poll.
pub(crate) const SITE_KINDS: usize = 4;

/// One octave of histogram buckets, on its own cache lines.
#[repr(align(128))]
pub(crate) struct Block([AtomicU64; BLOCK]);

/// The statistics of one site on one thread.
pub(crate) struct SiteCell {
    pub(crate) calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) total: AtomicU64,
    pub(crate) self_time: AtomicU64,
    pub(crate) max: AtomicU64,
    pub(crate) allocs: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) max_poll: AtomicU64,
    pub(crate) violations: [AtomicU64; SITE_KINDS],
    hist: [AtomicPtr<Block>; BLOCKS],
}

/// Adds `v` to a counter that only the calling thread writes: a load and a
/// store, not a locked read-modify-write.
#[inline(always)]
pub(crate) fn bump(counter: &AtomicU64, v: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(v),
        Ordering::Relaxed,
    );
}

/// Raises a single-writer maximum.
#[inline(always)]
pub(crate) fn raise(counter: &AtomicU64, v: u64) {
    if v > counter.load(Ordering::Relaxed) {
        counter.store(v, Ordering::Relaxed);
    }
}

impl Default for SiteCell {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            total: AtomicU64::new(0),
            self_time: AtomicU64::new(0),
            max: AtomicU64::new(0),
            allocs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            max_poll: AtomicU64::new(0),
            violations: Default::default(),
            hist: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }
}

impl SiteCell {
    /// The counters that add up across threads, in a fixed order: calls,
    /// errors, cancelled, total, self time, allocs, bytes, polls.
    pub(crate) fn sums(&self) -> [&AtomicU64; 8] {
        [
            &self.calls,
            &self.errors,
            &self.cancelled,
            &self.total,
            &self.self_time,
            &self.allocs,
            &self.bytes,
            &self.polls,
        ]
    }

    /// Counts `value` in the histogram.
    #[inline(always)]
    pub(crate) fn record_value(&self, value: u64) {
        let i = index(value);
        let slot = &self.hist[i / BLOCK];
        // Only this thread stores to `slot`, so its own last store is what a
        // Relaxed load returns.
        let mut block = slot.load(Ordering::Relaxed);
        if block.is_null() {
            block = new_block(slot);
        }
        // SAFETY: `block` is non-null and came from `Box::into_raw` in
        // `new_block`; blocks are never freed (shards are recycled, not
        // dropped), so the reference is valid for as long as `self`.
        bump(unsafe { &(*block).0[i % BLOCK] }, 1);
    }

    /// Adds this cell's histogram into `dense` (one slot per bucket);
    /// returns a bit per block (octave) it touched.
    pub(crate) fn add_histogram(&self, dense: &mut [u64]) -> u64 {
        let mut touched = 0u64;
        for (b, slot) in self.hist.iter().enumerate() {
            // Acquire pairs with the Release in `new_block`: the block's
            // zeroed contents are visible before its pointer is.
            let block = slot.load(Ordering::Acquire);
            if block.is_null() {
                continue;
            }
            // SAFETY: non-null blocks are live for the program's lifetime.
            let block = unsafe { &*block };
            touched |= 1 << b;
            for (s, c) in block.0.iter().enumerate() {
                dense[b * BLOCK + s] += c.load(Ordering::Relaxed);
            }
        }
        touched
    }

    /// Adds every figure of `self` into `into`, then zeroes `self`. Only
    /// called under the registry lock with `self`'s owner thread gone.
    fn drain_into(&self, into: &SiteCell) {
        for (from, to) in self.sums().into_iter().zip(into.sums()) {
            bump(to, from.swap(0, Ordering::Relaxed));
        }
        for (from, to) in self.violations.iter().zip(&into.violations) {
            bump(to, from.swap(0, Ordering::Relaxed));
        }
        raise(&into.max, self.max.swap(0, Ordering::Relaxed));
        raise(&into.max_poll, self.max_poll.swap(0, Ordering::Relaxed));
        let mut dense = [0u64; BUCKETS];
        self.add_histogram(&mut dense);
        for (i, &c) in dense.iter().enumerate() {
            if c != 0 {
                into.record_n(i, c);
            }
        }
        for slot in &self.hist {
            let block = slot.load(Ordering::Acquire);
            if !block.is_null() {
                // SAFETY: as in `add_histogram`.
                for c in unsafe { &(*block).0 } {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Adds `n` to bucket `i` (for merging).
    fn record_n(&self, i: usize, n: u64) {
        let slot = &self.hist[i / BLOCK];
        let mut block = slot.load(Ordering::Acquire);
        if block.is_null() {
            block = new_block(slot);
        }
        // SAFETY: as in `record_value`.
        bump(unsafe { &(*block).0[i % BLOCK] }, n);
    }
}

impl Drop for SiteCell {
    /// Only cells of an owned shard are ever dropped (tests); the shards
    /// threads use are leaked on purpose and live for the whole process.
    fn drop(&mut self) {
        for slot in &mut self.hist {
            let block = *slot.get_mut();
            if !block.is_null() {
                // SAFETY: `block` came from `Box::into_raw` in `new_block` and
                // `&mut self` proves no one else can reach it any more.
                drop(unsafe { Box::from_raw(block) });
            }
        }
    }
}

#[cold]
#[inline(never)]
fn new_block(slot: &AtomicPtr<Block>) -> *mut Block {
    let block = crate::record::alloc::uncounted(|| {
        Box::into_raw(Box::new(Block(std::array::from_fn(|_| AtomicU64::new(0)))))
    });
    // Release: a snapshot that loads this pointer with Acquire sees the zeros.
    slot.store(block, Ordering::Release);
    block
}

/// One thread's table of cells.
pub(crate) struct Shard {
    buckets: [AtomicPtr<SiteCell>; TABLE],
}

#[inline(always)]
fn locate(site: usize) -> (usize, usize) {
    let n = site + (1 << FIRST_BITS);
    let top = 63 - (n as u64).leading_zeros();
    ((top - FIRST_BITS) as usize, n - (1 << top))
}

const fn bucket_len(bucket: usize) -> usize {
    1 << (FIRST_BITS as usize + bucket)
}

impl Shard {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// The cell of `site` for the owning thread, growing the table if needed.
    #[inline(always)]
    pub(crate) fn cell(&self, site: usize) -> &SiteCell {
        let (bucket, offset) = locate(site);
        // Only the owner stores bucket pointers of a live shard.
        let mut cells = self.buckets[bucket].load(Ordering::Relaxed);
        if cells.is_null() {
            cells = self.grow(bucket);
        }
        // SAFETY: `cells` points to `bucket_len(bucket)` initialised cells that
        // are never freed, and `offset < bucket_len(bucket)` by `locate`.
        unsafe { &*cells.add(offset) }
    }

    /// The cell of `site` if this shard has one (any thread).
    pub(crate) fn cell_if_present(&self, site: usize) -> Option<&SiteCell> {
        let (bucket, offset) = locate(site);
        let cells = self.buckets.get(bucket)?.load(Ordering::Acquire);
        // SAFETY: as in `cell`; Acquire pairs with the Release in `grow`.
        (!cells.is_null()).then(|| unsafe { &*cells.add(offset) })
    }

    #[cold]
    #[inline(never)]
    fn grow(&self, bucket: usize) -> *mut SiteCell {
        let cells = crate::record::alloc::uncounted(|| {
            let cells: Box<[SiteCell]> = (0..bucket_len(bucket))
                .map(|_| SiteCell::default())
                .collect();
            Box::into_raw(cells).cast::<SiteCell>()
        });
        self.buckets[bucket].store(cells, Ordering::Release);
        cells
    }

    fn drain_into(&self, into: &Shard) {
        for (bucket, slot) in self.buckets.iter().enumerate() {
            let cells = slot.load(Ordering::Acquire);
            if cells.is_null() {
                continue;
            }
            for offset in 0..bucket_len(bucket) {
                let site = (1 << (FIRST_BITS as usize + bucket)) + offset - (1 << FIRST_BITS);
                // SAFETY: as in `cell`.
                let from = unsafe { &*cells.add(offset) };
                // Any figure: a lock's contended acquisitions are `errors`
                // without `calls`, the watchdog's hold reports violations
                // alone.
                let touched = from.sums().iter().any(|c| c.load(Ordering::Relaxed) != 0)
                    || from
                        .violations
                        .iter()
                        .any(|c| c.load(Ordering::Relaxed) != 0);
                if touched {
                    from.drain_into(into.cell(site));
                }
            }
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        for (bucket, slot) in self.buckets.iter_mut().enumerate() {
            let cells = *slot.get_mut();
            if !cells.is_null() {
                let cells = ptr::slice_from_raw_parts_mut(cells, bucket_len(bucket));
                // SAFETY: the pointer and length are those of the boxed slice
                // leaked in `grow`; `&mut self` proves exclusive access.
                drop(unsafe { Box::from_raw(cells) });
            }
        }
    }
}

struct Registry {
    live: Vec<&'static Shard>,
    free: Vec<&'static Shard>,
    /// Totals of exited threads; written only under the lock.
    retired: Option<&'static Shard>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: Vec::new(),
    free: Vec::new(),
    retired: None,
});

/// Marks a thread whose shard was already handed back (thread teardown).
const DEAD: *const Shard = ptr::dangling();

/// Per-thread state read on every call.
pub(crate) struct Local {
    shard: Cell<*const Shard>,
    /// Inclusive time of measured callees of the innermost open call, ticks.
    pub(crate) child: Cell<u64>,
    /// Set by an `async fn` body that finished with `Err`, read by its wrapper
    /// right after the poll that returned it.
    pub(crate) async_err: Cell<bool>,
}

thread_local! {
    pub(crate) static LOCAL: Local = const {
        Local { shard: Cell::new(ptr::null()), child: Cell::new(0), async_err: Cell::new(false) }
    };
    static OWNER: Owner = const { Owner };
}

/// Hands the thread's shard back when the thread exits.
struct Owner;

impl Drop for Owner {
    fn drop(&mut self) {
        let shard = LOCAL.with(|l| l.shard.replace(DEAD));
        crate::record::alloc::flush_thread();
        if shard.is_null() || shard == DEAD {
            return;
        }
        let mut reg = REGISTRY.lock();
        let retired = *reg
            .retired
            .get_or_insert_with(|| Box::leak(Box::new(Shard::new())));
        // SAFETY: shard pointers in `LOCAL` come from `Box::leak` in `attach`.
        let shard: &'static Shard = unsafe { &*shard };
        shard.drain_into(retired);
        reg.live.retain(|s| !ptr::eq(*s, shard));
        reg.free.push(shard);
    }
}

impl Local {
    /// This thread's shard; `None` while the thread is being torn down.
    #[inline(always)]
    pub(crate) fn shard(&self) -> Option<&'static Shard> {
        let shard = self.shard.get();
        if shard.is_null() || shard == DEAD {
            return self.attach();
        }
        // SAFETY: a non-null, non-DEAD pointer was set by `attach` from a
        // leaked (never freed) shard.
        Some(unsafe { &*shard })
    }

    #[cold]
    #[inline(never)]
    fn attach(&self) -> Option<&'static Shard> {
        if self.shard.get() == DEAD {
            return None;
        }
        crate::record::alloc::uncounted(|| {
            // Registers `Owner`'s destructor; fails once teardown has begun.
            if OWNER.try_with(|_| ()).is_err() {
                return None;
            }
            let mut reg = REGISTRY.lock();
            let shard = match reg.free.pop() {
                Some(shard) => shard,
                None => Box::leak(Box::new(Shard::new())),
            };
            reg.live.push(shard);
            self.shard.set(shard);
            Some(shard)
        })
    }
}

/// Calls `f` with every shard that holds figures (live threads and the
/// retired totals), under the registry lock so no thread's figures move
/// between shards meanwhile.
pub(crate) fn with_shards<R>(f: impl FnOnce(&[&'static Shard]) -> R) -> R {
    let reg = REGISTRY.lock();
    let mut all: Vec<&'static Shard> = reg.live.clone();
    all.extend(reg.retired);
    f(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_site_once() {
        let mut expected = (0, 0);
        // Every site natively; the first buckets under Miri (it is slow).
        let sites = if cfg!(miri) { 32 * 7 } else { MAX_SITES };
        for site in 0..sites {
            let (bucket, offset) = locate(site);
            assert_eq!((bucket, offset), expected, "site {site}");
            assert!(offset < bucket_len(bucket));
            expected = if offset + 1 == bucket_len(bucket) {
                (bucket + 1, 0)
            } else {
                (bucket, offset + 1)
            };
        }
        if !cfg!(miri) {
            assert_eq!(expected.0, TABLE);
        }
    }

    #[test]
    fn cells_are_stable_and_drain() {
        let a = Shard::new();
        let b = Shard::new();
        let c = a.cell(100) as *const SiteCell;
        a.cell(300);
        assert!(ptr::eq(a.cell(100), c));
        bump(&a.cell(100).calls, 3);
        a.cell(100).record_value(1234);
        a.drain_into(&b);
        assert_eq!(a.cell(100).calls.load(Ordering::Relaxed), 0);
        assert_eq!(b.cell(100).calls.load(Ordering::Relaxed), 3);
        let mut dense = vec![0; BUCKETS];
        b.cell(100).add_histogram(&mut dense);
        assert_eq!(dense[index(1234)], 1);
    }
}
