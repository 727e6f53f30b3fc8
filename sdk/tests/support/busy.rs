//! Shared by the integration tests: `#[path = "support/busy.rs"] mod busy;`

use std::time::Duration;

/// Spins until overrun's own clock has advanced by more than `d`.
///
/// The tests that use it check bookkeeping (totals, self time, the longest
/// poll), so they wait by the clock the figures are recorded with: a figure
/// then covers the whole wait, `d` or more, on any machine. Waiting by
/// `Instant` instead leaves the assertion no margin against the TSC's
/// calibration (a figure a hundred-thousandth short of a 60 ms spin failed
/// a CI run); how closely the clock follows real time is the clock's own
/// test, in `record/clock.rs`.
pub(crate) fn busy(d: Duration) {
    let ticks = overrun::clock::ns_to_ticks(d.as_nanos() as u64) + 1;
    let start = overrun::clock::now();
    while overrun::clock::now().wrapping_sub(start) < ticks {
        std::hint::spin_loop();
    }
}
