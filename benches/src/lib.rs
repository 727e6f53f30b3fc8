//! Shared pieces of overrun's benches.
//!
//! Every bench iteration makes [`BATCH`] calls of the same one-multiply
//! function, so per-call figures are `median / BATCH` for every contender
//! alike (fastrace needs a root span per batch; amortised the same way).
//! Each bench target starts with the same floors — a bare call, two raw TSC
//! reads (`quanta::Clock::raw` ×2) and `Instant::now` + `elapsed` — so every
//! report holds the floor and the peer measured in the same process and run.
//! `benches/summary.py` turns the reports into ratios.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Calls per bench iteration.
pub const BATCH: u64 = 64;

/// The function every contender times: one multiply.
#[inline(never)]
pub fn work(x: u64) -> u64 {
    black_box(x).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Runs `f` over one batch of inputs and folds the results, so nothing is
/// optimised away.
///
/// ```
/// let sum = overrun_benches::batch(|x| x + 1);
/// assert_eq!(sum, (1..=64).sum::<u64>());
/// ```
#[inline(always)]
pub fn batch(mut f: impl FnMut(u64) -> u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..BATCH {
        acc = acc.wrapping_add(f(black_box(i)));
    }
    acc
}

/// Defines the floor benches shared by every target: `bare`,
/// `quanta_raw_pair` and `instant_pair`.
#[macro_export]
macro_rules! floors {
    () => {
        #[divan::bench]
        fn bare() -> u64 {
            $crate::batch($crate::work)
        }

        #[divan::bench]
        fn quanta_raw_pair(bencher: divan::Bencher<'_, '_>) {
            let clock = quanta::Clock::new();
            bencher.bench_local(|| {
                $crate::batch(|x| {
                    let start = clock.raw();
                    let r = $crate::work(x);
                    let end = clock.raw();
                    r.wrapping_add(end.wrapping_sub(start))
                })
            });
        }

        #[divan::bench]
        fn instant_pair() -> u64 {
            $crate::batch(|x| {
                let start = std::time::Instant::now();
                let r = $crate::work(x);
                r.wrapping_add(start.elapsed().as_nanos() as u64)
            })
        }
    };
}

/// A future that is pending `n` times (waking itself each time), then ready.
///
/// ```
/// let v = overrun::tasks::block_on(async { overrun_benches::YieldN(3).await; 7 });
/// assert_eq!(v, 7);
/// ```
pub struct YieldN(pub u32);

impl Future for YieldN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            Poll::Ready(())
        } else {
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A site made at run time and leaked, as a measured function's static
/// site is never freed: what the benches that need many sites register.
///
/// ```
/// let site = overrun_benches::leaked_site(
///     "made_here".to_owned(),
///     "bench",
///     1,
///     overrun::__private::Budget::none(),
/// );
/// overrun::__private::Guard::enter(site).finish(false);
/// assert_eq!(overrun::snapshot().site("made_here").unwrap().calls, 1);
/// ```
pub fn leaked_site(
    name: String,
    module: &'static str,
    line: u32,
    budget: overrun::__private::Budget,
) -> &'static overrun::__private::Site {
    use overrun::__private::{Site, SiteKind};
    let name: &'static str = Box::leak(name.into_boxed_str());
    Box::leak(Box::new(Site::new(
        name,
        module,
        file!(),
        line,
        SiteKind::Sync,
        budget,
    )))
}

/// Registers 1 000 sites (`site_0` … `site_999`, module `bench`, a 1 ms
/// budget) and records 10 calls on each, once per process: what the
/// exporter benches render or export.
///
/// ```
/// overrun_benches::thousand_sites();
/// assert_eq!(overrun::snapshot().site("site_999").unwrap().calls, 10);
/// ```
pub fn thousand_sites() {
    use overrun::__private::{Budget, Guard};
    static SITES: std::sync::Once = std::sync::Once::new();
    SITES.call_once(|| {
        for i in 0..1_000u32 {
            let budget = Budget::none().with_time_ns(1_000_000);
            let site = leaked_site(format!("site_{i}"), "bench", i, budget);
            for _ in 0..10 {
                Guard::enter(site).finish(false);
            }
        }
    });
}

/// A minimal OTLP/HTTP receiver on loopback that answers 200 to every
/// request and discards the body: a collector that costs the exporter
/// nothing beyond the round trip. Returns its base URL.
pub fn http_sink() -> String {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone a socket");
                let mut reader = BufReader::new(stream);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let header = line.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = header.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err()
                        || writer
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}
