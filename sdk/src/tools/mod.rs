//! Layer 6, tools for tests and CI: budgets as tests ([`testing`]) and the
//! comparison of two JSON reports ([`baseline`], `overrun diff`).

pub mod baseline;
pub mod testing;
