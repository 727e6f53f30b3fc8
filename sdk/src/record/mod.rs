//! Layer 2, recording: the hot path. The clock, [`alloc::CountingAlloc`],
//! per-thread shards and histograms ([`stats`]), one `static` [`site::Site`]
//! per instrumented place, the guard and future wrapper `#[measure]` expands
//! to, and the violation events a broken budget raises.
//!
//! Nothing here reads across threads except [`stats`]' merge, which the read
//! side calls, and the [`objective`] evaluator's thread, which merges the
//! sites with objectives every tick; a measured call touches only its own
//! thread's cells.

pub mod alloc;
pub mod clock;
pub mod exemplar;
pub(crate) mod hooks;
pub(crate) mod measure;
pub mod objective;
pub(crate) mod once;
pub(crate) mod periodic;
pub(crate) mod site;
pub mod stats;
pub mod violation;
