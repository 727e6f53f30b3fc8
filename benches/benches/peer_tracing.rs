//! Peer: `tracing`'s `#[instrument]` with the `registry()` subscriber (span
//! creation, enter, exit, close), and overrun in the same process.

use overrun_benches::{batch, floors, work};
use tracing_subscriber::layer::SubscriberExt;

floors!();

#[tracing::instrument(skip_all)]
fn traced(x: u64) -> u64 {
    work(x)
}

#[overrun::measure(budget = "1s")]
fn measured(x: u64) -> u64 {
    work(x)
}

#[divan::bench]
fn tracing_instrument() -> u64 {
    batch(traced)
}

#[divan::bench]
fn overrun_measure() -> u64 {
    batch(measured)
}

fn main() {
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new());
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    divan::main();
}
