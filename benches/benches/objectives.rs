//! Objectives over a window (`overrun::objective`): what the evaluator
//! costs per site per tick (1 000 sites with objectives, each called on
//! this thread, so each tick merges and differences real histograms), and
//! the per-call cost of a function with an objective beside the same
//! function without one and the floors, in the same run: an objective adds
//! nothing to a call far from its threshold, so the two must not differ.
//! A call near a threshold (in its histogram bucket or the one under it)
//! leaves the fast path to be counted on its side of it: its cost is
//! `overrun_measure_past_the_gate`, a site whose every call is past it.

use std::sync::OnceLock;

use overrun_benches::{batch, floors, leaked_site, work};

floors!();

#[overrun::measure(budget = "1s")]
fn without_objective(x: u64) -> u64 {
    work(x)
}

#[overrun::measure(budget = "1s", p99 = "50ms", error_rate = "1%")]
fn with_objective(x: u64) -> u64 {
    work(x)
}

/// A median objective of 1 ns: every call is past the fast path's gate
/// (the bucket under the threshold's), so each takes the slow path that
/// counts a call near a threshold on its side of it.
#[overrun::measure(p50 = "1ns")]
fn past_the_gate(x: u64) -> u64 {
    work(x)
}

/// Sites with a p99 and an error-rate objective, each called 100 times
/// at a spread of durations, registered once per process.
const SITES: u32 = 1_000;

fn sites_with_objectives() {
    use overrun::__private::{Budget, Guard, Quantile};
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        for i in 0..SITES {
            let budget = Budget::none()
                .with_quantile_ns(Quantile::P99, 50_000_000)
                .with_error_rate_ppm(10_000)
                .with_window_ns(300_000_000_000);
            let site = leaked_site(format!("objective_{i}"), "app::slo", i, budget);
            for n in 0..100u64 {
                let guard = Guard::enter(site);
                std::hint::black_box(work(n * 1_000));
                guard.finish(n % 50 == 0);
            }
        }
    });
}

/// One tick of the evaluator over the 1 000 sites: per site, a merge of
/// its histogram across threads, the difference with the mark a window
/// older, a p99 and an error rate. Divide by 1 000 for the cost per site.
#[divan::bench(sample_count = 50)]
fn evaluator_tick_1000_sites(bencher: divan::Bencher<'_, '_>) {
    sites_with_objectives();
    let mut ticker = overrun::__private::ObjectiveTicker::new();
    // A window's worth of ticks first: the ring is full, as in a process
    // that has run a while (5 minutes at one tick per 10 s: 31 or 32
    // marks a site), and stays so.
    for _ in 0..40 {
        assert!(ticker.tick() >= SITES as usize);
    }
    let sites = ticker.tick();
    let full = |marks: usize| (31 * sites..=32 * sites).contains(&marks);
    assert!(full(ticker.marks()), "{} marks", ticker.marks());
    bencher.bench_local(|| ticker.tick());
    assert!(full(ticker.marks()), "{} marks", ticker.marks());
}

/// A call with a budget and no objective.
#[divan::bench]
fn overrun_measure_without_objective() -> u64 {
    batch(without_objective)
}

/// The same call with a p99 and an error-rate objective.
#[divan::bench]
fn overrun_measure_with_objective() -> u64 {
    batch(with_objective)
}

/// A call past the fast path's gate (near a threshold).
#[divan::bench]
fn overrun_measure_past_the_gate() -> u64 {
    batch(past_the_gate)
}

fn main() {
    without_objective(1);
    with_objective(1);
    past_the_gate(1);
    sites_with_objectives();
    let snap = overrun::snapshot();
    assert_eq!(snap.site("with_objective").unwrap().objectives.len(), 2);
    assert!(
        snap.site("without_objective")
            .unwrap()
            .objectives
            .is_empty()
    );
    divan::main();
}
