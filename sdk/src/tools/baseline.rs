//! Baselines: compare two JSON reports (the format [`crate::Snapshot`]
//! writes with `OVERRUN_REPORT_FILE`) to catch regressions in CI. The
//! `overrun diff` command (feature `cli`) is a thin front end to this module.
//!
//! ```
//! use overrun::baseline::{Report, Tolerance, Verdict, compare};
//!
//! let base = Report::from_json(r#"{"version": 1, "sites": [
//!     {"name": "parse", "module": "app", "calls": 10, "p50_ns": 1000, "p99_ns": 3000,
//!      "allocs": 40, "alloc_bytes": 4000}]}"#).unwrap();
//! let head = Report::from_json(r#"{"version": 1, "sites": [
//!     {"name": "parse", "module": "app", "calls": 10, "p50_ns": 2100, "p99_ns": 3050,
//!      "allocs": 40, "alloc_bytes": 4000}]}"#).unwrap();
//! let diff = compare(&base, &head, &Tolerance::uniform(0.10));
//! assert_eq!(diff.rows[0].verdict, Verdict::Regressed);
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
    /// Per-site figures.
    pub sites: Vec<SiteFigures>,
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
/// (`0.10` is 10%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Allocations per call.
    pub allocs: f64,
    /// Bytes per call.
    pub bytes: f64,
}

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
        }
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
pub enum Verdict {
    /// A metric grew by more than its tolerance.
    Regressed,
    /// No metric regressed and one shrank by more than its tolerance.
    Improved,
    /// Every metric within tolerance.
    Same,
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
    Comparison { rows }
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
        _ => {
            let metrics = [
                (p50, tol.p50),
                (p99, tol.p99),
                (allocs, tol.allocs),
                (bytes, tol.bytes),
            ];
            let moved: Vec<f64> = metrics
                .iter()
                .filter_map(|(c, t)| c.relative().map(|r| (r, *t)))
                .filter(|(r, t)| r.abs() > *t)
                .map(|(r, _)| r)
                .collect();
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

fn time_cell(c: &Change) -> String {
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| fmt_ns(v.round() as u64));
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
    }

    fn cells(&self) -> Vec<[String; 6]> {
        self.rows
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    time_cell(&r.p50),
                    time_cell(&r.p99),
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
            .count();
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
        out
    }
}
