//! Drives the OTLP exporter for the end-to-end test (`exporters/otlp/e2e.py`):
//! a known number of calls and budget violations, in phases commanded on
//! stdin, so the test can stop and restart the collector between them.
//!
//! Commands, one per line:
//! - `calls FAST SLOW [traced]`: FAST calls within budget, SLOW over it
//!   (each a time violation); `traced` runs them inside an OpenTelemetry span
//!   and prints its trace id.
//! - `export`: waits until a round of exports succeeded after this command.
//! - `storm N`: N calls of `stormy`, each over its 1 ns budget, at full
//!   speed.
//! - `flush`: `flush()` now; prints `flushed true` if every request of the
//!   round was accepted (or there was nothing to send).
//! - `fail`: waits until a metrics export failed after this command.
//! - `quit`: shuts the exporter down (a last export) and prints its counters.
//! - `ordered`: inside a `tracing` span (made an OpenTelemetry span by
//!   `tracing-opentelemetry`), calls `traced_above` (`#[tracing::instrument]`
//!   above `#[overrun::measure]`) and `traced_below` (below it), each over
//!   its budget; prints `ordered TRACE_ID ABOVE_SPAN_ID BELOW_SPAN_ID`, the
//!   trace and each function's own span.
//! - `leak`: inside an OpenTelemetry span, tracks a task (`leaky`) that
//!   never ends, with a 50 ms lifetime budget; prints `leak TRACE_ID
//!   SPAN_ID` 300 ms later (the watchdog flags it meanwhile).
//! - `objective`: calls `served` (a p99 objective of 20 ms over 1 s) 30 ms
//!   at a time until its objective is breached, then 1 ms at a time until
//!   it is met again; prints `objective breached`, then `objective met`.
//! - `exit`: ends the process with `std::process::exit(0)` from a worker
//!   thread, without shutting the exporter down: `#[overrun::main]` makes its
//!   last export on the way out.
//! - `wait`: prints `waiting` and waits to be ended by a signal (SIGTERM):
//!   the same last export, then the signal ends the process.
//!
//! Settings come from the standard `OTEL_*` variables. With
//! `OTLP_DRIVER_TRACE` set, every `tracing` event of the transport crates is
//! printed at TRACE level, so the test can check that no header value is
//! ever logged.

use std::io::BufRead as _;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Every call over its budget: a storm of violations of one site.
#[overrun::measure(budget = "1ns")]
fn stormy() -> u64 {
    std::thread::sleep(Duration::from_micros(1));
    std::hint::black_box(3)
}

/// A p99 objective over a short window: one violation when it is crossed,
/// one recovery record when it is met again.
#[overrun::measure(p99 = "20ms", window = "1s")]
fn served(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Whether `served`'s objective is breached now.
fn served_breached() -> bool {
    overrun::snapshot()
        .site("served")
        .is_some_and(|s| s.objectives.iter().any(|o| o.breached))
}

#[overrun::measure(budget = "20ms")]
fn handle(slow: bool) -> u64 {
    if slow {
        std::thread::sleep(Duration::from_millis(30));
    }
    std::hint::black_box(7)
}

/// The trace and span of the current `tracing` span, as OpenTelemetry ids.
fn ids_of_current() -> (String, String) {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

#[tracing::instrument]
#[overrun::measure(budget = "1ns")]
fn traced_above() -> String {
    std::thread::sleep(Duration::from_micros(10));
    ids_of_current().1
}

#[overrun::measure(budget = "1ns")]
#[tracing::instrument]
fn traced_below() -> String {
    std::thread::sleep(Duration::from_micros(10));
    ids_of_current().1
}

#[overrun::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = tracer_provider.tracer("otlp-driver");
    // `tracing` spans are OpenTelemetry spans, entered with them.
    let spans = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("tracing"));
    // With OTLP_DRIVER_TRACE, every log line of the transport crates (tonic,
    // hyper, h2, rustls) at TRACE, to stdout: the test checks no header
    // value shows up. Else only the driver's own spans.
    let trace_all = std::env::var_os("OTLP_DRIVER_TRACE").is_some();
    let fmt = trace_all.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stdout)
            .with_ansi(false)
    });
    let filter = if trace_all {
        tracing_subscriber::filter::Targets::new()
            .with_default(tracing_subscriber::filter::LevelFilter::TRACE)
    } else {
        tracing_subscriber::filter::Targets::new().with_target(
            "otlp_driver",
            tracing_subscriber::filter::LevelFilter::TRACE,
        )
    };
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(spans)
            .with(fmt)
            .with(filter),
    )?;
    let exporter = overrun_otlp::OtlpExporter::builder()
        .service_name("overrun-otlp-e2e")
        .resource_attribute("test.run", std::process::id().to_string())
        .install()?;
    let mut leaked = Vec::new();
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["calls", fast, slow, rest @ ..] => {
                let (fast, slow): (u64, u64) = (fast.parse()?, slow.parse()?);
                let run = || {
                    for _ in 0..fast {
                        handle(false);
                    }
                    for _ in 0..slow {
                        handle(true);
                    }
                };
                if rest == ["traced"] {
                    tracer.in_span("driver-span", |cx| {
                        let sc = cx.span().span_context().clone();
                        println!("trace {} {}", sc.trace_id(), sc.span_id());
                        run();
                    });
                } else {
                    run();
                }
                println!("called");
            }
            ["objective"] => {
                while !served_breached() {
                    served(30);
                }
                println!("objective breached");
                while served_breached() {
                    served(1);
                }
                println!("objective met");
            }
            ["export"] => {
                let before = exporter.stats();
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let now = exporter.stats();
                    if now.metric_exports > before.metric_exports
                        && now.events_pending == 0
                        && now.log_failures == before.log_failures
                        && exporter.rounds() > 0
                    {
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(format!("no successful export in 30 s: {now:?}").into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                println!("exported");
            }
            ["flush"] => println!("flushed {}", exporter.flush()),
            ["ordered"] => {
                let outer = tracing::info_span!("ordered");
                let (trace, above, below) = outer.in_scope(|| {
                    let above = traced_above();
                    let below = traced_below();
                    (ids_of_current().0, above, below)
                });
                println!("ordered {trace} {above} {below}");
            }
            ["leak"] => {
                let (task, trace, span) = tracer.in_span("leak-span", |cx| {
                    let sc = cx.span().span_context().clone();
                    let task = overrun::track("leaky", std::future::pending::<()>())
                        .lifetime(overrun::duration!("50ms"));
                    (task, sc.trace_id(), sc.span_id())
                });
                leaked.push(task);
                // Not reading the task stats meanwhile: that checks the
                // lifetimes too, and the watchdog is to flag it.
                std::thread::sleep(Duration::from_millis(300));
                println!("leak {trace} {span}");
            }
            ["storm", n] => {
                for _ in 0..n.parse::<u64>()? {
                    stormy();
                }
                println!("stormed");
            }
            ["fail"] => {
                let before = exporter.stats().metric_failures;
                while exporter.stats().metric_failures == before {
                    std::thread::sleep(Duration::from_millis(10));
                }
                println!("failed {:?}", exporter.stats().last_error);
            }
            ["quit"] => break,
            ["exit"] => {
                let worker = std::thread::spawn(|| std::process::exit(0));
                let _ = worker.join();
            }
            ["wait"] => {
                println!("waiting");
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            _ => return Err(format!("unknown command {line:?}").into()),
        }
    }
    let stats = exporter.shutdown();
    println!(
        "stats metric_exports={} metric_failures={} log_exports={} log_failures={} events_sent={} events_pending={} rate_limited={} queue_dropped={}",
        stats.metric_exports,
        stats.metric_failures,
        stats.log_exports,
        stats.log_failures,
        stats.events_sent,
        stats.events_pending,
        stats.events_rate_limited,
        stats.events_queue_dropped
    );
    Ok(())
}
