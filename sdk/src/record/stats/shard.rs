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
//! Memory grows with what a thread's calls touched, not with what exists:
//!
//! - A cell is one cache line: the figures every call writes (calls, time,
//!   self time, max, allocations) and the addresses of its histogram's run
//!   and of its [`Rare`] line (errors, async polls, violations), which is
//!   made the first time one of those is written.
//! - Cells come in pages of [`PAGE`], made the first time a site of the page
//!   is called on the thread; a shard's directory of pages never moves.
//! - A cell's histogram is one *run*: the contiguous octaves between the
//!   lowest and the highest it has seen, 16-bit counters, 64 bytes an
//!   octave. A value outside the run replaces it by a wider copy (the old
//!   one stays readable: a snapshot may hold it). A counter about to pass
//!   `u16::MAX` moves its 65 536 into the run's 64-bit counters, made on
//!   first need; a sequence number (odd while the move is under way) lets a
//!   reader see the two halves consistently without ever making the writer
//!   wait.
//! - Pages and runs come from the shard's own arena (no allocator header
//!   per run), in chunks that are touched only as they are handed out.
//!
//! When a thread exits, its shard is folded into the `retired` totals under
//! the registry lock (the same lock a snapshot takes, so a snapshot sees
//! each call exactly once) and put on a free list, where the next new
//! thread reuses it, pages, runs and all; past [`KEEP_FREE`] drained shards
//! it is freed instead, so a pool that shrinks gives its memory back.
//! Memory is bounded by the peak number of concurrent threads, not by how
//! many threads ever ran.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU16, AtomicU32, AtomicU64, Ordering, fence};

use parking_lot::Mutex;

use super::histogram::{BLOCK, BLOCKS, index};

/// Cells per page, as a power of two.
const PAGE_BITS: u32 = 6;
/// Cells per page.
pub(crate) const PAGE: usize = 1 << PAGE_BITS;
/// Pages in a shard's directory.
const PAGES: usize = 1024;
/// Most sites a process can have.
pub(crate) const MAX_SITES: usize = 65_504;
const _: () = assert!(MAX_SITES <= PAGE * PAGES);

/// Per-site violation counters kept per thread: time, allocs, bytes, poll.
pub(crate) const SITE_KINDS: usize = 4;

/// The statistics of one site on one thread that every call writes: one
/// cache line, all zero before the first call.
#[repr(C, align(64))]
pub(crate) struct SiteCell {
    pub(crate) calls: AtomicU64,
    pub(crate) total: AtomicU64,
    pub(crate) self_time: AtomicU64,
    pub(crate) max: AtomicU64,
    pub(crate) allocs: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// The histogram's run (null before the first value).
    run: AtomicPtr<Run>,
    /// The figures only some calls write (null until one does).
    rare: AtomicPtr<Rare>,
}

/// The figures of one site on one thread that a plain synchronous call
/// writes only when it errs or breaks a budget (errors, async polls,
/// violations): a cache line of its own, made the first time one of them
/// is written. A synchronous site that never errs or breaks its budget on a
/// thread does without it; an `async fn` or a span writes its polls here
/// on every call (two lines a call).
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct Rare {
    pub(crate) errors: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) max_poll: AtomicU64,
    pub(crate) violations: [AtomicU64; SITE_KINDS],
}

/// Where the maximum sits in `SiteCell::figures` and `Rare::figures`.
const MAX: usize = 3;
const MAX_POLL: usize = 3;

impl Rare {
    /// Every counter, in field order (`MAX_POLL` is the maximum).
    fn figures(&self) -> [&AtomicU64; 8] {
        let [v0, v1, v2, v3] = &self.violations;
        [
            &self.errors,
            &self.cancelled,
            &self.polls,
            &self.max_poll,
            v0,
            v1,
            v2,
            v3,
        ]
    }
}

const _: () = assert!(std::mem::size_of::<SiteCell>() == 64);
const _: () = assert!(std::mem::size_of::<Rare>() == 64);

/// The header of a histogram run; `octaves × BLOCK` `AtomicU16` counters
/// follow it in the same allocation.
#[repr(C, align(16))]
struct Run {
    /// First octave, and octaves (fixed when the run is made).
    first: u16,
    octaves: u16,
    /// Odd while the owner moves a counter's overflow into `wide`.
    seq: AtomicU32,
    /// `octaves × BLOCK` 64-bit counters, made on the first overflow.
    wide: AtomicPtr<AtomicU64>,
}

/// A run, by raw pointer: the counters lie past the header, so every
/// access derives from the pointer to the whole allocation.
#[derive(Clone, Copy)]
struct RunPtr(*mut Run);

impl Run {
    fn layout(octaves: usize) -> Layout {
        Layout::from_size_align(
            std::mem::size_of::<Run>() + octaves * BLOCK * 2,
            std::mem::align_of::<Run>(),
        )
        .expect("a run's layout")
    }
}

// SAFETY (for every method): a `RunPtr` is made only from a non-null
// pointer returned by `new_run`, whose allocation holds the header and
// `octaves × BLOCK` zeroed `AtomicU16`s right after it, and lives as long
// as the shard whose arena made it (a shard is freed only once no thread
// can reach it: see `Owner::drop`). `first` and `octaves` are written before the run is shared
// and never again.
impl RunPtr {
    fn first(self) -> usize {
        // SAFETY: see above.
        usize::from(unsafe { (*self.0).first })
    }

    fn octaves(self) -> usize {
        // SAFETY: see above.
        usize::from(unsafe { (*self.0).octaves })
    }

    fn seq<'a>(self) -> &'a AtomicU32 {
        // SAFETY: see above.
        unsafe { &(*self.0).seq }
    }

    fn wide_slot<'a>(self) -> &'a AtomicPtr<AtomicU64> {
        // SAFETY: see above.
        unsafe { &(*self.0).wide }
    }

    /// The narrow counters.
    fn counts<'a>(self) -> &'a [AtomicU16] {
        // SAFETY: see above.
        unsafe {
            std::slice::from_raw_parts(self.0.add(1).cast::<AtomicU16>(), self.octaves() * BLOCK)
        }
    }

    /// Narrow counter `k` (below `octaves × BLOCK`), without a bounds check.
    #[inline(always)]
    unsafe fn count<'a>(self, k: usize) -> &'a AtomicU16 {
        // SAFETY: see above; the caller keeps `k` in bounds.
        unsafe { &*self.0.add(1).cast::<AtomicU16>().add(k) }
    }

    /// The wide counters, if the run has them.
    fn wide<'a>(self) -> Option<&'a [AtomicU64]> {
        // Acquire pairs with the Release in `wide_or_make`: the zeros are
        // visible before the pointer.
        let wide = self.wide_slot().load(Ordering::Acquire);
        // SAFETY: a non-null `wide` points to `octaves × BLOCK` zeroed
        // `AtomicU64`s from the same shard's arena.
        (!wide.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(wide, self.octaves() * BLOCK) })
    }

    /// Every counter's full value (narrow and wide) into `out[k]`, as of
    /// one moment: retried if the owner moved an overflow meanwhile. `out`
    /// is at least `octaves × BLOCK` long.
    fn read_into(self, out: &mut [u64]) {
        let n = self.octaves() * BLOCK;
        loop {
            let seq = self.seq().load(Ordering::Acquire);
            if seq & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (o, c) in out[..n].iter_mut().zip(self.counts()) {
                *o = u64::from(c.load(Ordering::Relaxed));
            }
            if let Some(wide) = self.wide() {
                for (o, w) in out[..n].iter_mut().zip(wide) {
                    *o += w.load(Ordering::Relaxed);
                }
            }
            // Seqlock reader: the loads above happen before the second
            // read of `seq`; unchanged and even, no move overlapped them.
            fence(Ordering::Acquire);
            if self.seq().load(Ordering::Relaxed) == seq {
                return;
            }
        }
    }
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

impl SiteCell {
    /// The counters that add up across threads, in a fixed order: calls,
    /// errors, cancelled, total, self time, allocs, bytes, polls.
    pub(crate) fn sums(&self) -> [u64; 8] {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let [calls, total, self_time, _, allocs, bytes] = self.figures().map(load);
        let [errors, cancelled, polls] = self
            .rare_if_made()
            .map_or([0; 3], |r| [&r.errors, &r.cancelled, &r.polls].map(load));
        [
            calls, errors, cancelled, total, self_time, allocs, bytes, polls,
        ]
    }

    /// The cell's own counters, in field order (`MAX` is the maximum).
    fn figures(&self) -> [&AtomicU64; 6] {
        [
            &self.calls,
            &self.total,
            &self.self_time,
            &self.max,
            &self.allocs,
            &self.bytes,
        ]
    }

    /// The rare figures, made on first use (owner thread only).
    #[inline(always)]
    pub(crate) fn rare(&self) -> &Rare {
        // Only this thread stores `rare`.
        let rare = self.rare.load(Ordering::Relaxed);
        if rare.is_null() {
            return self.make_rare();
        }
        // SAFETY: a non-null `rare` came from `rare_from`: a zeroed `Rare`
        // from the shard's arena, which lives as long as the shard.
        unsafe { &*rare }
    }

    #[cold]
    #[inline(never)]
    fn make_rare(&self) -> &Rare {
        /// Where a thread being torn down (no shard any more) writes.
        static DISCARDED: Rare = Rare {
            errors: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            max_poll: AtomicU64::new(0),
            violations: [const { AtomicU64::new(0) }; SITE_KINDS],
        };
        with_own_arena(|arena| self.rare_from(arena)).unwrap_or(&DISCARDED)
    }

    /// The rare figures, made from `arena` if they are not yet.
    fn rare_from(&self, arena: &Arena) -> &Rare {
        if let Some(rare) = self.rare_if_made() {
            return rare;
        }
        let rare = arena.take(Layout::new::<Rare>()).cast::<Rare>();
        // Release: a reader that loads it with Acquire sees the zeros.
        self.rare.store(rare, Ordering::Release);
        // SAFETY: `take` returned a zeroed, aligned `Rare`'s worth of the
        // arena; all zeros is a valid `Rare`.
        unsafe { &*rare }
    }

    /// The rare figures, if a call made them (any thread).
    pub(crate) fn rare_if_made(&self) -> Option<&Rare> {
        let rare = self.rare.load(Ordering::Acquire);
        // SAFETY: as in `rare`.
        (!rare.is_null()).then(|| unsafe { &*rare })
    }

    /// Counts `value` in the histogram (owner thread only).
    #[inline(always)]
    pub(crate) fn record_value(&self, value: u64) {
        let i = index(value);
        // Only this thread stores `run`.
        let run = self.run.load(Ordering::Relaxed);
        if run.is_null() {
            return self.record_outside(i);
        }
        let run = RunPtr(run);
        let at = (i / BLOCK).wrapping_sub(run.first());
        if at >= run.octaves() {
            return self.record_outside(i);
        }
        let k = at * BLOCK + i % BLOCK;
        // SAFETY: `k < octaves × BLOCK`, just checked.
        let counter = unsafe { run.count(k) };
        let n = counter.load(Ordering::Relaxed);
        if n == u16::MAX {
            return spill(run, k, 1, None);
        }
        counter.store(n + 1, Ordering::Relaxed);
    }

    /// A value outside the run: a wider run first.
    #[cold]
    #[inline(never)]
    fn record_outside(&self, i: usize) {
        with_own_arena(|arena| self.record_n(i, 1, arena));
    }

    /// Adds `n` to bucket `i`, making or widening the run from `arena`
    /// (the owner's, or the retired totals' under the registry lock).
    fn record_n(&self, i: usize, n: u64, arena: &Arena) {
        let octave = i / BLOCK;
        let run = match self.run() {
            Some(run) if octave.wrapping_sub(run.first()) < run.octaves() => run,
            _ => self.widen(octave, arena),
        };
        let k = (octave - run.first()) * BLOCK + i % BLOCK;
        let counter = &run.counts()[k];
        let sum = u64::from(counter.load(Ordering::Relaxed)) + n;
        if sum <= u64::from(u16::MAX) {
            counter.store(sum as u16, Ordering::Relaxed);
        } else {
            spill(run, k, n, Some(arena));
        }
    }

    /// Replaces the run by one that also covers `octave`, with the same
    /// counts; returns it. The old run stays where it is (a reader may be
    /// reading it) until the shard is freed.
    #[cold]
    fn widen(&self, octave: usize, arena: &Arena) -> RunPtr {
        let old = self.run.load(Ordering::Relaxed);
        let old = (!old.is_null()).then_some(RunPtr(old));
        // At least twice the old span, toward the new value: a site whose
        // times creep up an octave at a time widens a few times, and the
        // runs it leaves behind add up to less than the last one.
        let (first, last) = match old {
            None => (octave, octave),
            Some(old) => {
                let (first, last) = (old.first(), old.first() + old.octaves() - 1);
                if octave < first {
                    (
                        octave.min((last + 1).saturating_sub(2 * old.octaves())),
                        last,
                    )
                } else {
                    (
                        first,
                        octave.max(first + 2 * old.octaves() - 1).min(BLOCKS - 1),
                    )
                }
            }
        };
        let run = new_run(arena, first, last + 1 - first);
        if let Some(old) = old {
            // Only this thread writes either run: a plain copy.
            let at = (old.first() - first) * BLOCK;
            for (to, from) in run.counts()[at..].iter().zip(old.counts()) {
                to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            if let Some(wide) = old.wide() {
                let to = wide_or_make(run, arena);
                for (to, from) in to[at..].iter().zip(wide) {
                    to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
        // Release: a reader that loads the run with Acquire sees its
        // header and counts.
        self.run.store(run.0, Ordering::Release);
        run
    }

    /// The run, for readers.
    fn run(&self) -> Option<RunPtr> {
        // Acquire pairs with the Release in `widen`.
        let run = self.run.load(Ordering::Acquire);
        (!run.is_null()).then_some(RunPtr(run))
    }

    /// This cell's histogram as of one moment: the first bucket of its
    /// run and the run's counts (in `scratch`, at least `BUCKETS` long);
    /// `None` before its first value.
    pub(crate) fn histogram<'s>(&self, scratch: &'s mut [u64]) -> Option<(usize, &'s [u64])> {
        let run = self.run()?;
        run.read_into(scratch);
        Some((run.first() * BLOCK, &scratch[..run.octaves() * BLOCK]))
    }

    /// Whether a call left anything here: a figure, a run or the rare
    /// line (a lock's contended acquisitions are `errors` without `calls`,
    /// the watchdog's hold reports violations alone). One cache line read.
    fn touched(&self) -> bool {
        self.figures()
            .iter()
            .any(|c| c.load(Ordering::Relaxed) != 0)
            || !self.run.load(Ordering::Relaxed).is_null()
            || !self.rare.load(Ordering::Relaxed).is_null()
    }

    /// Adds every figure of `self` into `into` (of the shard whose arena is
    /// `arena`), then zeroes `self`, keeping its run and rare line for the
    /// shard's next thread. Only called under the registry lock with `self`'s owner
    /// thread gone.
    fn drain_into(&self, into: &SiteCell, arena: &Arena, scratch: &mut [u64]) {
        // Sums add, maxima rise.
        let drain = |from: &AtomicU64, to: &AtomicU64, max: bool| {
            let v = from.swap(0, Ordering::Relaxed);
            if max { raise(to, v) } else { bump(to, v) }
        };
        for (k, (from, to)) in self.figures().into_iter().zip(into.figures()).enumerate() {
            drain(from, to, k == MAX);
        }
        if let Some(from) = self.rare_if_made() {
            let to = into.rare_from(arena);
            for (k, (from, to)) in from.figures().into_iter().zip(to.figures()).enumerate() {
                drain(from, to, k == MAX_POLL);
            }
        }
        let Some((first, counts)) = self.histogram(scratch) else {
            return;
        };
        for (k, &c) in counts.iter().enumerate() {
            if c != 0 {
                into.record_n(first + k, c, arena);
            }
        }
        let run = self.run().expect("a run, read just above");
        for c in run.counts() {
            c.store(0, Ordering::Relaxed);
        }
        for c in run.wide().into_iter().flatten() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Moves counter `k` of `run`, plus `n`, into its wide counter (made from
/// the arena on first need: the owner's when `arena` is `None`), leaving
/// the narrow one at zero. Readers see both halves before the move or both
/// after (`RunPtr::read_into`).
#[cold]
#[inline(never)]
fn spill(run: RunPtr, k: usize, n: u64, arena: Option<&Arena>) {
    let wide = match arena {
        Some(arena) => wide_or_make(run, arena),
        None => match with_own_arena(|arena| wide_or_make(run, arena)) {
            Some(wide) => wide,
            None => return,
        },
    };
    let seq = run.seq().load(Ordering::Relaxed);
    run.seq().store(seq.wrapping_add(1), Ordering::Relaxed);
    // Seqlock writer: the odd value is visible before the moves.
    fence(Ordering::Release);
    let narrow = u64::from(run.counts()[k].load(Ordering::Relaxed));
    bump(&wide[k], narrow + n);
    run.counts()[k].store(0, Ordering::Relaxed);
    run.seq().store(seq.wrapping_add(2), Ordering::Release);
}

/// Runs `f` with the calling thread's arena — the owner's, for a cell of
/// its own shard, the only kind a thread writes outside the registry lock —
/// without charging the memory to the measured call; `None` while the
/// thread is torn down (no shard).
fn with_own_arena<R>(f: impl FnOnce(&Arena) -> R) -> Option<R> {
    let shard = LOCAL.with(|l| l.shard())?;
    Some(crate::record::alloc::uncounted(|| f(&shard.arena)))
}

/// The run's wide counters, made zeroed from `arena` if it has none.
fn wide_or_make<'a>(run: RunPtr, arena: &Arena) -> &'a [AtomicU64] {
    if let Some(wide) = run.wide() {
        return wide;
    }
    let n = run.octaves() * BLOCK;
    let wide = arena
        .take(Layout::array::<AtomicU64>(n).expect("wide counters"))
        .cast::<AtomicU64>();
    // Release: pairs with the Acquire in `RunPtr::wide`.
    run.wide_slot().store(wide, Ordering::Release);
    // SAFETY: `take` returned `n` zeroed `AtomicU64`s, aligned, from the
    // run's own shard's arena.
    unsafe { std::slice::from_raw_parts(wide, n) }
}

/// A zeroed run of `octaves` octaves from `first`, from `arena`.
fn new_run(arena: &Arena, first: usize, octaves: usize) -> RunPtr {
    debug_assert!(first + octaves <= BLOCKS);
    let run = arena.take(Run::layout(octaves)).cast::<Run>();
    // SAFETY: `take` returned zeroed memory of `Run::layout(octaves)`,
    // aligned for `Run`; zero is a valid `AtomicU32` and a null pointer;
    // the shape is written before the run is shared.
    unsafe {
        (*run).first = first as u16;
        (*run).octaves = octaves as u16;
    }
    RunPtr(run)
}

/// A shard's memory for pages and runs: zeroed chunks (see [`chunk`]),
/// handed out in order (owner only; the retired totals' under the registry lock).
/// Each chunk starts with the previous chunk's address and its own size;
/// chunks are freed with the shard.
struct Arena {
    next: Cell<*mut u8>,
    end: Cell<*mut u8>,
    last: Cell<*mut u8>,
}

/// Bytes a chunk holds (a multiple, for a larger request).
const CHUNK: usize = 64 << 10;
/// A chunk's header: the previous chunk, and this chunk's size.
const HEADER: usize = 64;

impl Arena {
    const fn new() -> Self {
        Self {
            next: Cell::new(ptr::null_mut()),
            end: Cell::new(ptr::null_mut()),
            last: Cell::new(ptr::null_mut()),
        }
    }

    /// `layout.size()` zeroed bytes aligned to `layout.align()` (≤ 64).
    fn take(&self, layout: Layout) -> *mut u8 {
        debug_assert!(layout.align() <= HEADER);
        let next = self.next.get();
        let pad = next.align_offset(layout.align());
        let room = (self.end.get() as usize).saturating_sub(next as usize);
        if next.is_null() || pad.checked_add(layout.size()).is_none_or(|n| n > room) {
            return self.take_new_chunk(layout);
        }
        // SAFETY: `pad + size` bytes from `next` are inside the chunk.
        let at = unsafe { next.add(pad) };
        // SAFETY: as above.
        self.next.set(unsafe { at.add(layout.size()) });
        at
    }

    #[cold]
    fn take_new_chunk(&self, layout: Layout) -> *mut u8 {
        let size = (HEADER + layout.size()).next_multiple_of(CHUNK);
        let chunk = crate::record::alloc::uncounted(|| chunk::get(size));
        // SAFETY: the chunk is `size ≥ HEADER` bytes, aligned to 64.
        unsafe {
            chunk.cast::<*mut u8>().write(self.last.get());
            chunk.cast::<usize>().add(1).write(size);
        }
        self.last.set(chunk);
        // SAFETY: `HEADER + layout.size() ≤ size`, the chunk's length.
        let at = unsafe { chunk.add(HEADER) };
        // SAFETY: as above.
        self.next.set(unsafe { at.add(layout.size()) });
        // SAFETY: as above.
        self.end.set(unsafe { chunk.add(size) });
        at
    }
}

/// Zeroed chunks of memory for arenas, given back to the system when
/// freed: mapped pages where there are (untouched pages of a chunk are not
/// resident, and a freed chunk is unmapped at once, whatever the
/// allocator would keep), the global allocator elsewhere and under Miri.
mod chunk {
    #[cfg(all(unix, not(miri)))]
    pub(super) fn get(size: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping of `size` bytes, no address
        // hint; the result is checked.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if at == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(layout(size));
        }
        at.cast()
    }

    /// Frees a chunk from [`get`] of `size` bytes.
    ///
    /// # Safety
    ///
    /// `at` came from `get(size)` and nothing uses it any more.
    #[cfg(all(unix, not(miri)))]
    pub(super) unsafe fn put(at: *mut u8, size: usize) {
        // SAFETY: the caller's contract; unmapping cannot fail for a whole
        // mapping made by `get`.
        unsafe { libc::munmap(at.cast(), size) };
    }

    #[cfg(not(all(unix, not(miri))))]
    pub(super) fn get(size: usize) -> *mut u8 {
        // SAFETY: the layout's size is not zero.
        let at = unsafe { std::alloc::alloc_zeroed(layout(size)) };
        if at.is_null() {
            std::alloc::handle_alloc_error(layout(size));
        }
        at
    }

    /// Frees a chunk from [`get`] of `size` bytes.
    ///
    /// # Safety
    ///
    /// `at` came from `get(size)` and nothing uses it any more.
    #[cfg(not(all(unix, not(miri))))]
    pub(super) unsafe fn put(at: *mut u8, size: usize) {
        // SAFETY: the caller's contract: `at` was allocated with this layout.
        unsafe { std::alloc::dealloc(at, layout(size)) };
    }

    fn layout(size: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(size, super::HEADER).expect("a chunk's layout")
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let mut chunk = self.last.get();
        while !chunk.is_null() {
            // SAFETY: every chunk was written by `take_new_chunk` with its
            // predecessor and size, and is freed once, here.
            unsafe {
                let prev = chunk.cast::<*mut u8>().read();
                let size = chunk.cast::<usize>().add(1).read();
                chunk::put(chunk, size);
                chunk = prev;
            }
        }
    }
}

/// One thread's table of cells.
pub(crate) struct Shard {
    pages: [AtomicPtr<SiteCell>; PAGES],
    arena: Arena,
}

// SAFETY: `arena` (the only non-`Sync` field) is used by the owning thread
// alone, or under the registry lock when its owner is gone; other threads
// only read cells and runs through atomics.
unsafe impl Sync for Shard {}

impl Shard {
    fn new() -> Self {
        Self {
            pages: [const { AtomicPtr::new(ptr::null_mut()) }; PAGES],
            arena: Arena::new(),
        }
    }

    /// The cell of `site` for the owning thread, making its page if needed.
    #[inline(always)]
    pub(crate) fn cell(&self, site: usize) -> &SiteCell {
        // Only the owner stores page pointers of a live shard.
        let mut page = self.pages[site >> PAGE_BITS].load(Ordering::Relaxed);
        if page.is_null() {
            page = self.new_page(site >> PAGE_BITS);
        }
        // SAFETY: `page` points to `PAGE` zeroed cells that live as long as
        // the shard; `site % PAGE < PAGE`.
        unsafe { &*page.add(site & (PAGE - 1)) }
    }

    /// The cell of `site` if this shard has one (any thread).
    pub(crate) fn cell_if_present(&self, site: usize) -> Option<&SiteCell> {
        let page = self.pages.get(site >> PAGE_BITS)?.load(Ordering::Acquire);
        // SAFETY: as in `cell`; Acquire pairs with the Release in `new_page`.
        (!page.is_null()).then(|| unsafe { &*page.add(site & (PAGE - 1)) })
    }

    #[cold]
    #[inline(never)]
    fn new_page(&self, page: usize) -> *mut SiteCell {
        let cells = self
            .arena
            .take(Layout::array::<SiteCell>(PAGE).expect("a page's layout"))
            .cast::<SiteCell>();
        // Release: a reader that loads the page with Acquire sees zeros.
        self.pages[page].store(cells, Ordering::Release);
        cells
    }

    /// Calls `f(site, cell)` for each cell of a site below `count` that has
    /// a figure, page by page in memory order; pages no call made are
    /// skipped. Any figure counts: a lock's contended acquisitions are
    /// `errors` without `calls`, the watchdog's hold reports violations
    /// alone.
    pub(crate) fn for_each_touched(&self, count: usize, mut f: impl FnMut(usize, &SiteCell)) {
        for (page, slot) in self.pages.iter().enumerate().take(count.div_ceil(PAGE)) {
            let cells = slot.load(Ordering::Acquire);
            if cells.is_null() {
                continue;
            }
            let n = PAGE.min(count - page * PAGE);
            for offset in 0..n {
                // SAFETY: as in `cell_if_present`.
                let cell = unsafe { &*cells.add(offset) };
                if offset + AHEAD < n {
                    // SAFETY: as above, `offset + AHEAD < n ≤ PAGE`.
                    prefetch_run(unsafe { &*cells.add(offset + AHEAD) });
                }
                if cell.touched() {
                    f(page * PAGE + offset, cell);
                }
            }
        }
    }

    /// Adds every touched cell into `into` and zeroes it (see
    /// `SiteCell::drain_into`).
    fn drain_into(&self, into: &Shard) {
        let mut scratch = [0u64; BLOCKS * BLOCK];
        self.for_each_touched(MAX_SITES, |site, from| {
            from.drain_into(into.cell(site), &into.arena, &mut scratch);
        });
    }
}

/// Cells ahead whose run a reader walking a page asks the memory for
/// early (runs lie apart from the page; the reads would wait on each).
const AHEAD: usize = 8;

/// Hints that `cell`'s run will be read soon.
#[inline(always)]
fn prefetch_run(cell: &SiteCell) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let run = cell.run.load(Ordering::Relaxed);
        if !run.is_null() {
            // SAFETY: a prefetch reads nothing into the program and cannot
            // fault; `run` is a live run's address anyway. (Newer toolchains
            // make the intrinsic safe.)
            #[allow(unused_unsafe)]
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    run.cast::<i8>(),
                )
            };
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = cell;
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

/// Shards freed so far (tests).
#[cfg(test)]
static FREED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Drained shards kept for new threads to reuse; past that, an ending
/// thread's shard is freed (a pool that shrinks gives its memory back).
const KEEP_FREE: usize = 16;

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
        /// The thread's allocation balance goes to the process totals last,
        /// after what handing the shard back allocated and freed.
        struct FlushLast;
        impl Drop for FlushLast {
            fn drop(&mut self) {
                crate::record::alloc::flush_thread();
            }
        }
        let _flush = FlushLast;
        let shard = LOCAL.with(|l| l.shard.replace(DEAD));
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
        if reg.free.len() < KEEP_FREE {
            reg.free.push(shard);
            return;
        }
        drop(reg);
        #[cfg(test)]
        FREED.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the shard came from `Box::leak` in `attach`; it is in
        // neither list any more, its thread (this one) no longer reaches it
        // (`LOCAL` is `DEAD`), and every other reader reaches shards only
        // through the lists under the registry lock. No reference to it
        // outlives this point.
        drop(unsafe { Box::from_raw(ptr::from_ref(shard).cast_mut()) });
    }
}

impl Local {
    /// This thread's shard; `None` while the thread is being torn down.
    /// `'static` for this thread only: the shard may be freed once the
    /// thread ends, so neither it nor its cells may be kept past the call
    /// at hand or given to another thread.
    #[inline(always)]
    pub(crate) fn shard(&self) -> Option<&'static Shard> {
        let shard = self.shard.get();
        if shard.is_null() || shard == DEAD {
            return self.attach();
        }
        // SAFETY: a non-null, non-DEAD pointer was set by `attach` from a
        // leaked shard, freed only after this thread's `LOCAL` is `DEAD`.
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
    use crate::record::stats::BUCKETS;

    /// The histogram of `cell`, dense.
    fn dense(cell: &SiteCell) -> Vec<u64> {
        let mut dense = vec![0; BUCKETS];
        if let Some((first, counts)) = cell.histogram(&mut vec![0; BUCKETS]) {
            dense[first..first + counts.len()].copy_from_slice(counts);
        }
        dense
    }

    #[test]
    fn pages_give_every_site_a_cell_of_its_own() {
        let a = Shard::new();
        let sites = if cfg!(miri) { PAGE * 3 } else { MAX_SITES };
        let mut seen = std::collections::HashSet::new();
        for site in (0..sites).step_by(if cfg!(miri) { 7 } else { 1 }) {
            let cell = a.cell(site);
            assert!(seen.insert(ptr::from_ref(cell) as usize), "site {site}");
            assert!(ptr::eq(a.cell_if_present(site).unwrap(), cell));
        }
    }

    #[test]
    fn cells_are_stable_and_drain() {
        let a = Shard::new();
        let b = Shard::new();
        assert!(a.cell_if_present(100).is_none());
        let c = a.cell(100) as *const SiteCell;
        a.cell(300);
        assert!(ptr::eq(a.cell(100), c));
        bump(&a.cell(100).calls, 3);
        a.cell(100).record_n(index(1234), 1, &a.arena);
        assert!(a.cell(100).rare_if_made().is_none());
        bump(&a.cell(100).rare_from(&a.arena).violations[2], 4);
        a.drain_into(&b);
        assert_eq!(a.cell(100).sums(), [0; 8]);
        assert_eq!(b.cell(100).sums()[0], 3);
        let rare = |c: &SiteCell| c.rare_if_made().unwrap().violations[2].load(Ordering::Relaxed);
        assert_eq!((rare(a.cell(100)), rare(b.cell(100))), (0, 4));
        assert_eq!(dense(a.cell(100)).iter().sum::<u64>(), 0, "drained");
        assert_eq!(dense(b.cell(100))[index(1234)], 1);
    }

    #[test]
    fn a_run_widens_both_ways_and_keeps_its_counts() {
        let a = Shard::new();
        let cell = a.cell(5);
        let values = [1_000u64, 40, 1 << 30, 1_001, 3, 1 << 30];
        for v in values {
            cell.record_n(index(v), 1, &a.arena);
        }
        let d = dense(cell);
        assert_eq!(d.iter().sum::<u64>(), values.len() as u64);
        for v in values {
            assert!(d[index(v)] >= 1, "{v}");
        }
        assert_eq!(d[index(1 << 30)], 2);
        let run = cell.run().unwrap();
        assert_eq!(run.first(), index(3) / BLOCK);
        assert_eq!(run.first() + run.octaves() - 1, index(1 << 30) / BLOCK);
    }

    #[test]
    fn a_run_creeping_up_an_octave_at_a_time_widens_a_few_times() {
        let a = Shard::new();
        let cell = a.cell(9);
        let mut runs = std::collections::HashSet::new();
        for octave in 2..BLOCKS {
            cell.record_n(octave * BLOCK, 1, &a.arena);
            runs.insert(cell.run().unwrap().0 as usize);
        }
        // Twice the span each time: 1, 2, 4, … octaves.
        assert!(runs.len() <= 7, "{} runs", runs.len());
        let d = dense(cell);
        assert_eq!(d.iter().sum::<u64>(), (BLOCKS - 2) as u64);
    }

    #[test]
    fn a_full_narrow_counter_spills_into_the_wide_one_and_widening_keeps_both() {
        let a = Shard::new();
        let cell = a.cell(0);
        let i = index(5_000);
        cell.record_n(i, u64::from(u16::MAX), &a.arena);
        assert!(cell.run().unwrap().wide().is_none(), "no overflow yet");
        cell.record_n(i, 1, &a.arena);
        assert!(cell.run().unwrap().wide().is_some(), "spilled");
        cell.record_n(i, 100_000, &a.arena);
        cell.record_n(i, 2, &a.arena);
        assert_eq!(dense(cell)[i], 65_535 + 1 + 100_000 + 2);
        // A wider run carries narrow and wide counts over.
        cell.record_n(index(7), 1, &a.arena);
        let d = dense(cell);
        assert_eq!((d[i], d[index(7)]), (165_538, 1));
        let b = Shard::new();
        a.drain_into(&b);
        assert_eq!(dense(b.cell(0))[i], 165_538);
    }

    /// The same with large adds (a spill every other), small enough for Miri
    /// to check the seqlock's orderings and look for data races.
    ///
    /// A count the owner writes without a spill is a relaxed store, so a
    /// reader may see it ahead of anything else the owner published: only
    /// a bound the reader holds itself is a sound upper bound. The writer
    /// makes add `k` only once the reader has granted it, and the reader
    /// grants the next add only once the last one is published, so a read
    /// overlaps at most one add and sees at most what was granted.
    #[test]
    fn readers_see_whole_spills_only() {
        // Sets a value if its thread panics: a failed check on one side
        // lets the other side end, so the test fails instead of hanging.
        struct OnPanic<'a>(&'a AtomicU64, u64);
        impl Drop for OnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.store(self.1, Ordering::Release);
                }
            }
        }
        const ADDS: u64 = 40;
        // A spill every second add (the narrow counters hold 65 535): most
        // reads overlap an add that spills.
        const N: u64 = 40_000;
        let a = Shard::new();
        let i = index(900);
        // What the writer has added so far, published after each add.
        let added = AtomicU64::new(0);
        // How many adds the reader allows.
        let granted = AtomicU64::new(1);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Fails the reader's next check.
                let _on_failure = OnPanic(&added, u64::MAX);
                for k in 1..=ADDS {
                    while granted.load(Ordering::Acquire) < k {
                        std::thread::yield_now();
                    }
                    a.cell(3).record_n(i, N, &a.arena);
                    added.store(k * N, Ordering::Release);
                }
            });
            // Lets the writer run to its end.
            let _on_failure = OnPanic(&granted, u64::MAX);
            let mut scratch = vec![0; BUCKETS];
            let (mut last, mut allowed) = (0, 1);
            loop {
                let before = added.load(Ordering::Acquire);
                let n = a
                    .cell_if_present(3)
                    .and_then(|c| c.histogram(&mut scratch))
                    .map_or(0, |(first, counts)| counts[i - first]);
                // At least what was published before and read last, at most
                // what was granted, and whole adds only.
                assert!(
                    n >= before.max(last) && n <= allowed * N && n.is_multiple_of(N),
                    "{before} ≤ {n} ≤ {allowed} × {N}, after {last}"
                );
                last = n;
                if before == ADDS * N {
                    break;
                }
                if before == allowed * N {
                    allowed += 1;
                    granted.store(allowed, Ordering::Release);
                }
            }
            assert_eq!(last, ADDS * N);
        });
    }

    /// More threads at once than drained shards are kept: when they end,
    /// the shards past the kept ones are freed, and every call they made is
    /// in the retired totals.
    #[test]
    fn shards_past_those_kept_are_freed_with_their_figures_kept() {
        const SITE: usize = MAX_SITES - 2;
        let threads = if cfg!(miri) {
            KEEP_FREE + 4
        } else {
            3 * KEEP_FREE
        };
        let freed = FREED.load(Ordering::Relaxed);
        let all_in = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let cell = LOCAL.with(|l| l.shard()).unwrap().cell(SITE);
                        bump(&cell.calls, 1);
                        cell.record_value(7);
                        all_in.wait();
                    })
                })
                .collect();
            // `join` returns once a thread is gone, its thread-locals (and
            // so its shard's hand-back) included; the end of the scope alone
            // does not wait for those.
            for h in handles {
                h.join().unwrap();
            }
        });
        assert!(FREED.load(Ordering::Relaxed) > freed, "no shard freed");
        let (calls, values) = with_shards(|shards| {
            let mut scratch = vec![0; BUCKETS];
            shards
                .iter()
                .filter_map(|s| s.cell_if_present(SITE))
                .map(|c| {
                    let n = c.histogram(&mut scratch).map_or(0, |(_, h)| h.iter().sum());
                    (c.sums()[0], n)
                })
                .fold((0, 0), |(a, b), (c, n)| (a + c, b + n))
        });
        assert_eq!((calls, values), (threads as u64, threads as u64));
    }

    /// A reader beside a writer that spills over and over never sees a
    /// count fall or jump past what was written.
    #[test]
    #[cfg_attr(miri, ignore = "hundreds of thousands of calls")]
    fn readers_see_counts_rise_steadily_across_spills() {
        const SITE: usize = MAX_SITES - 1;
        const CALLS: u64 = 400_000;
        let (tx, rx) = std::sync::mpsc::channel();
        let (let_go, release) = std::sync::mpsc::channel::<()>();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Set by the reader after its first read: the writer's calls then
        // overlap reads even if the reader is slow to be scheduled.
        let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Sets `done` as the writer's calls end, or as it panics: the
        // reader's loop ends either way.
        struct Done(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let writer = {
            let (done, reading) = (Done(done.clone()), reading.clone());
            std::thread::spawn(move || {
                let shard = LOCAL.with(|l| l.shard()).unwrap();
                let cell = shard.cell(SITE);
                cell.record_value(5_000);
                tx.send(shard).unwrap();
                while !reading.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                for _ in 1..CALLS {
                    cell.record_value(5_000);
                }
                drop(done);
                // Alive (its shard in use) until the reader is through.
                let _ = release.recv();
            })
        };
        let shard: &'static Shard = rx.recv().unwrap();
        let (mut last, mut reads) = (0, 0u64);
        let mut scratch = vec![0; BUCKETS];
        loop {
            let finished = done.load(Ordering::Acquire);
            let (first, counts) = shard
                .cell_if_present(SITE)
                .unwrap()
                .histogram(&mut scratch)
                .unwrap();
            let n = counts[index(5_000) - first];
            // Before the check: a failed one does not leave the writer
            // waiting.
            reading.store(true, Ordering::Release);
            assert!(n >= last && n <= CALLS, "{last} then {n}");
            last = n;
            reads += 1;
            if finished {
                break;
            }
        }
        assert_eq!(last, CALLS);
        assert!(reads > 1);
        drop(let_go);
        writer.join().unwrap();
    }
}
