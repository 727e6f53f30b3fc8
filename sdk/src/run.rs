//! The whole run: its start, the process' resource usage, and the run's own
//! budget (`#[overrun::main(budget = …, memory = …)]`) and violations.

use std::sync::OnceLock;
use std::time::Instant;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::record::hooks::HookList;
use serde::Serialize;

use crate::record::measure::site_violation;
use crate::record::site::Site;
use crate::record::violation::publish;
use crate::vocab::budget::{NONE, limit};
use crate::vocab::kind::ViolationKind;

static START: OnceLock<(Instant, u64, std::time::SystemTime)> = OnceLock::new();

/// The instant the run started, and the process CPU time then: the start of
/// `#[overrun::main]`, or the first time overrun was asked. CPU time is
/// reported from there, not from `exec` (resource usage survives `exec`, so a
/// program started by `cargo run` would otherwise be charged cargo's CPU).
pub(crate) fn run_start() -> (Instant, u64) {
    let &(at, cpu, _) =
        START.get_or_init(|| (Instant::now(), usage().cpu_ns, std::time::SystemTime::now()));
    (at, cpu)
}

/// The program's version and build commit, as `#[overrun::main]` saw them
/// at compile time.
static BUILD: OnceLock<(&'static str, Option<&'static str>, bool)> = OnceLock::new();

/// What a report describes, so that a tool comparing two reports can tell
/// it has the right two.
///
/// ```
/// let meta = overrun::snapshot().meta;
/// assert!(meta.started_at.ends_with('Z'));
/// assert_eq!(meta.args_hash.len(), 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Meta {
    /// The binary's file name.
    pub program: Option<String>,
    /// The program crate's version (`CARGO_PKG_VERSION`, from
    /// `#[overrun::main]`; `None` without it).
    pub version: Option<&'static str>,
    /// FNV-1a (64 bits, hex) of the arguments after the program name, each
    /// followed by a NUL byte: equal arguments, equal hash; the arguments
    /// themselves are not written (they may hold secrets).
    pub args_hash: String,
    /// When the run started, RFC 3339, UTC.
    pub started_at: String,
    /// The host's name.
    pub host: Option<String>,
    /// The commit: `OVERRUN_GIT_SHA` at build time (the commit the binary
    /// was built from), else `OVERRUN_GIT_SHA`, `GITHUB_SHA`,
    /// `CI_COMMIT_SHA` or `GIT_COMMIT` in the environment at run time.
    pub git_sha: Option<String>,
}

/// Records the program's version and build commit (`#[overrun::main]`).
pub(crate) fn set_build(version: &'static str, git_sha: Option<&'static str>, debug: bool) {
    let _ = BUILD.set((version, git_sha, debug));
}

/// Whether the program was built with debug assertions (`#[overrun::main]`
/// says; without it, as if it were).
pub(crate) fn debug_build() -> bool {
    BUILD.get().is_none_or(|b| b.2)
}

/// What this run is.
pub(crate) fn meta() -> Meta {
    let _ = run_start();
    let started = START.get().map_or(std::time::UNIX_EPOCH, |s| s.2);
    let mut args = std::env::args_os();
    let program = args.next().and_then(|p| {
        std::path::Path::new(&p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for arg in args {
        for &byte in arg.as_encoded_bytes().iter().chain(&[0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let env_sha = [
        "OVERRUN_GIT_SHA",
        "GITHUB_SHA",
        "CI_COMMIT_SHA",
        "GIT_COMMIT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    let build = BUILD.get().copied();
    Meta {
        program,
        version: build.map(|b| b.0),
        args_hash: format!("{hash:016x}"),
        started_at: rfc3339(started),
        host: hostname(),
        git_sha: build.and_then(|b| b.1).map(str::to_owned).or(env_sha),
    }
}

/// `t` as RFC 3339 in UTC, to the second: `2026-11-26T14:05:09Z`.
fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

fn hostname() -> Option<String> {
    #[cfg(all(unix, not(miri)))]
    {
        let mut buf = [0u8; 256];
        // SAFETY: `gethostname` writes at most `buf.len()` bytes into `buf`.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return Some(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
    }
    std::env::var("COMPUTERNAME").ok()
}

/// Process resource usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// User + system CPU time, ns.
    pub cpu_ns: u64,
    /// Peak resident set size since the program started (`exec`), bytes.
    pub peak_rss_bytes: u64,
    /// Resident set size now, bytes (`None` where the system does not say).
    pub rss_bytes: Option<u64>,
}

/// The process' CPU time, and its peak and current resident memory.
///
/// On Linux the memory figures come from `/proc/self/status` (`VmHWM`,
/// `VmRSS`), which start at `exec`: a program started by `cargo run` is not
/// charged cargo's memory, as it would be by `getrusage`, whose maximum
/// survives `exec`. Elsewhere the peak comes from `getrusage`.
///
/// ```
/// let u = overrun::run::usage();
/// assert!(u.peak_rss_bytes > 0);
/// # #[cfg(target_os = "linux")]
/// assert!(u.rss_bytes.unwrap() <= u.peak_rss_bytes);
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
        let (peak, now) = proc_status_memory();
        Usage {
            cpu_ns: tv(ru.ru_utime) + tv(ru.ru_stime),
            peak_rss_bytes: peak.unwrap_or(ru.ru_maxrss as u64 * rss_unit),
            rss_bytes: now,
        }
    }
    #[cfg(any(not(unix), miri))]
    {
        Usage::default()
    }
}

/// `VmHWM` and `VmRSS` from `/proc/self/status`, bytes (Linux); `None`
/// elsewhere or when a line is missing.
#[cfg(all(unix, not(miri)))]
fn proc_status_memory() -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    parse_status_memory(&status)
}

/// The `VmHWM` and `VmRSS` lines of a `/proc/<pid>/status` text, in bytes.
#[cfg_attr(any(not(unix), miri), allow(dead_code))]
fn parse_status_memory(status: &str) -> (Option<u64>, Option<u64>) {
    let field = |key: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            let kib = rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
            Some(kib * 1024)
        })
    };
    (field("VmHWM"), field("VmRSS"))
}

struct RunState {
    /// `#[overrun::main]`'s own budget.
    code: RunBudget,
    /// A policy's `[run]` time and memory, where it sets them (`NONE`
    /// removes one).
    file: (Option<u64>, Option<u64>),
    violations: Vec<RunViolation>,
}

impl RunState {
    /// The budget in force: the code's, field by field replaced by a
    /// policy file's `[run]`.
    fn budget(&self) -> RunBudget {
        let (time, memory) = self.file;
        RunBudget {
            time_ns: time.map_or(self.code.time_ns, limit),
            memory_bytes: memory.map_or(self.code.memory_bytes, limit),
        }
    }
}

static STATE: Mutex<RunState> = Mutex::new(RunState {
    file: (None, None),
    code: RunBudget {
        time_ns: None,
        memory_bytes: None,
    },
    violations: Vec::new(),
});

/// Takes a policy's `[run]` budgets (the code's where it sets none;
/// `NONE` removes one).
pub(crate) fn set_policy(time: Option<u64>, memory: Option<u64>) {
    STATE.lock().file = (time, memory);
}

pub(crate) fn budget_and_violations() -> (RunBudget, Vec<RunViolation>) {
    let state = STATE.lock();
    (state.budget(), state.violations.clone())
}

/// The budget of the whole run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[non_exhaustive]
pub struct RunBudget {
    /// Wall time, ns.
    pub time_ns: Option<u64>,
    /// Peak resident memory, bytes.
    pub memory_bytes: Option<u64>,
}

/// A broken run budget.
#[derive(Debug, Clone, Copy, Serialize)]
#[non_exhaustive]
pub struct RunViolation {
    /// `time` or `memory`.
    pub kind: ViolationKind,
    /// Measured, ns or bytes.
    pub observed: u64,
    /// Budget, same unit.
    pub limit: u64,
}

/// Records the run's budget; the start of `#[overrun::main]`.
pub(crate) fn start(site: &'static Site, memory_bytes: u64) {
    let _ = run_start();
    STATE.lock().code = RunBudget {
        time_ns: limit(site.budget().time_ns),
        memory_bytes: limit(memory_bytes),
    };
}

/// Checks the run's time and memory budgets (the end of `#[overrun::main]`),
/// counting and publishing each broken one.
pub(crate) fn check(site: &'static Site) {
    let wall = run_start().0.elapsed().as_nanos() as u64;
    let rss = usage().peak_rss_bytes;
    let budget = STATE.lock().budget();
    let time_limit = budget.time_ns.unwrap_or(NONE);
    let memory_bytes = budget.memory_bytes.unwrap_or(NONE);
    let mut found = Vec::new();
    if time_limit != NONE && wall > time_limit {
        found.push((ViolationKind::Time, wall, time_limit));
    }
    if memory_bytes != NONE && rss > memory_bytes {
        found.push((ViolationKind::Memory, rss, memory_bytes));
    }
    for (kind, observed, limit) in found {
        STATE.lock().violations.push(RunViolation {
            kind,
            observed,
            limit,
        });
        publish(site_violation(site, kind, observed, limit));
    }
}

static EXIT_HOOKS: HookList<dyn Fn() + Send + Sync> = HookList::new();

/// Identifies a hook registered with [`on_exit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitHookId(u64);

/// Calls `hook` when a run under `#[overrun::main]` ends, however it ends —
/// `main` returning, `std::process::exit` from any thread, SIGINT or
/// SIGTERM, a panic — after its report is written and before the process
/// goes. Exporters use it for their last export; keep it bounded in time,
/// the process waits for it. A hook that panics is caught.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// static CALLED: AtomicBool = AtomicBool::new(false);
/// let id = overrun::run::on_exit(|| CALLED.store(true, Ordering::Relaxed));
/// assert!(overrun::run::remove_exit_hook(id));
/// assert!(!overrun::run::remove_exit_hook(id));
/// ```
pub fn on_exit(hook: impl Fn() + Send + Sync + 'static) -> ExitHookId {
    ExitHookId(EXIT_HOOKS.add(Arc::new(hook)))
}

/// Removes a hook registered with [`on_exit`]; `false` if it was gone.
pub fn remove_exit_hook(id: ExitHookId) -> bool {
    EXIT_HOOKS.remove(id.0)
}

/// Runs the exit hooks, once each, outside the lock.
pub(crate) fn run_exit_hooks() {
    for hook in EXIT_HOOKS.take() {
        let _ = catch_unwind(AssertUnwindSafe(|| hook()));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_status_memory;

    #[test]
    fn dates_in_rfc_3339() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |secs| super::rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_705_509), "2026-11-26T15:05:09Z");
    }

    #[test]
    fn reads_peak_and_current_resident_memory() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2540 kB\nVmRSS:\t    2100 kB\n";
        assert_eq!(
            parse_status_memory(status),
            (Some(2540 * 1024), Some(2100 * 1024))
        );
        assert_eq!(parse_status_memory("Name:\tx\n"), (None, None));
    }
}
