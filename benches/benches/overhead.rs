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
