//! Peer: `fastrace`'s `#[trace]` inside a root span with a reporter set, and
//! overrun in the same process. Each batch of calls runs under one root (the
//! local span queue holds 10 240 spans; a root per batch keeps every span
//! recorded rather than dropped).

use fastrace::collector::{Config, Reporter, SpanContext};
use fastrace::prelude::{Span, SpanRecord};
use overrun_benches::{batch, floors, work};

floors!();

/// Receives every finished trace and drops it.
struct Discard;

impl Reporter for Discard {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        std::hint::black_box(spans);
    }
}

#[fastrace::trace]
fn traced(x: u64) -> u64 {
    work(x)
}

#[overrun::measure(budget = "1s")]
fn measured(x: u64) -> u64 {
    work(x)
}

#[divan::bench]
fn fastrace_trace() -> u64 {
    let root = Span::root("batch", SpanContext::random());
    let _guard = root.set_local_parent();
    batch(traced)
}

/// The root span alone, to subtract from `fastrace_trace` if wanted.
#[divan::bench]
fn fastrace_root_only() -> u64 {
    let root = Span::root("batch", SpanContext::random());
    let _guard = root.set_local_parent();
    batch(work)
}

#[divan::bench]
fn overrun_measure() -> u64 {
    batch(measured)
}

fn main() {
    fastrace::set_reporter(Discard, Config::default());
    divan::main();
    fastrace::flush();
}
