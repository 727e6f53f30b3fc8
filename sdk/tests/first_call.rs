//! The very first measured call of a process, on a site with no time budget:
//! the clock is calibrated at registration, outside the call, so the call's
//! allocation count is exact. One test in its own process, on purpose.

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

#[overrun::measure(allocs = 1)]
fn first(n: usize) -> usize {
    std::hint::black_box(vec![0u8; n]).len()
}

#[test]
fn the_first_call_is_charged_only_its_own_allocations() {
    assert_eq!(first(16), 16);
    let snap = overrun::snapshot();
    let s = snap.site("first").unwrap();
    assert_eq!(s.allocs, Some(1));
    assert_eq!(s.alloc_bytes, Some(16));
    assert_eq!(s.violations.allocs, 0);
}
