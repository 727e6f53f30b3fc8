//! Shared by the integration tests: `#[path = "support/wait.rs"] mod wait;`

use std::time::{Duration, Instant};

/// Waits up to `within` for `done`, looking every 5 ms; whether it came.
pub(crate) fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}
