//! The threads that look at something every so often (the task watchdog,
//! the lock watchdog): started once each, off the measured code's books.

use std::time::Duration;

/// Starts a thread named `name` that calls `check` every `period` for the
/// rest of the process; if it cannot start, says so once on stderr
/// (`instead`: what happens then). Not under Miri, which ends a program
/// whose threads still run as an error: its tests call `check` themselves.
pub(crate) fn spawn_periodic(name: &str, period: Duration, check: fn(), instead: &str) {
    if cfg!(miri) {
        return;
    }
    crate::record::alloc::uncounted(|| {
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                loop {
                    std::thread::sleep(period);
                    check();
                }
            });
        if let Err(err) = spawned {
            eprintln!("overrun: cannot start {name}: {err}; {instead}");
        }
    });
}
