//! Load tests against services of known capacity: `permits` requests at
//! once, each holding a permit for a fixed service time, so the service
//! serves at most `permits / service time` requests per second. The
//! service time is slept on a blocking thread (the OS timer is precise to
//! tens of microseconds; tokio's timer rounds up to the next millisecond,
//! which would lower the capacity by up to a tenth).
#![cfg(feature = "load")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use overrun::load::End;
use tokio::sync::{Notify, Semaphore};

const PERMITS: usize = 4;
const SERVICE: Duration = Duration::from_millis(10);

/// One request to the service: wait for a permit, hold it `SERVICE`.
async fn serve(permits: Arc<Semaphore>) {
    serve_for(permits, SERVICE).await;
}

async fn serve_for(permits: Arc<Semaphore>, service: Duration) {
    let permit = permits.acquire_owned().await.expect("open semaphore");
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(service);
        drop(permit);
    })
    .await
    .expect("the service's thread");
}

fn capacity() -> f64 {
    PERMITS as f64 / SERVICE.as_secs_f64()
}

/// The load tests run one at a time: two searches side by side on a
/// small machine would each measure the other's delays.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_finds_the_capacity_of_a_service() {
    let _one = ONE_AT_A_TIME.lock().await;
    let permits = Arc::new(Semaphore::new(PERMITS));
    let report = overrun::load::run(move || serve(permits.clone()))
        .rate(50.0..=3_200.0)
        .step("1s")
        .p99("30ms")
        .await;
    println!("{}", report.table());
    assert_eq!(report.end(), End::Found);
    let found = report.breaking_point().expect("a breaking point");
    let expected = capacity();
    assert!(
        (found - expected).abs() <= expected * 0.10,
        "breaking point {found:.1} req/s, capacity {expected:.1}"
    );
    // The ramp doubled from 50, then the search bisected and confirmed.
    let offered: Vec<f64> = report.steps().iter().map(|s| s.offered).collect();
    assert_eq!(
        &offered[..4],
        &[50.0, 100.0, 200.0, 400.0][..offered.len().min(4)]
    );
    let last = report.steps().last().unwrap();
    assert!(
        last.passed && last.offered == found,
        "confirmed last: {last:?}"
    );
    // Every level's figures add up; above capacity the queue shows.
    for s in report.steps() {
        assert!(s.requests > 0 && s.achieved > 0.0);
        assert_eq!(s.passed, s.failed_line.is_none());
    }
    let over = report
        .steps()
        .iter()
        .find(|s| !s.passed)
        .expect("a failed level");
    assert!(over.offered > found && over.p99_ns > 30_000_000);
    assert!(over.achieved < expected * 1.1, "achieved {}", over.achieved);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let bp = json["breaking_point"].as_f64().unwrap();
    assert!((bp - found).abs() <= found * 1e-12, "{bp} against {found}");
    // The keys the issue names, each with the step's own value.
    for (i, s) in report.steps().iter().enumerate() {
        let j = &json["steps"][i];
        // (serde_json reads floats back to within an ulp or two.)
        let close = |key: &str, v: f64| {
            let got = j[key].as_f64().unwrap();
            assert!(
                (got - v).abs() <= v.abs() * 1e-12,
                "{key}: {got} against {v}"
            );
        };
        close("offered", s.offered);
        close("achieved", s.achieved);
        for (key, v) in [
            ("p50_ns", s.p50_ns),
            ("p95_ns", s.p95_ns),
            ("p99_ns", s.p99_ns),
            ("max_ns", s.max_ns),
            ("errors", s.errors),
        ] {
            assert_eq!(j[key].as_u64(), Some(v), "{key}");
        }
        assert_eq!(j["passed"].as_bool(), Some(s.passed));
    }
    let svg = report.to_svg();
    assert!(
        svg.starts_with("<svg")
            && svg.contains("breaking point")
            && svg.trim_end().ends_with("</svg>")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_finds_how_many_callers_the_service_holds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let permits = Arc::new(Semaphore::new(PERMITS));
    // Up to PERMITS callers, each request takes one service time; with one
    // caller more, one request in each round waits a whole service time
    // for a permit: p99 doubles. A line at 55 ms (25 ms of room for a busy
    // machine's delays, 5 ms below two service times) holds exactly
    // PERMITS callers.
    let service = Duration::from_millis(30);
    let report = overrun::load::run(move || serve_for(permits.clone(), service))
        .concurrency(1..=64)
        .step("500ms")
        .p99("55ms")
        .await;
    println!("{}", report.table());
    assert_eq!(report.end(), End::Found);
    assert_eq!(report.breaking_point(), Some(PERMITS as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_level_of_a_second_or_more_drains_its_callers_without_errors() {
    let _one = ONE_AT_A_TIME.lock().await;
    let permits = Arc::new(Semaphore::new(PERMITS));
    let report = overrun::load::run(move || serve(permits.clone()))
        .concurrency(2..=2)
        .step("1s")
        .p99("1s")
        .await;
    assert_eq!(report.end(), End::HighestPasses);
    let s = &report.steps()[0];
    assert_eq!(s.errors, 0, "{s:?}");
    assert!(s.requests > 100 && s.p99_ns < 100_000_000, "{s:?}");
}

/// Counts the request futures alive.
struct Alive(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_still_out_when_a_level_ends_are_cut_off_as_errors() {
    let _one = ONE_AT_A_TIME.lock().await;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let alive = Arc::new(AtomicUsize::new(0));
    let count = alive.clone();
    // A service that never answers.
    let report = overrun::load::run(move || {
        count.fetch_add(1, Ordering::SeqCst);
        let guard = Alive(count.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }
    })
    .rate(20.0..=40.0)
    .step("200ms")
    .p99("1s")
    .await;
    assert_eq!(report.end(), End::LowestFails);
    let s = &report.steps()[0];
    assert_eq!((s.errors, s.requests), (4, 4), "{s:?}");
    // Timed to the moment they were cut off: the drain, at least a second.
    assert!(s.p50_ns >= 1_000_000_000, "{s:?}");
    assert_eq!(alive.load(Ordering::SeqCst), 0, "a request still running");
}

// Three service times: room for a busy machine's delays below the
// capacity, while above it the queue grows without bound.
#[overrun::measure(budget = "30ms")]
async fn query(permits: Arc<Semaphore>) {
    serve(permits).await;
}

#[overrun::measure(budget = "200ms")]
async fn handle(permits: Arc<Semaphore>) -> Result<(), String> {
    query(permits).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_pass_line_the_budgets_are_the_line_and_the_report_names_the_bottleneck() {
    let _one = ONE_AT_A_TIME.lock().await;
    let permits = Arc::new(Semaphore::new(PERMITS));
    let report = overrun::load::run(move || handle(permits.clone()))
        .rate(100.0..=1_600.0)
        .step("1s")
        .await;
    println!("{}", report.table());
    assert_eq!(report.end(), End::Found);
    let found = report.breaking_point().unwrap();
    let expected = capacity();
    assert!(
        (found - expected).abs() <= expected * 0.10,
        "breaking point {found:.1} req/s, capacity {expected:.1}"
    );
    // Levels just past the capacity fail on `query`'s budget (far past it,
    // requests still queued after the drain may fail the error line first).
    assert!(
        report.steps().iter().any(|s| s
            .failed_line
            .as_deref()
            .is_some_and(|l| l.contains("query over its budget"))),
        "no level failed on query's budget"
    );
    let b = report.bottleneck().expect("a bottleneck");
    assert_eq!(b.function, "query");
    assert!(b.share > 0.5, "query is most of the time: {}", b.share);
    // Each level kept both sites' figures.
    let sites = &report.steps()[0].sites;
    for name in ["handle", "query"] {
        let s = sites.iter().find(|s| s.function == name).unwrap();
        assert!(s.calls >= 90, "{name}: {}", s.calls);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_cannot_keep_up_at_the_lowest_rate_fails_there_and_refusals_are_errors() {
    let _one = ONE_AT_A_TIME.lock().await;
    let permits = Arc::new(Semaphore::new(1));
    // One permit held 10 ms: 100 req/s at most; 400 req/s offered with at
    // most 5 in flight refuses most requests.
    let report = overrun::load::run(move || serve(permits.clone()))
        .rate(400.0..=800.0)
        .step("500ms")
        .p99("1s")
        .max_in_flight(5)
        .await;
    assert_eq!(report.end(), End::LowestFails);
    assert_eq!(report.breaking_point(), None);
    let s = &report.steps()[0];
    assert!(s.errors > s.requests / 2, "{} of {}", s.errors, s.requests);
    assert!(s.failed_line.as_deref().unwrap().starts_with("errors"));
    assert_eq!(report.steps().len(), 1);
}

/// A closure that stops its run at its `at`-th call, with the stop signal.
fn stopping_at(
    at: u64,
) -> (
    impl Fn() -> std::future::Ready<()>,
    impl Future<Output = ()>,
) {
    let (calls, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(Notify::new()));
    let signal = stop.clone();
    let f = move || {
        if calls.fetch_add(1, Ordering::Relaxed) + 1 == at {
            stop.notify_one();
        }
        std::future::ready(())
    };
    (f, async move { signal.notified().await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_keeps_what_was_measured_and_the_level_under_way() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 100 req/s for a second is 100 requests: the 150th is a quarter of
    // a second into the second level (of 200 requests).
    let (f, signal) = stopping_at(150);
    let report = overrun::load::run(f)
        .rate(100.0..=100_000.0)
        .step("1s")
        .stop_on(signal)
        .await;
    assert_eq!(report.end(), End::Stopped);
    let steps = report.steps();
    assert_eq!(steps.len(), 2, "{steps:#?}");
    let (last, done) = steps.split_last().unwrap();
    assert!(done.iter().all(|s| s.passed && !s.stopped), "{steps:#?}");
    assert!(last.stopped && !last.passed, "{last:#?}");
    assert_eq!(last.failed_line, None);
    // What was sent before the stop, and none of the rest of its schedule
    // (200 requests) as an error.
    assert!((50..200).contains(&last.requests), "{last:#?}");
    assert_eq!(last.errors, 0, "{last:#?}");
    assert!(report.to_json().contains("\"stopped\": true"));
    assert!(report.table().contains("stopped part way"));
    // A stopped level is no breaking point.
    assert_eq!(report.breaking_point(), Some(100.0));

    // The closed model: stopped in its first level.
    let (f, signal) = stopping_at(1_000);
    let report = overrun::load::run(f)
        .concurrency(1..=64)
        .step("10s")
        .stop_on(signal)
        .await;
    assert_eq!(report.end(), End::Stopped);
    let [only] = report.steps() else {
        panic!("{:#?}", report.steps())
    };
    assert!(
        only.stopped && only.requests >= 1_000 && only.errors == 0,
        "{only:#?}"
    );
}

#[test]
#[should_panic(expected = "the lowest rate must be above 0 and at most the highest")]
fn an_upside_down_range_is_refused() {
    let _ = overrun::load::run(|| async {}).rate(100.0..=10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_level_ends_when_its_requests_never_yield() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Every request completes at its first poll: the callers hold both
    // workers, and the level must end by their own clock.
    let report = overrun::load::run(|| async {})
        .concurrency(64..=64)
        .step("200ms")
        .p99("1s")
        .await;
    let [only] = report.steps() else {
        panic!("{:#?}", report.steps())
    };
    assert!(only.passed && only.requests > 0, "{only:#?}");
}
