//! What an open span's close needs — its callsite, creation time, error
//! flag and allocation sums — kept by span id in a fixed table, without a
//! lock and without the registry's per-span extensions (a boxed value and
//! a lock taken at every exit and at close).
//!
//! A span claims a slot near its id's hash with one compare-and-swap when
//! it is created and frees it with a store when it closes; in between its
//! slot is found by reading ids. A slot also names the layer that owns the
//! span (its address): two subscribers (a global one and one set with
//! `with_default`) give out the same ids. Slots are a cache line each. A
//! span that finds no free slot among its [`PROBES`] keeps its state in the
//! registry's extensions instead (the layer's fallback).
//!
//! Orderings: a slot's fields are stored right after its id is claimed, and
//! read (at exit, close, or an error) only on a thread that the span itself
//! reached — the registry's and the program's own synchronisation order
//! those reads after the stores, so the fields are `Relaxed`. The id is
//! claimed with `Acquire` and freed with `Release`, so a slot's next span
//! sees the previous one's close complete; `find` loads ids with `Acquire`
//! to pair with that release.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use super::layer::Callsite;

/// Open spans the table holds at once (more spill to the fallback).
const SLOTS: usize = 8192;
/// Slots a span's id may use.
const PROBES: usize = 8;

/// One open span.
#[repr(align(64))]
pub(super) struct Slot {
    /// The span's id; 0 when free.
    id: AtomicU64,
    /// The layer the span belongs to (its address).
    owner: AtomicUsize,
    /// Its callsite (leaked, never freed).
    callsite: AtomicPtr<Callsite>,
    /// Its creation time, in clock ticks.
    pub(super) start: AtomicU64,
    /// It recorded an `error` field, or an ERROR event happened inside it.
    pub(super) error: AtomicBool,
    /// Allocations and bytes of its entered intervals (on every thread).
    pub(super) allocs: AtomicU64,
    pub(super) bytes: AtomicU64,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        id: AtomicU64::new(0),
        owner: AtomicUsize::new(0),
        callsite: AtomicPtr::new(std::ptr::null_mut()),
        start: AtomicU64::new(0),
        error: AtomicBool::new(false),
        allocs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    }
}; SLOTS];

#[inline]
fn first(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % SLOTS
}

/// A slot for the new span `id`, its fields set; `None` when its probes
/// are all taken.
#[inline]
pub(super) fn open(
    owner: usize,
    id: u64,
    callsite: &'static Callsite,
    start: u64,
    error: bool,
) -> Option<&'static Slot> {
    let at = first(id);
    let slot = (0..PROBES).map(|i| &TABLE[(at + i) % SLOTS]).find(|s| {
        s.id.load(Ordering::Relaxed) == 0
            && s.id
                .compare_exchange(0, id, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    })?;
    // Read elsewhere only after the span itself reached that thread (the
    // registry's and the program's own synchronisation order these).
    slot.owner.store(owner, Ordering::Relaxed);
    slot.callsite
        .store(std::ptr::from_ref(callsite).cast_mut(), Ordering::Relaxed);
    slot.start.store(start, Ordering::Relaxed);
    slot.error.store(error, Ordering::Relaxed);
    slot.allocs.store(0, Ordering::Relaxed);
    slot.bytes.store(0, Ordering::Relaxed);
    Some(slot)
}

/// The slot of the open span `id` of the layer `owner`, if it has one.
/// Every probe is read (a freed slot does not end the search): the ids of
/// one layer's live spans are unique.
#[inline]
pub(super) fn find(owner: usize, id: u64) -> Option<&'static Slot> {
    let at = first(id);
    (0..PROBES)
        .map(|i| &TABLE[(at + i) % SLOTS])
        .find(|s| s.id.load(Ordering::Acquire) == id && s.owner.load(Ordering::Relaxed) == owner)
}

impl Slot {
    /// The span's callsite (`None` only for a slot read out of turn).
    #[inline]
    pub(super) fn callsite(&self) -> Option<&'static Callsite> {
        let callsite = NonNull::new(self.callsite.load(Ordering::Relaxed))?;
        // SAFETY: every pointer stored here came from a `&'static Callsite`
        // (callsites are leaked and never freed).
        Some(unsafe { callsite.as_ref() })
    }

    /// Frees the slot (the span closed). The owner is cleared first: a
    /// finder that sees the slot's next id (claimed by a compare-and-swap
    /// that reads this release) sees no stale owner beside it, so another
    /// layer's span of the same id is never taken for this one.
    #[inline]
    pub(super) fn close(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.id.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs() -> &'static Callsite {
        use crate::record::site::{Site, SiteKind};
        use crate::vocab::budget::Budget;
        let site = Box::leak(Box::new(Site::new(
            "s",
            "t",
            "f",
            1,
            SiteKind::Span,
            Budget::none(),
        )));
        Box::leak(Box::new(Callsite { site, error: false }))
    }

    #[test]
    fn spans_find_their_own_slot_and_spill_when_their_probes_are_full() {
        let callsite = cs();
        // Ids that hash to the same first slot: the multiplier's inverse
        // walks them apart, so pick ids by their slot instead.
        let target = first(0x5EED);
        let same: Vec<u64> = (1..u64::MAX)
            .filter(|&id| first(id) == target)
            .take(PROBES + 1)
            .collect();
        let slots: Vec<&Slot> = same[..PROBES]
            .iter()
            .map(|&id| open(1, id, callsite, id * 2, false).expect("a free probe"))
            .collect();
        assert!(
            open(1, same[PROBES], callsite, 0, false).is_none(),
            "probes full"
        );
        for &id in &same[..PROBES] {
            let s = find(1, id).unwrap();
            assert!(std::ptr::eq(s.callsite().unwrap(), callsite));
            assert!(find(2, id).is_none(), "another layer's id");
            assert_eq!(s.start.load(Ordering::Relaxed), id * 2);
        }
        slots[3].close();
        assert!(find(1, same[3]).is_none());
        assert!(find(1, same[5]).is_some(), "found past a freed slot");
        let again = open(1, same[PROBES], callsite, 7, true).expect("the freed slot");
        assert!(std::ptr::eq(again, slots[3]));
        for s in slots {
            s.close();
        }
    }
}
