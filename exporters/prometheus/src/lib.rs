//! # overrun-prometheus
//!
//! Serves every overrun figure and budget violation on a Prometheus
//! `/metrics` endpoint, in the metric schema of overrun's design (calls,
//! errors, duration histogram, self time, allocations, budgets, violations by
//! kind, tasks, process memory, exporter health).
//!
//! # Quick start
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let exporter = overrun_prometheus::PrometheusExporter::builder()
//!     .listen("127.0.0.1:0".parse()?) // loopback is the default; 0 picks a free port
//!     .install()?; // serves GET /metrics from a background thread
//! println!("scrape http://{}/metrics", exporter.local_addr());
//! # Ok(()) }
//! ```
//!
//! Dropping the returned [`PrometheusExporter`] stops the server.
//!
//! # One endpoint with the `metrics` facade
//!
//! A service that already records its own metrics with the `metrics` crate
//! and `metrics-exporter-prometheus` serves both on one endpoint by appending
//! that recorder's output:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use metrics::Recorder as _;
//!
//! // The team's recorder (`install_recorder()` in a real service).
//! let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
//! let handle = recorder.handle();
//! # let key = metrics::Key::from_name("app_logins_total");
//! # let meta = metrics::Metadata::new("app", metrics::Level::INFO, None);
//! # recorder.register_counter(&key, &meta).increment(1);
//! let exporter = overrun_prometheus::PrometheusExporter::builder()
//!     .listen("127.0.0.1:0".parse()?)
//!     .append(move || handle.render())
//!     .install()?;
//! assert!(exporter.render().contains("app_logins_total 1"));
//! # Ok(()) }
//! ```
//!
//! Or the other way round: serve [`Renderer::render`] from your own HTTP
//! router (see `examples/service`).
//!
//! # Cost model
//!
//! Nothing on the instrumented call path: a scrape takes an overrun snapshot
//! (merging per-thread figures without blocking the threads that record
//! them) and renders it; its cost grows with sites × buckets, never with the
//! number of calls. The server is hyper's HTTP/1.1 on a small tokio runtime
//! of the exporter's own (an accept thread, two workers, up to two render
//! threads), so it works from a plain synchronous `main` as well as beside
//! the application's runtime, never on it.
//!
//! # Hostile clients
//!
//! Connections that send nothing, or their headers slowly, cannot starve a
//! scrape: the request head must arrive within 5 s, a connection ends within
//! 15 s, and past [`Builder::max_connections`] (or when the process is out
//! of file descriptors) the oldest connection still waiting for its request
//! is closed. [`PrometheusExporter::closed`] counts them.
//!
//! # Feature flags
//!
//! - `tls`: `Builder::tls`, HTTPS with rustls (ring provider).
//!
//! Labels come only from static site metadata (function, module, kind, task
//! name), so cardinality is bounded by the code, never by data.

mod render;
mod server;
#[cfg(feature = "tls")]
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use render::DEFAULT_BUCKETS;

/// Extra exposition text appended to every scrape.
type Extra = Arc<dyn Fn() -> String + Send + Sync>;

/// Why the exporter could not start.
///
/// ```
/// let err = overrun_prometheus::PrometheusExporter::builder()
///     .buckets(&[0.5, 0.1])
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, overrun_prometheus::Error::Buckets(_)));
/// assert_eq!(err.to_string(), "invalid histogram buckets: bounds must increase: 0.5 is followed by 0.1");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address could not be bound (in use, not local, no right).
    #[error("cannot listen on {addr} for /metrics: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bucket list is empty, not increasing, or not finite and positive.
    #[error("invalid histogram buckets: {0}")]
    Buckets(#[source] overrun::export::BucketsError),
    /// The server thread could not be started.
    #[error("cannot start the exporter thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The TLS certificate or key could not be read or used.
    #[error("TLS for /metrics: {}: {source}", path.display())]
    Tls {
        /// The certificate or key file.
        path: std::path::PathBuf,
        /// What is wrong with it (never the key's content).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Configures a [`PrometheusExporter`] or a [`Renderer`].
#[must_use]
pub struct Builder {
    listen: SocketAddr,
    buckets: Vec<f64>,
    extra: Vec<Extra>,
    workers: usize,
    max_connections: usize,
    auth: Option<server::Auth>,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are never printed: only which kind is set.
        f.debug_struct("Builder")
            .field("listen", &self.listen)
            .field("buckets", &self.buckets)
            .field("extra", &self.extra.len())
            .field("workers", &self.workers)
            .field("max_connections", &self.max_connections)
            .field("auth", &self.auth.as_ref().map(server::Auth::scheme))
            .field("tls", &self.tls)
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            buckets: DEFAULT_BUCKETS.to_vec(),
            extra: Vec::new(),
            workers: 2,
            max_connections: 1024,
            auth: None,
            tls: None,
        }
    }
}

impl Builder {
    /// The address to serve `/metrics` on. Default `127.0.0.1:9464`
    /// (loopback: exposing it further is an explicit choice).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Upper bounds (seconds) of the `overrun_duration_seconds` buckets.
    /// Default [`DEFAULT_BUCKETS`].
    pub fn buckets(mut self, bounds: &[f64]) -> Self {
        self.buckets = bounds.to_vec();
        self
    }

    /// Appends the text `f` returns to every scrape, such as a
    /// `metrics-exporter-prometheus` handle's `render()`.
    pub fn append(mut self, f: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.extra.push(Arc::new(f));
        self
    }

    /// Threads answering scrapes (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Most connections open at once (default 1 024). A new connection
    /// beyond it closes the oldest one, as does one the OS refuses for want
    /// of file descriptors: idle or slow clients never lock a scrape out.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Requires HTTP basic authentication (Prometheus' `basic_auth`), for
    /// an endpoint bound beyond loopback (with `tls`, feature `tls`, or
    /// the password crosses the network in the clear). Other requests get
    /// `401`. Replaces [`bearer_token`](Builder::bearer_token). The
    /// credentials are never printed, by `Debug` or in an error.
    ///
    /// ```
    /// let builder = overrun_prometheus::PrometheusExporter::builder()
    ///     .basic_auth("prometheus", "s3cret");
    /// assert!(!format!("{builder:?}").contains("s3cret"));
    /// ```
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(server::Auth::basic(user, password));
        self
    }

    /// Requires `Authorization: Bearer <token>` (Prometheus'
    /// `authorization` with a credentials file). Replaces [`basic_auth`].
    ///
    /// [`basic_auth`]: Builder::basic_auth
    ///
    /// ```
    /// let builder = overrun_prometheus::PrometheusExporter::builder().bearer_token("t0ken");
    /// assert!(!format!("{builder:?}").contains("t0ken"));
    /// ```
    pub fn bearer_token(mut self, token: &str) -> Self {
        self.auth = Some(server::Auth::bearer(token));
        self
    }

    /// Serves HTTPS with the PEM certificate chain and private key in these
    /// files, read at [`install`](Builder::install) (feature `tls`).
    ///
    /// ```
    /// # #[cfg(feature = "tls")] {
    /// let err = overrun_prometheus::PrometheusExporter::builder()
    ///     .listen("127.0.0.1:0".parse().unwrap())
    ///     .tls("/no/such/cert.pem", "/no/such/key.pem")
    ///     .install()
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("TLS for /metrics: /no/such/cert.pem"));
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        certificate_chain: impl Into<std::path::PathBuf>,
        private_key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls = Some((certificate_chain.into(), private_key.into()));
        self
    }

    /// A renderer for serving `/metrics` from your own HTTP server.
    ///
    /// ```
    /// let renderer = overrun_prometheus::PrometheusExporter::builder().build().unwrap();
    /// assert!(renderer.render().contains("# TYPE overrun_process_resident_memory_bytes gauge"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Buckets`] for an empty, unsorted or non-positive bucket list.
    pub fn build(self) -> Result<Renderer, Error> {
        overrun::export::check_buckets(&self.buckets).map_err(Error::Buckets)?;
        Ok(Renderer {
            inner: Arc::new(RendererInner {
                buckets: self.buckets,
                extra: self.extra,
                scrapes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        })
    }

    /// Binds the address and serves `GET /metrics` from background threads.
    ///
    /// ```
    /// let first = overrun_prometheus::PrometheusExporter::builder()
    ///     .listen("127.0.0.1:0".parse().unwrap())
    ///     .install()
    ///     .unwrap();
    /// // The same address again: an error that names it.
    /// let err = overrun_prometheus::PrometheusExporter::builder()
    ///     .listen(first.local_addr())
    ///     .install()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains(&first.local_addr().to_string()));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the address, [`Error::Buckets`],
    /// [`Error::Tls`] naming the file, or [`Error::Thread`].
    pub fn install(mut self) -> Result<PrometheusExporter, Error> {
        let listen = self.listen;
        #[cfg(feature = "tls")]
        let tls = match self.tls.take() {
            Some((chain, key)) => Some(tls::config(&chain, &key)?),
            None => None,
        };
        let options = server::Options {
            workers: self.workers,
            max_connections: self.max_connections,
            auth: self.auth.take(),
            #[cfg(feature = "tls")]
            tls,
        };
        let renderer = self.build()?;
        let server = server::Server::start(listen, options, renderer.clone())?;
        Ok(PrometheusExporter { renderer, server })
    }
}

/// The `Content-Type` of the classic text exposition format.
pub(crate) const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of OpenMetrics 1.0.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct RendererInner {
    buckets: Vec<f64>,
    extra: Vec<Extra>,
    scrapes: AtomicU64,
    failures: AtomicU64,
}

/// Renders overrun's figures as Prometheus text (for your own HTTP server,
/// or through [`PrometheusExporter`]).
#[derive(Clone)]
pub struct Renderer {
    inner: Arc<RendererInner>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("buckets", &self.inner.buckets)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// One scrape's body: a fresh snapshot in the text exposition format,
    /// followed by any appended text.
    ///
    /// ```
    /// #[overrun::measure(budget = "1s")]
    /// fn handler() {}
    /// handler();
    /// let text = overrun_prometheus::PrometheusExporter::builder().build().unwrap().render();
    /// assert!(text.contains(r#"overrun_calls_total{function="handler""#));
    /// assert!(text.contains(r#"overrun_budget_seconds{function="handler""#));
    /// ```
    pub fn render(&self) -> String {
        self.render_as(render::Format::Classic)
    }

    /// One scrape's body in OpenMetrics 1.0: the same series, counters as
    /// families without `_total`, each histogram bucket with the newest
    /// exemplar of its range (the trace of a call over its time budget:
    /// `# {trace_id="…",span_id="…"} 0.062 1700000000.123`), appended text
    /// in the classic format made OpenMetrics, and `# EOF`.
    ///
    /// ```
    /// let text = overrun_prometheus::PrometheusExporter::builder()
    ///     .build()
    ///     .unwrap()
    ///     .render_openmetrics();
    /// assert!(text.contains("# TYPE overrun_exporter_scrapes counter\n"));
    /// assert!(text.ends_with("# EOF\n"));
    /// ```
    pub fn render_openmetrics(&self) -> String {
        self.render_as(render::Format::OpenMetrics)
    }

    /// One scrape's body in the format a request's `Accept` header asks
    /// for, with its `Content-Type`: OpenMetrics (exemplars) when it
    /// accepts `application/openmetrics-text` at least as much as
    /// `text/plain` — as Prometheus does — else the classic text. For an
    /// endpoint of your own.
    ///
    /// ```
    /// let r = overrun_prometheus::PrometheusExporter::builder().build().unwrap();
    /// let (content_type, body) = r.render_for(Some("application/openmetrics-text;version=1.0.0"));
    /// assert!(content_type.starts_with("application/openmetrics-text"));
    /// assert!(body.ends_with("# EOF\n"));
    /// let (content_type, _) = r.render_for(None);
    /// assert!(content_type.starts_with("text/plain"));
    /// ```
    pub fn render_for(&self, accept: Option<&str>) -> (&'static str, String) {
        let format = render::negotiate(accept);
        let content_type = match format {
            render::Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            render::Format::Classic => CLASSIC_CONTENT_TYPE,
        };
        (content_type, self.render_as(format))
    }

    fn render_as(&self, format: render::Format) -> String {
        let inner = &self.inner;
        let scrapes = inner.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        let health = render::Health {
            scrapes,
            failures: inner.failures.load(Ordering::Relaxed),
        };
        let mut text = render::render(&overrun::snapshot(), &inner.buckets, health, format);
        for extra in &inner.extra {
            let more = extra();
            if !more.is_empty() {
                match format {
                    render::Format::Classic => text.push_str(&more),
                    render::Format::OpenMetrics => {
                        text.push_str(&render::classic_to_openmetrics(&more));
                    }
                }
                if !text.ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        if format == render::Format::OpenMetrics {
            text.push_str("# EOF\n");
        }
        text
    }

    pub(crate) fn failed(&self) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running `/metrics` endpoint. Dropping it stops the server (scrapes in
/// progress finish first).
#[derive(Debug)]
pub struct PrometheusExporter {
    renderer: Renderer,
    server: server::Server,
}

impl PrometheusExporter {
    /// Starts configuring an exporter.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// What a scrape would return now.
    pub fn render(&self) -> String {
        self.renderer.render()
    }

    /// Connections the endpoint ended early, by reason (also counted in
    /// `overrun_export_failures_total{exporter="prometheus"}`).
    ///
    /// ```
    /// let exporter = overrun_prometheus::PrometheusExporter::builder()
    ///     .listen("127.0.0.1:0".parse().unwrap())
    ///     .install()
    ///     .unwrap();
    /// assert_eq!(exporter.closed(), overrun_prometheus::Closed::default());
    /// ```
    pub fn closed(&self) -> Closed {
        let c = self.server.closed();
        Closed {
            evicted: c.evicted.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }
}

/// Connections the endpoint ended early, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// Closed, still waiting for a request, to make room for a newer
    /// connection ([`Builder::max_connections`], or the process out of file
    /// descriptors).
    pub evicted: u64,
    /// Past a deadline: the TLS handshake and the request head within 5 s
    /// each, the whole exchange within 15 s.
    pub timed_out: u64,
    /// Ended on an error: a malformed or oversized request (answered 400
    /// or 431), a reset, a failed TLS handshake, an `append` closure that
    /// panicked (answered 500).
    pub errors: u64,
}

/// Fuzzing plumbing, built only by the fuzzers (`--cfg fuzzing`). Not
/// public API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __private {
    /// What the endpoint asks for.
    #[derive(Debug, Clone, Copy)]
    pub enum Credentials<'a> {
        /// Nothing.
        Open,
        /// Basic authentication with this user and password.
        Basic(&'a str, &'a str),
        /// This bearer token.
        Bearer(&'a str),
    }

    /// The bytes the endpoint writes back for `request` (one connection,
    /// given whole, then closed by the client).
    pub fn answer_raw(credentials: Credentials<'_>, request: &[u8]) -> Vec<u8> {
        static RENDERER: std::sync::OnceLock<crate::Renderer> = std::sync::OnceLock::new();
        let renderer = RENDERER.get_or_init(|| {
            crate::PrometheusExporter::builder()
                .build()
                .expect("default buckets")
        });
        let auth = match credentials {
            Credentials::Open => None,
            Credentials::Basic(user, password) => Some(crate::server::Auth::basic(user, password)),
            Credentials::Bearer(token) => Some(crate::server::Auth::bearer(token)),
        };
        crate::server::answer_raw(renderer, auth, request)
    }
}
