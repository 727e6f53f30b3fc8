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
//! histogram, longest poll), `overrun.lock.*` (acquisitions, wait and hold
//! histograms), `overrun.process.peak_resident_memory`,
//! `overrun.heap.live`, and the exporter's own health:
//! `overrun.export.failures` (by `signal`) and `overrun.violations.dropped`
//! (by `overrun.reason`). Site series carry `code.function.name`, fully
//! qualified (`app::db::load_user`); task series carry `overrun.task`, lock
//! series `overrun.lock` (and `overrun.lock.mode`, `overrun.lock.contended`); a
//! violation's kind is `overrun.kind`. (OpenTelemetry's semantic conventions
//! where one exists, `overrun.` otherwise; the Prometheus exporter keeps its
//! `function`, `module`, `kind` and `task` labels.) Temporality is
//! cumulative unless [`Temporality::Delta`] is asked for.
//!
//! **Events**: each violation is an OTLP log record with event name
//! `overrun.budget.violation`, severity WARN, attributes
//! `code.function.name` (or `overrun.task`, `overrun.lock`), `overrun.kind`,
//! `overrun.observed`, `overrun.limit`, `overrun.unit`, `thread.name`,
//! `code.file.path`, `code.line.number`, `overrun.suppressed` when events of
//! its site and kind were limited, and the trace and span id of the
//! OpenTelemetry span active on that thread (`opentelemetry` 0.33's
//! [`Context`]) when there is one. A `tracing` span is one through
//! `tracing-opentelemetry` (which enters the OpenTelemetry context with the
//! span): with `#[tracing::instrument]` on the function too, above or below
//! `#[overrun::measure]`, the event carries the function's own span. A
//! task's `poll` and `lifetime` violations carry the span the task was
//! spawned in (the exporter sets [`overrun::tasks::on_spawn`]).
//! They leave on their own schedule (see the settings), not with the
//! metrics.
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
//! The environment variables of OpenTelemetry's specification for OTLP
//! exporters (all but the client certificate and key for mutual TLS and
//! `…_INSECURE`, which overrun-otlp does not support: set, they are warned
//! about). A builder call wins over the environment; a
//! signal's own variable (`…_METRICS_…`, `…_LOGS_…`; logs carry the
//! violation events) wins over the generic one; then the default.
//!
//! | variable | what it does | default | builder |
//! | --- | --- | --- | --- |
//! | `OTEL_SDK_DISABLED` | `true`: `install()` starts nothing; the handle sends and keeps nothing | `false` | |
//! | `OTEL_METRICS_EXPORTER` | a list with `otlp`: metrics are sent; `none`, or only other exporters (`prometheus`, `console`): not sent by this exporter | `otlp` | |
//! | `OTEL_LOGS_EXPORTER` | the same for violation events (`none`: none kept or sent) | `otlp` | |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; over HTTP, `/v1/metrics` and `/v1/logs` are added | `http://localhost:4318` (gRPC `:4317`) | [`endpoint`](Builder::endpoint) |
//! | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `…_LOGS_ENDPOINT` | one signal's whole URL, used as is | the above | |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_METRICS_PROTOCOL`, `…_LOGS_PROTOCOL` | `grpc` or `http/protobuf` | `http/protobuf` | [`protocol`](Builder::protocol) |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_METRICS_HEADERS`, `…_LOGS_HEADERS` | `k=v,k2=v2`, percent-decoded; sent on every request, never printed | none | [`header`](Builder::header) (added over them) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_METRICS_TIMEOUT`, `…_LOGS_TIMEOUT` | one request's limit, milliseconds | 10 000 | [`timeout`](Builder::timeout) |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION`, `…_METRICS_COMPRESSION`, `…_LOGS_COMPRESSION` | `gzip` or `none` | `none` | [`compression`](Builder::compression) |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_METRICS_CERTIFICATE`, `…_LOGS_CERTIFICATE` | a PEM file of CA certificates trusted besides the system's | the system's roots | [`ca_certificate_pem`](Builder::ca_certificate_pem) |
//! | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative`, `delta` or `lowmemory` (delta) | `cumulative` | [`temporality`](Builder::temporality) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | time between metric exports, milliseconds | 60 000 | [`interval`](Builder::interval) |
//! | `OTEL_BLRP_SCHEDULE_DELAY` | violation events are sent this often (milliseconds), apart from the metrics | 1 000 | [`events_delay`](Builder::events_delay) |
//! | `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE` | events per request; as many waiting sends them at once | 512 | [`events_batch`](Builder::events_batch) |
//! | `OTEL_BLRP_MAX_QUEUE_SIZE` | events kept while they cannot be sent (beyond, the oldest are dropped, counted) | 4 096 (the specification says 2 048; an event is small) | [`max_pending_events`](Builder::max_pending_events) |
//! | `OTEL_SERVICE_NAME` | `service.name` | `unknown_service:<program>` | [`service_name`](Builder::service_name) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `k=v,…`, percent-decoded, into the resource | | [`resource_attribute`](Builder::resource_attribute) |
//!
//! A variable whose value is not usable (`OTEL_EXPORTER_OTLP_TIMEOUT=10s`,
//! `…_COMPRESSION=zstd`, `…_PROTOCOL=GRPC`, a certificate file that cannot
//! be read) never stops start-up: `install()` says so once on stderr,
//! naming the variable, and the next level applies (as the specification
//! asks). A builder value that is not usable is an [`Error`] naming the
//! method.
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

mod builder;
mod config;
mod encode;
mod events;
mod transport;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use encode::{EVENT_NAME, RECOVERED_EVENT_NAME};

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
/// assert!(matches!(err, overrun_otlp::Error::Invalid { ref setting, .. } if setting == "timeout()"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting (builder value or environment variable) is not usable.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The variable or builder method it came from.
        setting: String,
        /// What is wrong with it (never a header value).
        reason: String,
    },
    /// The exporter thread or its runtime could not be started.
    #[error("cannot start the OTLP exporter thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn invalid(setting: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }
}

pub use builder::Builder;

/// What the exporter has done so far.
///
/// ```
/// # use std::time::Duration;
/// #[overrun::measure(budget = "1ns")]
/// fn stats_doc_fn() {
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// let otlp = overrun_otlp::OtlpExporter::builder()
///     .endpoint("http://127.0.0.1:1") // nothing listens there
///     .timeout(Duration::from_millis(500))
///     .install()
///     .unwrap();
/// stats_doc_fn(); // one violation event, waiting for a collector
/// otlp.flush();
/// let stats = otlp.stats();
/// assert_eq!((stats.metric_exports, stats.metric_failures), (0, 1));
/// assert_eq!((stats.events_sent, stats.events_pending), (0, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Events waiting for an export, or in a request not answered yet.
    pub events_pending: u64,
    /// Events over the rate limit.
    pub events_rate_limited: u64,
    /// Events dropped because the queue was full during an outage.
    pub events_queue_dropped: u64,
    /// The most recent failure of either signal, kept after exports succeed
    /// again (no header values, ever). Whether a signal is failing now is
    /// [`metrics_error`](Self::metrics_error) and
    /// [`logs_error`](Self::logs_error).
    pub last_error: Option<String>,
    /// Why the last metrics export failed; `None` once one succeeds.
    pub metrics_error: Option<String>,
    /// Why the last logs export failed; `None` once one succeeds.
    pub logs_error: Option<String>,
    /// Events the last round at shutdown could not send (a collector down
    /// or hanging): dropped with the exporter, and counted here.
    pub events_shutdown_dropped: u64,
}

/// What the exporter's handle and its thread share.
struct Shared {
    queue: Arc<events::Queue>,
    stats: Mutex<ExportStats>,
    /// Export rounds started and finished (successful or not), to wait on.
    started: AtomicU64,
    exports: AtomicU64,
    /// Signalled when a round finishes (paired with `finished_lock`).
    finished: parking_lot::Condvar,
    finished_lock: Mutex<()>,
    /// The worker is running its loop (false once it has stopped).
    alive: std::sync::atomic::AtomicBool,
    /// Told when the process' last round is asked for: a round under way
    /// gets half the shutdown timeout to finish, then the last round sends
    /// every pending event within what is left.
    last_call: tokio::sync::Notify,
    /// Last rounds finished (`export_last` waits for its own, not for any
    /// round: an abandoned one counts as finished too).
    last_rounds: AtomicU64,
}

impl Shared {
    fn rounds(&self) -> u64 {
        self.exports.load(Ordering::Acquire)
    }

    /// Waits until `n` rounds have finished or `timeout` passed.
    fn wait_rounds(&self, n: u64, timeout: Duration) -> bool {
        self.wait_for(&self.exports, n, timeout)
    }

    /// Waits until `counter` reaches `n` (it moves under `finished_lock`,
    /// with `finished` told) or `timeout` passed.
    fn wait_for(&self, counter: &AtomicU64, n: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.finished_lock.lock();
        while counter.load(Ordering::Acquire) < n {
            if self.finished.wait_until(&mut guard, deadline).timed_out() {
                return counter.load(Ordering::Acquire) >= n;
            }
        }
        true
    }

    /// The last export of a process that ends without dropping the exporter:
    /// every count and every pending event, bounded by `timeout`; returns at
    /// once if the worker is gone.
    fn export_last(&self, timeout: Duration) {
        if !self.alive.load(Ordering::Acquire) {
            return;
        }
        let next = self.last_rounds.load(Ordering::Acquire) + 1;
        self.last_call.notify_one();
        self.wait_for(&self.last_rounds, next, timeout);
    }

    /// Asks for a round now and waits for it, at most `timeout`.
    fn export_now(&self, flush: &tokio::sync::Notify, timeout: Duration) -> bool {
        // A round already under way took its snapshot before this call: wait
        // for the next one to start and finish.
        let next = self.started.load(Ordering::Acquire) + 1;
        flush.notify_one();
        self.wait_rounds(next, timeout)
    }
}

/// A running OTLP exporter. Dropping it (or [`OtlpExporter::shutdown`])
/// makes a last export, bounded by the shutdown timeout, and stops the
/// thread. Under `#[overrun::main]`, a run that ends without dropping it —
/// `std::process::exit`, SIGINT or SIGTERM — gets the same last export
/// (metrics and pending violation events) before the process goes, bounded
/// by the same timeout.
pub struct OtlpExporter {
    shared: Arc<Shared>,
    /// The violation hook and the recovery hook (logs exported).
    hook: Option<(overrun::HookId, overrun::HookId)>,
    exit_hook: Option<overrun::run::ExitHookId>,
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
        let stats = self.shared.stats.lock();
        let q = &self.shared.queue;
        // Under the stats lock: the worker counts a delivered batch as sent
        // under it too, so the events are always either sent or pending.
        let pending = q.pending() as u64;
        let mut s = stats.clone();
        drop(stats);
        s.events_pending = pending;
        s.events_rate_limited = q.rate_dropped();
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
        self.shared.rounds()
    }

    /// Waits until `n` export rounds have finished or `timeout` passed;
    /// `true` if they have. Handy in tests and short programs (see
    /// [`OtlpExporter::rounds`]).
    pub fn wait_rounds(&self, n: u64, timeout: Duration) -> bool {
        if self.thread.is_none() {
            // Turned off by the environment: no round ever runs.
            return n == 0;
        }
        self.shared.wait_rounds(n, timeout)
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
        if self.thread.is_none() {
            // Turned off by the environment: nothing to send.
            return true;
        }
        let before = self.stats();
        let finished = self
            .shared
            .export_now(&self.flush, self.timeout * 4 + Duration::from_millis(500));
        let after = self.stats();
        finished
            && after.metric_failures == before.metric_failures
            && after.log_failures == before.log_failures
    }

    /// Makes a last export of everything pending and stops, within the
    /// shutdown timeout (plus a moment to stop the thread). A request under
    /// way is answered first (within half that time), so its events are not
    /// sent twice. Returns the final counters.
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
        if let Some((violations, recoveries)) = self.hook.take() {
            overrun::remove_hook(violations);
            overrun::remove_hook(recoveries);
        }
        if let Some(hook) = self.exit_hook.take() {
            overrun::run::remove_exit_hook(hook);
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = self.stop.send(true);
        // The worker bounds its last export by the timeout; this bounds the
        // wait even if it is stuck somewhere unexpected.
        let grace = self.shutdown_timeout + Duration::from_millis(1500);
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

/// Test plumbing for the workspace's schema-documentation test and the
/// fuzzers. Not public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    /// Every `OTEL_*` variable the exporter reads.
    pub const OTEL_VARIABLES: &[&str] = &[
        "OTEL_SDK_DISABLED",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_BLRP_SCHEDULE_DELAY",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_SERVICE_NAME",
    ];

    /// The configuration and resource resolved from these variables alone
    /// (the process environment is not read): `Debug` of the settings and
    /// the resource's attributes, and the warnings; or the error's text.
    pub fn resolve_env(vars: &[(&str, &str)]) -> Result<(String, Vec<String>), String> {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .filter(|v| !v.trim().is_empty())
        };
        let resolved = crate::config::resolve(&crate::config::Explicit::default(), &env)
            .map_err(|e| e.to_string())?;
        let resource = crate::encode::resource(None, &[], &[], &env);
        let warnings = resolved.warnings.clone();
        Ok((format!("{resolved:?} {:?}", resource.attributes), warnings))
    }

    /// Every data point the exporter would send for `snap`, as
    /// `(request number, metric name, unit, attributes as key=value)`.
    pub fn encoded_series(snap: &overrun::Snapshot) -> Vec<(usize, String, String, Vec<String>)> {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let resource = opentelemetry_proto::tonic::resource::v1::Resource::default();
        let requests = crate::encode::metrics(
            snap,
            &resource,
            crate::DEFAULT_BUCKETS,
            crate::encode::Health::default(),
            0,
            1,
        );
        let mut out = Vec::new();
        for (request, metric) in requests.iter().enumerate().flat_map(|(i, r)| {
            r.resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(move |m| (i, m))
        }) {
            let keys: Vec<Vec<String>> = match &metric.data {
                Some(Data::Sum(s)) => s.data_points.iter().map(|p| keys(&p.attributes)).collect(),
                Some(Data::Gauge(g)) => g.data_points.iter().map(|p| keys(&p.attributes)).collect(),
                Some(Data::Histogram(h)) => {
                    h.data_points.iter().map(|p| keys(&p.attributes)).collect()
                }
                _ => Vec::new(),
            };
            for k in keys {
                out.push((request, metric.name.clone(), metric.unit.clone(), k));
            }
        }
        out
    }

    fn keys(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<String> {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        attributes
            .iter()
            .map(|a| match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => format!("{}={s}", a.key),
                other => format!("{}={other:?}", a.key),
            })
            .collect()
    }
}
