//! With `CountingAlloc` installed: the cost of `#[measure]` on a function that
//! does not allocate (it now also reads the allocation counters), the cost of
//! one allocation through the counting wrapper, and a check that the measured
//! call path allocates nothing after a site's first call.

use overrun_benches::{batch, floors, work};

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

floors!();

#[overrun::measure(budget = "1s", allocs = 0)]
fn measured_budget(x: u64) -> u64 {
    work(x)
}

#[divan::bench]
fn overrun_measure_counting() -> u64 {
    batch(measured_budget)
}

/// `Box::new(1u64)` + drop through `CountingAlloc<System>`.
#[divan::bench]
fn box_counting() -> u64 {
    batch(|x| *std::hint::black_box(Box::new(x)))
}

/// One 8-byte allocation and its release through `System` directly, in the
/// same process as the next bench, so both see the same heap.
#[divan::bench]
fn alloc_system_direct() -> u64 {
    use std::alloc::{GlobalAlloc, Layout, System};
    let layout = Layout::new::<u64>();
    batch(|x| {
        // SAFETY: a non-zero-size layout; the block is freed with the same
        // allocator and layout.
        unsafe {
            let p = System.alloc(layout);
            std::hint::black_box(p);
            System.dealloc(p, layout);
        }
        x
    })
}

/// The same through the counting wrapper (`CountingAlloc<System>`).
#[divan::bench]
fn alloc_counting_direct() -> u64 {
    use std::alloc::{GlobalAlloc, Layout};
    let layout = Layout::new::<u64>();
    batch(|x| {
        // SAFETY: as above.
        unsafe {
            let p = ALLOC.alloc(layout);
            std::hint::black_box(p);
            ALLOC.dealloc(p, layout);
        }
        x
    })
}

fn main() {
    // Zero heap allocations per call after the first, counted by the same
    // allocator the benches run under.
    measured_budget(1);
    let before = overrun::alloc::thread_allocs();
    for i in 0..100_000 {
        std::hint::black_box(measured_budget(i));
    }
    let after = overrun::alloc::thread_allocs();
    assert_eq!(after.count - before.count, 0, "the call path allocated");
    println!("allocations in 100000 measured calls after the first: 0");
    divan::main();
}
