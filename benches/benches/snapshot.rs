//! Cost of `overrun::snapshot()` with many sites, each called on two live
//! threads (two shards to merge): 1 000 and 10 000 sites. It should grow
//! linearly with sites, and not at all with the number of calls.

use std::sync::mpsc;

use overrun::__private::{Budget, Guard, Site};

struct Recorder {
    tx: mpsc::Sender<(Vec<&'static Site>, mpsc::Sender<()>)>,
}

impl Recorder {
    fn spawn() -> Self {
        let (tx, rx) = mpsc::channel::<(Vec<&'static Site>, mpsc::Sender<()>)>();
        std::thread::spawn(move || {
            for (sites, done) in rx {
                for site in sites {
                    for _ in 0..3 {
                        Guard::enter(site).finish(false);
                    }
                }
                let _ = done.send(());
            }
        });
        Self { tx }
    }

    fn record(&self, sites: Vec<&'static Site>) {
        let (done, wait) = mpsc::channel();
        self.tx.send((sites, done)).unwrap();
        wait.recv().unwrap();
    }
}

static STATE: std::sync::Mutex<Option<(Vec<Recorder>, usize)>> = std::sync::Mutex::new(None);

/// Makes sure at least `n` sites exist, each called on both recorder threads.
fn ensure_sites(n: usize) {
    let mut state = STATE.lock().unwrap();
    let (recorders, have) =
        state.get_or_insert_with(|| ((0..2).map(|_| Recorder::spawn()).collect(), 0));
    if *have >= n {
        return;
    }
    let sites: Vec<&'static Site> = (*have..n)
        .map(|i| {
            overrun_benches::leaked_site(format!("site_{i}"), "bench", i as u32, Budget::none())
        })
        .collect();
    for r in recorders.iter() {
        r.record(sites.clone());
    }
    *have = n;
}

#[divan::bench(args = [1_000, 10_000], sample_count = 20, sample_size = 1)]
fn snapshot(bencher: divan::Bencher<'_, '_>, sites: usize) {
    ensure_sites(sites);
    let snap = overrun::snapshot();
    assert_eq!(snap.sites.len(), sites);
    assert!(snap.sites.iter().all(|s| s.calls == 6));
    bencher.bench(overrun::snapshot);
}

fn main() {
    divan::main();
}
