//! The budget literal syntax of [overrun](https://docs.rs/overrun): durations
//! such as `"250us"` or `"1m 30s"` and sizes such as `"64KiB"` or `"100MB"`.
//!
//! One parser serves both sides: `overrun-macros` calls it at compile time, so a
//! literal that does not parse is a compile error on the literal, and `overrun`
//! calls it at run time (configuration, test budgets), so both accept exactly
//! the same text. The two share the budget's keys ([`BUDGET_KEYS`]) and the
//! shortest objective window ([`MIN_WINDOW_NS`]) from here too.
//!
//! # Quick start
//!
//! ```
//! use overrun_literal::{parse_duration, parse_size};
//!
//! assert_eq!(parse_duration("250us"), Ok(250_000));
//! assert_eq!(parse_duration("1.5ms"), Ok(1_500_000));
//! assert_eq!(parse_duration("1m 30s"), Ok(90_000_000_000));
//! assert_eq!(parse_size("64KiB"), Ok(65_536));
//! assert_eq!(parse_size("100MB"), Ok(100_000_000));
//! assert_eq!(parse_duration("2sec 5min"), parse_duration("302s"));
//! assert!(parse_duration("10 parsecs").is_err());
//! ```
//!
//! Error-rate objectives are percentages, read in parts per million:
//! `parse_percent("0.1%")` is `Ok(1_000)`.
//!
//! # Syntax
//!
//! A duration is one or more `<number><unit>` terms, optionally separated by
//! spaces, whose values add up. The number is a decimal with an optional
//! fraction; the result must be a whole number of nanoseconds. Units: `ns`,
//! `us` (also `µs`, `μs`), `ms`, `s` (also `sec`), `m` (also `min`), `h`.
//!
//! A size is one `<number><unit>` term. Units: `B`; decimal `kB` (also `KB`),
//! `MB`, `GB`, `TB`; binary `KiB`, `MiB`, `GiB`, `TiB`.
//!
//! # Cost model
//!
//! Parsing is linear in the length of the text and allocates only to build an
//! error message. It runs at compile time for attribute literals and never on
//! an instrumented call path.

use std::fmt;

/// Why a literal did not parse. `Display` gives a message meant to be shown as
/// is, next to the literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralError {
    message: String,
}

impl LiteralError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The human-readable reason.
    ///
    /// ```
    /// let err = overrun_literal::parse_duration("5").unwrap_err();
    /// assert!(err.message().contains("unit"));
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LiteralError {}

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("sec", 1_000_000_000),
    ("m", 60_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

const DURATION_HINT: &str = "ns, us, ms, s, m, h (e.g. \"250us\", \"1.5ms\", \"3s\")";
const SIZE_HINT: &str = "B, kB, MB, GB, KiB, MiB, GiB (e.g. \"64KiB\", \"100MB\")";

/// A budget's keys, in one order: a policy file's `[[budget]]` keys.
/// `#[measure]` and a span's `overrun.` fields call the first `budget`.
///
/// ```
/// assert_eq!(overrun_literal::BUDGET_KEYS[0], "time");
/// assert!(overrun_literal::BUDGET_KEYS.contains(&"p99"));
/// ```
pub const BUDGET_KEYS: [&str; 11] = [
    "time",
    "allocs",
    "bytes",
    "poll",
    "p50",
    "p90",
    "p95",
    "p99",
    "p999",
    "window",
    "error_rate",
];

/// The shortest window an objective can have, in nanoseconds: one second
/// (a window is evaluated ten times, off the call path). The attribute
/// refuses a shorter one at compile time, the runtime at load.
///
/// ```
/// assert_eq!(overrun_literal::MIN_WINDOW_NS, 1_000_000_000);
/// ```
pub const MIN_WINDOW_NS: u64 = 1_000_000_000;

/// Parses a duration literal into nanoseconds.
///
/// ```
/// assert_eq!(overrun_literal::parse_duration("3s"), Ok(3_000_000_000));
/// assert_eq!(overrun_literal::parse_duration("1h 2m"), Ok(3_720_000_000_000));
/// ```
///
/// # Errors
///
/// An empty text, a number without a unit, an unknown unit, a fraction finer
/// than a nanosecond, or a value over `u64::MAX` nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, LiteralError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(LiteralError::new(format!(
            "empty duration; expected a number and a unit: {DURATION_HINT}"
        )));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (value, after) = term(rest, DURATION_UNITS, "duration", DURATION_HINT)?;
        total = total
            .checked_add(value)
            .ok_or_else(|| LiteralError::new(format!("duration `{text}` is too large")))?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// Parses a size literal into bytes.
///
/// ```
/// assert_eq!(overrun_literal::parse_size("1.5KiB"), Ok(1536));
/// assert_eq!(overrun_literal::parse_size("512B"), Ok(512));
/// ```
///
/// # Errors
///
/// An empty text, a number without a unit, an unknown unit, a fraction of a
/// byte, a value over `u64::MAX` bytes, or more than one term.
pub fn parse_size(text: &str) -> Result<u64, LiteralError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(LiteralError::new(format!(
            "empty size; expected a number and a unit: {SIZE_HINT}"
        )));
    }
    let (value, rest) = term(trimmed, SIZE_UNITS, "size", SIZE_HINT)?;
    if !rest.trim().is_empty() {
        return Err(LiteralError::new(format!(
            "unexpected `{}` after the size; a size is one number and one unit",
            rest.trim()
        )));
    }
    Ok(value)
}

/// Parses a percentage literal (`"1%"`, `"0.1%"`, `"99.9 %"`) into parts per
/// million: an error-rate objective.
///
/// ```
/// assert_eq!(overrun_literal::parse_percent("1%"), Ok(10_000));
/// assert_eq!(overrun_literal::parse_percent("0.05%"), Ok(500));
/// assert!(overrun_literal::parse_percent("1").is_err());
/// assert!(overrun_literal::parse_percent("120%").is_err());
/// ```
///
/// # Errors
///
/// No `%` sign, a number that is not a plain decimal, more than 100%, or a
/// fraction finer than a part per million (`"0.00001%"`).
pub fn parse_percent(text: &str) -> Result<u64, LiteralError> {
    let trimmed = text.trim();
    let Some(number) = trimmed.strip_suffix('%').map(str::trim_end) else {
        return Err(LiteralError::new(format!(
            "`{trimmed}` is not a percentage; write it with a `%` sign, as in \"1%\" or \"0.1%\""
        )));
    };
    if number.starts_with('-') {
        return Err(LiteralError::new(format!(
            "a percentage cannot be negative: `{trimmed}`"
        )));
    }
    if number.is_empty()
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
    {
        return Err(LiteralError::new(format!(
            "expected a number before `%` in `{trimmed}`, as in \"1%\" or \"0.1%\""
        )));
    }
    // One percent is 10 000 parts per million.
    let ppm = scaled(number, 10_000).ok_or_else(|| {
        LiteralError::new(format!(
            "`{trimmed}` is finer than a part per million (0.0001%) or is not a number"
        ))
    })?;
    if ppm > 1_000_000 {
        return Err(LiteralError::new(format!("`{trimmed}` is over 100%")));
    }
    Ok(ppm)
}

/// Parses one `<number><unit>` term at the start of `text`; returns its value
/// in base units and the text after it.
fn term<'a>(
    text: &'a str,
    units: &[(&str, u64)],
    what: &str,
    hint: &str,
) -> Result<(u64, &'a str), LiteralError> {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let number = &text[..number_end];
    if number.is_empty() {
        let shown = text.split_whitespace().next().unwrap_or(text);
        return Err(LiteralError::new(if shown.starts_with('-') {
            format!("a {what} cannot be negative: `{text}`")
        } else {
            format!("expected a number at `{shown}`; a {what} is a number and a unit: {hint}")
        }));
    }
    let after_number = text[number_end..].trim_start();
    let unit_end = after_number
        .find(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
        .unwrap_or(after_number.len());
    let unit = &after_number[..unit_end];
    if unit.is_empty() {
        return Err(LiteralError::new(format!(
            "`{number}` has no unit; expected one of {hint}"
        )));
    }
    let Some(&(_, scale)) = units.iter().find(|(name, _)| *name == unit) else {
        return Err(LiteralError::new(format!(
            "unknown {what} unit `{unit}`; expected one of {hint}"
        )));
    };
    let value = scaled(number, scale).ok_or_else(|| {
        LiteralError::new(format!(
            "`{number}{unit}` is not a whole number of {} or is too large",
            if what == "duration" {
                "nanoseconds"
            } else {
                "bytes"
            }
        ))
    })?;
    Ok((value, &after_number[unit_end..]))
}

/// `number × scale` with exact decimal arithmetic; `None` on overflow, a
/// malformed number, or a result that is not whole.
fn scaled(number: &str, scale: u64) -> Option<u64> {
    let digits: String = number.chars().filter(|&c| c != '_').collect();
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits.as_str(), ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(scale)?;
    let fraction = fraction.trim_end_matches('0');
    if !fraction.is_empty() {
        if fraction.len() > 18 {
            return None;
        }
        let denominator = 10u128.pow(fraction.len() as u32);
        let numerator = u128::from(fraction.parse::<u64>().ok()?) * u128::from(scale);
        if numerator % denominator != 0 {
            return None;
        }
        value = value.checked_add(u64::try_from(numerator / denominator).ok()?)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("100%"), Ok(1_000_000));
        assert_eq!(parse_percent(" 2.5 % "), Ok(25_000));
        assert_eq!(parse_percent("0%"), Ok(0));
        assert_eq!(parse_percent("0.0001%"), Ok(1));
        for bad in [
            "", "%", "1", "-1%", "0.00001%", "100.5%", "1e2%", "1.2.3%", "x%",
        ] {
            let err = parse_percent(bad).unwrap_err();
            assert!(!err.message().is_empty(), "{bad:?}");
        }
        assert!(
            parse_percent("1")
                .unwrap_err()
                .message()
                .contains("`%` sign")
        );
        assert!(
            parse_percent("100.5%")
                .unwrap_err()
                .message()
                .contains("over 100%")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0ns"), Ok(0));
        assert_eq!(parse_duration("17ns"), Ok(17));
        assert_eq!(parse_duration("250us"), Ok(250_000));
        assert_eq!(parse_duration("250µs"), Ok(250_000));
        assert_eq!(parse_duration("2ms"), Ok(2_000_000));
        assert_eq!(parse_duration(" 2 ms "), Ok(2_000_000));
        assert_eq!(parse_duration("0.5s"), Ok(500_000_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("1_000ms"), Ok(1_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("2min"), Ok(120_000_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "",
            "10",
            "10 parsecs",
            "ms",
            "-1ms",
            "1.5ns",
            "1..5ms",
            "99999999999999999999s",
            "6000000h",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(!err.message().is_empty());
        }
        assert!(
            parse_duration("10 parsecs")
                .unwrap_err()
                .message()
                .contains("unknown duration unit `parsecs`")
        );
        assert!(
            parse_duration("-1ms")
                .unwrap_err()
                .message()
                .contains("negative")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0B"), Ok(0));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("64kB"), Ok(64_000));
        assert_eq!(parse_size("100MiB"), Ok(104_857_600));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("2 TB"), Ok(2_000_000_000_000));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "64",
            "64 kib",
            "0.5B",
            "1MiB 2KiB",
            "-3KiB",
            "20000000TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
