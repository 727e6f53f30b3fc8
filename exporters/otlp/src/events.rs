//! Violation events on their way to the collector: captured on the thread
//! that broke the budget (with its OpenTelemetry trace context), rate
//! limited, and held in a bounded queue until an export succeeds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use overrun::Violation;
use parking_lot::Mutex;

/// The span that was active when the budget was broken, as the sdk reads
/// it (the same reading gives exemplars their ids).
pub(crate) use overrun::exemplar::ActiveSpan;
use overrun::exemplar::active_span;

/// One violation with what only its own thread knows, or an objective's
/// recovery (from the evaluator's thread, no trace).
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) violation: Violation,
    /// Set for a recovery: the record is `overrun.objective.recovered`
    /// (its `violation` carries the site, the objective and the figures for
    /// the attributes).
    pub(crate) recovery: Option<overrun::Recovery>,
    /// The thread's name; `None` for an unnamed thread (its id is in the
    /// violation, formatted on the exporter's thread).
    pub(crate) thread: Option<Arc<str>>,
    pub(crate) trace: Option<ActiveSpan>,
    /// Violations of the same site and kind not sent as events (over the
    /// limit) since the previous event of that site and kind.
    pub(crate) suppressed: u64,
}

impl Event {
    /// Captures `v` on the current thread: its name (taken once per
    /// thread, then shared) and the OpenTelemetry span active on it (read in
    /// place, not cloned).
    pub(crate) fn here(v: &Violation) -> Self {
        thread_local! {
            static NAME: Option<Arc<str>> = std::thread::current().name().map(Arc::from);
        }
        let thread = NAME.try_with(Clone::clone).ok().flatten();
        let trace = active_span();
        Self {
            violation: *v,
            recovery: None,
            thread,
            trace,
            suppressed: 0,
        }
    }
}

/// The span active where a task is spawned, to be current again when its
/// violations are raised (on the watchdog thread for a leaked task). Only
/// its ids are kept, not the span (holding it would delay its end until
/// the task ends) nor its trace state.
pub(crate) fn spawn_context() -> Option<Arc<dyn overrun::tasks::SpawnContext>> {
    let ids = active_span()?;
    Some(Arc::new(SpawnedIn(ids)))
}

/// The ids of the span a task was spawned in.
struct SpawnedIn(ActiveSpan);

impl overrun::tasks::SpawnContext for SpawnedIn {
    fn within(&self, f: &mut dyn FnMut()) {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        };
        // A span current where the violation is raised (the task's own,
        // entered by its future) is more precise: it stays.
        if active_span().is_some() {
            f();
            return;
        }
        let t = &self.0;
        let sc = SpanContext::new(
            TraceId::from_bytes(t.trace_id),
            SpanId::from_bytes(t.span_id),
            TraceFlags::new(t.flags),
            true,
            TraceState::NONE,
        );
        let _current = opentelemetry::Context::new()
            .with_remote_span_context(sc)
            .attach();
        f();
    }
}

/// Events waiting for the next export, and what was lost on the way.
#[derive(Debug)]
pub(crate) struct Queue {
    pending: Mutex<VecDeque<Event>>,
    capacity: usize,
    /// A full batch is waiting: the worker sends it without waiting for its
    /// schedule.
    batch: usize,
    pub(crate) batch_ready: tokio::sync::Notify,
    /// The limit of each site and kind, per second, and its state.
    limits: Limits,
    pub(crate) queue_dropped: AtomicU64,
    /// Events taken for a request not answered yet (the worker holds the
    /// batch): still pending for `stats()`, so "nothing pending" means
    /// "delivered".
    unanswered: AtomicU64,
}

/// Per site and kind: events admitted in the current second, and the
/// violations not admitted since its last event. A fixed table (open
/// addressing), so the violating thread allocates nothing and takes no
/// lock. Over its limit, a site's violation only reads the shared slot and
/// adds to one of its padded stripes: a storm on every core writes no
/// shared line. Past `SLOTS` sites and kinds, the rest share one slot.
#[derive(Debug)]
struct Limits {
    per_second: u64,
    slots: Box<[Slot]>,
    /// Suppressed violations already handed to events; with those still in
    /// the slots, every violation over a limit (`rate_dropped`).
    taken: AtomicU64,
}

const SLOTS: usize = 256;
const PROBES: usize = 8;
const SUPPRESSED_STRIPES: usize = 4;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    /// A hash of the site and kind, never 0; 0 while the slot is free.
    key: AtomicU64,
    /// The second (since the Unix epoch) `admitted` counts.
    window: AtomicU64,
    admitted: AtomicU64,
    suppressed: [PaddedCount; SUPPRESSED_STRIPES],
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCount(AtomicU64);

impl Limits {
    fn new(per_second: u64) -> Self {
        Self {
            per_second,
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            taken: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed since the last event)` if `v` may be sent, `None`
    /// if its site and kind are over their limit this second.
    fn admit(&self, v: &Violation) -> Option<u64> {
        let slot = self.slot(v);
        let second = v.unix_nanos / 1_000_000_000;
        if slot.window.load(Ordering::Relaxed) != second {
            // A new second: whoever sees it first opens the window. Two
            // threads racing here can admit an extra event; the limit is
            // approximate by design, never a lock.
            if slot.window.swap(second, Ordering::Relaxed) != second {
                slot.admitted.store(0, Ordering::Relaxed);
            }
        }
        if slot.admitted.load(Ordering::Relaxed) >= self.per_second
            || slot.admitted.fetch_add(1, Ordering::Relaxed) >= self.per_second
        {
            slot.suppressed[stripe() % SUPPRESSED_STRIPES]
                .0
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Each suppressed violation is in exactly one stripe until an
        // admitted event takes it: events plus their `suppressed` add up to
        // the violations offered. (An empty stripe is only read.)
        let suppressed: u64 = slot
            .suppressed
            .iter()
            .map(|c| match c.0.load(Ordering::Relaxed) {
                0 => 0,
                _ => c.0.swap(0, Ordering::SeqCst),
            })
            .sum();
        if suppressed > 0 {
            self.taken.fetch_add(suppressed, Ordering::SeqCst);
        }
        Some(suppressed)
    }

    /// Every violation over a limit so far: those handed to events as
    /// `suppressed` and those still waiting in the slots. (Read in that
    /// order, against `admit`'s swap-then-add, a count is never taken
    /// twice, so the total never goes back.)
    fn dropped(&self) -> u64 {
        let taken = self.taken.load(Ordering::SeqCst);
        let waiting: u64 = self
            .slots
            .iter()
            .flat_map(|s| &s.suppressed)
            .map(|c| c.0.load(Ordering::SeqCst))
            .sum();
        taken + waiting
    }

    fn slot(&self, v: &Violation) -> &Slot {
        // The site's strings are `'static`: their addresses identify it.
        let mut h = (v.name.as_ptr() as u64)
            ^ (v.module.as_ptr() as u64).rotate_left(17)
            ^ (u64::from(v.line) << 40)
            ^ ((v.kind as u64) << 56);
        h = (h ^ (h >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let key = h | 1;
        let start = (h >> 32) as usize % SLOTS;
        for i in 0..PROBES {
            let slot = &self.slots[(start + i) % SLOTS];
            match slot.key.load(Ordering::Acquire) {
                k if k == key => return slot,
                0 => match slot
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return slot,
                    Err(k) if k == key => return slot,
                    Err(_) => {}
                },
                _ => {}
            }
        }
        // The table is full around here: share the first slot probed.
        &self.slots[start]
    }
}

/// This thread's stripe number (threads are numbered as they first ask).
fn stripe() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    STRIPE.try_with(|s| *s).unwrap_or(0)
}

impl Queue {
    pub(crate) fn new(capacity: usize, batch: usize, per_second: u64) -> Self {
        Self {
            pending: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            batch: batch.max(1),
            batch_ready: tokio::sync::Notify::new(),
            limits: Limits::new(per_second),
            queue_dropped: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
        }
    }

    /// Queues an objective's recovery (never rate limited: one per
    /// crossing back).
    pub(crate) fn offer_recovery(&self, r: &overrun::Recovery) {
        let mut event = Event::here(&Violation {
            name: r.name,
            module: r.module,
            file: r.file,
            line: r.line,
            kind: overrun::ViolationKind::Objective,
            observed: r.observed,
            limit: r.limit,
            thread: std::thread::current().id(),
            unix_nanos: r.unix_nanos,
            seq: 0,
            objective: Some(r.objective),
        });
        event.recovery = Some(*r);
        if self.push_back([event]) {
            self.batch_ready.notify_one();
        }
    }

    /// Called on the violating thread: admits the event if its site and
    /// kind are within their limit; an admitted event carries how many of
    /// them were not sent since the previous one.
    pub(crate) fn offer(&self, v: &Violation) {
        let Some(suppressed) = self.limits.admit(v) else {
            return;
        };
        let mut event = Event::here(v);
        event.suppressed = suppressed;
        if self.push_back([event]) {
            self.batch_ready.notify_one();
        }
    }

    /// Violations not sent as events because their site and kind were over
    /// their limit.
    pub(crate) fn rate_dropped(&self) -> u64 {
        self.limits.dropped()
    }

    /// Queues `events`; `true` when a full batch is now waiting (told once,
    /// as the queue reaches it).
    fn push_back(&self, events: impl IntoIterator<Item = Event>) -> bool {
        let mut q = self.pending.lock();
        let before = q.len();
        for e in events {
            if q.len() == self.capacity {
                q.pop_front();
                self.queue_dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(e);
        }
        before < self.batch && q.len() >= self.batch
    }

    /// Takes up to `max` events, oldest first.
    pub(crate) fn take(&self, max: usize) -> Vec<Event> {
        let mut q = self.pending.lock();
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    /// Takes up to `max` events, oldest first, for a request: they count as
    /// pending until [`Queue::delivered`] or [`Queue::put_back`].
    pub(crate) fn take_for_request(&self, max: usize) -> Vec<Event> {
        let mut q = self.pending.lock();
        let n = q.len().min(max);
        // Under the lock: `pending()` never sees them in neither place.
        self.unanswered.store(n as u64, Ordering::Relaxed);
        q.drain(..n).collect()
    }

    /// The request carrying the taken events was accepted.
    pub(crate) fn delivered(&self) {
        self.unanswered.store(0, Ordering::Relaxed);
    }

    /// Whether a request carrying events waits for its answer.
    pub(crate) fn awaiting_answer(&self) -> bool {
        self.unanswered.load(Ordering::Relaxed) > 0
    }

    /// Events waiting, and those in a request not answered yet.
    pub(crate) fn pending(&self) -> usize {
        let q = self.pending.lock();
        q.len() + self.unanswered.load(Ordering::Relaxed) as usize
    }

    /// Puts events that could not be sent back at the front, so they go
    /// first next time; the oldest are dropped if the queue would overflow.
    pub(crate) fn put_back(&self, events: Vec<Event>) {
        let mut q = self.pending.lock();
        self.unanswered.store(0, Ordering::Relaxed);
        let room = self.capacity.saturating_sub(q.len());
        let skip = events.len().saturating_sub(room);
        self.queue_dropped.fetch_add(skip as u64, Ordering::Relaxed);
        for e in events.into_iter().skip(skip).rev() {
            q.push_front(e);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(seq: u64, unix_nanos: u64) -> Violation {
        Violation {
            name: "f",
            module: "m",
            file: "f.rs",
            line: 1,
            kind: overrun::ViolationKind::Time,
            observed: 2,
            limit: 1,
            thread: std::thread::current().id(),
            unix_nanos,
            seq,
            objective: None,
        }
    }

    #[test]
    fn rate_limit_per_second() {
        let q = Queue::new(100, 512, 3);
        for i in 0..5 {
            q.offer(&violation(i, 1_000_000_000));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.rate_dropped(), 2);
        q.offer(&violation(5, 2_000_000_000));
        assert_eq!(q.len(), 4);
        // The next event carries the two not sent before it.
        let suppressed: Vec<u64> = q.take(10).iter().map(|e| e.suppressed).collect();
        assert_eq!(suppressed, [0, 0, 0, 2]);
    }

    /// One noisy site cannot starve another: the limit is per site and
    /// kind, and events plus `suppressed` add up to every violation.
    #[test]
    fn the_limit_is_per_site_and_kind() {
        let q = Queue::new(10_000, 512, 5);
        let second = 7_000_000_000;
        let mut noisy = violation(0, second);
        noisy.name = "noisy";
        for i in 0..1_000 {
            noisy.seq = i;
            q.offer(&noisy);
        }
        // The same site, another kind; and another site: both get through.
        let mut allocs = noisy;
        allocs.kind = overrun::ViolationKind::Allocs;
        q.offer(&allocs);
        let mut quiet = violation(1_000, second);
        quiet.name = "quiet";
        q.offer(&quiet);
        // A second later, the noisy site again: its event carries the rest.
        noisy.unix_nanos += 1_000_000_000;
        q.offer(&noisy);
        let events = q.take(100);
        let of = |name: &str, kind| {
            events
                .iter()
                .filter(|e| e.violation.name == name && e.violation.kind == kind)
                .collect::<Vec<_>>()
        };
        let noisy_time = of("noisy", overrun::ViolationKind::Time);
        assert_eq!(noisy_time.len(), 6, "5 in its first second, 1 in the next");
        let total: u64 = noisy_time.iter().map(|e| 1 + e.suppressed).sum();
        assert_eq!(total, 1_001, "events plus suppressed: every violation");
        assert_eq!(noisy_time.last().unwrap().suppressed, 995);
        assert_eq!(of("noisy", overrun::ViolationKind::Allocs).len(), 1);
        assert_eq!(of("quiet", overrun::ViolationKind::Time).len(), 1);
        assert_eq!(q.rate_dropped(), 995);
    }

    #[test]
    fn bounded_and_order_kept_across_a_failed_send() {
        let q = Queue::new(4, 512, 1_000);
        for i in 0..6 {
            q.offer(&violation(i, 1));
        }
        assert_eq!(q.queue_dropped.load(Ordering::Relaxed), 2);
        let taken = q.take(3);
        assert_eq!(
            taken.iter().map(|e| e.violation.seq).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        q.offer(&violation(6, 1));
        q.offer(&violation(7, 1));
        q.offer(&violation(8, 1));
        // 5, 6, 7, 8 queued; putting 2, 3, 4 back keeps the newest four.
        q.put_back(taken);
        let all = q.take(10);
        assert_eq!(
            all.iter().map(|e| e.violation.seq).collect::<Vec<_>>(),
            [5, 6, 7, 8]
        );
        assert_eq!(q.queue_dropped.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn put_back_goes_first() {
        let q = Queue::new(10, 512, 1_000);
        for i in 0..3 {
            q.offer(&violation(i, 1));
        }
        let taken = q.take(2);
        q.offer(&violation(3, 1));
        q.put_back(taken);
        let all = q.take(10);
        assert_eq!(
            all.iter().map(|e| e.violation.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert!(
            all[0].thread.as_deref().is_some_and(|n| !n.is_empty()),
            "the test thread is named"
        );
    }
}
