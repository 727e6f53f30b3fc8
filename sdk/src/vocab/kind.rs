//! The kinds of budget a call, a task or a run can break.

/// What budget was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ViolationKind {
    /// A call took longer than its `budget`.
    Time,
    /// A call made more heap allocations than `allocs`.
    Allocs,
    /// A call allocated more heap bytes than `bytes`.
    Bytes,
    /// A single poll of an `async fn` took longer than `poll`.
    Poll,
    /// A task lived longer than its `lifetime` budget.
    Lifetime,
    /// The process' peak resident memory exceeded `memory`.
    Memory,
    /// A service-level objective (such as a p99 over a window) was missed:
    /// raised by the objectives' evaluator once per crossing
    /// ([`crate::objective`]); [`crate::Violation::objective`] says which.
    Objective,
    /// A thread waited longer than a lock's wait budget to acquire it
    /// ([`crate::sync`]).
    Wait,
    /// A lock was held longer than its hold budget ([`crate::sync`]).
    Hold,
}

impl ViolationKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ViolationKind; 9] = [
        Self::Time,
        Self::Allocs,
        Self::Bytes,
        Self::Poll,
        Self::Lifetime,
        Self::Memory,
        Self::Objective,
        Self::Wait,
        Self::Hold,
    ];

    /// The label value used in reports and metrics.
    ///
    /// ```
    /// assert_eq!(overrun::ViolationKind::Poll.as_str(), "poll");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Allocs => "allocs",
            Self::Bytes => "bytes",
            Self::Poll => "poll",
            Self::Lifetime => "lifetime",
            Self::Memory => "memory",
            Self::Objective => "objective",
            Self::Wait => "wait",
            Self::Hold => "hold",
        }
    }

    /// The unit of `observed` and `limit`: `"ns"`, `"allocs"` or `"bytes"`.
    ///
    /// ```
    /// assert_eq!(overrun::ViolationKind::Memory.unit(), "bytes");
    /// ```
    pub const fn unit(self) -> &'static str {
        match self {
            Self::Time
            | Self::Poll
            | Self::Lifetime
            | Self::Objective
            | Self::Wait
            | Self::Hold => "ns",
            Self::Allocs => "allocs",
            Self::Bytes | Self::Memory => "bytes",
        }
    }

    /// Index of the per-site counter (time, allocs, bytes, poll).
    pub(crate) const fn site_slot(self) -> Option<usize> {
        match self {
            Self::Time => Some(0),
            Self::Allocs => Some(1),
            Self::Bytes => Some(2),
            Self::Poll => Some(3),
            _ => None,
        }
    }
}

impl std::fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
