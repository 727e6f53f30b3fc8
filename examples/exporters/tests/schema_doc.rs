//! `docs/metrics.md` is held to what the code produces: a real snapshot
//! (measured sync and async functions with every budget, tasks live, ended
//! and leaked, a run over its budgets) is rendered through the Prometheus
//! exporter, the OTLP exporter's encoder and the JSON writer. Every metric
//! name, label and JSON field in the output must be on the page, and every
//! one on the page must be in the output.

use std::collections::BTreeSet;
use std::time::Duration;

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

#[overrun::measure(budget = "1ns", allocs = 0, bytes = "1B")]
fn over_every_budget() -> Vec<u8> {
    std::thread::sleep(Duration::from_micros(50));
    vec![1, 2, 3]
}

#[overrun::measure(poll = "1ns", budget = "1s")]
async fn polled() {
    std::thread::sleep(Duration::from_micros(50));
}

/// Over both its objectives, once the evaluator has looked.
#[overrun::measure(
    p50 = "1ns",
    p90 = "1ns",
    p95 = "1ns",
    p99 = "1ns",
    p999 = "1ns",
    error_rate = "1%",
    window = "1s"
)]
fn over_its_objectives() -> Result<(), ()> {
    std::thread::sleep(Duration::from_micros(50));
    Err(())
}

/// Never called: listed in `never_ran`, with zero series.
#[overrun::measure(budget = "1s")]
fn never_called() {}

static RUN: overrun::Site = overrun::Site::new(
    "main",
    module_path!(),
    file!(),
    line!(),
    overrun::SiteKind::Main,
    overrun::Budget::none().with_time_ns(1),
);

/// A snapshot in which every field and series exists.
fn full_snapshot() -> overrun::Snapshot {
    // SAFETY: this file's only test; nothing else reads the environment.
    unsafe { std::env::set_var("OVERRUN_REPORT", "off") };
    let run = overrun::__private::Run::start(&RUN, 1, false, "9.9.9", Some("abc123"), true);
    over_every_budget();
    overrun::tasks::block_on(overrun::track("doc-ended", polled()).poll_budget("1ns"));
    let _live = overrun::track("doc-live", std::future::pending::<()>()).lifetime("1ms");
    // Locks: a mutex held past its hold budget, a read-write lock read and
    // written.
    let mutex = overrun::sync::Mutex::new("doc-mutex", ())
        .wait_budget("1s")
        .hold_budget("1ns");
    let held = mutex.lock();
    let rw = overrun::sync::RwLock::new("doc-rw", 0);
    drop(rw.read());
    *rw.write() += 1;
    std::thread::sleep(Duration::from_millis(5));
    drop(held);
    drop(run); // checks the run's budgets: a time and a memory violation
    // The objectives' series with a window figure: after the evaluator's
    // next tick (a tenth of the window) has seen the call.
    let start = std::time::Instant::now();
    while !overrun::snapshot()
        .site("over_its_objectives")
        .is_some_and(|s| s.objectives.iter().all(|o| o.breached))
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no evaluation");
        let _ = over_its_objectives();
        std::thread::sleep(Duration::from_millis(20));
    }
    let snap = overrun::snapshot();
    assert!(!snap.run.violations.is_empty() && !snap.live_tasks.is_empty());
    assert!(snap.never_ran.iter().any(|s| s.name == "never_called"));
    snap
}

/// The rows of the page's tables under `heading`: the backticked words of
/// each row's cells, cell by cell.
fn table(page: &str, heading: &str) -> Vec<Vec<Vec<String>>> {
    let section = page
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/metrics.md has no section `## {heading}`"));
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| ---"))
        .skip(1) // the header row
        .map(|row| {
            row.trim_matches('|')
                .split('|')
                .map(|cell| {
                    cell.split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_owned)
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn json_fields(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                json_fields(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                json_fields(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn compare(what: &str, produced: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let missing: Vec<_> = produced.difference(documented).collect();
    let stale: Vec<_> = documented.difference(produced).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/metrics.md and the {what} disagree.\nproduced, not documented: {missing:?}\ndocumented, not produced: {stale:?}"
    );
}

#[test]
fn the_schema_page_matches_both_exporters_and_the_json_report() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .expect("docs/metrics.md");
    let snap = full_snapshot();
    let rows = table(&page, "Metrics");
    assert!(rows.len() > 10, "the metrics table was read");
    // Columns: Prometheus name, its labels, OTLP name, its attributes, type,
    // OTLP unit, meaning.
    let doc_prom: BTreeSet<String> = rows.iter().flat_map(|r| r[0].clone()).collect();
    let doc_otlp: BTreeSet<(String, String, String)> = rows
        .iter()
        .filter(|r| !r[2].is_empty())
        .map(|r| (r[2][0].clone(), r[5].join(""), r[3].join(",")))
        .collect();

    // Prometheus: every `# TYPE` line, and every label key of every sample.
    let text = overrun_prometheus::PrometheusExporter::builder()
        .build()
        .unwrap()
        .render();
    let prom: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    compare("Prometheus exporter", &prom, &doc_prom);
    for row in &rows {
        let Some(name) = row[0].first() else { continue };
        let labels: BTreeSet<&str> = row[1].iter().map(String::as_str).collect();
        let ours = |l: &&str| {
            l.strip_prefix(name.as_str()).is_some_and(|rest| {
                let rest = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| rest.strip_prefix(s))
                    .unwrap_or(rest);
                rest.starts_with(['{', ' '])
            })
        };
        for sample in text.lines().filter(ours) {
            let keys: BTreeSet<&str> = sample
                .split_once('{')
                .map(|(_, rest)| rest.split_once('}').unwrap().0)
                .unwrap_or("")
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| kv.split('=').next().unwrap())
                .filter(|k| *k != "le")
                .collect();
            assert_eq!(keys, labels, "labels of {sample}");
        }
    }

    // OTLP: name, unit and attribute keys of every data point.
    let otlp: BTreeSet<(String, String, String)> = overrun_otlp::__private::encoded_series(&snap)
        .into_iter()
        .map(|(_, name, unit, attrs)| {
            let keys: Vec<&str> = attrs.iter().map(|a| a.split('=').next().unwrap()).collect();
            (name, unit, keys.join(","))
        })
        .collect();
    compare(
        "OTLP exporter (name, unit, attributes)",
        &otlp.iter().map(|t| format!("{t:?}")).collect(),
        &doc_otlp.iter().map(|t| format!("{t:?}")).collect(),
    );

    // JSON report: every field path.
    let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    let mut produced = BTreeSet::new();
    json_fields(&json, "", &mut produced);
    let documented: BTreeSet<String> = table(&page, "JSON report")
        .into_iter()
        .flat_map(|r| r[0].clone())
        .collect();
    compare("JSON report", &produced, &documented);
}
