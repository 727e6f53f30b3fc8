//! A run that ends the way its first argument says, to show (and test) that
//! `#[overrun::main]` writes its report however a run ends:
//!
//! ```sh
//! OVERRUN_REPORT_FILE=r.json cargo run --example endings -- exit     # process::exit(3) from a thread
//! OVERRUN_REPORT_FILE=r.json cargo run --example endings -- wait     # then Ctrl-C: killed by SIGINT, report written
//! ```
//!
//! Endings: `return` (exit code 4), `exit` (`process::exit(3)` from a worker
//! thread), `panic`, `wait` (prints `ready`, then waits for a signal),
//! `own-handler` (a tokio Ctrl-C handler of its own: the program keeps its
//! behaviour and exits with 7 after handling the signal), `exit-in-hook` (an
//! exit hook that calls `process::exit(6)`) and `slow-hook` (an exit hook
//! that takes 30 s: a second signal ends the process at once). Unix only
//! for the signals.

include!("endings_program.rs");
