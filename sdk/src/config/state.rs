//! The policy in force, and applying it: to every registered site, every
//! task name (and its live tasks) and the run, at once under one lock; to a
//! site when it registers.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::policy::{BudgetSource, Policy, TaskLimits};
use crate::record::site::Site;
use crate::vocab::budget::Budget;

/// The policy in force and the environment it was applied for.
struct InForce {
    policy: Arc<Policy>,
    env: Option<String>,
}

static IN_FORCE: RwLock<Option<InForce>> = RwLock::new(None);

/// Budgets a file set, by the site's address (a site not listed runs on
/// its code's budget). Read by snapshots.
static FROM_FILE: RwLock<Option<HashMap<usize, (Budget, BudgetSource)>>> = RwLock::new(None);

/// One install at a time.
static APPLYING: Mutex<()> = Mutex::new(());

/// Makes `policy` the one in force and applies it everywhere.
pub(crate) fn install(policy: Arc<Policy>) {
    let _one = APPLYING.lock();
    // How the layers below find the budgets in force from now on.
    let _ = crate::record::site::POLICY.set(on_register);
    let _ = crate::tasks::POLICY.set(|name| {
        let (limits, _) = task_limits(name);
        (limits.lifetime, limits.poll)
    });
    crate::record::alloc::uncounted(|| {
        *IN_FORCE.write() = Some(InForce {
            policy,
            env: super::env(),
        });
        // Sites registering from now on resolve against the new policy;
        // those registered already (the list is read after the write above,
        // so none is missed) are applied here.
        // Entry by entry, not a new map: a site registering meanwhile (not
        // in the list, resolved against the new policy) keeps its entry.
        for site in crate::record::site::all() {
            let (budget, source) = resolve(site);
            site.apply_budget(&budget);
            let key = site as *const Site as usize;
            let mut from_file = FROM_FILE.write();
            let map = from_file.get_or_insert_with(HashMap::new);
            if source == BudgetSource::Code {
                map.remove(&key);
            } else {
                map.insert(key, (budget, source));
            }
        }
        crate::tasks::apply_policy();
        let (time, memory, _) = run_limits();
        crate::run::set_policy(time, memory);
    });
}

/// The budget in force for `site` under the current policy (its code's if
/// there is none), and where it came from. Only functions: the run's own
/// site takes `[run]`, task sites `[[task]]`.
pub(crate) fn resolve(site: &Site) -> (Budget, BudgetSource) {
    let code = site.budget();
    if !site.kind().is_call() {
        return (code, BudgetSource::Code);
    }
    match IN_FORCE.read().as_ref() {
        Some(f) => f
            .policy
            .budget_for(site.module(), site.name(), code, f.env.as_deref()),
        None => (code, BudgetSource::Code),
    }
}

/// A registering site's budget: resolved, and remembered if a file set it.
/// (Called under the registry's lock, before the site is listed.)
pub(crate) fn on_register(site: &'static Site) -> Budget {
    let (budget, source) = resolve(site);
    if source != BudgetSource::Code {
        FROM_FILE
            .write()
            .get_or_insert_with(HashMap::new)
            .insert(site as *const Site as usize, (budget, source));
    }
    budget
}

/// The budget in force for a site and its source, as snapshots show it.
pub(crate) fn in_force(site: &Site) -> (Budget, BudgetSource) {
    if site.registered_index().is_none() {
        // Not registered yet: what it will get.
        return resolve(site);
    }
    FROM_FILE
        .read()
        .as_ref()
        .and_then(|m| m.get(&(site as *const Site as usize)).cloned())
        .unwrap_or((site.budget(), BudgetSource::Code))
}

/// The limits a rule sets for tasks called `name`.
pub(crate) fn task_limits(name: &str) -> (TaskLimits, BudgetSource) {
    match IN_FORCE.read().as_ref() {
        Some(f) => f.policy.task_limits(name, f.env.as_deref()),
        None => (TaskLimits::default(), BudgetSource::Code),
    }
}

/// `[run]`'s time and memory budgets, where the policy sets them.
pub(crate) fn run_limits() -> (Option<u64>, Option<u64>, BudgetSource) {
    match IN_FORCE.read().as_ref() {
        Some(f) => f.policy.run_limits(),
        None => (None, None, BudgetSource::Code),
    }
}
