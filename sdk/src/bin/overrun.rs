//! `overrun` — command-line tools for overrun reports.
//!
//! ```text
//! overrun diff <base.json> <head.json> [--tolerance 10%] [--tolerance-p50 P]
//!              [--tolerance-p99 P] [--tolerance-allocs P] [--tolerance-bytes P]
//!              [--min-calls N] [--format table|markdown]
//! ```
//!
//! Exit status: 0 no regression, 1 at least one site regressed, 2 bad input
//! (usage, unreadable file, not a report, unknown version).

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
