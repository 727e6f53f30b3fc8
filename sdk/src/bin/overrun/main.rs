//! `overrun` — command-line tools for overrun reports.
//!
//! ```text
//! overrun diff <base.json> <head.json> [--tolerance 10%] [--tolerance-p50 P]
//!              [--tolerance-p99 P] [--tolerance-allocs P] [--tolerance-bytes P]
//!              [--min-calls N] [--format table|markdown]
//! overrun check <overrun.toml> [--env NAME] [--sites REPORT.json]
//! overrun load <URL> [--method GET] [--header 'K: V']... [--body FILE]
//!              (--rate 100..50000 | --concurrency 1..512) [--step 3s]
//!              [--p50 D] [--p95 D] [--p99 D] [--error-rate 1%]
//!              [--max-in-flight N] [--connections 64]
//!              [--json out.json] [--svg out.svg]
//! overrun rules [--config FILE] [--sites REPORT.json] [--env NAME]
//! ```
//!
//! `diff` exit status: 0 no regression, 1 at least one site regressed, 2 bad
//! input (usage, unreadable file, not a report, unknown version).
//!
//! `check` exit status: 0 the policy file is valid (rules that match no site
//! of the report are warnings), 2 it is not (or the report is unreadable).
//!
//! `rules` writes Prometheus alerting rules for every objective on stdout
//! (see `rules.rs`); exit status 0, or 2 on bad input (no objective source,
//! an unreadable or invalid file).
//!
//! `load` exit status: 0 a breaking point was found inside the range, 1 the
//! lowest level already fails (or levels found did not hold when run
//! again, three times), 3 the highest level still passes, 2 bad
//! input (flags, URL, headers, body file, or nothing answering a first
//! request; no load is sent), 130 stopped by Ctrl-C (what was measured is
//! printed).

mod load;
mod rules;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use overrun::baseline::{Report, Tolerance, compare, notes};

/// Command-line tools for overrun reports.
#[derive(Debug, Parser)]
#[command(name = "overrun", version, about, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compares two JSON reports (OVERRUN_REPORT_FILE) site by site; exit
    /// status 1 when a site regressed beyond its tolerance.
    Diff(Diff),
    /// Validates a budget policy file; with `--sites`, prints each site of a
    /// JSON report with the budget the file gives it and where that comes
    /// from, and the rules that match no site.
    Check(Check),
    /// Loads an HTTP endpoint at rising rates (or callers) and finds its
    /// breaking point: the highest level that meets the pass lines.
    Load(Box<load::Load>),
    /// Writes Prometheus alerting rules for every objective (`p99 = "50ms"`,
    /// `error_rate = "1%"`) of a report's sites or a policy file:
    /// multi-window, multi-burn-rate alerts (page and ticket).
    Rules(rules::Rules),
}

#[derive(Debug, clap::Args)]
struct Check {
    /// The policy file (TOML).
    file: PathBuf,
    #[command(flatten)]
    env: EnvArg,
    /// A JSON report (`OVERRUN_REPORT_FILE`) whose sites to resolve.
    #[arg(long, value_name = "REPORT.json")]
    sites: Option<PathBuf>,
}

/// A site of a report: who it is and the budget it ran with.
struct ReportSite {
    name: String,
    module: String,
    /// The code's budget.
    budget: overrun::Budget,
    /// The budget in force when the report was written.
    in_force: overrun::Budget,
    source: String,
}

/// A budget from a report's JSON object (`budget` or `code_budget`).
fn budget_of(b: &serde_json::Value) -> overrun::Budget {
    use overrun::budget::Quantile;
    let field = |k: &str| b[k].as_u64().unwrap_or(overrun::budget::NONE);
    let mut budget = overrun::Budget::none()
        .with_time_ns(field("time_ns"))
        .with_allocs(field("allocs"))
        .with_bytes(field("bytes"))
        .with_poll_ns(field("poll_ns"))
        .with_error_rate_ppm(field("error_rate_ppm"))
        .with_window_ns(field("window_ns"));
    for q in Quantile::ALL {
        budget = budget.with_quantile_ns(q, field(&format!("{}_ns", q.key())));
    }
    budget
}

/// The environment to resolve a policy file's rules for: `--env`, else
/// `OVERRUN_ENV`.
#[derive(Debug, clap::Args)]
struct EnvArg {
    /// The environment to resolve the policy file's rules for.
    #[arg(long, value_name = "NAME", env = "OVERRUN_ENV")]
    env: Option<String>,
}

impl EnvArg {
    /// The environment; empty is none, as applications take it.
    fn get(&self) -> Option<&str> {
        self.env.as_deref().filter(|e| !e.is_empty())
    }
}

impl Check {
    fn run(&self) -> Result<ExitCode, String> {
        let policy = overrun::config::Policy::read(&self.file).map_err(|e| e.to_string())?;
        let rules = policy.rules();
        println!(
            "{}: valid ({} rule(s){})",
            self.file.display(),
            rules.len(),
            self.env
                .get()
                .map(|e| format!(", environment `{e}`"))
                .unwrap_or_default()
        );
        let Some(report) = &self.sites else {
            return Ok(ExitCode::SUCCESS);
        };
        let (sites, tasks) = read_report(report)?;
        let width = sites
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(8)
            .clamp(8, 48);
        println!(
            "  {:<width$} {:>9} {:>7} {:>9} {:>9}  from",
            "site", "time", "allocs", "bytes", "poll"
        );
        for site in &sites {
            let (budget, source) =
                policy.budget_for(&site.module, &site.name, site.budget, self.env.get());
            let from = match source {
                overrun::config::BudgetSource::Code => site.source.clone(),
                file => file.to_string(),
            };
            let limit = |v: u64, show: fn(u64) -> String| {
                if v == overrun::budget::NONE {
                    "-".to_owned()
                } else {
                    show(v)
                }
            };
            println!(
                "  {:<width$} {:>9} {:>7} {:>9} {:>9}  {from}",
                site.name,
                limit(budget.time_ns, overrun::units::fmt_ns),
                limit(budget.allocs, |n| n.to_string()),
                limit(budget.bytes, overrun::units::fmt_bytes),
                limit(budget.poll_ns, overrun::units::fmt_ns),
            );
        }
        for rule in &rules {
            let used = match rule.section {
                "task" => tasks.iter().any(|t| policy.rule_matches(rule.line, "", t)),
                _ => sites
                    .iter()
                    .any(|s| policy.rule_matches(rule.line, &s.module, &s.name)),
            };
            if !used {
                println!(
                    "warning: {}:{}: the [[{}]] rule `{}` matches no {} of {}",
                    self.file.display(),
                    rule.line,
                    rule.section,
                    rule.pattern,
                    if rule.section == "task" {
                        "task"
                    } else {
                        "site"
                    },
                    report.display()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The sites (those that ran and those that did not) and task names of a
/// JSON report.
fn read_report(path: &std::path::Path) -> Result<(Vec<ReportSite>, Vec<String>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the report: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a JSON report: {e}", path.display()))?;
    let mut sites = Vec::new();
    for key in ["sites", "never_ran"] {
        for s in json[key].as_array().into_iter().flatten() {
            let (Some(name), Some(module)) = (s["name"].as_str(), s["module"].as_str()) else {
                return Err(format!(
                    "{}: a site without a name or module",
                    path.display()
                ));
            };
            // The code's budget (a report made under a policy shows that
            // policy's in `budget`); older reports have only `budget`.
            let b = if s["code_budget"].is_object() {
                &s["code_budget"]
            } else {
                &s["budget"]
            };
            sites.push(ReportSite {
                name: name.to_owned(),
                module: module.to_owned(),
                budget: budget_of(b),
                in_force: budget_of(&s["budget"]),
                source: if s["code_budget"].is_object() {
                    "code".to_owned()
                } else {
                    s["budget_source"].as_str().unwrap_or("code").to_owned()
                },
            });
        }
    }
    if json.get("sites").is_none() {
        return Err(format!(
            "{}: not an overrun report (no `sites`)",
            path.display()
        ));
    }
    let tasks = json["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    Ok((sites, tasks))
}

#[derive(Debug, clap::Args)]
struct Diff {
    /// The baseline report (e.g. from the main branch).
    base: PathBuf,
    /// The report to judge (e.g. from the branch).
    head: PathBuf,
    /// Tolerance for every figure: `10%`, or the fraction `0.1` (the same);
    /// a figure's own flag wins, whatever the order.
    #[arg(long, value_name = "P", value_parser = percent)]
    tolerance: Option<f64>,
    /// Tolerance for the median.
    #[arg(long, value_name = "P", value_parser = percent)]
    tolerance_p50: Option<f64>,
    /// Tolerance for the 99th percentile.
    #[arg(long, value_name = "P", value_parser = percent)]
    tolerance_p99: Option<f64>,
    /// Tolerance for allocations per call.
    #[arg(long, value_name = "P", value_parser = percent)]
    tolerance_allocs: Option<f64>,
    /// Tolerance for bytes per call.
    #[arg(long, value_name = "P", value_parser = percent)]
    tolerance_bytes: Option<f64>,
    /// Calls each side needs before a site is judged; below it a site is
    /// `too few calls`, never `REGRESSED`.
    #[arg(long, value_name = "N", default_value_t = overrun::baseline::MIN_CALLS)]
    min_calls: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// A Markdown table, for a pull-request comment.
    Markdown,
}

/// A percentage such as `10%` or `10`, as a fraction.
/// A tolerance: `10%`, or a bare fraction below 1 (`0.1`, the same 10%). A
/// bare number of 1 or more is refused rather than guessed at (`10` could
/// mean 10% or 1000%; `1` meant 1% before).
fn percent(value: &str) -> Result<f64, String> {
    let value = value.trim();
    let parse = |n: &str| {
        n.trim()
            .parse::<f64>()
            .ok()
            .filter(|p| *p >= 0.0 && p.is_finite())
    };
    match value.strip_suffix('%') {
        Some(number) => parse(number)
            .map(|p| p / 100.0)
            .ok_or_else(|| format!("`{value}` is not a percentage such as 10%")),
        None => match parse(value) {
            Some(fraction) if fraction < 1.0 => Ok(fraction),
            Some(_) => Err(format!(
                "`{value}` is ambiguous: write a percentage such as {value}% or a fraction such as 0.1"
            )),
            None => Err(format!(
                "`{value}` is not a percentage such as 10% (or a fraction such as 0.1)"
            )),
        },
    }
}

impl Diff {
    /// The tolerances: `--tolerance` for every figure, then each figure's
    /// own flag over it (the order on the command line does not matter).
    fn tolerance(&self) -> Tolerance {
        let base = self
            .tolerance
            .map_or_else(Tolerance::default, Tolerance::uniform);
        let mut t = base;
        if let Some(p) = self.tolerance_p50 {
            t = t.with_p50(p);
        }
        if let Some(p) = self.tolerance_p99 {
            t = t.with_p99(p);
        }
        if let Some(p) = self.tolerance_allocs {
            t = t.with_allocs(p);
        }
        if let Some(p) = self.tolerance_bytes {
            t = t.with_bytes(p);
        }
        t.with_min_calls(self.min_calls)
    }

    fn run(&self) -> Result<ExitCode, String> {
        let base = Report::load(&self.base).map_err(|e| e.to_string())?;
        let head = Report::load(&self.head).map_err(|e| e.to_string())?;
        // What each side describes, on stderr: stdout stays the table.
        for line in notes(&base, &head) {
            eprintln!("overrun: {line}");
        }
        let diff = compare(&base, &head, &self.tolerance());
        match self.format {
            Format::Table => print!("{}", diff.render_table()),
            Format::Markdown => print!("{}", diff.render_markdown()),
        }
        Ok(if diff.regressed() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

fn main() -> ExitCode {
    // Usage errors exit with 2, `--help` and `--version` with 0 (clap's own).
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Diff(diff)) => diff.run(),
        Some(Command::Check(check)) => check.run(),
        Some(Command::Load(load)) => load.run(),
        Some(Command::Rules(rules)) => rules.run(),
        None => {
            // As before clap: no command prints the usage and succeeds.
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            return ExitCode::SUCCESS;
        }
    };
    result.unwrap_or_else(|message| {
        eprintln!("overrun: {message}");
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(args: &[&str]) -> Diff {
        let cli = Cli::try_parse_from(["overrun", "diff", "a.json", "b.json"].iter().chain(args))
            .unwrap();
        let Some(Command::Diff(diff)) = cli.command else {
            panic!("no command")
        };
        diff
    }

    #[test]
    fn a_specific_tolerance_wins_whatever_the_order() {
        let a = diff(&["--tolerance-p99", "50%", "--tolerance", "10%"]).tolerance();
        let b = diff(&["--tolerance", "10%", "--tolerance-p99", "50%"]).tolerance();
        assert_eq!((a.p99, a.p50), (0.5, 0.1));
        assert_eq!((b.p99, b.p50), (0.5, 0.1));
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value_as_before() {
        let d = diff(&["--tolerance", "10%", "--tolerance", "20%"]);
        assert_eq!(d.tolerance().p50, 0.2);
    }

    #[test]
    fn a_tolerance_is_a_percentage_or_a_fraction_never_a_guess() {
        assert_eq!(percent("10%"), Ok(0.1));
        assert_eq!(percent("0.1"), Ok(0.1));
        assert_eq!(percent("10 %"), Ok(0.1));
        assert_eq!(percent("0"), Ok(0.0));
        assert!(percent("1").unwrap_err().contains("ambiguous"));
        assert!(percent("10").unwrap_err().contains("ambiguous"));
        assert!(percent("lots").is_err());
    }

    #[test]
    fn equals_form_and_defaults() {
        let d = diff(&["--tolerance=20%", "--format=markdown"]);
        assert_eq!(d.tolerance().allocs, 0.2);
        assert_eq!(d.format, Format::Markdown);
        assert_eq!(diff(&[]).tolerance().p99, 0.1);
    }

    #[test]
    fn a_bad_percentage_is_a_usage_error() {
        let err =
            Cli::try_parse_from(["overrun", "diff", "a", "b", "--tolerance", "lots"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not a percentage"), "{err}");
    }

    #[test]
    fn the_command_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
