//! `overrun load URL …`: an HTTP/1.1 load test to the breaking point
//! (keep-alive connections through hyper), on `overrun::load`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use overrun::load::{End, Step};
use overrun::units::{fmt_ns, parse_duration};

#[derive(Debug, clap::Args)]
pub(crate) struct Load {
    /// The URL to load (http://).
    url: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// A request header, `'Name: value'` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "K: V")]
    headers: Vec<String>,
    /// A file whose contents are each request's body.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// Offered requests per second, lowest..highest (open model).
    #[arg(long, value_name = "LO..HI")]
    rate: Option<String>,
    /// Callers, fewest..most, each sending its next request when the last
    /// one ended (closed model).
    #[arg(long, value_name = "LO..HI", conflicts_with = "rate")]
    concurrency: Option<String>,
    /// Time spent at each level.
    #[arg(long, default_value = "3s")]
    step: String,
    /// Pass line: median latency at most this.
    #[arg(long)]
    p50: Option<String>,
    /// Pass line: 95th percentile latency at most this.
    #[arg(long)]
    p95: Option<String>,
    /// Pass line: 99th percentile latency at most this.
    #[arg(long)]
    p99: Option<String>,
    /// Pass line: share of failed requests (transport errors and statuses
    /// of 400 and above) at most this.
    #[arg(long, default_value = "1%")]
    error_rate: String,
    /// Most requests out at once (open model), waiting for a connection
    /// included; one more is an error.
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// Requests on the wire at once, each on a kept-alive connection (open
    /// model; the closed model has one per caller). A request waits for its
    /// turn, and the wait counts in its latency.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// A request not answered (its whole body) within this is an error.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Writes the report as JSON here, with how the requests ended
    /// (`"outcomes"`).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Writes the chart (SVG) here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// Exit statuses of `overrun load`.
const FOUND: u8 = 0;
const LOWEST_FAILS: u8 = 1;
const BAD_INPUT: u8 = 2;
const HIGHEST_PASSES: u8 = 3;
const INTERRUPTED: u8 = 130;

/// Most connections or callers (each a connection, a task and a socket).
const MOST: usize = 100_000;

/// `lo..hi` (or `lo..=hi`) of numbers.
fn range<T: std::str::FromStr + PartialOrd + Copy>(
    flag: &str,
    text: &str,
) -> Result<(T, T), String> {
    let (lo, hi) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| format!("--{flag} {text:?}: want LO..HI, e.g. 100..50000"))?;
    let num = |s: &str| {
        s.trim()
            .replace('_', "")
            .parse::<T>()
            .map_err(|_| format!("--{flag} {text:?}: {s:?} is not a number"))
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if lo > hi {
        return Err(format!("--{flag} {text:?}: the range is upside down"));
    }
    Ok((lo, hi))
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    parse_duration(text)
        .map(Duration::from_nanos)
        .map_err(|e| format!("--{flag} {text:?}: {e}"))
}

/// What every request sends.
struct Target {
    client: Client<HttpConnector, Full<Bytes>>,
    /// One permit per connection: at most that many requests on the wire.
    connections: tokio::sync::Semaphore,
    timeout: Duration,
    method: Method,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Target {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.body(Full::new(self.body.clone()))
            .expect("a request from checked parts")
    }

    /// One request, its body read to the end (so the connection is kept
    /// for the next): the status, or why there is none.
    async fn send(&self) -> Result<u16, String> {
        let _connection = self
            .connections
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self
                .client
                .request(self.request())
                .await
                .map_err(|e| error_chain(&e))?;
            let status = resp.status().as_u16();
            resp.into_body()
                .collect()
                .await
                .map_err(|e| error_chain(&e))?;
            Ok(status)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no answer within {}",
                    fmt_ns(self.timeout.as_nanos() as u64)
                )
            })?
    }
}

/// How the run's requests ended, the first one's excepted: printed after
/// the table, as the levels' error counts do not say why.
struct Causes {
    /// Answers by status code (100 to 999).
    statuses: Box<[AtomicU64]>,
    /// Requests that got no answer, by what went wrong.
    failures: Mutex<Failures>,
}

/// At most [`Causes::KINDS`] causes, then a count of the rest.
#[derive(Default)]
struct Failures {
    by_cause: BTreeMap<String, u64>,
    other: u64,
}

impl Causes {
    const KINDS: usize = 16;

    fn new() -> Self {
        Self {
            statuses: (0..1000).map(|_| AtomicU64::new(0)).collect(),
            failures: Mutex::new(Failures::default()),
        }
    }

    /// Counts one request's end; `Err` when it counts as an error.
    fn count(&self, end: Result<u16, String>) -> Result<(), ()> {
        match end {
            Ok(status) => {
                if let Some(n) = self.statuses.get(usize::from(status)) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                if status >= 400 { Err(()) } else { Ok(()) }
            }
            Err(e) => {
                // Only requests that failed take the lock.
                let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                let Failures { by_cause, other } = &mut *failures;
                if let Some(n) = by_cause.get_mut(&e) {
                    *n += 1;
                } else if by_cause.len() < Self::KINDS {
                    by_cause.insert(e, 1);
                } else {
                    *other += 1;
                }
                Err(())
            }
        }
    }

    /// How the run's requests ended: statuses, failures without an
    /// answer, and the errors the driver counted itself (`errors`, every
    /// level's, less the others).
    fn outcomes(&self, errors: u64) -> Outcomes {
        let statuses: BTreeMap<u16, u64> = (0..self.statuses.len())
            .filter_map(|code| {
                let n = self.statuses[code].load(Ordering::Relaxed);
                (n > 0).then(|| (u16::try_from(code).expect("a status code"), n))
            })
            .collect();
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // The named causes, then the rest.
        let no_answer: Vec<NoAnswer> = failures
            .by_cause
            .iter()
            .map(|(cause, &requests)| NoAnswer {
                cause: cause.clone(),
                requests,
            })
            .chain((failures.other > 0).then(|| NoAnswer {
                cause: "(other causes)".to_owned(),
                requests: failures.other,
            }))
            .collect();
        // Failed answers and failures without one were counted here; the
        // rest never came back to be.
        let counted = statuses.range(400..).map(|(_, n)| n).sum::<u64>()
            + no_answer.iter().map(|f| f.requests).sum::<u64>();
        Outcomes {
            statuses,
            no_answer,
            not_sent_or_cut_off: errors.saturating_sub(counted),
        }
    }
}

/// How a run's requests ended, the first one's excepted: printed after the
/// table and written to `--json` as `"outcomes"`.
#[derive(Debug, serde::Serialize)]
struct Outcomes {
    /// Answers by status code.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer, by cause.
    no_answer: Vec<NoAnswer>,
    /// Errors neither answered nor failed: the level's `max_in_flight` was
    /// reached, the schedule could not send them in time, or they were
    /// still out when their level ended or the run stopped.
    not_sent_or_cut_off: u64,
}

#[derive(Debug, serde::Serialize)]
struct NoAnswer {
    cause: String,
    requests: u64,
}

impl Outcomes {
    /// The lines printed after the table.
    fn summary(&self) -> String {
        let mut out = String::new();
        if !self.statuses.is_empty() {
            let statuses: Vec<String> = self
                .statuses
                .iter()
                .map(|(code, n)| format!("{code} ×{n}"))
                .collect();
            let _ = writeln!(out, "statuses: {}", statuses.join(", "));
        }
        for f in &self.no_answer {
            let _ = writeln!(out, "no answer ×{}: {}", f.requests, f.cause);
        }
        if self.not_sent_or_cut_off > 0 {
            let _ = writeln!(
                out,
                "not sent or cut off ×{}: max in flight reached, not sent in time, still out when its level ended or the run stopped",
                self.not_sent_or_cut_off
            );
        }
        out
    }
}

/// The report written to `--json`: the library's, then how requests ended.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a overrun::load::LoadReport,
    outcomes: &'a Outcomes,
}

/// An error and its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Load {
    /// Checks everything (a first request included) before any load.
    fn target(&self, connections: usize, timeout: Duration) -> Result<Target, String> {
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| format!("{:?} is not a URL: {e}", self.url))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "{:?}: only http:// is supported, not {other}://",
                    self.url
                ));
            }
            None => return Err(format!("{:?} is not a URL: no http:// in front", self.url)),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{:?} is not a URL: no host", self.url));
        }
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| format!("--method {:?} is not an HTTP method", self.method))?;
        let headers = self
            .headers
            .iter()
            .map(|h| {
                let (k, v) = h
                    .split_once(':')
                    .ok_or_else(|| format!("--header {h:?}: want 'Name: value'"))?;
                let name = HeaderName::from_bytes(k.trim().as_bytes())
                    .map_err(|_| format!("--header {h:?}: {:?} is not a header name", k.trim()))?;
                let value = HeaderValue::from_str(v.trim())
                    .map_err(|_| format!("--header {h:?}: the value is not a header value"))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let body = match &self.body {
            Some(path) => Bytes::from(
                std::fs::read(path).map_err(|e| format!("--body {}: {e}", path.display()))?,
            ),
            None => Bytes::new(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(connections)
            .build_http();
        Ok(Target {
            client,
            connections: tokio::sync::Semaphore::new(connections),
            timeout,
            method,
            uri,
            headers,
            body,
        })
    }

    pub(crate) fn run(&self) -> Result<ExitCode, String> {
        // Everything the flags say is checked before a runtime starts.
        let step = duration("step", &self.step)?;
        let line =
            |flag: &str, v: &Option<String>| v.as_deref().map(|v| duration(flag, v)).transpose();
        let (p50, p95, p99) = (
            line("p50", &self.p50)?,
            line("p95", &self.p95)?,
            line("p99", &self.p99)?,
        );
        let error_rate = self.error_rate.trim();
        if overrun::load::parse_percent(error_rate).is_none() {
            return Err(format!(
                "--error-rate {error_rate:?}: want a percentage such as 1%"
            ));
        }
        let timeout = duration("timeout", &self.timeout)?;
        if self.max_in_flight == 0 {
            return Err("--max-in-flight must be at least 1".to_owned());
        }
        if !(1..=MOST).contains(&self.connections) {
            return Err(format!(
                "--connections {}: from 1 to {MOST}",
                self.connections
            ));
        }
        enum Model {
            Rate(f64, f64),
            Concurrency(usize, usize),
        }
        let model = match (&self.rate, &self.concurrency) {
            (Some(r), None) => {
                let (lo, hi) = range::<f64>("rate", r)?;
                if !(lo > 0.0 && hi.is_finite()) {
                    return Err(format!("--rate {r:?}: the lowest rate must be above 0"));
                }
                Model::Rate(lo, hi)
            }
            (None, Some(c)) => {
                let (lo, hi) = range::<usize>("concurrency", c)?;
                if lo == 0 || hi > MOST {
                    return Err(format!("--concurrency {c:?}: from 1 to {MOST} callers"));
                }
                Model::Concurrency(lo, hi)
            }
            _ => return Err("give --rate LO..HI or --concurrency LO..HI".to_owned()),
        };
        let connections = match model {
            Model::Rate(..) => self.connections,
            Model::Concurrency(_, hi) => hi,
        };
        let target = self.target(connections, timeout)?;
        // The output files, made now: a bad path is bad input, before any
        // load is sent.
        let create = |path: &Option<PathBuf>| {
            path.as_ref()
                .map(|p| {
                    std::fs::File::create(p)
                        .map(|f| (p.clone(), f))
                        .map_err(|e| format!("{}: {e}", p.display()))
                })
                .transpose()
        };
        let (json, svg) = (create(&self.json)?, create(&self.svg)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        runtime.block_on(async move {
            // A first request: nothing answering is bad input, before any load.
            let probe = tokio::time::timeout(Duration::from_secs(10), target.send()).await;
            match probe {
                Err(_) => return Err(format!("{}: no answer within 10 s to a first request", self.url)),
                Ok(Err(e)) => return Err(format!("{}: a first request failed: {e}", self.url)),
                Ok(Ok(status)) if status >= 400 => eprintln!(
                    "overrun load: warning: a first request got status {status}: every such answer counts as an error"
                ),
                Ok(Ok(_)) => {}
            }
            let target = Arc::new(target);
            let finished = Arc::new(AtomicBool::new(false));
            let causes = Arc::new(Causes::new());
            let counted = causes.clone();
            let mut load = overrun::load::run(move || {
                let (target, causes) = (target.clone(), counted.clone());
                async move { causes.count(target.send().await) }
            })
            .step(step)
            .error_rate(error_rate)
            .max_in_flight(self.max_in_flight)
            .on_step(progress)
            .stop_on(interrupted(finished.clone()));
            load = match model {
                Model::Rate(lo, hi) => load.rate(lo..=hi),
                Model::Concurrency(lo, hi) => load.concurrency(lo..=hi),
            };
            if let Some(limit) = p50 {
                load = load.p50(limit);
            }
            if let Some(limit) = p95 {
                load = load.p95(limit);
            }
            if let Some(limit) = p99 {
                load = load.p99(limit);
            }
            if p50.or(p95).or(p99).is_none() {
                eprintln!("overrun load: no latency line (--p50, --p95, --p99): only the error rate fails a level");
            }
            eprintln!("overrun load: {} {}, {} a level", self.method, self.url, fmt_ns(step.as_nanos() as u64));
            let report = load.await;
            finished.store(true, Ordering::Relaxed);
            print!("{}", report.table());
            let outcomes = causes.outcomes(report.steps().iter().map(|s| s.errors).sum());
            print!("{}", outcomes.summary());
            let json_text = serde_json::to_string_pretty(&JsonReport {
                report: &report,
                outcomes: &outcomes,
            })
            .expect("a load report serialises");
            use std::io::Write as _;
            for (file, text) in [(json, json_text), (svg, report.to_svg())] {
                if let Some((path, mut file)) = file {
                    file.write_all(text.as_bytes())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
            Ok(ExitCode::from(match report.end() {
                End::Found => FOUND,
                End::LowestFails | End::Unsteady => LOWEST_FAILS,
                End::HighestPasses => HIGHEST_PASSES,
                End::Stopped => INTERRUPTED,
                _ => BAD_INPUT,
            }))
        })
    }
}

/// Resolves at the first Ctrl-C, which stops the run (what was measured is
/// printed); a second one before the run has ended quits at once, exit 130,
/// printing and writing nothing more.
async fn interrupted(finished: Arc<AtomicBool>) {
    let quit = move || {
        if !finished.load(Ordering::Relaxed) {
            std::process::exit(i32::from(INTERRUPTED));
        }
    };
    let stopping = || eprintln!("overrun load: stopping (Ctrl-C again to quit at once)");
    // One stream for both, made as the run starts: a second Ctrl-C that
    // comes at once is not lost.
    #[cfg(unix)]
    if let Ok(mut interrupts) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    {
        interrupts.recv().await;
        stopping();
        tokio::spawn(async move {
            interrupts.recv().await;
            quit();
        });
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
    stopping();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        quit();
    });
}

/// One line on stderr per level as it ends.
fn progress(s: &Step) {
    eprintln!(
        "overrun load: level {:.1}: achieved {:.1}/s, p50 {}, p99 {}, {} errors of {} — {}",
        s.offered,
        s.achieved,
        fmt_ns(s.p50_ns),
        fmt_ns(s.p99_ns),
        s.errors,
        s.requests,
        s.verdict()
    );
}
