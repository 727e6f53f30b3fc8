//! The layer: span callbacks driving the span's measurement.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{self, Attributes, Record};
use tracing_core::{Dispatch, Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::{callsites, open};
use crate::config::Pattern;
use crate::record::measure::{span_close, span_enter, span_exit, span_interval};
use crate::record::objective::{Recovery, on_recovery};
use crate::record::site::{Site, SiteKind};
use crate::record::violation::{HookId, Violation, on_violation, remove_hook};
use crate::vocab::budget::{
    ALLOCS_FIELD, BYTES_FIELD, Budget, MIN_WINDOW_NS, Objective, POLL_FIELD, Quantile, TIME_FIELD,
    WINDOW_FIELD, field_of, parse_duration, parse_percent, parse_size,
};
use crate::vocab::units::{SizeLimit, TimeLimit};

/// The layer that measures spans: see [`crate::tracing`].
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let layer = overrun::tracing::layer()
///     .budget("db.*", "50ms") // every span whose name starts with `db.`
///     .allocs("app::cache::*", 10) // spans of target `app::cache`
///     .poll("handler", overrun::duration!("1ms"))
///     .p99("handler", "20ms") // an objective over a window (5m unless set)
///     .events(true);
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
#[must_use = "a layer does nothing until it is added to a subscriber"]
pub struct BudgetLayer {
    rules: Vec<Rule>,
    events: bool,
    /// Whether this layer counts among the users of the events hook
    /// (from when it joins a subscriber until it is dropped).
    hooked: AtomicBool,
}

/// The hook that turns violations into events, shared by every layer with
/// events on: (layers using it, the hook while there are any).
static EVENTS_HOOK: Mutex<(usize, Option<(HookId, HookId)>)> = Mutex::new((0, None));

impl std::fmt::Debug for BudgetLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetLayer")
            .field("rules", &self.rules.len())
            .field("events", &self.events)
            .finish()
    }
}

/// A builder budget: a field of the spans `pattern` matches.
struct Rule {
    pattern: Pattern,
    field: usize,
    value: u64,
}

/// The span fields that carry budgets, in the order of [`Budget`]'s fields
/// as `Budget::set_field` numbers them (the policy file's keys, the time
/// budget's called `budget`).
const FIELDS: [&str; crate::vocab::budget::FIELDS.len()] = [
    "overrun.budget",
    "overrun.allocs",
    "overrun.bytes",
    "overrun.poll",
    "overrun.p50",
    "overrun.p90",
    "overrun.p95",
    "overrun.p99",
    "overrun.p999",
    "overrun.window",
    "overrun.error_rate",
];

/// A layer that measures the spans it sees; add it to a
/// `tracing_subscriber::registry()`. Events on (see [`BudgetLayer::events`]).
///
/// ```
/// let _layer = overrun::tracing::layer();
/// ```
pub fn layer() -> BudgetLayer {
    BudgetLayer {
        rules: Vec::new(),
        events: true,
        hooked: AtomicBool::new(false),
    }
}

impl BudgetLayer {
    /// A time budget (creation to close) for the spans `pattern` matches: a
    /// glob (`*`, `?`) over the span's name and `target::name`. Panics on a
    /// bad pattern, or a malformed `&str` literal (give
    /// `overrun::duration!("50ms")` to have it checked at compile time).
    #[track_caller]
    pub fn budget(self, pattern: &str, limit: impl TimeLimit) -> Self {
        let ns = limit.nanos();
        self.rule(pattern, TIME_FIELD, ns)
    }

    /// A budget on the allocations made while the span is entered.
    #[track_caller]
    pub fn allocs(self, pattern: &str, limit: u64) -> Self {
        self.rule(pattern, ALLOCS_FIELD, limit)
    }

    /// A budget on the bytes allocated while the span is entered.
    #[track_caller]
    pub fn bytes(self, pattern: &str, limit: impl SizeLimit) -> Self {
        let bytes = limit.bytes();
        self.rule(pattern, BYTES_FIELD, bytes)
    }

    /// A budget on each entered interval of the span (for an instrumented
    /// future, one poll).
    #[track_caller]
    pub fn poll(self, pattern: &str, limit: impl TimeLimit) -> Self {
        let ns = limit.nanos();
        self.rule(pattern, POLL_FIELD, ns)
    }

    /// A latency objective for the spans `pattern` matches: their median
    /// over the window ([`BudgetLayer::window`], 5 minutes unless set) at
    /// most `limit`, as `#[measure(p50 = "…")]` and the span field
    /// `overrun.p50` set it. Crossing it is one violation (kind
    /// `objective`); going back under, one recovery (an INFO event).
    ///
    /// ```
    /// let _layer = overrun::tracing::layer()
    ///     .p99("http.request", "250ms")
    ///     .error_rate("http.request", "1%")
    ///     .window("http.request", "10m");
    /// ```
    #[track_caller]
    pub fn p50(self, pattern: &str, limit: impl TimeLimit) -> Self {
        self.quantile(pattern, Quantile::P50, limit)
    }

    /// The 90th percentile objective: see [`BudgetLayer::p50`].
    #[track_caller]
    pub fn p90(self, pattern: &str, limit: impl TimeLimit) -> Self {
        self.quantile(pattern, Quantile::P90, limit)
    }

    /// The 95th percentile objective: see [`BudgetLayer::p50`].
    #[track_caller]
    pub fn p95(self, pattern: &str, limit: impl TimeLimit) -> Self {
        self.quantile(pattern, Quantile::P95, limit)
    }

    /// The 99th percentile objective: see [`BudgetLayer::p50`].
    #[track_caller]
    pub fn p99(self, pattern: &str, limit: impl TimeLimit) -> Self {
        self.quantile(pattern, Quantile::P99, limit)
    }

    /// The 99.9th percentile objective: see [`BudgetLayer::p50`].
    #[track_caller]
    pub fn p999(self, pattern: &str, limit: impl TimeLimit) -> Self {
        self.quantile(pattern, Quantile::P999, limit)
    }

    /// The window the objectives of the spans `pattern` matches are judged
    /// over (5 minutes unless set). Panics under `"1s"`.
    #[track_caller]
    pub fn window(self, pattern: &str, window: impl TimeLimit) -> Self {
        let ns = window.nanos();
        assert!(
            ns >= MIN_WINDOW_NS,
            "overrun::tracing::layer(): window {} for `{pattern}`: a window is at least \"1s\"",
            crate::vocab::units::fmt_ns(ns)
        );
        self.rule(pattern, WINDOW_FIELD, ns)
    }

    /// An error-rate objective for the spans `pattern` matches: at most
    /// `rate` (`"1%"`, `"0.5%"`) of them over the window in error (an
    /// `error` field, an ERROR event inside, `#[instrument(err)]`). Panics
    /// on a rate that is not a percentage from 0 to 100.
    #[track_caller]
    pub fn error_rate(self, pattern: &str, rate: &str) -> Self {
        let ppm = parse_percent(rate).unwrap_or_else(|e| {
            panic!("overrun::tracing::layer(): error_rate {rate:?} for `{pattern}`: {e}")
        });
        self.rule(pattern, field_of(Objective::ErrorRate), ppm)
    }

    /// Whether violations are also `tracing` WARN events (default: yes).
    pub fn events(mut self, on: bool) -> Self {
        self.events = on;
        self
    }

    #[track_caller]
    fn quantile(self, pattern: &str, q: Quantile, limit: impl TimeLimit) -> Self {
        let ns = limit.nanos();
        self.rule(pattern, field_of(Objective::Quantile(q)), ns)
    }

    #[track_caller]
    fn rule(mut self, pattern: &str, field: usize, value: u64) -> Self {
        let pattern = Pattern::parse(pattern)
            .unwrap_or_else(|e| panic!("overrun::tracing::layer(): pattern `{pattern}`: {e}"));
        self.rules.push(Rule {
            pattern,
            field,
            value,
        });
        self
    }

    /// The span's callsite (made from its first span).
    #[inline]
    fn callsite(&self, attrs: &Attributes<'_>) -> &'static Callsite {
        let meta: &'static Metadata<'static> = attrs.metadata();
        let key = meta as *const Metadata<'static> as usize;
        if let Some(callsite) = callsites::get(key) {
            return callsite;
        }
        callsites::get_or_create(key, || {
            crate::record::alloc::uncounted(|| {
                &*Box::leak(Box::new(Callsite {
                    site: self.make_site(meta, attrs),
                    error: meta.fields().field("error").is_some(),
                }))
            })
        })
    }

    #[cold]
    fn make_site(&self, meta: &'static Metadata<'static>, attrs: &Attributes<'_>) -> &'static Site {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let file = meta.file().unwrap_or("<unknown>");
        let line = meta.line().unwrap_or(0);
        for (key, value, err) in &fields.bad {
            eprintln!(
                "overrun: span `{}` ({file}:{line}): `{key}` = {value} ignored: {err}",
                meta.name()
            );
        }
        let mut budget = fields.budget;
        // The builder over the fields, per field; among its rules the most
        // specific, then the later.
        for field in 0..FIELDS.len() {
            let best = self
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.field == field && r.pattern.matches(meta.target(), meta.name()))
                .max_by_key(|(order, r)| (r.pattern.specificity(), *order));
            if let Some((_, rule)) = best {
                budget.set_field(field, rule.value);
            }
        }
        Box::leak(Box::new(Site::new(
            meta.name(),
            meta.target(),
            file,
            line,
            SiteKind::Span,
            budget,
        )))
    }
}

impl BudgetLayer {
    /// This layer's mark in the table of open spans: its address (it does
    /// not move once it is part of a subscriber).
    #[inline]
    fn owner(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Joins the users of the events hook (once), registering it for the
    /// first.
    fn hook_events(&self) {
        if !self.events || self.hooked.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut hook = EVENTS_HOOK.lock();
        hook.0 += 1;
        if hook.1.is_none() {
            hook.1 = Some((on_violation(emit), on_recovery(emit_recovery)));
        }
    }
}

impl Drop for BudgetLayer {
    fn drop(&mut self) {
        if !self.hooked.load(Ordering::Acquire) {
            return;
        }
        let mut hook = EVENTS_HOOK.lock();
        hook.0 -= 1;
        if hook.0 == 0
            && let Some((violations, recoveries)) = hook.1.take()
        {
            remove_hook(violations);
            remove_hook(recoveries);
        }
    }
}

/// What a span callsite needs on every span: its site, and whether it has
/// an `error` field (only then are its fields visited).
pub(super) struct Callsite {
    pub(super) site: &'static Site,
    pub(super) error: bool,
}

/// Spans whose state is in the registry's extensions now (every layer's):
/// while there are none, a span the table does not have is not measured,
/// and its exit and close take no lookup in the registry.
static SPILLED: AtomicUsize = AtomicUsize::new(0);

/// A span's state when the table of open spans had no room for it: in the
/// registry's extensions (the same fields as a table slot).
struct SpanState {
    callsite: &'static Callsite,
    start: u64,
    error: bool,
    allocs: u64,
    bytes: u64,
}

impl<S> Layer<S> for BudgetLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // Either call joins the events hook: `on_layer` when the layer is added
    // with `with`, `on_register_dispatch` when the subscriber becomes a
    // dispatcher (wrappers pass on one or the other).
    fn on_layer(&mut self, _subscriber: &mut S) {
        self.hook_events();
    }

    fn on_register_dispatch(&self, _subscriber: &Dispatch) {
        self.hook_events();
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if !crate::record::measure::enabled() {
            return;
        }
        let callsite = self.callsite(attrs);
        if callsite.site.index().is_none() {
            return;
        }
        // Visited only for a callsite that has an `error` field.
        let error = callsite.error && {
            let mut error = ErrorField(false);
            attrs.record(&mut error);
            error.0
        };
        let start = crate::record::clock::now();
        if open::open(self.owner(), id.into_u64(), callsite, start, error).is_some() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            SPILLED.fetch_add(1, Ordering::Relaxed);
            // The layer's own bookkeeping is not the code's allocations.
            crate::record::alloc::uncounted(|| {
                span.extensions_mut().insert(SpanState {
                    callsite,
                    start,
                    error,
                    allocs: 0,
                    bytes: 0,
                });
            });
        }
    }

    fn on_record(&self, id: &span::Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut error = ErrorField(false);
        values.record(&mut error);
        if error.0 {
            mark_error(self.owner(), id, &ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR
            && let Some(span) = ctx.event_span(event)
        {
            mark_error(self.owner(), &span.id(), &ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, _ctx: Context<'_, S>) {
        // Only this thread's list of open intervals: the span is looked up
        // when it is exited, once.
        span_enter(self.owner(), id.into_u64());
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        let Some(interval) = span_exit(self.owner(), id.into_u64()) else {
            return;
        };
        let callsite = match open::find(self.owner(), id.into_u64()) {
            Some(slot) => {
                if interval.allocs != 0 {
                    // The span's own sums, for its allocation budgets (it
                    // may be entered on several threads at once).
                    slot.allocs.fetch_add(interval.allocs, Ordering::Relaxed);
                    slot.bytes.fetch_add(interval.bytes, Ordering::Relaxed);
                }
                match slot.callsite() {
                    Some(callsite) => callsite,
                    None => return,
                }
            }
            None if SPILLED.load(Ordering::Relaxed) == 0 => return,
            None => match ctx.span(id) {
                Some(span) => match span.extensions_mut().get_mut::<SpanState>() {
                    Some(state) => {
                        state.allocs += interval.allocs;
                        state.bytes += interval.bytes;
                        state.callsite
                    }
                    None => return,
                },
                None => return,
            },
        };
        if let Some(over) = span_interval(callsite.site, &interval) {
            within_span(id, || over.publish());
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let state = match open::find(self.owner(), id.into_u64()) {
            Some(slot) => {
                let Some(callsite) = slot.callsite() else {
                    slot.close();
                    return;
                };
                let state = SpanState {
                    callsite,
                    start: slot.start.load(Ordering::Relaxed),
                    error: slot.error.load(Ordering::Relaxed),
                    allocs: slot.allocs.load(Ordering::Relaxed),
                    bytes: slot.bytes.load(Ordering::Relaxed),
                };
                slot.close();
                state
            }
            None if SPILLED.load(Ordering::Relaxed) == 0 => return,
            None => match ctx
                .span(&id)
                .and_then(|span| span.extensions_mut().remove::<SpanState>())
            {
                Some(state) => {
                    SPILLED.fetch_sub(1, Ordering::Relaxed);
                    state
                }
                None => return,
            },
        };
        let over = span_close(
            state.callsite.site,
            state.start,
            state.error,
            state.allocs,
            state.bytes,
        );
        if let Some(over) = over {
            within_span(&id, || over.publish());
        }
    }
}

/// The span `id` is an error. (An ERROR event naming a span by id after it
/// closed may mark the span that took its id since, as the registry's own
/// lookups would.)
fn mark_error<S: Subscriber + for<'a> LookupSpan<'a>>(
    owner: usize,
    id: &span::Id,
    ctx: &Context<'_, S>,
) {
    if let Some(slot) = open::find(owner, id.into_u64()) {
        slot.error.store(true, Ordering::Relaxed);
    } else if SPILLED.load(Ordering::Relaxed) != 0
        && let Some(span) = ctx.span(id)
        && let Some(state) = span.extensions_mut().get_mut::<SpanState>()
    {
        state.error = true;
    }
}

thread_local! {
    /// The span whose violation is being published on this thread: its
    /// event goes inside it (it is no longer the current span at exit and
    /// close).
    static PARENT: Cell<Option<NonZeroU64>> = const { Cell::new(None) };
}

fn within_span(id: &span::Id, publish: impl FnOnce()) {
    let before = PARENT.with(|p| p.replace(Some(id.into_non_zero_u64())));
    publish();
    PARENT.with(|p| p.set(before));
}

/// A violation as a WARN event: inside the span that broke its budget, or
/// the span current where a function broke its.
fn emit(v: &Violation) {
    let parent = PARENT.with(Cell::get).map(span::Id::from_non_zero_u64);
    macro_rules! warn_with {
        ($($parent:tt)*) => {
            ::tracing::warn!(
                target: "overrun",
                $($parent)*
                function = v.name,
                module = v.module,
                kind = v.kind.as_str(),
                observed = v.observed,
                limit = v.limit,
                unit = v.unit(),
                objective = v.objective.map(|o| o.key()),
                file = v.file,
                line = v.line,
                "budget violation"
            )
        };
    }
    match parent {
        Some(parent) => warn_with!(parent: parent,),
        None => warn_with!(),
    }
}

/// An objective met again after a breach, as an INFO event.
fn emit_recovery(r: &Recovery) {
    ::tracing::info!(
        target: "overrun",
        function = r.name,
        module = r.module,
        objective = r.objective.key(),
        observed = r.observed,
        limit = r.limit,
        unit = r.objective.unit(),
        window_ns = r.window_ns,
        file = r.file,
        line = r.line,
        "objective recovered"
    );
}

/// Whether the fields record an `error` (any value but `false`).
struct ErrorField(bool);

impl Visit for ErrorField {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "error" {
            self.0 |= value;
        }
    }

    fn record_debug(&mut self, field: &Field, _: &dyn std::fmt::Debug) {
        if field.name() == "error" {
            self.0 = true;
        }
    }
}

/// A span's budget fields, and those that did not parse.
#[derive(Default)]
struct Fields {
    budget: Budget,
    bad: Vec<(&'static str, String, String)>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: Result<u64, (String, String)>) {
        let Some(at) = FIELDS.iter().position(|f| *f == field.name()) else {
            return;
        };
        match value {
            Ok(v) => self.budget.set_field(at, v),
            Err((shown, err)) => self.bad.push((FIELDS[at], shown, err)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let parsed = match field.name() {
            "overrun.budget" | "overrun.poll" | "overrun.p50" | "overrun.p90" | "overrun.p95"
            | "overrun.p99" | "overrun.p999" => parse_duration(value).map_err(|e| e.to_string()),
            "overrun.window" => parse_duration(value)
                .map_err(|e| e.to_string())
                .and_then(|ns| {
                    (ns >= MIN_WINDOW_NS)
                        .then_some(ns)
                        .ok_or_else(|| "a window is at least \"1s\"".to_owned())
                }),
            "overrun.error_rate" => parse_percent(value).map_err(|e| e.to_string()),
            "overrun.bytes" => parse_size(value).map_err(|e| e.to_string()),
            _ => value
                .trim()
                .parse::<u64>()
                .map_err(|_| "not a count".to_owned()),
        };
        self.set(field, parsed.map_err(|e| (format!("{value:?}"), e)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let parsed = match field.name() {
            "overrun.allocs" | "overrun.bytes" => Ok(value),
            _ => Err("a duration is a string such as \"5ms\"".to_owned()),
        };
        self.set(field, parsed.map_err(|e| (value.to_string(), e)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.set(field, Err((value.to_string(), "below zero".to_owned()))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if FIELDS.contains(&field.name()) {
            self.set(
                field,
                Err((
                    format!("{value:?}"),
                    "expected a string or a count".to_owned(),
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::vocab::budget::TIME_FIELD;

    #[test]
    fn span_fields_are_the_budget_fields_in_their_order() {
        for (i, (span, key)) in super::FIELDS
            .iter()
            .zip(crate::vocab::budget::FIELDS)
            .enumerate()
        {
            let key = if i == TIME_FIELD { "budget" } else { key };
            assert_eq!(span.strip_prefix("overrun."), Some(key));
        }
    }
}
