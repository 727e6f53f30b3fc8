//! A small HTTP/1.1 OTLP receiver for the tests: each request is handed
//! to the test, then answered.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::mpsc;

#[allow(dead_code, reason = "each test binary reads part of a request")]
pub(crate) struct Request {
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Serves until the test ends: each request is sent on the channel and
/// answered with the next status from `statuses` (200 once they run out).
#[allow(dead_code, reason = "not every test binary uses it")]
pub(crate) fn receiver(statuses: Vec<u16>) -> (u16, mpsc::Receiver<Request>) {
    receiver_with(statuses, None)
}

/// [`receiver`], answering each logs request only once `gate` lets it
/// through (a message, or the sender dropped), when there is a gate.
#[allow(dead_code, reason = "not every test binary uses it")]
pub(crate) fn receiver_with(
    statuses: Vec<u16>,
    gate: Option<mpsc::Receiver<()>>,
) -> (u16, mpsc::Receiver<Request>) {
    let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    // A thread per connection: the client may open a second one while the
    // first waits in its pool.
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(statuses.into_iter()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (tx, statuses, gate) = (tx.clone(), statuses.clone(), gate.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let status = if path == "/v1/metrics" {
                        statuses.lock().unwrap().next().unwrap_or(200)
                    } else {
                        200
                    };
                    let logs = path == "/v1/logs";
                    let _ = tx.send(Request {
                        path,
                        headers,
                        body,
                    });
                    if logs && let Some(gate) = gate.lock().unwrap().as_ref() {
                        let _ = gate.recv();
                    }
                    let reason = if status == 200 { "OK" } else { "Unavailable" };
                    let _ = write!(
                        writer,
                        "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n"
                    );
                }
            });
        }
    });
    (port, rx)
}

/// The log records of a logs request.
#[allow(dead_code, reason = "not every test binary uses it")]
pub(crate) fn log_records(req: &Request) -> usize {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message as _;
    ExportLogsServiceRequest::decode(&req.body[..])
        .unwrap()
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// The log records of the logs requests `rx` receives until `expected` of
/// them arrived (all of them, with `usize::MAX`) or `wait` passed.
#[allow(dead_code, reason = "not every test binary of this folder uses it")]
pub(crate) fn records_within(
    rx: &mpsc::Receiver<Request>,
    expected: usize,
    wait: std::time::Duration,
) -> usize {
    let deadline = std::time::Instant::now() + wait;
    let mut n = 0;
    while n < expected
        && let Some(left) = deadline.checked_duration_since(std::time::Instant::now())
    {
        let Ok(req) = rx.recv_timeout(left) else {
            break;
        };
        if req.path == "/v1/logs" {
            n += log_records(&req);
        }
    }
    n
}
