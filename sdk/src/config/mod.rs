//! Budgets from a policy file: set per environment, centrally, and reloaded
//! without a restart. The budgets written next to the code stay the
//! default; a file overrides them field by field.
//!
//! ```toml
//! [[budget]]
//! match = "myapp::db::*"    # glob over "module::name", or a bare name: "load_user"
//! time = "50ms"             # the attribute literals: time, allocs, bytes, poll
//! allocs = 100
//!
//! [[budget]]
//! match = "myapp::db::*"
//! env = "production"        # only when OVERRUN_ENV=production
//! time = "20ms"
//!
//! [[task]]
//! match = "session-*"       # task names
//! lifetime = "1h"
//! poll = "5ms"
//!
//! [run]
//! time = "3s"
//! memory = "100MiB"
//! ```
//!
//! # Precedence
//!
//! Per field: a rule for the current environment (`OVERRUN_ENV`) beats a
//! rule without `env`; among rules of the same standing the most specific
//! match wins (an exact name over a glob, then the longer literal text, then
//! the later rule); any rule in the file beats the budget written in the
//! code; a field no rule sets keeps the code's value; `"none"` removes a
//! limit.
//!
//! # Loading
//!
//! - `OVERRUN_CONFIG=path` is read once, before the first site registers;
//!   `OVERRUN_ENV=name` selects the environment.
//! - [`load`] applies a file now; [`watch`] applies it and rereads it when
//!   it changes (checking twice a second) until its handle is dropped;
//!   `#[overrun::main(config = "overrun.toml")]` watches for the run.
//!
//! A file that cannot be read or parsed is rejected whole: the error names
//! the file, the line and column, and the key; it is printed once on stderr,
//! counted ([`stats`]) and passed to the [`on_error`] hooks, and the budgets
//! in force stay exactly as they were. The program never stops because of
//! its config.
//!
//! # Cost
//!
//! Matching runs when a site registers and at a reload, never per call: the
//! budgets live in each site's atomics, which the call path already reads.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("overrun-config-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("overrun.toml");
//! std::fs::write(&path, "[[budget]]\nmatch = \"checkout\"\ntime = \"1ns\"\n").unwrap();
//!
//! #[overrun::measure(budget = "1s")]
//! fn checkout() {}
//!
//! overrun::config::load(&path).unwrap();
//! checkout();
//! let snap = overrun::snapshot();
//! let site = snap.site("checkout").unwrap();
//! assert_eq!(site.budget.time_ns, Some(1));
//! assert!(site.budget_source.to_string().ends_with("overrun.toml:1"));
//! assert_eq!(site.violations.time, 1);
//! ```

mod policy;
pub(crate) mod state;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::hooks::HookList;

#[cfg(feature = "tracing")]
pub(crate) use policy::Pattern;
pub use policy::{BudgetSource, ObjectiveRule, Policy, RuleInfo};
pub(crate) use watch::main_config;
pub use watch::{ConfigWatch, watch};

/// Why a policy file was rejected.
///
/// ```
/// let err = overrun::config::Policy::parse("overrun.toml", "[[budget]]\nmatch = \"f\"\ntime = \"5xs\"\n")
///     .unwrap_err();
/// assert!(err.to_string().starts_with("overrun.toml:3:8: `time`: "), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the policy file: {message}")]
    Unreadable {
        /// The file, as given.
        path: String,
        /// The system's reason.
        message: String,
    },
    /// The file is not a valid policy.
    #[error("{path}:{line}:{column}: {}{message}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Invalid {
        /// The file, as given.
        path: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// The key at fault, when there is one (not for a TOML syntax
        /// error).
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

/// Applies the policy file at `path` now: every registered site, task name
/// and the run get the budgets in force, in the environment `OVERRUN_ENV`
/// names. On error nothing changes (the error is also printed once, counted
/// and passed to the [`on_error`] hooks).
///
/// ```
/// let err = overrun::config::load("/nonexistent/overrun.toml").unwrap_err();
/// assert!(err.to_string().starts_with("/nonexistent/overrun.toml: cannot read"));
/// ```
pub fn load(path: impl AsRef<std::path::Path>) -> Result<(), ConfigError> {
    let result = Policy::read(path.as_ref());
    settle(result.map(|p| {
        state::install(Arc::new(p));
    }))
}

/// Counts the outcome; prints and hands an error to the hooks.
fn settle(result: Result<(), ConfigError>) -> Result<(), ConfigError> {
    match &result {
        Ok(()) => {
            RELOADS_OK.fetch_add(1, Ordering::Relaxed);
        }
        Err(err) => report(err),
    }
    result
}

/// An error: counted, printed on stderr, passed to every hook.
fn report(err: &ConfigError) {
    RELOADS_FAILED.fetch_add(1, Ordering::Relaxed);
    eprintln!("overrun: policy file rejected, the budgets in force stay: {err}");
    for hook in ERROR_HOOKS.copy() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(err)));
    }
}

static RELOADS_OK: AtomicU64 = AtomicU64::new(0);
static RELOADS_FAILED: AtomicU64 = AtomicU64::new(0);

/// What happened to policy files so far.
///
/// ```
/// let before = overrun::config::stats();
/// let _ = overrun::config::load("/nonexistent/overrun.toml");
/// assert_eq!(overrun::config::stats().errors, before.errors + 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ConfigStats {
    /// Files rejected (unreadable or invalid).
    pub errors: u64,
    /// Loads and reloads applied.
    pub reloads_ok: u64,
    /// Loads and reloads rejected.
    pub reloads_failed: u64,
}

/// The counts of loads, reloads and errors.
pub fn stats() -> ConfigStats {
    ConfigStats {
        // Every rejected file is a failed load or reload: one count,
        // published under both names the schema gives it.
        errors: RELOADS_FAILED.load(Ordering::Relaxed),
        reloads_ok: RELOADS_OK.load(Ordering::Relaxed),
        reloads_failed: RELOADS_FAILED.load(Ordering::Relaxed),
    }
}

static ERROR_HOOKS: HookList<dyn Fn(&ConfigError) + Send + Sync> = HookList::new();

/// Identifies a hook added by [`on_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorHookId(u64);

/// Calls `hook` with every rejected policy file (a panicking hook is
/// skipped).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// static SEEN: AtomicU64 = AtomicU64::new(0);
/// let id = overrun::config::on_error(|err| {
///     assert!(err.to_string().contains("cannot read"));
///     SEEN.fetch_add(1, Ordering::Relaxed);
/// });
/// let _ = overrun::config::load("/nonexistent/overrun.toml");
/// assert_eq!(SEEN.load(Ordering::Relaxed), 1);
/// overrun::config::remove_error_hook(id);
/// ```
pub fn on_error(hook: impl Fn(&ConfigError) + Send + Sync + 'static) -> ErrorHookId {
    ErrorHookId(ERROR_HOOKS.add(Arc::new(hook)))
}

/// Removes a hook; `false` if it was already gone.
pub fn remove_error_hook(id: ErrorHookId) -> bool {
    ERROR_HOOKS.remove(id.0)
}

/// The environment `OVERRUN_ENV` names, if any.
fn env() -> Option<String> {
    std::env::var("OVERRUN_ENV").ok().filter(|e| !e.is_empty())
}

/// `OVERRUN_CONFIG`, read before the first site registers (where the
/// linker gathers this hook; elsewhere at the first snapshot or run).
#[cfg(overrun_linker_list)]
#[linkme::distributed_slice(crate::record::site::BEFORE_FIRST_REGISTER)]
static READ_ENV: fn() = from_env_once;

/// Reads `OVERRUN_CONFIG` once.
pub(crate) fn from_env_once() {
    // Re-entrant: an `on_error` hook may call a measured function or take
    // a snapshot, which come back here.
    static ONCE: crate::record::once::ReentrantOnce = crate::record::once::ReentrantOnce::new();
    ONCE.call(|| {
        if let Some(path) = std::env::var_os("OVERRUN_CONFIG").filter(|p| !p.is_empty()) {
            let _ = load(path);
        }
    });
}
