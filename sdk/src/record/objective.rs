//! Objectives over a window (`p99 = "50ms"` over `window = "5m"`), checked
//! off the call path.
//!
//! A measured call does nothing more for an objective than it does without
//! one. An evaluator thread, started by the first objective, keeps for each
//! site with objectives a ring of cumulative marks (calls, errors and the
//! merged duration histogram), one per tick — a tenth of the site's window,
//! at most 10 s. The window's figures are the newest mark minus the one a
//! window older (or the oldest kept while the process is younger than the
//! window). When a figure crosses its objective, one violation of kind
//! [`ViolationKind::Objective`] is counted and published (hooks, OTLP logs,
//! `tracing` events) — once per crossing, not once per tick. Going back
//! under is not a violation: it calls the hooks of [`on_recovery`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::record::site::Site;
use crate::record::stats::{self, Histogram};
use crate::record::violation::{self, HookId, Violation};
use crate::vocab::budget::{Objective, Objectives};
use crate::vocab::kind::ViolationKind;

/// The longest tick: a window's figures are at most this old.
const MAX_TICK: Duration = Duration::from_secs(10);

/// An objective going back under its limit after a breach.
///
/// ```
/// let id = overrun::on_recovery(|r| eprintln!("{r}"));
/// overrun::remove_hook(id);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The site's identity.
    pub name: &'static str,
    /// Its module path.
    pub module: &'static str,
    /// Its source file.
    pub file: &'static str,
    /// Its source line.
    pub line: u32,
    /// Which objective.
    pub objective: Objective,
    /// The window's figure now, in [`Objective::unit`]s.
    pub observed: u64,
    /// The objective, in the same unit.
    pub limit: u64,
    /// The window, ns.
    pub window_ns: u64,
    /// When it was seen, nanoseconds since the Unix epoch.
    pub unix_nanos: u64,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}:{}): {} back within objective {} ({} over {})",
            self.name,
            self.file,
            self.line,
            crate::vocab::units::fmt_objective(self.objective, self.observed),
            crate::vocab::units::fmt_objective(self.objective, self.limit),
            self.objective.key(),
            crate::vocab::units::fmt_ns(self.window_ns),
        )
    }
}

/// The state of one objective of a site, as snapshots show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ObjectiveStatus {
    /// Which objective.
    #[serde(serialize_with = "objective_key")]
    pub objective: Objective,
    /// The objective, in [`Objective::unit`]s (ns, or errors per million
    /// calls).
    pub limit: u64,
    /// The window, ns.
    pub window_ns: u64,
    /// The window's figure at the last tick; `None` before a tick saw a
    /// call in the window.
    pub observed: Option<u64>,
    /// Whether the window's figure is over the objective now.
    pub breached: bool,
    /// How many times it crossed over (each one violation).
    pub breaches: u64,
}

impl ObjectiveStatus {
    /// An objective the evaluator has not looked at yet.
    pub(crate) fn unseen(objective: Objective, limit: u64, window_ns: u64) -> Self {
        Self {
            objective,
            limit,
            window_ns,
            observed: None,
            breached: false,
            breaches: 0,
        }
    }
}

fn objective_key<S: serde::Serializer>(o: &Objective, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(o.key())
}

type RecoveryHook = Arc<dyn Fn(&Recovery) + Send + Sync>;

static RECOVERY_HOOKS: RwLock<Vec<(u64, RecoveryHook)>> = RwLock::new(Vec::new());

/// Calls `hook` each time an objective that was breached is met again, on
/// the evaluator's thread. Removed with [`crate::remove_hook`]. A hook that
/// panics is caught and counted in [`crate::violation::hook_panics`].
///
/// ```
/// #[overrun::measure(p99 = "50ms", window = "10s")]
/// fn served() {}
/// served();
/// let id = overrun::on_recovery(|r| println!("{r}"));
/// assert!(overrun::remove_hook(id));
/// ```
pub fn on_recovery(hook: impl Fn(&Recovery) + Send + Sync + 'static) -> HookId {
    let id = violation::next_hook_id();
    RECOVERY_HOOKS.write().push((id.0, Arc::new(hook)));
    id
}

/// Removes a recovery hook; `false` if `id` is not one.
pub(crate) fn remove_recovery_hook(id: HookId) -> bool {
    let mut hooks = RECOVERY_HOOKS.write();
    let before = hooks.len();
    hooks.retain(|(i, _)| *i != id.0);
    hooks.len() != before
}

fn recovered(r: &Recovery) {
    let hooks: Vec<RecoveryHook> = RECOVERY_HOOKS
        .read()
        .iter()
        .map(|(_, h)| h.clone())
        .collect();
    for hook in hooks {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(r))).is_err() {
            violation::count_hook_panic();
        }
    }
}

/// One site's objectives as set (by its code or a policy file).
#[derive(Clone)]
struct Wanted {
    site: &'static Site,
    objectives: Objectives,
}

/// What the evaluator is asked to watch, by site index, and a count of
/// changes (the evaluator rereads it when that moves).
#[derive(Default)]
struct Table {
    wanted: HashMap<usize, Wanted>,
    version: u64,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);
static CHANGED: Condvar = Condvar::new();
static STARTED: AtomicBool = AtomicBool::new(false);

/// The objectives' status, by site index: what snapshots read.
static STATUS: RwLock<Option<HashMap<usize, Vec<ObjectiveStatus>>>> = RwLock::new(None);

/// Sets the objectives of registered site `index` (registration, a policy
/// applied). The first objective starts the evaluator.
pub(crate) fn set(site: &'static Site, index: usize, objectives: Objectives) {
    if !site.kind().is_call() {
        return;
    }
    let mut table = TABLE.lock();
    let table = table.get_or_insert_with(Table::default);
    let had = table.wanted.contains_key(&index);
    if objectives.is_set() {
        table.wanted.insert(index, Wanted { site, objectives });
    } else if had {
        table.wanted.remove(&index);
    } else {
        return;
    }
    table.version += 1;
    CHANGED.notify_all();
    if objectives.is_set() && !STARTED.swap(true, Ordering::AcqRel) {
        start();
    }
}

/// The status of each objective of site `index` (empty without one).
pub(crate) fn status(index: usize) -> Vec<ObjectiveStatus> {
    STATUS
        .read()
        .as_ref()
        .and_then(|s| s.get(&index).cloned())
        .unwrap_or_default()
}

fn start() {
    if cfg!(miri) {
        return;
    }
    crate::record::alloc::uncounted(|| {
        let spawned = std::thread::Builder::new()
            .name("overrun-objectives".into())
            .spawn(|| {
                let mut evaluator = Evaluator::default();
                loop {
                    evaluator.wait_and_tick();
                }
            });
        if let Err(err) = spawned {
            eprintln!(
                "overrun: cannot start the objectives' evaluator: {err}; objectives are not checked"
            );
        }
    });
}

/// An evaluator of its own over every site with objectives, ticked on
/// demand: the `objectives` bench times its ticks (the evaluator thread
/// runs the same code). Not public API.
#[doc(hidden)]
pub struct Ticker(Evaluator);

impl Ticker {
    /// Watches the sites that have objectives now.
    #[allow(clippy::new_without_default, reason = "a bench tool, not a value")]
    pub fn new() -> Self {
        let mut evaluator = Evaluator::default();
        if let Some(table) = TABLE.lock().as_ref() {
            evaluator.reconcile(&table.wanted);
        }
        Self(evaluator)
    }

    /// One tick of every site watched, now; returns how many.
    pub fn tick(&mut self) -> usize {
        let now = Instant::now();
        for w in self.0.watched.values_mut() {
            w.next = now;
        }
        self.0.tick(now);
        self.0.watched.len()
    }
}

/// A cumulative mark of one site.
struct Mark {
    at: Instant,
    calls: u64,
    errors: u64,
    histogram: Histogram,
}

/// What the evaluator keeps of one site.
struct Watched {
    site: &'static Site,
    window: Duration,
    tick: Duration,
    /// Oldest first; spans one window (and one mark more).
    marks: VecDeque<Mark>,
    next: Instant,
    targets: Vec<ObjectiveStatus>,
}

impl Watched {
    fn new(site: &'static Site, objectives: &Objectives, now: Instant) -> Self {
        let window_ns = objectives.window_ns();
        let window = Duration::from_nanos(window_ns);
        Self {
            site,
            window,
            tick: (window / 10).min(MAX_TICK),
            marks: VecDeque::new(),
            next: now,
            targets: targets(objectives, window_ns, &[]),
        }
    }
}

/// The statuses of `objectives`, keeping the state of those already
/// watched with the same limit and window.
fn targets(
    objectives: &Objectives,
    window_ns: u64,
    old: &[ObjectiveStatus],
) -> Vec<ObjectiveStatus> {
    objectives
        .targets()
        .map(|(objective, limit)| {
            old.iter()
                .find(|o| o.objective == objective && o.limit == limit && o.window_ns == window_ns)
                .copied()
                .unwrap_or_else(|| ObjectiveStatus::unseen(objective, limit, window_ns))
        })
        .collect()
}

#[derive(Default)]
struct Evaluator {
    watched: HashMap<usize, Watched>,
    version: u64,
}

impl Evaluator {
    /// Waits for the next site due (or a change of the table), then
    /// evaluates every site due.
    fn wait_and_tick(&mut self) {
        {
            let mut table = TABLE.lock();
            let version = table.as_ref().map_or(0, |t| t.version);
            if version == self.version {
                let due = self.watched.values().map(|w| w.next).min();
                match due {
                    Some(due) => {
                        let now = Instant::now();
                        if due > now {
                            CHANGED.wait_for(&mut table, due - now);
                        }
                    }
                    None => CHANGED.wait(&mut table),
                }
            }
            if let Some(t) = table.as_ref()
                && t.version != self.version
            {
                self.version = t.version;
                self.reconcile(&t.wanted);
            }
        }
        self.tick(Instant::now());
    }

    /// Follows the table: new sites watched, changed objectives applied,
    /// removed ones dropped.
    fn reconcile(&mut self, wanted: &HashMap<usize, Wanted>) {
        let now = Instant::now();
        self.watched.retain(|index, _| wanted.contains_key(index));
        for (&index, w) in wanted {
            match self.watched.get_mut(&index) {
                Some(watched) => {
                    let window_ns = w.objectives.window_ns();
                    if watched.window != Duration::from_nanos(window_ns) {
                        *watched = Watched::new(w.site, &w.objectives, now);
                    } else {
                        watched.targets = targets(&w.objectives, window_ns, &watched.targets);
                    }
                }
                None => {
                    self.watched
                        .insert(index, Watched::new(w.site, &w.objectives, now));
                }
            }
        }
        self.publish_status();
    }

    /// Takes a mark of every site due and evaluates its window.
    fn tick(&mut self, now: Instant) {
        let mut changed = false;
        for (&index, w) in &mut self.watched {
            if w.next > now {
                continue;
            }
            w.next = now + w.tick;
            let totals = stats::site_totals(index);
            let mark = Mark {
                at: now,
                calls: totals.calls,
                errors: totals.errors,
                histogram: totals.histogram,
            };
            // Keep the newest mark at least a window old, and no older.
            while w.marks.len() >= 2 && now.duration_since(w.marks[1].at) >= w.window {
                w.marks.pop_front();
            }
            let events = evaluate(w, &mark);
            w.marks.push_back(mark);
            changed = true;
            for event in events {
                match event {
                    Event::Breach(v) => violation::publish(v),
                    Event::Recovery(r) => recovered(&r),
                }
            }
        }
        if changed {
            self.publish_status();
        }
    }

    fn publish_status(&self) {
        let status = self
            .watched
            .iter()
            .map(|(&index, w)| (index, w.targets.clone()))
            .collect();
        *STATUS.write() = Some(status);
    }
}

enum Event {
    Breach(Violation),
    Recovery(Recovery),
}

/// The window's figures (`mark` minus the oldest kept mark) against each
/// objective of `w`: the crossings, each once.
fn evaluate(w: &mut Watched, mark: &Mark) -> Vec<Event> {
    let Some(base) = w.marks.front() else {
        // The first mark: no window yet (calls before it count from the
        // next tick on, as one window).
        return evaluate_window(w, mark.calls, mark.errors, &mark.histogram);
    };
    let calls = mark.calls.saturating_sub(base.calls);
    let errors = mark.errors.saturating_sub(base.errors);
    let histogram = mark.histogram.since(&base.histogram);
    evaluate_window(w, calls, errors, &histogram)
}

fn evaluate_window(w: &mut Watched, calls: u64, errors: u64, histogram: &Histogram) -> Vec<Event> {
    let mut events = Vec::new();
    if calls == 0 && histogram.count() == 0 {
        // Nothing in the window: no figure, and the state stays.
        for t in &mut w.targets {
            t.observed = None;
        }
        return events;
    }
    let site = w.site;
    for t in &mut w.targets {
        let observed = match t.objective {
            Objective::Quantile(q) => {
                if histogram.count() == 0 {
                    continue;
                }
                histogram.quantile(q.fraction())
            }
            Objective::ErrorRate => {
                if calls == 0 {
                    continue;
                }
                ((u128::from(errors) * 1_000_000) / u128::from(calls)) as u64
            }
        };
        t.observed = Some(observed);
        let over = observed > t.limit;
        if over && !t.breached {
            t.breached = true;
            t.breaches += 1;
            let mut v = Violation::here(
                (site.name(), site.module(), site.file(), site.line()),
                ViolationKind::Objective,
                observed,
                t.limit,
            );
            v.objective = Some(t.objective);
            events.push(Event::Breach(v));
        } else if !over && t.breached {
            t.breached = false;
            events.push(Event::Recovery(Recovery {
                name: site.name(),
                module: site.module(),
                file: site.file(),
                line: site.line(),
                objective: t.objective,
                observed,
                limit: t.limit,
                window_ns: t.window_ns,
                unix_nanos: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            }));
        }
    }
    events
}
