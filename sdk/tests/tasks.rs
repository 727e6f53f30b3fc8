//! Task lifetimes (`overrun::tasks`, feature `tokio`). The registry is
//! process-wide, so these tests take turns.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn stats(name: &str) -> overrun::tasks::TaskStats {
    overrun::tasks::stats()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no task stats for {name}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn ten_thousand_tasks_from_four_threads() {
    let _serial = SERIAL.lock();
    let rt = runtime();
    let bytes_before = overrun::tasks::registry_bytes();
    let spawners: Vec<_> = (0..4)
        .map(|_| {
            let handle = rt.handle().clone();
            std::thread::spawn(move || {
                let _in_runtime = handle.enter();
                (0..2_500)
                    .map(|i| {
                        overrun::spawn_named("bulk", async move {
                            tokio::task::yield_now().await;
                            i * 2
                        })
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let handles: Vec<_> = spawners
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    let s = stats("bulk");
    assert_eq!((s.spawned, s.completed, s.live), (10_000, 10_000, 0));
    assert_eq!((s.cancelled, s.panicked, s.leaked), (0, 0, 0));
    assert!(s.polls >= 20_000, "at least two polls each: {}", s.polls);
    assert!(s.lifetime_p99_ns.unwrap() >= s.lifetime_p50_ns.unwrap());
    assert_eq!(
        overrun::tasks::registry_bytes(),
        bytes_before,
        "the registry gave its memory back"
    );
}

/// A never-ending tracked task and the line it is spawned from: with
/// `#[track_caller]` both are this function's caller's.
#[track_caller]
fn stuck_task() -> (overrun::tasks::Tracked<std::future::Pending<()>>, u32) {
    let line = std::panic::Location::caller().line();
    (overrun::track("stuck", std::future::pending()), line)
}

#[test]
fn a_task_that_never_ends_is_leaked_once_and_an_aborted_one_is_cancelled() {
    let _serial = SERIAL.lock();
    static LIFETIME_EVENTS: AtomicU64 = AtomicU64::new(0);
    static EVENT: Mutex<Option<overrun::Violation>> = Mutex::new(None);
    let hook = overrun::on_violation(|v| {
        if v.name == "stuck" && v.kind == overrun::ViolationKind::Lifetime {
            LIFETIME_EVENTS.fetch_add(1, Ordering::Relaxed);
            *EVENT.lock() = Some(*v);
        }
    });
    let rt = runtime();
    let (stuck, line) = rt.block_on(async {
        let (tracked, line) = stuck_task();
        (tokio::spawn(tracked.lifetime("200ms")), line)
    });
    rt.block_on(async {
        let h =
            tokio::spawn(overrun::track("aborted", std::future::pending::<()>()).lifetime("200ms"));
        tokio::task::yield_now().await;
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
    });
    std::thread::sleep(Duration::from_millis(450));

    let s = stats("stuck");
    assert_eq!((s.live, s.leaked), (1, 1), "counted once, still live");
    assert_eq!(LIFETIME_EVENTS.load(Ordering::Relaxed), 1, "one event");
    let live = overrun::tasks::live();
    let t = live.iter().find(|t| t.name == "stuck").unwrap();
    assert!(t.leaked);
    assert!(t.file.ends_with("tests/tasks.rs"), "{}", t.file);
    assert_eq!(t.line, line, "spawn location of this test");
    assert!(t.age >= Duration::from_millis(400));
    // It stays counted once however often it is checked.
    let _ = overrun::tasks::live(); // checks lifetimes again
    assert_eq!(stats("stuck").leaked, 1);
    let event = EVENT.lock().expect("the hook received the lifetime event");
    assert_eq!((event.file, event.line), (t.file, line));
    assert_eq!(event.limit, 200_000_000);

    let a = stats("aborted");
    assert_eq!((a.cancelled, a.leaked, a.live), (1, 0, 0));
    stuck.abort();
    drop(rt);
    overrun::remove_hook(hook);
    assert_eq!(stats("stuck").live, 0, "gone with the runtime");
}

#[test]
fn one_blocking_poll_is_one_poll_violation() {
    let _serial = SERIAL.lock();
    let rt = runtime();
    rt.block_on(async {
        let blocker = tokio::spawn(
            overrun::track("blocker", async {
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_millis(20)); // blocks the executor
                tokio::task::yield_now().await;
            })
            .poll_budget("5ms"),
        );
        let yielder = tokio::spawn(
            overrun::track("yielder", async {
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_micros(200) {}
                }
            })
            .poll_budget("50ms"),
        );
        blocker.await.unwrap();
        yielder.await.unwrap();
    });
    let b = stats("blocker");
    assert_eq!(b.poll_violations, 1);
    assert!(b.max_poll_ns.unwrap() >= 20_000_000);
    // Every poll is in the poll histogram: three, one of them ~20 ms.
    assert_eq!(b.poll_histogram.count(), b.polls);
    assert_eq!(b.polls, 3);
    assert!(b.poll_p99_ns.unwrap() >= 19_000_000, "{:?}", b.poll_p99_ns);
    assert!(b.poll_p50_ns.unwrap() < 5_000_000, "{:?}", b.poll_p50_ns);
    // Task polls are not listed as functions.
    assert!(overrun::snapshot().site("blocker").is_none());
    assert_eq!(stats("yielder").poll_violations, 0);
    assert_eq!(stats("yielder").polls, 21);
}

#[test]
fn panicking_tasks_end_with_an_error() {
    let _serial = SERIAL.lock();
    let rt = runtime();
    rt.block_on(async {
        let h = overrun::spawn_named("panics", async {
            tokio::task::yield_now().await;
            panic!("task failure");
        });
        assert!(h.await.unwrap_err().is_panic());
    });
    let p = stats("panics");
    assert_eq!((p.spawned, p.panicked, p.completed, p.live), (1, 1, 0, 0));
}

/// The JSON report's entry for the task called `name`.
fn json_task(snap: &overrun::Snapshot, name: &str) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no task {name} in the JSON"))
}

#[test]
fn blocking_tasks_and_the_report() {
    let _serial = SERIAL.lock();
    let rt = runtime();
    let v = rt.block_on(async {
        overrun::spawn_blocking_named("crunch", || {
            std::thread::sleep(Duration::from_millis(5));
            7
        })
        .await
        .unwrap()
    });
    assert_eq!(v, 7);
    let c = stats("crunch");
    assert_eq!((c.completed, c.polls), (1, 1));
    assert!(c.busy_ns >= 5_000_000);
    let snap = overrun::snapshot();
    let task = json_task(&snap, "crunch");
    assert_eq!(task["completed"], 1);
    assert!(task["lifetime_p50_ns"].as_u64().unwrap() >= 5_000_000);
    assert!(overrun::report::render_table(&snap).contains("crunch"));
}

#[test]
fn figures_of_tasks_that_never_ended_are_null_not_zero() {
    let _serial = SERIAL.lock();
    // Never polled, never ended: no lifetime, no poll figure, no delay.
    let pending = overrun::track("never-ends", std::future::pending::<()>());
    let s = stats("never-ends");
    assert_eq!((s.spawned, s.live), (1, 1));
    assert_eq!(s.lifetime_p50_ns, None);
    assert_eq!(s.lifetime_p99_ns, None);
    assert_eq!(s.lifetime_max_ns, None);
    assert_eq!(s.first_poll_delay_ns, None);
    assert_eq!(s.idle_ns, None);
    assert_eq!(
        (s.max_poll_ns, s.poll_p50_ns, s.poll_p99_ns),
        (None, None, None)
    );
    let snap = overrun::snapshot();
    let task = json_task(&snap, "never-ends");
    for field in [
        "lifetime_p50_ns",
        "lifetime_p99_ns",
        "first_poll_delay_ns",
        "max_poll_ns",
    ] {
        assert!(task[field].is_null(), "{field}: {}", task[field]);
    }
    let table = overrun::report::render_table(&snap);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("never-ends"))
        .unwrap();
    assert!(row.ends_with("n/a       n/a       n/a"), "{row}");
    // No poll-max series for a task that was never polled.
    let series = overrun::export::series(&snap);
    let poll_max = series
        .iter()
        .find(|s| s.metric.name == "overrun.task.poll_max")
        .map(|s| {
            s.points
                .iter()
                .any(|p| p.label("task") == Some("never-ends"))
        });
    assert_ne!(poll_max, Some(true));
    drop(pending);
}

/// Budgets given to `overrun::task(..)`, checked at compile time with
/// `overrun::duration!`, apply to the task it tracks.
#[test]
fn a_task_built_with_budgets_keeps_them() {
    let _serial = SERIAL.lock();
    let fut = overrun::task("built")
        .poll_budget(overrun::duration!("1ms"))
        .lifetime(overrun::duration!("1h"))
        .track(async {
            std::thread::sleep(Duration::from_millis(5));
            1
        });
    assert_eq!(overrun::tasks::block_on(fut), 1);
    let s = stats("built");
    assert_eq!((s.completed, s.poll_violations, s.leaked), (1, 1, 0));
}
