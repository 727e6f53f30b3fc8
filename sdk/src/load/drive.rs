//! One load level: requests at a rate (open model) or from a number of
//! callers (closed model) for one step, and what they measured.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use std::time::Instant;
use tokio::sync::Semaphore;

use super::Outcome;

/// What one level's requests measured.
pub(super) struct Measured {
    /// Latencies of the requests that ended, ns: from the moment each was
    /// scheduled (open model) or started (closed model).
    pub(super) latencies: Vec<u64>,
    /// Requests that ended in an error, could not start (`max_in_flight`
    /// reached) or had not ended when the level's drain ran out.
    pub(super) errors: u64,
    /// Requests sent or refused.
    pub(super) requests: u64,
    /// Requests that ended (with or without an error) per second of the
    /// level, its drain included.
    pub(super) achieved: f64,
}

/// The requests of one level, as they end.
#[derive(Default)]
struct Tally {
    latencies: Mutex<Vec<u64>>,
    errors: AtomicU64,
    ended: AtomicU64,
}

impl Tally {
    fn end(&self, latency: Duration, error: bool) {
        self.latencies
            .lock()
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// How long a level waits for its last requests after its step: as long as
/// the step, at least a second. Requests still out then are errors, their
/// latency counted as at least that wait.
fn drain_for(step: Duration) -> Duration {
    step.max(Duration::from_secs(1))
}

/// Open model: `rate` requests per second for `step`, each scheduled at an
/// even interval and timed from that moment, so a service that stalls
/// cannot hide its queue (coordinated omission). At most `max_in_flight`
/// at once; one that cannot start is an error.
///
/// The schedule is kept by a thread of its own, sleeping on the OS timer
/// (tens of microseconds late at most, where the runtime's timer rounds to
/// a millisecond and would send a millisecond's requests at once, each
/// already late), and never held up by the runtime's work.
pub(super) async fn open<F, Fut>(
    f: &Arc<F>,
    rate: f64,
    step: Duration,
    max_in_flight: usize,
) -> Measured
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    let tally = Arc::new(Tally::default());
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let total = (rate * step.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now();
    let at = move |n: u64| start + Duration::from_secs_f64(n as f64 / rate);
    // Stops the schedule if this level is dropped (the run was stopped).
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    struct Cancel(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Cancel {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _cancel = Cancel(cancelled.clone());
    let runtime = tokio::runtime::Handle::current();
    let pacer = {
        let (f, tally, slots) = (f.clone(), tally.clone(), slots.clone());
        tokio::task::spawn_blocking(move || {
            precise_sleeps();
            let mut refused = 0u64;
            for n in 0..total {
                let scheduled = at(n);
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                if cancelled.load(Ordering::Relaxed) {
                    break;
                }
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (f, tally) = (f.clone(), tally.clone());
                        runtime.spawn(async move {
                            let error = f().await.is_error();
                            tally.end(scheduled.elapsed(), error);
                            drop(permit);
                        });
                    }
                    Err(_) => refused += 1,
                }
            }
            refused
        })
    };
    let refused = pacer.await.unwrap_or(0);
    let last = at(total - 1);
    let (out, waited) = drain(&slots, max_in_flight, step).await;
    let ended = tally.ended.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *tally.latencies.lock());
    // Those still out: at least as late as the drain was long.
    let late = u64::try_from(last.elapsed().as_nanos()).unwrap_or(u64::MAX);
    latencies.extend(std::iter::repeat_n(late, out));
    Measured {
        latencies,
        errors: tally.errors.load(Ordering::Relaxed) + refused + out as u64,
        requests: total,
        achieved: ended as f64 / waited.duration_since(start).as_secs_f64(),
    }
}

/// Makes this thread's sleeps end within microseconds of their deadline
/// (Linux lets a normal thread's timers fire up to 50 µs late, to batch
/// wake-ups), so the schedule's own lateness stays out of the latencies.
fn precise_sleeps() {
    #[cfg(target_os = "linux")]
    // SAFETY: `PR_SET_TIMERSLACK` takes a number of nanoseconds and only
    // changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

/// Closed model: `callers` loops, each sending its next request when the
/// last one ended, for `step`.
pub(super) async fn closed<F, Fut>(f: &Arc<F>, callers: usize, step: Duration) -> Measured
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    let tally = Arc::new(Tally::default());
    let slots = Arc::new(Semaphore::new(callers));
    let start = Instant::now();
    let stop = Instant::now() + step;
    let sent = Arc::new(AtomicU64::new(0));
    for _ in 0..callers {
        let (f, tally, sent) = (f.clone(), tally.clone(), sent.clone());
        let permit = slots
            .clone()
            .try_acquire_owned()
            .expect("one slot per caller");
        tokio::spawn(async move {
            while Instant::now() < stop {
                sent.fetch_add(1, Ordering::Relaxed);
                let began = Instant::now();
                let error = f().await.is_error();
                tally.end(began.elapsed(), error);
            }
            drop(permit);
        });
    }
    let (out, waited) = drain(&slots, callers, step).await;
    let ended = tally.ended.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *tally.latencies.lock());
    let late = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
    latencies.extend(std::iter::repeat_n(late, out));
    Measured {
        latencies,
        errors: tally.errors.load(Ordering::Relaxed) + out as u64,
        requests: sent.load(Ordering::Relaxed),
        achieved: ended as f64 / waited.duration_since(start).as_secs_f64(),
    }
}

/// Waits until every slot is back or the drain time is up: (requests still
/// out, when the wait ended).
async fn drain(slots: &Arc<Semaphore>, all: usize, step: Duration) -> (usize, Instant) {
    let all_back = slots.acquire_many(u32::try_from(all).unwrap_or(u32::MAX));
    match tokio::time::timeout(drain_for(step), all_back).await {
        Ok(_) => (0, Instant::now()),
        Err(_) => (all - slots.available_permits(), Instant::now()),
    }
}
