//! `overrun::testing`: budgets as tests.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use overrun::testing::{capture, capture_value, check};

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

/// Busy for `d` of wall time: noise can only make it slower, never faster.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn handler(slowdown: u32) {
    spin(Duration::from_micros(20) * slowdown);
}

#[test]
fn a_function_made_twice_as_slow_fails_its_p99() {
    // At its real speed it passes: in one of three runs, since a busy
    // machine can only make a run slower (one such run failed here while
    // the other core was compiling)...
    let real_speed: Vec<_> = (0..3)
        .map(|_| check(|| handler(1)).iterations(5_000).p99("30us").run())
        .collect();
    assert!(
        real_speed.iter().any(|r| r.passed()),
        "the function at its real speed failed three runs:\n{}",
        real_speed[2]
    );
    // ...and 2× slower it fails, naming the percentile, value and budget.
    let failure = std::panic::catch_unwind(|| {
        check(|| handler(2)).iterations(2_000).p99("30us").assert();
    })
    .expect_err("a 2x slower function must break its p99 budget");
    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted message")
        .clone();
    assert!(message.contains("p99"), "{message}");
    assert!(message.contains("over its budget of 30.0µs"), "{message}");
    assert!(
        message.contains("figure"),
        "the table is in the message: {message}"
    );
    let report = check(|| handler(2)).iterations(500).p99("30us").run();
    assert!(!report.passed());
    assert!(report.figures[2] >= 40_000, "{report}");
}

fn parse(line: &str) -> Vec<u32> {
    line.split(',').filter_map(|s| s.parse().ok()).collect()
}

#[test]
fn allocation_budgets_are_exact() {
    check(|| parse("1,2,3"))
        .iterations(1_000)
        .allocs_per_call(1)
        .bytes_per_call("16B")
        .assert();
    let report = check(|| parse("1,2,3,4,5,6,7,8,9"))
        .iterations(100)
        .allocs_per_call(1)
        .run();
    assert!(!report.passed(), "a growing Vec reallocates: {report}");
    assert!(report.failures()[0].starts_with("allocs/call "));
    let zero = check(|| black_box(2u64) * 3)
        .iterations(1_000)
        .allocs_per_call(0)
        .run();
    assert!(zero.passed(), "{zero}");
    assert_eq!(zero.allocs_max, 0);
}

#[test]
#[should_panic(expected = "invalid duration budget \"30 parsecs\"")]
fn a_bad_literal_is_a_clear_error() {
    let _ = check(|| ()).p99("30 parsecs");
}

// ---- capture ---------------------------------------------------------------

struct Cart(Vec<u64>);

#[overrun::measure(budget = "1s", allocs = 2)]
fn price_cart(cart: &Cart) -> u64 {
    let prices: Vec<u64> = cart.0.iter().map(|p| p * 2).collect();
    prices.iter().sum()
}

#[overrun::measure]
fn load_user(id: u64) -> String {
    format!("user-{id}")
}

#[overrun::measure]
fn checkout(cart: &Cart) -> (String, u64) {
    (load_user(7), price_cart(cart))
}

#[test]
fn capture_is_exact_while_other_threads_hammer_the_same_functions() {
    let stop = Arc::new(AtomicBool::new(false));
    let hammers: Vec<_> = (0..8)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let cart = Cart(vec![1, 2, 3]);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    black_box(checkout(&cart));
                    black_box(load_user(t));
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Let them get going.
    std::thread::sleep(Duration::from_millis(20));
    let cart = Cart(vec![10, 20, 30, 40]);
    for _ in 0..50 {
        let (value, stats) = capture_value(|| {
            let a = checkout(&cart);
            let b = price_cart(&cart);
            (a, b)
        });
        assert_eq!(value.1, 200);
        assert_eq!(stats.site("checkout").calls(), 1);
        assert_eq!(stats.site("price_cart").calls(), 2);
        assert_eq!(stats.site("load_user").calls(), 1);
        // Exact allocations: one Vec per price_cart, one String per load_user
        // (inclusive for checkout).
        assert_eq!(stats.site("price_cart").allocs(), 2);
        assert_eq!(stats.site("price_cart").bytes(), 2 * 32);
        assert_eq!(stats.site("load_user").allocs(), 1);
        assert_eq!(stats.site("checkout").allocs(), 2);
        stats.site("price_cart").assert_within_budget();
    }
    stop.store(true, Ordering::Relaxed);
    let total: u64 = hammers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(total > 0, "the other threads ran meanwhile");
}

#[overrun::measure(allocs = 0)]
fn must_not_allocate(n: usize) -> usize {
    vec![0u8; n].len()
}

#[test]
fn assert_within_budget_names_what_broke() {
    let stats = capture(|| {
        must_not_allocate(0);
        must_not_allocate(4);
    });
    let site = stats.site("must_not_allocate");
    assert_eq!((site.calls(), site.violations()[1]), (2, 1));
    let failure = std::panic::catch_unwind(|| site.assert_within_budget()).unwrap_err();
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("allocs budget 0 broken 1 time(s)"),
        "{message}"
    );
}

#[path = "support/yield_once.rs"]
mod yield_once;
use yield_once::YieldOnce;

#[overrun::measure]
async fn fetch(id: u64) -> Vec<u64> {
    YieldOnce(false).await;
    vec![id; 4]
}

#[test]
fn capture_includes_futures_polled_by_this_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stats = capture(|| {
        rt.block_on(async {
            fetch(1).await;
            fetch(2).await;
        })
    });
    let site = stats.site("fetch");
    assert_eq!(site.calls(), 2);
    assert_eq!(site.allocs(), 2);
    assert_eq!(site.bytes(), 2 * 32);
}

// ---- async ------------------------------------------------------------

/// Allocates one box per poll, over `polls` polls (yielding between them,
/// so on a multi-thread runtime they may run on different threads).
#[overrun::measure]
async fn boxes_across_polls(polls: u32) -> usize {
    let mut held = Vec::with_capacity(polls as usize);
    for _ in 0..polls {
        held.push(black_box(Box::new([0u8; 64])));
        YieldOnce(false).await;
    }
    held.len()
}

async fn capture_checks() {
    let stats = overrun::testing::capture_async(async {
        boxes_across_polls(4).await;
        boxes_across_polls(2).await;
    })
    .await;
    let s = stats.site("boxes_across_polls");
    assert_eq!(s.calls(), 2);
    // Six boxes and two Vecs, wherever the polls ran.
    assert_eq!(s.allocs(), 6 + 2);
    assert_eq!(s.bytes(), 6 * 64 + (4 + 2) * 8);
}

#[tokio::test(flavor = "current_thread")]
async fn capture_async_on_a_current_thread_runtime() {
    capture_checks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_async_on_a_multi_thread_runtime() {
    // Spawned, so its polls really move between the workers.
    tokio::spawn(capture_checks()).await.unwrap();
}

#[overrun::measure]
async fn slow_lookup(slowdown: u32) -> u32 {
    YieldOnce(false).await;
    spin(Duration::from_micros(200 * u64::from(slowdown)));
    7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_async_passes_and_fails_like_check() {
    let report = overrun::testing::check_async(|| slow_lookup(1))
        .iterations(200)
        .p50("5ms")
        .allocs_per_call(0)
        .run()
        .await;
    assert!(report.passed(), "{report}");
    assert_eq!(report.iterations, 200);
    // The same call made 10x slower against a budget below it: red.
    let report = overrun::testing::check_async(|| slow_lookup(10))
        .iterations(50)
        .p50("1ms")
        .run()
        .await;
    assert!(!report.passed(), "{report}");
    assert!(report.failures()[0].contains("p50"), "{report}");
}

#[tokio::test(flavor = "current_thread")]
#[should_panic(expected = "allocs")]
async fn check_async_assert_names_the_broken_budget() {
    overrun::testing::check_async(|| async { black_box(vec![1u8; 16]).len() })
        .iterations(50)
        .allocs_per_call(0)
        .assert()
        .await;
}

/// `block_on` inside a current-thread runtime panics at once, saying what to
/// use; it never hangs (a timer awaited here would otherwise wait for the
/// runtime that `block_on` blocks). On a multi-thread runtime, and on its
/// blocking threads, it works.
#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread")]
#[should_panic(expected = "`.await` the future instead")]
async fn block_on_inside_a_current_thread_runtime_panics_at_once() {
    overrun::tasks::block_on(tokio::time::sleep(Duration::from_millis(1)));
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_on_inside_a_multi_thread_runtime_works() {
    overrun::tasks::block_on(tokio::time::sleep(Duration::from_millis(1)));
    let v = tokio::task::spawn_blocking(|| overrun::tasks::block_on(async { 5 }))
        .await
        .unwrap();
    assert_eq!(v, 5);
}

/// `check_async` and `capture_async` futures are `Send`: they can be
/// spawned, and their polls then move between the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_checks_can_be_spawned() {
    let report = tokio::spawn(
        overrun::testing::check_async(|| slow_lookup(1))
            .iterations(100)
            .p50("5ms")
            .run(),
    )
    .await
    .unwrap();
    assert!(report.passed(), "{report}");
    let stats = tokio::spawn(overrun::testing::capture_async(slow_lookup(1)))
        .await
        .unwrap();
    assert_eq!(stats.site("slow_lookup").calls(), 1);
}
