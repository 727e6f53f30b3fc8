//! Budgets from a policy file, through the public API: applied to sites that
//! ran and to those that have not, to task names and their live tasks, and
//! to the run; reloaded by `watch` within 2 s of a write; a broken file
//! leaves the budgets in force as they were. (Its own binary: the policy is
//! process-wide; the tests run one at a time.)

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[path = "support/site.rs"]
mod site;
#[path = "support/wait.rs"]
mod wait;
use site::site;
use wait::eventually;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overrun-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    write(&path, text);
    path
}

/// Writes `text` to `path` whole: written beside it, then renamed (as a
/// deployment tool does).
fn write(path: &std::path::Path, text: &str) {
    let part = path.with_extension("part");
    std::fs::write(&part, text).unwrap();
    std::fs::rename(&part, path).unwrap();
}

#[overrun::measure(budget = "1s", allocs = 100)]
fn db_load() {
    std::thread::sleep(Duration::from_millis(2));
}

/// Declared, never called: its budget shows in `never_ran`.
#[overrun::measure(budget = "1s")]
#[allow(dead_code, reason = "never called on purpose")]
fn never_called() {}

#[overrun::measure]
fn unbudgeted() {}

#[test]
fn a_file_overrides_the_code_field_by_field_and_says_where() {
    let _one = serial();
    db_load();
    let path = file(
        "fields.toml",
        "[[budget]]\nmatch = \"config::db_*\"\ntime = \"1ms\"\n\n\
         [[budget]]\nmatch = \"never_called\"\ntime = \"none\"\nallocs = 3\n",
    );
    overrun::config::load(&path).unwrap();
    db_load();
    let s = site("db_load");
    assert_eq!(s.budget.time_ns, Some(1_000_000), "from the file");
    assert_eq!(s.budget.allocs, Some(100), "the code's: no rule sets it");
    assert_eq!(
        s.violations.time, 1,
        "the new budget is checked on the next call"
    );
    let source = format!("{}:1", path.display());
    assert_eq!(s.budget_source.to_string(), source);
    let snap = overrun::snapshot();
    let never = snap
        .never_ran
        .iter()
        .find(|s| s.name == "never_called")
        .unwrap();
    assert_eq!((never.budget.time_ns, never.budget.allocs), (None, Some(3)));
    assert_eq!(
        never.budget_source.to_string(),
        format!("{}:5", path.display())
    );
    // In the JSON report, and marked in the table.
    let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    let sites = json["sites"].as_array().unwrap();
    let load = sites.iter().find(|s| s["name"] == "db_load").unwrap();
    assert_eq!(load["budget_source"], source.as_str());
    assert_eq!(load["budget"]["time_ns"], 1_000_000);
    let table = overrun::report::render_table(&snap);
    let line = table.lines().find(|l| l.contains("db_load")).unwrap();
    assert!(
        line.contains("1.00ms*"),
        "the file budget is marked: {line}"
    );
    assert!(table.contains("* budget from a policy file"), "{table}");

    // Reloading without the rules gives the code's budgets back.
    overrun::config::load(file("empty.toml", "")).unwrap();
    let s = site("db_load");
    assert_eq!(s.budget.time_ns, Some(1_000_000_000));
    assert_eq!(s.budget_source, overrun::config::BudgetSource::Code);
}

#[test]
fn a_broken_file_changes_nothing_and_is_reported() {
    let _one = serial();
    unbudgeted();
    overrun::config::load(file(
        "good.toml",
        "[[budget]]\nmatch = \"unbudgeted\"\ntime = \"7ms\"\n",
    ))
    .unwrap();
    assert_eq!(site("unbudgeted").budget.time_ns, Some(7_000_000));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let hook = {
        let seen = seen.clone();
        overrun::config::on_error(move |e| seen.lock().unwrap().push(e.to_string()))
    };
    let before = overrun::config::stats();
    let bad = file(
        "bad.toml",
        "[[budget]]\nmatch = \"unbudgeted\"\ntime = \"1ms\"\n\n[[budget]]\nmatch = \"x\"\nallocs = \"many\"\n",
    );
    let err = overrun::config::load(&bad).unwrap_err();
    let shown = format!("{}:7:10: `allocs`: ", bad.display());
    assert!(err.to_string().starts_with(&shown), "{err}");
    assert_eq!(
        site("unbudgeted").budget.time_ns,
        Some(7_000_000),
        "the whole file is rejected: its good rule too"
    );
    let after = overrun::config::stats();
    assert_eq!(after.errors, before.errors + 1);
    assert_eq!(after.reloads_failed, before.reloads_failed + 1);
    assert_eq!(*seen.lock().unwrap(), [err.to_string()]);
    overrun::config::remove_error_hook(hook);
    overrun::config::load(file("empty.toml", "")).unwrap();
}

#[overrun::measure(budget = "1s")]
fn watched() {}

#[test]
fn watch_applies_a_written_file_within_2_s_and_keeps_budgets_on_a_broken_one() {
    let _one = serial();
    watched();
    let path = file(
        "watched.toml",
        "[[budget]]\nmatch = \"watched\"\ntime = \"10ms\"\n",
    );
    let watching = overrun::config::watch(&path).unwrap();
    assert_eq!(site("watched").budget.time_ns, Some(10_000_000));

    write(&path, "[[budget]]\nmatch = \"watched\"\ntime = \"20ms\"\n");
    let written = Instant::now();
    assert!(
        eventually(Duration::from_secs(2), || site("watched").budget.time_ns
            == Some(20_000_000)),
        "applied within 2 s of the write"
    );
    let took = written.elapsed();

    let errors = overrun::config::stats().errors;
    write(&path, "[[budget]]\nmatch = \"watched\"\ntime = 20\n");
    assert!(eventually(Duration::from_secs(2), || {
        overrun::config::stats().errors == errors + 1
    }));
    assert_eq!(
        site("watched").budget.time_ns,
        Some(20_000_000),
        "a broken file leaves the budgets in force"
    );
    // Told once, not at every check.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(overrun::config::stats().errors, errors + 1);

    write(&path, "[[budget]]\nmatch = \"watched\"\ntime = \"30ms\"\n");
    assert!(eventually(Duration::from_secs(2), || site("watched")
        .budget
        .time_ns
        == Some(30_000_000)));
    drop(watching);
    write(&path, "[[budget]]\nmatch = \"watched\"\ntime = \"40ms\"\n");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        site("watched").budget.time_ns,
        Some(30_000_000),
        "a dropped watch reads no more (the first change took {took:?})"
    );
    overrun::config::load(file("empty.toml", "")).unwrap();
}

#[test]
fn task_and_run_budgets_from_the_file() {
    let _one = serial();
    // A live task, its code's poll budget 1 h: the file's 1 ms applies.
    let live = overrun::track("session-live", async {
        std::thread::sleep(Duration::from_millis(5));
    })
    .poll_budget("1h");
    overrun::config::load(file(
        "tasks.toml",
        "[[task]]\nmatch = \"session-*\"\npoll = \"1ms\"\nlifetime = \"20ms\"\n\n\
         [run]\ntime = \"3s\"\nmemory = \"100MiB\"\n",
    ))
    .unwrap();
    overrun::tasks::block_on(live);
    // A new task: the file's lifetime beats the code's.
    let leaky = overrun::track("session-new", std::future::pending::<()>()).lifetime("1h");
    assert!(eventually(Duration::from_secs(5), || {
        overrun::tasks::stats()
            .iter()
            .any(|t| t.name == "session-new" && t.leaked == 1)
    }));
    drop(leaky);
    let stats = overrun::tasks::stats();
    let live = stats.iter().find(|t| t.name == "session-live").unwrap();
    assert_eq!(live.poll_violations, 1, "{live:?}");
    // A task the file does not name keeps its code's budgets.
    let other = overrun::track("worker", async {
        std::thread::sleep(Duration::from_millis(5));
    })
    .poll_budget("1h");
    overrun::tasks::block_on(other);
    let stats = overrun::tasks::stats();
    assert_eq!(
        stats
            .iter()
            .find(|t| t.name == "worker")
            .unwrap()
            .poll_violations,
        0
    );
    let run = overrun::snapshot().run.budget;
    assert_eq!(
        (run.time_ns, run.memory_bytes),
        (Some(3_000_000_000), Some(100 << 20))
    );
    overrun::config::load(file("empty.toml", "")).unwrap();
    let run = overrun::snapshot().run.budget;
    assert_eq!((run.time_ns, run.memory_bytes), (None, None));
}
