//! Violation events on their way to the collector: captured on the thread
//! that broke the budget (with its OpenTelemetry trace context), rate
//! limited, and held in a bounded queue until an export succeeds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::TraceContextExt as _;
use overrun::Violation;
use parking_lot::Mutex;

/// The span that was active when the budget was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceRef {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) flags: u8,
}

/// One violation with what only its own thread knows.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) violation: Violation,
    /// The thread's name, or its id when it has none.
    pub(crate) thread: String,
    pub(crate) trace: Option<TraceRef>,
}

impl Event {
    /// Captures `v` on the current thread.
    pub(crate) fn here(v: &Violation) -> Self {
        let current = std::thread::current();
        let thread = match current.name() {
            Some(name) => name.to_owned(),
            None => format!("{:?}", current.id()),
        };
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        let trace = sc.is_valid().then(|| TraceRef {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        });
        Self {
            violation: *v,
            thread,
            trace,
        }
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
    per_second: u64,
    /// The second (since the Unix epoch) the rate window counts, and how many
    /// events it admitted so far.
    window: AtomicU64,
    admitted: AtomicU64,
    pub(crate) rate_dropped: Striped,
    pub(crate) queue_dropped: AtomicU64,
}

/// A counter many threads add to at once without sharing a cache line:
/// each thread adds to one of a few padded stripes; reading sums them.
#[derive(Debug, Default)]
pub(crate) struct Striped([Stripe; STRIPES]);

const STRIPES: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

impl Striped {
    pub(crate) fn add(&self, n: u64) {
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        }
        let i = STRIPE.try_with(|s| *s).unwrap_or(0);
        self.0[i].0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

impl Queue {
    pub(crate) fn new(capacity: usize, batch: usize, per_second: u64) -> Self {
        Self {
            pending: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            batch: batch.max(1),
            batch_ready: tokio::sync::Notify::new(),
            per_second,
            window: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            rate_dropped: Striped::default(),
            queue_dropped: AtomicU64::new(0),
        }
    }

    /// Called on the violating thread: admits the event if the rate allows.
    pub(crate) fn offer(&self, v: &Violation) {
        let second = v.unix_nanos / 1_000_000_000;
        if self.window.load(Ordering::Relaxed) != second {
            // A new second: whoever sees it first opens the window. Two
            // threads racing here can admit a few extra events; the bound
            // is approximate by design, never a lock.
            if self.window.swap(second, Ordering::Relaxed) != second {
                self.admitted.store(0, Ordering::Relaxed);
            }
        }
        // Over the limit, the shared count is only read: a storm of
        // violations on every core writes no shared line here.
        if self.admitted.load(Ordering::Relaxed) >= self.per_second
            || self.admitted.fetch_add(1, Ordering::Relaxed) >= self.per_second
        {
            self.rate_dropped.add(1);
            return;
        }
        let event = Event::here(v);
        if self.push_back([event]) {
            self.batch_ready.notify_one();
        }
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

    /// Puts events that could not be sent back at the front, so they go
    /// first next time; the oldest are dropped if the queue would overflow.
    pub(crate) fn put_back(&self, events: Vec<Event>) {
        let mut q = self.pending.lock();
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
        }
    }

    #[test]
    fn rate_limit_per_second() {
        let q = Queue::new(100, 512, 3);
        for i in 0..5 {
            q.offer(&violation(i, 1_000_000_000));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.rate_dropped.load(), 2);
        q.offer(&violation(5, 2_000_000_000));
        assert_eq!(q.len(), 4);
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
        assert!(!all[0].thread.is_empty());
    }
}
