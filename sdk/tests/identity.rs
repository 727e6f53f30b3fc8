//! Every site has an identity no other site shares: methods carry their type,
//! trait methods `<Type as Trait>`, and sites that still collide (equal
//! explicit names) carry their line.

use std::collections::HashSet;
use std::fmt;

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

struct A;
struct B;

impl A {
    #[overrun::measure]
    fn new() -> A {
        // Figures unlike `B::new`'s, so comparing one with the other shows.
        std::hint::black_box(vec![0u8; 256]);
        A
    }
}

impl B {
    #[overrun::measure]
    fn new() -> B {
        B
    }
}

impl fmt::Display for A {
    #[overrun::measure]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a")
    }
}

impl fmt::Display for B {
    #[overrun::measure]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b")
    }
}

/// Every method of the block, with the block's budget; a method's own
/// attribute wins; `poll` reaches only the async ones.
struct Cache(Vec<u32>);

#[overrun::measure(budget = "1s", poll = "1s")]
impl Cache {
    fn get(&self, i: usize) -> Option<u32> {
        self.0.get(i).copied()
    }

    #[overrun::measure(allocs = 0)]
    fn grow(&mut self) {
        self.0.push(1);
    }

    async fn refresh(&mut self) -> usize {
        self.0.len()
    }

    const fn limit() -> usize {
        8
    }
}

trait Source {
    fn read(&self) -> u32;
}

#[overrun::measure]
impl Source for Cache {
    fn read(&self) -> u32 {
        self.0.iter().sum()
    }
}

#[overrun::measure(name = "same")]
fn first_same() {}

#[overrun::measure(name = "same")]
fn second_same() {}

fn site(name: &str) -> overrun::report::SiteSnapshot {
    let snap = overrun::snapshot();
    snap.site(name)
        .cloned()
        .unwrap_or_else(|| panic!("no site {name}: {:?}", names(&snap)))
}

fn names(snap: &overrun::Snapshot) -> Vec<&str> {
    snap.sites.iter().map(|s| s.name).collect()
}

#[test]
fn methods_of_two_types_are_two_sites() {
    // Counted on this thread only: other tests here call them too.
    let stats = overrun::testing::capture(|| {
        A::new();
        B::new();
        B::new();
        assert_eq!(format!("{A}{B}{B}"), "abb");
    });
    assert_eq!(stats.site("A::new").calls(), 1);
    assert_eq!(stats.site("B::new").calls(), 2);
    assert_eq!(stats.site("<A as Display>::fmt").calls(), 1);
    assert_eq!(stats.site("<B as Display>::fmt").calls(), 2);
}

#[test]
fn an_impl_block_measures_its_methods() {
    // Counted on this thread only: another test calls `Cache::grow` too.
    let stats = overrun::testing::capture(|| {
        let mut c = Cache(vec![1, 2]);
        assert_eq!(c.get(0), Some(1));
        c.grow();
        assert_eq!(overrun::tasks::block_on(c.refresh()), 3);
        assert_eq!(Cache::limit(), 8);
        assert_eq!(c.read(), 4);
    });
    assert_eq!(stats.site("Cache::get").calls(), 1);
    assert_eq!(stats.site("<Cache as Source>::read").calls(), 1);
    // [time, allocs, bytes, poll]
    assert_eq!(stats.site("Cache::grow").violations(), [0, 1, 0, 0]);
    let get = site("Cache::get");
    assert_eq!(get.budget.time_ns, Some(1_000_000_000));
    assert_eq!(get.budget.poll_ns, None, "poll only on async methods");
    let grow = site("Cache::grow");
    assert_eq!(grow.budget.allocs, Some(0), "the method's own attribute");
    assert_eq!(grow.budget.time_ns, None, "replaces the block's");
    let refresh = site("Cache::refresh");
    assert_eq!(refresh.budget.poll_ns, Some(1_000_000_000));
}

#[test]
fn equal_explicit_names_are_told_apart_by_their_line() {
    // Counted on this thread only: another test here calls them too.
    let stats = overrun::testing::capture(|| {
        first_same();
        second_same();
        second_same();
    });
    let snap = overrun::snapshot();
    let same: Vec<_> = snap
        .sites
        .iter()
        .filter(|s| s.name.starts_with("same@"))
        .collect();
    assert_eq!(same.len(), 2, "{:?}", names(&snap));
    for s in &same {
        assert_eq!(s.name, format!("same@{}", s.line));
    }
    let (first, second) = if same[0].line < same[1].line {
        (same[0], same[1])
    } else {
        (same[1], same[0])
    };
    assert_eq!(stats.site(first.name).calls(), 1);
    assert_eq!(stats.site(second.name).calls(), 2);
}

/// Functions of one name nested in two functions are told apart by the
/// function they are declared in, which does not move when lines do.
#[test]
fn nested_functions_of_one_name_carry_their_enclosing_function() {
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
    let stats = overrun::testing::capture(|| {
        one();
        two();
        two();
    });
    assert_eq!(stats.site("one::helper").calls(), 1);
    assert_eq!(stats.site("two::helper").calls(), 2);
}

/// Identities are planned over every measured function of the program, so
/// a function that has not run yet already has the identity it will keep:
/// these two namesakes never run, yet each carries its enclosing function.
#[test]
fn a_site_is_named_before_it_runs() {
    #[allow(dead_code)]
    fn three() {
        #[overrun::measure]
        fn idle() {}
        idle();
    }
    #[allow(dead_code)]
    fn four() {
        #[overrun::measure]
        fn idle() {}
        idle();
    }
    let snap = overrun::snapshot();
    let waiting: Vec<&str> = snap.never_ran.iter().map(|s| s.name).collect();
    assert!(waiting.contains(&"three::idle"), "{waiting:?}");
    assert!(waiting.contains(&"four::idle"), "{waiting:?}");
}

#[test]
fn no_two_sites_share_an_identity() {
    A::new();
    B::new();
    first_same();
    second_same();
    let snap = overrun::snapshot();
    let mut seen = HashSet::new();
    for s in &snap.sites {
        assert!(seen.insert((s.module, s.name)), "{} twice", s.name);
    }
}

#[test]
fn violation_events_carry_the_identity() {
    use std::sync::Mutex;
    static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let hook = overrun::on_violation(|v| {
        if v.name.starts_with("Cache::") {
            SEEN.lock().unwrap().push(v.name);
        }
    });
    let mut c = Cache(Vec::new());
    c.grow(); // allocs = 0: a violation
    overrun::remove_hook(hook);
    assert!(SEEN.lock().unwrap().contains(&"Cache::grow"));
}

/// Before identities were unique, `A::new` and `B::new` were both `new`:
/// the diff matched B's row to A's figures (A allocates, B does not), so
/// this comparison of a report with itself was not all `same`.
#[test]
fn overrun_diff_matches_every_site_to_itself() {
    use overrun::baseline::{Report, Tolerance, Verdict, compare};
    let _ = overrun::testing::capture(|| {
        A::new();
        B::new();
    });
    let json = overrun::snapshot().to_json();
    let (base, head) = (
        Report::from_json(&json).unwrap(),
        Report::from_json(&json).unwrap(),
    );
    let diff = compare(&base, &head, &Tolerance::uniform(0.0).with_min_calls(0));
    assert_eq!(diff.rows.len(), base.sites.len(), "no site new or gone");
    for row in &diff.rows {
        assert_eq!(
            row.verdict,
            Verdict::Same,
            "{} compared with another site",
            row.name
        );
        assert_eq!(row.allocs.base, row.allocs.head, "{}", row.name);
    }
    assert!(diff.rows.iter().any(|r| r.name == "A::new"));
    assert!(diff.rows.iter().any(|r| r.name == "B::new"));
}
