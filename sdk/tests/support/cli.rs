//! Shared by the command-line tests: `#[path = "support/cli.rs"] mod cli;`

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `overrun` binary, with no `OVERRUN_ENV` from the environment (a
/// test sets it where it means to).
pub(crate) fn overrun() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_overrun"));
    command.env_remove("OVERRUN_ENV");
    command
}

/// The `cli` example (built by `cargo test --workspace`), with no overrun
/// variable from the environment and its report off.
#[allow(dead_code, reason = "not every test binary uses it")]
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

/// This test process's scratch folder for `tag` (made if missing).
#[allow(dead_code, reason = "not every test binary uses it")]
pub(crate) fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overrun-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `rows` rows of the `cli` example's generated sales data to
/// `path`.
#[allow(dead_code, reason = "not every test binary uses it")]
pub(crate) fn generated(path: &Path, rows: u32) {
    let out = cli_example()
        .args(["--generate", &rows.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, out.stdout).unwrap();
}

/// The line of a printed table whose first cell is `name`.
#[allow(dead_code, reason = "not every test binary uses it")]
pub(crate) fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}
