//! Task tracking: cost per spawn (spawn, run to completion, join) on a
//! current-thread tokio runtime, and cost per poll of a polled-by-hand future,
//! beside plain `tokio::spawn` and `tokio-metrics`' `TaskMonitor::instrument`
//! in the same run. Per spawn: `median / 64`; per poll: `median / 17`.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use overrun_benches::{BATCH, YieldN, work};

async fn job(i: u64) -> u64 {
    work(i)
}

async fn sixteen_yields() -> u64 {
    YieldN(16).await;
    work(1)
}

fn drive<F: Future<Output = u64>>(fut: F) -> u64 {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Spawns one batch with `spawn` (inside the runtime: this future runs in
/// `block_on`), awaits every handle and folds the results.
async fn spawn_join(spawn: impl Fn(u64) -> tokio::task::JoinHandle<u64>) -> u64 {
    let handles: Vec<_> = (0..BATCH).map(spawn).collect();
    let mut acc = 0u64;
    for h in handles {
        acc = h.await.unwrap().wrapping_add(acc);
    }
    acc
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[divan::bench]
fn spawn_tokio(bencher: divan::Bencher<'_, '_>) {
    let rt = rt();
    bencher.bench_local(|| rt.block_on(spawn_join(|i| tokio::spawn(job(i)))));
}

#[divan::bench]
fn spawn_overrun_tracked(bencher: divan::Bencher<'_, '_>) {
    let rt = rt();
    bencher.bench_local(|| rt.block_on(spawn_join(|i| overrun::spawn_named("bench", job(i)))));
}

#[divan::bench]
fn spawn_tokio_metrics(bencher: divan::Bencher<'_, '_>) {
    let rt = rt();
    let monitor = tokio_metrics::TaskMonitor::new();
    bencher.bench_local(|| rt.block_on(spawn_join(|i| tokio::spawn(monitor.instrument(job(i))))));
}

#[divan::bench]
fn poll_bare() -> u64 {
    drive(sixteen_yields())
}

#[divan::bench]
fn poll_overrun_tracked() -> u64 {
    drive(overrun::track("bench-poll", sixteen_yields()).poll_budget("1s"))
}

#[divan::bench]
fn poll_tokio_metrics(bencher: divan::Bencher<'_, '_>) {
    let monitor = tokio_metrics::TaskMonitor::new();
    bencher.bench_local(|| drive(monitor.instrument(sixteen_yields())));
}

fn main() {
    divan::main();
}
