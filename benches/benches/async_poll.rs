//! Per-poll cost of measuring an `async fn`, beside `tokio-metrics`'
//! `TaskMonitor::instrument` on the same future, polled by hand (no runtime,
//! so only the wrappers differ). Each iteration polls one future to
//! completion: `POLLS` polls.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use overrun_benches::{YieldN, work};

/// Polls per future: 16 `Pending` and the final `Ready`.
const POLLS: u64 = 17;

async fn plain() -> u64 {
    YieldN(16).await;
    work(1)
}

#[overrun::measure(poll = "1s")]
async fn measured() -> u64 {
    YieldN(16).await;
    work(1)
}

fn drive<F: Future<Output = u64>>(fut: F) -> u64 {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            debug_assert_eq!(polls, POLLS);
            return v;
        }
    }
}

#[divan::bench]
fn bare_future() -> u64 {
    drive(plain())
}

#[divan::bench]
fn overrun_async_measure() -> u64 {
    drive(measured())
}

#[divan::bench]
fn tokio_metrics_instrument(bencher: divan::Bencher<'_, '_>) {
    let monitor = tokio_metrics::TaskMonitor::new();
    bencher.bench_local(|| drive(monitor.instrument(plain())));
}

fn main() {
    println!("polls per iteration: {POLLS}");
    divan::main();
}
