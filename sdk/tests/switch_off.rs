//! `OVERRUN=off` at run time, and switching back on. One test in its own
//! process: the switch is process-wide.

#[overrun::measure]
fn switched(n: u32) -> u32 {
    n + 1
}

#[overrun::measure]
async fn switched_async() -> u8 {
    1
}

#[test]
fn overrun_off_records_nothing() {
    // SAFETY: the only test in this binary, and no other thread runs yet.
    unsafe { std::env::set_var("OVERRUN", "off") };
    assert!(!overrun::enabled(), "OVERRUN=off is read on first use");
    for i in 0..10 {
        assert_eq!(switched(i), i + 1);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(switched_async()), 1);
    assert!(overrun::snapshot().sites.is_empty());

    overrun::set_enabled(true);
    switched(1);
    rt.block_on(switched_async());
    let snap = overrun::snapshot();
    assert_eq!(snap.site("switched").unwrap().calls, 1);
    assert_eq!(snap.site("switched_async").unwrap().calls, 1);
}
