//! The store: aggregates per task name ([`TaskSite`]) and the table of live
//! tasks, sharded so threads spawning at once rarely meet. What acts on
//! tasks (the tracked future, the watchdog, the read API) lives beside it.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::record::site::{Site, SiteKind};
use crate::vocab::budget::Budget;

/// Registry shards.
const SHARDS: usize = 16;

/// Aggregates of all tasks of one name. Updated at spawn and at task end.
pub(super) struct TaskSite {
    pub(super) name: &'static str,
    /// Where every poll of these tasks is recorded, per thread.
    pub(super) polls_site: &'static Site,
    pub(super) spawned: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) cancelled: AtomicU64,
    pub(super) panicked: AtomicU64,
    pub(super) leaked: AtomicU64,
    pub(super) poll_violations: AtomicU64,
    /// Figures of ended tasks (live ones are read from the registry).
    pub(super) polls: AtomicU64,
    pub(super) busy: AtomicU64,
    pub(super) max_poll: AtomicU64,
    pub(super) first_poll_delay: AtomicU64,
    pub(super) first_polled: AtomicU64,
    pub(super) lifetime_total: AtomicU64,
    pub(super) lifetimes: Box<[AtomicU64]>,
    pub(super) lifetime_max: AtomicU64,
    /// A policy file's budgets for these tasks, read at every poll: on a
    /// cache line of their own, away from the figures every task's end
    /// writes.
    pub(super) file: FileBudgets,
}

/// A policy file's lifetime and poll budgets for tasks of one name, in
/// ticks ([`UNSET`]: none, the code's apply).
#[repr(align(64))]
pub(super) struct FileBudgets {
    pub(super) lifetime: AtomicU64,
    pub(super) poll: AtomicU64,
}

/// No policy file sets this budget: the code's applies.
pub(super) const UNSET: u64 = u64::MAX - 1;

/// The lifetime and poll budgets (ns; `NONE` removes one) a policy sets
/// for tasks of a name, once a policy layer set how to find them.
pub(crate) static POLICY: std::sync::OnceLock<TaskPolicy> = std::sync::OnceLock::new();

/// A task name's `(lifetime, poll)` budgets from a policy.
pub(crate) type TaskPolicy = fn(&str) -> (Option<u64>, Option<u64>);

impl TaskSite {
    /// Takes the policy in force's budgets for this name.
    pub(super) fn apply_policy(&self) {
        let (lifetime, poll) = POLICY.get().map_or((None, None), |p| p(self.name));
        // A finite budget never reads as `UNSET`.
        let ticks = |v: Option<u64>| match v {
            None => UNSET,
            Some(crate::vocab::budget::NONE) => crate::vocab::budget::NONE,
            Some(ns) => crate::record::clock::ns_to_ticks(ns).min(UNSET - 1),
        };
        self.file.lifetime.store(ticks(lifetime), Ordering::Relaxed);
        self.file.poll.store(ticks(poll), Ordering::Relaxed);
    }
}

/// A file's budget if it sets one, else the code's.
pub(super) fn in_force(file: &AtomicU64, code: u64) -> u64 {
    match file.load(Ordering::Relaxed) {
        UNSET => code,
        v => v,
    }
}

pub(super) static TASK_SITES: RwLock<Option<HashMap<&'static str, &'static TaskSite>>> =
    RwLock::new(None);

thread_local! {
    /// The last name this thread looked up (spawn loops repeat one literal):
    /// a hit skips the shared lock and the hash.
    static LAST_SITE: std::cell::Cell<Option<&'static TaskSite>> = const { std::cell::Cell::new(None) };
}

pub(super) fn task_site(name: &'static str) -> &'static TaskSite {
    if let Some(site) = LAST_SITE
        .with(|c| c.get())
        .filter(|s| std::ptr::eq(s.name, name))
    {
        return site;
    }
    let site = lookup_task_site(name);
    LAST_SITE.with(|c| c.set(Some(site)));
    site
}

fn lookup_task_site(name: &'static str) -> &'static TaskSite {
    if let Some(site) = TASK_SITES.read().as_ref().and_then(|m| m.get(name)) {
        return site;
    }
    crate::record::alloc::uncounted(|| {
        let mut sites = TASK_SITES.write();
        *sites
            .get_or_insert_with(HashMap::new)
            .entry(name)
            .or_insert_with(|| {
                let site: &'static TaskSite = Box::leak(Box::new(TaskSite {
                    name,
                    polls_site: Box::leak(Box::new(Site::new(
                        name,
                        "task",
                        "",
                        0,
                        SiteKind::TaskPoll,
                        Budget::none(),
                    ))),
                    spawned: AtomicU64::new(0),
                    completed: AtomicU64::new(0),
                    cancelled: AtomicU64::new(0),
                    panicked: AtomicU64::new(0),
                    leaked: AtomicU64::new(0),
                    poll_violations: AtomicU64::new(0),
                    polls: AtomicU64::new(0),
                    busy: AtomicU64::new(0),
                    max_poll: AtomicU64::new(0),
                    first_poll_delay: AtomicU64::new(0),
                    first_polled: AtomicU64::new(0),
                    lifetime_total: AtomicU64::new(0),
                    lifetimes: (0..crate::record::stats::BUCKETS)
                        .map(|_| AtomicU64::new(0))
                        .collect(),
                    lifetime_max: AtomicU64::new(0),
                    file: FileBudgets {
                        lifetime: AtomicU64::new(UNSET),
                        poll: AtomicU64::new(UNSET),
                    },
                }));
                site.apply_policy();
                site
            })
    })
}

/// The state of a live task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Spawned, never polled yet.
    Scheduled,
    /// Being polled right now.
    Running,
    /// Waiting to be woken.
    Idle,
}

pub(super) const SCHEDULED: u8 = 0;
pub(super) const RUNNING: u8 = 1;
pub(super) const IDLE: u8 = 2;

/// One live task's entry in the registry, shared by the task and readers.
pub(super) struct Entry {
    pub(super) site: &'static TaskSite,
    pub(super) location: &'static Location<'static>,
    pub(super) spawned_at: u64,
    /// Written only by the thread polling the task (one at a time).
    pub(super) first_poll: AtomicU64,
    pub(super) polls: AtomicU64,
    pub(super) busy: AtomicU64,
    pub(super) max_poll: AtomicU64,
    pub(super) state: AtomicU8,
    /// The budgets the code set (`Tracked::poll_budget`, `lifetime`), in
    /// force unless a policy file sets the name's (read through
    /// [`Entry::poll_budget`] and [`Entry::lifetime`], so a reload reaches
    /// every live task with nothing to update).
    pub(super) code_poll: AtomicU64,
    pub(super) code_lifetime: AtomicU64,
    pub(super) leaked: AtomicBool,
    /// Where it was spawned, for its violations.
    pub(super) context: Option<Arc<dyn super::SpawnContext>>,
}

impl Entry {
    /// The poll budget in force, in ticks.
    #[inline]
    pub(super) fn poll_budget(&self) -> u64 {
        in_force(&self.site.file.poll, self.code_poll.load(Ordering::Relaxed))
    }

    /// The lifetime budget in force, in ticks.
    pub(super) fn lifetime(&self) -> u64 {
        in_force(
            &self.site.file.lifetime,
            self.code_lifetime.load(Ordering::Relaxed),
        )
    }
}

/// One registry shard: a slab of live entries and a free list of slots.
struct Shard {
    slots: Vec<Option<Arc<Entry>>>,
    free: Vec<usize>,
    live: usize,
}

static REGISTRY: [Mutex<Option<Shard>>; SHARDS] = [const { Mutex::new(None) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn my_shard() -> usize {
    MY_SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

pub(super) fn register(entry: Arc<Entry>) -> (usize, usize) {
    let shard = my_shard();
    let mut guard = REGISTRY[shard].lock();
    let s = guard.get_or_insert_with(|| Shard {
        slots: Vec::new(),
        free: Vec::new(),
        live: 0,
    });
    s.live += 1;
    let slot = match s.free.pop() {
        Some(slot) => {
            s.slots[slot] = Some(entry);
            slot
        }
        None => {
            s.slots.push(Some(entry));
            s.slots.len() - 1
        }
    };
    (shard, slot)
}

pub(super) fn unregister(shard: usize, slot: usize) {
    let mut guard = REGISTRY[shard].lock();
    if let Some(s) = guard.as_mut() {
        s.slots[slot] = None;
        s.live -= 1;
        if s.live == 0 {
            // Give the memory back once the shard is empty.
            *guard = None;
        } else {
            s.free.push(slot);
        }
    }
}

/// Bytes the live-task registry holds right now (its tables and the entries
/// of live tasks): back to its starting value once every task has ended.
///
/// ```
/// let _bytes = overrun::tasks::registry_bytes();
/// ```
pub fn registry_bytes() -> usize {
    REGISTRY
        .iter()
        .map(|shard| {
            shard.lock().as_ref().map_or(0, |s| {
                s.slots.capacity() * std::mem::size_of::<Option<Arc<Entry>>>()
                    + s.free.capacity() * std::mem::size_of::<usize>()
                    + s.live * (std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<usize>())
            })
        })
        .sum()
}

/// Applies the policy in force to every task name (its live tasks read
/// their name's budgets).
pub(crate) fn apply_policy() {
    let sites: Vec<&'static TaskSite> = TASK_SITES
        .read()
        .as_ref()
        .map(|m| m.values().copied().collect())
        .unwrap_or_default();
    let mut lifetimes = false;
    for site in sites {
        site.apply_policy();
        lifetimes |=
            in_force(&site.file.lifetime, crate::vocab::budget::NONE) != crate::vocab::budget::NONE;
    }
    if lifetimes {
        super::watchdog::start_watchdog();
    }
}

pub(super) fn for_each_live(mut f: impl FnMut(&Entry)) {
    for shard in &REGISTRY {
        let entries: Vec<Arc<Entry>> = shard
            .lock()
            .as_ref()
            .map(|s| s.slots.iter().flatten().cloned().collect())
            .unwrap_or_default();
        for e in &entries {
            f(e);
        }
    }
}
