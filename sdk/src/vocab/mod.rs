//! Layer 1, the shared vocabulary: units (durations and sizes, parsed and
//! formatted), [`budget::Budget`] and [`kind::ViolationKind`]. Depends on
//! nothing else in the crate; every other layer speaks it.

pub mod budget;
pub(crate) mod kind;
pub mod units;
