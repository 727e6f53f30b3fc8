//! Locks (`overrun::sync`), beside bare `parking_lot` and `std` locks, with
//! the floors, in one run: an uncontended lock and unlock (one batch of
//! [`overrun_benches::BATCH`] of them per iteration, each around the same
//! one-multiply `work`) with no budget, with only a wait budget, with a hold
//! budget; a read lock; and two threads on one lock (contended). The goals
//! (issue "lock wait and hold budgets"): with only a wait budget, at most 3
//! ns over `parking_lot::Mutex` (no clock read when the lock is free); with
//! a hold budget, at most one clock pair more. After the run the bench
//! prints the contended acquisitions overrun counted.

use std::sync::LazyLock;

use overrun_benches::{batch, floors, work};

floors!();

static PL: LazyLock<parking_lot::Mutex<u64>> = LazyLock::new(|| parking_lot::Mutex::new(0));
static STD: LazyLock<std::sync::Mutex<u64>> = LazyLock::new(|| std::sync::Mutex::new(0));
static PLAIN: LazyLock<overrun::sync::Mutex<u64>> =
    LazyLock::new(|| overrun::sync::Mutex::new("bench.plain", 0));
static WAIT: LazyLock<overrun::sync::Mutex<u64>> =
    LazyLock::new(|| overrun::sync::Mutex::new("bench.wait", 0).wait_budget("1ms"));
static HOLD: LazyLock<overrun::sync::Mutex<u64>> = LazyLock::new(|| {
    overrun::sync::Mutex::new("bench.hold", 0)
        .wait_budget("1ms")
        .hold_budget("1s")
});
static PL_RW: LazyLock<parking_lot::RwLock<u64>> = LazyLock::new(|| parking_lot::RwLock::new(1));
static RW: LazyLock<overrun::sync::RwLock<u64>> =
    LazyLock::new(|| overrun::sync::RwLock::new("bench.rw", 1).wait_budget("1ms"));
static CONTENDED: LazyLock<overrun::sync::Mutex<u64>> =
    LazyLock::new(|| overrun::sync::Mutex::new("bench.contended", 0).wait_budget("1s"));

#[divan::bench]
fn parking_lot_mutex() -> u64 {
    batch(|x| {
        let mut g = PL.lock();
        *g = g.wrapping_add(work(x));
        *g
    })
}

#[divan::bench]
fn std_mutex() -> u64 {
    batch(|x| {
        let mut g = STD.lock().unwrap();
        *g = g.wrapping_add(work(x));
        *g
    })
}

#[divan::bench]
fn overrun_mutex_no_budget() -> u64 {
    batch(|x| {
        let mut g = PLAIN.lock();
        *g = g.wrapping_add(work(x));
        *g
    })
}

#[divan::bench]
fn overrun_mutex_wait_budget() -> u64 {
    batch(|x| {
        let mut g = WAIT.lock();
        *g = g.wrapping_add(work(x));
        *g
    })
}

#[divan::bench]
fn overrun_mutex_hold_budget() -> u64 {
    batch(|x| {
        let mut g = HOLD.lock();
        *g = g.wrapping_add(work(x));
        *g
    })
}

#[divan::bench]
fn parking_lot_rwlock_read() -> u64 {
    batch(|x| *PL_RW.read() ^ work(x))
}

#[divan::bench]
fn overrun_rwlock_read() -> u64 {
    batch(|x| *RW.read() ^ work(x))
}

/// Two threads on one lock: many acquisitions find it taken (samples long
/// enough for the threads to overlap).
#[divan::bench(threads = 2, sample_count = 50, sample_size = 200)]
fn contended_parking_lot() -> u64 {
    batch(|x| {
        let mut g = PL.lock();
        *g = g.wrapping_add(work(x));
        *g
    })
}

#[divan::bench(threads = 2, sample_count = 50, sample_size = 200)]
fn contended_overrun() -> u64 {
    batch(|x| {
        let mut g = CONTENDED.lock();
        *g = g.wrapping_add(work(x));
        *g
    })
}

fn main() {
    divan::main();
    let snap = overrun::snapshot();
    if let Some(l) = snap.locks.iter().find(|l| l.name == "bench.contended") {
        println!(
            "LOCKS|contended|{}|{}|{:?}|{:?}",
            l.acquisitions, l.contended, l.wait_p99_ns, l.max_wait_ns
        );
    }
}
