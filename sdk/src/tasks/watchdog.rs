//! The watchdog: a thread, started with the first task that has a lifetime
//! budget, that flags tasks alive past it as leaked.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::registry::for_each_live;
use super::tracked::publish_task_violation;
use crate::record::clock;
use crate::vocab::budget::NONE;
use crate::vocab::kind::ViolationKind;

/// How often the watchdog looks for tasks over their lifetime budget.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(10);

static WATCHDOG: OnceLock<()> = OnceLock::new();

pub(super) fn start_watchdog() {
    WATCHDOG.get_or_init(|| {
        crate::record::periodic::spawn_periodic(
            "overrun-watchdog",
            WATCHDOG_PERIOD,
            check_lifetimes,
            "lifetime budgets are checked on snapshot only",
        );
    });
}

/// Flags every live task older than its lifetime budget (once per task).
/// Called by the watchdog, and by [`live`] and [`stats`].
pub(crate) fn check_lifetimes() {
    let now = clock::now();
    for_each_live(|e| {
        let limit = e.lifetime();
        let age = now.saturating_sub(e.spawned_at);
        if limit != NONE && age > limit && !e.leaked.swap(true, Ordering::Relaxed) {
            e.site.leaked.fetch_add(1, Ordering::Relaxed);
            publish_task_violation(
                e,
                ViolationKind::Lifetime,
                clock::ticks_to_ns(age),
                clock::ticks_to_ns(limit),
            );
        }
    });
}
