//! Budgets on the `tracing` spans a service already has (feature
//! `tracing`): [`layer`] turns each span callsite it sees into a site, with
//! the same figures, budgets, violations and exports as a `#[measure]`
//! function.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(overrun::tracing::layer().budget("db.query", "50ms"));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("db.query", overrun.allocs = 20);
//!     span.in_scope(|| { /* … */ });
//! });
//! let snap = overrun::snapshot();
//! let site = snap.site("db.query").unwrap();
//! assert_eq!((site.calls, site.kind), (1, overrun::SiteKind::Span));
//! assert_eq!((site.budget.time_ns, site.budget.allocs), (Some(50_000_000), Some(20)));
//! ```
//!
//! # What is measured
//!
//! A span's site: name = the span's name, module = its target, file and line
//! from its metadata. Its time runs from creation to close; each entered
//! interval is one "poll" (checked against the `poll` budget: for an
//! instrumented future, a poll that blocked the executor). Allocations are
//! those made while the span is entered, on whichever thread, callees
//! included. A span that records an `error` field, or inside which an
//! ERROR-level event is emitted (as `#[instrument(err)]` does), counts as an
//! error. Spans and `#[measure]` functions nest: each one's self time
//! leaves out the others inside it.
//!
//! An entered interval's figures (self time, allocations, the interval
//! itself as a "poll") are counted when it ends; the call, its time and its
//! error when the span closes. So a span still open has its intervals in
//! the figures and not yet its call (a root span that lives as long as the
//! process shows intervals and no call). A span that was measured when it
//! was created is measured to its close, even if measuring is switched off
//! meanwhile.
//!
//! # Budgets
//!
//! In rising precedence: the span's own fields `overrun.budget`,
//! `overrun.allocs`, `overrun.bytes`, `overrun.poll` (read from its first
//! span; a bad literal is reported once, with the callsite's file and line,
//! and ignored); the layer's builder ([`BudgetLayer::budget`] and the like,
//! with the policy file's globs, matched against the span's name and
//! `target::name`); a policy file ([`crate::config`]).
//!
//! # Events
//!
//! With [`BudgetLayer::events`] on (the default), each violation is also a
//! WARN event, target `overrun`, message `budget violation`, with the fields
//! `function`, `module`, `kind`, `observed`, `limit`, `unit`, `file`,
//! `line`: a span's inside that span (so `fmt` prints its context and
//! `tracing-opentelemetry` puts it on its trace — add overrun's layer
//! before `tracing-opentelemetry`'s, which forgets a span when its own
//! `on_close` runs), and while the layer is installed a `#[measure]`
//! function's inside the span current where it broke its budget. A
//! per-layer filter on overrun's layer filters the events it sees too: an
//! ERROR event it rejects does not mark its span as an error.
//!
//! # Cost
//!
//! Per span: one lookup of its callsite in a fixed table of 4 096 (no lock;
//! a callsite beyond it, rare, is found under a lock), the clock at
//! creation, at each enter and exit and at close. Its state (creation time,
//! error flag, allocation sums) takes a slot of a fixed table of 8 192 open
//! spans by id: one compare-and-swap at creation, a store at close, no lock
//! and no allocation (a span that finds no free slot near its id keeps it
//! in the registry's extensions instead). Entering touches only the
//! thread's list of open intervals; an exited interval's figures go to the
//! thread's own cell. A span's whole life costs some 20 to 25 ns more than
//! with a layer that does nothing (88.4 ns against 66.8 ns in the day's last
//! run; `tracing-timing`'s layer 183.4 ns, `tracing-opentelemetry`'s
//! 697.2 ns, same run of `benches/benches/spans.rs`); a span a per-layer
//! filter rejects costs what the filter alone costs.

mod callsites;
mod layer;
mod open;

pub use layer::{BudgetLayer, layer};
