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
//!
//! The first mark of a site is its baseline: calls before it are no part
//! of a window. A window without a call has no figure, and the objective
//! keeps the state it had. A policy that changes an objective's limit or
//! window keeps its state and its marks: the next tick judges the window
//! against the new limit. There is no hysteresis: a figure that hovers at
//! its limit crosses it as often as it moves over and back.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::record::site::Site;
use crate::record::stats::histogram::bound_seconds;
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
    /// How many times it crossed over (each one violation) since it was
    /// set; the site's count of all its objectives' violations, never
    /// reset, is [`crate::report::SiteViolations::objective`].
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

/// Objective violations by site index since the process started: never
/// reset (a policy that changes or removes an objective keeps the count),
/// so the exported counter never goes down.
static VIOLATIONS: Mutex<Option<HashMap<usize, u64>>> = Mutex::new(None);

/// The objective violations of site `index` so far.
pub(crate) fn violations(index: usize) -> u64 {
    VIOLATIONS
        .lock()
        .as_ref()
        .and_then(|v| v.get(&index).copied())
        .unwrap_or(0)
}

/// Sets the objectives of registered site `index` (registration, a policy
/// applied). The first objective starts the evaluator.
pub(crate) fn set(site: &'static Site, index: usize, objectives: Objectives) {
    if !site.kind().is_call() {
        return;
    }
    {
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
    }
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
/// runs the same code). It publishes nothing. Not public API.
#[doc(hidden)]
pub struct Ticker(Evaluator, Instant);

impl Ticker {
    /// Watches the sites that have objectives now.
    #[allow(clippy::new_without_default, reason = "a bench tool, not a value")]
    pub fn new() -> Self {
        let mut evaluator = Evaluator {
            quiet: true,
            ..Evaluator::default()
        };
        if let Some(table) = TABLE.lock().as_ref() {
            evaluator.reconcile(&table.wanted);
        }
        Self(evaluator, Instant::now())
    }

    /// One tick of every site watched, as if it came one tick after the
    /// last (so the ring holds a window's worth of marks, as in a running
    /// process); returns how many sites.
    pub fn tick(&mut self) -> usize {
        let tick = self
            .0
            .watched
            .values()
            .map(|w| w.tick)
            .min()
            .unwrap_or(MAX_TICK);
        self.1 += tick;
        let now = self.1;
        for w in self.0.watched.values_mut() {
            w.next = now;
        }
        self.0.tick(now);
        self.0.watched.len()
    }

    /// The marks kept over every site (the rings' size).
    pub fn marks(&self) -> usize {
        self.0.watched.values().map(|w| w.marks.len()).sum()
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
        let mut watched = Self {
            site,
            window: Duration::ZERO,
            tick: Duration::ZERO,
            marks: VecDeque::new(),
            next: now,
            targets: Vec::new(),
        };
        watched.set(objectives);
        watched
    }

    /// Applies `objectives` (new, or changed by a policy). The marks stay:
    /// they do not depend on the window. An objective already watched
    /// keeps its state whatever its new limit or window: the next tick
    /// compares the figure with the new limit, so a breach under a looser
    /// limit ends with a recovery, not silently.
    fn set(&mut self, objectives: &Objectives) {
        let window_ns = objectives.window_ns();
        self.window = Duration::from_nanos(window_ns);
        self.tick = (self.window / 10).min(MAX_TICK);
        self.targets = objectives
            .targets()
            .map(|(objective, limit)| {
                let mut status = self
                    .targets
                    .iter()
                    .find(|o| o.objective == objective)
                    .copied()
                    .unwrap_or_else(|| ObjectiveStatus::unseen(objective, limit, window_ns));
                status.limit = limit;
                status.window_ns = window_ns;
                status
            })
            .collect();
    }
}

#[derive(Default)]
struct Evaluator {
    watched: HashMap<usize, Watched>,
    version: u64,
    /// Publishes nothing (the bench's): no status, no event, no count.
    quiet: bool,
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
                Some(watched) => watched.set(&w.objectives),
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
            if self.quiet {
                continue;
            }
            for event in events {
                match event {
                    Event::Breach(v) => {
                        *VIOLATIONS
                            .lock()
                            .get_or_insert_with(HashMap::new)
                            .entry(index)
                            .or_default() += 1;
                        violation::publish(v);
                    }
                    Event::Recovery(r) => recovered(&r),
                }
            }
        }
        if changed {
            self.publish_status();
        }
    }

    fn publish_status(&self) {
        if self.quiet {
            return;
        }
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
        // The first mark is the baseline: calls made before the objective
        // was watched (hours of them, for one a policy reload added) are
        // no part of any window.
        return Vec::new();
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
        let (observed, over) = match t.objective {
            Objective::Quantile(q) => {
                let n = histogram.count();
                if n == 0 {
                    continue;
                }
                // Decided by count, as the Prometheus rules decide it: the
                // quantile is over the limit when fewer calls than its rank
                // are at or under it (the histogram is exact there). The
                // figure shown is the quantile, on the side the count says.
                let rank = ((q.fraction() * n as f64).ceil() as u64).max(1);
                let at_or_under = histogram.cumulative_counts(&[bound_seconds(t.limit)])[0];
                let over = at_or_under < rank;
                let quantile = histogram.quantile(q.fraction());
                let shown = if over {
                    quantile.max(t.limit.saturating_add(1))
                } else {
                    quantile.min(t.limit)
                };
                (shown, over)
            }
            Objective::ErrorRate => {
                if calls == 0 {
                    continue;
                }
                let ppm = ((u128::from(errors) * 1_000_000) / u128::from(calls)) as u64;
                (ppm, ppm > t.limit)
            }
        };
        t.observed = Some(observed);
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
