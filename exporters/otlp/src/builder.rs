//! The builder: settings from the code, the environment and the defaults,
//! resolved and checked before anything starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::worker::{FailureLog, Worker, unix_nanos};
use crate::{
    Compression, DEFAULT_BUCKETS, Error, ExportStats, OtlpExporter, Protocol, Shared, Temporality,
    config, encode, events, transport,
};

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
    app_resource: Vec<(String, opentelemetry_proto::tonic::common::v1::AnyValue)>,
    buckets: Vec<f64>,
    events_per_second: u64,
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
            .field("events_delay", &self.explicit.events_delay)
            .field("events_batch", &self.explicit.events_batch)
            .field("max_pending_events", &self.explicit.events_queue)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            explicit: config::Explicit::default(),
            service_name: None,
            resource: Vec::new(),
            app_resource: Vec::new(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            events_per_second: 100,
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

    /// The application's own OpenTelemetry resource (the one its tracer and
    /// meter providers use): its attributes go on overrun's data too, so
    /// its traces and overrun's metrics and events share one resource (and
    /// one `service.instance.id`, when the application's resource sets
    /// one). Taken as it is, its detectors' attributes included, over the
    /// environment, except `telemetry.sdk.*` (overrun encodes this data);
    /// under
    /// [`resource_attribute`](Builder::resource_attribute) and
    /// [`service_name`](Builder::service_name).
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// let app = opentelemetry_sdk::Resource::builder_empty()
    ///     .with_attributes([
    ///         KeyValue::new("service.name", "checkout"),
    ///         KeyValue::new("service.instance.id", "5f0c2a8e-4b7d-4c1e-9a3f-2d6b8e1c7a90"),
    ///     ])
    ///     .build();
    /// let _builder = overrun_otlp::OtlpExporter::builder().resource(&app);
    /// ```
    pub fn resource(mut self, resource: &opentelemetry_sdk::Resource) -> Self {
        self.app_resource = encode::from_sdk(resource);
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

    /// Violation events admitted per second for each site and kind
    /// (default 100), so one noisy function cannot starve the others. The
    /// rest are counted in `overrun.violations.dropped{reason="rate_limit"}`,
    /// and the site's next event carries how many in `overrun.suppressed`:
    /// events plus their `overrun.suppressed` add up to the site's
    /// violations until its last event (every violation is still counted in
    /// `overrun.budget.violations`). The limits live in a fixed table of 256
    /// sites and kinds; beyond, sites share one.
    pub fn events_per_second(mut self, n: u64) -> Self {
        self.events_per_second = n;
        self
    }

    /// Events kept while the collector is unreachable (default 4096).
    pub fn max_pending_events(mut self, n: usize) -> Self {
        self.explicit.events_queue = Some(n);
        self
    }

    /// How often violation events are sent, apart from the metrics (over
    /// `OTEL_BLRP_SCHEDULE_DELAY`; default 1 s). As many events as a batch
    /// go at once, without waiting.
    pub fn events_delay(mut self, every: Duration) -> Self {
        self.explicit.events_delay = Some(every);
        self
    }

    /// Violation events per request (over
    /// `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`; default 512).
    pub fn events_batch(mut self, n: usize) -> Self {
        self.explicit.events_batch = Some(n);
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
        overrun::export::check_buckets(&self.buckets)
            .map_err(|e| Error::invalid("buckets()", e.to_string()))?;
        // Variables that were not usable: said once, then the defaults.
        for warning in &cfg.warnings {
            eprintln!("overrun-otlp: {warning}");
        }
        let cfg_timeout = cfg.metrics.timeout.max(cfg.logs.timeout);
        let shutdown_timeout = self.shutdown_timeout.unwrap_or(cfg_timeout);
        let resource = encode::resource(
            self.service_name.as_deref(),
            &self.resource,
            &self.app_resource,
            env,
        );
        let queue = Arc::new(events::Queue::new(
            cfg.events_queue,
            cfg.events_batch,
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
            alive: std::sync::atomic::AtomicBool::new(false),
            last_call: tokio::sync::Notify::new(),
            last_rounds: AtomicU64::new(0),
        });

        if cfg.disabled || !(cfg.metrics.enabled || cfg.logs.enabled) {
            // OTEL_SDK_DISABLED=true, or both signals `none`: no thread, no
            // hook, nothing sent; the handle works and counts nothing.
            let (stop, _) = tokio::sync::watch::channel(false);
            let (_, done) = std::sync::mpsc::channel();
            return Ok(OtlpExporter {
                shared,
                hook: None,
                exit_hook: None,
                stop,
                done,
                thread: None,
                shutdown_timeout,
                flush: Arc::new(tokio::sync::Notify::new()),
                timeout: cfg_timeout,
            });
        }
        let logs_enabled = cfg.logs.enabled;
        let now = unix_nanos();
        let start = now.saturating_sub(overrun::snapshot().run.wall_ns);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let flush = Arc::new(tokio::sync::Notify::new());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), Error>>();
        let buckets = self.buckets;
        let worker_shared = Arc::clone(&shared);
        let worker_flush = Arc::clone(&flush);
        // The runtime is built, run and dropped on the exporter's own thread:
        // `install()` may be called inside the application's runtime (under
        // `#[tokio::main]`), where dropping a runtime panics, and a setting
        // that fails there (a certificate, say) must be an error, not that.
        let thread = std::thread::Builder::new()
            .name("overrun-otlp".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Thread(e)));
                        return;
                    }
                };
                // The gRPC channel spawns its worker on the runtime, so the
                // transport is built inside it.
                let transports = {
                    let _enter = runtime.enter();
                    let build = |signal: &config::Signal| {
                        signal
                            .enabled
                            .then(|| transport::Transport::new(signal))
                            .transpose()
                    };
                    build(&cfg.metrics).and_then(|m| Ok((m, build(&cfg.logs)?)))
                };
                let (metrics_transport, logs_transport) = match transports {
                    Ok(transports) => transports,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let worker = Worker {
                    metrics_log: FailureLog::new("metrics", &cfg.metrics.url),
                    logs_log: FailureLog::new("logs", &cfg.logs.url),
                    in_flight: Vec::new(),
                    ending: Arc::default(),
                    last_done: false,
                    cfg,
                    metrics_transport,
                    logs_transport,
                    resource,
                    buckets,
                    shared: worker_shared,
                    start,
                    delta: encode::DeltaState::new(start),
                    flush: worker_flush,
                };
                // Alive before `install()` returns: a process that exits at
                // once still gets its last export.
                worker.shared.alive.store(true, Ordering::Release);
                let _ = ready_tx.send(Ok(()));
                runtime.block_on(worker.run(stop_rx, shutdown_timeout));
                let _ = done_tx.send(());
            })
            .map_err(Error::Thread)?;
        let started = ready_rx.recv().unwrap_or_else(|_| {
            Err(Error::Thread(std::io::Error::other(
                "the exporter thread ended before it started",
            )))
        });
        if let Err(e) = started {
            let _ = thread.join();
            return Err(e);
        }
        // Violation events only when logs are exported.
        if logs_enabled {
            // A task's violations carry the trace it was spawned in.
            overrun::tasks::on_spawn(crate::events::spawn_context);
        }
        let hook = logs_enabled.then(|| {
            let recoveries = Arc::clone(&hook_queue);
            (
                overrun::on_violation(move |v| hook_queue.offer(v)),
                overrun::on_recovery(move |r| recoveries.offer_recovery(r)),
            )
        });
        // The run ends without this handle being dropped (`process::exit`,
        // SIGTERM): one last round of metrics and events, bounded.
        let exit_hook = {
            let shared = Arc::clone(&shared);
            let bound = shutdown_timeout + Duration::from_millis(500);
            overrun::run::on_exit(move || shared.export_last(bound))
        };
        Ok(OtlpExporter {
            shared,
            hook,
            exit_hook: Some(exit_hook),
            stop: stop_tx,
            done: done_rx,
            thread: Some(thread),
            shutdown_timeout,
            flush,
            timeout: cfg_timeout,
        })
    }
}
