//! `overrun::sync`: exact counts of acquisitions, contention and wait and
//! hold violations, with threads made to contend; the watchdog; readers
//! beside readers; the figures in the snapshot, the JSON, the report and
//! the export schema.

#[path = "support/wait.rs"]
mod wait;
use std::sync::mpsc;
use std::sync::{Arc, Mutex as StdMutex};
use std::thread;
use std::time::{Duration, Instant};
use wait::eventually;

use overrun::sync::{LockStats, Mutex, RwLock};
use overrun::{Violation, ViolationKind};

fn stats(name: &str) -> LockStats {
    overrun::snapshot()
        .locks
        .into_iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("lock {name} in the snapshot"))
}

/// The violations of lock `name` published from now on.
fn events(name: &'static str) -> (Arc<StdMutex<Vec<Violation>>>, overrun::HookId) {
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let sink = seen.clone();
    let id = overrun::on_violation(move |v| {
        if v.name == name {
            sink.lock().unwrap().push(*v);
        }
    });
    (seen, id)
}

/// How long the holder keeps the lock after the other thread said it is
/// about to ask for it: the other's next step is that request (a second
/// leaves room for a loaded machine to run it late).
const HOLD_AFTER_SIGNAL: Duration = Duration::from_secs(1);

/// Runs `take` (an acquisition of the lock `guard` holds) on another
/// thread, keeps the lock [`HOLD_AFTER_SIGNAL`] after that thread said it
/// is about to ask, then releases it and waits for the thread.
fn while_held<G>(guard: G, take: impl FnOnce() + Send + 'static) {
    let (about_to, told) = mpsc::channel();
    let other = thread::spawn(move || {
        about_to.send(()).unwrap();
        take();
    });
    told.recv().unwrap();
    thread::sleep(HOLD_AFTER_SIGNAL);
    drop(guard);
    other.join().unwrap();
}

#[test]
fn contention_waits_and_holds_are_counted_exactly() {
    const ROUNDS: u64 = 2;
    // The holder's 1 s holds are past the hold budget; the waiter's own
    // holds (a few µs) are far inside it, however the machine runs.
    let m = Arc::new(
        Mutex::new("test.contended", 0u64)
            .wait_budget("1ms")
            .hold_budget("300ms"),
    );
    let (seen, hook) = events("test.contended");
    for _ in 0..ROUNDS {
        let guard = m.lock(); // free: not contended, held 1 s: a hold violation
        let m = m.clone();
        while_held(guard, move || *m.lock() += 1); // taken: waits > 1 ms, a wait violation
    }
    let l = stats("test.contended");
    assert_eq!(l.acquisitions, 2 * ROUNDS);
    assert_eq!(l.contended, ROUNDS);
    assert_eq!(l.violations.wait, ROUNDS);
    assert_eq!(l.violations.hold, ROUNDS, "each hold counted once");
    assert!(l.max_wait_ns.unwrap() >= 50_000_000, "{l:?}");
    assert!(l.max_hold_ns.unwrap() >= HOLD_AFTER_SIGNAL.as_nanos() as u64);
    assert_eq!(
        l.wait_p50_ns,
        Some(0),
        "half the acquisitions found it free"
    );
    assert_eq!(l.budget.wait_ns, Some(1_000_000));
    assert_eq!(l.budget.hold_ns, Some(300_000_000));
    assert_eq!(l.held_past_budget, 0, "nothing held now");
    assert!(
        l.exclusive.is_none() && l.shared.is_none(),
        "a mutex has one mode"
    );
    overrun::remove_hook(hook);
    let seen = seen.lock().unwrap();
    let count = |k| seen.iter().filter(|v| v.kind == k).count() as u64;
    assert_eq!(count(ViolationKind::Wait), ROUNDS);
    assert_eq!(count(ViolationKind::Hold), ROUNDS);
    for v in seen.iter() {
        assert_eq!(v.module, "lock");
        assert!(
            v.file.ends_with("locks.rs"),
            "the lock() call's file: {v:?}"
        );
        assert!(v.observed > v.limit, "{v:?}");
    }
}

#[test]
fn a_guard_held_past_its_budget_is_reported_while_held_and_once() {
    let m = Mutex::new("test.forgotten", ()).hold_budget("20ms");
    let (seen, hook) = events("test.forgotten");
    let line = line!() + 1;
    let guard = m.lock();
    let taken = Instant::now();
    // Held far longer than the promised report time (max(2 × 20 ms, 100
    // ms)): the report must come while the guard is still held.
    eventually(Duration::from_secs(2), || !seen.lock().unwrap().is_empty());
    let while_held = seen.lock().unwrap().clone();
    let reported_after = taken.elapsed();
    assert_eq!(
        stats("test.forgotten").held_past_budget,
        1,
        "the snapshot shows the hold in progress past its budget"
    );
    thread::sleep(Duration::from_millis(50));
    drop(guard);
    overrun::remove_hook(hook);
    assert_eq!(while_held.len(), 1, "reported while held: {while_held:?}");
    let v = while_held[0];
    assert_eq!(
        (v.kind, v.name, v.line),
        (ViolationKind::Hold, "test.forgotten", line)
    );
    assert!(v.observed > 20_000_000 && v.limit == 20_000_000, "{v:?}");
    assert!(
        v.observed <= reported_after.as_nanos() as u64,
        "observed while held: {v:?}, {reported_after:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "not again at release");
    let l = stats("test.forgotten");
    assert_eq!((l.acquisitions, l.violations.hold), (1, 1));
    assert_eq!(l.held_past_budget, 0, "released");
}

#[test]
fn readers_do_not_wait_for_readers_and_writers_wait_for_readers() {
    let lock = Arc::new(RwLock::new("test.rw", 7u32).wait_budget("1ms"));
    let first = lock.read();
    let (got, has) = mpsc::channel();
    let reader = {
        let lock = lock.clone();
        thread::spawn(move || {
            let second = lock.read(); // beside `first`: no wait
            got.send(*second).unwrap();
        })
    };
    assert_eq!(
        has.recv_timeout(Duration::from_secs(10)),
        Ok(7),
        "a second reader got in beside the first"
    );
    reader.join().unwrap();
    // A writer waits for the reader still in.
    let writer = lock.clone();
    while_held(first, move || *writer.write() += 1);
    assert_eq!(*lock.read(), 8);
    let l = stats("test.rw");
    let (shared, exclusive) = (l.shared.clone().unwrap(), l.exclusive.clone().unwrap());
    assert_eq!((shared.acquisitions, shared.contended), (3, 0));
    assert_eq!((exclusive.acquisitions, exclusive.contended), (1, 1));
    assert_eq!((l.acquisitions, l.contended), (4, 1));
    assert_eq!(l.violations.wait, 1);
    assert_eq!(l.hold_p50_ns, None, "no hold budget: holds not measured");
}

#[test]
fn try_lock_that_fails_is_not_an_acquisition() {
    let m = Mutex::new("test.try", ());
    let held = m.try_lock().expect("free");
    assert!(m.try_lock().is_none());
    drop(held);
    let l = stats("test.try");
    assert_eq!((l.acquisitions, l.contended), (1, 0));
}

#[test]
fn locks_are_in_the_json_the_report_and_the_export_schema() {
    let m = Mutex::new("test.shown", ())
        .wait_budget("1s")
        .hold_budget("1s");
    drop(m.lock());
    let snap = overrun::snapshot();
    let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    let lock = json["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "test.shown")
        .unwrap();
    for key in [
        "acquisitions",
        "contended",
        "wait_p50_ns",
        "wait_p99_ns",
        "max_wait_ns",
        "hold_p50_ns",
        "hold_p99_ns",
        "max_hold_ns",
    ] {
        assert!(lock[key].is_u64(), "{key}: {lock}");
    }
    assert_eq!(lock["kind"], "mutex");
    assert_eq!(lock["budget"]["wait_ns"], 1_000_000_000u64);
    assert_eq!(lock["budget"]["hold_ns"], 1_000_000_000u64);
    assert_eq!(lock["violations"]["wait"], 0);
    assert_eq!(lock["violations"]["hold"], 0);

    let table = overrun::report::render_table(&snap);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("test.shown"))
        .unwrap_or_else(|| panic!("a row for the lock:\n{table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{row}");

    use overrun::export::{LOCK_ACQUISITIONS, LOCK_HOLD, LOCK_WAIT, Value, series};
    assert_eq!(
        LOCK_ACQUISITIONS.prometheus_name(),
        "overrun_lock_acquisitions_total"
    );
    assert_eq!(LOCK_WAIT.prometheus_name(), "overrun_lock_wait_seconds");
    assert_eq!(LOCK_HOLD.prometheus_name(), "overrun_lock_hold_seconds");
    let all = series(&snap);
    let of = |name: &str| {
        all.iter()
            .find(|s| s.metric.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let free = of("overrun.lock.acquisitions")
        .points
        .iter()
        .find(|p| p.label("lock") == Some("test.shown") && p.label("contended") == Some("false"))
        .unwrap();
    assert!(matches!(free.value, Value::Int(1)));
    assert_eq!(free.label("mode"), Some("exclusive"));
    let hold = of("overrun.lock.hold")
        .points
        .iter()
        .find(|p| p.label("lock") == Some("test.shown"))
        .unwrap();
    assert!(matches!(hold.value, Value::Histogram { count: 1, .. }));
    assert!(of("overrun.budget.violations").points.iter().any(|p| {
        p.label("function") == Some("test.shown")
            && p.label("module") == Some("lock")
            && p.label("kind") == Some("hold")
    }));
}

#[cfg(feature = "tokio")]
#[test]
fn a_tokio_mutex_held_across_await_is_counted() {
    use overrun::sync::TokioMutex;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // `first` holds 1 s, past the hold budget; `second`'s hold of a few µs
    // is far inside it.
    let m = TokioMutex::new("test.tokio", 0u32)
        .wait_budget("1ms")
        .hold_budget("300ms");
    rt.block_on(async {
        // `first` is polled first: it takes the lock free and holds it
        // across a sleep; `second` finds it taken and waits.
        let first = async {
            let mut g = m.lock().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            *g += 1;
        };
        let second = async {
            *m.lock().await += 1;
        };
        tokio::join!(first, second);
    });
    assert_eq!(*m.try_lock().unwrap(), 2);
    let l = stats("test.tokio");
    assert_eq!((l.acquisitions, l.contended), (3, 1));
    assert_eq!((l.violations.wait, l.violations.hold), (1, 1));
    assert!(l.max_hold_ns.unwrap() >= 1_000_000_000);

    // A wait given up (its future dropped by a timeout) is not an
    // acquisition, but its wait past the budget is a violation.
    let gave_up = rt.block_on(async {
        let held = m.lock().await;
        let waited = tokio::time::timeout(Duration::from_millis(50), m.lock()).await;
        drop(held);
        waited.is_err()
    });
    assert!(gave_up);
    let l = stats("test.tokio");
    assert_eq!((l.acquisitions, l.contended), (4, 1));
    assert_eq!(l.violations.wait, 2, "the abandoned 50 ms wait");
}

/// The watch under concurrency: guards of one lock taken on every worker of
/// a multi-thread runtime, held across `.await` (so released on whichever
/// worker resumes them), the watchdog reporting the long ones while other
/// holds come and go in the same slots. Each long hold is counted once —
/// by the watchdog or at release, never both — and no short one at all
/// (its budget is far above a few µs however the machine runs).
#[cfg(feature = "tokio")]
#[test]
fn concurrent_holds_across_threads_are_each_counted_once() {
    use overrun::sync::TokioMutex;
    const TASKS: u64 = 4;
    const HOLDS: u64 = 100;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let m = Arc::new(TokioMutex::new("test.concurrent", 0u64).hold_budget("200ms"));
    let (seen, hook) = events("test.concurrent");
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for i in 0..HOLDS {
                        let mut g = m.lock().await;
                        *g += 1;
                        if i == HOLDS / 2 {
                            tokio::time::sleep(Duration::from_millis(400)).await;
                        } else {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    overrun::remove_hook(hook);
    assert_eq!(*m.try_lock().unwrap(), TASKS * HOLDS);
    let l = stats("test.concurrent");
    assert_eq!(l.acquisitions, TASKS * HOLDS + 1);
    assert_eq!(l.violations.hold, TASKS, "one per long hold");
    assert_eq!(
        seen.lock().unwrap().len() as u64,
        TASKS,
        "one event per long hold"
    );
    assert_eq!(l.held_past_budget, 0);
}

/// A wait past its budget is reported while the thread still waits: as
/// soon as the budget passes, with the lock not held by the waiter (a lock
/// that never comes shows too), and counted once.
#[test]
fn a_wait_past_its_budget_is_reported_while_the_thread_still_waits() {
    let m = Arc::new(Mutex::new("test.waiting", 0u32).wait_budget("20ms"));
    let (seen, hook) = events("test.waiting");
    let guard = m.lock();
    let other = {
        let m = m.clone();
        thread::spawn(move || *m.lock() += 1)
    };
    eventually(Duration::from_secs(10), || !seen.lock().unwrap().is_empty());
    let while_waiting = seen.lock().unwrap().clone();
    drop(guard);
    other.join().unwrap();
    overrun::remove_hook(hook);
    assert_eq!(
        while_waiting.len(),
        1,
        "reported while waiting: {while_waiting:?}"
    );
    let v = while_waiting[0];
    assert_eq!(v.kind, ViolationKind::Wait);
    assert!(v.observed >= 20_000_000 && v.limit == 20_000_000, "{v:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "not again once acquired");
    let l = stats("test.waiting");
    assert_eq!((l.acquisitions, l.contended, l.violations.wait), (2, 1, 1));
    assert!(
        l.max_wait_ns.unwrap() >= v.observed,
        "the whole wait is recorded"
    );
}
