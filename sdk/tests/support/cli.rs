//! Shared by the command-line tests: `#[path = "support/cli.rs"] mod cli;`

use std::path::Path;
use std::process::Command;

/// The `overrun` binary.
pub(crate) fn overrun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_overrun"))
}

/// The `cli` example (built by `cargo test --workspace`), with no overrun
/// variable from the environment and its report off.
pub(crate) fn cli_example() -> Command {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_overrun")).parent().unwrap();
    let path = bin_dir
        .join("examples")
        .join(format!("cli{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` builds the examples first",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.env_remove("OVERRUN")
        .env_remove("OVERRUN_CONFIG")
        .env_remove("OVERRUN_ENV")
        .env("OVERRUN_REPORT", "off");
    cmd
}
