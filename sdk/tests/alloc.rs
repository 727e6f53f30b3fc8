//! Exact allocation figures with `CountingAlloc` installed.

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Waker};

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

#[path = "support/site.rs"]
mod site;
use site::site;

#[overrun::measure]
fn three_boxes() -> usize {
    let a = black_box(Box::new([0u8; 100]));
    let b = black_box(Box::new([0u8; 200]));
    let c = black_box(Box::new(0u64));
    a.len() + b.len() + *c as usize
}

#[overrun::measure]
fn no_allocation(x: u64) -> u64 {
    black_box(x) + 1
}

#[overrun::measure(allocs = 4)]
fn outer_allocs() -> usize {
    let v: Vec<u32> = black_box(Vec::with_capacity(16)); // 64 bytes
    three_boxes() + v.capacity()
}

#[test]
fn exact_allocations_and_bytes() {
    for _ in 0..50 {
        three_boxes();
        no_allocation(3);
    }
    let s = site("three_boxes");
    assert_eq!(s.calls, 50);
    assert_eq!(s.allocs, Some(150));
    assert_eq!(s.alloc_bytes, Some(50 * 308));
    assert_eq!(s.allocs_per_call(), Some(3.0));
    let n = site("no_allocation");
    assert_eq!(n.allocs, Some(0), "first-call bookkeeping is not charged");
    assert_eq!(n.alloc_bytes, Some(0));
}

#[test]
fn nested_calls_report_inclusive_counts() {
    outer_allocs();
    outer_allocs();
    let outer = site("outer_allocs");
    assert_eq!(outer.allocs, Some(2 * 4));
    assert_eq!(outer.alloc_bytes, Some(2 * (64 + 308)));
    assert_eq!(outer.violations.allocs, 0, "4 is within allocs = 4");
}

#[overrun::measure(allocs = 2, bytes = "1KiB")]
fn over_alloc_budget(n: usize) -> usize {
    let v: Vec<Box<u8>> = (0..n).map(|i| Box::new(i as u8)).collect();
    let big = black_box(vec![0u8; 2048]);
    v.len() + big.len()
}

#[test]
fn allocation_and_byte_budgets() {
    over_alloc_budget(0); // 1 alloc (the 2 KiB vec) -> bytes violation only
    over_alloc_budget(5); // 7 allocs -> both
    let s = site("over_alloc_budget");
    assert_eq!(s.violations.allocs, 1);
    assert_eq!(s.violations.bytes, 2);
    assert_eq!(s.budget.allocs, Some(2));
    assert_eq!(s.budget.bytes, Some(1024));
}

#[path = "support/yield_once.rs"]
mod yield_once;
use yield_once::YieldOnce;

#[overrun::measure]
async fn allocates_across_polls() -> usize {
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(black_box(Box::new([i as u8; 64])));
        YieldOnce(false).await;
    }
    held.len()
}

#[test]
fn async_allocations_follow_the_future_across_threads() {
    // Poll the same future on four different OS threads, one poll each.
    let mut fut = Box::pin(allocates_across_polls());
    let mut threads = Vec::new();
    for _ in 0..5 {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            let ready = fut.as_mut().poll(&mut cx).is_ready();
            tx.send(()).unwrap();
            (fut, ready, std::thread::current().id())
        });
        rx.recv().unwrap();
        let (back, ready, id) = handle.join().unwrap();
        fut = back;
        threads.push(id);
        if ready {
            break;
        }
    }
    threads.dedup();
    assert_eq!(threads.len(), 5, "five polls on five threads");
    let s = site("allocates_across_polls");
    assert_eq!(s.calls, 1);
    assert_eq!(s.polls, 5);
    // Four 64-byte boxes, one per poll on a different thread, plus the Vec
    // that holds them: its first push allocates room for 4 pointers (32
    // bytes) and it never grows again.
    assert_eq!(s.allocs, Some(4 + 1));
    assert_eq!(s.alloc_bytes, Some(4 * 64 + 32));
}

#[overrun::measure]
async fn allocates_on_workers(gate: Arc<tokio::sync::Notify>) -> usize {
    let mut held: Vec<Box<[u8; 128]>> = Vec::with_capacity(8);
    for _ in 0..8 {
        held.push(black_box(Box::new([1; 128])));
        gate.notified().await;
    }
    held.len()
}

#[test]
fn async_allocations_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let done = Arc::new(AtomicBool::new(false));
    let waker = {
        let gate = gate.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                gate.notify_one();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let n = rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|_| tokio::spawn(allocates_on_workers(gate.clone())))
            .collect();
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap();
        }
        n
    });
    done.store(true, Ordering::Relaxed);
    waker.join().unwrap();
    assert_eq!(n, 32);
    let s = site("allocates_on_workers");
    assert_eq!(s.calls, 4);
    // Per call: the Vec (8 × 8 bytes) and eight 128-byte boxes.
    assert_eq!(s.allocs, Some(4 * 9));
    assert_eq!(s.alloc_bytes, Some(4 * (64 + 8 * 128)));
}

#[test]
fn heap_live_and_peak_are_tracked() {
    let big = black_box(vec![0u8; 8 << 20]);
    let peak = overrun::alloc::heap_peak_bytes().unwrap();
    assert!(
        peak >= (8 << 20) as u64,
        "peak {peak} includes the 8 MiB block"
    );
    drop(big);
    assert!(overrun::alloc::is_installed());
    assert!(overrun::snapshot().run.allocs_available);
}
