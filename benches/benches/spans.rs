//! A span's whole life — new, enter, exit, close — under
//! `tracing_subscriber::registry()` alone and with one layer on it: overrun's
//! (`overrun::tracing::layer()`), the same behind a per-layer filter that
//! rejects the span, `tracing-timing`'s, and `tracing-opentelemetry`'s over
//! a tracer that exports nothing; with the floors, in the same run. The
//! goal: overrun's layer adds at most 30 ns per span over the bare registry,
//! and a span its filter rejects adds nothing measurable.

use tracing::Dispatch;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use overrun_benches::{floors, work};

floors!();

/// One span's life, on `dispatch`.
fn span_life(bencher: divan::Bencher<'_, '_>, dispatch: &Dispatch) {
    tracing::dispatcher::with_default(dispatch, || {
        bencher.bench_local(|| {
            let span = tracing::info_span!("bench.span");
            span.in_scope(|| work(7))
        });
    });
}

#[divan::bench(sample_count = 200, sample_size = 500)]
fn registry_alone(bencher: divan::Bencher<'_, '_>) {
    span_life(bencher, &Dispatch::new(tracing_subscriber::registry()));
}

#[divan::bench(sample_count = 200, sample_size = 500)]
fn registry_overrun(bencher: divan::Bencher<'_, '_>) {
    let subscriber = tracing_subscriber::registry().with(overrun::tracing::layer());
    span_life(bencher, &Dispatch::new(subscriber));
}

/// A layer that does nothing but keep the span enabled (so the filtered
/// case below still creates it).
struct Keep;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Keep {}

#[divan::bench(sample_count = 200, sample_size = 500)]
fn registry_keep(bencher: divan::Bencher<'_, '_>) {
    span_life(
        bencher,
        &Dispatch::new(tracing_subscriber::registry().with(Keep)),
    );
}

/// The same filter on a layer that does nothing, beside `Keep`: what the
/// per-layer filter itself costs (tracing-subscriber's bookkeeping).
#[divan::bench(sample_count = 200, sample_size = 500)]
fn registry_keep_nothing_filtered_out(bencher: divan::Bencher<'_, '_>) {
    let layer = Keep.with_filter(tracing_subscriber::filter::filter_fn(|m| {
        m.name() != "bench.span"
    }));
    let subscriber = tracing_subscriber::registry().with(layer).with(Keep);
    span_life(bencher, &Dispatch::new(subscriber));
}

/// Overrun's layer behind a filter that rejects the span, beside `Keep`:
/// against `registry_keep_nothing_filtered_out`, nothing more.
#[divan::bench(sample_count = 200, sample_size = 500)]
fn registry_keep_overrun_filtered_out(bencher: divan::Bencher<'_, '_>) {
    let layer = overrun::tracing::layer().with_filter(tracing_subscriber::filter::filter_fn(|m| {
        m.name() != "bench.span"
    }));
    let subscriber = tracing_subscriber::registry().with(layer).with(Keep);
    span_life(bencher, &Dispatch::new(subscriber));
}

#[divan::bench(sample_count = 200, sample_size = 500)]
fn registry_tracing_timing(bencher: divan::Bencher<'_, '_>) {
    let layer = tracing_timing::Builder::default()
        .layer(|| hdrhistogram::Histogram::new_with_max(1_000_000_000, 2).unwrap());
    span_life(
        bencher,
        &Dispatch::new(tracing_subscriber::registry().with(layer)),
    );
}

#[divan::bench(sample_count = 200, sample_size = 500)]
fn registry_tracing_opentelemetry(bencher: divan::Bencher<'_, '_>) {
    use opentelemetry::trace::TracerProvider as _;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    span_life(
        bencher,
        &Dispatch::new(tracing_subscriber::registry().with(layer)),
    );
}

fn main() {
    divan::main();
}
