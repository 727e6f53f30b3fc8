//! How a run under `#[overrun::main]` ends, and its report on every ending.
//!
//! | the run ends by | the report comes from | exit status |
//! | --- | --- | --- |
//! | `main` returning (any `ExitCode` or `Result`) | the guard's `Drop` | unchanged |
//! | a panic (unwinding) | the guard's `Drop`, while unwinding | unchanged (101) |
//! | a panic with `panic = "abort"` | the panic hook, after the previous hook | unchanged (abort) |
//! | `std::process::exit` from any thread | an `atexit` handler | unchanged |
//! | SIGINT or SIGTERM, with no handler of the program's own | a watcher thread, then the signal's default action | killed by that signal |
//!
//! Whichever comes first writes the report and runs the exit hooks
//! ([`crate::run::on_exit`]: exporters' last export); the others find it
//! done. The run's own budgets are checked at that moment.
//!
//! Signals: the handler only writes the signal's number to a pipe (one
//! async-signal-safe `write`); a watcher thread does the work. A program
//! that has its own handler for SIGINT or SIGTERM keeps its behaviour: if
//! the signal was ignored or handled when the run started, overrun leaves
//! it alone; if the program installs a handler later (tokio's `signal`,
//! `ctrlc`, `signal-hook`), the watcher sees that its handler is no longer
//! the installed one and does nothing, and the report comes when `main`
//! returns.

use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::record::site::Site;

/// `main`'s site and memory budget, for the endings that have no guard.
static RUN: OnceLock<(&'static Site, u64)> = OnceLock::new();
/// Whether the report was made (taken while it is being made).
static DONE: Mutex<bool> = Mutex::new(false);

/// Arms every ending: called by `#[overrun::main]` at the start of `main`.
pub(crate) fn arm(site: &'static Site, memory_bytes: u64, panic_aborts: bool) {
    if RUN.set((site, memory_bytes)).is_err() {
        return; // armed already
    }
    #[cfg(all(unix, not(miri)))]
    {
        // SAFETY: `at_exit` is a plain `extern "C" fn()` that lives as long
        // as the program; registering it has no other effect.
        unsafe { libc::atexit(at_exit) };
        signals::arm();
    }
    if panic_aborts {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            finish();
        }));
    }
}

/// Makes the report and runs the exit hooks, once, whichever ending comes
/// first; a second caller waits until the first is done.
pub(crate) fn finish() {
    let mut done = DONE.lock();
    if *done {
        return;
    }
    *done = true;
    if let Some(&(site, memory_bytes)) = RUN.get()
        && crate::record::measure::enabled()
    {
        crate::run::check(site, memory_bytes);
        super::report::report();
    }
    crate::run::run_exit_hooks();
}

#[cfg(all(unix, not(miri)))]
extern "C" fn at_exit() {
    // `exit` runs this on the thread that called it; a panic must not
    // unwind into C.
    let _ = std::panic::catch_unwind(finish);
}

#[cfg(all(unix, not(miri)))]
mod signals {
    use std::sync::atomic::{AtomicI32, Ordering};

    const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

    /// The pipe's write end, for the handler.
    static WRITE_END: AtomicI32 = AtomicI32::new(-1);

    /// The handler: one `write` of the signal's number (async-signal-safe),
    /// `errno` kept as it was.
    extern "C" fn on_signal(signal: libc::c_int) {
        // SAFETY: `__errno_location`/`__error` return this thread's errno;
        // `write` is async-signal-safe and given a valid one-byte buffer.
        unsafe {
            let errno = errno_location();
            let saved = *errno;
            let byte = signal as u8;
            libc::write(
                WRITE_END.load(Ordering::Relaxed),
                (&raw const byte).cast(),
                1,
            );
            *errno = saved;
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    unsafe fn errno_location() -> *mut libc::c_int {
        // SAFETY: always valid for the calling thread.
        unsafe { libc::__errno_location() }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    unsafe fn errno_location() -> *mut libc::c_int {
        // SAFETY: always valid for the calling thread.
        unsafe { libc::__error() }
    }

    /// The handler installed for `signal` now.
    fn installed(signal: libc::c_int) -> libc::sighandler_t {
        // SAFETY: all-zero is a valid `sigaction`; `sigaction` with a null
        // new action only reads the current one into `current`.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut current);
            current.sa_sigaction
        }
    }

    pub(super) fn arm() {
        let free: Vec<libc::c_int> = SIGNALS
            .into_iter()
            .filter(|&s| installed(s) == libc::SIG_DFL)
            .collect();
        if free.is_empty() {
            return; // ignored or handled by someone else: theirs
        }
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe` writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return;
        }
        let [read_end, write_end] = fds;
        WRITE_END.store(write_end, Ordering::Relaxed);
        let watcher = std::thread::Builder::new()
            .name("overrun-signals".into())
            .spawn(move || watch(read_end));
        if watcher.is_err() {
            return;
        }
        for signal in free {
            // SAFETY: all-zero is a valid `sigaction`; the handler is an
            // `extern "C" fn(c_int)` that only writes to a pipe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }

    fn watch(read_end: libc::c_int) {
        loop {
            let mut byte = 0u8;
            // SAFETY: reads at most one byte into `byte`.
            let n = unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) };
            if n != 1 {
                continue; // interrupted; try again
            }
            let signal = libc::c_int::from(byte);
            if installed(signal) != on_signal as *const () as usize {
                // The program installed its own handler after ours and
                // chained to it: its behaviour wins.
                continue;
            }
            super::finish();
            // End as the signal would have ended the process.
            // SAFETY: restores the default action, unblocks the signal for
            // this thread and raises it: the process ends by that signal.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, signal);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(signal);
            }
        }
    }
}
