//! Peer: the `metrics` facade — `Instant` timing plus `histogram!` — with the
//! Prometheus recorder installed, and overrun in the same process.

use overrun_benches::{batch, floors, work};

floors!();

#[overrun::measure(budget = "1s")]
fn measured(x: u64) -> u64 {
    work(x)
}

#[divan::bench]
fn metrics_histogram() -> u64 {
    batch(|x| {
        let start = std::time::Instant::now();
        let r = work(x);
        metrics::histogram!("work_duration_seconds").record(start.elapsed().as_secs_f64());
        r
    })
}

#[divan::bench]
fn overrun_measure() -> u64 {
    batch(measured)
}

fn main() {
    let _handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("one recorder");
    divan::main();
}
