//! The end-of-run report: a table for people, JSON for tools, and the
//! guard `#[overrun::main]` keeps for the whole of `main`.
//!
//! [`report`] takes a [`snapshot`](crate::snapshot) and prints the table to
//! stderr, or JSON, as chosen by the environment:
//!
//! | variable | effect |
//! | --- | --- |
//! | `OVERRUN_REPORT=table` (default in debug builds) | table on stderr |
//! | `OVERRUN_REPORT=json` | the JSON report on stderr instead of the table |
//! | `OVERRUN_REPORT=off` | nothing on stderr |
//! | `OVERRUN_REPORT_FILE=path` | also write the JSON report to `path` |
//! | `OVERRUN_REPORT_STRICT=1` | a report file that cannot be written makes a run that returns from `main` exit with status 74 (for CI); other endings keep their status |
//!
//! At the end of `#[overrun::main]` in a release build, with
//! `OVERRUN_REPORT` unset (or empty), nothing is printed unless a whole-run
//! budget broke (a line per broken budget then): a shipped CLI does not
//! talk to its users. Debug builds print the table; so does [`report`].
//!
//! The data model ([`Snapshot`], [`SiteSnapshot`], …) is defined by the
//! snapshot layer and re-exported here, where it has always been.

use std::fmt::Write as _;

pub use super::snapshot::{
    REPORT_VERSION, RunSnapshot, SiteBudget, SiteSnapshot, SiteViolations, Snapshot, snapshot,
};
use crate::record::site::Site;
pub use crate::run::{RunBudget, RunViolation};
use crate::vocab::kind::ViolationKind;
pub use crate::vocab::units::{fmt_bytes, fmt_ns};

/// Where the report goes, from `OVERRUN_REPORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Off,
}

/// The values `OVERRUN_REPORT` takes.
const FORMATS: &str = "table, json, off (or none, 0, false)";

/// The format `OVERRUN_REPORT` asks for; an unknown value is an error that
/// names the accepted ones (the report is then printed as the table, so
/// nothing is lost).
fn format_from_env() -> Result<Format, String> {
    let value = std::env::var_os("OVERRUN_REPORT")
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "table" => Ok(Format::Table),
        "json" => Ok(Format::Json),
        "off" | "none" | "0" | "false" => Ok(Format::Off),
        _ => Err(value),
    }
}

/// Takes a snapshot and reports it as the environment says (see the module
/// docs): by default a table on stderr; `OVERRUN_REPORT_FILE` also writes the
/// JSON to a file. Returns the snapshot.
///
/// ```
/// // SAFETY: doctests run single-threaded here.
/// unsafe { std::env::set_var("OVERRUN_REPORT", "off") };
/// let snap = overrun::report();
/// assert_eq!(snap.version, 1);
/// ```
pub fn report() -> Snapshot {
    report_as(None).0
}

/// The end-of-run report of `#[overrun::main]`: as [`report`], except that
/// in a release build (`debug` false) with `OVERRUN_REPORT` unset nothing is
/// printed unless a whole-run budget broke (then one line), so a shipped
/// CLI does not talk to its users. Returns whether the report file, if one
/// was asked for, was written.
pub(crate) fn report_at_end(debug: bool) -> bool {
    report_as(Some(debug)).1
}

/// What the end of a run prints, from `OVERRUN_REPORT`, the build and the
/// run's own violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printed {
    As(Format),
    /// One line per broken whole-run budget.
    Quiet,
}

fn printed(
    asked: Option<Result<Format, String>>,
    end_of_release_run: bool,
) -> Result<Printed, String> {
    match asked {
        Some(format) => format.map(Printed::As),
        None if end_of_release_run => Ok(Printed::Quiet),
        None => Ok(Printed::As(Format::Table)),
    }
}

fn report_as(end: Option<bool>) -> (Snapshot, bool) {
    let snap = snapshot();
    let asked = std::env::var_os("OVERRUN_REPORT")
        .filter(|v| !v.is_empty())
        .map(|_| format_from_env());
    let printed = printed(asked, end == Some(false)).unwrap_or_else(|value| {
        eprintln!(
            "overrun: error: OVERRUN_REPORT={value:?} is not one of {FORMATS}; printing the table instead"
        );
        Printed::As(Format::Table)
    });
    // One write, so the document is never interleaved with other output.
    let text = match printed {
        Printed::As(Format::Table) => render_table(&snap),
        Printed::As(Format::Json) => snap.to_json() + "\n",
        Printed::As(Format::Off) => String::new(),
        Printed::Quiet => snap
            .run
            .violations
            .iter()
            .map(|v| {
                let show = |x| match v.kind {
                    ViolationKind::Memory => fmt_bytes(x),
                    _ => fmt_ns(x),
                };
                format!(
                    "overrun: the run broke its {} budget: {} > {} (OVERRUN_REPORT=table for the report)\n",
                    v.kind,
                    show(v.observed),
                    show(v.limit)
                )
            })
            .collect(),
    };
    if !text.is_empty() {
        use std::io::Write as _;
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    let file = std::env::var_os("OVERRUN_REPORT_FILE").filter(|p| !p.is_empty());
    let mut written = true;
    if let Some(path) = file
        && let Err(err) = write_atomically(std::path::Path::new(&path), &(snap.to_json() + "\n"))
    {
        written = false;
        eprintln!(
            "overrun: error: cannot write the report to {}: {err}",
            std::path::Path::new(&path).display()
        );
    }
    (snap, written)
}

/// Writes `text` to a temporary file beside `path`, then renames it over
/// `path`: a reader sees the old file or the whole new one, never half. A
/// symbolic link is followed (the link stays); a path that is not a regular
/// file (`/dev/stdout`, a pipe) is written directly.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let path = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return std::fs::write(path, text),
        Ok(_) => std::fs::canonicalize(path)?,
        Err(_) => path.to_path_buf(),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A duration, or `n/a` for a figure that does not exist (never `0ns`).
fn or_na(ns: Option<u64>) -> String {
    ns.map_or_else(|| "n/a".into(), fmt_ns)
}

fn per_call(v: Option<f64>, bytes: bool) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if bytes => fmt_bytes(v.round() as u64),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// Renders the report table, as printed by [`report`].
///
/// ```
/// #[overrun::measure(budget = "1ns")]
/// fn table_doc_fn() {}
/// for _ in 0..3 {
///     table_doc_fn();
/// }
/// let table = overrun::report::render_table(&overrun::snapshot());
/// let row = table.lines().find(|l| l.trim_start().starts_with("table_doc_fn")).unwrap();
/// let cells: Vec<&str> = row.split_whitespace().collect();
/// assert_eq!(cells[1], "3", "calls");
/// assert_eq!(cells.last(), Some(&"time:3"), "violations");
/// ```
pub fn render_table(snap: &Snapshot) -> String {
    let run = &snap.run;
    let mut out = String::new();
    let wall = run.wall_ns.max(1);
    let check = |over: bool| if over { "OVER BUDGET" } else { "ok" };
    let _ = write!(out, "overrun report — run {}", fmt_ns(run.wall_ns));
    if let Some(b) = run.budget.time_ns {
        let over = run.violations.iter().any(|v| v.kind == ViolationKind::Time);
        let _ = write!(out, " (budget {}: {})", fmt_ns(b), check(over));
    }
    let _ = write!(
        out,
        ", CPU {} ({:.0}%), peak RSS {}",
        fmt_ns(run.cpu_ns),
        run.cpu_ns as f64 * 100.0 / wall as f64,
        fmt_bytes(run.peak_rss_bytes)
    );
    if let Some(b) = run.budget.memory_bytes {
        let over = run
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Memory);
        let _ = write!(out, " (budget {}: {})", fmt_bytes(b), check(over));
    }
    match run.heap_peak_bytes {
        Some(peak) => {
            let _ = write!(out, ", heap peak {}", fmt_bytes(peak));
        }
        None => out.push_str(", allocations n/a (no CountingAlloc)"),
    }
    out.push('\n');

    let mut sites: Vec<&SiteSnapshot> = snap.sites.iter().collect();
    sites.sort_by_key(|s| std::cmp::Reverse(s.total_ns));
    let name_width = sites
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 40);
    if !sites.is_empty() {
        let _ = writeln!(
            out,
            "  {:<name_width$} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8}  violations",
            "function",
            "calls",
            "errors",
            "p50",
            "p95",
            "p99",
            "max",
            "self%",
            "allocs/c",
            "bytes/c",
            "budget"
        );
    }
    let listed = !sites.is_empty();
    let mut from_file = false;
    for s in sites {
        let name: String = s.name.chars().take(name_width).collect();
        let v = s.violations;
        let mut violations = String::new();
        for (kind, n) in [
            ("time", v.time),
            ("allocs", v.allocs),
            ("bytes", v.bytes),
            ("poll", v.poll),
        ] {
            if n > 0 {
                let _ = write!(violations, "{kind}:{n} ");
            }
        }
        if violations.is_empty() {
            violations.push('-');
        }
        // The time budget in force; `*` when a policy file set the budget.
        let mut budget = s.budget.time_ns.map_or_else(|| "-".to_owned(), fmt_ns);
        if s.budget_source != crate::config::BudgetSource::Code {
            budget.push('*');
            from_file = true;
        }
        let _ = writeln!(
            out,
            "  {:<name_width$} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6.1}% {:>9} {:>9} {:>8}  {}",
            name,
            s.calls,
            s.errors,
            fmt_ns(s.p50_ns),
            fmt_ns(s.p95_ns),
            fmt_ns(s.p99_ns),
            fmt_ns(s.max_ns),
            s.self_ns as f64 * 100.0 / wall as f64,
            per_call(s.allocs_per_call(), false),
            per_call(s.bytes_per_call(), true),
            budget,
            violations.trim_end()
        );
    }
    if listed {
        out.push_str(
            "  (by total time; self% = time in the function itself, measured callees excluded, of the run's wall time)\n",
        );
    }
    if from_file {
        out.push_str("  * budget from a policy file (budget_source in the JSON report)\n");
    }
    if !snap.tasks.is_empty() {
        let width = snap
            .tasks
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 40);
        let _ = writeln!(
            out,
            "  {:<width$} {:>8} {:>9} {:>9} {:>8} {:>5} {:>6} {:>8} {:>9} {:>9} {:>9}",
            "task",
            "spawned",
            "completed",
            "cancelled",
            "panicked",
            "live",
            "leaked",
            "polls",
            "max poll",
            "life p50",
            "life p99"
        );
        for t in &snap.tasks {
            let _ = writeln!(
                out,
                "  {:<width$} {:>8} {:>9} {:>9} {:>8} {:>5} {:>6} {:>8} {:>9} {:>9} {:>9}{}",
                t.name,
                t.spawned,
                t.completed,
                t.cancelled,
                t.panicked,
                t.live,
                t.leaked,
                t.polls,
                or_na(t.max_poll_ns),
                or_na(t.lifetime_p50_ns),
                or_na(t.lifetime_p99_ns),
                if t.poll_violations > 0 {
                    format!("  poll:{}", t.poll_violations)
                } else {
                    String::new()
                }
            );
        }
    }
    if !snap.locks.is_empty() {
        let width = snap
            .locks
            .iter()
            .map(|l| l.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 40);
        let _ = writeln!(
            out,
            "  {:<width$} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "lock",
            "acquisitions",
            "contended",
            "wait p50",
            "wait p99",
            "wait max",
            "hold p50",
            "hold p99",
            "hold max"
        );
        for l in &snap.locks {
            let mut violations = String::new();
            for (kind, n) in [("wait", l.violations.wait), ("hold", l.violations.hold)] {
                if n > 0 {
                    let _ = write!(violations, " {kind}:{n}");
                }
            }
            let _ = writeln!(
                out,
                "  {:<width$} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}{}",
                l.name,
                l.acquisitions,
                l.contended,
                or_na(l.wait_p50_ns),
                or_na(l.wait_p99_ns),
                or_na(l.max_wait_ns),
                or_na(l.hold_p50_ns),
                or_na(l.hold_p99_ns),
                or_na(l.max_hold_ns),
                if violations.is_empty() {
                    String::new()
                } else {
                    format!(" {violations}")
                }
            );
        }
    }
    for t in &snap.live_tasks {
        let _ = writeln!(
            out,
            "  still running: {} spawned at {}:{}, age {}, {} polls{}",
            t.name,
            t.file,
            t.line,
            fmt_ns(t.age.as_nanos() as u64),
            t.polls,
            if t.leaked {
                " (LEAKED: over its lifetime budget)"
            } else {
                ""
            }
        );
    }
    for v in &run.violations {
        let show = |x| match v.kind {
            ViolationKind::Memory => fmt_bytes(x),
            _ => fmt_ns(x),
        };
        let _ = writeln!(
            out,
            "  run over its {} budget: {} > {}",
            v.kind,
            show(v.observed),
            show(v.limit)
        );
    }
    let dropped = run.violations_dropped;
    if dropped > 0 {
        let _ = writeln!(
            out,
            "  ({dropped} violation events raised inside a hook, not delivered to hooks)"
        );
    }
    out
}

/// The guard `#[overrun::main]` keeps for the whole of `main`: on drop it
/// checks the run's time and memory budgets and prints the report. The
/// other endings (`process::exit`, SIGINT, SIGTERM, an aborting panic) are
/// armed at its start (see `read::ending`). It never touches the exit code.
#[doc(hidden)]
#[must_use]
pub struct Run;

impl Run {
    /// Starts the run. `site` carries `main`'s location and time budget;
    /// `panic_aborts` is `cfg!(panic = "abort")`, `version` the
    /// `CARGO_PKG_VERSION`, `git_sha` the `OVERRUN_GIT_SHA` and `debug`
    /// `cfg!(debug_assertions)` of the program's crate at build time.
    pub fn start(
        site: &'static Site,
        memory_bytes: u64,
        panic_aborts: bool,
        version: &'static str,
        git_sha: Option<&'static str>,
        debug: bool,
    ) -> Self {
        crate::run::set_build(version, git_sha, debug);
        // Where the linker gathers no hook, `OVERRUN_CONFIG` is read here.
        crate::config::from_env_once();
        crate::run::start(site, memory_bytes);
        super::ending::arm(site, panic_aborts);
        Self
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let written = super::ending::finish(super::ending::Wait::Yes);
        // `OVERRUN_REPORT_STRICT=1`: a report file that could not be
        // written fails a run that returns from `main` (CI then sees the
        // missing baseline). Other endings keep their status.
        let strict = std::env::var_os("OVERRUN_REPORT_STRICT").is_some_and(|v| v == "1");
        if !written && strict && !std::thread::panicking() {
            std::process::exit(74);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_atomically;

    #[test]
    fn a_release_run_is_quiet_unless_asked() {
        use super::{Format, Printed, printed};
        assert_eq!(printed(None, true), Ok(Printed::Quiet));
        assert_eq!(printed(None, false), Ok(Printed::As(Format::Table)));
        assert_eq!(
            printed(Some(Ok(Format::Table)), true),
            Ok(Printed::As(Format::Table))
        );
        assert_eq!(
            printed(Some(Ok(Format::Json)), true),
            Ok(Printed::As(Format::Json))
        );
        assert!(printed(Some(Err("yaml".into())), true).is_err());
    }

    #[test]
    fn reports_replace_files_whole_and_follow_links() {
        // Unique per run, also when runs share a process id (Miri's
        // `-Zmiri-many-seeds` runs its seeds side by side).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("overrun-atomic-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("report.json");
        write_atomically(&file, "one").unwrap();
        write_atomically(&file, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        #[cfg(unix)]
        {
            let link = dir.join("latest.json");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            write_atomically(&link, "three").unwrap();
            assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "three");
            // Not a regular file: written directly.
            write_atomically(std::path::Path::new("/dev/null"), "gone").unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
