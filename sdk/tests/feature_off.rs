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
    assert_eq!(measured(21), 42);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(measured_async()), 1);
    let snap = overrun::snapshot();
    assert!(snap.sites.is_empty());
    assert_eq!(overrun::violation::recent(0).events.len(), 0);
}
