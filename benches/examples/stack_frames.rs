//! Bytes of stack per frame of a recursive function: plain, with
//! `#[overrun::measure]`, an `async fn` with it (per poll, boxed recursion
//! beside the same without it), and with `tracing`'s `#[instrument]` under a
//! subscriber that enables its spans. Run in the profile it was built in
//! (the `stack` bench runs it in debug and in release): prints one
//! `STACK|profile|variant|bytes` line per variant.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;

/// Levels of recursion each figure is averaged over.
const DEPTH: u32 = 64;

/// The address of a local of the current frame.
#[inline(never)]
fn here() -> usize {
    let marker = 0u8;
    black_box(&marker as *const u8 as usize)
}

#[inline(never)]
fn plain(n: u32, top: usize) -> usize {
    if n == 0 {
        return top - here();
    }
    black_box(plain(black_box(n - 1), top))
}

#[overrun::measure]
#[inline(never)]
fn measured(n: u32, top: usize) -> usize {
    if n == 0 {
        return top - here();
    }
    black_box(measured(black_box(n - 1), top))
}

#[overrun::measure(budget = "1s", allocs = 1000)]
#[inline(never)]
fn measured_budget(n: u32, top: usize) -> usize {
    if n == 0 {
        return top - here();
    }
    black_box(measured_budget(black_box(n - 1), top))
}

#[tracing::instrument(skip_all)]
#[inline(never)]
fn instrumented(n: u32, top: usize) -> usize {
    if n == 0 {
        return top - here();
    }
    black_box(instrumented(black_box(n - 1), top))
}

/// A boxed future of the depth reached.
type Boxed = Pin<Box<dyn Future<Output = usize>>>;

fn plain_async(n: u32, top: usize) -> Boxed {
    Box::pin(async move {
        if n == 0 {
            return top - here();
        }
        black_box(plain_async(black_box(n - 1), top).await)
    })
}

#[overrun::measure]
fn measured_async(n: u32, top: usize) -> Pin<Box<dyn Future<Output = usize>>> {
    Box::pin(async move {
        if n == 0 {
            return top - here();
        }
        black_box(measured_async(black_box(n - 1), top).await)
    })
}

/// Bytes per frame of `f`: the stack used by `DEPTH` levels below the
/// first, divided by `DEPTH`.
fn per_frame(f: fn(u32, usize) -> usize) -> usize {
    let top = here();
    let one = f(0, top);
    let deep = f(DEPTH, top);
    (deep - one) / DEPTH as usize
}

fn per_poll(f: fn(u32, usize) -> Boxed) -> usize {
    let top = here();
    let one = overrun::tasks::block_on(f(0, top));
    let deep = overrun::tasks::block_on(f(DEPTH, top));
    (deep - one) / DEPTH as usize
}

fn main() {
    use tracing_subscriber::layer::SubscriberExt as _;
    // Spans enabled, so `#[instrument]` takes its full path.
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    for (variant, bytes) in [
        ("plain fn", per_frame(plain)),
        ("#[measure] fn", per_frame(measured)),
        ("#[measure(budget, allocs)] fn", per_frame(measured_budget)),
        ("tracing #[instrument] fn", per_frame(instrumented)),
        ("plain async fn (boxed), per poll", per_poll(plain_async)),
        (
            "#[measure] async fn (boxed), per poll",
            per_poll(measured_async),
        ),
    ] {
        println!("STACK|{profile}|{variant}|{bytes}");
    }
}
