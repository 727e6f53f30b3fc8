//! The load driver's own ceiling on this machine: `overrun::load` against a
//! closure that does nothing, so every cost is the driver's (scheduling,
//! spawning, timing, counting). One level each: the open model at rates
//! past its reach (what it achieves, and how many it had to refuse), and
//! the closed model with 64 callers. Prints
//! `LOAD_DRIVER|model|offered|achieved per s|errors|requests|p99 ns`.
//!
//! `cargo bench --bench load_driver` measures (3 s a level); the test
//! command's quick pass runs 100 ms levels only to check it runs. The same
//! driver over HTTP, beside `oha`, is `benches/load.sh`.

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let step = if bench { "3s" } else { "100ms" };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rates: &[f64] = if bench {
            &[100_000.0, 200_000.0, 400_000.0, 800_000.0]
        } else {
            &[10_000.0]
        };
        for &rate in rates {
            let report = overrun::load::run(|| async {})
                .rate(rate..=rate)
                .step(step)
                .p99("1s")
                .error_rate("100%")
                .max_in_flight(100_000)
                .await;
            print_step("open", &report.steps()[0]);
        }
        let report = overrun::load::run(|| async {})
            .concurrency(64..=64)
            .step(step)
            .p99("1s")
            .await;
        print_step("closed", &report.steps()[0]);
    });
}

fn print_step(model: &str, s: &overrun::load::Step) {
    println!(
        "{model:>6} offered {:>10.0}: achieved {:>10.0}/s, {} errors of {} requests, p99 {} ns",
        s.offered, s.achieved, s.errors, s.requests, s.p99_ns
    );
    println!(
        "LOAD_DRIVER|{model}|{:.0}|{:.0}|{}|{}|{}",
        s.offered, s.achieved, s.errors, s.requests, s.p99_ns
    );
}
