//! Per-site aggregates: counts, time, allocations and a latency histogram,
//! sharded per thread and merged on snapshot.

/// Default upper bounds of exporters' duration histograms, in seconds: 1 µs
/// to 10 s, three per decade (1, 2.5, 5). Each of overrun's own buckets is
/// ≤1.6% wide, so they map onto these with that error at most.
///
/// ```
/// assert_eq!(overrun::stats::DEFAULT_BUCKETS.len(), 22);
/// ```
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
];

pub(crate) mod histogram;
pub(crate) mod shard;

use std::sync::atomic::Ordering;

pub use histogram::Histogram;
pub(crate) use histogram::{BUCKETS, index as bucket_index};
use shard::SITE_KINDS;

/// Merged figures of one site, in clock ticks (all zero: a site not run).
#[derive(Default, Clone)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) cancelled: u64,
    pub(crate) total: u64,
    pub(crate) self_time: u64,
    pub(crate) allocs: u64,
    pub(crate) bytes: u64,
    pub(crate) polls: u64,
    pub(crate) max_poll: u64,
    pub(crate) violations: [u64; SITE_KINDS],
    pub(crate) histogram: Histogram,
}

/// One site's figures as threads' cells are added in.
#[derive(Default)]
struct Merged {
    sums: [u64; 8],
    max: u64,
    max_poll: u64,
    violations: [u64; SITE_KINDS],
    /// Histogram counts from bucket `first` on.
    first: usize,
    counts: Vec<u64>,
}

impl Merged {
    fn add(&mut self, cell: &shard::SiteCell, scratch: &mut [u64]) {
        for (sum, field) in self.sums.iter_mut().zip(cell.sums()) {
            *sum = sum.wrapping_add(field);
        }
        self.max = self.max.max(cell.max.load(Ordering::Relaxed));
        if let Some(rare) = cell.rare_if_made() {
            self.max_poll = self.max_poll.max(rare.max_poll.load(Ordering::Relaxed));
            for (sum, v) in self.violations.iter_mut().zip(&rare.violations) {
                *sum += v.load(Ordering::Relaxed);
            }
        }
        let Some((first, counts)) = cell.histogram(scratch) else {
            return;
        };
        if self.counts.is_empty() {
            self.first = first;
        }
        // Widen the window to cover the cell's.
        if first < self.first {
            let grow = self.first - first;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = first;
        }
        let end = first + counts.len() - self.first;
        if end > self.counts.len() {
            self.counts.resize(end, 0);
        }
        for (to, c) in self.counts[first - self.first..].iter_mut().zip(counts) {
            *to += c;
        }
    }

    fn totals(self) -> Totals {
        let [
            calls,
            errors,
            cancelled,
            total,
            self_time,
            allocs,
            bytes,
            polls,
        ] = self.sums;
        Totals {
            calls,
            errors,
            cancelled,
            total,
            self_time,
            allocs,
            bytes,
            polls,
            max_poll: self.max_poll,
            violations: self.violations,
            histogram: Histogram::from_window(
                self.first,
                &self.counts,
                self.max,
                crate::record::clock::ns_per_tick(),
            ),
        }
    }
}

/// Merges every thread's figures for sites `0..count`, shard by shard and
/// page by page: only the cells some call touched are read, in the order
/// they lie in memory. Independent of how many calls were made.
pub(crate) fn collect(count: usize) -> Vec<Totals> {
    let mut merged: Vec<Merged> = (0..count).map(|_| Merged::default()).collect();
    let mut scratch = vec![0u64; BUCKETS];
    shard::with_shards(|shards| {
        for shard in shards {
            shard.for_each_touched(count, |site, cell| merged[site].add(cell, &mut scratch));
        }
    });
    merged.into_iter().map(Merged::totals).collect()
}

/// The merged figures of one site (every thread).
pub(crate) fn site_totals(site: usize) -> Totals {
    let mut merged = Merged::default();
    let mut scratch = vec![0u64; BUCKETS];
    shard::with_shards(|shards| {
        for cell in shards.iter().filter_map(|s| s.cell_if_present(site)) {
            merged.add(cell, &mut scratch);
        }
    });
    merged.totals()
}

/// The merged histogram of one site (every thread).
pub(crate) fn site_histogram(site: usize) -> Histogram {
    site_totals(site).histogram
}

/// A copy of one site's figures on the calling thread (for `testing::capture`).
#[derive(Clone)]
pub(crate) struct CellCopy {
    pub(crate) counters: [u64; 8],
    pub(crate) violations: [u64; SITE_KINDS],
    pub(crate) hist: Vec<u64>,
}

impl CellCopy {
    /// `self - before`, field by field.
    pub(crate) fn minus(&self, before: Option<&CellCopy>) -> CellCopy {
        let Some(before) = before else {
            return self.clone();
        };
        let mut out = self.clone();
        for (a, b) in out.counters.iter_mut().zip(before.counters) {
            *a = a.wrapping_sub(b);
        }
        for (a, b) in out.violations.iter_mut().zip(before.violations) {
            *a = a.wrapping_sub(b);
        }
        for (a, b) in out.hist.iter_mut().zip(&before.hist) {
            *a = a.wrapping_sub(*b);
        }
        out
    }

    /// Adds `other`, field by field (the figures of two spans of time).
    pub(crate) fn add(&mut self, other: &CellCopy) {
        for (a, b) in self.counters.iter_mut().zip(other.counters) {
            *a = a.wrapping_add(b);
        }
        for (a, b) in self.violations.iter_mut().zip(other.violations) {
            *a = a.wrapping_add(b);
        }
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            *a = a.wrapping_add(*b);
        }
    }

    /// The histogram, its max estimated by the top non-empty bucket.
    pub(crate) fn histogram(&self) -> Histogram {
        let top = self.hist.iter().rposition(|&c| c != 0);
        let max = top.map_or(0, |i| {
            let (low, width) = histogram::bounds(i);
            low + width - 1
        });
        Histogram::from_dense(&self.hist, max, crate::record::clock::ns_per_tick())
    }
}

/// The calling thread's own figures for sites `0..count` (no other thread
/// writes them, so two copies taken around some code differ by exactly what
/// that code recorded on this thread).
pub(crate) fn this_thread(count: usize) -> Vec<Option<CellCopy>> {
    let Some(shard) = shard::LOCAL.with(|l| l.shard()) else {
        return vec![None; count];
    };
    let mut scratch = vec![0u64; BUCKETS];
    (0..count)
        .map(|site| {
            let cell = shard.cell_if_present(site)?;
            let counters = cell.sums();
            let violations = std::array::from_fn(|i| {
                cell.rare_if_made()
                    .map_or(0, |r| r.violations[i].load(Ordering::Relaxed))
            });
            let mut hist = vec![0u64; BUCKETS];
            if let Some((first, counts)) = cell.histogram(&mut scratch) {
                hist[first..first + counts.len()].copy_from_slice(counts);
            }
            Some(CellCopy {
                counters,
                violations,
                hist,
            })
        })
        .collect()
}
