//! Sets `overrun_linker_list` on the targets whose linker sections `linkme`
//! can read (its own list), so measured sites are gathered at start-up
//! there and simply register at their first call elsewhere, instead of
//! failing to compile; and `overrun_signals` where a run's SIGINT and
//! SIGTERM are handled.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(overrun_linker_list)");
    println!("cargo::rustc-check-cfg=cfg(overrun_signals)");
    println!("cargo::rerun-if-changed=build.rs");
    const SERVED: &[&str] = &[
        "none", "linux", "macos", "ios", "tvos", "windows", "uefi", "android", "fuchsia",
        "illumos", "freebsd", "openbsd", "psp",
    ];
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if SERVED.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=overrun_linker_list");
    }
    // Where the errno location of a signal handler is known
    // (`read::ending`): SIGINT and SIGTERM end a run with its report there.
    const SIGNALS: &[&str] = &[
        "linux",
        "android",
        "macos",
        "ios",
        "freebsd",
        "dragonfly",
        "openbsd",
        "netbsd",
        "illumos",
        "solaris",
    ];
    if SIGNALS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=overrun_signals");
    }
}
