//! The `/metrics` endpoint: hyper's HTTP/1.1 on a small tokio runtime of the
//! exporter's own, on threads of its own, so it works the same from a plain
//! synchronous `main` and beside the application's runtime (never on it).
//!
//! Hostile clients cannot starve a scrape:
//!
//! - a connection costs a task and a socket, not a thread: idle and slow
//!   clients wait without holding a worker;
//! - every connection has a deadline ([`CONNECTION_DEADLINE`]), and its
//!   request head must arrive within [`HEAD_DEADLINE`] (slowloris);
//! - the request head is capped at [`MAX_HEAD`] bytes (431 beyond);
//! - at most `max_connections` are open; a new one, or one the OS refuses
//!   for want of file descriptors, closes the oldest, so a fresh scrape
//!   always gets in;
//! - one request per connection (`Connection: close`), as Prometheus needs.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
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
/// How long a stopping server lets scrapes in progress finish.
const DRAIN: Duration = Duration::from_secs(2);

/// Who may scrape: the `Authorization` header value expected, whole.
#[derive(Clone)]
pub(crate) struct Auth {
    /// `Basic …` or `Bearer …`.
    expected: Vec<u8>,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: &'static str,
}

impl Auth {
    pub(crate) fn basic(user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self {
            expected: format!("Basic {encoded}").into_bytes(),
            challenge: "Basic realm=\"overrun\", charset=\"UTF-8\"",
        }
    }

    pub(crate) fn bearer(token: &str) -> Self {
        Self {
            expected: format!("Bearer {token}").into_bytes(),
            challenge: "Bearer realm=\"overrun\"",
        }
    }

    /// Compares in time independent of where the values differ.
    fn admits(&self, given: Option<&HeaderValue>) -> bool {
        let given = given.map_or(&[][..], HeaderValue::as_bytes);
        let same_len = given.len() == self.expected.len();
        let diff = self
            .expected
            .iter()
            .zip(given.iter().chain(std::iter::repeat(&0)))
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        same_len & (diff == 0)
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

/// Connections closed by the server rather than answered, by reason.
#[derive(Debug, Default)]
pub(crate) struct Closed {
    /// Closed to make room for a newer connection.
    pub(crate) evicted: AtomicU64,
    /// Past their deadline, head or whole.
    pub(crate) timed_out: AtomicU64,
    /// Ended by an error: malformed request, reset, TLS failure.
    pub(crate) errors: AtomicU64,
}

struct Shared {
    renderer: Renderer,
    auth: Option<Auth>,
    closed: Arc<Closed>,
    open: Mutex<Open>,
    max_connections: usize,
}

/// The open connections, oldest first, each with the signal that closes it.
#[derive(Default)]
struct Open {
    next: u64,
    by_age: BTreeMap<u64, Arc<Notify>>,
}

impl Shared {
    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        // A poisoned lock only means a connection task panicked while
        // holding it; the map itself is always consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a connection closed unanswered, also in the scrape failures.
    fn count(&self, reason: &AtomicU64) {
        reason.fetch_add(1, Ordering::Relaxed);
        self.renderer.failed();
    }

    /// Registers a new connection, closing the oldest when full.
    fn admit(&self) -> (u64, Arc<Notify>) {
        let mut open = self.open();
        while open.by_age.len() >= self.max_connections {
            if !evict_oldest(&mut open) {
                break;
            }
            self.count(&self.closed.evicted);
        }
        let id = open.next;
        open.next += 1;
        let close = Arc::new(Notify::new());
        open.by_age.insert(id, close.clone());
        (id, close)
    }

    /// Closes the oldest connection (out of file descriptors).
    fn make_room(&self) -> bool {
        let evicted = evict_oldest(&mut self.open());
        if evicted {
            self.count(&self.closed.evicted);
        }
        evicted
    }
}

fn evict_oldest(open: &mut Open) -> bool {
    match open.by_age.pop_first() {
        // A stored permit: the task closes even if it is not waiting yet.
        Some((_, close)) => {
            close.notify_one();
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
        let shared = Arc::new(Shared {
            renderer,
            auth: options.auth,
            closed: closed.clone(),
            open: Mutex::new(Open::default()),
            max_connections: options.max_connections.max(1),
        });
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
                    .max_blocking_threads(1)
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
        // The accept loop stops at once; scrapes in progress get `DRAIN`.
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
                let (id, close) = shared.admit();
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _registered = Registered {
                        shared: &shared,
                        id,
                    };
                    tokio::select! {
                        _ = close.notified() => {}
                        done = tokio::time::timeout(
                            CONNECTION_DEADLINE,
                            connection(stream, &shared, tls),
                        ) => {
                            if done.is_err() {
                                shared.count(&shared.closed.timed_out);
                            }
                        }
                    }
                });
            }
            Err(e) if out_of_descriptors(&e) => {
                // Free one for the connection waiting in the backlog.
                if !shared.make_room() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::task::yield_now().await;
            }
            // A connection reset before it was accepted, and the like.
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    // Close every idle connection; scrapes being answered finish (up to
    // `DRAIN`, when the runtime shuts down).
    let open = std::mem::take(&mut shared.open().by_age);
    for close in open.into_values() {
        close.notify_one();
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// `EMFILE` and `ENFILE`: the same numbers on every platform std supports
/// with sockets (Linux, the BSDs, macOS; Windows reports other errors).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

async fn connection(stream: TcpStream, shared: &Arc<Shared>, tls: Option<Acceptor>) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, shared).await,
        #[cfg(feature = "tls")]
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => http(stream, shared).await,
            Err(_) => shared.count(&shared.closed.errors),
        },
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
    }
}

async fn http<S>(stream: S, shared: &Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let response = respond(&req, &shared);
            async move { Ok::<_, std::convert::Infallible>(response) }
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
fn respond(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
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
            let mut r = Response::new(Full::new(Bytes::from(shared.renderer.render())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
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
pub(crate) fn answer_raw(
    renderer: &Renderer,
    auth: Option<(&str, &str)>,
    request: &[u8],
) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    });
    let shared = Arc::new(Shared {
        renderer: renderer.clone(),
        auth: auth.map(|(user, password)| Auth::basic(user, password)),
        closed: Arc::new(Closed::default()),
        open: Mutex::new(Open::default()),
        max_connections: 1,
    });
    let request = request.to_vec();
    runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(async move { http(server, &shared).await });
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
