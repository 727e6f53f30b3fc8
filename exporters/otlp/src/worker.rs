//! The exporter thread: one export round per interval (metrics, then the
//! queued violation events), a last round at shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Shared, Temporality, config, encode, transport};

pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The exporter thread's state.
pub(crate) struct Worker {
    pub(crate) cfg: config::Resolved,
    /// `None` for a signal turned off (`OTEL_METRICS_EXPORTER=none`, …).
    pub(crate) metrics_transport: Option<transport::Transport>,
    pub(crate) logs_transport: Option<transport::Transport>,
    pub(crate) resource: opentelemetry_proto::tonic::resource::v1::Resource,
    pub(crate) buckets: Vec<f64>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) start: u64,
    pub(crate) delta: encode::DeltaState,
    pub(crate) flush: Arc<tokio::sync::Notify>,
    pub(crate) metrics_log: FailureLog,
    pub(crate) logs_log: FailureLog,
    /// The batch of events a request is carrying: if the request is
    /// abandoned (the exporter stops while the collector hangs past half
    /// the shutdown timeout), they go back to the queue for the last round
    /// rather than vanish.
    pub(crate) in_flight: Vec<crate::events::Event>,
    /// A last round has run and nothing else since.
    pub(crate) last_done: bool,
    /// The process or the exporter is ending: the export under way sends
    /// no further request after the one in flight.
    pub(crate) ending: Arc<std::sync::atomic::AtomicBool>,
}

/// What the worker's loop does next.
enum Work {
    Round,
    Events,
    BatchFull,
    Last,
    Stop,
}

/// Counts a round as finished when it ends, however it ends (a round
/// abandoned at shutdown too), so nobody waits for it in vain.
struct Finished<'a>(&'a Shared);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        {
            // Under the lock, so a waiter between its check and its wait
            // cannot miss the wake-up.
            let _guard = self.0.finished_lock.lock();
            self.0.exports.fetch_add(1, Ordering::Release);
        }
        self.0.finished.notify_all();
    }
}

/// Tells stderr about one signal's export failures: each reason once per
/// outage (a collector that stays down, or alternates between two errors,
/// is a line or two, not one a round), and once when exports succeed again.
#[derive(Debug)]
pub(crate) struct FailureLog {
    signal: &'static str,
    endpoint: String,
    /// The reasons told since the last success.
    told: Vec<String>,
    failures: u64,
}

impl FailureLog {
    pub(crate) fn new(signal: &'static str, endpoint: &http::Uri) -> Self {
        Self {
            signal,
            endpoint: endpoint.to_string(),
            told: Vec::new(),
            failures: 0,
        }
    }

    /// The line to print for this failure, if it is news.
    pub(crate) fn failed(&mut self, reason: &str) -> Option<String> {
        self.failures += 1;
        if self.told.iter().any(|r| r == reason) {
            return None;
        }
        self.told.push(reason.to_owned());
        Some(format!(
            "overrun-otlp: {} export to {} failing: {reason} (counted in stats(); \
             each reason told once until exports succeed again)",
            self.signal, self.endpoint
        ))
    }

    /// The line to print for this success, if it ends a run of failures.
    pub(crate) fn succeeded(&mut self) -> Option<String> {
        if self.told.is_empty() {
            return None;
        }
        self.told.clear();
        let failures = std::mem::take(&mut self.failures);
        Some(format!(
            "overrun-otlp: {} export to {} recovered after {failures} failed request(s)",
            self.signal, self.endpoint
        ))
    }
}

fn tell(line: Option<String>) {
    if let Some(line) = line {
        eprintln!("{line}");
    }
}

/// A request's deadline: its timeout from now, or the round's deadline if
/// that comes first.
fn bounded(deadline: Option<tokio::time::Instant>, timeout: Duration) -> tokio::time::Instant {
    let by_timeout = tokio::time::Instant::now() + timeout;
    deadline.map_or(by_timeout, |d| d.min(by_timeout))
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

impl Worker {
    pub(crate) async fn run(
        mut self,
        mut stop: tokio::sync::watch::Receiver<bool>,
        shutdown: Duration,
    ) {
        let now = tokio::time::Instant::now();
        let mut next = now + self.cfg.interval;
        // Violation events on their own schedule (the batch log processor's):
        // every `events_delay`, and at once when a batch is full.
        let mut next_events = now + self.cfg.events_delay;
        let queue = Arc::clone(&self.shared.queue);
        let shared = Arc::clone(&self.shared);
        let ending = Arc::clone(&self.ending);
        let delta = self.cfg.temporality == Temporality::Delta;
        let ends_at = loop {
            let flush = Arc::clone(&self.flush);
            let work = tokio::select! {
                _ = tokio::time::sleep_until(next) => {
                    next += self.cfg.interval;
                    Work::Round
                }
                _ = tokio::time::sleep_until(next_events) => {
                    next_events = tokio::time::Instant::now() + self.cfg.events_delay;
                    Work::Events
                }
                _ = queue.batch_ready.notified() => Work::BatchFull,
                _ = flush.notified() => Work::Round,
                _ = shared.last_call.notified() => Work::Last,
                _ = stop.changed() => Work::Stop,
            };
            let next_work = match work {
                Work::Round | Work::Events | Work::BatchFull => {
                    self.last_done = false;
                    let job = async {
                        match work {
                            Work::Round => self.round(None).await,
                            Work::BatchFull => self.events(None, true).await,
                            _ => self.events(None, false).await,
                        }
                    };
                    tokio::pin!(job);
                    let end = tokio::select! {
                        () = &mut job => None,
                        _ = shared.last_call.notified() => Some(Work::Last),
                        _ = stop.changed() => Some(Work::Stop),
                    };
                    if let Some(end) = end {
                        let ends_at = tokio::time::Instant::now() + shutdown;
                        // A request under way that a collector may have
                        // received — events, or a delta — gets half the
                        // shutdown time to be answered: abandoned, it would
                        // be sent twice. (A collector answers in
                        // milliseconds; one that hangs costs the last round
                        // only that half.) The export sends nothing after
                        // it. Cumulative metrics lose nothing by being
                        // abandoned.
                        if queue.awaiting_answer() || delta {
                            ending.store(true, Ordering::Relaxed);
                            let _ = tokio::time::timeout(shutdown / 2, job).await;
                            ending.store(false, Ordering::Relaxed);
                        }
                        Some((end, ends_at))
                    } else {
                        None
                    }
                }
                Work::Last | Work::Stop => Some((work, tokio::time::Instant::now() + shutdown)),
            };
            match next_work {
                Some((Work::Stop, ends_at)) => break ends_at,
                Some((_, ends_at)) => {
                    // The process is ending: everything pending, bounded.
                    self.last_round(ends_at).await;
                    continue;
                }
                None => {}
            }
            let now = tokio::time::Instant::now();
            if next < now {
                // An export took longer than the interval: skip, don't burst.
                next = now + self.cfg.interval;
            }
        };
        // A last round that just ran (the process is ending and then the
        // handle is dropped) is not run twice, unless events came since.
        if !(self.last_done && self.shared.queue.len() == 0) {
            self.last_round(ends_at).await;
        }
        // What the last round could not send goes with the exporter:
        // counted, with its reason, not left looking pending.
        let left = self.shared.queue.take(usize::MAX).len() as u64;
        self.shared.stats.lock().events_shutdown_dropped += left;
        self.shared.alive.store(false, Ordering::Release);
    }

    /// Every count and every pending event (the batch an abandoned request
    /// carried first), bounded by `deadline`.
    async fn last_round(&mut self, deadline: tokio::time::Instant) {
        if !self.in_flight.is_empty() {
            self.shared
                .queue
                .put_back(std::mem::take(&mut self.in_flight));
        }
        self.round(Some(deadline)).await;
        self.last_done = true;
        {
            let _guard = self.shared.finished_lock.lock();
            self.shared.last_rounds.fetch_add(1, Ordering::Release);
        }
        self.shared.finished.notify_all();
    }

    /// One export: metrics, then pending events (all of them at shutdown).
    async fn round(&mut self, deadline: Option<tokio::time::Instant>) {
        self.shared.started.fetch_add(1, Ordering::AcqRel);
        let shared = Arc::clone(&self.shared);
        let _finished = Finished(&shared);

        if let Some(transport) = self.metrics_transport.as_mut() {
            let timeout = self.cfg.metrics.timeout;
            let health = {
                // The limiter's table is read before the stats lock is
                // taken, not under it.
                let q = &self.shared.queue;
                let rate_dropped = q.rate_dropped();
                let queue_dropped = q.queue_dropped.load(Ordering::Relaxed);
                let stats = self.shared.stats.lock();
                encode::Health {
                    metric_failures: stats.metric_failures,
                    log_failures: stats.log_failures,
                    rate_dropped,
                    queue_dropped,
                }
            };
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
                if deadline.is_none() && self.ending.load(Ordering::Relaxed) {
                    break;
                }
                let accepted = (self.cfg.temporality == Temporality::Delta)
                    .then(|| self.delta.apply(&mut req));
                let result = within(
                    bounded(deadline, timeout),
                    "metrics",
                    timeout,
                    transport.send_metrics(req),
                )
                .await;
                let mut stats = self.shared.stats.lock();
                match result {
                    Ok(()) => {
                        stats.metric_exports += 1;
                        stats.metrics_error = None;
                        if let Some(a) = accepted {
                            self.delta.accept(a);
                        }
                        tell(self.metrics_log.succeeded());
                    }
                    Err(e) => {
                        stats.metric_failures += 1;
                        tell(self.metrics_log.failed(&e));
                        stats.metrics_error = Some(e.clone());
                        stats.last_error = Some(e);
                        // The collector is likely down: the rest of this
                        // round waits for the next one (cumulative figures
                        // lose nothing by it).
                        break;
                    }
                }
            }
        }

        self.events(deadline, false).await;
    }

    /// Sends the violation events waiting now, a batch per request (all of
    /// them, bounded by `deadline`, at shutdown); a failed request puts its
    /// batch back and ends the attempt.
    async fn events(&mut self, deadline: Option<tokio::time::Instant>, full_only: bool) {
        // A full batch sends the full batches waiting; the schedule, a
        // flush or the last round send everything waiting.
        let waiting = self.shared.queue.len();
        let batches = if full_only {
            waiting / self.cfg.events_batch
        } else {
            waiting.div_ceil(self.cfg.events_batch).max(1)
        };
        if batches == 0 {
            return;
        }
        let mut sent_batches = 0;
        while let Some(transport) = self.logs_transport.as_mut() {
            let timeout = self.cfg.logs.timeout;
            if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                // Past the last round's deadline: what is left is counted
                // by the caller, not sent half-way.
                break;
            }
            if deadline.is_none() && self.ending.load(Ordering::Relaxed) {
                // Ending: the last round sends the rest.
                break;
            }
            self.in_flight = self.shared.queue.take_for_request(self.cfg.events_batch);
            if self.in_flight.is_empty() {
                break;
            }
            let n = self.in_flight.len();
            let req = encode::logs(&self.in_flight, &self.resource);
            let result = within(
                bounded(deadline, timeout),
                "logs",
                timeout,
                transport.send_logs(req),
            )
            .await;
            let mut stats = self.shared.stats.lock();
            match result {
                Ok(()) => {
                    self.in_flight.clear();
                    self.shared.queue.delivered();
                    stats.log_exports += 1;
                    stats.events_sent += n as u64;
                    stats.logs_error = None;
                    tell(self.logs_log.succeeded());
                }
                Err(e) => {
                    stats.log_failures += 1;
                    tell(self.logs_log.failed(&e));
                    stats.logs_error = Some(e.clone());
                    stats.last_error = Some(e);
                    drop(stats);
                    self.shared
                        .queue
                        .put_back(std::mem::take(&mut self.in_flight));
                    break;
                }
            }
            // Only the batches waiting now: events raised meanwhile go with
            // the next, so a storm cannot keep this loop going.
            sent_batches += 1;
            if deadline.is_none() && sent_batches >= batches {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailureLog;

    #[test]
    fn failures_are_told_once_per_reason_and_recovery_once() {
        let mut log = FailureLog::new("metrics", &"http://c:4318/v1/metrics".parse().unwrap());
        let refused = "connection refused";
        let first = log.failed(refused).expect("the first failure is told");
        assert!(
            first
                .contains("metrics export to http://c:4318/v1/metrics failing: connection refused")
        );
        assert_eq!(log.failed(refused), None, "the same reason again is not");
        assert_eq!(log.failed(refused), None);
        let changed = log
            .failed("metrics export timed out after 10s")
            .expect("a new reason is");
        assert!(changed.contains("timed out"));
        // Alternating between the two: neither is told again.
        assert_eq!(log.failed(refused), None);
        assert_eq!(log.failed("metrics export timed out after 10s"), None);
        let back = log.succeeded().expect("the recovery is told");
        assert!(
            back.ends_with("recovered after 6 failed request(s)"),
            "{back}"
        );
        assert_eq!(log.succeeded(), None, "success after success is not");
        assert!(log.failed(refused).is_some(), "a new outage is told again");
    }
}
