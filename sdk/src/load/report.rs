//! What a load run found: its levels, the breaking point, the bottleneck,
//! as JSON and as an SVG chart.

use std::fmt::Write as _;

use serde::Serialize;

use crate::vocab::units::fmt_ns;

/// One load level, as measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Step {
    /// The level: requests per second offered (open model), or callers
    /// (closed model).
    pub offered: f64,
    /// Requests that ended per second.
    pub achieved: f64,
    /// Median latency, ns (open model: from each request's scheduled
    /// start; closed model: from its start).
    pub p50_ns: u64,
    /// 95th percentile latency, ns.
    pub p95_ns: u64,
    /// 99th percentile latency, ns.
    pub p99_ns: u64,
    /// Largest latency, ns.
    pub max_ns: u64,
    /// Requests that failed, could not start or did not end in time.
    pub errors: u64,
    /// Requests sent or refused.
    pub requests: u64,
    /// Whether the level met every pass line.
    pub passed: bool,
    /// The line it broke, if it failed (e.g. `p99 31.2ms > 20ms`).
    pub failed_line: Option<String>,
    /// Cut short by the run's stop signal ([`super::Load::stop_on`];
    /// Ctrl-C for `overrun load`): its figures are those of the part that
    /// ran, requests still out a second after the stop counting as errors,
    /// and it neither passed nor failed (`passed` is false, `failed_line`
    /// empty). Only the last level of a run can be.
    pub stopped: bool,
    /// The figures of overrun's own measured sites during the level.
    pub sites: Vec<SiteStep>,
}

impl Step {
    /// What the level came to, as the table and `overrun load`'s progress
    /// say it: `pass`, `FAIL: <the line it broke>`, or `stopped part way`
    /// (a bare `FAIL` only for a failed level without a line, which a run
    /// does not make).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let report = overrun::load::run(|| async {})
    ///     .rate(20.0..=20.0)
    ///     .step("100ms")
    ///     .await;
    /// assert_eq!(report.steps()[0].verdict(), "pass");
    /// # }
    /// ```
    pub fn verdict(&self) -> String {
        if self.stopped {
            "stopped part way".to_owned()
        } else if self.passed {
            "pass".to_owned()
        } else {
            self.failed_line
                .as_deref()
                .map_or_else(|| "FAIL".to_owned(), |line| format!("FAIL: {line}"))
        }
    }
}

/// One measured function's (or span's) figures during one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SiteStep {
    /// The function's (or span's) name.
    pub function: &'static str,
    /// Its module (a span's target).
    pub module: &'static str,
    /// Its file (two sites may share a name and a module).
    pub file: &'static str,
    /// Its line.
    pub line: u32,
    /// Calls during the level.
    pub calls: u64,
    /// Calls that returned `Err` or panicked.
    pub errors: u64,
    /// Time inside it, callees excluded, ns.
    pub self_ns: u64,
    /// Calls over its time, allocation or bytes budget.
    pub violations: u64,
    /// Whether it has a budget (only then can it fail a level).
    pub budgeted: bool,
}

/// The function that broke first as load rose.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Bottleneck {
    /// The function's (or span's) name.
    pub function: &'static str,
    /// Its module (a span's target).
    pub module: &'static str,
    /// The first failing level (in the order levels rose).
    pub level: f64,
    /// Its share of the measured sites' self time at that level, 0 to 1.
    pub share: f64,
    /// Why it is named: over its budgets in more than 1% of its calls, or
    /// the largest growth in self time per call since the lowest level.
    pub reason: String,
}

/// How the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum End {
    /// A level failed inside the range: the breaking point is the highest
    /// level below it that passed (confirmed by running it again).
    Found,
    /// No level passed: the lowest failed, or every level that had passed
    /// failed when run again to confirm it.
    LowestFails,
    /// The highest level still passed.
    HighestPasses,
    /// Stopped before the search ended (what was measured is kept).
    Stopped,
    /// Three levels the search found failed when run again: the service
    /// does not hold a level steadily enough to name a breaking point.
    Unsteady,
}

/// The result of [`super::run`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub(super) breaking_point: Option<f64>,
    pub(super) end: End,
    pub(super) steps: Vec<Step>,
    pub(super) bottleneck: Option<Bottleneck>,
    /// `"rate"` or `"concurrency"`.
    pub(super) model: &'static str,
}

impl LoadReport {
    /// The highest level that met every pass line (`None` when the lowest
    /// did not).
    pub fn breaking_point(&self) -> Option<f64> {
        self.breaking_point
    }

    /// Every level run, in the order it ran (the ramp, the bisection, the
    /// confirmation).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// How the search ended.
    pub fn end(&self) -> End {
        self.end
    }

    /// The function that broke first as load rose, with its share of the
    /// time; `None` when no level failed or no measured site ran.
    pub fn bottleneck(&self) -> Option<&Bottleneck> {
        self.bottleneck.as_ref()
    }

    /// `{"breaking_point": f64|null, "steps": [{"offered", "achieved",
    /// "p50_ns", "p95_ns", "p99_ns", "max_ns", "errors", "passed", …}, …],
    /// "end", "model", "bottleneck"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a load report serialises")
    }

    /// The levels as a table, one row each in the order they ran.
    pub fn table(&self) -> String {
        let unit = if self.model == "rate" {
            "req/s"
        } else {
            "callers"
        };
        let mut out = format!(
            "{:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}  result\n",
            format!("offered {unit}"),
            "achieved/s",
            "p50",
            "p95",
            "p99",
            "max",
            "errors"
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "{:>12.1} {:>12.1} {:>10} {:>10} {:>10} {:>10} {:>8}  {}",
                s.offered,
                s.achieved,
                fmt_ns(s.p50_ns),
                fmt_ns(s.p95_ns),
                fmt_ns(s.p99_ns),
                fmt_ns(s.max_ns),
                s.errors,
                s.verdict()
            );
        }
        match (self.end, self.breaking_point) {
            (End::Found, Some(b)) => {
                let _ = writeln!(out, "breaking point: {b:.1} {unit}");
            }
            (End::HighestPasses, Some(b)) => {
                let _ = writeln!(
                    out,
                    "no breaking point up to {b:.1} {unit}: the highest level passed"
                );
            }
            (End::Stopped, _) => {
                let _ = writeln!(out, "stopped before the search ended");
            }
            (End::Unsteady, _) => {
                let _ = writeln!(
                    out,
                    "no breaking point: three levels found failed when run again"
                );
            }
            _ => {
                let _ = writeln!(out, "the lowest level already fails");
            }
        }
        if let Some(b) = &self.bottleneck {
            let _ = writeln!(
                out,
                "bottleneck: {}::{} ({:.0}% of the measured time at {:.1} {unit}; {})",
                b.module,
                b.function,
                b.share * 100.0,
                b.level,
                b.reason
            );
        }
        out
    }

    /// An SVG chart: p50, p95 and p99 latency (left axis) and the achieved
    /// rate (right axis) against the offered level, the breaking point
    /// marked.
    pub fn to_svg(&self) -> String {
        let (w, h, left, right, top, bottom) = (760.0, 400.0, 70.0, 70.0, 30.0, 50.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        // One point per level: its last run (a confirmation, or a level
        // bisection came back to).
        let mut steps: Vec<&Step> = Vec::new();
        for s in self.steps.iter().rev().filter(|s| !s.stopped) {
            if !steps.iter().any(|t| t.offered == s.offered) {
                steps.push(s);
            }
        }
        steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
        let lo = steps
            .first()
            .map_or(1.0, |s| s.offered)
            .max(f64::MIN_POSITIVE);
        let hi = steps.last().map_or(2.0, |s| s.offered).max(lo * 1.0001);
        let log = hi / lo > 20.0;
        let x = |v: f64| {
            let t = if log {
                (v.max(lo) / lo).ln() / (hi / lo).ln()
            } else {
                (v - lo) / (hi - lo)
            };
            left + t * pw
        };
        let top_ms = steps
            .iter()
            .map(|s| s.p99_ns as f64 / 1e6)
            .fold(0.0, f64::max)
            .max(1e-3)
            * 1.1;
        let top_rate = steps
            .iter()
            .map(|s| s.achieved)
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1;
        let y_ms = |v: f64| top + ph - (v / top_ms).min(1.0) * ph;
        let y_rate = |v: f64| top + ph - (v / top_rate).min(1.0) * ph;
        let unit = if self.model == "rate" {
            "offered requests per second"
        } else {
            "callers"
        };
        let mut svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<line x1="{left}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="black"/>
<line x1="{x1}" y1="{top}" x2="{x1}" y2="{y0}" stroke="black"/>
<text x="{cx}" y="{h_text}" text-anchor="middle">{unit}{scale}</text>
<text x="15" y="{cy}" transform="rotate(-90 15 {cy})" text-anchor="middle">latency, ms</text>
<text x="{rx}" y="{cy}" transform="rotate(90 {rx} {cy})" text-anchor="middle">achieved, requests per second</text>
"##,
            y0 = top + ph,
            x1 = left + pw,
            cx = left + pw / 2.0,
            h_text = h - 10.0,
            cy = top + ph / 2.0,
            rx = w - 15.0,
            scale = if log { " (log scale)" } else { "" },
        );
        for k in 0..=4 {
            let v = top_ms * k as f64 / 4.0;
            let r = top_rate * k as f64 / 4.0;
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="end">{:.1}</text><text x="{}" y="{}">{:.0}</text>"##,
                left - 5.0,
                y_ms(v) + 4.0,
                v,
                left + pw + 5.0,
                y_rate(r) + 4.0,
                r
            );
        }
        // Level labels, skipping those that would overlap the last one.
        let mut last_label = f64::NEG_INFINITY;
        for s in &steps {
            if x(s.offered) - last_label < 45.0 {
                continue;
            }
            last_label = x(s.offered);
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"##,
                x(s.offered),
                top + ph + 16.0,
                s.offered
            );
        }
        /// A line of the chart: name, colour, value, on the latency axis.
        type Series = (&'static str, &'static str, fn(&Step) -> f64, bool);
        let series: [Series; 4] = [
            ("p50", "#1f77b4", |s| s.p50_ns as f64 / 1e6, true),
            ("p95", "#ff7f0e", |s| s.p95_ns as f64 / 1e6, true),
            ("p99", "#d62728", |s| s.p99_ns as f64 / 1e6, true),
            ("achieved", "#2ca02c", |s| s.achieved, false),
        ];
        for (i, (name, color, value, latency)) in series.iter().enumerate() {
            let points: Vec<String> = steps
                .iter()
                .map(|s| {
                    let y = if *latency {
                        y_ms(value(s))
                    } else {
                        y_rate(value(s))
                    };
                    format!("{:.1},{:.1}", x(s.offered), y)
                })
                .collect();
            let dash = if *latency {
                ""
            } else {
                r#" stroke-dasharray="6 3""#
            };
            let _ = writeln!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"##,
                points.join(" ")
            );
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" fill="{color}">{name}</text>"##,
                left + 10.0 + 70.0 * i as f64,
                top - 10.0
            );
        }
        if let Some(b) = self.breaking_point.filter(|_| self.end == End::Found) {
            let bx = x(b);
            // The label on the side with room.
            let (lx, anchor) = if bx > left + pw * 0.7 {
                (bx - 4.0, "end")
            } else {
                (bx + 4.0, "start")
            };
            let _ = writeln!(
                svg,
                r##"<line x1="{bx:.1}" y1="{top}" x2="{bx:.1}" y2="{}" stroke="black" stroke-dasharray="4 4"/><text x="{lx:.1}" y="{}" text-anchor="{anchor}">breaking point {b:.0}</text>"##,
                top + ph,
                top + 14.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}
