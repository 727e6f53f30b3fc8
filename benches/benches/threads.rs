//! Cost as threads grow (issue "memory per site per thread, and snapshot
//! time"): 1 000 measured sites, each called from every live thread, for 1,
//! 64 and 256 threads: resident memory per site per thread that called it,
//! `snapshot()` (best of 3), and what comes back when the threads end; with
//! the per-call cost and the floor from the same run. Prints
//! `THREADS|threads|bytes per site per thread|snapshot ms|after end MB`
//! and `POOL|most|kept|peak MB|shrunk MB|grown back MB`.
//!
//! Sites are registered first (a one-time cost per site, printed apart),
//! and one thread that calls nothing runs and ends first (what the first
//! extra thread sets up once), so each case's growth is what its threads
//! added; it includes the threads' own stacks. Then a pool grows to
//! 256 threads, shrinks to 8 and grows back: the resident memory at each
//! stage shows the shards of ended threads given back.
//!
//! `cargo bench --bench threads` measures; the test command's quick pass
//! (`cargo test --benches`) runs a small case that only checks it runs.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use overrun::__private::{Budget, Guard, Site};

/// `n` sites, leaked (one per measured function of a real program).
fn sites(n: u32) -> Vec<&'static Site> {
    (0..n)
        .map(|i| {
            let budget = Budget::none().with_time_ns(1_000_000);
            overrun_benches::leaked_site(format!("threads_site_{i}"), "threads", i, budget)
        })
        .collect()
}

/// Resident bytes: exact from `/proc/self/smaps_rollup` where there is
/// one (the kernel's running counter can lag), else the portable figure.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Rss:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .or(overrun::run::usage().rss_bytes)
        .unwrap_or(0)
}

/// `threads` threads that each called every site once and wait until
/// told to end.
struct Pool {
    end: Arc<Barrier>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Starts the threads; returns once each has called every site.
    fn start(sites: &[&'static Site], threads: usize) -> Self {
        let called = Arc::new(Barrier::new(threads + 1));
        let end = Arc::new(Barrier::new(threads + 1));
        let handles = (0..threads)
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
        Self { end, handles }
    }

    /// Ends the threads and joins them.
    fn end(self) {
        self.end.wait();
        for h in self.handles {
            h.join().unwrap();
        }
    }
}

/// Starts `threads` threads that each call every site once. Returns
/// (resident bytes while they lived, best snapshot ms, resident MB after
/// the threads ended).
fn case(sites: &[&'static Site], threads: usize) -> (u64, f64, f64) {
    let pool = Pool::start(sites, threads);
    let resident = rss();
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            black_box(overrun::snapshot());
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min);
    pool.end();
    let after = rss() as f64 / (1 << 20) as f64;
    (resident, best, after)
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
    let before = rss();
    for site in &sites {
        assert!(overrun::__private::register(site));
    }
    let registration = rss().saturating_sub(before) as f64 / f64::from(n);
    println!(
        "per call: #[measure] {call:.2} ns, raw TSC pair {floor:.2} ns ({:.2}x)",
        call / floor
    );
    println!("{n} sites, each called from every live thread:");
    println!(
        "{:>8} {:>26} {:>14} {:>22}",
        "threads", "bytes / site / thread", "snapshot ms", "resident MB after end"
    );
    // Each case's threads reuse the shards of the case before (fewer
    // threads), so each is measured from the same start: its threads'
    // memory is everything grown since.
    // One thread that calls nothing, first: the machinery a process's
    // first extra thread sets up once (its allocator arena, a cached
    // stack) is not any site's.
    Pool::start(&[], 1).end();
    let base = rss();
    for &threads in counts {
        let (resident, ms, after) = case(&sites, threads);
        let per = resident.saturating_sub(base) as f64 / (sites.len() * threads) as f64;
        println!("{threads:>8} {per:>26.0} {ms:>14.2} {after:>22.1}");
        println!("THREADS|{threads}|{per:.0}|{ms:.2}|{after:.1}");
    }
    // A pool that grows to its most, shrinks to `kept` threads, then grows
    // back: resident memory at each stage.
    let most = *counts.last().unwrap();
    let kept = 8.min(most);
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    let (kept_pool, rest) = (Pool::start(&sites, kept), Pool::start(&sites, most - kept));
    let peak = rss();
    rest.end();
    let shrunk = rss();
    let again = Pool::start(&sites, most - kept);
    let regrown = rss();
    again.end();
    kept_pool.end();
    println!(
        "a pool of {most} threads: {:.1} MB resident; shrunk to {kept}: {:.1} MB; grown back: {:.1} MB",
        mb(peak),
        mb(shrunk),
        mb(regrown)
    );
    println!(
        "POOL|{most}|{kept}|{:.1}|{:.1}|{:.1}",
        mb(peak),
        mb(shrunk),
        mb(regrown)
    );
    println!("registration, once per site: {registration:.0} bytes");
}
