//! `/metrics` over HTTPS with basic authentication, for a scrape from
//! beyond loopback (run by `e2e.sh`, which a real Prometheus scrapes).
//!
//! ```text
//! OVERRUN_SCRAPE_PASSWORD=… cargo run -p overrun-prometheus --features tls \
//!     --example secured -- 127.0.0.1:9464 cert.pem key.pem prometheus
//! ```
//!
//! The password comes from the environment, never the command line, so it
//! shows in no process list; nothing here prints it.

#[overrun::measure(budget = "1s")]
fn served(i: u64) -> u64 {
    i + 1
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, cert, key, user] = args.as_slice() else {
        return Err(
            "usage: secured LISTEN CERT.pem KEY.pem USER (password in OVERRUN_SCRAPE_PASSWORD)"
                .into(),
        );
    };
    let password = std::env::var("OVERRUN_SCRAPE_PASSWORD")
        .map_err(|_| "OVERRUN_SCRAPE_PASSWORD is not set")?;
    let exporter = overrun_prometheus::PrometheusExporter::builder()
        .listen(listen.parse()?)
        .tls(cert, key)
        .basic_auth(user, &password)
        .install()?;
    for i in 0..7 {
        served(i);
    }
    println!("serving https://{}/metrics", exporter.local_addr());
    loop {
        std::thread::park();
    }
}
