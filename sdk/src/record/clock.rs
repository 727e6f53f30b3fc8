//! One fast monotonic clock for every measurement.
//!
//! Raw readings are *ticks*: TSC cycles where `quanta` finds an invariant TSC
//! (x86_64 with `constant_tsc`/`nonstop_tsc`, or the ARMv8 system counter),
//! otherwise nanoseconds from the OS monotonic clock. The hot path works in
//! ticks only (the budget is converted to ticks once, when a site registers);
//! conversion to nanoseconds happens on snapshot, off the hot path.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once calibration chose the TSC: `now()` then reads it directly
/// (one relaxed load and a branch instead of the `OnceLock` state and
/// quanta's clock-kind match, twice per measured call).
static TSC: AtomicBool = AtomicBool::new(false);

struct Calibrated {
    #[cfg(not(miri))]
    clock: quanta::Clock,
    /// Under Miri (no `cpuid`/`rdtsc`), ticks are nanoseconds since this.
    #[cfg(miri)]
    base: std::time::Instant,
    /// Nanoseconds per tick.
    ns_per_tick: f64,
}

static CLOCK: OnceLock<Calibrated> = OnceLock::new();

#[cold]
#[inline(never)]
fn init() -> &'static Calibrated {
    // Calibration allocates a little; never charge that to a measured call.
    crate::record::alloc::uncounted(|| CLOCK.get_or_init(calibrate))
}

/// Calibrates the clock now if it is not yet (site registration does, so
/// that the first measured call never pays for it).
pub(crate) fn ensure_calibrated() {
    let _ = calibrated();
}

#[cfg(not(miri))]
fn calibrate() -> Calibrated {
    // Detects an invariant TSC and calibrates it against the OS clock
    // (about 0.6 ms, once); falls back to the OS clock otherwise.
    let clock = quanta::Clock::new();
    // quanta picks the TSC only when it is invariant (and calibrates it).
    // Whether it did is read from what its public API does, not from its
    // private representation: its raw reading then lies between two `rdtsc`
    // reads taken around it (the OS clock's nanoseconds never do).
    #[cfg(target_arch = "x86_64")]
    if quanta_reads_tsc(&clock) {
        TSC.store(true, Ordering::Relaxed);
    }
    // quanta's own scale is fixed-point; derive one factor from it so both
    // directions (ticks → ns on snapshot, ns → ticks for budgets) agree.
    const SPAN: u64 = 1 << 40;
    let ns = clock.delta_as_nanos(0, SPAN);
    let ns_per_tick = if ns == 0 {
        1.0
    } else {
        ns as f64 / SPAN as f64
    };
    Calibrated { clock, ns_per_tick }
}

/// Whether `clock.raw()` reads the TSC: true when, in any of a few tries, its
/// reading falls between two `rdtsc` reads around it.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn quanta_reads_tsc(clock: &quanta::Clock) -> bool {
    (0..8).any(|_| {
        // SAFETY: `rdtsc` exists on every x86_64 CPU and has no side effects.
        let before = unsafe { core::arch::x86_64::_rdtsc() };
        let raw = clock.raw();
        // SAFETY: as above.
        let after = unsafe { core::arch::x86_64::_rdtsc() };
        (before..=after).contains(&raw)
    })
}

/// Whether measured calls read the TSC directly (the fast path).
#[cfg(test)]
fn uses_tsc() -> bool {
    ensure_calibrated();
    TSC.load(Ordering::Relaxed)
}

#[cfg(miri)]
fn calibrate() -> Calibrated {
    Calibrated {
        base: std::time::Instant::now(),
        ns_per_tick: 1.0,
    }
}

#[inline(always)]
fn calibrated() -> &'static Calibrated {
    match CLOCK.get() {
        Some(c) => c,
        None => init(),
    }
}

/// Reads the clock, in ticks.
///
/// ```
/// let a = overrun::clock::now();
/// let b = overrun::clock::now();
/// assert!(overrun::clock::ticks_to_ns(b.saturating_sub(a)) < 1_000_000_000);
/// ```
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if TSC.load(Ordering::Relaxed) {
        // SAFETY: `rdtsc` exists on every x86_64 CPU; TSC is only set after
        // quanta found it invariant and calibrated it, so ticks read here are
        // the ones `ticks_to_ns` converts.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    #[cfg(not(miri))]
    return calibrated().clock.raw();
    #[cfg(miri)]
    return calibrated().base.elapsed().as_nanos() as u64;
}

/// Converts a tick count to nanoseconds.
///
/// ```
/// assert_eq!(overrun::clock::ticks_to_ns(0), 0);
/// ```
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let ns_per_tick = calibrated().ns_per_tick;
    if ns_per_tick == 1.0 {
        ticks
    } else {
        (ticks as f64 * ns_per_tick).round() as u64
    }
}

/// Converts nanoseconds to ticks, saturating; `u64::MAX` ("no budget") stays
/// `u64::MAX`.
///
/// ```
/// assert_eq!(overrun::clock::ns_to_ticks(u64::MAX), u64::MAX);
/// let ticks = overrun::clock::ns_to_ticks(1_000_000);
/// let back = overrun::clock::ticks_to_ns(ticks);
/// assert!(back.abs_diff(1_000_000) < 1_000);
/// ```
pub fn ns_to_ticks(ns: u64) -> u64 {
    if ns == u64::MAX {
        return u64::MAX;
    }
    let ns_per_tick = calibrated().ns_per_tick;
    if ns_per_tick == 1.0 {
        ns
    } else {
        let ticks = ns as f64 / ns_per_tick;
        if ticks >= u64::MAX as f64 {
            u64::MAX - 1
        } else {
            ticks as u64
        }
    }
}

/// Nanoseconds per tick of the clock in use (1.0 when the OS clock is used).
///
/// ```
/// assert!(overrun::clock::ns_per_tick() > 0.0);
/// ```
pub fn ns_per_tick() -> f64 {
    calibrated().ns_per_tick
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    // Calibration against real time: Miri has no TSC and runs far too slowly
    // for a 20 ms comparison to mean anything.
    #[cfg_attr(miri, ignore)]
    fn ticks_convert_to_real_nanoseconds() {
        // Each tick read is bracketed by two `Instant` reads, so a preemption
        // anywhere widens the bracket instead of failing the test: the
        // clock's figure must lie between the inner and the outer interval.
        let outer_start = Instant::now();
        let start = now();
        let inner_start = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let inner_end = Instant::now();
        let end = now();
        let outer_end = Instant::now();
        let measured = ticks_to_ns(end - start) as f64;
        let inner = (inner_end - inner_start).as_nanos() as f64;
        let outer = (outer_end - outer_start).as_nanos() as f64;
        assert!(
            measured >= inner * 0.99 && measured <= outer * 1.01,
            "{measured} ns by the clock, {inner}..{outer} ns by Instant"
        );
        assert!(ns_to_ticks(ticks_to_ns(1 << 30)).abs_diff(1 << 30) < 1 << 12);
    }

    /// On a CPU whose TSC is invariant (CPUID 0x8000_0007, EDX bit 8) and
    /// has `rdtscp` (what quanta requires), measured calls must take the
    /// fast path.
    #[test]
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    fn the_fast_path_is_taken_where_the_tsc_is_invariant() {
        use core::arch::x86_64::__cpuid;
        // Leaves above the maximum the CPU reports are not read.
        let max_ext = __cpuid(0x8000_0000).eax;
        let invariant = max_ext >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
        let rdtscp = max_ext >= 0x8000_0001 && __cpuid(0x8000_0001).edx & (1 << 27) != 0;
        if invariant && rdtscp {
            assert!(uses_tsc(), "invariant TSC, yet the slow clock was chosen");
        } else {
            assert!(!uses_tsc(), "the TSC is not invariant here");
        }
    }
}
