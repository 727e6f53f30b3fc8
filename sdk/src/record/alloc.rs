//! Heap allocation counting: [`CountingAlloc`].
//!
//! Each thread keeps its own running totals (allocations, bytes) in a
//! `const`-initialised thread local with no destructor, so the allocator
//! touches no shared memory per allocation. A measured call reads the
//! totals on entry and exit; the difference is what it allocated, callees
//! included.
//!
//! Live heap bytes are tracked per thread as a signed balance and folded into
//! one global counter whenever a thread's balance moves by more than
//! 32 KiB; the global peak is updated at those moments. The live and
//! peak figures are therefore exact to within 32 KiB per thread, at the
//! price of one shared atomic per 32 KiB of net heap growth or shrinkage
//! instead of one per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// A thread's heap balance is folded into the global live count when it moves
/// this far from zero.
pub(crate) const FLUSH_BYTES: i64 = 32 * 1024;

/// A [`GlobalAlloc`] wrapper that counts allocations and bytes per thread.
///
/// Install it as the global allocator to get allocation counts in every
/// measured function; without it, timing still works and allocation figures
/// are reported as unavailable.
///
/// ```
/// #[global_allocator]
/// static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();
///
/// let before = overrun::alloc::thread_allocs();
/// let v = Box::new(7u64);
/// assert_eq!(overrun::alloc::thread_allocs().count - before.count, 1);
/// assert_eq!(overrun::alloc::thread_allocs().bytes - before.bytes, 8);
/// drop(v);
/// assert!(overrun::alloc::is_installed());
/// ```
///
/// Any other allocator can be wrapped with [`CountingAlloc::new`].
///
/// # Cost model
///
/// Per allocation: a few thread-local adds, no atomic read-modify-write
/// (see the benches for the figure against the bare `System` allocator). A `realloc` counts as one
/// allocation of the new size (and the release of the old block), the
/// convention of heap profilers such as dhat.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc<A = System> {
    inner: A,
}

impl CountingAlloc<System> {
    /// Counting over the system allocator.
    pub const fn system() -> Self {
        Self { inner: System }
    }
}

impl<A> CountingAlloc<A> {
    /// Counting over `inner`.
    ///
    /// ```
    /// use std::alloc::System;
    /// static ALLOC: overrun::CountingAlloc<System> = overrun::CountingAlloc::new(System);
    /// ```
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

struct Counters {
    count: Cell<u64>,
    bytes: Cell<u64>,
    /// Net bytes allocated minus freed on this thread since the last fold.
    balance: Cell<i64>,
}

thread_local! {
    // `const` and no `Drop`: accessing it is a plain thread-pointer-relative
    // load, it needs no lazy registration (which could allocate, from inside
    // the allocator) and it stays usable while the thread is being torn down.
    static COUNTERS: Counters = const {
        Counters { count: Cell::new(0), bytes: Cell::new(0), balance: Cell::new(0) }
    };
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

#[inline(always)]
fn on_alloc(size: usize) {
    COUNTERS.with(|c| {
        c.count.set(c.count.get().wrapping_add(1));
        c.bytes.set(c.bytes.get().wrapping_add(size as u64));
        let balance = c.balance.get() + size as i64;
        if balance > FLUSH_BYTES {
            fold(balance);
            c.balance.set(0);
        } else {
            c.balance.set(balance);
        }
    });
}

#[inline(always)]
fn on_free(size: usize) {
    COUNTERS.with(|c| {
        let balance = c.balance.get() - size as i64;
        if balance < -FLUSH_BYTES {
            fold(balance);
            c.balance.set(0);
        } else {
            c.balance.set(balance);
        }
    });
}

#[cold]
#[inline(never)]
fn fold(balance: i64) {
    // Relaxed: these are statistics; no other memory is published through them.
    let live = LIVE.fetch_add(balance, Ordering::Relaxed) + balance;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// Folds this thread's pending heap balance into the global live count (done
/// when a thread that ran measured code exits).
pub(crate) fn flush_thread() {
    let balance = COUNTERS.with(|c| c.balance.replace(0));
    if balance != 0 {
        fold(balance);
    }
}

// SAFETY: every method forwards to `inner` with the caller's arguments
// unchanged and returns its result unchanged; the counting touches only
// thread-local cells and atomics and never allocates, so `CountingAlloc`
// upholds exactly the contract that `A` upholds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded under the caller's guarantees for `layout`.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded under the caller's guarantees for `layout`.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (so from
        // `inner`) with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) };
        on_free(layout.size());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded under the caller's guarantees for `ptr`, `layout`
        // and `new_size`.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        new
    }
}

/// Running allocation totals of one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadAllocs {
    /// Allocations made by this thread so far.
    pub count: u64,
    /// Bytes allocated by this thread so far.
    pub bytes: u64,
}

/// This thread's running allocation totals (zero unless [`CountingAlloc`] is
/// the global allocator).
///
/// ```
/// let a = overrun::alloc::thread_allocs();
/// let b = overrun::alloc::thread_allocs();
/// assert!(b.count >= a.count);
/// ```
#[inline(always)]
pub fn thread_allocs() -> ThreadAllocs {
    COUNTERS.with(|c| ThreadAllocs {
        count: c.count.get(),
        bytes: c.bytes.get(),
    })
}

/// Whether [`CountingAlloc`] is the global allocator, i.e. whether
/// allocation figures mean anything.
///
/// ```
/// // In a doctest without `#[global_allocator]` this is false.
/// let _ = overrun::alloc::is_installed();
/// ```
pub fn is_installed() -> bool {
    // Decided by a probe allocation rather than a flag written on every
    // allocation: if this thread's count moves, `CountingAlloc` served it.
    if INSTALLED.load(Ordering::Relaxed) {
        return true;
    }
    let before = thread_allocs().count;
    drop(std::hint::black_box(Box::new(0u8)));
    let installed = thread_allocs().count != before;
    if installed {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    installed
}

/// Live heap bytes, to within 32 KiB per thread; `None` without
/// [`CountingAlloc`].
///
/// ```
/// #[global_allocator]
/// static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();
///
/// let before = overrun::alloc::heap_live_bytes().unwrap();
/// let big = vec![0u8; 1 << 20];
/// let after = overrun::alloc::heap_live_bytes().unwrap();
/// assert!(after >= before + (1 << 19), "{before} -> {after}");
/// drop(big);
/// ```
pub fn heap_live_bytes() -> Option<u64> {
    is_installed().then(|| LIVE.load(Ordering::Relaxed).max(0) as u64)
}

/// Highest live heap bytes seen, to within 32 KiB per thread; `None`
/// without [`CountingAlloc`].
///
/// ```
/// // Without `CountingAlloc` installed there is no figure, not 0.
/// assert_eq!(overrun::alloc::heap_peak_bytes(), None);
/// ```
pub fn heap_peak_bytes() -> Option<u64> {
    is_installed().then(|| PEAK.load(Ordering::Relaxed).max(0) as u64)
}

/// Runs `f` without charging its allocations to this thread's totals, so
/// overrun's own bookkeeping (first-call registration, growing a shard) never
/// shows up in a measured function's figures. The live heap count still sees
/// them: they are real memory.
#[inline]
pub(crate) fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    let before = thread_allocs();
    let result = f();
    COUNTERS.with(|c| {
        c.count.set(before.count);
        c.bytes.set(before.bytes);
    });
    result
}
