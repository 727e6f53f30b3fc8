//! Behaviour through the public API, without a counting allocator.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

#[path = "support/busy.rs"]
mod busy;
use busy::busy;
#[path = "support/site.rs"]
mod site;
use site::site;

#[overrun::measure]
fn hammered(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[test]
fn exact_counts_across_threads_and_json_agrees() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut acc = 0u64;
                for i in 0..100_000u64 {
                    acc = acc.wrapping_add(hammered(i + t));
                }
                acc
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let snap = overrun::snapshot();
    let s = snap.site("hammered").unwrap();
    assert_eq!(s.calls, 400_000);
    assert_eq!(s.histogram.count(), 400_000);
    assert_eq!(s.errors, 0);
    let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    assert_eq!(json["version"], 1);
    let site = json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hammered")
        .unwrap();
    assert_eq!(site["calls"], 400_000);
    assert_eq!(site["module"], "behaviour");
    assert!(site["p99_ns"].as_u64().unwrap() <= site["max_ns"].as_u64().unwrap());
    // No CountingAlloc in this binary: allocation fields are unavailable, not 0.
    assert!(site["allocs"].is_null());
    assert!(site["alloc_bytes"].is_null());
    assert_eq!(s.allocs, None);
    assert!(!snap.run.allocs_available);
}

#[overrun::measure]
fn child_spin() {
    busy(Duration::from_millis(3));
}

#[overrun::measure]
fn parent_spin() {
    busy(Duration::from_millis(1));
    child_spin();
    child_spin();
}

#[test]
fn self_time_is_total_minus_children() {
    for _ in 0..5 {
        parent_spin();
    }
    let snap = overrun::snapshot();
    let parent = snap.site("parent_spin").unwrap();
    let child = snap.site("child_spin").unwrap();
    assert_eq!(child.calls, 10);
    let expected = parent.total_ns - child.total_ns;
    assert!(
        parent.self_ns.abs_diff(expected) <= 10,
        "self {} vs total-child {}",
        parent.self_ns,
        expected
    );
    // The parent's own spinning is 1ms per call (wall time: more under load).
    assert!(parent.self_ns >= 5_000_000, "{parent:?}");
    assert!(child.total_ns >= 30_000_000, "{child:?}");
    for s in [parent, child] {
        assert!(s.self_ns <= s.total_ns);
    }
    assert!(child.self_ns == child.total_ns || child.total_ns - child.self_ns <= 10);
}

#[overrun::measure(budget = "20ms")]
fn every_tenth(i: u32) {
    if i % 10 == 9 {
        std::thread::sleep(Duration::from_millis(40));
    }
}

#[test]
fn violations_are_counted_and_hooked() {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static OK_FIELDS: AtomicU64 = AtomicU64::new(0);
    let id = overrun::on_violation(|v| {
        if v.name == "every_tenth" {
            SEEN.fetch_add(1, Ordering::Relaxed);
            if v.kind == overrun::ViolationKind::Time
                && v.limit == 20_000_000
                && v.observed > v.limit
                && v.module == "behaviour"
                && v.thread == std::thread::current().id()
            {
                OK_FIELDS.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    for i in 0..100 {
        every_tenth(i);
    }
    overrun::remove_hook(id);
    let s = site("every_tenth");
    assert_eq!(s.calls, 100);
    assert_eq!(s.violations.time, 10, "exactly every 10th call");
    assert_eq!(s.violations.total(), 10);
    assert_eq!(SEEN.load(Ordering::Relaxed), 10, "the hook saw each one");
    assert_eq!(OK_FIELDS.load(Ordering::Relaxed), 10);
    assert_eq!(s.budget.time_ns, Some(20_000_000));
}

#[overrun::measure(budget = "1ns")]
fn unread_violation() {}

#[test]
fn violations_nobody_reads_are_not_counted_as_dropped() {
    // Before: a ring of 1 024 events with no reader counted every violation
    // past its capacity as "dropped" (1 500 violations gave 476).
    let before = overrun::violation::dropped();
    for _ in 0..1_500 {
        unread_violation();
    }
    assert_eq!(site("unread_violation").violations.time, 1_500);
    assert_eq!(overrun::violation::dropped(), before);
}

#[overrun::measure(budget = "1ns")]
fn always_over() {}

#[test]
fn a_panicking_hook_does_not_take_the_program_down() {
    let before = overrun::violation::hook_panics();
    let id = overrun::on_violation(|v| {
        if v.name == "always_over" {
            panic!("hook failure");
        }
    });
    always_over();
    always_over();
    overrun::remove_hook(id);
    assert!(overrun::violation::hook_panics() >= before + 2);
    assert_eq!(site("always_over").violations.time, 2);
}

#[test]
fn hooks_do_not_recurse() {
    #[overrun::measure(budget = "1ns")]
    fn violates_in_hook() {}
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let id = overrun::on_violation(|v| {
        if v.name == "violates_in_hook" {
            CALLS.fetch_add(1, Ordering::Relaxed);
            violates_in_hook(); // counted, but does not call the hook again
        }
    });
    violates_in_hook();
    overrun::remove_hook(id);
    assert_eq!(CALLS.load(Ordering::Relaxed), 1);
    assert_eq!(site("violates_in_hook").violations.time, 2);
}

// ---- async ----------------------------------------------------------------

#[overrun::measure(budget = "1s")]
async fn sleeper(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[overrun::measure]
async fn fallible(fail: bool) -> Result<u8, String> {
    tokio::task::yield_now().await;
    if fail {
        return Err("failed".into());
    }
    let v: u8 = "7".parse().map_err(|_| String::from("parse"))?;
    Ok(v)
}

#[overrun::measure(poll = "5ms")]
async fn blocks_once() {
    tokio::task::yield_now().await;
    std::thread::sleep(Duration::from_millis(20)); // blocks the executor
    tokio::task::yield_now().await;
}

#[overrun::measure(poll = "50ms")]
async fn yields_often() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
        busy(Duration::from_micros(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_latency_is_first_poll_to_completion() {
    assert_eq!(sleeper(30).await, 30);
    let s = site("sleeper");
    assert_eq!(s.calls, 1);
    assert!(s.max_ns >= 30_000_000, "latency includes time awaiting");
    assert!(s.polls >= 2);
    assert!(s.self_ns < s.total_ns / 2, "self time is busy time only");
    assert_eq!(s.kind, overrun::SiteKind::Async);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_errors() {
    assert!(fallible(true).await.is_err());
    assert_eq!(fallible(false).await, Ok(7));
    let s = site("fallible");
    assert_eq!((s.calls, s.errors), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_budget() {
    blocks_once().await;
    yields_often().await;
    assert_eq!(site("blocks_once").violations.poll, 1);
    assert!(site("blocks_once").max_poll_ns.unwrap() >= 20_000_000);
    assert_eq!(site("yields_often").violations.poll, 0);
    assert_eq!(site("yields_often").polls, 21);
}

struct Pending;
impl Future for Pending {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[overrun::measure]
async fn never_finishes() {
    Pending.await
}

#[test]
fn cancelled_async_calls() {
    let mut fut = Box::pin(never_finishes());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(fut);
    // Dropped without a poll: not a call at all.
    drop(never_finishes());
    let s = site("never_finishes");
    assert_eq!((s.calls, s.cancelled, s.errors), (1, 1, 0));
}

trait Store {
    async fn load(&self, id: u32) -> Option<String>;
}

struct Memory;

impl Store for Memory {
    #[overrun::measure]
    async fn load(&self, id: u32) -> Option<String> {
        (id == 1).then(|| "one".to_string())
    }
}

#[tokio::test]
async fn async_fn_in_traits() {
    assert_eq!(Memory.load(1).await.as_deref(), Some("one"));
    assert_eq!(Memory.load(2).await, None);
    assert_eq!(site("<Memory as Store>::load").calls, 2);
}

#[overrun::measure]
async fn async_panics() {
    tokio::task::yield_now().await;
    panic!("async boom");
}

#[tokio::test]
async fn async_panic_is_an_error_and_propagates() {
    let joined = tokio::spawn(async_panics()).await;
    assert!(joined.unwrap_err().is_panic());
    let s = site("async_panics");
    assert_eq!((s.calls, s.errors), (1, 1));
}
