//! A policy file, parsed: its rules and where each was written. Pure: no
//! global state (that is [`super::state`]).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::ConfigError;
use crate::vocab::budget::{
    Budget, FIELDS, MIN_WINDOW_NS, NONE, Objective, Objectives, field_of, parse_duration,
    parse_percent, parse_size,
};

/// Where a budget in force came from: the code, or a rule of a file.
///
/// ```
/// #[overrun::measure(budget = "1s")]
/// fn from_code() {}
/// from_code();
/// let snap = overrun::snapshot();
/// assert_eq!(snap.site("from_code").unwrap().budget_source.to_string(), "code");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BudgetSource {
    /// The literal written next to the code (or none).
    #[default]
    Code,
    /// A rule of a policy file: the file as it was given, and the rule's
    /// line.
    File {
        /// The file's path, as given to [`super::load`] or `OVERRUN_CONFIG`.
        path: Arc<str>,
        /// The line of the rule (its `[[budget]]`, `[[task]]` or `[run]`).
        line: u32,
    },
}

impl std::fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code => f.write_str("code"),
            Self::File { path, line } => write!(f, "{path}:{line}"),
        }
    }
}

impl serde::Serialize for BudgetSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A `match` pattern: a glob (`*` any text, `?` one character) matched
/// against `module::name` and against the bare name (`load_user`,
/// `Cart::total`, a task's name).
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    text: String,
    /// No wildcard: an exact name.
    exact: bool,
    /// Characters that are not wildcards: more is more specific.
    literal: usize,
}

impl Pattern {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        if let Some(c) = text.chars().find(|c| "[]{}!".contains(*c)) {
            return Err(format!(
                "`{c}` is not allowed in a pattern: `*` matches any text, `?` one character"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            exact: !text.contains(['*', '?']),
            literal: text.chars().filter(|c| !matches!(c, '*' | '?')).count(),
        })
    }

    /// Whether the pattern matches `name` of `module` (`module` empty for
    /// a task or span name): the bare name, or `module::name`.
    pub(crate) fn matches(&self, module: &str, name: &str) -> bool {
        let pattern = self.text.as_bytes();
        if glob(pattern, name.as_bytes()) {
            return true;
        }
        if module.is_empty() {
            return false;
        }
        let mut full = Vec::with_capacity(module.len() + 2 + name.len());
        full.extend_from_slice(module.as_bytes());
        full.extend_from_slice(b"::");
        full.extend_from_slice(name.as_bytes());
        glob(pattern, &full)
    }

    /// How specific the pattern is: exact over glob, then more literal
    /// text.
    pub(crate) fn specificity(&self) -> (bool, usize) {
        (self.exact, self.literal)
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The text before the first wildcard, cut after its last `::` (what
    /// every path it matches starts with, at a segment boundary).
    fn key(&self) -> &str {
        let first_wild = self.text.find(['*', '?']).unwrap_or(self.text.len());
        let lit = &self.text[..first_wild];
        if self.exact {
            return &self.text;
        }
        lit.rfind("::").map_or("", |i| &lit[..i + 2])
    }
}

/// `*` any run of bytes (`::` included), `?` one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            if pattern[p] == b'?' {
                // One character: skip its UTF-8 continuation bytes.
                t += 1;
                while t < text.len() && text[t] & 0xC0 == 0x80 {
                    t += 1;
                }
                p += 1;
                continue;
            }
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One field a rule sets: its value ([`NONE`] for `"none"`).
#[derive(Debug, Clone, Copy)]
struct Set {
    value: u64,
}

/// A `[[budget]]` or `[[task]]` rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule<const N: usize> {
    pub(crate) pattern: Pattern,
    env: Option<String>,
    pub(crate) line: u32,
    /// Position in the file: a later rule wins a tie.
    order: usize,
    fields: [Option<Set>; N],
}

impl<const N: usize> Rule<N> {
    /// Precedence among matching rules: for the current environment first,
    /// then an exact name, then more literal text, then the later rule.
    fn rank(&self) -> (bool, (bool, usize), usize) {
        (self.env.is_some(), self.pattern.specificity(), self.order)
    }
}

/// How many fields a `[[budget]]` rule has ([`FIELDS`], in that order).
const BUDGET_LEN: usize = FIELDS.len();
/// The fields of a `[[task]]` rule.
const TASK_FIELDS: [&str; 2] = ["lifetime", "poll"];
/// The fields of `[run]`.
const RUN_FIELDS: [&str; 2] = ["time", "memory"];

/// A task's budgets in force: each `Some` where a rule sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TaskLimits {
    pub(crate) lifetime: Option<u64>,
    pub(crate) poll: Option<u64>,
}

/// A parsed policy file.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("overrun-policy-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("overrun.toml");
/// std::fs::write(&path, "[[budget]]\nmatch = \"load_*\"\ntime = \"50ms\"\n").unwrap();
/// let policy = overrun::config::Policy::read(&path).unwrap();
/// let (budget, source) = policy.budget_for("app::db", "load_user", overrun::Budget::none(), None);
/// assert_eq!(budget.time_ns, 50_000_000);
/// assert!(source.to_string().ends_with("overrun.toml:1"));
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    path: Arc<str>,
    budgets: Vec<Rule<BUDGET_LEN>>,
    tasks: Vec<Rule<2>>,
    run: Option<(u32, [Option<Set>; 2])>,
    /// Budget rules by [`Pattern::key`]: a site looks up only the keys its
    /// path starts with.
    index: HashMap<String, Vec<usize>>,
}

impl Policy {
    /// Reads and parses `path`. The error names the file, the line and
    /// column, and the key.
    pub fn read(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let shown: Arc<str> = Arc::from(path.display().to_string());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: shown.to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&shown, &text)
    }

    /// Parses `text`, read from `path` (for the errors and the sources).
    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        let path: Arc<str> = Arc::from(path);
        let at = |span: Range<usize>, key: Option<&str>, message: String| {
            let (line, column) = line_column(text, span.start);
            ConfigError::Invalid {
                path: path.to_string(),
                line,
                column,
                key: key.map(str::to_owned),
                message,
            }
        };
        let root = DeTable::parse(text).map_err(|e| {
            at(
                e.span().unwrap_or(0..0),
                None,
                e.message().trim_end().to_owned(),
            )
        })?;
        let mut policy = Self {
            path: path.clone(),
            budgets: Vec::new(),
            tasks: Vec::new(),
            run: None,
            index: HashMap::new(),
        };
        let mut order = 0;
        for (key, value) in root.get_ref() {
            let name: &str = key.get_ref();
            match name {
                "budget" | "task" => {
                    let Some(items) = value.get_ref().as_array() else {
                        return Err(at(
                            key.span(),
                            Some(name),
                            format!("`{name}` is a list of tables: write `[[{name}]]`"),
                        ));
                    };
                    for item in items {
                        let Some(table) = item.get_ref().as_table() else {
                            return Err(at(
                                item.span(),
                                Some(name),
                                format!("each `{name}` is a table: write `[[{name}]]`"),
                            ));
                        };
                        let line = line_column(text, item.span().start).0;
                        order += 1;
                        if name == "budget" {
                            let rule = rule(table, item.span(), line, order, &FIELDS, &at)?;
                            policy.budgets.push(rule);
                        } else {
                            let rule = rule(table, item.span(), line, order, &TASK_FIELDS, &at)?;
                            policy.tasks.push(rule);
                        }
                    }
                }
                "run" => {
                    let Some(table) = value.get_ref().as_table() else {
                        return Err(at(
                            key.span(),
                            Some("run"),
                            "`run` is a table: write `[run]`".into(),
                        ));
                    };
                    let line = line_column(text, key.span().start).0;
                    let mut fields = [None; 2];
                    for (k, v) in table {
                        let field: &str = k.get_ref();
                        let Some(i) = RUN_FIELDS.iter().position(|f| *f == field) else {
                            return Err(at(
                                k.span(),
                                Some(field),
                                format!("unknown key in `[run]`; expected one of {RUN_FIELDS:?}"),
                            ));
                        };
                        fields[i] = Some(value_of(field, v, &at)?);
                    }
                    policy.run = Some((line, fields));
                }
                other => {
                    return Err(at(
                        key.span(),
                        Some(other),
                        "unknown section; expected `[[budget]]`, `[[task]]` or `[run]`".into(),
                    ));
                }
            }
        }
        for (i, rule) in policy.budgets.iter().enumerate() {
            policy
                .index
                .entry(rule.pattern.key().to_owned())
                .or_default()
                .push(i);
        }
        Ok(policy)
    }

    /// The file, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The budget in force for the function `name` of `module` whose code
    /// declares `code`, in environment `env`: per field, the winning rule's
    /// value, else the code's. The source is the rule of the first field a
    /// rule sets (time, allocs, bytes, poll), or the code.
    pub fn budget_for(
        &self,
        module: &str,
        name: &str,
        code: Budget,
        env: Option<&str>,
    ) -> (Budget, BudgetSource) {
        let won = self.budget_rules(module, name, env);
        let mut budget = code;
        let mut source = BudgetSource::Code;
        for (field, rule) in won.iter().enumerate() {
            let Some(rule) = rule else { continue };
            budget.set_field(field, rule.fields[field].map_or(NONE, |s| s.value));
            if source == BudgetSource::Code {
                source = self.source(rule.line);
            }
        }
        (budget, source)
    }

    /// Per budget field, the rule that sets it for this function.
    fn budget_rules(
        &self,
        module: &str,
        name: &str,
        env: Option<&str>,
    ) -> [Option<&Rule<BUDGET_LEN>>; BUDGET_LEN] {
        let mut won: [Option<&Rule<BUDGET_LEN>>; BUDGET_LEN] = [None; BUDGET_LEN];
        let mut consider = |i: usize| {
            let rule = &self.budgets[i];
            if !applies(rule.env.as_deref(), env) || !rule.pattern.matches(module, name) {
                return;
            }
            for (field, slot) in won.iter_mut().enumerate() {
                if rule.fields[field].is_some() && slot.is_none_or(|w| rule.rank() > w.rank()) {
                    *slot = Some(rule);
                }
            }
        };
        // Keys a matching rule can have: "" (a leading wildcard, or a bare
        // glob), the name itself (an exact bare name), each prefix of
        // `module::name` that ends with `::` (a path glob), and
        // `module::name` itself (an exact path).
        let full = if module.is_empty() {
            name.to_owned()
        } else {
            format!("{module}::{name}")
        };
        let mut keys: Vec<&str> = vec!["", name];
        keys.extend(full.match_indices("::").map(|(at, _)| &full[..at + 2]));
        if full != name {
            keys.push(&full);
            // The bare name's own prefixes (`Cart::` of `Cart::total`).
            keys.extend(name.match_indices("::").map(|(at, _)| &name[..at + 2]));
        }
        for key in keys {
            for &i in self.index.get(key).into_iter().flatten() {
                consider(i);
            }
        }
        won
    }

    /// The lifetime and poll budgets a rule sets for tasks called `name`.
    pub(crate) fn task_limits(&self, name: &str, env: Option<&str>) -> (TaskLimits, BudgetSource) {
        let mut won: [Option<&Rule<2>>; 2] = [None; 2];
        for rule in &self.tasks {
            if !applies(rule.env.as_deref(), env) || !rule.pattern.matches("", name) {
                continue;
            }
            for (field, slot) in won.iter_mut().enumerate() {
                if rule.fields[field].is_some() && slot.is_none_or(|w| rule.rank() > w.rank()) {
                    *slot = Some(rule);
                }
            }
        }
        let get = |field: usize| won[field].map(|r| r.fields[field].map_or(NONE, |s| s.value));
        let source = won
            .iter()
            .flatten()
            .next()
            .map_or(BudgetSource::Code, |r| self.source(r.line));
        (
            TaskLimits {
                lifetime: get(0),
                poll: get(1),
            },
            source,
        )
    }

    /// `[run]`'s time and memory budgets, where it sets them.
    pub(crate) fn run_limits(&self) -> (Option<u64>, Option<u64>, BudgetSource) {
        match &self.run {
            Some((line, fields)) => (
                fields[0].map(|s| s.value),
                fields[1].map(|s| s.value),
                if fields.iter().any(Option::is_some) {
                    self.source(*line)
                } else {
                    BudgetSource::Code
                },
            ),
            None => (None, None, BudgetSource::Code),
        }
    }

    fn source(&self, line: u32) -> BudgetSource {
        BudgetSource::File {
            path: self.path.clone(),
            line,
        }
    }

    /// The `[[budget]]` rules that set an objective, for environment
    /// `env` (those of another environment left out), each with its rule
    /// and the objectives it sets (a field it sets to `"none"` is none):
    /// for `overrun rules` without a report.
    ///
    /// ```
    /// let policy = overrun::config::Policy::parse(
    ///     "overrun.toml",
    ///     "[[budget]]\nmatch = \"get_*\"\np99 = \"50ms\"\n[[budget]]\nmatch = \"x\"\ntime = \"1s\"\n",
    /// )
    /// .unwrap();
    /// let rules = policy.objective_rules(None);
    /// assert_eq!(rules.len(), 1);
    /// assert_eq!(rules[0].rule.pattern, "get_*");
    /// assert_eq!(rules[0].objectives.quantiles[3], 50_000_000);
    /// assert!(rules[0].overridden_by.is_empty());
    /// ```
    pub fn objective_rules(&self, env: Option<&str>) -> Vec<ObjectiveRule> {
        let applicable: Vec<&Rule<BUDGET_LEN>> = self
            .budgets
            .iter()
            .filter(|r| applies(r.env.as_deref(), env))
            .collect();
        applicable
            .iter()
            .filter_map(|r| {
                let mut budget = Budget::none();
                for (field, set) in r.fields.iter().enumerate() {
                    if let Some(set) = set {
                        budget.set_field(field, set.value);
                    }
                }
                if !budget.objectives.is_set() {
                    return None;
                }
                // Where both match a function, a rule that ranks higher and
                // sets the same objective (to anything, `"none"` too) wins.
                let overridden_by = budget
                    .objectives
                    .targets()
                    .flat_map(|(objective, _)| {
                        let field = field_of(objective);
                        applicable
                            .iter()
                            .filter(move |o| o.fields[field].is_some() && o.rank() > r.rank())
                            .map(move |o| (objective, o.pattern.as_str().to_owned()))
                    })
                    .collect();
                Some(ObjectiveRule {
                    rule: RuleInfo {
                        line: r.line,
                        section: "budget",
                        pattern: r.pattern.as_str().to_owned(),
                        env: r.env.clone(),
                    },
                    objectives: budget.objectives,
                    overridden_by,
                })
            })
            .collect()
    }

    /// Every rule, as `(line, section, pattern, env)`: for `overrun check`.
    pub fn rules(&self) -> Vec<RuleInfo> {
        let mut all: Vec<RuleInfo> = self
            .budgets
            .iter()
            .map(|r| RuleInfo {
                line: r.line,
                section: "budget",
                pattern: r.pattern.as_str().to_owned(),
                env: r.env.clone(),
            })
            .chain(self.tasks.iter().map(|r| RuleInfo {
                line: r.line,
                section: "task",
                pattern: r.pattern.as_str().to_owned(),
                env: r.env.clone(),
            }))
            .collect();
        all.sort_by_key(|r| r.line);
        all
    }

    /// Whether the rule at `line` matches the function `name` of `module`
    /// (a `[[budget]]` rule) or the task `name` (a `[[task]]` rule, with
    /// `module` empty), whatever its environment.
    pub fn rule_matches(&self, line: u32, module: &str, name: &str) -> bool {
        self.budgets
            .iter()
            .filter(|r| r.line == line)
            .any(|r| r.pattern.matches(module, name))
            || (module.is_empty()
                && self
                    .tasks
                    .iter()
                    .filter(|r| r.line == line)
                    .any(|r| r.pattern.matches("", name)))
    }
}

/// One rule of a policy, as `overrun check` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleInfo {
    /// Its line in the file.
    pub line: u32,
    /// `budget` or `task`.
    pub section: &'static str,
    /// Its `match`.
    pub pattern: String,
    /// Its `env`, if any.
    pub env: Option<String>,
}

/// A `[[budget]]` rule that sets an objective: [`Policy::objective_rules`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectiveRule {
    /// The rule.
    pub rule: RuleInfo,
    /// The objectives it sets (one it sets to `"none"` is none).
    pub objectives: Objectives,
    /// Per objective it sets, the patterns of the rules that win over it
    /// where both match (they rank higher and set the same objective).
    pub overridden_by: Vec<(Objective, String)>,
}

/// A rule without `env` applies everywhere; one with `env` only there.
fn applies(rule: Option<&str>, current: Option<&str>) -> bool {
    rule.is_none_or(|r| Some(r) == current)
}

type At<'a> = dyn Fn(Range<usize>, Option<&str>, String) -> ConfigError + 'a;

/// One `[[budget]]` / `[[task]]` table: `match`, optional `env`, and the
/// section's fields.
fn rule<const N: usize>(
    table: &DeTable<'_>,
    span: Range<usize>,
    line: u32,
    order: usize,
    names: &[&str; N],
    at: &At<'_>,
) -> Result<Rule<N>, ConfigError> {
    let mut pattern = None;
    let mut env = None;
    let mut fields = [None; N];
    for (k, v) in table {
        let key: &str = k.get_ref();
        match key {
            "match" => {
                let Some(text) = v.get_ref().as_str() else {
                    return Err(at(v.span(), Some(key), expected("a string", v.get_ref())));
                };
                pattern = Some(Pattern::parse(text).map_err(|m| at(v.span(), Some(key), m))?);
            }
            "env" => {
                let Some(text) = v.get_ref().as_str() else {
                    return Err(at(v.span(), Some(key), expected("a string", v.get_ref())));
                };
                if text.is_empty() {
                    return Err(at(
                        v.span(),
                        Some(key),
                        "an empty `env` applies nowhere".into(),
                    ));
                }
                env = Some(text.to_owned());
            }
            _ => {
                let Some(i) = names.iter().position(|f| *f == key) else {
                    return Err(at(
                        k.span(),
                        Some(key),
                        format!("unknown key; expected `match`, `env` or one of {names:?}"),
                    ));
                };
                fields[i] = Some(value_of(key, v, at)?);
            }
        }
    }
    let Some(pattern) = pattern else {
        return Err(at(span, Some("match"), "every rule needs a `match`".into()));
    };
    Ok(Rule {
        pattern,
        env,
        line,
        order,
        fields,
    })
}

/// A field's value: a duration (`time`, `poll`, `lifetime`, the quantiles
/// `p50` … `p999`, `window`), a size (`bytes`, `memory`), a percentage
/// (`error_rate`) or a count (`allocs`); `"none"` removes the limit.
fn value_of(key: &str, v: &toml::Spanned<DeValue<'_>>, at: &At<'_>) -> Result<Set, ConfigError> {
    let value = v.get_ref();
    let err = |m: String| at(v.span(), Some(key), m);
    if value.as_str() == Some("none") {
        return Ok(Set { value: NONE });
    }
    let parsed = match key {
        "time" | "poll" | "lifetime" | "p50" | "p90" | "p95" | "p99" | "p999" | "window" => {
            match value.as_str() {
                Some(s) => parse_duration(s).map_err(|e| err(e.to_string()))?,
                None => {
                    return Err(err(expected(
                        "a duration such as \"50ms\", or \"none\"",
                        value,
                    )));
                }
            }
        }
        "error_rate" => match value.as_str() {
            Some(s) => parse_percent(s).map_err(|e| err(e.to_string()))?,
            None => {
                return Err(err(expected(
                    "a percentage such as \"1%\", or \"none\"",
                    value,
                )));
            }
        },
        "bytes" | "memory" => match value {
            DeValue::String(s) => parse_size(s).map_err(|e| err(e.to_string()))?,
            DeValue::Integer(i) => integer(i).map_err(err)?,
            _ => {
                return Err(err(expected(
                    "a size such as \"64KiB\", or \"none\"",
                    value,
                )));
            }
        },
        _ => match value {
            DeValue::Integer(i) => integer(i).map_err(err)?,
            _ => return Err(err(expected("a count such as 100, or \"none\"", value))),
        },
    };
    if key == "window" && parsed < MIN_WINDOW_NS {
        return Err(err(
            "a window is at least \"1s\": objectives are evaluated ten times per window".into(),
        ));
    }
    Ok(Set { value: parsed })
}

fn integer(i: &toml::de::DeInteger<'_>) -> Result<u64, String> {
    let digits = i.as_str();
    if digits.starts_with('-') {
        return Err(format!("`{digits}` is not a count of 0 or more"));
    }
    u64::from_str_radix(digits, i.radix()).map_err(|e| format!("`{digits}`: {e}"))
}

fn expected(what: &str, got: &DeValue<'_>) -> String {
    format!("expected {what}, found {}", got.type_str())
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, column as u32)
}

#[cfg(test)]
mod tests;
