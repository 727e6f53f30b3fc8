//! Built with `--no-default-features` (the `enabled` feature off) in the test
//! command: the macros still check their arguments but emit the functions
//! unchanged, so nothing is recorded. With the feature on this file is empty.
#![cfg(not(feature = "enabled"))]

#[overrun::measure(budget = "1ns", allocs = 0)]
fn measured(n: u64) -> u64 {
    n * 2
}

#[overrun::measure(poll = "1ns")]
async fn measured_async() -> u8 {
    1
}

struct Cart(u32);

#[overrun::measure(budget = "1ns")]
impl Cart {
    fn total(&self) -> u32 {
        self.0
    }
}

#[overrun::measure(poll = "1ns")]
#[allow(clippy::manual_async_fn)] // the shape under test
fn returns_future() -> impl std::future::Future<Output = u8> {
    async { 2 }
}

#[test]
fn nothing_is_recorded_without_the_feature() {
    assert_eq!(Cart(3).total(), 3);
    use std::sync::atomic::{AtomicU64, Ordering};
    static EVENTS: AtomicU64 = AtomicU64::new(0);
    let hook = overrun::on_violation(|_| {
        EVENTS.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(measured(21), 42);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(measured_async()), 1);
    assert_eq!(rt.block_on(returns_future()), 2);
    let snap = overrun::snapshot();
    assert!(snap.sites.is_empty());
    assert!(snap.never_ran.is_empty(), "no site is declared either");
    assert_eq!(EVENTS.load(Ordering::Relaxed), 0, "no violation event");
    overrun::remove_hook(hook);
}
