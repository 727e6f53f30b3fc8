//! Baselines: compare two JSON reports (the format [`crate::Snapshot`]
//! writes with `OVERRUN_REPORT_FILE`) to catch regressions in CI. The
//! `overrun diff` command (feature `cli`) is a thin front end to this module.
//!
//! A site is judged only with enough calls on both sides
//! ([`Tolerance::min_calls`], 100 by default; below it: `too few calls`).
//! Allocations per call are exact, so their tolerance is the whole rule.
//! Time is judged on the bulk of the calls: the median must move by more
//! than its tolerance *and* beyond the spread of the calls' own durations
//! (a rank test on the two histograms), so two runs of the same code are
//! `same` and a real slowdown is not. p99 is judged only when a p99
//! tolerance is given, and with 1 000 calls or more.
//!
//! ```
//! use overrun::baseline::{Report, Tolerance, Verdict, compare};
//!
//! // 200 calls of about 1 µs, then of about 2.1 µs.
//! let base = Report::from_json(r#"{"version": 1, "sites": [
//!     {"name": "parse", "module": "app", "calls": 200, "p50_ns": 1000, "p99_ns": 1040,
//!      "allocs": 800, "alloc_bytes": 80000, "histogram": [[960, 1040, 200]]},
//!     {"name": "rare", "module": "app", "calls": 3, "p50_ns": 10, "p99_ns": 10}]}"#).unwrap();
//! let head = Report::from_json(r#"{"version": 1, "sites": [
//!     {"name": "parse", "module": "app", "calls": 200, "p50_ns": 2100, "p99_ns": 2200,
//!      "allocs": 800, "alloc_bytes": 80000, "histogram": [[2000, 2200, 200]]},
//!     {"name": "rare", "module": "app", "calls": 3, "p50_ns": 90, "p99_ns": 90}]}"#).unwrap();
//! let diff = compare(&base, &head, &Tolerance::uniform(0.10));
//! let verdict = |name| diff.rows.iter().find(|r| r.name == name).unwrap().verdict;
//! assert_eq!(verdict("parse"), Verdict::Regressed);
//! assert_eq!(verdict("rare"), Verdict::TooFewCalls);
//! assert!(diff.regressed());
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::read::report::{REPORT_VERSION, fmt_bytes, fmt_ns};

/// Why a report could not be read.
///
/// ```
/// let err = overrun::baseline::Report::from_json(r#"{"version": 2, "sites": []}"#).unwrap_err();
/// assert!(matches!(err, overrun::baseline::BaselineError::Version { found: 2, .. }));
/// assert_eq!(err.to_string(), "report is report version 2; this overrun reads version 1");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", name(path))]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not a JSON report.
    #[error("{} is not an overrun JSON report: {source}", name(path))]
    Parse {
        /// The file (empty when parsing a string).
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The report is of a version this overrun does not read.
    #[error(
        "{} is report version {found}; this overrun reads version {REPORT_VERSION}",
        name(path)
    )]
    Version {
        /// The file (empty when parsing a string).
        path: PathBuf,
        /// The version found.
        found: u64,
    },
}

/// How a report's origin is named in messages.
fn name(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        "report".to_string()
    } else {
        path.display().to_string()
    }
}

/// The parts of a JSON report a comparison reads.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// Format version.
    pub version: u64,
    /// What the report describes (reports written before it was added have
    /// none).
    #[serde(default)]
    pub meta: Option<ReportMeta>,
    /// Per-site figures.
    pub sites: Vec<SiteFigures>,
    /// The whole run (reports written without it have none).
    #[serde(default)]
    pub run: Option<RunFigures>,
}

/// The parts of a report's `run` a comparison reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct RunFigures {
    /// Wall time, ns.
    #[serde(default)]
    pub wall_ns: u64,
    /// CPU time, ns.
    #[serde(default)]
    pub cpu_ns: u64,
    /// Peak resident memory, bytes.
    #[serde(default)]
    pub peak_rss_bytes: u64,
    /// The whole-run budgets it broke.
    #[serde(default)]
    pub violations: Vec<RunBroken>,
}

/// One broken whole-run budget, as a report lists it.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct RunBroken {
    /// `time` or `memory`.
    pub kind: String,
}

/// The whole run, base → head.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunRow {
    /// Wall time, ns.
    pub wall: Change,
    /// CPU time, ns.
    pub cpu: Change,
    /// Peak resident memory, bytes.
    pub peak_rss: Change,
    /// Whole-run budgets the head broke and the base kept.
    pub newly_broken: Vec<String>,
    /// `REGRESSED`, `improved` or `same`.
    pub verdict: Verdict,
}

/// The least relative move of a whole run's times that counts: a run is one
/// sample, so its times are judged more loosely than a site's median.
pub const RUN_TIME_TOLERANCE: f64 = 0.25;

/// A run is one sample: its times must move beyond the median's tolerance
/// (at least [`RUN_TIME_TOLERANCE`]) *and* by 10 ms, its peak memory beyond
/// the bytes' tolerance and by 1 MiB, so a run's jitter is not a
/// regression; a whole-run budget the head broke and the base kept always
/// is.
fn run_row(base: &RunFigures, head: &RunFigures, tol: &Tolerance) -> RunRow {
    let change = |b: u64, h: u64| Change {
        base: Some(b as f64),
        head: Some(h as f64),
    };
    let wall = change(base.wall_ns, head.wall_ns);
    let cpu = change(base.cpu_ns, head.cpu_ns);
    let peak_rss = change(base.peak_rss_bytes, head.peak_rss_bytes);
    let newly_broken: Vec<String> = head
        .violations
        .iter()
        .map(|v| v.kind.clone())
        .filter(|k| !base.violations.iter().any(|b| &b.kind == k))
        .collect();
    // A figure of 0 on either side (an older report without it) is not
    // judged.
    let moved = |c: &Change, t: f64, floor: f64| -> Option<f64> {
        let (b, h) = (c.base?, c.head?);
        if b == 0.0 || h == 0.0 {
            return None;
        }
        c.relative()
            .filter(|r| r.abs() > t && (h - b).abs() >= floor)
    };
    let time_tolerance = tol.p50.max(RUN_TIME_TOLERANCE);
    let moves: Vec<f64> = [
        moved(&wall, time_tolerance, 10e6),
        moved(&cpu, time_tolerance, 10e6),
        moved(&peak_rss, tol.bytes, 1_048_576.0),
    ]
    .into_iter()
    .flatten()
    .collect();
    let verdict = if !newly_broken.is_empty() || moves.iter().any(|&r| r > 0.0) {
        Verdict::Regressed
    } else if moves.is_empty() {
        Verdict::Same
    } else {
        Verdict::Improved
    };
    RunRow {
        wall,
        cpu,
        peak_rss,
        newly_broken,
        verdict,
    }
}

/// A report's `meta`: what it describes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ReportMeta {
    /// The binary's name.
    #[serde(default)]
    pub program: Option<String>,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
    /// Hash of its arguments.
    #[serde(default)]
    pub args_hash: Option<String>,
    /// When the run started (RFC 3339).
    #[serde(default)]
    pub started_at: Option<String>,
    /// The host.
    #[serde(default)]
    pub host: Option<String>,
    /// The commit.
    #[serde(default)]
    pub git_sha: Option<String>,
}

impl ReportMeta {
    /// One line for people: `cli 0.1.0 (a1b2c3d) started 2026-11-26T14:05:09Z on ci-7`.
    ///
    /// ```
    /// let r = overrun::baseline::Report::from_json(
    ///     r#"{"version":1,"meta":{"program":"cli","version":"0.1.0","git_sha":"a1b2c3d4e5",
    ///        "started_at":"2026-11-26T14:05:09Z","host":"ci-7"},"sites":[]}"#,
    /// ).unwrap();
    /// assert_eq!(r.meta.unwrap().describe(), "cli 0.1.0 (a1b2c3d) started 2026-11-26T14:05:09Z on ci-7");
    /// ```
    pub fn describe(&self) -> String {
        let mut out = self.program.clone().unwrap_or_else(|| "?".into());
        if let Some(v) = &self.version {
            out += &format!(" {v}");
        }
        if let Some(sha) = &self.git_sha {
            out += &format!(" ({})", sha.chars().take(7).collect::<String>());
        }
        if let Some(at) = &self.started_at {
            out += &format!(" started {at}");
        }
        if let Some(host) = &self.host {
            out += &format!(" on {host}");
        }
        out
    }
}

/// What a tool comparing `base` with `head` should be told first: each
/// side's meta, and a warning when they describe different programs or
/// arguments.
///
/// ```
/// use overrun::baseline::{Report, notes};
/// let a = Report::from_json(r#"{"version":1,"meta":{"program":"cli"},"sites":[]}"#).unwrap();
/// let b = Report::from_json(r#"{"version":1,"meta":{"program":"other"},"sites":[]}"#).unwrap();
/// let lines = notes(&a, &b);
/// assert!(lines.iter().any(|l| l.starts_with("warning: the reports are of different programs")));
/// ```
pub fn notes(base: &Report, head: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    let describe = |m: &Option<ReportMeta>| {
        m.as_ref().map_or_else(
            || "(no meta: an older report)".to_string(),
            ReportMeta::describe,
        )
    };
    if base.meta.is_none() && head.meta.is_none() {
        return lines;
    }
    lines.push(format!("base: {}", describe(&base.meta)));
    lines.push(format!("head: {}", describe(&head.meta)));
    let (Some(b), Some(h)) = (&base.meta, &head.meta) else {
        return lines;
    };
    if b.program != h.program {
        lines.push(format!(
            "warning: the reports are of different programs ({} and {})",
            b.program.as_deref().unwrap_or("?"),
            h.program.as_deref().unwrap_or("?")
        ));
    } else if b.args_hash != h.args_hash {
        lines.push("warning: the two runs had different arguments".into());
    }
    lines
}

/// One site of a [`Report`].
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct SiteFigures {
    /// Function name.
    pub name: String,
    /// Module path.
    #[serde(default)]
    pub module: String,
    /// Calls.
    pub calls: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Allocations in all calls (`null` without `CountingAlloc`).
    #[serde(default)]
    pub allocs: Option<u64>,
    /// Bytes in all calls.
    #[serde(default)]
    pub alloc_bytes: Option<u64>,
    /// Latency histogram, `[lower_ns, upper_ns, count]` per non-empty
    /// bucket (reports written before it was added have none).
    #[serde(default)]
    pub histogram: Vec<[u64; 3]>,
}

impl SiteFigures {
    fn per_call(&self, total: Option<u64>) -> Option<f64> {
        total.map(|t| t as f64 / self.calls.max(1) as f64)
    }
}

impl Report {
    /// Parses a report.
    ///
    /// # Errors
    ///
    /// Not JSON of the report's shape, or another version.
    pub fn from_json(text: &str) -> Result<Self, BaselineError> {
        Self::parse(text, PathBuf::new())
    }

    /// Reads and parses a report file.
    ///
    /// ```
    /// let err = overrun::baseline::Report::load("/no/such/report.json").unwrap_err();
    /// assert!(err.to_string().starts_with("cannot read /no/such/report.json"));
    /// ```
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not a report, or is of another version.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, BaselineError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path.to_path_buf())
    }

    fn parse(text: &str, path: PathBuf) -> Result<Self, BaselineError> {
        // Check the version before the shape, so a future format gets the
        // clearer message.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| BaselineError::Parse {
                path: path.clone(),
                source,
            })?;
        if let Some(found) = value.get("version").and_then(serde_json::Value::as_u64)
            && found != u64::from(REPORT_VERSION)
        {
            return Err(BaselineError::Version { path, found });
        }
        serde_json::from_value(value).map_err(|source| BaselineError::Parse { path, source })
    }
}

/// Allowed relative change per metric before a site counts as changed
/// (`0.10` is 10%), and the calls a site needs on both sides to be judged.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Tolerance {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Allocations per call.
    pub allocs: f64,
    /// Bytes per call.
    pub bytes: f64,
    /// Calls each side needs before a site is judged; below it the verdict
    /// is `too few calls`, never `REGRESSED`. (Under 8, the rank test can
    /// never be significant: time is then never judged.)
    pub min_calls: u64,
    /// Whether p99 is judged too. Off unless a p99 tolerance is given: a
    /// tail moves with the load on a shared machine, so by default time is
    /// judged on the bulk of the calls (the median and the rank test).
    pub judge_p99: bool,
}

/// The default of [`Tolerance::min_calls`].
pub const MIN_CALLS: u64 = 100;

impl Tolerance {
    /// The same tolerance for every metric.
    ///
    /// ```
    /// assert_eq!(overrun::baseline::Tolerance::uniform(0.1).p99, 0.1);
    /// ```
    pub fn uniform(fraction: f64) -> Self {
        Self {
            p50: fraction,
            p99: fraction,
            allocs: fraction,
            bytes: fraction,
            min_calls: MIN_CALLS,
            judge_p99: false,
        }
    }

    /// With another minimum number of calls.
    ///
    /// ```
    /// let t = overrun::baseline::Tolerance::uniform(0.2).with_min_calls(30);
    /// assert_eq!((t.p50, t.min_calls), (0.2, 30));
    /// ```
    #[must_use]
    pub fn with_min_calls(mut self, calls: u64) -> Self {
        self.min_calls = calls;
        self
    }

    /// With a tolerance for the median.
    #[must_use]
    pub fn with_p50(mut self, fraction: f64) -> Self {
        self.p50 = fraction;
        self
    }

    /// With a tolerance for p99, which turns on [`Tolerance::judge_p99`].
    ///
    /// ```
    /// let t = overrun::baseline::Tolerance::uniform(0.1).with_p99(0.5);
    /// assert!(t.judge_p99 && t.p99 == 0.5);
    /// ```
    #[must_use]
    pub fn with_p99(mut self, fraction: f64) -> Self {
        self.p99 = fraction;
        self.judge_p99 = true;
        self
    }

    /// With a tolerance for allocations per call.
    #[must_use]
    pub fn with_allocs(mut self, fraction: f64) -> Self {
        self.allocs = fraction;
        self
    }

    /// With a tolerance for bytes per call.
    #[must_use]
    pub fn with_bytes(mut self, fraction: f64) -> Self {
        self.bytes = fraction;
        self
    }
}

impl Default for Tolerance {
    /// 10% on every metric.
    fn default() -> Self {
        Self::uniform(0.10)
    }
}

/// The outcome for one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Verdict {
    /// A metric grew by more than its tolerance.
    Regressed,
    /// No metric regressed and one shrank by more than its tolerance.
    Improved,
    /// Every metric within tolerance.
    Same,
    /// Fewer calls than [`Tolerance::min_calls`] on a side: not judged.
    TooFewCalls,
    /// Only in the head report.
    New,
    /// Only in the base report.
    Gone,
}

impl Verdict {
    /// Upper-case label, as printed.
    pub fn label(self) -> &'static str {
        match self {
            Self::Regressed => "REGRESSED",
            Self::Improved => "improved",
            Self::Same => "same",
            Self::TooFewCalls => "too few calls",
            Self::New => "new",
            Self::Gone => "gone",
        }
    }
}

/// One metric of one site, base → head.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Change {
    /// In the base report (ns, or per call).
    pub base: Option<f64>,
    /// In the head report.
    pub head: Option<f64>,
}

impl Change {
    /// Relative change, `0.5` for +50%; `None` when either side is missing.
    pub fn relative(&self) -> Option<f64> {
        match (self.base, self.head) {
            (Some(b), Some(h)) if b > 0.0 => Some((h - b) / b),
            (Some(_), Some(h)) => Some(if h > 0.0 { f64::INFINITY } else { 0.0 }),
            _ => None,
        }
    }
}

/// One row of a [`Comparison`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Row {
    /// Module path.
    pub module: String,
    /// Function name.
    pub name: String,
    /// Median.
    pub p50: Change,
    /// 99th percentile.
    pub p99: Change,
    /// Allocations per call.
    pub allocs: Change,
    /// Bytes per call.
    pub bytes: Change,
    /// The outcome.
    pub verdict: Verdict,
}

/// The result of [`compare`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Comparison {
    /// One row per site in either report, regressions first.
    pub rows: Vec<Row>,
    /// The whole run, when both reports have one.
    pub run: Option<RunRow>,
}

/// Compares `head` with `base`, site by site (matched by module and name).
pub fn compare(base: &Report, head: &Report, tolerance: &Tolerance) -> Comparison {
    let key = |s: &SiteFigures| (s.module.clone(), s.name.clone());
    let mut rows = Vec::new();
    for b in &base.sites {
        let h = head.sites.iter().find(|h| key(h) == key(b));
        rows.push(row(Some(b), h, tolerance));
    }
    for h in &head.sites {
        if !base.sites.iter().any(|b| key(b) == key(h)) {
            rows.push(row(None, Some(h), tolerance));
        }
    }
    rows.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.name.cmp(&b.name)));
    let run = match (&base.run, &head.run) {
        (Some(b), Some(h)) => Some(run_row(b, h, tolerance)),
        _ => None,
    };
    Comparison { rows, run }
}

fn row(base: Option<&SiteFigures>, head: Option<&SiteFigures>, tol: &Tolerance) -> Row {
    let site = base.or(head).expect("one side is present");
    let change = |f: &dyn Fn(&SiteFigures) -> Option<f64>| Change {
        base: base.and_then(f),
        head: head.and_then(f),
    };
    let p50 = change(&|s| Some(s.p50_ns as f64));
    let p99 = change(&|s| Some(s.p99_ns as f64));
    let allocs = change(&|s| s.per_call(s.allocs));
    let bytes = change(&|s| s.per_call(s.alloc_bytes));
    let verdict = match (base, head) {
        (None, _) => Verdict::New,
        (_, None) => Verdict::Gone,
        (Some(b), Some(h)) if b.calls.min(h.calls) < tol.min_calls => Verdict::TooFewCalls,
        (Some(b), Some(h)) => {
            // Allocations per call are counted exactly: their tolerance is
            // the whole rule. Time is noisy: it has to move by more than its
            // tolerance *and* beyond the spread the two histograms show.
            let mut moved: Vec<f64> = [(allocs, tol.allocs), (bytes, tol.bytes)]
                .iter()
                .filter_map(|(c, t)| c.relative().filter(|r| r.abs() > *t))
                .collect();
            let beyond = |c: &Change, t: f64| c.relative().filter(|r| r.abs() > t);
            // The bulk: the median beyond its tolerance, and the whole
            // distribution shifted (rank test) the same way.
            if let Some(r) = beyond(&p50, tol.p50) {
                match shift(&b.histogram, &h.histogram) {
                    Shift::Slower if r > 0.0 => moved.push(r),
                    Shift::Faster if r < 0.0 => moved.push(r),
                    // No histograms (an older report): the tolerance alone.
                    Shift::Unknown => moved.push(r),
                    _ => {}
                }
            }
            // The tail, only when asked for and backed by 1 000 calls: p99
            // beyond its tolerance, and significantly more of the head's
            // calls above the base's p99 than the 1% expected.
            if tol.judge_p99
                && b.calls.min(h.calls) >= 1_000
                && let Some(r) = beyond(&p99, tol.p99).filter(|r| *r > 0.0)
                && tail_grew(&h.histogram, b.p99_ns)
            {
                moved.push(r);
            }
            if moved.iter().any(|&r| r > 0.0) {
                Verdict::Regressed
            } else if moved.is_empty() {
                Verdict::Same
            } else {
                Verdict::Improved
            }
        }
    };
    Row {
        module: site.module.clone(),
        name: site.name.clone(),
        p50,
        p99,
        allocs,
        bytes,
        verdict,
    }
}

/// Whether significantly more than 1% of the head's calls lie above the
/// base's p99 (a binomial test, z ≥ 3.3, and at least twice the 1%).
fn tail_grew(head: &[[u64; 3]], base_p99: u64) -> bool {
    let n: f64 = head.iter().map(|b| b[2] as f64).sum();
    if n == 0.0 {
        return false;
    }
    let above: f64 = head
        .iter()
        .filter(|b| b[0] > base_p99)
        .map(|b| b[2] as f64)
        .sum();
    let share = above / n;
    let z = (share - 0.01) / (0.01 * 0.99 / n).sqrt();
    share >= 0.02 && z >= 3.3
}

/// How the head's durations sit against the base's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shift {
    Slower,
    Faster,
    Same,
    Unknown,
}

/// The Mann–Whitney rank test on two histograms (each bucket a tie at its
/// midpoint): the head is slower (faster) when a call of it is longer
/// (shorter) than a call of the base in at least 65% of pairs *and* that is
/// significant at z ≥ 3.3 (p < 0.001). Two runs of the same code overlap
/// far more than that; a 2× slowdown of a function with a few hundred calls
/// does not.
fn shift(base: &[[u64; 3]], head: &[[u64; 3]]) -> Shift {
    // Both sides on one grid: each bucket's midpoint in ns, binned again on
    // overrun's own log-linear buckets. Each run calibrates its own clock,
    // so the two reports' bucket bounds in ns differ slightly; without a
    // common grid, calls of the same duration would not tie.
    let grid = |h: &[[u64; 3]]| -> Vec<(usize, f64)> {
        h.iter()
            .filter(|b| b[0] <= b[1])
            .map(|b| {
                let mid = b[0] + (b[1] - b[0]) / 2;
                (crate::record::stats::bucket_index(mid), b[2] as f64)
            })
            .collect()
    };
    let (base, head) = (grid(base), grid(head));
    let total = |h: &[(usize, f64)]| h.iter().map(|b| b.1).sum::<f64>();
    let (n1, n2) = (total(&base), total(&head));
    if n1 == 0.0 || n2 == 0.0 {
        return Shift::Unknown;
    }
    // (grid bucket, base count, head count), ascending.
    let mut points: Vec<(usize, f64, f64)> = base
        .iter()
        .map(|&(i, c)| (i, c, 0.0))
        .chain(head.iter().map(|&(i, c)| (i, 0.0, c)))
        .collect();
    points.sort_by_key(|p| p.0);
    // U of the head: pairs (base, head) with head > base, ties count half;
    // and the tie correction of its variance.
    let (mut below, mut u, mut ties, mut i) = (0.0, 0.0, 0.0, 0);
    while i < points.len() {
        let bucket = points[i].0;
        let (mut base_here, mut head_here) = (0.0, 0.0);
        while i < points.len() && points[i].0 == bucket {
            base_here += points[i].1;
            head_here += points[i].2;
            i += 1;
        }
        u += head_here * (below + base_here / 2.0);
        below += base_here;
        let t: f64 = base_here + head_here;
        ties += t * t * t - t;
    }
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return Shift::Same; // every call in one bucket on both sides
    }
    let p_slower = u / (n1 * n2);
    let z = (u - n1 * n2 / 2.0) / variance.sqrt();
    if p_slower >= 0.65 && z >= 3.3 {
        Shift::Slower
    } else if p_slower <= 0.35 && z <= -3.3 {
        Shift::Faster
    } else {
        Shift::Same
    }
}

/// `base → head +N%`, each side shown by `fmt` (`fmt_ns`, `fmt_bytes`).
fn change_cell(c: &Change, fmt: fn(u64) -> String) -> String {
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| fmt(v.round() as u64));
    let pct = c
        .relative()
        .filter(|r| r.is_finite())
        .map_or(String::new(), |r| format!(" {:+.0}%", r * 100.0));
    format!("{} → {}{pct}", show(c.base), show(c.head))
}

fn count_cell(c: &Change, bytes: bool) -> String {
    let show = |v: Option<f64>| match v {
        None => "n/a".to_string(),
        Some(v) if bytes => fmt_bytes(v.round() as u64),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    };
    format!("{} → {}", show(c.base), show(c.head))
}

impl Comparison {
    /// Whether any site regressed.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regressed)
            || self
                .run
                .as_ref()
                .is_some_and(|r| r.verdict == Verdict::Regressed)
    }

    /// The whole run's line: `run   wall 20.0ms → 40.0ms +100%   cpu …   peak RSS …   REGRESSED`.
    fn run_line(&self) -> Option<String> {
        let r = self.run.as_ref()?;
        let mut verdict = r.verdict.label().to_string();
        if !r.newly_broken.is_empty() {
            verdict += &format!(" (broke its {} budget)", r.newly_broken.join(" and "));
        }
        Some(format!(
            "run: wall {}   cpu {}   peak RSS {}   {verdict}",
            change_cell(&r.wall, fmt_ns),
            change_cell(&r.cpu, fmt_ns),
            change_cell(&r.peak_rss, fmt_bytes)
        ))
    }

    fn cells(&self) -> Vec<[String; 6]> {
        self.rows
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    change_cell(&r.p50, fmt_ns),
                    change_cell(&r.p99, fmt_ns),
                    count_cell(&r.allocs, false),
                    count_cell(&r.bytes, true),
                    r.verdict.label().to_string(),
                ]
            })
            .collect()
    }

    /// A plain-text table for a terminal.
    ///
    /// ```
    /// # use overrun::baseline::*;
    /// let r = Report::from_json(r#"{"version":1,"sites":[]}"#).unwrap();
    /// assert!(compare(&r, &r, &Tolerance::default()).render_table().starts_with("function"));
    /// ```
    pub fn render_table(&self) -> String {
        let header = [
            "function",
            "p50 base → head",
            "p99 base → head",
            "allocs/call",
            "bytes/call",
            "verdict",
        ];
        let cells = self.cells();
        let widths: Vec<usize> = (0..6)
            .map(|i| {
                cells
                    .iter()
                    .map(|c| c[i].chars().count())
                    .chain([header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(header.map(String::from)).chain(cells) {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            let _ = writeln!(out, "{}", line.join("   ").trim_end());
        }
        if let Some(run) = self.run_line() {
            let _ = writeln!(out, "{run}");
        }
        out
    }

    /// A Markdown table, for a pull-request comment.
    ///
    /// ```
    /// # use overrun::baseline::*;
    /// let r = Report::from_json(r#"{"version":1,"sites":[]}"#).unwrap();
    /// assert!(compare(&r, &r, &Tolerance::default()).render_markdown().contains("| function |"));
    /// ```
    pub fn render_markdown(&self) -> String {
        let regressions = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .count()
            + usize::from(
                self.run
                    .as_ref()
                    .is_some_and(|r| r.verdict == Verdict::Regressed),
            );
        let mut out = if regressions > 0 {
            format!("**overrun: {regressions} regression(s)**\n\n")
        } else {
            "**overrun: no regression**\n\n".to_string()
        };
        out.push_str("| function | p50 base → head | p99 base → head | allocs/call | bytes/call | verdict |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for c in self.cells() {
            let verdict = if c[5] == "REGRESSED" {
                "**REGRESSED**".to_string()
            } else {
                c[5].clone()
            };
            let name = format!("`{}`", c[0]);
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {verdict} |",
                c[1], c[2], c[3], c[4]
            );
        }
        if let Some(run) = self.run_line() {
            let _ = writeln!(out, "\n{run}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` durations around `center` ns, spread ±40% (a small deterministic
    /// generator), as a report's sparse histogram.
    fn histogram(n: u64, center: f64, seed: u64) -> Vec<[u64; 3]> {
        let mut x = seed | 1;
        let values = (0..n).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x % 10_000) as f64 / 10_000.0; // [0, 1)
            (center * (0.6 + 0.8 * unit)) as u64
        });
        crate::record::stats::Histogram::from_values(values)
            .buckets()
            .map(|(lo, hi, count)| [lo, hi, count])
            .collect()
    }

    #[test]
    fn the_rank_test_tells_noise_from_a_slowdown_with_a_few_hundred_calls() {
        for seed in 1..20 {
            let base = histogram(300, 1_000.0, seed);
            let again = histogram(300, 1_000.0, seed * 7919);
            assert_eq!(shift(&base, &again), Shift::Same, "seed {seed}");
            assert_eq!(
                shift(&base, &histogram(300, 2_000.0, seed * 31)),
                Shift::Slower
            );
            assert_eq!(
                shift(&base, &histogram(300, 500.0, seed * 17)),
                Shift::Faster
            );
        }
        assert_eq!(shift(&[], &histogram(10, 1.0, 1)), Shift::Unknown);
    }

    /// Two runs calibrate their clocks apart: the same durations land on
    /// bucket bounds a hair apart in ns. They must still tie.
    #[test]
    fn a_calibration_difference_is_not_a_shift() {
        // Tight: two buckets hold every call.
        let base = vec![[4_992, 5_120, 10_000], [5_120, 5_248, 10_000]];
        let scaled: Vec<[u64; 3]> = base
            .iter()
            .map(|b| {
                let s = |v: u64| (v as f64 * 1.0005).round() as u64;
                [s(b[0]), s(b[1]), b[2]]
            })
            .collect();
        assert_eq!(shift(&base, &scaled), Shift::Same);
        assert_eq!(shift(&scaled, &base), Shift::Same);
    }

    #[test]
    fn the_tail_test_needs_more_than_noise() {
        // 1% above the base's p99: as expected.
        let calm = [[100, 110, 990], [2_000, 2_100, 10]];
        assert!(!tail_grew(&calm, 1_000));
        // 6% above: the tail grew.
        let grown = [[100, 110, 940], [2_000, 2_100, 60]];
        assert!(tail_grew(&grown, 1_000));
    }

    #[test]
    fn the_whole_run_is_compared_too() {
        let report = |wall: u64, rss: u64, broken: &str| {
            Report::from_json(&format!(
                r#"{{"version": 1, "sites": [], "run": {{"wall_ns": {wall}, "cpu_ns": {wall},
                   "peak_rss_bytes": {rss}, "violations": [{broken}]}}}}"#
            ))
            .unwrap()
        };
        let base = report(200_000_000, 10 << 20, "");
        let tol = Tolerance::uniform(0.2);
        // 10x the wall time, 20x the memory, a memory budget broken.
        let worse = compare(
            &base,
            &report(2_000_000_000, 200 << 20, r#"{"kind": "memory"}"#),
            &tol,
        );
        let run = worse.run.as_ref().unwrap();
        assert_eq!(run.verdict, Verdict::Regressed);
        assert_eq!(run.newly_broken, ["memory"]);
        assert!(worse.regressed());
        assert!(
            worse
                .render_table()
                .contains("REGRESSED (broke its memory budget)")
        );
        // Jitter of a short run: 5 ms more is not a regression.
        let jitter = compare(
            &report(20_000_000, 10 << 20, ""),
            &report(25_000_000, 10 << 20, ""),
            &tol,
        );
        assert_eq!(jitter.run.unwrap().verdict, Verdict::Same);
        assert!(!compare(&base, &base, &tol).regressed());
        // Times move at least RUN_TIME_TOLERANCE (25%), whatever the median's
        // tolerance: 200 -> 240 ms is the same run, 200 -> 260 ms is not.
        let tight = Tolerance::uniform(0.1);
        let run_of = |head: u64| {
            compare(&base, &report(head, 10 << 20, ""), &tight)
                .run
                .unwrap()
                .verdict
        };
        assert_eq!(run_of(240_000_000), Verdict::Same);
        assert_eq!(run_of(260_000_000), Verdict::Regressed);
        // An older report without the run's times: not judged.
        assert_eq!(run_of(0), Verdict::Same);
    }

    #[test]
    fn p99_is_judged_only_when_asked_for() {
        let site = |p99: u64, hist: &str| {
            format!(
                r#"{{"name": "f", "module": "m", "calls": 1000, "p50_ns": 100, "p99_ns": {p99}, "histogram": {hist}}}"#
            )
        };
        let report =
            |s: String| Report::from_json(&format!(r#"{{"version": 1, "sites": [{s}]}}"#)).unwrap();
        let base = report(site(110, "[[100, 110, 990], [110, 120, 10]]"));
        let head = report(site(2_100, "[[100, 110, 940], [2000, 2100, 60]]"));
        let by_default = compare(&base, &head, &Tolerance::uniform(0.1));
        assert_eq!(by_default.rows[0].verdict, Verdict::Same);
        let asked = compare(&base, &head, &Tolerance::uniform(0.1).with_p99(0.5));
        assert_eq!(asked.rows[0].verdict, Verdict::Regressed);
    }
}
