//! # overrun-otlp
//!
//! Sends every overrun figure and each budget violation to an OpenTelemetry
//! pipeline (a Collector, or a vendor that takes OTLP) over gRPC or
//! HTTP/protobuf.
//!
//! # Quick start
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! let otlp = overrun_otlp::OtlpExporter::builder()
//!     .endpoint("http://127.0.0.1:4317") // or OTEL_EXPORTER_OTLP_ENDPOINT
//!     .protocol(overrun_otlp::Protocol::Grpc) // or HttpProtobuf, or OTEL_EXPORTER_OTLP_PROTOCOL
//!     .interval(Duration::from_secs(10))
//!     .install()?; // a background thread exports every 10 s
//! // ... the application runs ...
//! otlp.shutdown(); // a last export, bounded by the timeout (dropping it does the same)
//! # Ok(()) }
//! ```
//!
//! # What is sent
//!
//! **Metrics**, in the dotted form of overrun's schema: `overrun.calls`,
//! `overrun.errors`, `overrun.duration` (histogram, seconds),
//! `overrun.self_duration`, `overrun.allocations`, `overrun.allocated_bytes`,
//! `overrun.budget` (the declared time budget), `overrun.budget.violations`
//! (by `kind`), `overrun.tasks.*` and `overrun.task.*` (spawned, completed,
//! cancelled, panicked, leaked, live, polls, busy time, poll duration
//! histogram, longest poll), `overrun.process.peak_resident_memory`,
//! `overrun.heap.live`, and the exporter's own health:
//! `overrun.export.failures` (by `signal`) and `overrun.violations.dropped`
//! (by `reason`). Site series carry `function` and `module`; task series
//! carry `task`. Temporality is cumulative unless [`Temporality::Delta`] is
//! asked for.
//!
//! **Events**: each violation is an OTLP log record with event name
//! `overrun.budget.violation`, severity WARN, attributes `function`,
//! `module`, `kind`, `observed`, `limit`, `unit`, `thread`, `code.file.path`,
//! `code.line.number`, and the trace and span id of the OpenTelemetry span
//! active on that thread (`opentelemetry` 0.33's [`Context`]) when there is one.
//!
//! [`Context`]: opentelemetry::Context
//!
//! The resource: the telemetry SDK attributes, `OTEL_RESOURCE_ATTRIBUTES`
//! (percent-decoded) and `OTEL_SERVICE_NAME`, with the builder's
//! [`Builder::resource_attribute`] and [`Builder::service_name`] on top, and
//! a `service.instance.id` and `host.name` when nothing else set them.
//!
//! # Settings
//!
//! A builder call wins over the environment, which wins over the default:
//!
//! | builder | variable | default |
//! | --- | --- | --- |
//! | [`endpoint`](Builder::endpoint) | `OTEL_EXPORTER_OTLP_ENDPOINT` (`_METRICS_` / `_LOGS_ENDPOINT` per signal) | `http://localhost:4318` (gRPC: `:4317`) |
//! | [`protocol`](Builder::protocol) | `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, `http/protobuf`) | `http/protobuf` |
//! | [`header`](Builder::header) | `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, %-decoded) | none |
//! | [`timeout`](Builder::timeout) | `OTEL_EXPORTER_OTLP_TIMEOUT` (ms) | 10 s |
//! | [`interval`](Builder::interval) | `OTEL_METRIC_EXPORT_INTERVAL` (ms) | 60 s |
//! | [`temporality`](Builder::temporality) | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | cumulative |
//! | [`compression`](Builder::compression) | `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`, `none`) | none |
//! | [`ca_certificate_pem`](Builder::ca_certificate_pem) | `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM file) | the system's roots |
//!
//! `https://` endpoints use TLS (rustls) with the system's roots plus the CA
//! given. Header values are secrets: no error, `Debug` output or log line of
//! this crate contains one.
//!
//! # When the collector is down
//!
//! Nothing on the instrumented call path changes: exports run on their own
//! thread from snapshots. A failed export is counted (see
//! [`OtlpExporter::stats`] and `overrun.export.failures`) and retried at the
//! next interval. Metrics are cumulative (deltas are taken against the last
//! export the collector accepted), so the first export after it returns is
//! complete. Violation events wait in a bounded queue
//! ([`Builder::max_pending_events`]); past that bound the oldest are dropped
//! and counted, so memory stays bounded through any outage.
//!
//! # Cost model
//!
//! An export costs sites × buckets + tasks + pending events, never the number
//! of calls: histograms are sent as their bucket counts, not replayed.

mod config;
mod encode;
mod events;
mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

pub use encode::EVENT_NAME;

/// Default upper bounds of the duration histograms, in seconds: 1 µs to
/// 10 s, three per decade (the same as the Prometheus exporter's).
pub use overrun::stats::DEFAULT_BUCKETS;

/// How requests travel.
///
/// ```
/// use overrun_otlp::{OtlpExporter, Protocol};
/// let http = OtlpExporter::builder().protocol(Protocol::HttpProtobuf); // posts to <endpoint>/v1/metrics
/// let grpc = OtlpExporter::builder().protocol(Protocol::Grpc); // OTEL_EXPORTER_OTLP_PROTOCOL=grpc
/// # let _ = (http, grpc);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (default port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (default port 4318), POSTed to
    /// `/v1/metrics` and `/v1/logs` under the endpoint.
    HttpProtobuf,
}

/// How sums and histograms are reported.
///
/// ```
/// // For backends that want deltas (or OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta).
/// let builder = overrun_otlp::OtlpExporter::builder()
///     .temporality(overrun_otlp::Temporality::Delta);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Totals since the process started (the default; nothing is lost when
    /// an export fails).
    Cumulative,
    /// The change since the last export the collector accepted.
    Delta,
}

/// Whether request bodies are compressed.
///
/// ```
/// // Or OTEL_EXPORTER_OTLP_COMPRESSION=gzip.
/// let builder = overrun_otlp::OtlpExporter::builder()
///     .compression(overrun_otlp::Compression::Gzip);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain protobuf (the default).
    None,
    /// gzip: `Content-Encoding: gzip` over HTTP, `grpc-encoding: gzip` over
    /// gRPC. Metrics shrink several times; the exporter thread pays the CPU.
    Gzip,
}

/// Why the exporter could not start.
///
/// ```
/// let err = overrun_otlp::OtlpExporter::builder()
///     .timeout(std::time::Duration::ZERO)
///     .install()
///     .unwrap_err();
/// assert!(matches!(err, overrun_otlp::Error::Invalid { ref setting, .. } if setting == "timeout"));
/// ```
#[derive(Debug)]
pub enum Error {
    /// A setting (builder value or environment variable) is not usable.
    Invalid {
        /// The variable or builder method it came from.
        setting: String,
        /// What is wrong with it (never a header value).
        reason: String,
    },
    /// The exporter thread or its runtime could not be started.
    Thread(std::io::Error),
}

impl Error {
    pub(crate) fn invalid(setting: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid { setting, reason } => write!(f, "{setting}: {reason}"),
            Self::Thread(e) => write!(f, "cannot start the OTLP exporter thread: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Thread(e) => Some(e),
            Self::Invalid { .. } => None,
        }
    }
}

/// Configures an [`OtlpExporter`].
///
/// ```
/// let builder = overrun_otlp::OtlpExporter::builder()
///     .header("api-key", "s3cret")
///     .service_name("checkout");
/// assert!(!format!("{builder:?}").contains("s3cret"));
/// ```
#[must_use]
#[derive(Clone)]
pub struct Builder {
    explicit: config::Explicit,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    buckets: Vec<f64>,
    events_per_second: u64,
    max_pending_events: usize,
    shutdown_timeout: Option<Duration>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("endpoint", &self.explicit.endpoint)
            .field("protocol", &self.explicit.protocol)
            .field("headers", &config::redacted(&self.explicit.headers))
            .field("timeout", &self.explicit.timeout)
            .field("interval", &self.explicit.interval)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("events_per_second", &self.events_per_second)
            .field("max_pending_events", &self.max_pending_events)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            explicit: config::Explicit::default(),
            service_name: None,
            resource: Vec::new(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            events_per_second: 100,
            max_pending_events: 4096,
            shutdown_timeout: None,
        }
    }
}

impl Builder {
    /// The collector's URL (`http://` or `https://`). For HTTP it is the base
    /// under which `/v1/metrics` and `/v1/logs` are posted.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.explicit.endpoint = Some(url.into());
        self
    }

    /// gRPC or HTTP/protobuf.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.explicit.protocol = Some(protocol);
        self
    }

    /// How often metrics and pending events are sent.
    pub fn interval(mut self, every: Duration) -> Self {
        self.explicit.interval = Some(every);
        self
    }

    /// The most one request (connection included) may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.explicit.timeout = Some(timeout);
        self
    }

    /// How long [`OtlpExporter::shutdown`] may take for its last export
    /// (default: the request timeout).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// A header sent with every request (an API key, a tenant). Replaces the
    /// same header from `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.explicit.headers.push((key.into(), value.into()));
        self
    }

    /// Cumulative (default) or delta sums and histograms.
    pub fn temporality(mut self, temporality: Temporality) -> Self {
        self.explicit.temporality = Some(temporality);
        self
    }

    /// gzip request bodies, or not (the default).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.explicit.compression = Some(compression);
        self
    }

    /// Extra CA certificates (PEM) to trust for `https://` endpoints.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.explicit.ca_pem = Some(pem.into());
        self
    }

    /// `service.name`, over `OTEL_SERVICE_NAME`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// A resource attribute, over `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Upper bounds of the duration histograms, in seconds, increasing.
    pub fn buckets(mut self, bounds: impl Into<Vec<f64>>) -> Self {
        self.buckets = bounds.into();
        self
    }

    /// Violation events admitted per second (default 100); the rest are
    /// counted in `overrun.violations.dropped{reason="rate_limit"}`. Every
    /// violation is still counted in `overrun.budget.violations`.
    pub fn events_per_second(mut self, n: u64) -> Self {
        self.events_per_second = n;
        self
    }

    /// Events kept while the collector is unreachable (default 4096).
    pub fn max_pending_events(mut self, n: usize) -> Self {
        self.max_pending_events = n;
        self
    }

    /// Starts the exporter thread. Errors name the setting that is wrong; a
    /// collector that is down is not an error (exports fail, are counted,
    /// and are retried).
    ///
    /// ```
    /// let err = overrun_otlp::OtlpExporter::builder()
    ///     .endpoint("localhost:4317")
    ///     .install()
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "endpoint(): \"localhost:4317\" has no scheme; \
    ///      write http://localhost:4317 or https://localhost:4317"
    /// );
    /// ```
    pub fn install(self) -> Result<OtlpExporter, Error> {
        self.install_with_env(&config::process_env)
    }

    fn install_with_env(self, env: config::Env<'_>) -> Result<OtlpExporter, Error> {
        let cfg = config::resolve(&self.explicit, env)?;
        if self.buckets.is_empty()
            || !self.buckets.iter().all(|b| b.is_finite() && *b > 0.0)
            || !self.buckets.windows(2).all(|w| w[0] < w[1])
        {
            return Err(Error::invalid(
                "buckets()",
                "bounds must be finite, positive and increasing",
            ));
        }
        let shutdown_timeout = self.shutdown_timeout.unwrap_or(cfg.timeout);
        let cfg_timeout = cfg.timeout;
        let resource = encode::resource(self.service_name.as_deref(), &self.resource, env);
        let queue = Arc::new(events::Queue::new(
            self.max_pending_events,
            self.events_per_second,
        ));
        let hook_queue = Arc::clone(&queue);
        let shared = Arc::new(Shared {
            queue,
            stats: Mutex::new(ExportStats::default()),
            started: AtomicU64::new(0),
            exports: AtomicU64::new(0),
            finished: parking_lot::Condvar::new(),
            finished_lock: Mutex::new(()),
        });

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Thread)?;
        // The gRPC channel spawns its worker on the runtime, so the
        // transport is built inside it.
        let transport = {
            let _enter = runtime.enter();
            transport::Transport::new(&cfg)?
        };
        let hook = overrun::on_violation(move |v| hook_queue.offer(v));
        let now = unix_nanos();
        let start = now.saturating_sub(overrun::snapshot().run.wall_ns);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let flush = Arc::new(tokio::sync::Notify::new());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let worker = Worker {
            cfg,
            transport,
            resource,
            buckets: self.buckets,
            shared: Arc::clone(&shared),
            start,
            delta: encode::DeltaState::new(start),
            flush: Arc::clone(&flush),
        };
        let thread = std::thread::Builder::new()
            .name("overrun-otlp".into())
            .spawn(move || {
                runtime.block_on(worker.run(stop_rx, shutdown_timeout));
                let _ = done_tx.send(());
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                overrun::remove_hook(hook);
                return Err(Error::Thread(e));
            }
        };
        Ok(OtlpExporter {
            shared,
            hook: Some(hook),
            stop: stop_tx,
            done: done_rx,
            thread: Some(thread),
            shutdown_timeout,
            flush,
            timeout: cfg_timeout,
        })
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What the exporter has done so far.
///
/// ```
/// let stats = overrun_otlp::ExportStats::default();
/// assert_eq!(stats.metric_exports + stats.metric_failures, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Metric requests the collector accepted.
    pub metric_exports: u64,
    /// Metric requests that failed (counted in `overrun.export.failures`).
    pub metric_failures: u64,
    /// Log requests the collector accepted.
    pub log_exports: u64,
    /// Log requests that failed.
    pub log_failures: u64,
    /// Violation events delivered.
    pub events_sent: u64,
    /// Events waiting for the next export.
    pub events_pending: u64,
    /// Events over the rate limit.
    pub events_rate_limited: u64,
    /// Events dropped because the queue was full during an outage.
    pub events_queue_dropped: u64,
    /// The last failure, if the last export of its signal failed (no header
    /// values, ever).
    pub last_error: Option<String>,
}

struct Shared {
    queue: Arc<events::Queue>,
    stats: Mutex<ExportStats>,
    /// Export rounds started and finished (successful or not), to wait on.
    started: AtomicU64,
    exports: AtomicU64,
    /// Signalled when a round finishes (paired with `finished_lock`).
    finished: parking_lot::Condvar,
    finished_lock: Mutex<()>,
}

/// A running OTLP exporter. Dropping it (or [`OtlpExporter::shutdown`])
/// makes a last export, bounded by the shutdown timeout, and stops the
/// thread.
pub struct OtlpExporter {
    shared: Arc<Shared>,
    hook: Option<overrun::HookId>,
    stop: tokio::sync::watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    shutdown_timeout: Duration,
    flush: Arc<tokio::sync::Notify>,
    timeout: Duration,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// A builder with the defaults and the standard environment variables.
    ///
    /// ```
    /// let otlp = overrun_otlp::OtlpExporter::builder()
    ///     .endpoint("http://127.0.0.1:4318")
    ///     .service_name("checkout")
    ///     .resource_attribute("deployment.environment", "staging")
    ///     .install()
    ///     .unwrap();
    /// # drop(otlp);
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Counters of exports, failures and events.
    ///
    /// ```
    /// let otlp = overrun_otlp::OtlpExporter::builder()
    ///     .endpoint("http://127.0.0.1:1") // nothing listens there
    ///     .install()
    ///     .unwrap();
    /// otlp.flush();
    /// let stats = otlp.stats();
    /// assert_eq!(stats.metric_failures, 1);
    /// assert!(stats.last_error.unwrap().contains("Connection refused"));
    /// ```
    pub fn stats(&self) -> ExportStats {
        let mut s = self.shared.stats.lock().clone();
        let q = &self.shared.queue;
        s.events_pending = q.len() as u64;
        s.events_rate_limited = q.rate_dropped.load(Ordering::Relaxed);
        s.events_queue_dropped = q.queue_dropped.load(Ordering::Relaxed);
        s
    }

    /// Export rounds finished so far (each sends metrics, then events).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let otlp = overrun_otlp::OtlpExporter::builder()
    ///     .endpoint("http://127.0.0.1:1")
    ///     .interval(Duration::from_millis(10))
    ///     .install()
    ///     .unwrap();
    /// assert!(otlp.wait_rounds(2, Duration::from_secs(10)));
    /// assert!(otlp.rounds() >= 2);
    /// ```
    pub fn rounds(&self) -> u64 {
        self.shared.exports.load(Ordering::Acquire)
    }

    /// Waits until `n` export rounds have finished or `timeout` passed;
    /// `true` if they have. Handy in tests and short programs (see
    /// [`OtlpExporter::rounds`]).
    pub fn wait_rounds(&self, n: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.shared.finished_lock.lock();
        while self.rounds() < n {
            if self
                .shared
                .finished
                .wait_until(&mut guard, deadline)
                .timed_out()
            {
                return self.rounds() >= n;
            }
        }
        true
    }

    /// Exports now, without waiting for the interval, and waits for that
    /// round (bounded by a few request timeouts: one may be under way, then
    /// metrics and events).
    /// `true` if every request of the round was accepted.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let otlp = overrun_otlp::OtlpExporter::builder()
    ///     .endpoint("http://127.0.0.1:1") // nothing listens there
    ///     .timeout(Duration::from_millis(500))
    ///     .install()
    ///     .unwrap();
    /// assert!(!otlp.flush());
    /// assert_eq!(otlp.stats().metric_failures, 1);
    /// ```
    pub fn flush(&self) -> bool {
        let before = self.stats();
        // A round already under way took its snapshot before this call: wait
        // for the next one to start and finish.
        let next = self.shared.started.load(Ordering::Acquire) + 1;
        self.flush.notify_one();
        let finished = self.wait_rounds(next, self.timeout * 4 + Duration::from_millis(500));
        let after = self.stats();
        finished
            && after.metric_failures == before.metric_failures
            && after.log_failures == before.log_failures
    }

    /// Makes a last export of everything pending and stops, within the
    /// shutdown timeout (plus a moment to stop the thread). Returns the
    /// final counters.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let otlp = overrun_otlp::OtlpExporter::builder()
    ///     .endpoint("http://127.0.0.1:1")
    ///     .shutdown_timeout(Duration::from_millis(200))
    ///     .install()
    ///     .unwrap();
    /// let last = otlp.shutdown(); // the last export failed: counted, not lost silently
    /// assert_eq!(last.metric_failures, 1);
    /// ```
    pub fn shutdown(mut self) -> ExportStats {
        self.stop_now();
        self.stats()
    }

    fn stop_now(&mut self) {
        if let Some(hook) = self.hook.take() {
            overrun::remove_hook(hook);
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = self.stop.send(true);
        // The worker bounds its last export by the timeout; this bounds the
        // wait even if it is stuck somewhere unexpected.
        let grace = self.shutdown_timeout + Duration::from_millis(500);
        if self.done.recv_timeout(grace).is_ok() {
            let _ = thread.join();
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The exporter thread's state.
struct Worker {
    cfg: config::Resolved,
    transport: transport::Transport,
    resource: opentelemetry_proto::tonic::resource::v1::Resource,
    buckets: Vec<f64>,
    shared: Arc<Shared>,
    start: u64,
    delta: encode::DeltaState,
    flush: Arc<tokio::sync::Notify>,
}

/// `send`, or a timeout error once `deadline` passes.
async fn within(
    deadline: tokio::time::Instant,
    signal: &str,
    timeout: Duration,
    send: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout_at(deadline, send)
        .await
        .unwrap_or_else(|_| Err(format!("{signal} export timed out after {timeout:?}")))
}

/// Events sent per logs request.
const EVENTS_PER_REQUEST: usize = 512;

impl Worker {
    async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>, shutdown: Duration) {
        let mut next = tokio::time::Instant::now() + self.cfg.interval;
        loop {
            let flush = Arc::clone(&self.flush);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {
                    next += self.cfg.interval;
                }
                _ = flush.notified() => {}
                _ = stop.changed() => break,
            }
            self.round(None).await;
            let now = tokio::time::Instant::now();
            if next < now {
                // An export took longer than the interval: skip, don't burst.
                next = now + self.cfg.interval;
            }
        }
        // Every request of the last round is bounded by the deadline, so the
        // round ends by then and events it could not send go back to the
        // queue (counted as pending). Cancelling the round from outside
        // instead could drop events it had already taken, uncounted.
        let deadline = tokio::time::Instant::now() + shutdown;
        self.round(Some(deadline)).await;
    }

    /// One export: metrics, then pending events (all of them at shutdown).
    async fn round(&mut self, deadline: Option<tokio::time::Instant>) {
        self.shared.started.fetch_add(1, Ordering::AcqRel);
        let timeout = self.cfg.timeout;
        let bounded = |d: Option<tokio::time::Instant>| {
            let by_timeout = tokio::time::Instant::now() + timeout;
            d.map_or(by_timeout, |d| d.min(by_timeout))
        };

        let health = self.health();
        let snap = overrun::snapshot();
        let requests = encode::metrics(
            &snap,
            &self.resource,
            &self.buckets,
            health,
            self.start,
            unix_nanos(),
        );
        drop(snap);
        for mut req in requests {
            let accepted =
                (self.cfg.temporality == Temporality::Delta).then(|| self.delta.apply(&mut req));
            let result = within(
                bounded(deadline),
                "metrics",
                timeout,
                self.transport.send_metrics(req),
            )
            .await;
            let mut stats = self.shared.stats.lock();
            match result {
                Ok(()) => {
                    stats.metric_exports += 1;
                    if let Some(a) = accepted {
                        self.delta.accept(a);
                    }
                }
                Err(e) => {
                    stats.metric_failures += 1;
                    stats.last_error = Some(e);
                    // The collector is likely down: the rest of this round
                    // waits for the next one (cumulative figures lose
                    // nothing by it).
                    break;
                }
            }
        }

        loop {
            let events = self.shared.queue.take(EVENTS_PER_REQUEST);
            if events.is_empty() {
                break;
            }
            let n = events.len();
            let req = encode::logs(&events, &self.resource);
            let result = within(
                bounded(deadline),
                "logs",
                timeout,
                self.transport.send_logs(req),
            )
            .await;
            let mut stats = self.shared.stats.lock();
            match result {
                Ok(()) => {
                    stats.log_exports += 1;
                    stats.events_sent += n as u64;
                }
                Err(e) => {
                    stats.log_failures += 1;
                    stats.last_error = Some(e);
                    drop(stats);
                    self.shared.queue.put_back(events);
                    break;
                }
            }
            // In a normal round, one request per signal; the rest wait for
            // the next interval. At shutdown, everything goes.
            if deadline.is_none() {
                break;
            }
        }
        {
            // Under the lock, so a waiter between its check and its wait
            // cannot miss the wake-up.
            let _guard = self.shared.finished_lock.lock();
            self.shared.exports.fetch_add(1, Ordering::Release);
        }
        self.shared.finished.notify_all();
    }

    fn health(&self) -> encode::Health {
        let stats = self.shared.stats.lock();
        let q = &self.shared.queue;
        encode::Health {
            metric_failures: stats.metric_failures,
            log_failures: stats.log_failures,
            rate_dropped: q.rate_dropped.load(Ordering::Relaxed),
            queue_dropped: q.queue_dropped.load(Ordering::Relaxed),
        }
    }
}
