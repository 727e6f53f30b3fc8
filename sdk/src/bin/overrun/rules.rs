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
//! threshold: the rules never interpolate between bounds.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use overrun::budget::{NONE, Objective, Objectives};

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
    /// The environment (`OVERRUN_ENV`) to resolve the policy file's rules
    /// for.
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
}

/// Which series an objective is over.
enum Selector {
    /// One site.
    Site { function: String, module: String },
    /// The sites a policy rule's pattern matches.
    Pattern {
        function: String,
        module: Option<String>,
    },
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
                            p.budget_for(&site.module, &site.name, site.budget, self.env.as_deref())
                                .0
                        }
                        None => site.in_force,
                    };
                    add(
                        &mut targets,
                        &budget.objectives,
                        || Selector::Site {
                            function: site.name.clone(),
                            module: site.module.clone(),
                        },
                        &format!("{}::{}", site.module, site.name),
                    );
                }
            }
            (None, Some(p)) => {
                for (rule, objectives) in p.objective_rules(self.env.as_deref()) {
                    let selector = || match rule.pattern.rsplit_once("::") {
                        Some((module, function)) => Selector::Pattern {
                            function: function.to_owned(),
                            module: Some(module.to_owned()),
                        },
                        None => Selector::Pattern {
                            function: rule.pattern.clone(),
                            module: None,
                        },
                    };
                    let from = format!("{}:{} match = {:?}", p.path(), rule.line, rule.pattern);
                    add(&mut targets, &objectives, selector, &from);
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

fn add(
    out: &mut Vec<Target>,
    objectives: &Objectives,
    selector: impl Fn() -> Selector,
    from: &str,
) {
    for (objective, limit) in objectives.targets() {
        if limit == NONE {
            continue;
        }
        out.push(Target {
            selector: selector(),
            from: from.to_owned(),
            objective,
            limit,
        });
    }
}

/// A PromQL string literal's content: `"` and `\` escaped.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
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

impl Selector {
    /// The label matchers of the site's series.
    fn matchers(&self) -> String {
        match self {
            Selector::Site { function, module } => {
                format!(
                    "function=\"{}\",module=\"{}\"",
                    quoted(function),
                    quoted(module)
                )
            }
            Selector::Pattern { function, module } => {
                let mut m = format!("function=~\"{}\"", quoted(&glob_regex(function)));
                if let Some(module) = module {
                    let _ = write!(m, ",module=~\"{}\"", quoted(&glob_regex(module)));
                }
                m
            }
        }
    }
}

impl Target {
    /// The share of calls allowed to be bad.
    fn budget(&self) -> f64 {
        match self.objective {
            Objective::Quantile(q) => 1.0 - q.fraction(),
            Objective::ErrorRate => self.limit as f64 / 1e6,
        }
    }

    /// The share of bad calls over `window`.
    fn bad_ratio(&self, window: &str) -> String {
        let m = self.selector.matchers();
        match self.objective {
            Objective::Quantile(_) => {
                let le = overrun::export::threshold_seconds(self.limit);
                format!(
                    "1 - (sum by ({BY}) (rate(overrun_duration_seconds_bucket{{{m},le=\"{le}\"}}[{window}])) / sum by ({BY}) (rate(overrun_duration_seconds_count{{{m}}}[{window}])))"
                )
            }
            Objective::ErrorRate => format!(
                "sum by ({BY}) (rate(overrun_errors_total{{{m}}}[{window}])) / sum by ({BY}) (rate(overrun_calls_total{{{m}}}[{window}]))"
            ),
        }
    }

    /// The selector of this objective's recorded ratios.
    fn recorded(&self) -> String {
        format!(
            "{},objective=\"{}\"",
            self.selector.matchers(),
            self.objective.key()
        )
    }
}

/// The rules file: one group, recorded ratios then alerts.
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
    for t in targets {
        let _ = writeln!(
            out,
            "      # {} {} {} ({})",
            t.from,
            t.objective.key(),
            overrun::units::fmt_objective(t.objective, t.limit),
            match t.objective {
                Objective::Quantile(_) => "a call over it is bad".to_owned(),
                Objective::ErrorRate => "a failed call is bad".to_owned(),
            }
        );
        for window in WINDOWS {
            let _ = writeln!(
                out,
                "      - record: overrun:objective_bad_ratio:rate{window}\n        expr: {}\n        labels:\n          objective: {}",
                t.bad_ratio(window),
                t.objective.key()
            );
        }
    }
    for t in targets {
        for severity in ["page", "ticket"] {
            let budget = t.budget();
            let conditions: Vec<String> = PAIRS
                .iter()
                .filter(|p| p.3 == severity)
                .map(|&(short, long, factor, _)| {
                    let over = factor * budget;
                    format!(
                        "(\n            overrun:objective_bad_ratio:rate{short}{{{sel}}} > {over}\n            and\n            overrun:objective_bad_ratio:rate{long}{{{sel}}} > {over}\n          )",
                        sel = t.recorded()
                    )
                })
                .collect();
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
                "      - alert: {name}\n        expr: |\n          {}\n        labels:\n          severity: {severity}\n          objective: {}\n        annotations:\n          summary: \"{{{{ $labels.function }}}} burns the budget of its {} objective {speed} on {{{{ $labels.job }}}}\"\n          description: \"{{{{ $labels.module }}}}::{{{{ $labels.function }}}}: {{{{ $value | humanizePercentage }}}} of calls bad against {} allowed (objective {} {}).\"",
                conditions.join("\n          or\n          "),
                t.objective.key(),
                t.objective.key(),
                fmt_share(budget),
                t.objective.key(),
                overrun::units::fmt_objective(t.objective, t.limit),
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
    }

    #[test]
    fn shares() {
        assert_eq!(fmt_share(0.01), "1%");
        assert_eq!(fmt_share(1.0 - 0.999), "0.1%");
        assert_eq!(fmt_share(0.5), "50%");
    }
}
