//! How a run under `#[overrun::main]` ends, and its report on every ending.
//!
//! | the run ends by | the report comes from | exit status |
//! | --- | --- | --- |
//! | `main` returning (any `ExitCode` or `Result`) | the guard's `Drop` | unchanged |
//! | a panic (unwinding) | the guard's `Drop`, while unwinding | unchanged (101) |
//! | a panic with `panic = "abort"` | the panic hook, after the previous hook | unchanged (abort) |
//! | `std::process::exit` from any thread (Unix) | an `atexit` handler | unchanged |
//! | SIGINT or SIGTERM (Unix), with no handler of the program's own | a watcher thread, then the signal's default action | killed by that signal |
//!
//! Whichever comes first writes the report and runs the exit hooks
//! ([`crate::run::on_exit`]: exporters' last export); the others wait for
//! it, or return at once if they are the same thread coming back (a hook
//! that calls `exit`). The run's own budgets are checked at that moment.
//! Once per process: the first `#[overrun::main]` arms it.
//!
//! A second SIGINT or SIGTERM while the report or an exporter's last export
//! is under way ends the process at once, by that signal. With
//! `panic = "abort"`, other threads run on while the hook reports, and a
//! panic hook set later by the program replaces overrun's.
//!
//! Signals: the handler only writes the signal's number to a pipe (one
//! async-signal-safe `write`); a watcher thread, which blocks both signals
//! itself (so programs that `sigwait` keep theirs), does the work. A program
//! that has its own handler for SIGINT or SIGTERM keeps its behaviour: if
//! the signal was ignored or handled when the run started, overrun leaves
//! it alone; if the program installs a handler later (tokio's `signal`,
//! `ctrlc`, `signal-hook`), the watcher sees that its handler is no longer
//! the installed one and does nothing, and the report comes when `main`
//! returns.

use std::sync::OnceLock;
use std::thread::ThreadId;

use parking_lot::{Condvar, Mutex};

use crate::record::site::Site;

/// `main`'s site, for the endings that have no guard (its budget is in
/// `run`'s state).
static RUN: OnceLock<&'static Site> = OnceLock::new();

/// Where the report stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    /// Being made by this thread.
    Running(ThreadId),
    Done,
}

static STATE: Mutex<State> = Mutex::new(State::Pending);
static DONE: Condvar = Condvar::new();

/// Arms every ending: called by `#[overrun::main]` at the start of `main`.
pub(crate) fn arm(site: &'static Site, panic_aborts: bool) {
    if RUN.set(site).is_err() {
        return; // armed already: once per process
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
            // Never wait here: the thread making the report may be the one
            // that panicked, or be waiting for it.
            let _ = finish(Wait::No);
        }));
    }
}

/// Whether a caller that finds the report under way waits for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Yes,
    No,
}

/// Makes the report and runs the exit hooks, once, whichever ending comes
/// first; `false` if this call could not write the report file. Another thread waits until that is done (with [`Wait::Yes`]); the
/// thread making it, coming back (an exit hook or a violation hook that
/// calls `exit`), returns at once, so the process ends instead of hanging.
pub(crate) fn finish(wait: Wait) -> bool {
    let me = std::thread::current().id();
    {
        let mut state = STATE.lock();
        loop {
            match *state {
                State::Done => return true,
                State::Running(owner) if owner == me => return true,
                State::Running(_) if wait == Wait::No => return true,
                State::Running(_) => DONE.wait(&mut state),
                State::Pending => break,
            }
        }
        *state = State::Running(me);
    }
    let mut written = true;
    if let Some(&site) = RUN.get()
        && crate::record::measure::enabled()
    {
        crate::run::check(site);
        written = super::report::report_at_end(crate::run::debug_build());
    }
    crate::run::run_exit_hooks();
    *STATE.lock() = State::Done;
    DONE.notify_all();
    written
}

#[cfg(all(unix, not(miri)))]
extern "C" fn at_exit() {
    // `exit` runs this on the thread that called it; a panic must not
    // unwind into C.
    let _ = std::panic::catch_unwind(|| finish(Wait::Yes));
}

/// On the targets whose errno location is known here (`build.rs`);
/// elsewhere signals are left to the program.
#[cfg(all(overrun_signals, not(miri)))]
mod signals {
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

    const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

    /// The pipe's write end, for the handler (non-blocking).
    static WRITE_END: AtomicI32 = AtomicI32::new(-1);
    /// The process that armed the handler (a child forked without `exec`
    /// has the handler but no watcher).
    static ARMED_PID: AtomicI32 = AtomicI32::new(0);
    /// A signal was seen: the next one ends the process at once.
    static SEEN: AtomicBool = AtomicBool::new(false);

    /// The handler. The first signal: one `write` of its number to the pipe.
    /// A second one, or one in a forked child: the default action, now.
    /// Only async-signal-safe calls; `errno` is kept as it was.
    extern "C" fn on_signal(signal: libc::c_int) {
        // SAFETY: `errno_location` is valid for this thread; `getpid`,
        // `write`, `sigaction` and `raise` are async-signal-safe; `write` is
        // given a valid one-byte buffer.
        unsafe {
            let errno = errno_location();
            let saved = *errno;
            if SEEN.swap(true, Ordering::Relaxed)
                || libc::getpid() != ARMED_PID.load(Ordering::Relaxed)
            {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &action, std::ptr::null_mut());
                libc::raise(signal);
            } else {
                let byte = signal as u8;
                libc::write(
                    WRITE_END.load(Ordering::Relaxed),
                    (&raw const byte).cast(),
                    1,
                );
            }
            *errno = saved;
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    unsafe fn errno_location() -> *mut libc::c_int {
        // SAFETY: always valid for the calling thread.
        unsafe { libc::__errno_location() }
    }

    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly"
    ))]
    unsafe fn errno_location() -> *mut libc::c_int {
        // SAFETY: always valid for the calling thread.
        unsafe { libc::__error() }
    }

    #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
    unsafe fn errno_location() -> *mut libc::c_int {
        // SAFETY: always valid for the calling thread.
        unsafe { libc::__errno() }
    }

    #[cfg(any(target_os = "illumos", target_os = "solaris"))]
    unsafe fn errno_location() -> *mut libc::c_int {
        // SAFETY: always valid for the calling thread.
        unsafe { libc::___errno() }
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

    fn ours() -> libc::sighandler_t {
        on_signal as *const () as libc::sighandler_t
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
        // SAFETY: `fds` has room for the two descriptors `pipe` writes; the
        // `fcntl`s only set flags on descriptors we own.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return;
            }
            for fd in fds {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            let flags = libc::fcntl(fds[1], libc::F_GETFL);
            libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let [read_end, write_end] = fds;
        let watcher = std::thread::Builder::new()
            .name("overrun-signals".into())
            .spawn(move || watch(read_end));
        if watcher.is_err() {
            // SAFETY: both descriptors are ours and used by no one.
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
            return;
        }
        WRITE_END.store(write_end, Ordering::Relaxed);
        // SAFETY: `getpid` has no preconditions.
        ARMED_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
        for signal in free {
            // SAFETY: all-zero is a valid `sigaction`; the handler is an
            // `extern "C" fn(c_int)` that only makes async-signal-safe calls.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = ours();
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }

    /// Changes this thread's mask for both signals.
    fn mask(how: libc::c_int) {
        // SAFETY: all-zero is a valid `sigset_t` before `sigemptyset`; the
        // calls only change this thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in SIGNALS {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(how, &set, std::ptr::null_mut());
        }
    }

    fn watch(read_end: libc::c_int) {
        // The signals go to the program's threads, never to this one: a
        // program that blocks them everywhere to `sigwait` keeps them.
        mask(libc::SIG_BLOCK);
        loop {
            let mut byte = 0u8;
            // SAFETY: reads at most one byte into `byte`.
            let n = unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) };
            if n != 1 {
                let interrupted = n < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
                if interrupted {
                    continue;
                }
                return; // the pipe is gone: nothing more to watch
            }
            let signal = libc::c_int::from(byte);
            if installed(signal) != ours() {
                // The program installed its own handler after ours and
                // chained to it: its behaviour wins.
                SEEN.store(false, Ordering::Relaxed);
                continue;
            }
            let _ = super::finish(super::Wait::Yes);
            // End as the signal would have ended the process.
            // SAFETY: restores the default action, unblocks the signal for
            // this thread and raises it: the process ends by that signal.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
                mask(libc::SIG_UNBLOCK);
                libc::raise(signal);
            }
        }
    }
}

/// Elsewhere the program's signals are its own.
#[cfg_attr(not(unix), allow(dead_code))]
#[cfg(not(all(overrun_signals, not(miri))))]
mod signals {
    pub(super) fn arm() {}
}
