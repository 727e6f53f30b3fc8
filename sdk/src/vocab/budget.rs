//! Budgets: the limits a call, a poll or a whole run is checked against.
//!
//! Every limit is a plain `u64`; [`NONE`] (`u64::MAX`) means "no limit", so a
//! check is always one comparison, with no `Option` to unwrap. Literals are
//! parsed by the same code at compile time (attribute arguments) and at run
//! time ([`parse_duration`], [`parse_size`]).

pub use super::units::{LiteralError, parse_duration, parse_percent, parse_size};

/// The "no limit" value of every budget field.
pub const NONE: u64 = u64::MAX;

/// The limits of one instrumented function. Built by `#[measure]` at compile
/// time; `const` so it can live in the function's `static` site.
///
/// ```
/// use overrun::budget::{Budget, NONE};
///
/// const B: Budget = Budget::none().with_time_ns(2_000_000).with_allocs(8);
/// assert_eq!(B.time_ns, 2_000_000);
/// assert_eq!(B.bytes, NONE);
/// assert!(B.is_set());
/// assert!(!Budget::none().is_set());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Wall time of one call (for `async fn`: first poll to completion), ns.
    pub time_ns: u64,
    /// Heap allocations made during one call, callees included.
    pub allocs: u64,
    /// Heap bytes allocated during one call, callees included.
    pub bytes: u64,
    /// One poll of an `async fn`, ns.
    pub poll_ns: u64,
    /// Objectives over a window of calls (`p99 = "50ms"`): checked off the
    /// call path, by an evaluator thread.
    pub objectives: Objectives,
}

/// A latency quantile an objective can be set on.
///
/// ```
/// use overrun::budget::Quantile;
/// assert_eq!(Quantile::P99.key(), "p99");
/// assert_eq!(Quantile::P999.label(), "0.999");
/// assert_eq!(Quantile::P95.fraction(), 0.95);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantile {
    /// The median.
    P50,
    /// The 90th percentile.
    P90,
    /// The 95th percentile.
    P95,
    /// The 99th percentile.
    P99,
    /// The 99.9th percentile.
    P999,
}

impl Quantile {
    /// Every quantile, in [`Objectives::quantiles`] order.
    pub const ALL: [Quantile; 5] = [Self::P50, Self::P90, Self::P95, Self::P99, Self::P999];

    /// The attribute's, the policy file's and the span field's key (`p99`).
    pub const fn key(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P95 => "p95",
            Self::P99 => "p99",
            Self::P999 => "p999",
        }
    }

    /// The `quantile` label of the exported series (`0.99`).
    pub const fn label(self) -> &'static str {
        match self {
            Self::P50 => "0.5",
            Self::P90 => "0.9",
            Self::P95 => "0.95",
            Self::P99 => "0.99",
            Self::P999 => "0.999",
        }
    }

    /// The quantile as a fraction (`0.99`).
    pub const fn fraction(self) -> f64 {
        match self {
            Self::P50 => 0.5,
            Self::P90 => 0.9,
            Self::P95 => 0.95,
            Self::P99 => 0.99,
            Self::P999 => 0.999,
        }
    }
}

/// One objective of a site: a latency quantile, or the error rate, over
/// the site's window.
///
/// ```
/// use overrun::budget::{Objective, Quantile};
/// assert_eq!(Objective::Quantile(Quantile::P99).label(), "0.99");
/// assert_eq!(Objective::ErrorRate.label(), "error_rate");
/// assert_eq!(Objective::ErrorRate.unit(), "ppm");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Objective {
    /// The window's quantile stays at or under the limit (ns).
    Quantile(Quantile),
    /// The window's errors stay at or under the limit, in parts per
    /// million of its calls.
    ErrorRate,
}

impl Objective {
    /// The attribute's key (`p99`, `error_rate`).
    pub const fn key(self) -> &'static str {
        match self {
            Self::Quantile(q) => q.key(),
            Self::ErrorRate => "error_rate",
        }
    }

    /// The `quantile` label of the exported series: the quantile
    /// (`0.99`), or `error_rate`.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Quantile(q) => q.label(),
            Self::ErrorRate => "error_rate",
        }
    }

    /// The unit of the limit and of the observed figure: `ns` or `ppm`.
    pub const fn unit(self) -> &'static str {
        match self {
            Self::Quantile(_) => "ns",
            Self::ErrorRate => "ppm",
        }
    }
}

/// The window objectives default to: five minutes.
///
/// ```
/// assert_eq!(overrun::budget::DEFAULT_WINDOW_NS, 300_000_000_000);
/// ```
pub const DEFAULT_WINDOW_NS: u64 = 300_000_000_000;

/// The shortest window an objective can have: one second (a window is
/// evaluated ten times, off the call path). The attribute and the runtime
/// take it from the literal parser, `overrun_literal`.
///
/// ```
/// assert_eq!(overrun::budget::MIN_WINDOW_NS, 1_000_000_000);
/// ```
pub const MIN_WINDOW_NS: u64 = overrun_literal::MIN_WINDOW_NS;

/// A site's objectives: per quantile and for the error rate, the most its
/// window's figure may be ([`NONE`]: no objective), and the window.
///
/// ```
/// use overrun::budget::{Budget, Objective, Quantile};
///
/// const B: Budget = Budget::none()
///     .with_quantile_ns(Quantile::P99, 50_000_000)
///     .with_error_rate_ppm(10_000);
/// let targets: Vec<_> = B.objectives.targets().collect();
/// assert_eq!(targets, [
///     (Objective::Quantile(Quantile::P99), 50_000_000),
///     (Objective::ErrorRate, 10_000),
/// ]);
/// assert_eq!(B.objectives.window_ns(), overrun::budget::DEFAULT_WINDOW_NS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Objectives {
    /// Per quantile of [`Quantile::ALL`], in order: ns, or [`NONE`].
    pub quantiles: [u64; 5],
    /// Errors per million calls, or [`NONE`].
    pub error_rate_ppm: u64,
    /// The window, ns; [`NONE`] for [`DEFAULT_WINDOW_NS`].
    pub window_ns: u64,
}

impl Objectives {
    /// No objective.
    pub const fn none() -> Self {
        Self {
            quantiles: [NONE; 5],
            error_rate_ppm: NONE,
            window_ns: NONE,
        }
    }

    /// Whether any objective is set (a window alone is none).
    pub const fn is_set(&self) -> bool {
        let mut i = 0;
        while i < self.quantiles.len() {
            if self.quantiles[i] != NONE {
                return true;
            }
            i += 1;
        }
        self.error_rate_ppm != NONE
    }

    /// The window in force, ns.
    pub const fn window_ns(&self) -> u64 {
        if self.window_ns == NONE || self.window_ns == 0 {
            DEFAULT_WINDOW_NS
        } else {
            self.window_ns
        }
    }

    /// Every objective set, with its limit (ns, or ppm for the error
    /// rate), quantiles first.
    pub fn targets(&self) -> impl Iterator<Item = (Objective, u64)> + '_ {
        Quantile::ALL
            .iter()
            .zip(self.quantiles)
            .map(|(&q, limit)| (Objective::Quantile(q), limit))
            .chain([(Objective::ErrorRate, self.error_rate_ppm)])
            .filter(|&(_, limit)| limit != NONE)
    }
}

impl Default for Objectives {
    fn default() -> Self {
        Self::none()
    }
}

impl Budget {
    /// No limit at all.
    pub const fn none() -> Self {
        Self {
            time_ns: NONE,
            allocs: NONE,
            bytes: NONE,
            poll_ns: NONE,
            objectives: Objectives::none(),
        }
    }

    /// With a time limit per call.
    #[must_use]
    pub const fn with_time_ns(mut self, ns: u64) -> Self {
        self.time_ns = ns;
        self
    }

    /// With an allocation-count limit per call.
    #[must_use]
    pub const fn with_allocs(mut self, allocs: u64) -> Self {
        self.allocs = allocs;
        self
    }

    /// With an allocated-bytes limit per call.
    #[must_use]
    pub const fn with_bytes(mut self, bytes: u64) -> Self {
        self.bytes = bytes;
        self
    }

    /// With a limit on a single poll.
    #[must_use]
    pub const fn with_poll_ns(mut self, ns: u64) -> Self {
        self.poll_ns = ns;
        self
    }

    /// With an objective on a quantile over the window: the window's
    /// `quantile` at most `ns`.
    #[must_use]
    pub const fn with_quantile_ns(mut self, quantile: Quantile, ns: u64) -> Self {
        self.objectives.quantiles[quantile as usize] = ns;
        self
    }

    /// With an objective on the error rate over the window, in parts per
    /// million of the calls (`10_000` is 1%).
    #[must_use]
    pub const fn with_error_rate_ppm(mut self, ppm: u64) -> Self {
        self.objectives.error_rate_ppm = ppm;
        self
    }

    /// With the objectives' window (five minutes unless set).
    #[must_use]
    pub const fn with_window_ns(mut self, ns: u64) -> Self {
        self.objectives.window_ns = ns;
        self
    }

    /// Sets field `field` to `value`, in the order of [`FIELDS`] (the
    /// attribute's, the policy file's and the span fields' keys).
    pub(crate) fn set_field(&mut self, field: usize, value: u64) {
        match field {
            TIME_FIELD => self.time_ns = value,
            ALLOCS_FIELD => self.allocs = value,
            BYTES_FIELD => self.bytes = value,
            POLL_FIELD => self.poll_ns = value,
            QUANTILE_FIELDS..WINDOW_FIELD => {
                self.objectives.quantiles[field - QUANTILE_FIELDS] = value;
            }
            WINDOW_FIELD => self.objectives.window_ns = value,
            _ => self.objectives.error_rate_ppm = value,
        }
    }

    /// The time budget and the latency objectives' limits, ns, ascending,
    /// each once: the bounds each site's duration histogram is exact at
    /// (the exporters add them to its bucket bounds).
    pub(crate) fn thresholds_ns(&self) -> Vec<u64> {
        let mut all: Vec<u64> = std::iter::once(self.time_ns)
            .chain(
                self.objectives
                    .targets()
                    .filter(|(o, _)| matches!(o, Objective::Quantile(_)))
                    .map(|(_, ns)| ns),
            )
            .filter(|&ns| ns != NONE && ns > 0)
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Whether any limit or objective is set.
    pub const fn is_set(&self) -> bool {
        self.time_ns != NONE
            || self.allocs != NONE
            || self.bytes != NONE
            || self.poll_ns != NONE
            || self.objectives.is_set()
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::none()
    }
}

/// The fields of a budget, in [`Budget::set_field`] order: the policy
/// file's keys (the attribute and a span's field call the first `budget`),
/// shared with the attribute through `overrun_literal`.
pub(crate) const FIELDS: [&str; 11] = overrun_literal::BUDGET_KEYS;

// The budgets' fields, in `FIELDS` order.
pub(crate) const TIME_FIELD: usize = 0;
pub(crate) const ALLOCS_FIELD: usize = 1;
pub(crate) const BYTES_FIELD: usize = 2;
pub(crate) const POLL_FIELD: usize = 3;
/// The first quantile's field; the others follow in [`Quantile`] order.
const QUANTILE_FIELDS: usize = 4;
/// The field of the objectives' window.
pub(crate) const WINDOW_FIELD: usize = QUANTILE_FIELDS + Quantile::ALL.len();
const ERROR_RATE_FIELD: usize = WINDOW_FIELD + 1;
const _: () = assert!(FIELDS.len() == ERROR_RATE_FIELD + 1);

/// The field of an objective, in [`FIELDS`] order.
pub(crate) const fn field_of(objective: Objective) -> usize {
    match objective {
        Objective::Quantile(q) => QUANTILE_FIELDS + q as usize,
        Objective::ErrorRate => ERROR_RATE_FIELD,
    }
}

/// `Some(limit)` unless the limit is [`NONE`].
pub(crate) fn limit(value: u64) -> Option<u64> {
    (value != NONE).then_some(value)
}
