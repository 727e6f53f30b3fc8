//! Exemplars: the trace behind a slow call.
//!
//! A call that breaks its time budget leaves, besides its violation, an
//! exemplar: its duration and the trace and span active on its thread —
//! from the OpenTelemetry context, which the application sets when it uses
//! the `opentelemetry` API, and which `tracing-opentelemetry` sets for the
//! current `tracing` span. Each site keeps its last few; the exporters put
//! each on the histogram bucket of its duration (OpenMetrics `# {…}` on
//! the Prometheus endpoint, `Exemplar`s on OTLP histogram points). A call
//! within its budget records nothing more than it does without exemplars.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::record::stats::shard::MAX_SITES;

/// Exemplars kept per site: the newest.
pub(crate) const KEPT: usize = 4;

/// One slow call and the trace it ran in.
///
/// ```
/// let e = overrun::exemplar::Exemplar::new(62_000_000, [0xab; 16], [0xcd; 8], 1);
/// assert_eq!(e.trace_id_hex(), "abababababababababababababababab");
/// assert_eq!(e.span_id_hex(), "cdcdcdcdcdcdcdcd");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exemplar {
    /// The call's duration, ns.
    pub value_ns: u64,
    /// The OpenTelemetry trace id it ran in.
    pub trace_id: [u8; 16],
    /// The span id it ran in.
    pub span_id: [u8; 8],
    /// When it ended, nanoseconds since the Unix epoch.
    pub unix_nanos: u64,
}

impl Exemplar {
    /// An exemplar (for exporters' tests; calls make their own).
    pub fn new(value_ns: u64, trace_id: [u8; 16], span_id: [u8; 8], unix_nanos: u64) -> Self {
        Self {
            value_ns,
            trace_id,
            span_id,
            unix_nanos,
        }
    }

    /// The trace id in lowercase hex, as Prometheus' `trace_id` label.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id in lowercase hex, as Prometheus' `span_id` label.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// One site's newest exemplars: a writer takes the next slot, and skips
/// the exemplar if another writer holds that slot (exemplars are samples:
/// a slow call never waits for one).
struct Ring {
    next: AtomicUsize,
    slots: [Mutex<Option<Exemplar>>; KEPT],
}

/// Per site index, its ring, made at its first exemplar (zeroed memory: no
/// page is touched until a site has one).
static RINGS: [AtomicPtr<Ring>; MAX_SITES] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_SITES];

/// The OpenTelemetry span active on a thread: its trace and span id and
/// its trace flags.
///
/// ```
/// assert!(overrun::exemplar::active_span().is_none(), "no span here");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveSpan {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The span id.
    pub span_id: [u8; 8],
    /// The W3C trace flags (bit 0: sampled).
    pub flags: u8,
}

/// The OpenTelemetry span active on this thread, read in place from the
/// `opentelemetry` 0.33 context (feature `opentelemetry`; `None` without
/// it), if there is one and this thread's context can still be read: not
/// while its thread-locals are being torn down. Exemplars and the OTLP
/// exporter's violation records both read it here.
pub fn active_span() -> Option<ActiveSpan> {
    #[cfg(feature = "opentelemetry")]
    {
        use opentelemetry::trace::TraceContextExt as _;
        let read = || {
            opentelemetry::Context::map_current(|cx| {
                let span = cx.span();
                let sc = span.span_context();
                sc.is_valid().then(|| ActiveSpan {
                    trace_id: sc.trace_id().to_bytes(),
                    span_id: sc.span_id().to_bytes(),
                    flags: sc.trace_flags().to_u8(),
                })
            })
        };
        // The context is a thread-local of the `opentelemetry` crate: read
        // after its destruction (a slow call in another thread-local's
        // destructor), it panics. A trace id is not worth an abort.
        std::panic::catch_unwind(read).ok().flatten()
    }
    #[cfg(not(feature = "opentelemetry"))]
    None
}

/// Keeps an exemplar of site `index` for a call of `value_ns` that broke
/// its time budget, if an OpenTelemetry span is active on this thread.
/// Cold path only.
pub(crate) fn capture(index: usize, value_ns: u64) {
    if let Some(span) = active_span() {
        keep(index, value_ns, span.trace_id, span.span_id);
    }
}

/// Keeps an exemplar in site `index`'s ring (made here at its first).
fn keep(index: usize, value_ns: u64, trace_id: [u8; 16], span_id: [u8; 8]) {
    let unix_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let Some(slot) = RINGS.get(index) else {
        return;
    };
    let mut ring = slot.load(Ordering::Acquire);
    if ring.is_null() {
        let fresh = Box::into_raw(Box::new(Ring {
            next: AtomicUsize::new(0),
            slots: [const { Mutex::new(None) }; KEPT],
        }));
        ring = match slot.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(theirs) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was
                // never shared: another thread's ring won the slot.
                drop(unsafe { Box::from_raw(fresh) });
                theirs
            }
        };
    }
    // SAFETY: a non-null ring came from `Box::into_raw`, was published by
    // the AcqRel compare-exchange and read with Acquire (so its contents
    // are visible), and is never freed (one per site, bounded by the code).
    let ring = unsafe { &*ring };
    let at = ring.next.fetch_add(1, Ordering::Relaxed) % KEPT;
    if let Some(mut slot) = ring.slots[at].try_lock() {
        *slot = Some(Exemplar {
            value_ns,
            trace_id,
            span_id,
            unix_nanos,
        });
    }
}

/// The exemplars site `index` keeps, oldest first.
pub(crate) fn of(index: usize) -> Vec<Exemplar> {
    let Some(ring) = RINGS.get(index) else {
        return Vec::new();
    };
    let ring = ring.load(Ordering::Acquire);
    if ring.is_null() {
        return Vec::new();
    }
    // SAFETY: as in `keep`.
    let ring = unsafe { &*ring };
    let mut all: Vec<Exemplar> = ring.slots.iter().filter_map(|s| *s.lock()).collect();
    all.sort_by_key(|e| e.unix_nanos);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads racing to make one site's ring: one ring wins, the others
    /// are freed, and every exemplar lands in the winner (under Miri: the
    /// `Box::from_raw` of a lost ring, the publication by compare-exchange).
    #[test]
    fn threads_racing_for_a_new_ring_share_one() {
        let index = MAX_SITES - 3;
        let threads: Vec<_> = (0..4u8)
            .map(|t| std::thread::spawn(move || keep(index, u64::from(t), [t; 16], [t; 8])))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let kept = of(index);
        assert!(!kept.is_empty() && kept.len() <= KEPT, "{kept:?}");
        let mut values: Vec<u64> = kept.iter().map(|e| e.value_ns).collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), kept.len(), "each exemplar once");
    }
}

#[cfg(all(test, feature = "opentelemetry"))]
mod otel_tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };

    fn within_span<R>(trace: u8, span: u8, f: impl FnOnce() -> R) -> R {
        let sc = SpanContext::new(
            TraceId::from_bytes([trace; 16]),
            SpanId::from_bytes([span; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let _current = opentelemetry::Context::new()
            .with_remote_span_context(sc)
            .attach();
        f()
    }

    #[test]
    fn a_site_keeps_its_newest_exemplars_from_the_active_span() {
        // Site indexes of their own (no real site is this high).
        let (a, b) = (MAX_SITES - 2, MAX_SITES - 1);
        capture(a, 1);
        assert!(of(a).is_empty(), "no active span: no exemplar");
        for n in 0..6u8 {
            within_span(n + 1, 0x10 + n, || capture(a, u64::from(n) * 1_000));
        }
        let kept = of(a);
        assert_eq!(kept.len(), KEPT, "the newest {KEPT}");
        let values: Vec<u64> = kept.iter().map(|e| e.value_ns).collect();
        for v in [2_000, 3_000, 4_000, 5_000] {
            assert!(values.contains(&v), "{values:?}");
        }
        let newest = kept.iter().find(|e| e.value_ns == 5_000).unwrap();
        assert_eq!(newest.trace_id, [6; 16]);
        assert_eq!(newest.span_id_hex(), "1515151515151515");
        assert!(of(b).is_empty(), "another site's are its own");
        // Out of range: nothing kept, no panic.
        within_span(1, 1, || capture(MAX_SITES, 1));
        assert!(of(MAX_SITES).is_empty());
    }
}
