//! Objectives over a window: a p99 and an error rate driven across their
//! objective and back, seen by the evaluator's thread as exactly one
//! violation and one recovery each, in the hooks and in snapshots.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use overrun::budget::{Objective, Quantile};

#[path = "support/site.rs"]
mod site;
use site::site;

#[overrun::measure(p99 = "20ms", p50 = "1s", window = "1s")]
fn served(slow: bool) {
    std::thread::sleep(Duration::from_millis(if slow { 40 } else { 1 }));
}

#[overrun::measure(error_rate = "10%", window = "1s")]
fn fallible(fail: bool) -> Result<(), &'static str> {
    std::thread::sleep(Duration::from_millis(2));
    if fail { Err("no") } else { Ok(()) }
}

/// One event a hook saw: (site, objective, breach or recovery, observed,
/// limit).
type Seen = (&'static str, Objective, &'static str, u64, u64);

/// What the hooks saw, in order.
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

fn seen(name: &str) -> Vec<(Objective, &'static str, u64, u64)> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == name)
        .map(|e| (e.1, e.2, e.3, e.4))
        .collect()
}

/// One slow (40 ms, failing) or fast (1 ms, succeeding) call of each site.
fn both(slow: bool) {
    served(slow);
    let _ = fallible(slow);
}

/// Calls [`both`] until `done` holds (checked between calls), at most 10 s.
fn until(slow: bool, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "gave up");
        both(slow);
    }
}

/// Calls [`both`] for longer than a window (1 s).
fn for_a_window(slow: bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1_300) {
        both(slow);
    }
}

#[test]
fn a_p99_and_an_error_rate_cross_their_objectives_and_come_back_once_each() {
    overrun::on_violation(|v| {
        if v.kind == overrun::ViolationKind::Objective {
            let o = v
                .objective
                .expect("an objective violation names its objective");
            SEEN.lock()
                .unwrap()
                .push((v.name, o, "breach", v.observed, v.limit));
        }
    });
    overrun::on_recovery(|r| {
        SEEN.lock()
            .unwrap()
            .push((r.name, r.objective, "recovery", r.observed, r.limit));
    });
    let p99 = Objective::Quantile(Quantile::P99);

    // Within the objective for over a window: nothing.
    for_a_window(false);
    assert_eq!(seen("served"), []);
    assert_eq!(seen("fallible"), []);
    let s = site("served");
    assert_eq!(s.objectives.len(), 2, "{:?}", s.objectives);
    let p99_status = s.objectives.iter().find(|o| o.objective == p99).unwrap();
    assert!(!p99_status.breached);
    assert!(p99_status.observed.unwrap() < 20_000_000, "{p99_status:?}");
    assert_eq!(p99_status.window_ns, 1_000_000_000);

    // Slow calls (and failures) until the evaluator sees the crossing; more
    // of them for another window: still one violation each.
    until(true, || {
        seen("served").len() == 1 && seen("fallible").len() == 1
    });
    for_a_window(true);
    let breach = seen("served");
    assert_eq!(breach.len(), 1, "one violation per crossing: {breach:?}");
    assert_eq!((breach[0].0, breach[0].1), (p99, "breach"));
    assert!(
        breach[0].2 > 20_000_000 && breach[0].3 == 20_000_000,
        "{breach:?}"
    );
    let failed = seen("fallible");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].0, failed[0].1), (Objective::ErrorRate, "breach"));
    assert!(
        failed[0].2 > 100_000 && failed[0].3 == 100_000,
        "{failed:?}"
    );
    let s = site("served");
    assert!(
        s.objectives
            .iter()
            .find(|o| o.objective == p99)
            .unwrap()
            .breached
    );
    assert_eq!(s.violations.objective, 1);
    assert!(
        s.violation_counts()
            .any(|(k, n)| k == overrun::ViolationKind::Objective && n == 1)
    );

    // Back within: one recovery each, and no more events for a window.
    until(false, || {
        seen("served").len() == 2 && seen("fallible").len() == 2
    });
    for_a_window(false);
    let all = seen("served");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!((all[1].0, all[1].1), (p99, "recovery"));
    assert!(all[1].2 <= 20_000_000);
    let all = seen("fallible");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!((all[1].0, all[1].1), (Objective::ErrorRate, "recovery"));
    let s = site("served");
    assert!(
        s.objectives.iter().all(|o| !o.breached),
        "{:?}",
        s.objectives
    );
    assert_eq!(s.violations.objective, 1, "a recovery is not a violation");
    // The p50 objective (1 s) was never crossed.
    let p50 = Objective::Quantile(Quantile::P50);
    assert_eq!(
        s.objectives
            .iter()
            .find(|o| o.objective == p50)
            .unwrap()
            .breaches,
        0
    );

    // The JSON report lists them.
    let json: serde_json::Value = serde_json::from_str(&overrun::snapshot().to_json()).unwrap();
    let served_json = json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "served")
        .unwrap();
    let objectives = served_json["objectives"].as_array().unwrap();
    assert_eq!(objectives[0]["objective"], "p50");
    assert_eq!(objectives[1]["objective"], "p99");
    assert_eq!(objectives[1]["limit"], 20_000_000);
    assert_eq!(objectives[1]["breaches"], 1);
    assert_eq!(served_json["violations"]["objective"], 1);
}
