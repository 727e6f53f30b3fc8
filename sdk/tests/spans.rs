//! Budgets on `tracing` spans (feature `tracing`): span sites through the
//! public API, with one global subscriber for the binary (spans cross
//! threads): the overrun layer (builder budgets, a per-layer filter) and a
//! layer that keeps every event with the span it is in.
#![cfg(feature = "tracing")]

use std::sync::{Mutex, Once};
use std::time::Duration;

use tracing::Instrument as _;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, filter};

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

#[path = "support/busy.rs"]
mod busy;
use busy::busy;
#[path = "support/site.rs"]
mod site;
use site::site;

/// An event the subscriber saw: its target, its parent span's name, its
/// fields.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    parent: Option<String>,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

static EVENTS: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

struct Events;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        struct Fields(Vec<(String, String)>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push((field.name().to_owned(), value.to_owned()));
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        EVENTS.lock().unwrap().push(Seen {
            target: event.metadata().target().to_owned(),
            parent: ctx.event_span(event).map(|s| s.name().to_owned()),
            fields: fields.0,
        });
    }
}

fn setup() {
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        let overrun = overrun::tracing::layer()
            .budget("builder.*", "1ns")
            .allocs("spans::builder_over_fields", 7)
            .p50("slo.builder", "5ms")
            .p90("slo.builder", "6ms")
            .p95("slo.builder", "7ms")
            .p99("slo.builder", "20ms")
            .p999("slo.builder", "30ms")
            .window("slo.builder", "2s")
            .error_rate("slo.builder", "5%")
            .with_filter(filter::filter_fn(|m| m.name() != "rejected"));
        // `fmt` reads the span's extensions while a violation event is
        // emitted from inside the layer: that must not deadlock.
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_ansi(false);
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry()
                .with(overrun)
                .with(Events)
                .with(fmt),
        )
        .unwrap();
    });
}

/// The violation events of the site `name`.
fn violations_of(name: &str) -> Vec<Seen> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.target == "overrun" && e.field("function") == Some(name))
        .cloned()
        .collect()
}

#[test]
fn a_span_is_a_site_with_its_fields_budget_and_its_violation_event() {
    setup();
    // One callsite (another with the same name would be another site).
    let step = |d| {
        let span = tracing::info_span!("sync.step", overrun.budget = "30ms", overrun.allocs = 0);
        span.in_scope(|| busy(d));
    };
    for _ in 0..3 {
        step(Duration::ZERO);
    }
    step(Duration::from_millis(60));
    let s = site("sync.step");
    assert_eq!((s.kind, s.calls, s.errors), (overrun::SiteKind::Span, 4, 0));
    assert_eq!(s.module, "spans", "the target");
    assert!(s.file.ends_with("spans.rs") && s.line > 0);
    assert_eq!(
        (s.budget.time_ns, s.budget.allocs),
        (Some(30_000_000), Some(0))
    );
    assert_eq!((s.violations.time, s.violations.allocs), (1, 0));
    assert_eq!(s.polls, 4, "each entered interval");
    assert!(s.max_ns >= 60_000_000);
    let events = violations_of("sync.step");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.parent.as_deref(), Some("sync.step"), "inside the span");
    assert_eq!(e.field("message"), Some("budget violation"));
    assert_eq!(e.field("module"), Some("spans"));
    assert_eq!(e.field("kind"), Some("time"));
    assert_eq!(e.field("limit"), Some("30000000"));
    assert_eq!(e.field("unit"), Some("ns"));
    assert!(e.field("observed").unwrap().parse::<u64>().unwrap() >= 60_000_000);
    assert!(e.field("file").unwrap().ends_with("spans.rs"));
    assert!(e.field("line").is_some());
    let json: serde_json::Value = serde_json::from_str(&overrun::snapshot().to_json()).unwrap();
    let j = json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sync.step")
        .unwrap();
    assert_eq!(j["kind"], "span");
}

#[overrun::measure]
fn measured_inside(d: Duration) {
    busy(d);
}

#[overrun::measure(budget = "1ns")]
fn measured_over() {
    busy(Duration::from_micros(5));
}

#[test]
fn nested_spans_and_functions_give_consistent_self_time() {
    setup();
    let outer = tracing::info_span!("nest.outer");
    outer.in_scope(|| {
        busy(Duration::from_millis(2));
        tracing::info_span!("nest.inner").in_scope(|| {
            busy(Duration::from_millis(2));
            measured_inside(Duration::from_millis(2));
        });
    });
    drop(outer);
    let (outer, inner, f) = (
        site("nest.outer"),
        site("nest.inner"),
        site("measured_inside"),
    );
    let ms = 1_000_000;
    assert!(f.total_ns >= 2 * ms && f.self_ns >= 2 * ms);
    assert!(inner.total_ns >= 4 * ms);
    assert!(
        inner.self_ns >= 2 * ms && inner.self_ns < inner.total_ns - f.total_ns + ms / 2,
        "the inner span leaves out the function: {} of {}",
        inner.self_ns,
        inner.total_ns
    );
    assert!(
        outer.self_ns >= 2 * ms && outer.self_ns < outer.total_ns - inner.total_ns + ms / 2,
        "the outer span leaves out the inner one: {} of {}",
        outer.self_ns,
        outer.total_ns
    );

    // A function's violation is an event inside the span current there.
    tracing::info_span!("nest.host").in_scope(measured_over);
    let events = violations_of("measured_over");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].parent.as_deref(), Some("nest.host"));
    assert_eq!(events[0].field("module"), Some("spans"));
}

#[tracing::instrument(err)]
fn fallible(fail: bool) -> Result<(), String> {
    if fail { Err("no".into()) } else { Ok(()) }
}

#[test]
fn errors_a_field_an_error_event_or_instrument_err() {
    setup();
    let span = tracing::info_span!("err.field", error = tracing::field::Empty);
    span.in_scope(|| {});
    span.record("error", "failed");
    drop(span);
    tracing::info_span!("err.event").in_scope(|| tracing::error!("went wrong"));
    tracing::info_span!("err.none").in_scope(|| tracing::warn!("only a warning"));
    tracing::info_span!("err.false", error = false).in_scope(|| {});
    assert_eq!(site("err.false").errors, 0, "`error = false` is no error");
    assert!(fallible(true).is_err());
    assert!(fallible(false).is_ok());
    assert_eq!(site("err.field").errors, 1);
    assert_eq!(site("err.event").errors, 1);
    assert_eq!(site("err.none").errors, 0);
    let f = site("fallible");
    assert_eq!((f.calls, f.errors), (2, 1));
}

#[test]
fn a_bad_field_literal_is_ignored_the_builder_beats_fields_and_filters_apply() {
    setup();
    tracing::info_span!(
        "bad.literal",
        overrun.budget = "5 parsecs",
        overrun.allocs = 3
    )
    .in_scope(|| {});
    let s = site("bad.literal");
    assert_eq!((s.budget.time_ns, s.budget.allocs), (None, Some(3)));

    tracing::info_span!("builder_over_fields", overrun.allocs = 2).in_scope(|| {});
    assert_eq!(site("builder_over_fields").budget.allocs, Some(7));
    tracing::info_span!("builder.glob", overrun.budget = "1h").in_scope(|| {});
    let s = site("builder.glob");
    assert_eq!((s.budget.time_ns, s.violations.time), (Some(1), 1));

    // A policy file over the fields and the builder, matched on
    // `target::name`.
    let path = std::env::temp_dir().join(format!("overrun-spans-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[budget]]\nmatch = \"spans::policy.*\"\ntime = \"2ms\"\n",
    )
    .unwrap();
    overrun::config::load(&path).unwrap();
    tracing::info_span!("policy.span", overrun.budget = "1h").in_scope(|| {});
    let s = site("policy.span");
    assert_eq!(s.budget.time_ns, Some(2_000_000));
    assert_eq!(s.budget_source.to_string(), format!("{}:1", path.display()));
    assert_eq!(
        s.code_budget.time_ns,
        Some(3_600_000_000_000),
        "the span's own field"
    );

    // Objectives from the builder, over the span's own field.
    tracing::info_span!("slo.builder", overrun.p99 = "1h").in_scope(|| {});
    let objectives: Vec<(String, u64, u64)> = site("slo.builder")
        .objectives
        .iter()
        .map(|o| (o.objective.key().to_owned(), o.limit, o.window_ns))
        .collect();
    let window = 2_000_000_000;
    assert_eq!(
        objectives,
        [
            ("p50".to_owned(), 5_000_000, window),
            ("p90".to_owned(), 6_000_000, window),
            ("p95".to_owned(), 7_000_000, window),
            ("p99".to_owned(), 20_000_000, window),
            ("p999".to_owned(), 30_000_000, window),
            ("error_rate".to_owned(), 50_000, window),
        ]
    );

    tracing::info_span!("rejected").in_scope(|| busy(Duration::from_micros(10)));
    assert!(
        overrun::snapshot().site("rejected").is_none(),
        "the filter rejects it"
    );
}

#[test]
fn capture_sees_span_sites() {
    setup();
    let captured = overrun::testing::capture(|| {
        tracing::info_span!("captured.span").in_scope(|| {});
    });
    assert_eq!(captured.site("captured.span").calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instrumented_future_across_threads_checks_each_poll() {
    setup();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(
                async move {
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if i == 0 {
                        // One poll blocks its worker 60 ms.
                        busy(Duration::from_millis(60));
                    }
                }
                .instrument(tracing::info_span!("async.job", overrun.poll = "30ms")),
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = site("async.job");
    assert_eq!(s.calls, 4);
    assert!(
        s.polls >= 16,
        "every poll is an entered interval: {}",
        s.polls
    );
    assert_eq!(s.violations.poll, 1);
    assert!(
        s.total_ns >= 4 * 3_000_000,
        "creation to close, sleeps included"
    );
    assert!(s.max_poll_ns.unwrap() >= 60_000_000);
    let events = violations_of("async.job");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].field("kind"), Some("poll"));
    assert_eq!(events[0].parent.as_deref(), Some("async.job"));
}

#[test]
fn allocations_while_entered_on_whichever_thread() {
    setup();
    let span = tracing::info_span!("alloc.span", overrun.allocs = 2);
    span.in_scope(|| {
        std::hint::black_box(vec![1u8; 100]);
    });
    let moved = span.clone();
    std::thread::spawn(move || {
        moved.in_scope(|| {
            std::hint::black_box(vec![2u8; 10]);
            std::hint::black_box(vec![3u8; 10]);
        });
    })
    .join()
    .unwrap();
    drop(span);
    let s = site("alloc.span");
    assert_eq!((s.calls, s.polls), (1, 2));
    assert_eq!(s.allocs, Some(3), "the three vectors, on both threads");
    assert_eq!(s.alloc_bytes, Some(120));
    assert_eq!(s.violations.allocs, 1, "3 over a budget of 2");
}

#[overrun::measure]
fn caller_of_shared_span(span: &tracing::Span) {
    span.in_scope(|| busy(Duration::from_millis(5)));
}

/// One span entered on several threads at once (the pattern of futures or
/// rayon tasks run under `Span::current()`): each thread's interval is its
/// own, and the functions around them keep their figures.
#[test]
fn one_span_entered_on_several_threads_at_once() {
    setup();
    let span = tracing::info_span!("shared.span", overrun.allocs = 0);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (span, barrier) = (span.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                caller_of_shared_span(&span);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(span);
    let s = site("shared.span");
    assert_eq!((s.calls, s.polls), (1, 4));
    assert_eq!(
        (s.allocs, s.violations.allocs),
        (Some(0), 0),
        "no interval mixes two threads' counters"
    );
    assert!(s.self_ns >= 4 * 5_000_000);
    let f = site("caller_of_shared_span");
    assert_eq!(f.calls, 4);
    // (A bound on the difference, not a ratio: a thread preempted between
    // the function's entry and the span's adds the wait to self time.)
    assert!(
        f.total_ns.saturating_sub(f.self_ns) >= 4 * 5_000_000,
        "the span's time is the function's callee time: {} of {}",
        f.self_ns,
        f.total_ns
    );
}

/// More spans open at once than the layer's table of open spans holds
/// (8 192): those past it keep their state in the registry's extensions,
/// and every one is measured, its allocations and errors too. The spans
/// that allocate and record an error are the last 800 made, when the table
/// is full: most of them (at least the 808 past its size) are in the
/// fallback.
#[test]
fn more_open_spans_than_the_table_holds_are_all_measured() {
    setup();
    const OPEN: usize = 9_000;
    const LATE: usize = 8_200;
    let spans: Vec<tracing::Span> = (0..OPEN)
        .map(|_| {
            tracing::info_span!(
                "many.open",
                overrun.allocs = 0,
                error = tracing::field::Empty
            )
        })
        .collect();
    for (i, span) in spans.iter().enumerate() {
        span.in_scope(|| {
            if i >= LATE {
                std::hint::black_box(vec![0u8; 8]);
            }
        });
        if i >= LATE {
            span.record("error", true);
        }
    }
    drop(spans);
    let s = site("many.open");
    let late = (OPEN - LATE) as u64;
    assert_eq!((s.calls, s.polls), (OPEN as u64, OPEN as u64));
    assert_eq!(s.allocs, Some(late), "one vector in each of the last spans");
    assert_eq!(s.alloc_bytes, Some(8 * late));
    assert_eq!(s.violations.allocs, late, "each over its budget of 0");
    assert_eq!(s.errors, late);
}

/// Two subscribers give out the same span ids (a global one, and one set
/// for a scope with `with_default`): each span keeps its own state.
#[test]
fn spans_of_two_subscribers_with_the_same_ids_keep_their_own_figures() {
    setup();
    let other = tracing_subscriber::registry().with(overrun::tracing::layer().events(false));
    let outer = tracing::info_span!("two.global");
    let _in = outer.enter();
    tracing::subscriber::with_default(other, || {
        let inner = tracing::info_span!("two.scoped", error = true);
        inner.in_scope(|| busy(Duration::from_millis(1)));
    });
    busy(Duration::from_millis(20));
    drop(_in);
    drop(outer);
    let (global, scoped) = (site("two.global"), site("two.scoped"));
    assert_eq!((global.calls, global.errors), (1, 0), "{global:?}");
    assert_eq!((scoped.calls, scoped.errors), (1, 1), "{scoped:?}");
    assert_eq!(
        (global.polls, scoped.polls),
        (1, 1),
        "each its own interval"
    );
    assert!(global.total_ns >= 20_000_000, "{global:?}");
    assert!(scoped.total_ns < 20_000_000, "{scoped:?}");
}

/// A span's objective from its fields (`overrun.p99`, `overrun.window`):
/// crossed, a WARN event of kind `objective`; met again, an INFO event
/// (the recovery is no violation).
#[test]
fn a_span_objective_from_its_fields_warns_once_and_tells_its_recovery() {
    setup();
    let events = |message: &str| -> Vec<Seen> {
        EVENTS
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                e.target == "overrun"
                    && e.field("function") == Some("slo.span")
                    && e.field("message") == Some(message)
            })
            .cloned()
            .collect()
    };
    let span = |ms: u64| {
        tracing::info_span!("slo.span", overrun.p99 = "10ms", overrun.window = "1s")
            .in_scope(|| busy(Duration::from_millis(ms)));
    };
    let start = std::time::Instant::now();
    while events("budget violation").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no breach");
        span(15);
    }
    let s = site("slo.span");
    assert_eq!(s.objectives.len(), 1, "{:?}", s.objectives);
    assert_eq!(s.objectives[0].limit, 10_000_000);
    assert_eq!(s.objectives[0].window_ns, 1_000_000_000);
    while events("objective recovered").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "no recovery");
        span(0);
        std::thread::sleep(Duration::from_millis(5));
    }
    let warned = events("budget violation");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].field("kind"), Some("objective"));
    assert_eq!(warned[0].field("objective"), Some("p99"));
    let recovered = events("objective recovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].field("objective"), Some("p99"));
    assert_eq!(recovered[0].field("limit"), Some("10000000"));
    assert_eq!(site("slo.span").violations.objective, 1);
}

#[test]
#[should_panic(expected = "window 500ms for `x`: a window is at least \"1s\"")]
fn a_builder_window_under_a_second_is_refused() {
    let _ = overrun::tracing::layer().window("x", "500ms");
}

#[test]
#[should_panic(expected = "error_rate \"1\" for `x`")]
fn a_builder_error_rate_without_percent_is_refused() {
    let _ = overrun::tracing::layer().error_rate("x", "1");
}
