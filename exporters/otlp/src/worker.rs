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
    pub(crate) transport: transport::Transport,
    pub(crate) resource: opentelemetry_proto::tonic::resource::v1::Resource,
    pub(crate) buckets: Vec<f64>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) start: u64,
    pub(crate) delta: encode::DeltaState,
    pub(crate) flush: Arc<tokio::sync::Notify>,
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
    pub(crate) async fn run(
        mut self,
        mut stop: tokio::sync::watch::Receiver<bool>,
        shutdown: Duration,
    ) {
        self.shared.alive.store(true, Ordering::Release);
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
            if self.shared.last_round.load(Ordering::Acquire) {
                // The process is ending: everything pending, bounded.
                let deadline = tokio::time::Instant::now() + shutdown;
                self.round(Some(deadline)).await;
                continue;
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
        self.shared.alive.store(false, Ordering::Release);
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
            rate_dropped: q.rate_dropped.load(),
            queue_dropped: q.queue_dropped.load(Ordering::Relaxed),
        }
    }
}
