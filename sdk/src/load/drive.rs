//! One load level: requests at a rate (open model) or from a number of
//! callers (closed model) for one step, and what they measured.
//!
//! Every request ends in the level's tally exactly once: when its future
//! completes, or as an error when it is dropped first — it panicked, or the
//! level ended and cut it off. A level ends when its requests are done, or
//! a drain time after its schedule (as long as the step, at least a second;
//! at most a second once the run is stopped) when the rest are cut off:
//! nothing of one level runs into the next.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::Outcome;
use crate::record::stats::{BUCKETS, Histogram, bucket_index};

/// What one level's requests measured.
pub(super) struct Measured {
    /// Latencies of every request that ended, ns: from the moment each was
    /// scheduled (open model) or started (closed model) to its end, or to
    /// the moment it was cut off.
    pub(super) latencies: Histogram,
    /// Requests that failed, panicked, were cut off, could not start
    /// (`max_in_flight` reached) or could not be sent in time.
    pub(super) errors: u64,
    /// Requests scheduled (open model) or started (closed model).
    pub(super) requests: u64,
    /// Requests that completed per second of the level, its drain included.
    pub(super) achieved: f64,
    /// The run's stop signal cut the level short.
    pub(super) stopped: bool,
}

/// The requests of one level, as they end: latencies counted in the
/// crate's own histogram buckets (an add per request, memory fixed
/// whatever the number of requests).
struct Tally {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
    errors: AtomicU64,
    /// Requests that ended (each once).
    ended: AtomicU64,
    /// Of those, the ones whose future completed.
    completed: AtomicU64,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        }
    }
}

impl Tally {
    fn end(&self, latency: Duration, error: bool, completed: bool) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_index(ns)].fetch_add(1, Ordering::Relaxed);
        // A read first: the maximum rarely moves, and a read-modify-write
        // on every request would bounce its line between the workers.
        if ns > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(ns, Ordering::Relaxed);
        }
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if completed {
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
        self.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// One request's entry in the tally, made when it starts: recorded when it
/// completes, or as an error (timed to that moment) if it is dropped first.
struct Entry<'a> {
    tally: &'a Tally,
    from: Instant,
    done: bool,
}

impl Entry<'_> {
    fn complete(mut self, error: bool) {
        self.done = true;
        self.tally.end(self.from.elapsed(), error, true);
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tally.end(self.from.elapsed(), true, false);
        }
    }
}

/// Runs one request timed from `from`, until it completes or the level is
/// over.
async fn request<F, Fut>(f: &F, tally: &Tally, from: Instant, over: &mut watch::Receiver<bool>)
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let entry = Entry {
        tally,
        from,
        done: false,
    };
    tokio::select! {
        out = f() => entry.complete(out.is_error()),
        _ = over.wait_for(|&over| over) => {}
    }
}

/// How long a level waits for its last requests after its schedule: as
/// long as the step, at least a second.
fn drain_for(step: Duration) -> Duration {
    step.max(Duration::from_secs(1))
}

/// How long a level still waits for its requests once the run is stopped.
const STOPPED_DRAIN: Duration = Duration::from_secs(1);

/// Resolves when `stop` turns true; never when its sender is gone first.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|&s| s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Open model: `rate` requests per second for `step`, each scheduled at an
/// even interval and timed from that moment, so a service that stalls
/// cannot hide its queue (coordinated omission). At most `max_in_flight`
/// at once; one that cannot start is an error, and so is one the schedule
/// could not send within a tenth of the step of its time (the driver's own
/// ceiling: the level is not what it says).
///
/// The schedule is kept by a thread of its own, sleeping on the OS timer
/// (tens of microseconds late at most, where the runtime's timer rounds to
/// a millisecond and would send a millisecond's requests at once, each
/// already late), and never held up by the runtime's work. It hands each
/// request to the runtime a little before its time ([`Lead`]), so that
/// waking the schedule's thread and a parked worker is not counted in the
/// service's latency; the request then waits on the worker for its time.
pub(super) async fn open<F, Fut>(
    f: &Arc<F>,
    rate: f64,
    step: Duration,
    max_in_flight: usize,
    stop: &mut watch::Receiver<bool>,
) -> Measured
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    let tally = Arc::new(Tally::default());
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let (over_tx, over) = watch::channel(false);
    let total = (rate * step.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now();
    let late = (step / 10).max(Duration::from_millis(100));
    let halt = Arc::new(AtomicBool::new(false));
    // Stops the schedule if this level is dropped (the run was dropped).
    let _halt_on_drop = SetOnDrop(halt.clone());
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let pacer = Pacer {
        runtime: tokio::runtime::Handle::current(),
        lead: Arc::new(Lead::new(rate)),
        f: f.clone(),
        tally: tally.clone(),
        slots: slots.clone(),
        over,
        halt: halt.clone(),
        start,
        rate,
        total,
        late,
    };
    std::thread::Builder::new()
        .name("overrun-load".into())
        .spawn(move || {
            let _ = done_tx.send(pacer.run());
        })
        .expect("a thread for the load schedule");
    let mut done = std::pin::pin!(done);
    let mut was_stopped = false;
    let schedule = tokio::select! {
        // A schedule that ended as the stop came is a whole level.
        biased;
        schedule = &mut done => schedule,
        () = stopped(stop) => {
            was_stopped = true;
            halt.store(true, Ordering::Relaxed);
            done.await
        }
    };
    let (scheduled, sent, not_sent) = schedule.expect("the load schedule's thread ended early");
    let drain = Drain {
        deadline: Instant::now() + drain_for(step),
        stop,
        stopped: was_stopped,
    };
    finish(
        &tally,
        &slots,
        max_in_flight,
        &over_tx,
        drain,
        start,
        || (scheduled, sent, not_sent),
    )
    .await
}

/// The open model's schedule, on its own thread.
struct Pacer<F> {
    runtime: tokio::runtime::Handle,
    lead: Arc<Lead>,
    f: Arc<F>,
    tally: Arc<Tally>,
    slots: Arc<Semaphore>,
    over: watch::Receiver<bool>,
    /// Set when the level is cut short: the rest of the schedule is not
    /// sent, nor counted.
    halt: Arc<AtomicBool>,
    start: Instant,
    rate: f64,
    total: u64,
    late: Duration,
}

impl<F, Fut> Pacer<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    /// Sends the schedule's requests: (scheduled before any halt, spawned,
    /// refused or not sent).
    fn run(self) -> (u64, u64, u64) {
        precise_sleeps();
        let (mut spawned, mut not_sent) = (0u64, 0u64);
        for n in 0..self.total {
            let scheduled = self.start + Duration::from_secs_f64(n as f64 / self.rate);
            let handoff = scheduled.checked_sub(self.lead.get()).unwrap_or(scheduled);
            let mut now = Instant::now();
            // Only a hand-off the schedule waited for teaches the lead: one
            // it is already late for (at its ceiling, or after a stall) says
            // nothing about the hand-off, and would raise the lead to its
            // cap when the machine is busiest.
            let on_time = handoff > now;
            // Sleep in slices, so a stop is seen within 10 ms at any rate.
            while handoff > now && !self.halt.load(Ordering::Relaxed) {
                std::thread::sleep((handoff - now).min(Duration::from_millis(10)));
                now = Instant::now();
            }
            if self.halt.load(Ordering::Relaxed) {
                return (n, spawned, not_sent);
            }
            if now.saturating_duration_since(scheduled) > self.late {
                not_sent += 1;
                continue;
            }
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (f, tally, mut over, lead) = (
                        self.f.clone(),
                        self.tally.clone(),
                        self.over.clone(),
                        self.lead.clone(),
                    );
                    self.runtime.spawn(async move {
                        let lead = on_time.then_some(&*lead);
                        handed_over(&*f, &tally, scheduled, &mut over, lead).await;
                        drop(permit);
                    });
                    spawned += 1;
                }
                Err(_) => not_sent += 1,
            }
        }
        (self.total, spawned, not_sent)
    }
}

/// How long before its time the schedule hands a request to the runtime:
/// about the 95th percentile of the time from the schedule's wake-up to the
/// request's first poll on a worker (tens of microseconds on a VM whose
/// workers were parked), learnt as the requests arrive.
///
/// A request that arrives early waits on its worker, yielding to the
/// others, until its time: the lead is capped at a quarter of the interval
/// between requests, so that wait costs at most a quarter of a core at any
/// rate, and at 1 ms, so the schedule stays ahead of at most a millisecond.
struct Lead {
    ns: AtomicU64,
    most_ns: u64,
}

impl Lead {
    /// The quantile of the hand-off time the lead tracks, as the ratio of
    /// its step up (a request that arrived late) to its step down.
    const UP_PER_DOWN: u64 = 19;
    /// The step down, ns.
    const DOWN_NS: u64 = 250;

    fn new(rate: f64) -> Self {
        let interval_ns = 1e9 / rate;
        let most_ns = (interval_ns / 4.0).min(1e6) as u64;
        Self {
            ns: AtomicU64::new(most_ns.min(50_000)),
            most_ns,
        }
    }

    fn get(&self) -> Duration {
        Duration::from_nanos(self.ns.load(Ordering::Relaxed))
    }

    /// A request handed over for `scheduled` was first polled at `now`.
    fn arrived(&self, scheduled: Instant, now: Instant) {
        let late = now > scheduled;
        // A read-modify-write, as workers report at once: a lost step up
        // would weigh as much as 19 steps down and pull the lead below its
        // quantile. Relaxed: the value is a hint to the schedule, and no
        // other memory is published through it.
        let _ = self
            .ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |lead| {
                Some(if late {
                    (lead + Self::DOWN_NS * Self::UP_PER_DOWN).min(self.most_ns)
                } else {
                    lead.saturating_sub(Self::DOWN_NS)
                })
            });
    }
}

/// A request handed to the runtime ahead of its time: tells `lead` how
/// early it came (when the schedule was on time to hand it over), waits for
/// its time, and runs.
async fn handed_over<F, Fut>(
    f: &F,
    tally: &Tally,
    scheduled: Instant,
    over: &mut watch::Receiver<bool>,
    lead: Option<&Lead>,
) where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let now = Instant::now();
    if let Some(lead) = lead {
        lead.arrived(scheduled, now);
    }
    until(scheduled, now).await;
    request(f, tally, scheduled, over).await;
}

/// Waits on the worker until `t` (it is `now`), letting its other tasks
/// run meanwhile.
async fn until(t: Instant, mut now: Instant) {
    while now < t {
        if t - now > Duration::from_micros(2) {
            tokio::task::yield_now().await;
        } else {
            std::hint::spin_loop();
        }
        now = Instant::now();
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Makes the calling thread's sleeps end within microseconds of their
/// deadline (Linux lets a normal thread's timers fire up to 50 µs late, to
/// batch wake-ups), so the schedule's own lateness stays out of the
/// latencies. Called on the schedule's own thread only.
fn precise_sleeps() {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_TIMERSLACK, ns)` changes the calling thread's
    // timer slack and nothing else; the variadic call passes every argument
    // as the `unsigned long` the kernel reads.
    unsafe {
        libc::prctl(
            libc::PR_SET_TIMERSLACK,
            1_000 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}

/// Closed model: `callers` loops, each sending its next request when the
/// last one ended, for `step` (or until `stop`).
pub(super) async fn closed<F, Fut>(
    f: &Arc<F>,
    callers: usize,
    step: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Measured
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome,
{
    let tally = Arc::new(Tally::default());
    let slots = Arc::new(Semaphore::new(callers));
    let (over_tx, over) = watch::channel(false);
    let start = Instant::now();
    let end = start + step;
    let halt = Arc::new(AtomicBool::new(false));
    let _halt_on_drop = SetOnDrop(halt.clone());
    let sent = Arc::new(AtomicU64::new(0));
    for _ in 0..callers {
        let (f, tally, sent, mut over, halt) = (
            f.clone(),
            tally.clone(),
            sent.clone(),
            over.clone(),
            halt.clone(),
        );
        let permit = slots
            .clone()
            .try_acquire_owned()
            .expect("one slot per caller");
        tokio::spawn(async move {
            // The clock too, not only the flag: callers whose requests
            // complete without yielding would keep the timer that ends the
            // level from ever running.
            // (`halt` is set before `over` is sent: no need to read both.)
            // The request's clock starts after the shared count.
            while Instant::now() < end && !halt.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                request(&*f, &tally, Instant::now(), &mut over).await;
            }
            drop(permit);
        });
    }
    let was_stopped = tokio::select! {
        // A step that ended as the stop came is a whole level.
        biased;
        () = tokio::time::sleep_until(end.into()) => false,
        () = stopped(stop) => true,
    };
    halt.store(true, Ordering::Relaxed);
    let drain = Drain {
        deadline: Instant::now() + drain_for(step),
        stop,
        stopped: was_stopped,
    };
    // Read once the callers are back (their permits, released after their
    // last count and acquired by the drain, order it before this read): one
    // that passed its check as the level ended still sends.
    finish(&tally, &slots, callers, &over_tx, drain, start, || {
        let sent = sent.load(Ordering::Relaxed);
        (sent, sent, 0)
    })
    .await
}

/// How long a level waits for its last requests.
struct Drain<'a> {
    /// Until then, unless the run is stopped first.
    deadline: Instant,
    stop: &'a mut watch::Receiver<bool>,
    /// The run was stopped during the level's schedule.
    stopped: bool,
}

/// Ends a level: waits until every slot is back or the drain's deadline
/// (brought within [`STOPPED_DRAIN`] by a stop), cuts off what is still
/// out, and reads the tally. `counts_of`: (requests, spawned, not sent),
/// read after the wait.
///
/// The level is stopped when the stop cut its schedule, or came during the
/// drain and requests were still out when the shortened drain ended; a
/// level whose requests all ended is whole, whenever the stop came.
async fn finish(
    tally: &Tally,
    slots: &Semaphore,
    all: usize,
    over: &watch::Sender<bool>,
    drain: Drain<'_>,
    start: Instant,
    counts_of: impl FnOnce() -> (u64, u64, u64),
) -> Measured {
    let all = u32::try_from(all).unwrap_or(u32::MAX);
    let Drain {
        deadline,
        stop,
        stopped: cut,
    } = drain;
    let stop_by = |now: Instant| deadline.min(now + STOPPED_DRAIN);
    let (mut until, mut stop_seen) = if cut {
        (stop_by(Instant::now()), true)
    } else {
        (deadline, false)
    };
    // At most two turns: the stop shortens the wait once.
    let drained = loop {
        tokio::select! {
            biased;
            all_back = tokio::time::timeout_at(until.into(), slots.acquire_many(all)) => {
                break all_back.is_ok();
            }
            () = stopped(stop), if !stop_seen => {
                stop_seen = true;
                until = stop_by(Instant::now());
            }
        }
    };
    let was_stopped = cut || (stop_seen && !drained);
    let waited = Instant::now();
    // Cut off the rest; each records itself as it is dropped.
    let _ = over.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), slots.acquire_many(all)).await;
    let ended = tally.ended.load(Ordering::Relaxed);
    let counts: Vec<u64> = tally
        .buckets
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let latencies = Histogram::from_dense(&counts, tally.max.load(Ordering::Relaxed), 1.0);
    let (requests, spawned, not_sent) = counts_of();
    // Requests that did not even end when cut off (stuck in blocking code).
    let stuck = spawned.saturating_sub(ended);
    Measured {
        latencies,
        errors: tally.errors.load(Ordering::Relaxed) + not_sent + stuck,
        requests,
        achieved: tally.completed.load(Ordering::Relaxed) as f64
            / waited.duration_since(start).as_secs_f64(),
        stopped: was_stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_learns_the_hand_off_time_within_its_cap() {
        // 1 000 req/s: at most a quarter of the 1 ms interval.
        let lead = Lead::new(1_000.0);
        assert_eq!(lead.most_ns, 250_000);
        assert_eq!(lead.get(), Duration::from_micros(50));
        let t = Instant::now();
        // Every request arrives 100 µs after its hand-off: the lead grows
        // until they arrive on time, and then hovers just above 100 µs.
        for _ in 0..1_000 {
            let handed = t + Duration::from_millis(1);
            let scheduled = handed + lead.get();
            lead.arrived(scheduled, handed + Duration::from_micros(100));
        }
        let learnt = lead.get();
        assert!(
            (Duration::from_micros(95)..Duration::from_micros(106)).contains(&learnt),
            "{learnt:?}"
        );
        // Always late: capped.
        for _ in 0..1_000 {
            lead.arrived(t, t + Duration::from_millis(5));
        }
        assert_eq!(lead.get(), Duration::from_micros(250));
        // Always early: back to none.
        for _ in 0..1_000 {
            lead.arrived(t + Duration::from_millis(5), t);
        }
        assert_eq!(lead.get(), Duration::ZERO);
        // 40 000 req/s: a quarter of 25 µs; 10 req/s: at most 1 ms.
        assert_eq!(Lead::new(40_000.0).most_ns, 6_250);
        assert_eq!(Lead::new(10.0).most_ns, 1_000_000);
    }

    #[test]
    fn the_lead_settles_near_the_95th_percentile_of_the_hand_off() {
        let lead = Lead::new(1_000.0);
        let t = Instant::now();
        // Hand-offs of 1 to 100 µs, evenly: the 95th percentile is 95 µs.
        for round in 0..200 {
            for us in 1..=100u64 {
                let us = (us * 37 + round) % 100 + 1;
                let scheduled = t + lead.get();
                lead.arrived(scheduled, t + Duration::from_micros(us));
            }
        }
        let learnt = lead.get();
        assert!(
            (Duration::from_micros(88)..=Duration::from_micros(102)).contains(&learnt),
            "{learnt:?}"
        );
    }

    #[test]
    fn the_lead_loses_no_step_to_workers_reporting_at_once() {
        // Four threads at once, each 10 000 times one step up and 19 down:
        // with no step lost, the lead ends where it began (500 µs, far from
        // 0 and from the 1 ms cap at 1 req/s). A load and a store instead
        // of the CAS loses steps, and the lead drifts.
        let lead = Lead::new(1.0);
        lead.ns.store(500_000, Ordering::Relaxed);
        let t = Instant::now();
        let (late, early) = (t + Duration::from_nanos(1), t);
        let go = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    go.wait();
                    for _ in 0..10_000 {
                        lead.arrived(early, late);
                        for _ in 0..Lead::UP_PER_DOWN {
                            lead.arrived(late, early);
                        }
                    }
                });
            }
        });
        assert_eq!(lead.get(), Duration::from_micros(500));
    }

    #[tokio::test]
    async fn a_stop_during_the_drain_shortens_it_and_cuts_the_level_only_if_requests_are_out() {
        for stuck in [true, false] {
            let tally = Tally::default();
            let slots = Arc::new(Semaphore::new(1));
            // One request out: it never ends, or ends 100 ms in.
            let permit = slots.clone().try_acquire_owned().unwrap();
            if !stuck {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    drop(permit);
                });
            } else {
                std::mem::forget(permit);
            }
            let (over, _over_rx) = watch::channel(false);
            let (stop_tx, mut stop) = watch::channel(false);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let _ = stop_tx.send(true);
                // Held until the level is read.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
            let began = Instant::now();
            let drain = Drain {
                deadline: began + Duration::from_secs(60),
                stop: &mut stop,
                stopped: false,
            };
            let m = finish(&tally, &slots, 1, &over, drain, began, || (1, 0, 0)).await;
            // Not the 60 s drain: a second after the stop, and a second
            // for what is cut off.
            assert!(began.elapsed() < Duration::from_secs(30));
            assert_eq!(m.stopped, stuck, "stuck: {stuck}");
        }
    }

    #[tokio::test]
    async fn a_request_handed_over_early_runs_at_its_time() {
        let tally = Tally::default();
        let (_keep, mut over) = watch::channel(false);
        let lead = Lead::new(1_000.0);
        let ran = std::sync::Mutex::new(Vec::new());
        let f = || {
            ran.lock().unwrap().push(Instant::now());
            std::future::ready(())
        };
        let mut times = Vec::new();
        // Far enough ahead that the lead sees each come early, even on a
        // busy machine.
        for micros in [5_000, 10_000, 20_000] {
            let scheduled = Instant::now() + Duration::from_micros(micros);
            times.push(scheduled);
            handed_over(&f, &tally, scheduled, &mut over, Some(&lead)).await;
        }
        let ran_at = ran.lock().unwrap().clone();
        assert_eq!(ran_at.len(), 3);
        for (at, scheduled) in ran_at.iter().zip(&times) {
            assert!(at >= scheduled, "ran {:?} early", *scheduled - *at);
        }
        // Each came early: three steps down from 50 µs.
        assert_eq!(lead.get(), Duration::from_nanos(50_000 - 3 * Lead::DOWN_NS));
        assert_eq!(tally.ended.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_schedule_already_late_does_not_teach_the_lead() {
        let rate = 1_000.0;
        let lead = Arc::new(Lead::new(rate));
        let first = lead.get();
        let tally = Arc::new(Tally::default());
        let (_keep, over) = watch::channel(false);
        let pacer = Pacer {
            runtime: tokio::runtime::Handle::current(),
            lead: lead.clone(),
            f: Arc::new(|| std::future::ready(())),
            tally: tally.clone(),
            slots: Arc::new(Semaphore::new(100)),
            over,
            halt: Arc::new(AtomicBool::new(false)),
            // Every request's time is past as the schedule starts: each is
            // handed over late and arrives late, which would raise the lead
            // 19 steps a request if it taught it.
            start: Instant::now() - Duration::from_millis(100),
            rate,
            total: 20,
            late: Duration::from_secs(10),
        };
        let (_, spawned, not_sent) = tokio::task::spawn_blocking(move || pacer.run())
            .await
            .unwrap();
        assert_eq!((spawned, not_sent), (20, 0));
        while tally.ended.load(Ordering::Relaxed) < 20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(lead.get(), first);
    }
}
