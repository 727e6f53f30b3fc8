//! A small HTTP service whose handlers and database call are measured, and
//! whose `/metrics` serves overrun's figures together with the service's own
//! `metrics`-facade metrics. Its database connection is behind an
//! `overrun::sync::Mutex` with wait and hold budgets.
//!
//! ```text
//! cargo run --example service -- --listen 127.0.0.1:3000
//! curl localhost:3000/users/1
//! curl 'localhost:3000/slow?ms=40'    # over its 20ms budget
//! curl 'localhost:3000/search?ms=30'  # a tracing span, over its 10ms budget
//! curl localhost:3000/metrics
//! ```
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set (and the other standard `OTEL_*`
//! variables), the same figures and every violation also go to that
//! OpenTelemetry collector.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use rusqlite::{Connection, OptionalExtension};

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

struct App {
    /// The connection, behind a lock whose waits and holds are measured.
    db: overrun::sync::Mutex<Connection>,
    /// overrun's figures and, appended, the service's own metrics.
    overrun: overrun_prometheus::Renderer,
}

/// The database call, with its own budget.
#[overrun::measure(budget = "5ms", allocs = 64)]
fn load_user(db: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    db.query_row("SELECT name FROM users WHERE id = ?1", [id], |row| {
        row.get(0)
    })
    .optional()
}

/// A user as the API shows it. Its methods are measured through the impl
/// blocks: their series are `User::new` and `<User as Display>::fmt`, apart
/// from `Miss::new` below although both are `new` in one module.
struct User {
    id: i64,
    name: String,
}

#[overrun::measure]
impl User {
    fn new(id: i64, name: String) -> User {
        User { id, name }
    }
}

#[overrun::measure]
impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_assert!(self.id > 0);
        writeln!(f, "{}", self.name)
    }
}

/// A lookup that found nobody.
struct Miss {
    id: i64,
}

impl Miss {
    #[overrun::measure]
    fn new(id: i64) -> Miss {
        Miss { id }
    }

    fn status(&self) -> StatusCode {
        debug_assert!(self.id != 0);
        StatusCode::NOT_FOUND
    }
}

#[overrun::measure(budget = "50ms")]
async fn get_user(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Result<String, StatusCode> {
    metrics::counter!("service_user_lookups_total").increment(1);
    let db = app.db.lock();
    match load_user(&db, id) {
        Ok(Some(name)) => Ok(User::new(id, name).to_string()),
        Ok(None) => Err(Miss::new(id).status()),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: u64,
}

/// Waits `ms` milliseconds; over 20 ms is over budget, and the p99 of the
/// last 5 s over 20 ms misses its objective. Each request is a span (an
/// OpenTelemetry one, through tracing-opentelemetry): a request over
/// budget is an exemplar with its trace id, which it also prints.
#[overrun::measure(budget = "20ms", p99 = "20ms", window = "5s")]
#[tracing::instrument(name = "slow_request", skip_all)]
async fn slow(Query(q): Query<Slow>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    if q.ms > 20 {
        use opentelemetry::trace::TraceContextExt as _;
        let trace_id = opentelemetry::Context::current()
            .span()
            .span_context()
            .trace_id();
        println!("slow request, trace {trace_id}");
    }
    "done\n"
}

#[derive(serde::Deserialize)]
struct Work {
    us: u64,
}

/// Computes for `us` microseconds: a CPU-bound handler (the load bench
/// compares drivers on it, where the service's time dominates theirs).
#[overrun::measure]
async fn work(Query(q): Query<Work>) -> String {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_micros(q.us) {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    format!("{x}\n")
}

/// Searches for `ms` milliseconds. No `#[overrun::measure]`: the service's
/// existing `tracing` span, budgeted by its own field (over 10 ms is over
/// budget), measured by `overrun::tracing::layer()`.
#[tracing::instrument(skip_all, fields(overrun.budget = "10ms"))]
async fn search(Query(q): Query<Slow>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    "found\n"
}

/// One endpoint for both: overrun's figures and the service's own metrics,
/// in the format the scraper asks for (OpenMetrics, with exemplars, for a
/// Prometheus that stores them).
async fn metrics_endpoint(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
) -> impl axum::response::IntoResponse {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let (content_type, body) = app.overrun.render_for(accept);
    ([(axum::http::header::CONTENT_TYPE, content_type)], body)
}

fn open_db() -> rusqlite::Result<Connection> {
    let db = Connection::open_in_memory()?;
    db.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger');",
    )?;
    Ok(db)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = match args.iter().position(|a| a == "--listen") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--listen needs an address")?
            .parse()?,
        None => "127.0.0.1:3000".parse()?,
    };
    // The service's spans are measured too, with their budgets, and are
    // OpenTelemetry spans (ids only, exported nowhere): the trace of a
    // slow call is its exemplar.
    {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .build()
            .tracer("service");
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry()
                .with(overrun::tracing::layer())
                .with(tracing_opentelemetry::layer().with_tracer(tracer)),
        )?;
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    metrics::describe_counter!("service_user_lookups_total", "User lookups served.");
    let app = Arc::new(App {
        db: overrun::sync::Mutex::new("db", open_db()?)
            .wait_budget("5ms")
            .hold_budget("10ms"),
        // The service's own metrics on the same endpoint.
        overrun: overrun_prometheus::PrometheusExporter::builder()
            .append(move || metrics.render())
            .build()?,
    });
    let otlp = match std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(_) => Some(
            overrun_otlp::OtlpExporter::builder()
                .service_name("overrun-example-service")
                .install()?,
        ),
        None => None,
    };
    let router = Router::new()
        .route("/users/{id}", get(get_user))
        .route("/slow", get(slow))
        .route("/search", get(search))
        .route("/work", get(work))
        .route("/metrics", get(metrics_endpoint))
        .with_state(app);
    // A background task, tracked: live for the life of the service.
    let _refresher = overrun::spawn_named("cache-refresh", async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal())
        .await?;
    // Graceful shutdown: the exporter's last export (the last interval's
    // counts and pending violation events), bounded by its timeout. It
    // blocks, so off the async threads.
    if let Some(otlp) = otlp {
        tokio::task::spawn_blocking(move || otlp.shutdown()).await?;
    }
    Ok(())
}

/// SIGTERM (an orchestrator stopping the service) or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
