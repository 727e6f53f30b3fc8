//! The Prometheus exporter: the instrumented call with and without the
//! exporter installed (same process, same run: it adds nothing to the call
//! path), and the cost of rendering one scrape for 1 000 sites.

use std::sync::OnceLock;

use overrun_benches::{batch, floors, work};

floors!();

#[overrun::measure(budget = "1s")]
fn measured(x: u64) -> u64 {
    work(x)
}

static EXPORTER: OnceLock<overrun_prometheus::PrometheusExporter> = OnceLock::new();

/// `false` runs first, without the exporter; `true` installs it (serving on
/// loopback) and measures the same call again.
#[divan::bench(args = [false, true])]
fn overrun_measure_exporter(bencher: divan::Bencher<'_, '_>, installed: bool) {
    if installed {
        EXPORTER.get_or_init(|| {
            overrun_prometheus::PrometheusExporter::builder()
                .listen("127.0.0.1:0".parse().unwrap())
                .install()
                .unwrap()
        });
    }
    assert_eq!(EXPORTER.get().is_some(), installed);
    bencher.bench_local(|| batch(measured));
}

/// One scrape's body for 1 000 sites, each with calls.
#[divan::bench(sample_count = 30, sample_size = 1)]
fn render_1000_sites(bencher: divan::Bencher<'_, '_>) {
    overrun_benches::thousand_sites();
    let renderer = overrun_prometheus::PrometheusExporter::builder()
        .build()
        .unwrap();
    assert!(renderer.render().contains("site_999"));
    bencher.bench_local(|| renderer.render());
}

fn main() {
    divan::main();
}
