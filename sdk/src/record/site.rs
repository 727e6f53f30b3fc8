//! Sites: one `static` per instrumented place.
//!
//! `#[measure]` declares a `static Site` inside the function it instruments.
//! On its first call the site registers (cold, once, under a lock) and gets a
//! dense id; every later call reads that id with one load and indexes the
//! calling thread's shard with it. The budget is also converted to clock ticks
//! at registration, so the per-call check is a plain integer comparison.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::record::clock;
use crate::record::stats::histogram;
use crate::record::stats::shard::MAX_SITES;
use crate::vocab::budget::{Budget, NONE};

/// What a site instruments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SiteKind {
    /// A synchronous function.
    Sync,
    /// An `async fn`: latency is first poll → completion.
    Async,
    /// The whole run, from `#[overrun::main]`.
    Main,
    /// The polls of tracked tasks of one name (see [`crate::tasks`]); not
    /// listed among the functions of a snapshot.
    TaskPoll,
    /// A `tracing` span callsite (feature `tracing`, [`crate::tracing`]):
    /// measured from the span's creation to its close.
    Span,
    /// The acquisitions, waits or holds of the locks of one name
    /// ([`crate::sync`]); not listed among the functions of a snapshot.
    Lock,
}

/// One instrumented place: its static metadata, its budget and its id.
///
/// Sites are created by the macros; user code reads them through
/// [`Violation`](crate::Violation) and [`crate::snapshot`].
///
/// ```
/// #[overrun::measure(budget = "1s")]
/// fn work() {}
/// work();
/// let snap = overrun::snapshot();
/// let site = snap.site("work").unwrap();
/// assert_eq!(site.budget.time_ns, Some(1_000_000_000));
/// ```
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    /// The path of a function item nested in the measured function, as
    /// `type_name` reads it (`app::A::new::__overrun_here`): the source of
    /// the identity of methods. `None` for an explicit `name = "…"`.
    path: Option<fn() -> &'static str>,
    /// The identity, set once at registration (a leaked, never freed
    /// `&'static str`; one per site, bounded by the code). Null until then.
    identity: AtomicPtr<&'static str>,
    module: &'static str,
    file: &'static str,
    line: u32,
    kind: SiteKind,
    budget: Budget,
    /// `0` until registered, then `index + 1`; `u32::MAX` when the site could
    /// not be registered (too many sites).
    pub(crate) id: AtomicU32,
    /// The budget in clock ticks (time, poll) and counts (allocs, bytes): read
    /// with `Relaxed` on every call, written at registration before the id is
    /// published with `Release`. `time_ticks` is where a call leaves the
    /// fast path: the time budget, or lower, the start of the histogram
    /// bucket next below a threshold's (see `thresholds_ns`).
    pub(crate) time_ticks: AtomicU64,
    /// The time budget in force, ticks and ns (`NONE`: none).
    pub(crate) budget_ticks: AtomicU64,
    pub(crate) budget_ns: AtomicU64,
    /// The time budget and the latency objectives' limits, ns, ascending
    /// (`NONE` after the last): a call in the histogram bucket that
    /// straddles one is counted on its true side of it.
    pub(crate) thresholds_ns: [AtomicU64; THRESHOLDS],
    /// Per threshold, the ticks `[from, to)` of the buckets where a call
    /// may be counted on its wrong side of it (the bucket that straddles
    /// it and its neighbours, for the tick ↔ ns rounding); `[NONE, 0)`
    /// after the last. A call past the gate outside all of them is counted
    /// as it is, with integer compares only.
    pub(crate) near_ticks: [[AtomicU64; 2]; THRESHOLDS],
    pub(crate) poll_ticks: AtomicU64,
    pub(crate) allocs: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// The most thresholds a site has: its time budget and its quantiles.
pub(crate) const THRESHOLDS: usize = 1 + crate::vocab::budget::Quantile::ALL.len();

/// Id marking a site that could not be registered.
pub(crate) const REJECTED: u32 = u32::MAX;

static REGISTERED: RwLock<Vec<&'static Site>> = RwLock::new(Vec::new());

/// A registering site's budget, once a policy layer set how to find it
/// (policy files; called under the registry's lock): else its code's.
pub(crate) static POLICY: OnceLock<fn(&'static Site) -> Budget> = OnceLock::new();

/// Run once, before the first site registers (a policy layer reads its
/// file there). Gathered by the linker where it can be.
#[cfg(overrun_linker_list)]
#[linkme::distributed_slice]
pub(crate) static BEFORE_FIRST_REGISTER: [fn()];

fn before_first_register() {
    // Re-entrant: a hook the policy layer calls may call a measured
    // function, which comes back here.
    static ONCE: crate::record::once::ReentrantOnce = crate::record::once::ReentrantOnce::new();
    ONCE.call(|| {
        #[cfg(all(overrun_linker_list, not(miri)))]
        for hook in BEFORE_FIRST_REGISTER {
            hook();
        }
    });
}

impl SiteKind {
    /// Whether sites of this kind are calls (functions and spans), listed
    /// among the functions of a snapshot and given budgets by a policy
    /// file; the run, task polls and locks are not.
    ///
    /// ```
    /// assert!(overrun::SiteKind::Span.is_call());
    /// assert!(!overrun::SiteKind::Lock.is_call());
    /// ```
    pub const fn is_call(self) -> bool {
        matches!(self, Self::Sync | Self::Async | Self::Span)
    }
}

impl Site {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        module: &'static str,
        file: &'static str,
        line: u32,
        kind: SiteKind,
        budget: Budget,
    ) -> Self {
        Self {
            name,
            path: None,
            identity: AtomicPtr::new(std::ptr::null_mut()),
            module,
            file,
            line,
            kind,
            budget,
            id: AtomicU32::new(0),
            time_ticks: AtomicU64::new(NONE),
            budget_ticks: AtomicU64::new(NONE),
            budget_ns: AtomicU64::new(NONE),
            thresholds_ns: [const { AtomicU64::new(NONE) }; THRESHOLDS],
            near_ticks: [const { [AtomicU64::new(NONE), AtomicU64::new(0)] }; THRESHOLDS],
            poll_ticks: AtomicU64::new(NONE),
            allocs: AtomicU64::new(NONE),
            bytes: AtomicU64::new(NONE),
        }
    }

    /// With the path of a function item declared inside the measured
    /// function (the macros pass `type_name_of_val` of one), from which the
    /// identity of methods is read at registration.
    #[doc(hidden)]
    #[must_use]
    pub const fn in_fn(mut self, path: fn() -> &'static str) -> Self {
        self.path = Some(path);
        self
    }

    /// The site's identity: no other site of its module has it, and the
    /// same code gives the same identity in every build and every run,
    /// whatever runs first. The function's name, qualified by its type for
    /// methods (`A::new`, `<A as Display>::fmt`), or `name = "…"` as given.
    /// Where that is not enough: functions of one name nested in different
    /// functions carry the function they are in (`one::helper`), and equal
    /// explicit names their line (`name@42`). Identities are planned once
    /// over every measured function the linker gathered, so a site is named
    /// before its first call and never renamed. (Where no linker list is
    /// read — under Miri — a site is named when it first runs, and such
    /// namesakes are told apart by who ran first.)
    ///
    /// ```
    /// struct Cart;
    /// impl Cart {
    ///     #[overrun::measure]
    ///     fn total(&self) -> u32 { 3 }
    /// }
    /// Cart.total();
    /// let snap = overrun::snapshot();
    /// assert_eq!(snap.site("Cart::total").unwrap().calls, 1);
    /// ```
    pub fn name(&self) -> &'static str {
        let identity = self.identity.load(Ordering::Acquire);
        if identity.is_null() {
            // Not registered yet: the planned identity, if the site is in
            // the linker's list (the plan is made once, off the call path).
            plan()
                .by_site
                .get(&(self as *const Site as usize))
                .copied()
                .unwrap_or(self.name)
        } else {
            // SAFETY: a non-null pointer was made by `Box::leak` in
            // `store_identity` and is never freed or written through.
            unsafe { *identity }
        }
    }

    /// The module path of the function.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// The source file of the function.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The line of the function's attribute.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// What kind of place this is.
    pub fn kind(&self) -> SiteKind {
        self.kind
    }

    /// The budget declared in the source.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The site's index, registering it on first use; `None` if the process
    /// already has the maximum number of sites.
    #[inline(always)]
    pub(crate) fn index(&'static self) -> Option<usize> {
        // Acquire pairs with the Release in `register`, so the tick budgets
        // written before the id are visible once the id is (a plain load on
        // x86_64).
        let id = self.id.load(Ordering::Acquire);
        if id.wrapping_sub(1) < MAX_SITES as u32 {
            Some((id - 1) as usize)
        } else {
            self.register()
        }
    }

    /// The site's index if it has registered (never registers).
    pub(crate) fn registered_index(&self) -> Option<usize> {
        let id = self.id.load(Ordering::Acquire);
        (id.wrapping_sub(1) < MAX_SITES as u32).then(|| (id - 1) as usize)
    }

    #[cold]
    #[inline(never)]
    fn register(&'static self) -> Option<usize> {
        crate::record::alloc::uncounted(|| {
            // Before the first site registers, outside the registry's lock
            // (the policy layer reads `OVERRUN_CONFIG` there, and applying
            // it reads every site).
            before_first_register();
            let mut sites = REGISTERED.write();
            match self.id.load(Ordering::Acquire) {
                0 => {}
                REJECTED => return None,
                id => return Some((id - 1) as usize),
            }
            if sites.len() >= MAX_SITES {
                self.id.store(REJECTED, Ordering::Release);
                drop(sites);
                // One message per process, however many sites are turned away.
                static TOLD: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if !TOLD.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "overrun: this process reached the maximum of {MAX_SITES} instrumented sites: \
                         `{}` ({}:{}) and any later new site are not measured; \
                         the sites already registered keep working",
                        self.name, self.file, self.line
                    );
                }
                return None;
            }
            clock::ensure_calibrated();
            let index = sites.len();
            self.set_identity(&sites);
            sites.push(self);
            let budget = POLICY.get().map_or(self.budget, |policy| policy(self));
            self.apply_budget(&budget);
            self.id.store(index as u32 + 1, Ordering::Release);
            crate::record::objective::set(self, index, budget.objectives);
            Some(index)
        })
    }

    /// Reads the identity from the nested function's path and makes sure
    /// no registered site of the same module has it: if one has, both are
    /// told apart by their line. Runs under the registry's write lock.
    fn set_identity(&'static self, sites: &[&'static Site]) {
        // Planned over every declared site at once: the same code gives the
        // same identities, whatever runs first. Only a site the linker did
        // not gather (a platform linkme does not serve) is named here, and
        // it never renames another.
        let plan = plan();
        let identity = match plan.by_site.get(&(self as *const Site as usize)) {
            Some(&planned) => planned,
            None => {
                let taken = IDENTITIES.lock();
                let (short, full) = self.names();
                let free = |name: &str| {
                    !plan.taken.contains(&(self.module, name))
                        && taken
                            .as_ref()
                            .is_none_or(|t| !t.contains_key(&(self.module, name)))
                };
                if free(short) {
                    short
                } else if free(full) {
                    full
                } else {
                    leak(format!("{short}@{}", self.line))
                }
            }
        };
        IDENTITIES
            .lock()
            .get_or_insert_with(HashMap::new)
            .insert((self.module, identity), sites.len());
        self.store_identity(identity);
    }

    /// The short identity (`A::new`, `helper`) and the full one, with the
    /// enclosing functions (`one::helper`), of this site.
    fn names(&self) -> (&'static str, &'static str) {
        let Some((short, full)) = self.path.and_then(|p| identity_from_path(p(), self.module))
        else {
            return (self.name, self.name);
        };
        let keep = |s: String| if s == self.name { self.name } else { leak(s) };
        (keep(short), keep(full))
    }

    fn store_identity(&self, identity: &'static str) {
        let boxed: &'static mut &'static str = Box::leak(Box::new(identity));
        // Release pairs with the Acquire in `name`.
        self.identity.store(boxed, Ordering::Release);
    }

    /// Stores `budget` as the limits checked on every call, and its
    /// objectives as those the evaluator checks (a registered site).
    pub(crate) fn apply_budget(&'static self, budget: &Budget) {
        if let Some(index) = self.registered_index() {
            crate::record::objective::set(self, index, budget.objectives);
        }
        let budget_ticks = clock::ns_to_ticks(budget.time_ns);
        let thresholds = budget.thresholds_ns();
        // Per threshold, the buckets where a call may be counted on its
        // wrong side of it: the one that straddles it and its neighbours
        // (the tick ↔ ns rounding). The gate is the lowest of their starts
        // and the budget: a call under it stays on the fast path.
        let mut gate = budget_ticks;
        for ((slot, near), ns) in self
            .thresholds_ns
            .iter()
            .zip(&self.near_ticks)
            .zip(thresholds.iter().copied().chain(std::iter::repeat(NONE)))
        {
            slot.store(ns, Ordering::Relaxed);
            let (from, to) = if ns == NONE {
                (NONE, 0)
            } else {
                let bucket = histogram::index(clock::ns_to_ticks(ns));
                let (above, width) = histogram::bounds((bucket + 1).min(histogram::BUCKETS - 1));
                (
                    histogram::bounds(bucket.saturating_sub(1)).0,
                    above.saturating_add(width),
                )
            };
            gate = gate.min(from);
            near[0].store(from, Ordering::Relaxed);
            near[1].store(to, Ordering::Relaxed);
        }
        self.budget_ns.store(budget.time_ns, Ordering::Relaxed);
        self.budget_ticks.store(budget_ticks, Ordering::Relaxed);
        self.time_ticks.store(gate, Ordering::Relaxed);
        self.poll_ticks
            .store(clock::ns_to_ticks(budget.poll_ns), Ordering::Relaxed);
        self.allocs.store(budget.allocs, Ordering::Relaxed);
        self.bytes.store(budget.bytes, Ordering::Relaxed);
    }
}

/// The identity of every site the linker gathered, by the site's address:
/// its short identity (`A::new`, `helper`) where no other site of its module
/// has the same; else, within each such group, the full one with the
/// enclosing functions (`one::helper`) when those differ; else (equal
/// explicit names) the short one and its line, `name@42` (and `#2`, `#3`… in
/// link order for sites on one line). Depends only on the code.
fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        crate::record::alloc::uncounted(|| {
            let mut groups: HashMap<(&str, &str), Vec<(&'static Site, &'static str)>> =
                HashMap::new();
            for &site in declared() {
                let (short, full) = site.names();
                groups
                    .entry((site.module, short))
                    .or_default()
                    .push((site, full));
            }
            let mut plan = Plan::default();
            for ((_, short), group) in groups {
                let fulls: HashSet<&str> = group.iter().map(|&(_, full)| full).collect();
                let mut lines: HashMap<u32, usize> = HashMap::new();
                for (site, full) in &group {
                    let identity = if group.len() == 1 {
                        short
                    } else if fulls.len() == group.len() {
                        shortest_distinct(full, &fulls)
                    } else {
                        let seen = lines.entry(site.line).or_default();
                        *seen += 1;
                        match *seen {
                            1 => leak(format!("{short}@{}", site.line)),
                            n => leak(format!("{short}@{}#{n}", site.line)),
                        }
                    };
                    plan.by_site.insert(*site as *const Site as usize, identity);
                    plan.taken.insert((site.module, identity));
                }
            }
            plan
        })
    })
}

/// Planned identities: by the site's address, and every (module, identity)
/// taken, so a site outside the plan never takes one of them.
#[derive(Default)]
struct Plan {
    by_site: HashMap<usize, &'static str>,
    taken: HashSet<(&'static str, &'static str)>,
}

/// The fewest trailing segments of `full` (`one::helper` of
/// `test::one::helper`) that no other member of `all` ends with.
fn shortest_distinct(full: &'static str, all: &HashSet<&'static str>) -> &'static str {
    let segments: Vec<&str> = full.split("::").collect();
    for k in 1..=segments.len() {
        let tail = segments[segments.len() - k..].join("::");
        let ends_alike = all
            .iter()
            .filter(|other| **other == tail || other.ends_with(&format!("::{tail}")))
            .count();
        if ends_alike == 1 {
            return if k == segments.len() {
                full
            } else {
                leak(tail)
            };
        }
    }
    full
}

/// Identities given so far, by module: the index of the site that took it.
type Identities = HashMap<(&'static str, &'static str), usize>;
static IDENTITIES: Mutex<Option<Identities>> = Mutex::new(None);

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The identity of a measured function from the `type_name` of a function
/// item declared in its site's initialiser: the marker's name and the
/// module are dropped, paths inside `<…>` keep their last segment.
///
/// `app::A::new::__OVERRUN_SITE::__overrun_here` → `A::new`;
/// `<app::A as core::fmt::Display>::fmt::__OVERRUN_SITE::__overrun_here` →
/// `<A as Display>::fmt`. Returns the short identity and the full one, with
/// the enclosing functions kept (`outer::inner`).
/// Anything unexpected (another compiler's format) gives `None`: the
/// function's bare name is used then.
fn identity_from_path(path: &str, module: &str) -> Option<(String, String)> {
    let path = path.strip_suffix("::__OVERRUN_SITE::__overrun_here")?;
    // The body of an `async fn` is a closure to the compiler; so is the
    // `async` block `#[tracing::instrument]` wraps it in, below `#[measure]`.
    let mut path = path;
    while let Some(outer) = path.strip_suffix("::{{closure}}") {
        path = outer;
    }
    let path = path
        .strip_prefix(module)
        .and_then(|rest| rest.strip_prefix("::"))
        .unwrap_or(path);
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    let mut segment_start = 0usize; // where the current path began in `out`
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => {
                depth += 1;
                out.push(c);
                segment_start = out.len();
            }
            '>' => {
                depth = depth.saturating_sub(1);
                out.push(c);
                segment_start = out.len();
            }
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                if depth > 0 {
                    // Inside `<…>`: drop the path so far, keep what follows.
                    out.truncate(segment_start);
                } else {
                    out.push_str("::");
                    segment_start = out.len();
                }
            }
            ' ' | ',' | '&' | '(' | '[' | ';' => {
                out.push(c);
                segment_start = out.len();
            }
            c => out.push(c),
        }
    }
    // Keep the function's name and the type segments before it (`A::new`);
    // drop enclosing functions, closures and modules (`outer::inner` is
    // `inner`: a nested function is named like any other).
    let mut segments = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let bytes = out.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                segments.push(&out[start..i]);
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    segments.push(&out[start..]);
    let last = segments.len() - 1;
    let first_kept = segments[..last]
        .iter()
        .rposition(|seg| !seg.starts_with(|c: char| c.is_uppercase() || c == '<'))
        .map_or(0, |p| p + 1);
    let short = segments[first_kept..].join("::");
    (!short.is_empty()).then(|| (short, segments.join("::")))
}

/// Every site `#[measure]` declared, gathered by the linker (on the
/// platforms `linkme` serves): a snapshot lists those that have not run,
/// with their planned identity and zero figures, so every measured function
/// has its series before its first call. A site still takes its dense id
/// only when it first runs, so per-thread shards grow with the sites used,
/// not those declared.
#[doc(hidden)]
#[cfg(overrun_linker_list)]
#[linkme::distributed_slice]
pub static SITES: [&'static Site];

/// Puts a site in the linker's list (`#[measure]` expands to it). Where the
/// list is not served, it expands to nothing and the site registers at its
/// first call.
#[doc(hidden)]
#[macro_export]
#[cfg(overrun_linker_list)]
macro_rules! __declare_site {
    // Straight to the `macro_rules!` linkme generates beside the slice
    // (`SITES!`), which puts the item in the slice's link section for each
    // platform: not through linkme's attribute, a procedural macro whose
    // expansion (and type check) cost about 0.45 ms of compile time per
    // measured function. The item's type is the slice's, by construction.
    ($site:ident) => {
        $crate::__private::SITES! {
            #![linkme_macro = $crate::__private::SITES]
            static __OVERRUN_DECLARED: &$crate::__private::Site = &$site;
        }
    };
}

/// See the other definition: on this target the linker's list is not served.
#[doc(hidden)]
#[macro_export]
#[cfg(not(overrun_linker_list))]
macro_rules! __declare_site {
    ($site:ident) => {};
}

/// The sites the linker gathered. Empty under Miri, which cannot read a
/// linker section, and on targets `linkme` does not serve: sites then
/// register at their first call.
fn declared() -> &'static [&'static Site] {
    #[cfg(all(overrun_linker_list, not(miri)))]
    {
        &SITES
    }
    #[cfg(not(all(overrun_linker_list, not(miri))))]
    {
        &[]
    }
}

/// Declared sites that have not registered (not run yet), in link order.
pub(crate) fn unregistered() -> impl Iterator<Item = &'static Site> {
    declared()
        .iter()
        .copied()
        .filter(|s| s.id.load(Ordering::Acquire) == 0)
}

/// Every registered site, in id order.
pub(crate) fn all() -> Vec<&'static Site> {
    REGISTERED.read().clone()
}

#[cfg(test)]
mod tests {
    use super::identity_from_path;

    #[test]
    fn identities_from_type_names() {
        let id = |p: &str| {
            let p = p.replace("::__overrun_here", "::__OVERRUN_SITE::__overrun_here");
            identity_from_path(&p, "app::db").map_or_else(|| "f".to_owned(), |(short, _)| short)
        };
        let full = |p: &str| {
            let p = p.replace("::__overrun_here", "::__OVERRUN_SITE::__overrun_here");
            identity_from_path(&p, "app::db").unwrap().1
        };
        assert_eq!(
            full("app::db::outer::inner::__overrun_here"),
            "outer::inner"
        );
        assert_eq!(full("app::db::A::new::__overrun_here"), "A::new");
        assert_eq!(id("app::db::load_user::__overrun_here"), "load_user");
        assert_eq!(id("app::db::fetch::{{closure}}::__overrun_here"), "fetch");
        assert_eq!(
            id("app::db::fetch::{{closure}}::{{closure}}::__overrun_here"),
            "fetch"
        );
        assert_eq!(
            id("app::db::A::load::{{closure}}::__overrun_here"),
            "A::load"
        );
        assert_eq!(id("app::db::A::new::__overrun_here"), "A::new");
        assert_eq!(id("app::db::B<_>::get::__overrun_here"), "B<_>::get");
        assert_eq!(
            id("<app::db::A as core::fmt::Display>::fmt::__overrun_here"),
            "<A as Display>::fmt"
        );
        assert_eq!(
            id("<app::db::Pool<alloc::string::String> as app::Source>::get::__overrun_here"),
            "<Pool<String> as Source>::get"
        );
        assert_eq!(id("app::db::outer::inner::__overrun_here"), "inner");
        assert_eq!(id("app::db::outer::A::new::__overrun_here"), "A::new");
        assert_eq!(id("app::db::sub::A::new::__overrun_here"), "A::new");
        assert_eq!(
            id("app::db::run::{{closure}}::step::__overrun_here"),
            "step"
        );
        assert_eq!(
            id("something else entirely"),
            "f",
            "unknown format: the bare name"
        );
    }
}
