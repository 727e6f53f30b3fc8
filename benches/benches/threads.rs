//! Cost as threads grow (issue "memory per site per thread, and snapshot
//! time"): 1 000 measured sites, each called from every live thread, for 1,
//! 64 and 256 threads: resident memory per site per thread that called it,
//! `snapshot()` (best of 3), and what comes back when the threads end; with
//! the per-call cost and the floor from the same run. Prints
//! `THREADS|threads|bytes per site per thread|snapshot ms|after end MB`.
//!
//! `cargo bench --bench threads` measures; the test command's quick pass
//! (`cargo test --benches`) runs a small case that only checks it runs.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use overrun::__private::{Budget, Guard, Site, SiteKind};

/// `n` sites, leaked (one per measured function of a real program).
fn sites(n: u32) -> Vec<&'static Site> {
    (0..n)
        .map(|i| {
            let name: &'static str = Box::leak(format!("threads_site_{i}").into_boxed_str());
            &*Box::leak(Box::new(Site::new(
                name,
                "threads",
                file!(),
                i,
                SiteKind::Sync,
                Budget::none().with_time_ns(1_000_000),
            )))
        })
        .collect()
}

fn rss() -> u64 {
    overrun::run::usage().rss_bytes.unwrap_or(0)
}

/// Starts `threads` threads that each call every site once, then wait
/// until told to end. Returns (resident bytes added per site per thread,
/// best snapshot ms, resident MB after the threads ended).
fn case(sites: &[&'static Site], threads: usize) -> (f64, f64, f64) {
    let before = rss();
    let called = Arc::new(Barrier::new(threads + 1));
    let end = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (sites, called, end) = (sites.to_vec(), called.clone(), end.clone());
            std::thread::spawn(move || {
                for site in &sites {
                    Guard::enter(site).finish(false);
                }
                called.wait();
                end.wait();
            })
        })
        .collect();
    called.wait();
    let grown = rss().saturating_sub(before);
    let per = grown as f64 / (sites.len() * threads) as f64;
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            black_box(overrun::snapshot());
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min);
    end.wait();
    for h in handles {
        h.join().unwrap();
    }
    let after = rss() as f64 / (1 << 20) as f64;
    (per, best, after)
}

#[overrun::measure(budget = "1s")]
fn measured(x: u64) -> u64 {
    overrun_benches::work(x)
}

/// Nanoseconds per measured call, and per pair of raw TSC reads, on this
/// thread (best of 5 runs of 1 M calls).
fn per_call() -> (f64, f64) {
    let time = |f: &dyn Fn(u64) -> u64| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                let mut acc = 0u64;
                for i in 0..1_000_000u64 {
                    acc = acc.wrapping_add(f(black_box(i)));
                }
                black_box(acc);
                start.elapsed().as_nanos() as f64 / 1e6
            })
            .fold(f64::INFINITY, f64::min)
    };
    let clock = quanta::Clock::new();
    let floor = time(&|x| {
        let start = clock.raw();
        let r = overrun_benches::work(x);
        r.wrapping_add(clock.raw().wrapping_sub(start))
    });
    (time(&measured), floor)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, counts): (u32, &[usize]) = if bench {
        (1_000, &[1, 64, 256])
    } else {
        (50, &[1, 4])
    };
    let sites = sites(n);
    let (call, floor) = per_call();
    println!(
        "per call: #[measure] {call:.2} ns, raw TSC pair {floor:.2} ns ({:.2}x)",
        call / floor
    );
    println!("{n} sites, each called from every live thread:");
    println!(
        "{:>8} {:>26} {:>14} {:>22}",
        "threads", "bytes / site / thread", "snapshot ms", "resident MB after end"
    );
    for &threads in counts {
        let (per, ms, after) = case(&sites, threads);
        println!("{threads:>8} {per:>26.0} {ms:>14.2} {after:>22.1}");
        println!("THREADS|{threads}|{per:.0}|{ms:.2}|{after:.1}");
    }
}
