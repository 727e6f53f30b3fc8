use super::*;
use crate::vocab::budget::{Objective, Quantile};

fn policy(text: &str) -> Policy {
    Policy::parse("overrun.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    Policy::parse("overrun.toml", text).unwrap_err().to_string()
}

const CODE: Budget = Budget::none().with_time_ns(100).with_allocs(5);

fn budget(p: &Policy, module: &str, name: &str, env: Option<&str>) -> (Budget, String) {
    let (b, s) = p.budget_for(module, name, CODE, env);
    (b, s.to_string())
}

#[test]
fn a_field_no_rule_sets_keeps_the_code_value() {
    let p = policy("[[budget]]\nmatch = \"app::db::*\"\ntime = \"50ms\"\n");
    let (b, source) = budget(&p, "app::db", "load", None);
    assert_eq!((b.time_ns, b.allocs, b.bytes), (50_000_000, 5, NONE));
    assert_eq!(source, "overrun.toml:1");
    let (b, source) = budget(&p, "app::web", "load", None);
    assert_eq!((b, source.as_str()), (CODE, "code"));
}

#[test]
fn none_removes_a_limit() {
    let p = policy("[[budget]]\nmatch = \"load\"\nallocs = \"none\"\nbytes = \"64KiB\"\n");
    let (b, _) = budget(&p, "app::db", "load", None);
    assert_eq!((b.time_ns, b.allocs, b.bytes), (100, NONE, 65_536));
}

#[test]
fn the_current_environment_beats_specificity() {
    let p = policy(
        "[[budget]]\nmatch = \"app::db::load\"\ntime = \"10ms\"\n\
         [[budget]]\nmatch = \"*\"\nenv = \"production\"\ntime = \"20ms\"\n\
         [[budget]]\nmatch = \"*\"\nenv = \"staging\"\ntime = \"30ms\"\n",
    );
    let at = |env| budget(&p, "app::db", "load", env).0.time_ns;
    assert_eq!(
        at(None),
        10_000_000,
        "no environment: the env rules don't apply"
    );
    assert_eq!(at(Some("production")), 20_000_000);
    assert_eq!(at(Some("staging")), 30_000_000);
    assert_eq!(at(Some("dev")), 10_000_000);
}

#[test]
fn an_exact_name_beats_a_glob_then_longer_literal_then_later() {
    let p = policy(
        "[[budget]]\nmatch = \"app::*\"\ntime = \"1ms\"\n\
         [[budget]]\nmatch = \"app::db::*\"\ntime = \"2ms\"\n\
         [[budget]]\nmatch = \"load_user\"\ntime = \"3ms\"\n\
         [[budget]]\nmatch = \"app::db::load_*\"\ntime = \"4ms\"\n\
         [[budget]]\nmatch = \"app::db::load_*\"\ntime = \"5ms\"\n",
    );
    let at = |module, name| budget(&p, module, name, None);
    assert_eq!(
        at("app::db", "load_user").0.time_ns,
        3_000_000,
        "exact name"
    );
    let (b, source) = at("app::db", "load_order");
    assert_eq!(
        (b.time_ns, source.as_str()),
        (5_000_000, "overrun.toml:13"),
        "the later of two equal"
    );
    assert_eq!(at("app::db", "save").0.time_ns, 2_000_000, "longer literal");
    assert_eq!(at("app::web", "get").0.time_ns, 1_000_000);
    assert_eq!(at("lib", "get").0.time_ns, 100, "no match: the code's");
}

#[test]
fn fields_merge_across_rules_and_the_source_is_the_first_field_set() {
    let p = policy(
        "[[budget]]\nmatch = \"app::*\"\nallocs = 7\n\
         [[budget]]\nmatch = \"app::db::*\"\ntime = \"2ms\"\n",
    );
    let (b, source) = budget(&p, "app::db", "f", None);
    assert_eq!((b.time_ns, b.allocs), (2_000_000, 7));
    assert_eq!(source, "overrun.toml:4");
}

#[test]
fn patterns_match_the_bare_name_or_the_path() {
    let p = policy(
        "[[budget]]\nmatch = \"A::new\"\ntime = \"1ms\"\n\
         [[budget]]\nmatch = \"get_*\"\ntime = \"2ms\"\n\
         [[budget]]\nmatch = \"*::cache::*\"\ntime = \"3ms\"\n",
    );
    // A pattern without `::` is tried on the path too; spaces are allowed.
    let q = policy(
        "[[budget]]\nmatch = \"app*\"\ntime = \"4ms\"\n\n\
         [[budget]]\nmatch = \"<A as Display>::fmt\"\ntime = \"5ms\"\n",
    );
    assert_eq!(budget(&q, "app::x", "get", None).0.time_ns, 4_000_000);
    assert_eq!(
        budget(&q, "lib", "<A as Display>::fmt", None).0.time_ns,
        5_000_000
    );
    // A method's identity is its bare name.
    assert_eq!(budget(&p, "app", "A::new", None).0.time_ns, 1_000_000);
    assert_eq!(budget(&p, "app", "B::new", None).0.time_ns, 100);
    assert_eq!(budget(&p, "app::x", "get_user", None).0.time_ns, 2_000_000);
    assert_eq!(budget(&p, "app::x", "forget_user", None).0.time_ns, 100);
    assert_eq!(
        budget(&p, "app::cache::lru", "put", None).0.time_ns,
        3_000_000
    );
}

#[test]
fn globs() {
    for (pattern, text, matches) in [
        ("*", "", true),
        ("*", "anything::at::all", true),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("a?c", "aéc", true),
        ("app::*::get", "app::db::pool::get", true),
        ("app::*::get", "app::get", false),
        ("*get", "forget", true),
        ("get*", "forget", false),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "aXbYbZ", false),
    ] {
        assert_eq!(
            glob(pattern.as_bytes(), text.as_bytes()),
            matches,
            "{pattern} ~ {text}"
        );
    }
}

/// The index finds exactly the rules a scan of every rule finds.
#[test]
fn the_index_agrees_with_a_full_scan() {
    let patterns = [
        "*",
        "app::*",
        "app::db::*",
        "app::db::load_*",
        "app::db::load_user",
        "load_user",
        "load_*",
        "*::db::*",
        "app::d*",
        "app::db",
        "ap?::db::*",
        "*user",
        "app*",
        "*db::load*",
        "app::db::A::*",
        "A::new",
        "A::*",
        "*::new",
    ];
    let mut text = String::new();
    for (i, p) in patterns.iter().enumerate() {
        text.push_str(&format!("[[budget]]\nmatch = \"{p}\"\nallocs = {i}\n"));
    }
    let policy = policy(&text);
    for (module, name) in [
        ("app::db", "load_user"),
        ("app::db", "load_order"),
        ("app::db", "A::new"),
        ("app", "db"),
        ("app::dbx", "user"),
        ("apx::db", "x"),
        ("lib::db::inner", "load_user"),
        ("other", "get"),
        ("", "A::new"),
    ] {
        let indexed = policy.budget_rules(module, name, None)[1].map(|r| r.line);
        let scanned = policy
            .budgets
            .iter()
            .filter(|r| r.pattern.matches(module, name))
            .max_by_key(|r| r.rank())
            .map(|r| r.line);
        assert_eq!(indexed, scanned, "{module}::{name}");
    }
}

#[test]
fn task_and_run_rules() {
    let p = policy(
        "[[task]]\nmatch = \"session-*\"\nlifetime = \"1h\"\npoll = \"5ms\"\n\
         [[task]]\nmatch = \"session-reaper\"\npoll = \"none\"\n\
         [run]\ntime = \"3s\"\nmemory = \"100MiB\"\n",
    );
    let (limits, source) = p.task_limits("session-reaper", None);
    assert_eq!(limits.lifetime, Some(3_600_000_000_000));
    assert_eq!(limits.poll, Some(NONE));
    assert_eq!(source.to_string(), "overrun.toml:1");
    assert_eq!(p.task_limits("worker", None).0, TaskLimits::default());
    let (time, memory, source) = p.run_limits();
    assert_eq!((time, memory), (Some(3_000_000_000), Some(100 << 20)));
    assert_eq!(source.to_string(), "overrun.toml:8");
}

#[test]
fn objectives_are_budget_fields_with_a_window() {
    let p = policy(
        "[[budget]]\nmatch = \"app::handlers::*\"\np99 = \"50ms\"\nerror_rate = \"0.5%\"\n\
         window = \"1m\"\n\
         [[budget]]\nmatch = \"app::handlers::health\"\np99 = \"none\"\n",
    );
    let (b, source) = p.budget_for("app::handlers", "get_user", Budget::none(), None);
    assert_eq!(
        b.objectives.targets().collect::<Vec<_>>(),
        [
            (Objective::Quantile(Quantile::P99), 50_000_000),
            (Objective::ErrorRate, 5_000)
        ]
    );
    assert_eq!(b.objectives.window_ns(), 60_000_000_000);
    assert_eq!(source.to_string(), "overrun.toml:1");
    // A more specific rule removes one objective; the others stay.
    let (b, _) = p.budget_for("app::handlers", "health", Budget::none(), None);
    assert_eq!(
        b.objectives.targets().collect::<Vec<_>>(),
        [(Objective::ErrorRate, 5_000)]
    );
}

#[test]
fn errors_name_the_file_line_column_and_key() {
    assert_eq!(
        error("[[budget]]\nmatch = \"f\"\ntime = \"5xs\"\n"),
        "overrun.toml:3:8: `time`: unknown duration unit `xs`; expected one of ns, us, ms, s, m, \
         h (e.g. \"250us\", \"1.5ms\", \"3s\")"
    );
    assert_eq!(
        error("[[budget]]\nmatch = \"f\"\ntiem = \"5ms\"\n"),
        "overrun.toml:3:1: `tiem`: unknown key; expected `match`, `env` or one of \
         [\"time\", \"allocs\", \"bytes\", \"poll\", \"p50\", \"p90\", \"p95\", \"p99\", \
         \"p999\", \"window\", \"error_rate\"]"
    );
    assert_eq!(
        error("[[budget]]\nmatch = \"f\"\np99 = \"50\"\n"),
        "overrun.toml:3:7: `p99`: `50` has no unit; expected one of ns, us, ms, s, m, h \
         (e.g. \"250us\", \"1.5ms\", \"3s\")"
    );
    assert_eq!(
        error("[[budget]]\nmatch = \"f\"\nerror_rate = \"1\"\n"),
        "overrun.toml:3:14: `error_rate`: `1` is not a percentage; write it with a `%` sign, \
         as in \"1%\" or \"0.1%\""
    );
    assert_eq!(
        error("[[budget]]\nmatch = \"f\"\np99 = \"5ms\"\nwindow = \"500ms\"\n"),
        "overrun.toml:4:10: `window`: a window is at least \"1s\": objectives are evaluated \
         ten times per window"
    );
    assert_eq!(
        error("[[budget]]\nmatch = \"app::[db]\"\n"),
        "overrun.toml:2:9: `match`: `[` is not allowed in a pattern: `*` matches any text, \
         `?` one character"
    );
    assert_eq!(
        error("[[budget]]\nmatch = \"f\"\nallocs = \"ten\"\n"),
        "overrun.toml:3:10: `allocs`: expected a count such as 100, or \"none\", found string"
    );
    assert_eq!(
        error("[[budget]]\nmatch = \"f\"\nallocs = -1\n"),
        "overrun.toml:3:10: `allocs`: `-1` is not a count of 0 or more"
    );
    assert_eq!(
        error("[[budget]]\ntime = \"5ms\"\n"),
        "overrun.toml:1:1: `match`: every rule needs a `match`"
    );
    assert_eq!(
        error("[[budgets]]\nmatch = \"f\"\n"),
        "overrun.toml:1:3: `budgets`: unknown section; expected `[[budget]]`, `[[task]]` or `[run]`"
    );
    assert_eq!(
        error("[run]\ntime = 3\n"),
        "overrun.toml:2:8: `time`: expected a duration such as \"50ms\", or \"none\", found integer"
    );
    assert_eq!(
        error("[budget]\nmatch = \"f\"\n"),
        "overrun.toml:1:2: `budget`: `budget` is a list of tables: write `[[budget]]`"
    );
    let syntax = error("[[budget]]\nmatch = \"f\ntime = 1\n");
    assert!(syntax.starts_with("overrun.toml:2:"), "{syntax}");
}
