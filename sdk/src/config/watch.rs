//! Watching a policy file: reread when it changes, applied at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{ConfigError, Policy, settle, state};

/// How often the file is looked at.
const PERIOD: Duration = Duration::from_millis(500);

/// Watches a policy file until dropped (see [`watch`]).
#[derive(Debug)]
#[must_use = "the file is watched until this handle is dropped"]
pub struct ConfigWatch {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        // Disconnecting wakes the thread at once.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Applies the policy file at `path` (as [`super::load`] does), then rereads
/// it whenever its content changes — checking twice a second — and applies
/// the new budgets to every site at once. A changed file that is rejected
/// leaves the budgets in force as they were (its error is printed once,
/// counted and passed to the [`super::on_error`] hooks); the next good
/// version is applied. Stops when the returned handle is dropped.
///
/// Returns the first read's error without watching.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("overrun-watch-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("overrun.toml");
/// std::fs::write(&path, "[[budget]]\nmatch = \"watched\"\ntime = \"20ms\"\n").unwrap();
/// let watching = overrun::config::watch(&path).unwrap();
/// // … edit the file: the new budgets apply within a second …
/// drop(watching);
/// ```
pub fn watch(path: impl AsRef<Path>) -> Result<ConfigWatch, ConfigError> {
    let path = path.as_ref().to_path_buf();
    let text = std::fs::read_to_string(&path).ok();
    super::load(&path)?;
    Ok(start(path, text))
}

/// Watches `path` whatever its first read gave (`#[overrun::main(config)]`:
/// a bad file at start-up is reported, and a fixed one picked up).
#[doc(hidden)]
pub fn watch_reported(path: impl AsRef<Path>) -> ConfigWatch {
    let path = path.as_ref().to_path_buf();
    let text = std::fs::read_to_string(&path).ok();
    let _ = super::load(&path);
    start(path, text)
}

fn start(path: PathBuf, mut seen: Option<String>) -> ConfigWatch {
    let (stop, stopped) = mpsc::channel::<()>();
    let shown = path.display().to_string();
    let thread = std::thread::Builder::new()
        .name("overrun-config".into())
        .spawn(move || {
            loop {
                match stopped.recv_timeout(PERIOD) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                // The content, not the modification time: two writes within
                // the clock's granularity are still told apart.
                let now = std::fs::read_to_string(&path);
                let changed = match (&now, &seen) {
                    (Ok(text), Some(old)) => text != old,
                    (Ok(_), None) => true,
                    // Unreadable now: told once, when it became so.
                    (Err(_), Some(_)) => true,
                    (Err(_), None) => false,
                };
                if !changed {
                    continue;
                }
                let result = match &now {
                    Ok(text) => Policy::parse(&path.display().to_string(), text),
                    Err(e) => Err(ConfigError::Unreadable {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    }),
                };
                seen = now.ok();
                let _ = settle(result.map(|p| state::install(Arc::new(p))));
            }
        });
    match thread {
        Ok(thread) => ConfigWatch {
            stop: Some(stop),
            thread: Some(thread),
        },
        Err(e) => {
            eprintln!(
                "overrun: cannot start the thread watching {shown}: {e}; its budgets apply, without reloads"
            );
            ConfigWatch {
                stop: None,
                thread: None,
            }
        }
    }
}
