//! Budget policy files (`overrun::config`): applying a file of 1 000 rules
//! to 10 000 registered sites (the claim: under 50 ms), and the per-call
//! cost of a function whose budget came from the file beside one whose
//! budget is its code's, and the floors, in the same run (the call path
//! reads the same atomics either way).

use std::path::PathBuf;
use std::sync::OnceLock;

use overrun_benches::{batch, floors, work};

floors!();

#[overrun::measure(budget = "1s")]
fn budget_from_code(x: u64) -> u64 {
    work(x)
}

#[overrun::measure(budget = "1s")]
fn budget_from_file(x: u64) -> u64 {
    work(x)
}

/// 10 000 sites over 100 modules (`app::m0` … `app::m99`, `f_0` …
/// `f_9999`), registered once per process.
fn ten_thousand_sites() {
    use overrun::__private::{Budget, Guard};
    static SITES: OnceLock<()> = OnceLock::new();
    SITES.get_or_init(|| {
        for i in 0..10_000u32 {
            let module: &'static str = Box::leak(format!("app::m{}", i % 100).into_boxed_str());
            let budget = Budget::none().with_time_ns(1_000_000);
            let site = overrun_benches::leaked_site(format!("f_{i}"), module, i, budget);
            Guard::enter(site).finish(false);
        }
    });
}

/// A policy of 1 000 rules: 600 module globs (`app::m7::f_1*`), 300 exact
/// names, 50 environment rules, 50 leading-wildcard globs (checked against
/// every site), and the rule for `budget_from_file`.
fn thousand_rules() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut text = String::new();
        for i in 0..600 {
            text.push_str(&format!(
                "[[budget]]\nmatch = \"app::m{}::f_{}*\"\ntime = \"{}ms\"\n",
                i % 100,
                i,
                1 + i % 50
            ));
        }
        for i in 0..300 {
            text.push_str(&format!(
                "[[budget]]\nmatch = \"f_{}\"\nallocs = {}\n",
                i * 31,
                i
            ));
        }
        for i in 0..50 {
            text.push_str(&format!(
                "[[budget]]\nmatch = \"app::m{i}::*\"\nenv = \"production\"\ntime = \"5ms\"\n"
            ));
        }
        for i in 0..49 {
            text.push_str(&format!(
                "[[budget]]\nmatch = \"*_{}9\"\nbytes = \"64KiB\"\n",
                i
            ));
        }
        text.push_str("[[budget]]\nmatch = \"budget_from_file\"\ntime = \"2s\"\n");
        let path =
            std::env::temp_dir().join(format!("overrun-policy-bench-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    })
}

/// Applies the 1 000 rules to the 10 000 sites (and the few of this
/// program): parse, match, store every site's budget.
#[divan::bench(sample_count = 20)]
fn apply_1000_rules_to_10000_sites(bencher: divan::Bencher<'_, '_>) {
    ten_thousand_sites();
    let path = thousand_rules();
    bencher.bench(|| overrun::config::load(path).unwrap());
}

/// Resolving alone, without storing: the 10 000 sites against the parsed
/// rules.
#[divan::bench(sample_count = 20)]
fn resolve_10000_sites(bencher: divan::Bencher<'_, '_>) {
    let policy = overrun::config::Policy::read(thousand_rules()).unwrap();
    let names: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("app::m{}", i % 100), format!("f_{i}")))
        .collect();
    bencher.bench(|| {
        names
            .iter()
            .map(|(m, n)| {
                policy
                    .budget_for(m, n, overrun::Budget::none(), Some("production"))
                    .0
                    .time_ns
            })
            .fold(0u64, u64::wrapping_add)
    });
}

/// A call whose budget is its code's.
#[divan::bench]
fn overrun_measure_code_budget() -> u64 {
    batch(budget_from_code)
}

/// A call whose budget came from the policy file (loaded before the benches
/// run, in `main`).
#[divan::bench]
fn overrun_measure_file_budget() -> u64 {
    batch(budget_from_file)
}

fn main() {
    budget_from_code(1);
    budget_from_file(1);
    ten_thousand_sites();
    overrun::config::load(thousand_rules()).unwrap();
    let snap = overrun::snapshot();
    let file = snap.site("budget_from_file").unwrap();
    assert_eq!(
        file.budget.time_ns,
        Some(2_000_000_000),
        "the file's budget"
    );
    assert_eq!(
        snap.site("budget_from_code").unwrap().budget.time_ns,
        Some(1_000_000_000)
    );
    divan::main();
}
