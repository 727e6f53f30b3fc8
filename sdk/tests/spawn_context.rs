//! A task's violations are published within the context it was spawned in:
//! a `lifetime` violation on the watchdog thread, a `poll` violation on the
//! thread that polled it. (Its own binary: the capture and the hook are
//! process-wide.)

#[path = "support/wait.rs"]
mod wait;
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wait::eventually;

use overrun::ViolationKind;
use overrun::tasks::SpawnContext;

thread_local! {
    /// The request this thread works for (0: none).
    static REQUEST: Cell<u64> = const { Cell::new(0) };
}

struct Request(u64);

impl SpawnContext for Request {
    fn within(&self, f: &mut dyn FnMut()) {
        let before = REQUEST.replace(self.0);
        f();
        REQUEST.set(before);
    }
}

fn capture() -> Option<Arc<dyn SpawnContext>> {
    match REQUEST.get() {
        0 => None,
        99 => panic!("a capture that fails"),
        id => Some(Arc::new(Request(id))),
    }
}

/// Each violation: the task, its kind, the request current when it was
/// raised, and whether it was raised on the watchdog.
type Seen = Vec<(&'static str, ViolationKind, u64, bool)>;

fn seen_of(seen: &Mutex<Seen>, name: &str) -> Seen {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|s| s.0 == name)
        .cloned()
        .collect()
}

#[test]
fn task_violations_carry_the_context_the_task_was_spawned_in() {
    assert!(overrun::tasks::on_spawn(capture));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let hook = {
        let seen = seen.clone();
        overrun::on_violation(move |v| {
            let watchdog = std::thread::current().name() == Some("overrun-watchdog");
            seen.lock()
                .unwrap()
                .push((v.name, v.kind, REQUEST.get(), watchdog));
        })
    };

    // Spawned for request 42, never finishing: leaked on the watchdog.
    REQUEST.set(42);
    let leaky = overrun::track("leaky", std::future::pending::<()>()).lifetime("20ms");
    // Spawned for request 7, polled where no request is current.
    REQUEST.set(7);
    let slow = overrun::track("slow", async {
        std::thread::sleep(Duration::from_millis(5));
    })
    .poll_budget("1ms");
    // Spawned with no request current: nothing captured.
    REQUEST.set(0);
    let plain = overrun::track("plain", async {
        std::thread::sleep(Duration::from_millis(5));
    })
    .poll_budget("1ms");
    // A capture that panics: the task is tracked without a context.
    REQUEST.set(99);
    let failing = overrun::track("failing", async {
        std::thread::sleep(Duration::from_millis(5));
    })
    .poll_budget("1ms");
    REQUEST.set(0);

    std::thread::spawn(move || {
        overrun::tasks::block_on(slow);
        overrun::tasks::block_on(plain);
        overrun::tasks::block_on(failing);
    })
    .join()
    .unwrap();
    assert_eq!(
        seen_of(&seen, "slow"),
        [("slow", ViolationKind::Poll, 7, false)]
    );
    assert_eq!(
        seen_of(&seen, "plain"),
        [("plain", ViolationKind::Poll, 0, false)]
    );
    assert_eq!(
        seen_of(&seen, "failing"),
        [("failing", ViolationKind::Poll, 0, false)]
    );

    eventually(Duration::from_secs(10), || {
        !seen_of(&seen, "leaky").is_empty()
    });
    assert_eq!(
        seen_of(&seen, "leaky"),
        [("leaky", ViolationKind::Lifetime, 42, true)]
    );
    assert_eq!(REQUEST.get(), 0);
    drop(leaky);
    overrun::remove_hook(hook);
}
