//! Layer 5, the read side: everything that reads the recorded figures.
//! [`snapshot`] is the data model; [`export`] turns it into the metric
//! schema both exporters encode; [`report`] renders it as a table or JSON.

pub(crate) mod ending;
pub mod export;
pub mod report;
pub(crate) mod snapshot;
