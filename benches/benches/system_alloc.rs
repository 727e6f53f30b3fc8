//! The reference for `counting_alloc`'s `box_counting`: the same allocation
//! through the bare System allocator, in its own process.

use overrun_benches::{batch, floors};

floors!();

/// `Box::new(1u64)` + drop through `System`.
#[divan::bench]
fn box_system() -> u64 {
    batch(|x| *std::hint::black_box(Box::new(x)))
}

fn main() {
    divan::main();
}
