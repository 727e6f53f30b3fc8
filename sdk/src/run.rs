//! The whole run: what `#[overrun::main]` expands to, and process figures.

use parking_lot::Mutex;

use crate::budget::{NONE, limit};
use crate::report::{RunBudget, RunViolation};
use crate::site::Site;
use crate::violation::{ViolationKind, publish};

/// Process resource usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// User + system CPU time, ns.
    pub cpu_ns: u64,
    /// Peak resident set size, bytes.
    pub peak_rss_bytes: u64,
}

/// The process' CPU time and peak resident memory so far.
///
/// ```
/// let u = overrun::run::usage();
/// assert!(u.peak_rss_bytes > 0);
/// ```
pub fn usage() -> Usage {
    #[cfg(all(unix, not(miri)))]
    {
        // SAFETY: `rusage` is plain old data, so all-zero is a valid value,
        // and `getrusage` only writes into the struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable `rusage`.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return Usage::default();
        }
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
        // Linux reports ru_maxrss in KiB, macOS in bytes.
        let rss_unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
        Usage {
            cpu_ns: tv(ru.ru_utime) + tv(ru.ru_stime),
            peak_rss_bytes: ru.ru_maxrss as u64 * rss_unit,
        }
    }
    #[cfg(any(not(unix), miri))]
    {
        Usage::default()
    }
}

struct RunState {
    budget: RunBudget,
    violations: Vec<RunViolation>,
}

static STATE: Mutex<RunState> = Mutex::new(RunState {
    budget: RunBudget {
        time_ns: None,
        memory_bytes: None,
    },
    violations: Vec::new(),
});

pub(crate) fn budget_and_violations() -> (RunBudget, Vec<RunViolation>) {
    let state = STATE.lock();
    (state.budget, state.violations.clone())
}

/// The guard `#[overrun::main]` keeps for the whole of `main`: on drop it
/// checks the run's time and memory budgets and prints the report. It does
/// not touch the program's exit code.
#[doc(hidden)]
#[must_use]
pub struct Run {
    site: &'static Site,
    memory_bytes: u64,
}

impl Run {
    /// Starts the run. `site` carries `main`'s location and time budget.
    pub fn start(site: &'static Site, memory_bytes: u64) -> Self {
        let _ = crate::report::run_start();
        let mut state = STATE.lock();
        state.budget = RunBudget {
            time_ns: limit(site.budget().time_ns),
            memory_bytes: limit(memory_bytes),
        };
        Self { site, memory_bytes }
    }

    fn check(&self) {
        let wall = crate::report::run_start().0.elapsed().as_nanos() as u64;
        let rss = usage().peak_rss_bytes;
        let time_limit = self.site.budget().time_ns;
        let mut found = Vec::new();
        if time_limit != NONE && wall > time_limit {
            found.push((ViolationKind::Time, wall, time_limit));
        }
        if self.memory_bytes != NONE && rss > self.memory_bytes {
            found.push((ViolationKind::Memory, rss, self.memory_bytes));
        }
        for (kind, observed, limit) in found {
            STATE.lock().violations.push(RunViolation {
                kind,
                observed,
                limit,
            });
            publish(crate::measure::site_violation(
                self.site, kind, observed, limit,
            ));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if crate::enabled() {
            self.check();
            crate::report();
        }
    }
}
