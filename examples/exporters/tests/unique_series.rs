//! No scrape and no OTLP request holds two series with the same labels, for
//! the shapes that used to collide: same-named methods of two types, the same
//! trait method on two types, two equal explicit names, and functions of one
//! name nested in two functions.

use std::collections::HashSet;
use std::fmt;

struct A;
struct B;

impl A {
    #[overrun::measure]
    fn new() -> A {
        A
    }
}

impl B {
    #[overrun::measure]
    fn new() -> B {
        B
    }
}

#[overrun::measure]
impl fmt::Display for A {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a")
    }
}

#[overrun::measure]
impl fmt::Display for B {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b")
    }
}

#[overrun::measure(name = "same", budget = "1ns")]
fn first_same() {}

#[overrun::measure(name = "same", budget = "1ns")]
fn second_same() {}

fn one() {
    #[overrun::measure]
    fn helper() {}
    helper();
}

fn two() {
    #[overrun::measure]
    fn helper() {}
    helper();
}

#[test]
fn every_series_is_unique_in_a_scrape_and_in_a_request() {
    A::new();
    B::new();
    B::new();
    let _ = format!("{A}{B}");
    first_same();
    second_same();
    second_same();
    one();
    two();
    let snap = overrun::snapshot();

    // Prometheus: every sample line's name and labels, once.
    let text = overrun_prometheus::PrometheusExporter::builder()
        .build()
        .unwrap()
        .render();
    // The exporters' last-resort guard drops a repeated series (counted):
    // this one render must not have needed it.
    assert_eq!(
        overrun::export::duplicates_dropped(),
        0,
        "a series twice in the scrape"
    );
    let mut seen = HashSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let series = line.rsplit_once(' ').unwrap().0;
        assert!(
            seen.insert(series.to_owned()),
            "twice in a scrape: {series}"
        );
    }
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value(r#"overrun_calls_total{function="A::new",module="unique_series"}"#),
        1.0
    );
    assert_eq!(
        value(r#"overrun_calls_total{function="B::new",module="unique_series"}"#),
        2.0
    );
    assert_eq!(
        value(r#"overrun_calls_total{function="<A as Display>::fmt",module="unique_series"}"#),
        1.0
    );
    let same: Vec<_> = snap
        .sites
        .iter()
        .filter(|s| s.name.starts_with("same@"))
        .collect();
    assert_eq!(same.len(), 2);
    // Two nested `helper`s: told apart by the function each is declared in.
    assert_eq!(snap.site("one::helper").unwrap().calls, 1);
    assert_eq!(snap.site("two::helper").unwrap().calls, 1);

    // OTLP: (request, metric, attributes) once.
    let mut seen = HashSet::new();
    for point in overrun_otlp::__private::encoded_series(&snap) {
        assert!(
            seen.insert(point.clone()),
            "twice in one request: {point:?}"
        );
    }
    assert_eq!(
        overrun::export::duplicates_dropped(),
        0,
        "the guard never had to act"
    );
}
