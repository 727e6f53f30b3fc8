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
/// it whenever its content changes — looking twice a second, and applying a
/// change once two looks agree (so within a second; a file caught half
/// written is not applied) — and applies the new budgets to every site at
/// once. A changed file that is rejected
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
    let text = read(&path);
    super::load(&path)?;
    Ok(start(path, text))
}

/// `#[overrun::main(config = "…")]`: watches `path` whatever its first read
/// gave (a bad file at start-up is reported, and a fixed one picked up) —
/// unless `OVERRUN_CONFIG` names a file: the one set for the deployment
/// wins over the one named in the code.
pub(crate) fn main_config(path: &str) -> ConfigWatch {
    if let Some(central) = std::env::var_os("OVERRUN_CONFIG").filter(|p| !p.is_empty()) {
        eprintln!(
            "overrun: OVERRUN_CONFIG={} is in force; {path} (#[overrun::main(config)]) is not read",
            central.to_string_lossy()
        );
        return ConfigWatch {
            stop: None,
            thread: None,
        };
    }
    let path = PathBuf::from(path);
    let text = read(&path);
    let _ = super::load(&path);
    start(path, text)
}

/// What a read of the file gave: its text, or why it could not be read.
type Read = Result<String, String>;

fn read(path: &Path) -> Read {
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// Whether two reads are the same state of the file (any two failures are:
/// an unreadable file is told once, when it became so).
fn same(a: &Read, b: &Read) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

fn start(path: PathBuf, mut seen: Read) -> ConfigWatch {
    let (stop, stopped) = mpsc::channel::<()>();
    let shown = path.display().to_string();
    let thread = std::thread::Builder::new()
        .name("overrun-config".into())
        .spawn(move || {
            // A change seen once, applied when the next look finds it still
            // there: a file read while being written (emptied, half
            // written) is not applied.
            let mut changing: Option<Read> = None;
            loop {
                match stopped.recv_timeout(PERIOD) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                // The content, not the modification time: two writes within
                // the clock's granularity are still told apart.
                let now = read(&path);
                if same(&now, &seen) {
                    changing = None;
                    continue;
                }
                if !changing.as_ref().is_some_and(|c| same(c, &now)) {
                    changing = Some(now);
                    continue;
                }
                changing = None;
                let result = match &now {
                    Ok(text) => Policy::parse(&path.display().to_string(), text),
                    Err(message) => Err(ConfigError::Unreadable {
                        path: path.display().to_string(),
                        message: message.clone(),
                    }),
                };
                seen = now;
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
