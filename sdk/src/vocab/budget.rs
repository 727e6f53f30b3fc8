//! Budgets: the limits a call, a poll or a whole run is checked against.
//!
//! Every limit is a plain `u64`; [`NONE`] (`u64::MAX`) means "no limit", so a
//! check is always one comparison, with no `Option` to unwrap. Literals are
//! parsed by the same code at compile time (attribute arguments) and at run
//! time ([`parse_duration`], [`parse_size`]).

pub use super::units::{LiteralError, parse_duration, parse_size};

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
pub struct Budget {
    /// Wall time of one call (for `async fn`: first poll to completion), ns.
    pub time_ns: u64,
    /// Heap allocations made during one call, callees included.
    pub allocs: u64,
    /// Heap bytes allocated during one call, callees included.
    pub bytes: u64,
    /// One poll of an `async fn`, ns.
    pub poll_ns: u64,
}

impl Budget {
    /// No limit at all.
    pub const fn none() -> Self {
        Self {
            time_ns: NONE,
            allocs: NONE,
            bytes: NONE,
            poll_ns: NONE,
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

    /// Sets field `field` — 0 time, 1 allocs, 2 bytes, 3 poll, the order of
    /// the attribute's and the policy file's keys — to `value`.
    pub(crate) fn set_field(&mut self, field: usize, value: u64) {
        match field {
            0 => self.time_ns = value,
            1 => self.allocs = value,
            2 => self.bytes = value,
            _ => self.poll_ns = value,
        }
    }

    /// Whether any limit is set.
    pub const fn is_set(&self) -> bool {
        self.time_ns != NONE || self.allocs != NONE || self.bytes != NONE || self.poll_ns != NONE
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::none()
    }
}

/// `Some(limit)` unless the limit is [`NONE`].
pub(crate) fn limit(value: u64) -> Option<u64> {
    (value != NONE).then_some(value)
}
