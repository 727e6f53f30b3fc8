//! Every measured function has its series from the start: sites register at
//! start-up (gathered by the linker), so a function that has not run yet is
//! in the snapshot with zero counts, and its first call's violation is an
//! increase from 0, not a series appearing from nowhere.

#[overrun::measure(budget = "1ns")]
fn not_yet() {
    std::hint::black_box(());
}

#[test]
fn series_exist_before_the_first_call() {
    let snap = overrun::snapshot();
    let waiting = snap
        .never_ran
        .iter()
        .find(|s| s.name == "not_yet")
        .expect("registered before its first call");
    assert_eq!((waiting.calls, waiting.violations.time), (0, 0));
    assert_eq!(waiting.budget.time_ns, Some(1));
    assert!(snap.site("not_yet").is_none(), "sites lists what ran");

    // Exporters publish zeros for it.
    let series = overrun::export::series(&snap);
    let value = |metric: &str, kind: Option<&str>| {
        let s = series.iter().find(|s| s.metric.name == metric).unwrap();
        let p = s
            .points
            .iter()
            .find(|p| p.label("function") == Some("not_yet") && p.label("kind") == kind)
            .unwrap_or_else(|| panic!("no {metric} point for not_yet"));
        match p.value {
            overrun::export::Value::Int(n) => n,
            overrun::export::Value::Histogram { count, .. } => count,
            overrun::export::Value::Float(f) => f as u64,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(value("overrun.calls", None), 0);
    assert_eq!(value("overrun.duration", None), 0);
    assert_eq!(value("overrun.budget.violations", Some("time")), 0);

    // The JSON says who never ran, with no figure that does not exist; the
    // table leaves it out.
    let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    let entry = json["never_ran"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "not_yet")
        .unwrap();
    assert!(entry["p50_ns"].is_null() && entry.get("calls").is_none());
    assert!(entry["line"].as_u64().unwrap() > 0);
    assert!(!overrun::report::render_table(&snap).contains("not_yet"));

    // The first call moves it over, and its violation counts from 0.
    not_yet();
    let snap = overrun::snapshot();
    assert!(snap.never_ran.iter().all(|s| s.name != "not_yet"));
    let ran = snap.site("not_yet").unwrap();
    assert_eq!((ran.calls, ran.violations.time), (1, 1));
}
