//! `overrun` — command-line tools for overrun reports.
//!
//! ```text
//! overrun diff <base.json> <head.json> [--tolerance 10%] [--tolerance-p50 P]
//!              [--tolerance-p99 P] [--tolerance-allocs P] [--tolerance-bytes P]
//!              [--format table|markdown]
//! ```
//!
//! Exit status: 0 no regression, 1 at least one site regressed, 2 bad input
//! (usage, unreadable file, not a report, unknown version).

use std::process::ExitCode;

use overrun::baseline::{Report, Tolerance, compare};

const USAGE: &str = "usage: overrun diff <base.json> <head.json> [--tolerance 10%] \
[--tolerance-p50 P] [--tolerance-p99 P] [--tolerance-allocs P] [--tolerance-bytes P] \
[--format table|markdown]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("overrun: {message}");
            ExitCode::from(2)
        }
    }
}

fn percent(flag: &str, value: Option<&String>) -> Result<f64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value such as 10%"))?;
    let number = value.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if p >= 0.0 && p.is_finite() => Ok(p / 100.0),
        _ => Err(format!("{flag}: `{value}` is not a percentage such as 10%")),
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        Some("diff") => {}
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => return Err(format!("unknown command `{other}`\n{USAGE}")),
    }
    let mut files = Vec::new();
    let mut tolerance = Tolerance::default();
    let mut markdown = false;
    let mut it = args[1..].iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tolerance" => tolerance = Tolerance::uniform(percent(arg, it.next())?),
            "--tolerance-p50" => tolerance.p50 = percent(arg, it.next())?,
            "--tolerance-p99" => tolerance.p99 = percent(arg, it.next())?,
            "--tolerance-allocs" => tolerance.allocs = percent(arg, it.next())?,
            "--tolerance-bytes" => tolerance.bytes = percent(arg, it.next())?,
            "--format" => match it.next().map(String::as_str) {
                Some("table") => markdown = false,
                Some("markdown") => markdown = true,
                other => {
                    return Err(format!(
                        "--format takes `table` or `markdown`, not `{}`",
                        other.unwrap_or("")
                    ));
                }
            },
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option `{flag}`\n{USAGE}"));
            }
            file => files.push(file.to_string()),
        }
    }
    let [base, head] = files.as_slice() else {
        return Err(format!("diff takes two report files\n{USAGE}"));
    };
    let base = Report::load(base).map_err(|e| e.to_string())?;
    let head = Report::load(head).map_err(|e| e.to_string())?;
    let diff = compare(&base, &head, &tolerance);
    if markdown {
        print!("{}", diff.render_markdown());
    } else {
        print!("{}", diff.render_table());
    }
    Ok(if diff.regressed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
