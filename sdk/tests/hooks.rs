//! Violation hooks as the violation path reads them: from a per-thread copy
//! refreshed when hooks change, with per-thread blocks of sequence numbers.
//! Each test watches violations of its own function only (hooks are
//! process-wide and the tests run at once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

#[overrun::measure(budget = "1ns")]
fn watched() {
    std::thread::sleep(Duration::from_micros(1));
}

#[overrun::measure(budget = "1ns")]
fn numbered() {
    std::thread::sleep(Duration::from_micros(1));
}

#[overrun::measure(budget = "1ns")]
fn nested() {
    std::thread::sleep(Duration::from_micros(1));
}

#[overrun::measure(budget = "1ns")]
fn dropping() {
    std::thread::sleep(Duration::from_micros(1));
}

fn counter(name: &'static str) -> (Arc<AtomicU64>, overrun::HookId) {
    let seen = Arc::new(AtomicU64::new(0));
    let hook = {
        let seen = seen.clone();
        overrun::on_violation(move |v| {
            if v.name == name {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    (seen, hook)
}

#[test]
fn hooks_added_and_removed_are_seen_by_every_thread() {
    // A thread that has called through the first hook (it holds a copy).
    let (go, done) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (first, first_id) = counter("watched");
    let worker = {
        let (go, done) = (go.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..3 {
                go.wait();
                watched();
                done.wait();
            }
        })
    };
    go.wait();
    done.wait();
    assert_eq!(first.load(Ordering::Relaxed), 1);

    // Removed: the thread's copy is stale, and it must not call it again.
    assert!(overrun::remove_hook(first_id));
    go.wait();
    done.wait();
    assert_eq!(
        first.load(Ordering::Relaxed),
        1,
        "a removed hook was called"
    );

    // Added on this thread: seen by that thread and by a new one.
    let (second, second_id) = counter("watched");
    go.wait();
    done.wait();
    std::thread::spawn(watched).join().unwrap();
    watched();
    assert_eq!(second.load(Ordering::Relaxed), 3);
    worker.join().unwrap();
    overrun::remove_hook(second_id);
}

#[test]
fn sequence_numbers_are_unique_and_increase_on_each_thread() {
    let seen: Arc<Mutex<Vec<(std::thread::ThreadId, u64)>>> = Arc::default();
    let hook = {
        let seen = seen.clone();
        overrun::on_violation(move |v| {
            if v.name == "numbered" {
                seen.lock().unwrap().push((v.thread, v.seq));
            }
        })
    };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..600 {
                    numbered();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    overrun::remove_hook(hook);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2_400);
    let mut all: Vec<u64> = seen.iter().map(|(_, s)| *s).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 2_400, "a sequence number given twice");
    for thread in seen
        .iter()
        .map(|(t, _)| *t)
        .collect::<std::collections::HashSet<_>>()
    {
        let mine: Vec<u64> = seen
            .iter()
            .filter(|(t, _)| *t == thread)
            .map(|(_, s)| *s)
            .collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "not increasing on one thread"
        );
    }
}

#[test]
fn a_hook_may_add_and_remove_hooks() {
    let (later, later_id) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(None)));
    let own_id = Arc::new(Mutex::new(None::<overrun::HookId>));
    let id = {
        let (later, later_id, own_id) = (later.clone(), later_id.clone(), own_id.clone());
        overrun::on_violation(move |v| {
            if v.name != "nested" {
                return;
            }
            // First call: hand over to a new hook, and remove this one.
            let mut slot = later_id.lock().unwrap();
            if slot.is_none() {
                let later = later.clone();
                *slot = Some(overrun::on_violation(move |v| {
                    if v.name == "nested" {
                        later.fetch_add(1, Ordering::Relaxed);
                    }
                }));
                if let Some(own) = own_id.lock().unwrap().take() {
                    overrun::remove_hook(own);
                }
            }
        })
    };
    *own_id.lock().unwrap() = Some(id);
    nested(); // the first hook runs, adds the second, removes itself
    nested();
    nested();
    assert_eq!(later.load(Ordering::Relaxed), 2);
    assert!(!overrun::remove_hook(id), "it removed itself");
    overrun::remove_hook(later_id.lock().unwrap().take().unwrap());
}

/// Removes a hook when dropped: what a hook's captured state may do.
struct RemovesOnDrop(Option<overrun::HookId>);

impl Drop for RemovesOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            overrun::remove_hook(id);
        }
    }
}

#[test]
fn a_removed_hook_dropping_state_that_removes_a_hook_does_not_deadlock() {
    let (other, other_id) = counter("dropping");
    let guard = RemovesOnDrop(Some(other_id));
    let (calls, calls_id) = {
        let calls = Arc::new(AtomicU64::new(0));
        let seen = calls.clone();
        let id = overrun::on_violation(move |v| {
            let _keep = &guard;
            if v.name == "dropping" {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        });
        (calls, id)
    };
    // A thread caches both hooks, then drops its copy (the last one) at its
    // next violation after the removal: the guard's `remove_hook` runs then.
    let (go, done) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let worker = {
        let (go, done) = (go.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..2 {
                go.wait();
                dropping();
                done.wait();
            }
        })
    };
    go.wait();
    done.wait();
    assert!(overrun::remove_hook(calls_id));
    go.wait();
    done.wait(); // a deadlock would hang here
    worker.join().unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 1, "called after its removal");
    // The guard's removal may fall during that second violation (which
    // then still calls `other`), or later, when the last thread holding a
    // copy lets it go.
    assert!((1..=2).contains(&other.load(Ordering::Relaxed)));
    overrun::remove_hook(other_id);
}
