//! overrun's own hot path: `#[measure]` with a budget, without one, switched
//! off at run time, and hammered from two threads at once. No counting
//! allocator in this process (see `counting_alloc` for that).

use overrun_benches::{batch, floors, work};

floors!();

#[overrun::measure(budget = "1s")]
fn measured_budget(x: u64) -> u64 {
    work(x)
}

#[overrun::measure]
fn measured_plain(x: u64) -> u64 {
    work(x)
}

#[overrun::measure(budget = "1s")]
fn measured_shared(x: u64) -> u64 {
    work(x)
}

#[overrun::measure(budget = "1s")]
fn measured_off(x: u64) -> u64 {
    work(x)
}

/// Timing, histogram and budget check.
#[divan::bench]
fn overrun_measure() -> u64 {
    batch(measured_budget)
}

/// The same without a budget (the check still runs against "none").
#[divan::bench]
fn overrun_measure_no_budget() -> u64 {
    batch(measured_plain)
}

/// `OVERRUN=off` at run time: one relaxed load per call.
#[divan::bench]
fn overrun_off(bencher: divan::Bencher<'_, '_>) {
    overrun::set_enabled(false);
    bencher.bench_local(|| batch(measured_off));
    overrun::set_enabled(true);
}

/// One site, called from one and from two threads at once: each thread
/// writes only its own shard, so the per-call cost should not grow.
#[divan::bench(threads = [1, 2])]
fn overrun_same_site_threads() -> u64 {
    batch(measured_shared)
}

/// A lower bound for goal 1: the raw TSC pair plus the least bookkeeping
/// any per-call latency histogram needs — one thread-local counter and one
/// log-linear bucket increment (no budget, allocations, self time or max).
mod lower_bound {
    use std::cell::{Cell, UnsafeCell};

    pub(super) struct Local {
        pub(super) calls: Cell<u64>,
        pub(super) total: Cell<u64>,
        pub(super) buckets: UnsafeCell<[u64; 1536]>,
    }

    thread_local! {
        pub(super) static LOCAL: Local = const {
            Local { calls: Cell::new(0), total: Cell::new(0), buckets: UnsafeCell::new([0; 1536]) }
        };
    }

    #[inline(always)]
    pub(super) fn index(v: u64) -> usize {
        if v < 32 {
            return v as usize;
        }
        let octave = 63 - v.leading_zeros();
        (((octave - 4) as usize) * 32 + ((v >> (octave - 5)) as usize & 31)).min(1535)
    }
}

#[divan::bench]
fn lower_bound_tsc_count_histogram(bencher: divan::Bencher<'_, '_>) {
    let clock = quanta::Clock::new();
    bencher.bench_local(|| {
        batch(|x| {
            let start = clock.raw();
            let r = work(x);
            let elapsed = clock.raw().wrapping_sub(start);
            lower_bound::LOCAL.with(|l| {
                l.calls.set(l.calls.get() + 1);
                l.total.set(l.total.get() + elapsed);
                // SAFETY: the array is only touched by this thread, here.
                unsafe { (*l.buckets.get())[lower_bound::index(elapsed)] += 1 };
            });
            r
        })
    });
}

fn main() {
    divan::main();
    let snap = overrun::snapshot();
    let calls = snap.site("measured_budget").map_or(0, |s| s.calls);
    assert!(calls > 0, "the measured function was recorded");
    assert_eq!(
        snap.site("measured_off").map_or(0, |s| s.calls),
        0,
        "off means nothing recorded"
    );
}
