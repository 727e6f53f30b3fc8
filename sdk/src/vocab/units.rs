//! Units: durations and sizes, read from the attribute literals' syntax
//! (`"1.5ms"`, `"64KiB"`) and written for people (`1.50ms`, `64.0KiB`).
//!
//! The parsers are the ones the macros run at compile time, so a literal
//! accepted by `#[measure]` is accepted here and means the same.
//!
//! ```
//! use overrun::units::{fmt_ns, parse_duration};
//!
//! assert_eq!(parse_duration("1.5ms"), Ok(1_500_000));
//! assert_eq!(fmt_ns(1_500_000), "1.50ms");
//! ```

use std::time::Duration;

pub use overrun_literal::{LiteralError, parse_duration, parse_percent, parse_size};

/// Something that can be read as a duration budget: a literal such as
/// `"50us"` (same syntax as the attributes) or a [`Duration`].
pub trait TimeLimit {
    /// The limit in nanoseconds. Panics on a malformed literal, naming it.
    fn nanos(self) -> u64;
}

impl TimeLimit for &str {
    #[track_caller]
    fn nanos(self) -> u64 {
        parse_duration(self).unwrap_or_else(|e| panic!("invalid duration budget {self:?}: {e}"))
    }
}

impl TimeLimit for Duration {
    fn nanos(self) -> u64 {
        u64::try_from(self.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Something that can be read as a size budget: a literal such as `"4KiB"`
/// or a number of bytes.
pub trait SizeLimit {
    /// The limit in bytes. Panics on a malformed literal, naming it.
    fn bytes(self) -> u64;
}

impl SizeLimit for &str {
    #[track_caller]
    fn bytes(self) -> u64 {
        parse_size(self).unwrap_or_else(|e| panic!("invalid size budget {self:?}: {e}"))
    }
}

impl SizeLimit for u64 {
    fn bytes(self) -> u64 {
        self
    }
}

/// Formats nanoseconds for people: `812ns`, `1.25µs`, `3.40ms`, `2.00s`.
///
/// ```
/// assert_eq!(overrun::units::fmt_ns(1_250), "1.25µs");
/// assert_eq!(overrun::units::fmt_ns(90_000_000_000), "90.0s");
/// ```
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => precise(v / 1e3, "µs"),
        1_000_000..1_000_000_000 => precise(v / 1e6, "ms"),
        _ => precise(v / 1e9, "s"),
    }
}

/// Formats bytes for people: `512B`, `1.50KiB`, `12.3MiB`.
///
/// ```
/// assert_eq!(overrun::units::fmt_bytes(1536), "1.50KiB");
/// ```
pub fn fmt_bytes(bytes: u64) -> String {
    let v = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes}B"),
        1024..1_048_576 => precise(v / 1024.0, "KiB"),
        1_048_576..1_073_741_824 => precise(v / 1_048_576.0, "MiB"),
        _ => precise(v / 1_073_741_824.0, "GiB"),
    }
}

/// Formats an objective's figure for people: a duration for a quantile,
/// a percentage for the error rate (given in parts per million).
///
/// ```
/// use overrun::budget::{Objective, Quantile};
/// use overrun::units::fmt_objective;
/// assert_eq!(fmt_objective(Objective::Quantile(Quantile::P99), 50_000_000), "50.0ms");
/// assert_eq!(fmt_objective(Objective::ErrorRate, 12_500), "1.25%");
/// ```
pub fn fmt_objective(objective: crate::vocab::budget::Objective, value: u64) -> String {
    match objective {
        crate::vocab::budget::Objective::Quantile(_) => fmt_ns(value),
        crate::vocab::budget::Objective::ErrorRate => {
            let percent = value as f64 / 10_000.0;
            if percent >= 10.0 || percent == percent.trunc() {
                format!("{percent:.0}%")
            } else if percent >= 1.0 {
                format!("{percent:.2}%")
            } else {
                format!("{percent:.3}%")
            }
        }
    }
}

fn precise(v: f64, unit: &str) -> String {
    if v >= 100.0 {
        format!("{v:.0}{unit}")
    } else if v >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}
