//! Log-linear histogram: 32 linear sub-buckets per power of two.
//!
//! A value `v < 64` has a bucket of its own. Above that, `v` falls in octave
//! `o = ⌊log2 v⌋` and sub-bucket `(v >> (o - 5)) & 31`, a bucket of width
//! `2^(o-5)` starting at `≥ 2^o`. Reporting a bucket by its midpoint is
//! therefore off by at most `2^(o-6) / 2^o = 1/64 ≈ 1.6%` of the true value,
//! inside the 2% we promise for quantiles. Computing the index takes a
//! leading-zero count, a shift and a mask.
//!
//! The 32 buckets of one octave form a block. Per thread and site, only the
//! run of octaves between the lowest and highest value seen is kept, in
//! 16-bit counters (see `shard`): a function's latencies usually span a
//! handful of octaves, 64 bytes each, instead of the full range.

/// Sub-buckets per octave, as a power of two.
pub(crate) const SUB_BITS: u32 = 5;
/// Sub-buckets per octave (one block).
pub(crate) const BLOCK: usize = 1 << SUB_BITS;
/// Blocks kept: block `b ≥ 1` holds octave `b + 4`, so the last one holds
/// octave 51, about 26 days at 1 GHz. Larger values land in the last bucket.
pub(crate) const BLOCKS: usize = 48;
/// Buckets in all.
pub(crate) const BUCKETS: usize = BLOCKS * BLOCK;

/// The bucket of `value`.
#[inline(always)]
pub(crate) fn index(value: u64) -> usize {
    if value < BLOCK as u64 {
        return value as usize;
    }
    let octave = 63 - value.leading_zeros();
    let sub = (value >> (octave - SUB_BITS)) as usize & (BLOCK - 1);
    let index = ((octave - SUB_BITS + 1) as usize) * BLOCK + sub;
    if index < BUCKETS { index } else { BUCKETS - 1 }
}

/// The smallest value of bucket `index` and the bucket's width.
pub(crate) fn bounds(index: usize) -> (u64, u64) {
    if index < BLOCK {
        return (index as u64, 1);
    }
    let block = (index / BLOCK) as u32;
    let sub = (index % BLOCK) as u64;
    let shift = block - 1;
    ((BLOCK as u64 + sub) << shift, 1 << shift)
}

/// A threshold in nanoseconds as the bucket bound (seconds) the exporters
/// add to a site's histogram; `overrun rules` writes `le` from it, and a
/// measured call in the bucket that straddles it is counted on its true
/// side of it ([`cumulative_counts`](Histogram::cumulative_counts) is
/// exact there).
///
/// ```
/// assert_eq!(overrun::export::threshold_seconds(50_000_000).to_string(), "0.05");
/// ```
pub fn bound_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Whether [`Histogram::cumulative_counts`] counts the bucket
/// `low_ns..high_ns` at or below bound `le` (seconds): by the bucket's
/// midpoint.
pub(crate) fn at_or_below(low_ns: u64, high_ns: u64, le: f64) -> bool {
    ((low_ns + high_ns) / 2) as f64 <= le * 1e9
}

/// A merged, read-only histogram: the non-empty buckets of a site, in clock
/// ticks, with the factor that turns ticks into nanoseconds.
///
/// ```
/// #[overrun::measure]
/// fn histogram_doc_fn(n: u64) -> u64 { n + 1 }
/// for n in 0..100 {
///     histogram_doc_fn(n);
/// }
/// let snap = overrun::snapshot();
/// let site = snap.site("histogram_doc_fn").unwrap();
/// let h = &site.histogram;
/// assert_eq!(h.count(), 100);
/// assert!(h.quantile(0.5) <= h.quantile(0.99) && h.quantile(0.99) <= h.max());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(bucket index, count)`, ascending, counts non-zero.
    buckets: Vec<(u16, u64)>,
    count: u64,
    /// Largest recorded value, in ticks (exact).
    max: u64,
    ns_per_tick: f64,
}

impl Histogram {
    /// Builds a histogram from dense counts (one per bucket).
    pub(crate) fn from_dense(counts: &[u64], max_ticks: u64, ns_per_tick: f64) -> Self {
        Self::from_window(0, counts, max_ticks, ns_per_tick)
    }

    /// Builds a histogram from the counts of buckets `first..`.
    pub(crate) fn from_window(
        first: usize,
        counts: &[u64],
        max_ticks: u64,
        ns_per_tick: f64,
    ) -> Self {
        let buckets: Vec<(u16, u64)> = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0)
            .map(|(k, &c)| ((first + k) as u16, c))
            .collect();
        Self {
            count: buckets.iter().map(|(_, c)| c).sum(),
            buckets,
            max: max_ticks,
            ns_per_tick,
        }
    }

    /// Builds a histogram of raw values (in nanoseconds) — the same bucketing
    /// the hot path uses, for tests and for tools that load samples.
    ///
    /// ```
    /// let h = overrun::stats::Histogram::from_values([10, 20, 30, 40]);
    /// assert_eq!(h.count(), 4);
    /// assert_eq!(h.quantile(0.5), 20);
    /// assert_eq!(h.max(), 40);
    /// ```
    pub fn from_values(values: impl IntoIterator<Item = u64>) -> Self {
        let mut dense = vec![0u64; BUCKETS];
        let mut max = 0;
        for v in values {
            dense[index(v)] += 1;
            max = max.max(v);
        }
        Self::from_dense(&dense, max, 1.0)
    }

    /// Adds `n` values of zero (a lock's acquisitions that did not wait).
    pub(crate) fn add_zeros(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        match self.buckets.first_mut() {
            Some((0, count)) => *count += n,
            _ => self.buckets.insert(0, (0, n)),
        }
        self.count += n;
        if self.ns_per_tick == 0.0 {
            self.ns_per_tick = crate::record::clock::ns_per_tick();
        }
    }

    /// Adds every value of `other` (recorded with the same clock).
    pub(crate) fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let mut dense = vec![0u64; BUCKETS];
        for &(i, c) in self.buckets.iter().chain(&other.buckets) {
            dense[usize::from(i)] += c;
        }
        *self = Self::from_dense(&dense, self.max.max(other.max), self.ns_per_tick);
    }

    /// The values recorded after `earlier`, a histogram of the same
    /// values taken before (bucket by bucket, `self - earlier`). The
    /// largest is estimated by the top non-empty bucket's midpoint, as
    /// [`Histogram::quantile`] reports every other bucket (at most the
    /// largest of all).
    pub(crate) fn since(&self, earlier: &Histogram) -> Histogram {
        if earlier.count == 0 {
            return self.clone();
        }
        let mut dense = vec![0u64; BUCKETS];
        for &(i, c) in &self.buckets {
            dense[usize::from(i)] = c;
        }
        for &(i, c) in &earlier.buckets {
            let d = &mut dense[usize::from(i)];
            *d = d.saturating_sub(c);
        }
        let max = dense.iter().rposition(|&c| c != 0).map_or(0, |top| {
            let (low, width) = bounds(top);
            (low + (width - 1) / 2).min(self.max)
        });
        Self::from_dense(&dense, max, self.ns_per_tick)
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest recorded value, ns (exact).
    pub fn max(&self) -> u64 {
        self.to_ns(self.max)
    }

    fn to_ns(&self, ticks: u64) -> u64 {
        if self.ns_per_tick == 1.0 {
            ticks
        } else {
            (ticks as f64 * self.ns_per_tick).round() as u64
        }
    }

    /// The `q`-quantile (`0.0..=1.0`) in nanoseconds, by nearest rank: the
    /// value of the `⌈q·n⌉`-th smallest sample, within 1.6% (the bucket's
    /// half width). `0` when empty.
    ///
    /// ```
    /// let h = overrun::stats::Histogram::from_values(1..=1000);
    /// let p99 = h.quantile(0.99) as f64;
    /// assert!((p99 - 990.0).abs() / 990.0 < 0.02);
    /// ```
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            // The largest sample is known exactly.
            return self.to_ns(self.max);
        }
        let mut seen = 0;
        for &(index, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                let (low, width) = bounds(index as usize);
                let mid = low + (width - 1) / 2;
                return self.to_ns(mid.min(self.max));
            }
        }
        self.to_ns(self.max)
    }

    /// The non-empty buckets as `(lower bound ns, upper bound ns exclusive,
    /// count)`, ascending: what an exporter needs to build its own buckets.
    ///
    /// ```
    /// let h = overrun::stats::Histogram::from_values([5, 5, 100]);
    /// let b: Vec<_> = h.buckets().collect();
    /// assert_eq!(b[0], (5, 6, 2));
    /// assert_eq!(b.iter().map(|x| x.2).sum::<u64>(), 3);
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.buckets.iter().map(|&(index, count)| {
            let (low, width) = bounds(index as usize);
            (self.to_ns(low), self.to_ns(low + width), count)
        })
    }

    /// How many values are at or below each bound (in seconds, ascending):
    /// the cumulative `le` counts of an exporter's explicit buckets. Each of
    /// overrun's buckets (≤1.6% wide) counts toward every bound at or above
    /// its midpoint; at a site's thresholds ([`bound_seconds`]) the calls
    /// were recorded on their side of it, so the count there is exact.
    /// Cost: bounds + non-empty buckets.
    ///
    /// ```
    /// let h = overrun::stats::Histogram::from_values([1_000, 2_000, 3_000_000]);
    /// assert_eq!(h.cumulative_counts(&[0.000_001, 0.001, 1.0]), [1, 2, 3]);
    /// ```
    pub fn cumulative_counts(&self, bounds_seconds: &[f64]) -> Vec<u64> {
        let mut ours = self.buckets();
        let mut next = ours.next();
        let mut cumulative = 0;
        bounds_seconds
            .iter()
            .map(|&le| {
                while let Some((low, high, n)) = next {
                    if !at_or_below(low, high, le) {
                        break;
                    }
                    cumulative += n;
                    next = ours.next();
                }
                cumulative
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_and_merges_add_up() {
        let mut h = Histogram::default();
        h.add_zeros(3);
        assert_eq!((h.count(), h.quantile(0.99), h.max()), (3, 0, 0));
        let mut a = Histogram::from_values([5, 100, 100]);
        a.merge(&Histogram::from_values([5, 7, 1_000]));
        assert_eq!(a, Histogram::from_values([5, 5, 7, 100, 100, 1_000]));
        a.add_zeros(6);
        assert_eq!(a.count(), 12);
        assert_eq!(a.quantile(0.5), 0, "half the values are zeros");
        assert_eq!(a.max(), 1_000);
        // An empty histogram takes the other's whole, scale included.
        let mut empty = Histogram::default();
        empty.merge(&a);
        assert_eq!(empty, a);
        a.merge(&Histogram::default());
        assert_eq!(a.count(), 12);
    }

    #[test]
    fn since_is_what_came_after() {
        let before = Histogram::from_values([5, 100, 100]);
        let after = Histogram::from_values([5, 100, 100, 7, 100, 3_000]);
        let window = after.since(&before);
        assert_eq!(window.count(), 3);
        assert_eq!(window.quantile(0.5), 100);
        let (low, width) = bounds(index(3_000));
        assert!(window.max() >= low && window.max() < low + width);
        assert_eq!(after.since(&Histogram::default()), after);
        assert_eq!(after.since(&after).count(), 0);
    }

    #[test]
    fn index_is_continuous_and_monotonic() {
        let mut last = 0;
        let end = if cfg!(miri) { 3_000 } else { 100_000u64 };
        for v in 0..end {
            let i = index(v);
            assert!(i == last || i == last + 1, "v={v}");
            let (low, width) = bounds(i);
            assert!(low <= v && v < low + width, "v={v} i={i}");
            last = i;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn midpoint_error_is_bounded() {
        let step = if cfg!(miri) { 99_991 } else { 997 };
        for v in (64..10_000_000u64).step_by(step) {
            let (low, width) = bounds(index(v));
            let mid = low + (width - 1) / 2;
            let err = (mid as f64 - v as f64).abs() / v as f64;
            assert!(err <= 1.0 / 64.0, "v={v} mid={mid}");
        }
    }
}
