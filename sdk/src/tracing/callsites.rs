//! Span callsites to sites: a fixed table read without a lock on every
//! span, filled once per callsite under a lock.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::layer::Callsite;

/// Slots of the lock-free table; callsites past it (or past `PROBES`
/// collisions) are found under the lock.
const SLOTS: usize = 4096;
const PROBES: usize = 16;

struct Slot {
    /// The callsite's metadata address; 0 when free. Set under `CREATE`.
    key: AtomicUsize,
    /// Its site, set (under `CREATE`) right after the key.
    site: OnceLock<&'static Callsite>,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        key: AtomicUsize::new(0),
        site: OnceLock::new(),
    }
}; SLOTS];

/// Serialises creating sites, and holds those the table has no room for.
static CREATE: Mutex<Vec<(usize, &'static Callsite)>> = Mutex::new(Vec::new());

fn start(key: usize) -> usize {
    // Metadata are statics, 8-byte aligned at least: mix the bits above.
    let h = (key as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 40) as usize % SLOTS
}

/// The site of the callsite at `key`, if it has one (no lock in the table:
/// a key seen without its site yet is "not found", and the caller takes the
/// lock; past the table, under the lock).
#[inline]
pub(super) fn get(key: usize) -> Option<&'static Callsite> {
    let at = start(key);
    for i in 0..PROBES {
        let slot = &TABLE[(at + i) % SLOTS];
        match slot.key.load(Ordering::Acquire) {
            k if k == key => return slot.site.get().copied(),
            0 => return None,
            _ => {}
        }
    }
    let beside = CREATE.lock();
    beside.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
}

#[cold]
pub(super) fn get_or_create(
    key: usize,
    make: impl FnOnce() -> &'static Callsite,
) -> &'static Callsite {
    let mut overflow = CREATE.lock();
    if let Some(site) = get_locked(key, &overflow) {
        return site;
    }
    let site = make();
    let at = start(key);
    for i in 0..PROBES {
        let slot = &TABLE[(at + i) % SLOTS];
        if slot.key.load(Ordering::Acquire) == 0 {
            let _ = slot.site.set(site);
            // Release after the site: a reader that sees the key finds it.
            slot.key.store(key, Ordering::Release);
            return site;
        }
    }
    overflow.push((key, site));
    site
}

fn get_locked(key: usize, overflow: &[(usize, &'static Callsite)]) -> Option<&'static Callsite> {
    let at = start(key);
    for i in 0..PROBES {
        let slot = &TABLE[(at + i) % SLOTS];
        match slot.key.load(Ordering::Acquire) {
            k if k == key => return slot.site.get().copied(),
            0 => break,
            _ => {}
        }
    }
    overflow.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_site_per_callsite_past_the_table_too() {
        use crate::record::site::SiteKind;
        use crate::vocab::budget::Budget;
        let leak = |i: usize| -> &'static Callsite {
            let site = Box::leak(Box::new(crate::record::site::Site::new(
                "s",
                "t",
                "f",
                i as u32,
                SiteKind::Span,
                Budget::none(),
            )));
            Box::leak(Box::new(Callsite { site, error: false }))
        };
        // More callsites than the table holds: the rest are found beside it.
        let keys: Vec<usize> = (1..=SLOTS + 100)
            .map(|i| (i << 4) | 0x7000_0000_0000)
            .collect();
        let sites: Vec<&'static Callsite> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| get_or_create(k, || leak(i)))
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            assert!(std::ptr::eq(get(k).unwrap(), sites[i]));
            assert!(std::ptr::eq(get_or_create(k, || unreachable!()), sites[i]));
        }
        assert!(get(0x7000_0000_0008).is_none());
    }
}
