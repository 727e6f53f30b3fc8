//! Async task lifetimes: a task that never finishes (a leak) and a task that
//! blocks the executor, both shown in the report at exit.
//!
//! ```text
//! cargo run --example tasks
//! ```

use std::time::Duration;

#[overrun::main(budget = "5s")]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    overrun::on_violation(|v| eprintln!("budget violation: {v}"));

    // Waits for a shutdown signal nobody will ever send: a leak.
    let _reaper = tokio::spawn(
        overrun::track("session-reaper", std::future::pending::<()>()).lifetime("300ms"),
    );

    // Calls blocking code inside async code: one poll blocks a worker.
    let thumbnailer = tokio::spawn(
        overrun::track("thumbnailer", async {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(20)); // should be spawn_blocking
        })
        .poll_budget("5ms"),
    );

    // Well-behaved request handlers.
    let requests: Vec<_> = (0..200u64)
        .map(|i| {
            overrun::spawn_named("request", async move {
                tokio::time::sleep(Duration::from_millis(i % 20)).await;
                i
            })
        })
        .collect();
    let mut served = 0;
    for r in requests {
        served += r.await.map_or(0, |_| 1);
    }
    thumbnailer.await.unwrap();

    // CPU-heavy work done right: on the blocking pool.
    let digest = overrun::spawn_blocking_named("digest", || (0..1_000_000u64).sum::<u64>())
        .await
        .unwrap();

    // Give the watchdog time to notice the reaper outlived its budget.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for t in overrun::tasks::live() {
        println!(
            "live: {} at {}:{} age {:?} leaked={}",
            t.name, t.file, t.line, t.age, t.leaked
        );
    }
    println!("served {served} requests, digest {digest}");
}
