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

#[test]
fn nothing_is_recorded_without_the_feature() {
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
    let snap = overrun::snapshot();
    assert!(snap.sites.is_empty());
    assert_eq!(EVENTS.load(Ordering::Relaxed), 0, "no violation event");
    overrun::remove_hook(hook);
}
