//! A small HTTP/1.1 server for `GET /metrics`: one accept thread and a few
//! workers fed through a bounded queue. Plain `std`, so it needs no async
//! runtime and cannot stall one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Error, Renderer};

/// Connections waiting for a worker; more than this are refused (counted).
const QUEUE: usize = 4096;
/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Listen backlog: std's fixed 128 overflows under a burst of scrapes, and
/// an overflowing accept queue (with SYN cookies) can cost a client its
/// request. The kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 1024;
/// Read and write timeout per connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(
        listen: SocketAddr,
        workers: usize,
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
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel::<TcpStream>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..workers {
            let rx = rx.clone();
            let renderer = renderer.clone();
            let handle = std::thread::Builder::new()
                .name(format!("overrun-prometheus-{i}"))
                .spawn(move || work(&rx, &renderer))
                .map_err(Error::Thread)?;
            handles.push(handle);
        }
        let accept = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("overrun-prometheus-accept".into())
                .spawn(move || accept(&listener, &tx, &stop, &renderer))
                .map_err(Error::Thread)?
        };
        Ok(Self {
            addr,
            stop,
            accept: Some(accept),
            workers: handles,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop; it sees `stop`, drops the queue's sender, and
        // the workers finish what is queued and exit.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Like std: a restarted exporter can bind again at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn accept(
    listener: &TcpListener,
    tx: &SyncSender<TcpStream>,
    stop: &AtomicBool,
    renderer: &Renderer,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match conn {
            Ok(stream) => match tx.try_send(stream) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => renderer.failed(),
                Err(TrySendError::Disconnected(_)) => return,
            },
            // Out of file descriptors and the like: back off, keep serving.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn work(rx: &Mutex<Receiver<TcpStream>>, renderer: &Renderer) {
    loop {
        let next = rx.lock().map(|rx| rx.recv());
        match next {
            Ok(Ok(stream)) => {
                if serve(stream, renderer).is_err() {
                    renderer.failed();
                }
            }
            _ => return,
        }
    }
}

/// Answers one request on `stream`.
fn serve(mut stream: TcpStream, renderer: &Renderer) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                b"",
                false,
            );
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        // A connection opened and closed without a request (our own wake-up).
        if head.is_empty() {
            return Ok(());
        }
        return respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        );
    };
    let path = target.split('?').next().unwrap_or(target);
    let head_only = method == "HEAD";
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = renderer.render();
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
        }
        ("GET" | "HEAD", _) => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found: overrun serves /metrics\n",
            head_only,
        ),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD\n",
            false,
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !kind.is_empty() {
        out.push_str(&format!("Content-Type: {kind}\r\n"));
    }
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}
