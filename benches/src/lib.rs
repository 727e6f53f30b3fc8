//! Shared pieces of overrun's benches.
//!
//! Every bench iteration makes [`BATCH`] calls of the same one-multiply
//! function, so per-call figures are `median / BATCH` for every contender
//! alike (fastrace needs a root span per batch; amortised the same way).
//! Each bench target starts with the same floors — a bare call, two raw TSC
//! reads (`quanta::Clock::raw` ×2) and `Instant::now` + `elapsed` — so every
//! report holds the floor and the peer measured in the same process and run.
//! `benches/summary.py` turns the reports into ratios.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Calls per bench iteration.
pub const BATCH: u64 = 64;

/// The function every contender times: one multiply.
#[inline(never)]
pub fn work(x: u64) -> u64 {
    black_box(x).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Runs `f` over one batch of inputs and folds the results, so nothing is
/// optimised away.
///
/// ```
/// let sum = overrun_benches::batch(|x| x + 1);
/// assert_eq!(sum, (1..=64).sum::<u64>());
/// ```
#[inline(always)]
pub fn batch(mut f: impl FnMut(u64) -> u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..BATCH {
        acc = acc.wrapping_add(f(black_box(i)));
    }
    acc
}

/// Defines the floor benches shared by every target: `bare`,
/// `quanta_raw_pair` and `instant_pair`.
#[macro_export]
macro_rules! floors {
    () => {
        #[divan::bench]
        fn bare() -> u64 {
            $crate::batch($crate::work)
        }

        #[divan::bench]
        fn quanta_raw_pair(bencher: divan::Bencher<'_, '_>) {
            let clock = quanta::Clock::new();
            bencher.bench_local(|| {
                $crate::batch(|x| {
                    let start = clock.raw();
                    let r = $crate::work(x);
                    let end = clock.raw();
                    r.wrapping_add(end.wrapping_sub(start))
                })
            });
        }

        #[divan::bench]
        fn instant_pair() -> u64 {
            $crate::batch(|x| {
                let start = std::time::Instant::now();
                let r = $crate::work(x);
                r.wrapping_add(start.elapsed().as_nanos() as u64)
            })
        }
    };
}

/// A future that is pending `n` times (waking itself each time), then ready.
///
/// ```
/// let v = overrun::tasks::block_on(async { overrun_benches::YieldN(3).await; 7 });
/// assert_eq!(v, 7);
/// ```
pub struct YieldN(pub u32);

impl Future for YieldN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            Poll::Ready(())
        } else {
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
