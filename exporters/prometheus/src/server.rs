//! The `/metrics` endpoint: hyper's HTTP/1.1 on a small tokio runtime of the
//! exporter's own, on threads of its own, so it works the same from a plain
//! synchronous `main` and beside the application's runtime (never on it).
//!
//! Hostile clients cannot starve a scrape:
//!
//! - a connection costs a task and a socket, not a thread: idle and slow
//!   clients wait without holding a worker;
//! - every connection has a deadline ([`CONNECTION_DEADLINE`]), and its
//!   TLS handshake and request head must each arrive within
//!   [`HEAD_DEADLINE`] (slowloris);
//! - the request head is capped at [`MAX_HEAD`] bytes (431 beyond);
//! - at most `max_connections` are open; a new one, or one the OS refuses
//!   for want of file descriptors, closes the oldest that is still waiting
//!   for its request, so a fresh scrape always gets in and a scrape being
//!   answered is never cut off;
//! - the figures are rendered on the blocking pool (two threads), so a slow
//!   `append` closure never holds up accepting and closing connections;
//! - one request per connection (`Connection: close`), as Prometheus needs.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::{Error, Renderer};

/// Longest request head (request line and headers) read; hyper's minimum.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// The whole request head must arrive within this (slowloris clients).
pub(crate) const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// A connection's whole life: TLS handshake, request, answer.
pub(crate) const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);
/// Listen backlog: std's fixed 128 overflows under a burst of scrapes, and
/// an overflowing accept queue (with SYN cookies) can cost a client its
/// request. The kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 1024;
/// How long a stopping server lets scrapes being answered finish.
const DRAIN: Duration = Duration::from_secs(2);
/// Threads rendering scrapes (tokio's blocking pool, started on demand).
const RENDER_THREADS: usize = 2;

/// Who may scrape: the `Authorization` scheme and credentials expected.
#[derive(Clone)]
pub(crate) struct Auth {
    /// `Basic` or `Bearer` (compared without regard to case, RFC 9110).
    scheme: &'static str,
    /// The credentials after the scheme, compared in constant time.
    credentials: Vec<u8>,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: &'static str,
}

impl Auth {
    pub(crate) fn basic(user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self {
            scheme: "Basic",
            credentials: encoded.into_bytes(),
            challenge: "Basic realm=\"overrun\", charset=\"UTF-8\"",
        }
    }

    pub(crate) fn bearer(token: &str) -> Self {
        Self {
            scheme: "Bearer",
            credentials: token.as_bytes().to_vec(),
            challenge: "Bearer realm=\"overrun\"",
        }
    }

    /// Which scheme, for `Debug` (never the credentials).
    pub(crate) fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// Compares in time independent of where the credentials differ.
    fn admits(&self, given: Option<&HeaderValue>) -> bool {
        let given = given.map_or(&[][..], HeaderValue::as_bytes);
        let (scheme, credentials) = match given.iter().position(|&b| b == b' ') {
            Some(space) => (&given[..space], given[space + 1..].trim_ascii_start()),
            None => (given, &[][..]),
        };
        let scheme_ok = scheme.eq_ignore_ascii_case(self.scheme.as_bytes());
        let same_len = credentials.len() == self.credentials.len();
        let diff = self
            .credentials
            .iter()
            .zip(credentials.iter().chain(std::iter::repeat(&0)))
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        scheme_ok & same_len & (diff == 0)
    }
}

/// The server's settings.
pub(crate) struct Options {
    pub(crate) workers: usize,
    pub(crate) max_connections: usize,
    pub(crate) auth: Option<Auth>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

/// Connections the server ended early, by reason.
#[derive(Debug, Default)]
pub(crate) struct Closed {
    /// Closed, still waiting for a request, to make room for a newer one.
    pub(crate) evicted: AtomicU64,
    /// Past a deadline: TLS handshake, request head or the whole exchange.
    pub(crate) timed_out: AtomicU64,
    /// Ended on an error: a malformed or oversized request (which hyper
    /// answers 400 or 431), a reset, a failed TLS handshake, a failed render.
    pub(crate) errors: AtomicU64,
}

struct Shared {
    renderer: Renderer,
    auth: Option<Auth>,
    closed: Arc<Closed>,
    open: Mutex<Open>,
    max_connections: usize,
}

/// One open connection: the signal that closes it, and whether its request
/// has arrived (it is being answered, and is never evicted).
#[derive(Default)]
struct Conn {
    close: Notify,
    answering: AtomicBool,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Open {
    next: u64,
    by_age: BTreeMap<u64, Arc<Conn>>,
}

impl Shared {
    fn new(renderer: Renderer, auth: Option<Auth>, closed: Arc<Closed>, max: usize) -> Self {
        Self {
            renderer,
            auth,
            closed,
            open: Mutex::new(Open::default()),
            max_connections: max.max(1),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        // A poisoned lock only means a connection task panicked while
        // holding it; the map itself is always consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a connection ended early, also in the scrape failures.
    fn count(&self, reason: &AtomicU64) {
        reason.fetch_add(1, Ordering::Relaxed);
        self.renderer.failed();
    }

    /// Registers a new connection, closing the oldest waiting ones when
    /// full. (When every open connection is being answered, the cap gives
    /// way: each of them ends by its deadline.)
    fn admit(&self) -> (u64, Arc<Conn>) {
        let mut open = self.open();
        while open.by_age.len() >= self.max_connections && evict_oldest_waiting(&mut open) {
            self.count(&self.closed.evicted);
        }
        let id = open.next;
        open.next += 1;
        let conn = Arc::new(Conn::default());
        open.by_age.insert(id, conn.clone());
        (id, conn)
    }

    /// Closes the oldest connection still waiting for its request (the
    /// process is out of file descriptors).
    fn make_room(&self) -> bool {
        let evicted = evict_oldest_waiting(&mut self.open());
        if evicted {
            self.count(&self.closed.evicted);
        }
        evicted
    }
}

fn evict_oldest_waiting(open: &mut Open) -> bool {
    let oldest = open
        .by_age
        .iter()
        .find(|(_, conn)| !conn.answering.load(Ordering::Acquire))
        .map(|(&id, _)| id);
    match oldest.and_then(|id| open.by_age.remove(&id)) {
        // A stored permit: the task closes even if it is not waiting yet.
        Some(conn) => {
            conn.close.notify_one();
            true
        }
        None => false,
    }
}

/// Removes its connection from the open set when the task ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.open().by_age.remove(&self.id);
    }
}

#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    closed: Arc<Closed>,
}

impl Server {
    pub(crate) fn start(
        listen: SocketAddr,
        options: Options,
        renderer: Renderer,
    ) -> Result<Self, Error> {
        let listener = bind(listen).map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
        let closed = Arc::new(Closed::default());
        let shared = Arc::new(Shared::new(
            renderer,
            options.auth,
            closed.clone(),
            options.max_connections,
        ));
        #[cfg(feature = "tls")]
        let tls = options.tls.map(tokio_rustls::TlsAcceptor::from);
        #[cfg(not(feature = "tls"))]
        let tls: Option<NoTls> = None;
        let (stop, stopped) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let workers = options.workers.max(1);
        // The runtime is built, run and dropped on this thread only: dropping
        // a runtime inside the application's async context would panic.
        let thread = std::thread::Builder::new()
            .name("overrun-prometheus".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .max_blocking_threads(RENDER_THREADS)
                    .thread_name("overrun-prometheus-worker")
                    .enable_io()
                    .enable_time()
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let listener = {
                    let _entered = runtime.enter();
                    TcpListener::from_std(listener)
                };
                match listener {
                    Ok(listener) => {
                        let _ = ready_tx.send(Ok(()));
                        runtime.block_on(serve(listener, stopped, shared, tls));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                runtime.shutdown_timeout(DRAIN);
            })
            .map_err(Error::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                addr,
                stop,
                thread: Some(thread),
                closed,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(Error::Thread(e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Thread(std::io::Error::other(
                    "the exporter thread ended before serving",
                )))
            }
        }
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn closed(&self) -> &Closed {
        &self.closed
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The accept loop stops at once; scrapes being answered get `DRAIN`.
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Like std: a restarted exporter can bind again at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Stands in for the TLS acceptor when the `tls` feature is off.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
enum NoTls {}

#[cfg(feature = "tls")]
type Acceptor = tokio_rustls::TlsAcceptor;
#[cfg(not(feature = "tls"))]
type Acceptor = NoTls;

async fn serve(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    tls: Option<Acceptor>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let (id, conn) = shared.admit();
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _registered = Registered {
                        shared: &shared,
                        id,
                    };
                    tokio::select! {
                        _ = conn.close.notified() => {}
                        done = tokio::time::timeout(
                            CONNECTION_DEADLINE,
                            connection(stream, &shared, &conn, tls),
                        ) => {
                            if done.is_err() {
                                shared.count(&shared.closed.timed_out);
                            }
                        }
                    }
                });
            }
            Err(e) if out_of_descriptors(&e) => {
                // Free one for the connection waiting in the backlog, and
                // give its task the moment it needs to close the socket
                // (else the retry fails again and evicts another).
                let pause = if shared.make_room() { 5 } else { 50 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            // A connection reset before it was accepted, and the like.
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    // Close the connections still waiting for a request; those being
    // answered finish, for up to `DRAIN`.
    for conn in shared.open().by_age.values() {
        if !conn.answering.load(Ordering::Acquire) {
            conn.close.notify_one();
        }
    }
    let deadline = tokio::time::Instant::now() + DRAIN;
    while !shared.open().by_age.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// `EMFILE` and `ENFILE`: the same numbers on every platform std supports
/// with sockets (Linux, the BSDs, macOS; Windows reports other errors).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

async fn connection(
    stream: TcpStream,
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    tls: Option<Acceptor>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, shared, conn).await,
        #[cfg(feature = "tls")]
        Some(acceptor) => {
            match tokio::time::timeout(HEAD_DEADLINE, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => http(stream, shared, conn).await,
                Ok(Err(_)) => shared.count(&shared.closed.errors),
                Err(_) => shared.count(&shared.closed.timed_out),
            }
        }
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
    }
}

async fn http<S>(stream: S, shared: &Arc<Shared>, conn: &Arc<Conn>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let shared = shared.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            // The request is here: this connection is answered, not evicted.
            conn.answering.store(true, Ordering::Release);
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(respond(&req, &shared).await) }
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        let counter = if e.is_timeout() {
            &shared.closed.timed_out
        } else {
            &shared.closed.errors
        };
        shared.count(counter);
    }
}

/// The answer to one request.
async fn respond(req: &Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    if let Some(auth) = &shared.auth
        && !auth.admits(req.headers().get(header::AUTHORIZATION))
    {
        let mut r = plain(StatusCode::UNAUTHORIZED, "authorization required\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(auth.challenge),
        );
        return r;
    }
    // hyper writes no body to a HEAD request, and keeps its length.
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            // Off the async workers: an `append` closure may block.
            let renderer = shared.renderer.clone();
            // OpenMetrics (with exemplars) when the scraper asks for it.
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match tokio::task::spawn_blocking(move || renderer.render_for(accept.as_deref())).await
            {
                Ok((content_type, text)) => {
                    let mut r = Response::new(Full::new(Bytes::from(text)));
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                    // The body depends on the `Accept` header.
                    r.headers_mut()
                        .insert(header::VARY, HeaderValue::from_static("accept"));
                    r
                }
                // An `append` closure panicked: the scrape fails, the
                // application goes on.
                Err(_) => {
                    shared.count(&shared.closed.errors);
                    plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n")
                }
            }
        }
        (&Method::GET | &Method::HEAD, _) => plain(
            StatusCode::NOT_FOUND,
            "not found: overrun serves /metrics\n",
        ),
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// One request given as raw bytes, answered as the endpoint answers it
/// (for the fuzzer): the bytes the server writes back.
#[cfg(fuzzing)]
pub(crate) fn answer_raw(renderer: &Renderer, auth: Option<Auth>, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    });
    let shared = Arc::new(Shared::new(
        renderer.clone(),
        auth,
        Arc::new(Closed::default()),
        1,
    ));
    let request = request.to_vec();
    runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let conn = Arc::new(Conn::default());
        let served = tokio::spawn(async move { http(server, &shared, &conn).await });
        let mut out = Vec::new();
        let exchange = async {
            let _ = client.write_all(&request).await;
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut out).await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), exchange).await;
        served.abort();
        out
    })
}
