//! The unsafe parts under Miri: `CountingAlloc`, the per-thread shards,
//! their recycling and freeing when threads exit, histogram runs, snapshots taken while
//! other threads record. Small sizes, so it also runs quickly natively.
//!
//! `cargo +nightly miri test -p overrun --lib --test miri`

use std::hint::black_box;

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

#[overrun::measure(allocs = 1)]
fn boxed(n: u64) -> u64 {
    *black_box(Box::new(n)) + 1
}

#[overrun::measure]
fn grows(n: usize) -> usize {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(i);
    }
    v.shrink_to_fit();
    v.len()
}

#[test]
fn counting_alloc_shards_and_recycling() {
    let threads: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                let mut acc = 0;
                for i in 0..20 {
                    acc += boxed(i + t);
                    acc += grows(i as usize) as u64;
                }
                acc
            })
        })
        .collect();
    // A snapshot while the threads record.
    let _ = overrun::snapshot();
    for t in threads {
        t.join().unwrap();
    }
    // Exited threads' shards were folded and recycled; a new thread reuses one.
    std::thread::spawn(|| boxed(1)).join().unwrap();
    // More threads at once than drained shards are kept: the shards of the
    // last to end are freed, their figures kept in the totals.
    const AT_ONCE: u64 = 18;
    let all_in = std::sync::Arc::new(std::sync::Barrier::new(AT_ONCE as usize));
    let many: Vec<_> = (0..AT_ONCE)
        .map(|t| {
            let all_in = all_in.clone();
            std::thread::spawn(move || {
                let n = boxed(t);
                all_in.wait();
                n
            })
        })
        .collect();
    for t in many {
        t.join().unwrap();
    }
    let snap = overrun::snapshot();
    let b = snap.site("boxed").unwrap();
    assert_eq!(b.calls, 61 + AT_ONCE);
    assert_eq!(b.allocs, Some(61 + AT_ONCE));
    assert_eq!(b.alloc_bytes, Some((61 + AT_ONCE) * 8));
    assert_eq!(b.violations.allocs, 0);
    assert_eq!(snap.site("grows").unwrap().calls, 60);
    assert!(overrun::alloc::heap_peak_bytes().is_some());
}

#[path = "support/yield_once.rs"]
mod yield_once;
use yield_once::YieldOnce;

#[overrun::measure]
async fn measured_async(v: Vec<u8>) -> usize {
    YieldOnce(false).await;
    v.len()
}

#[test]
fn tracked_and_measured_futures() {
    // A !Unpin future (an async block holding a borrow across an await)
    // through `Tracked`'s pin projection and the `#[measure]` wrapper.
    let n = overrun::tasks::block_on(overrun::track("miri", async {
        let data = vec![1u8, 2, 3];
        let r = &data;
        YieldOnce(false).await;
        measured_async(r.clone()).await
    }));
    assert_eq!(n, 3);
    // Dropped before completion: cancelled, entry freed.
    let pending = overrun::track("miri-cancelled", std::future::pending::<()>());
    drop(pending);
    let stats = overrun::tasks::stats();
    let done = stats.iter().find(|t| t.name == "miri").unwrap();
    assert_eq!((done.completed, done.live), (1, 0));
    let cancelled = stats.iter().find(|t| t.name == "miri-cancelled").unwrap();
    assert_eq!(cancelled.cancelled, 1);
    assert_eq!(overrun::snapshot().site("measured_async").unwrap().calls, 1);
}
