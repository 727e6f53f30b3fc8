//! `overrun rules`: Prometheus alerting rules for every objective, as
//! multi-window, multi-burn-rate alerts.
//!
//! An objective is a budget of bad calls: for `p99 = "50ms"`, 1% of calls
//! may take over 50 ms; for `error_rate = "1%"`, 1% may fail. A window's
//! *burn rate* is its share of bad calls over that budget. The rules page
//! when the budget burns fast (over 14.4× on both the last 5 minutes and
//! the last hour, or over 6× on both the last 30 minutes and 6 hours) and
//! open a ticket when it burns slowly (over 3× on 2 hours and a day, or
//! over 1× on 6 hours and 3 days). A call over 50 ms is counted from the
//! `le="0.05"` bucket, which the exporters add to every site with that
//! threshold and counts exactly (no rule interpolates between bounds).
//! Ratios are recorded once per threshold for every site, with an
//! `overrun_path` label (`module::function`) that a policy file's patterns
//! match; the alerts select their sites.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use overrun::budget::Objective;

/// The windows of every burn-rate check: (short, long, factor, severity).
const PAIRS: [(&str, &str, f64, &str); 4] = [
    ("5m", "1h", 14.4, "page"),
    ("30m", "6h", 6.0, "page"),
    ("2h", "1d", 3.0, "ticket"),
    ("6h", "3d", 1.0, "ticket"),
];

/// Every window a ratio is recorded over.
const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// Labels every aggregation keeps: one service's objective alerts apart
/// from another's (instances of a service burn one budget together).
const BY: &str = "job, service_name, function, module";

#[derive(Debug, clap::Args)]
pub(crate) struct Rules {
    /// A budget policy file whose objectives to alert on (with `--sites`,
    /// applied to each site's code budget, as the program would).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A JSON report (`OVERRUN_REPORT_FILE`): its sites and the objectives
    /// they have (without `--config`, those in force when it was written).
    #[arg(long, value_name = "REPORT.json")]
    sites: Option<PathBuf>,
    #[command(flatten)]
    env: crate::EnvArg,
}

/// Which series an objective is over.
enum Selector {
    /// One site.
    Site { function: String, module: String },
    /// The sites a policy rule's pattern matches (its bare name, or its
    /// `module::name`, as the program matches it), less those where a rule
    /// that wins over it sets the same objective.
    Pattern { glob: String, unless: Vec<String> },
}

/// One objective to alert on.
struct Target {
    selector: Selector,
    /// Where it comes from, for the rule's comment.
    from: String,
    objective: Objective,
    limit: u64,
}

impl Rules {
    pub(crate) fn run(&self) -> Result<ExitCode, String> {
        let policy = match &self.config {
            Some(path) => Some(overrun::config::Policy::read(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut targets = Vec::new();
        match (&self.sites, &policy) {
            (Some(report), _) => {
                for site in crate::read_report(report)?.0 {
                    let budget = match &policy {
                        Some(p) => {
                            p.budget_for(&site.module, &site.name, site.budget, self.env.get())
                                .0
                        }
                        None => site.in_force,
                    };
                    for (objective, limit) in budget.objectives.targets() {
                        targets.push(Target {
                            selector: Selector::Site {
                                function: site.name.clone(),
                                module: site.module.clone(),
                            },
                            from: format!("{}::{}", site.module, site.name),
                            objective,
                            limit,
                        });
                    }
                }
            }
            (None, Some(p)) => {
                for r in p.objective_rules(self.env.get()) {
                    for (objective, limit) in r.objectives.targets() {
                        targets.push(Target {
                            selector: Selector::Pattern {
                                glob: r.rule.pattern.clone(),
                                unless: r
                                    .overridden_by
                                    .iter()
                                    .filter(|(o, _)| *o == objective)
                                    .map(|(_, glob)| glob.clone())
                                    .collect(),
                            },
                            from: format!(
                                "{}:{} match = {:?}",
                                p.path(),
                                r.rule.line,
                                r.rule.pattern
                            ),
                            objective,
                            limit,
                        });
                    }
                }
            }
            (None, None) => {
                return Err(
                    "give the objectives: --sites REPORT.json, --config FILE, or both".into(),
                );
            }
        }
        if targets.is_empty() {
            eprintln!("overrun rules: no objective found; the group is empty");
        }
        print!("{}", render(&targets));
        Ok(ExitCode::SUCCESS)
    }
}

/// A PromQL string literal's content: `\`, `"` and line breaks escaped.
fn quoted(s: &str) -> String {
    overrun::export::escape_label_value(s)
}

/// A glob (`*` any text, `?` one character) as an RE2 pattern, which
/// Prometheus anchors at both ends.
fn glob_regex(glob: &str) -> String {
    let mut re = String::new();
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c if "\\.+()|[]{}^$".contains(c) => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
    }
    re
}

/// The sites of a pattern among a recorded metric's series (which carry
/// `overrun_path`, `module::function`): `metric{…}` or a union of two.
fn matching(metric: &str, extra: &str, glob: &str) -> String {
    let re = quoted(&glob_regex(glob));
    format!("({metric}{{{extra}overrun_path=~\"{re}\"}} or {metric}{{{extra}function=~\"{re}\"}})")
}

/// The content of a YAML double-quoted string: `\\`, `"` and control
/// characters escaped.
fn yaml_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A rule's text for a comment line (no line breaks).
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A number for PromQL: at most 9 decimals, no trailing zeros.
fn number(v: f64) -> String {
    let text = format!("{v:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Target {
    /// What the rules of this objective select, as their `overrun_match`
    /// label: the site's `module::function`, or the policy rule's pattern
    /// (two objectives' alerts never share their name and labels).
    fn matched(&self) -> String {
        match &self.selector {
            Selector::Site { function, module } => format!("{module}::{function}"),
            Selector::Pattern { glob, .. } => glob.clone(),
        }
    }

    /// The share of calls allowed to be bad.
    fn budget(&self) -> f64 {
        match self.objective {
            Objective::Quantile(q) => 1.0 - q.fraction(),
            Objective::ErrorRate => self.limit as f64 / 1e6,
        }
    }

    /// The recorded ratio of bad calls, and the label that tells this
    /// objective's apart (a latency threshold).
    fn recorded(&self, window: &str) -> (String, String) {
        match self.objective {
            Objective::Quantile(_) => (
                format!("overrun:objective_slow_ratio:rate{window}"),
                format!("threshold=\"{}\",", le(self.limit)),
            ),
            Objective::ErrorRate => (
                format!("overrun:objective_error_ratio:rate{window}"),
                String::new(),
            ),
        }
    }

    /// This objective's series of the recorded ratio over `window`.
    fn series(&self, window: &str) -> String {
        let (metric, extra) = self.recorded(window);
        match &self.selector {
            Selector::Site { function, module } => format!(
                "{metric}{{{extra}function=\"{}\",module=\"{}\"}}",
                quoted(function),
                quoted(module)
            ),
            Selector::Pattern { glob, unless } => {
                let mut s = matching(&metric, &extra, glob);
                for other in unless {
                    let _ = write!(s, " unless on ({BY}) {}", matching(&metric, &extra, other));
                }
                format!("({s})")
            }
        }
    }
}

/// The `le` of a threshold, as the exporters write the bucket bound.
fn le(ns: u64) -> String {
    overrun::export::threshold_seconds(ns).to_string()
}

/// The `le` matcher of a threshold: exact, or for a whole number of
/// seconds both spellings (`1` in the classic text, `1.0` in OpenMetrics
/// and in what Prometheus 3 stores).
fn le_matcher(ns: u64) -> String {
    let classic = le(ns);
    let canonical = overrun::export::canonical_bound(overrun::export::threshold_seconds(ns));
    if classic == canonical {
        format!("le=\"{classic}\"")
    } else {
        format!("le=~\"{}|{}\"", classic, canonical.replace('.', "\\\\."))
    }
}

/// What a recorded ratio is: slow calls over a threshold, or errors.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ratio {
    Slow(u64),
    Errors,
}

/// The recording rule of one ratio over one window, for every site (each
/// series keeps `module` and `function`, and gains `overrun_path`,
/// `module::function`, that policy patterns match).
fn record(out: &mut String, ratio: &Ratio, window: &str) {
    let (name, expr, labels) = match ratio {
        Ratio::Slow(ns) => (
            format!("overrun:objective_slow_ratio:rate{window}"),
            format!(
                "1 - (\n              sum by ({BY}) (rate(overrun_duration_seconds_bucket{{{le}}}[{window}]))\n              /\n              sum by ({BY}) (rate(overrun_duration_seconds_count[{window}]))\n            )",
                le = le_matcher(*ns)
            ),
            format!("\n        labels:\n          threshold: \"{}\"", le(*ns)),
        ),
        Ratio::Errors => (
            format!("overrun:objective_error_ratio:rate{window}"),
            format!(
                "sum by ({BY}) (rate(overrun_errors_total[{window}]))\n            /\n            sum by ({BY}) (rate(overrun_calls_total[{window}]))"
            ),
            String::new(),
        ),
    };
    let _ = writeln!(
        out,
        "      - record: {name}\n        expr: |\n          label_join(\n            {expr},\n            \"overrun_path\", \"::\", \"module\", \"function\"\n          ){labels}"
    );
}

/// The rules file: one group, the recorded ratios then the alerts.
fn render(targets: &[Target]) -> String {
    let mut out = String::from(
        "# Prometheus rules for overrun objectives, written by `overrun rules`:\n\
         # multi-window, multi-burn-rate alerts on each objective's budget of\n\
         # bad calls. Check: promtool check rules <this file>\n\
         groups:\n  - name: overrun-objectives\n",
    );
    if targets.is_empty() {
        out.push_str("    rules: []\n");
        return out;
    }
    out.push_str("    rules:\n");
    // Each ratio once, whatever the number of objectives over it; the
    // error ratio always (it tells a site with calls but no bucket at its
    // threshold).
    let mut ratios: Vec<Ratio> = targets
        .iter()
        .filter_map(|t| match t.objective {
            Objective::Quantile(_) => Some(Ratio::Slow(t.limit)),
            Objective::ErrorRate => None,
        })
        .chain([Ratio::Errors])
        .collect();
    ratios.sort();
    ratios.dedup();
    for ratio in &ratios {
        for window in WINDOWS {
            record(&mut out, ratio, window);
        }
    }
    for t in targets {
        let _ = writeln!(
            out,
            "      # {}: {} {} ({})",
            comment(&t.from),
            t.objective.key(),
            overrun::units::fmt_objective(t.objective, t.limit),
            match t.objective {
                Objective::Quantile(_) => "a call over it is bad",
                Objective::ErrorRate => "a failed call is bad",
            }
        );
        let budget = t.budget();
        for severity in ["page", "ticket"] {
            let mut unreachable = Vec::new();
            let conditions: Vec<String> = PAIRS
                .iter()
                .filter(|p| p.3 == severity)
                .filter_map(|&(short, long, factor, _)| {
                    let over = factor * budget;
                    if over >= 1.0 {
                        // More bad calls than calls: this pair can never
                        // fire (a p50's budget is half the calls).
                        unreachable.push(format!("{short}/{long} at {factor}x"));
                        return None;
                    }
                    Some(format!(
                        "(\n            {} > {o}\n            and\n            {} > {o}\n          )",
                        t.series(short),
                        t.series(long),
                        o = number(over),
                    ))
                })
                .collect();
            if !unreachable.is_empty() {
                let _ = writeln!(
                    out,
                    "      # No {severity} on {}: that many times a budget of {} is more than every call.",
                    unreachable.join(", "),
                    fmt_share(budget),
                );
            }
            if conditions.is_empty() {
                continue;
            }
            let name = if severity == "page" {
                "OverrunObjectiveBurnRatePage"
            } else {
                "OverrunObjectiveBurnRateTicket"
            };
            let speed = if severity == "page" {
                "fast"
            } else {
                "steadily"
            };
            let _ = writeln!(
                out,
                "      - alert: {name}\n        expr: |\n          {}\n        labels:\n          severity: {severity}\n          objective: {}\n          overrun_match: \"{}\"\n        annotations:\n          summary: \"{{{{ $labels.function }}}} burns the budget of its {} objective {speed} on {{{{ $labels.job }}}}\"\n          description: \"{{{{ $labels.module }}}}::{{{{ $labels.function }}}}: {{{{ $value | humanizePercentage }}}} of calls bad against {} allowed (objective {} {}).\"",
                conditions.join("\n          or\n          "),
                t.objective.key(),
                yaml_quoted(&t.matched()),
                t.objective.key(),
                fmt_share(budget),
                t.objective.key(),
                overrun::units::fmt_objective(t.objective, t.limit),
            );
        }
        if let Objective::Quantile(_) = t.objective {
            // Without a bucket at the threshold (the exporter of an older
            // overrun, or a pipeline that re-buckets), the slow ratio does
            // not exist and the alerts above stay silent: say so.
            let errors = Target {
                selector: match &t.selector {
                    Selector::Site { function, module } => Selector::Site {
                        function: function.clone(),
                        module: module.clone(),
                    },
                    Selector::Pattern { glob, unless } => Selector::Pattern {
                        glob: glob.clone(),
                        unless: unless.clone(),
                    },
                },
                from: String::new(),
                objective: Objective::ErrorRate,
                limit: 0,
            };
            let _ = writeln!(
                out,
                "      - alert: OverrunObjectiveBucketMissing\n        expr: |\n          {} unless on ({BY}) {}\n        for: 1h\n        labels:\n          severity: ticket\n          objective: {}\n          overrun_match: \"{}\"\n        annotations:\n          summary: \"{{{{ $labels.function }}}} on {{{{ $labels.job }}}} has no duration bucket at {}: its {} objective cannot alert\"\n          description: \"overrun_duration_seconds_bucket{{le=\\\"{}\\\"}} is missing for {{{{ $labels.module }}}}::{{{{ $labels.function }}}}: the exporter adds it for every objective; another exporter or a pipeline that re-buckets drops it.\"",
                errors.series("1h"),
                t.series("1h"),
                t.objective.key(),
                yaml_quoted(&t.matched()),
                le(t.limit),
                t.objective.key(),
                le(t.limit),
            );
        }
    }
    out
}

/// A share for people: `1%`, `0.1%`.
fn fmt_share(share: f64) -> String {
    let percent = share * 100.0;
    let text = format!("{percent:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_regex("get_*"), "get_.*");
        assert_eq!(glob_regex("a.b?"), "a\\.b.");
        assert_eq!(quoted("<A as \"B\">"), "<A as \\\"B\\\">");
        assert_eq!(quoted("a\nb"), "a\\nb");
    }

    #[test]
    fn shares() {
        assert_eq!(fmt_share(0.01), "1%");
        assert_eq!(fmt_share(1.0 - 0.999), "0.1%");
        assert_eq!(fmt_share(0.5), "50%");
    }
}
