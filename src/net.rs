//! Accepting connections: plaintext or TLS, with handshakes off the accept path.
//!
//! volo's accept loop does the TLS handshake inline, so one slow or stalled client
//! stops every other connection from being accepted, and a single `accept()` error (out
//! of file descriptors) ends the server. [`Acceptor`] replaces it: a task accepts TCP
//! connections (at most `max_connections` open at once; at the cap it waits, and new
//! clients wait in the listen backlog), retries after a pause when `accept` fails, and
//! runs each TLS handshake in its own task with a timeout. At shutdown it closes the
//! listener without resetting the connections the kernel had already accepted for it
//! ([`close_listener`]).
//!
//! [`serve_connections`] then runs HTTP/2 or HTTP/1.1 on each connection (hyper),
//! which lets the server own what volo's loop does not offer: a deadline for the
//! connection preface (a connection that never speaks is closed), an idle-connection
//! timeout (no call open for a while: GOAWAY, then close), a peer address taken from
//! the socket rather than from a header, a bound on request headers, and a graceful
//! shutdown that can be bounded.
//!
//! [`tls_config`] builds the rustls server configuration: ALPN `h2` (grpc-go clients
//! insist on it) and `http/1.1` (browsers without HTTP/2) and, with a client CA,
//! required and verified client certificates.

use std::{
    fmt, io,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use volo::net::{
    Address,
    conn::{Conn, ConnInfo, ConnStream},
};
use volo_grpc::{Status, body::BoxBody};

use crate::{
    coalesce::Coalesced,
    layers::body::{Observed, OnEnd},
};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Pem {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("invalid TLS configuration")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client CA")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider used everywhere (aws-lc-rs, which volo's rustls already builds).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        path: path.display().to_string(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.display().to_string(),
        source,
    })
}

/// A rustls server configuration with ALPN `h2` and `http/1.1`; with `client_ca`, client
/// certificates signed by it are required (mTLS).
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections ready to serve: accepted, and TLS-established when TLS is on.
pub struct Acceptor {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<Accepted>,
}

/// An accepted connection and its place under the connection cap.
pub struct Accepted {
    conn: Conn,
    /// Released when the connection is dropped (`None`: handed over while the listener
    /// closed, beyond the cap).
    _slot: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

/// TLS handshakes in progress at once; beyond, new connections are dropped at once
/// (a flood of slow handshakes must not pile up tasks and memory without bound).
const MAX_HANDSHAKES: usize = 1024;

/// Pause after a failed `accept` (e.g. EMFILE), doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Acceptor {
    /// Starts accepting on `listener`, keeping at most `max_connections` open, until
    /// `stop` is cancelled (see [`close_listener`]).
    ///
    /// The returned task ends once the listener is closed; it also stops when the
    /// acceptor is dropped.
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        handshake_timeout: Duration,
        max_connections: usize,
        stop: CancellationToken,
    ) -> io::Result<(Self, JoinHandle<()>)> {
        let local_addr = listener.local_addr()?;
        // Small: connections wait here only while the serve loop spawns the previous one.
        let (tx, ready) = mpsc::channel(64);
        let hand_over = HandOver {
            tx,
            tls: tls.map(TlsAcceptor::from),
            handshake_timeout,
            handshakes: Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES)),
            slots: Arc::new(Semaphore::new(max_connections)),
        };
        let task = tokio::spawn(accept_loop(listener, hand_over, stop));
        Ok((Self { local_addr, ready }, task))
    }
}

async fn accept_loop(listener: TcpListener, hand_over: HandOver, stop: CancellationToken) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        // A slot first, as mini-redis does: at the cap, new clients wait in the kernel's
        // listen backlog until a connection closes (stalled ones are closed by the
        // preface and idle timeouts), instead of costing a file descriptor each.
        let slot = match Arc::clone(&hand_over.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::warn!(
                    "connection limit (--max-connections) reached; new connections wait until one closes"
                );
                let slot = tokio::select! {
                    slot = Arc::clone(&hand_over.slots).acquire_owned() => slot,
                    () = stop.cancelled() => break,
                    () = hand_over.tx.closed() => return,
                };
                // The semaphore is never closed.
                let Ok(slot) = slot else { return };
                tracing::info!("below the connection limit again; accepting");
                slot
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
            () = hand_over.tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(ok) => {
                backoff = FIRST_BACKOFF;
                ok
            }
            Err(err) => {
                tracing::error!(%err, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if hand_over.conn(tcp, peer, Some(slot)).await.is_err() {
            return;
        }
    }
    close_listener(listener, &hand_over).await;
}

/// How long the accept queue must stay empty, once new handshakes are refused, before
/// the listener is closed: a handshake already under way completes within a round trip.
const DRAIN_QUIET: Duration = Duration::from_millis(50);
/// The longest a closing listener takes to hand over its accept queue.
const DRAIN_MAX: Duration = Duration::from_secs(1);

/// Closes the listener without dropping a connection the kernel has accepted for it.
///
/// The kernel completes TCP handshakes by itself and queues the connections until the
/// server accepts them; a client (a proxy such as nginx) may already have sent a call
/// on one. Closing a listener resets every connection still queued, and the call on it
/// is lost after it was sent, which a proxy cannot retry (nginx never resends a gRPC
/// call: the body is streamed). So: first make the kernel drop new connection attempts
/// (their clients try again about a second later, find the port closed and go to
/// another replica), then accept what is queued until the queue stays empty for
/// [`DRAIN_QUIET`], hand it over to be served (with GOAWAY, as the server is closing:
/// the calls already sent are answered), and only then close the listener.
async fn close_listener(listener: TcpListener, hand_over: &HandOver) {
    refuse_new_handshakes(&listener);
    let deadline = tokio::time::Instant::now() + DRAIN_MAX;
    let mut drained = 0_u32;
    while let Ok(Ok((tcp, peer))) = tokio::time::timeout_at(
        deadline.min(tokio::time::Instant::now() + DRAIN_QUIET),
        listener.accept(),
    )
    .await
    {
        drained += 1;
        // Served even beyond the connection cap: they are few, and only until shutdown.
        let slot = Arc::clone(&hand_over.slots).try_acquire_owned().ok();
        if hand_over.conn(tcp, peer, slot).await.is_err() {
            return;
        }
    }
    tracing::debug!(drained, "listener closed");
}

/// Makes the kernel drop new connection attempts (segments with SYN and without ACK)
/// to `listener`, while handshakes already under way complete into its accept queue.
/// A classic BPF socket filter, which sees each segment from its TCP header on.
#[cfg(target_os = "linux")]
fn refuse_new_handshakes(listener: &TcpListener) {
    use socket2::{SockFilter, SockRef};
    // Opcodes from linux/filter.h.
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const FLAGS: u32 = 13; // offset of the flags byte in the TCP header
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    let program = [
        SockFilter::new(LD_B_ABS, 0, 0, FLAGS),
        SockFilter::new(AND_K, 0, 0, SYN | ACK),
        // SYN without ACK: fall through to "drop"; anything else: skip to "keep".
        SockFilter::new(JEQ_K, 0, 1, SYN),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
    ];
    if let Err(err) = SockRef::from(listener).attach_filter(&program) {
        tracing::warn!(%err, "cannot refuse new handshakes; connections made while the listener closes may be reset");
    }
}

/// Elsewhere the queue is still drained; a connection made in the last instant may be
/// reset.
#[cfg(not(target_os = "linux"))]
fn refuse_new_handshakes(_listener: &TcpListener) {}

/// Turns accepted TCP connections into ready ones (TLS handshake, when TLS is on).
struct HandOver {
    tx: mpsc::Sender<Accepted>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    handshakes: Arc<tokio::sync::Semaphore>,
    /// Places under the connection cap.
    slots: Arc<Semaphore>,
}

/// The serve loop is gone (the acceptor was dropped).
struct Closed;

impl HandOver {
    async fn conn(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Closed> {
        // gRPC is latency-sensitive and its frames are small: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let info = ConnInfo {
            peer_addr: Some(Address::from(peer)),
        };
        match &self.tls {
            None => {
                let conn = Conn {
                    stream: ConnStream::Tcp(tcp),
                    info,
                };
                self.tx
                    .send(Accepted { conn, _slot: slot })
                    .await
                    .map_err(|_| Closed)
            }
            Some(acceptor) => {
                let Ok(permit) = Arc::clone(&self.handshakes).try_acquire_owned() else {
                    tracing::warn!(%peer, "too many TLS handshakes in progress; connection dropped");
                    return Ok(());
                };
                let acceptor = acceptor.clone();
                let tx = self.tx.clone();
                let handshake_timeout = self.handshake_timeout;
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let stream = tokio_rustls::TlsStream::Server(stream);
                            let conn = Conn {
                                stream: ConnStream::Tls(stream.into()),
                                info,
                            };
                            // Fails only when the serve loop is gone.
                            let _ = tx.send(Accepted { conn, _slot: slot }).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                Ok(())
            }
        }
    }
}

impl Acceptor {
    /// The next ready connection; `None` once the listener is closed and every TLS
    /// handshake under way then has ended.
    pub async fn accept(&mut self) -> Option<Accepted> {
        self.ready.recv().await
    }
}

/// HTTP/2 settings of every connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Http2Settings {
    /// Streams (calls) one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Ping interval; `None` sends no pings.
    pub keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keepalive_timeout: Duration,
    /// A connection with no call open for this long is closed (GOAWAY); `None`: never.
    /// (Checked in steps of this length, so closing takes up to twice as long.)
    pub idle_timeout: Option<Duration>,
    /// Time a connection gets to send the HTTP/2 preface; also how long a connection
    /// told to go away for being idle may take to close before it is dropped.
    pub handshake_timeout: Duration,
    /// Largest request header block, in bytes (advertised in SETTINGS, enforced by h2).
    pub max_header_list_bytes: u32,
}

/// Flow-control windows and buffers: volo-grpc's defaults.
const WINDOW: u32 = 1024 * 1024;
const MAX_SEND_BUF: usize = 400 * 1024;

/// The calls open on a request's connection when it arrived, itself included: a request
/// extension, so load shedding can give each connection only its share.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLoad(pub usize);

/// Serves every connection `incoming` hands over, until it has no more (its listener
/// is closed; see [`Acceptor::new`]).
///
/// `make_service` gives the service of a connection from its peer address. Each
/// connection runs in a task of `connections`; cancelling `closing` makes them all
/// shut down gracefully (GOAWAY, then finish their open calls), including the ones that
/// arrive after it.
pub async fn serve_connections<M, S>(
    mut incoming: Acceptor,
    make_service: M,
    settings: Http2Settings,
    connections: TaskTracker,
    closing: CancellationToken,
) where
    M: Fn(Option<Address>) -> S,
    S: tower::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    while let Some(accepted) = incoming.accept().await {
        let service = make_service(accepted.conn.info.peer_addr.clone());
        connections.spawn(serve_connection(
            accepted,
            service,
            settings,
            closing.clone(),
        ));
    }
}

async fn serve_connection<S>(
    accepted: Accepted,
    service: S,
    settings: Http2Settings,
    closing: CancellationToken,
) where
    S: tower::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let Accepted { conn, _slot } = accepted;
    let activity = Arc::new(Activity::default());
    let calls = Arc::clone(&activity);
    let hyper_service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let mut service = service.clone();
            let load = calls.begin();
            req.extensions_mut().insert(ConnectionLoad(load));
            // Ends the call when its body ends, or when the call is dropped before that.
            let on_end = {
                let calls = Arc::clone(&calls);
                OnEnd::new(move |_| calls.end())
            };
            async move {
                let resp = service.call(req.map(volo_grpc::body::boxed)).await?;
                Ok::<_, Status>(resp.map(|body| Observed::boxed(Coalesced::boxed(body), on_end)))
            }
        });
    // HTTP/2 (prior knowledge, or ALPN h2) and HTTP/1.1 (browsers on plain http://,
    // for gRPC-Web and the page) on the same port: told apart by the HTTP/2 preface.
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The request head (line and headers) is capped as HTTP/2's header list is, and
        // at hyper's default of about 400 KiB (the same buffer holds body reads).
        .max_buf_size((settings.max_header_list_bytes as usize).clamp(8 * 1024, 400 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_send_buf_size(MAX_SEND_BUF)
        .max_header_list_size(settings.max_header_list_bytes)
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout);
    let (io, preface) = Preface::watch(conn);
    let connection = builder.serve_connection(TokioIo::new(io), hyper_service);
    tokio::pin!(connection);
    let mut going_away = false;
    // The preface deadline, then (once told to go away for idleness) the closing deadline.
    let deadline = tokio::time::sleep(settings.handshake_timeout);
    tokio::pin!(deadline);
    let mut deadline_armed = true;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            () = closing.cancelled(), if !going_away => {
                connection.as_mut().graceful_shutdown();
                going_away = true;
            }
            () = activity.idle(settings.idle_timeout), if !going_away => {
                tracing::debug!("closing idle connection");
                connection.as_mut().graceful_shutdown();
                going_away = true;
                // hyper waits for the peer to acknowledge; an idle peer need not.
                deadline.as_mut().reset(tokio::time::Instant::now() + settings.handshake_timeout);
                deadline_armed = true;
            }
            () = deadline.as_mut(), if deadline_armed => {
                deadline_armed = false;
                if going_away {
                    tracing::debug!("idle connection did not close in time; dropping it");
                    return;
                }
                if !preface.load(Ordering::Relaxed) {
                    tracing::debug!("no preface (or HTTP/1.1 request) within the handshake timeout; dropping the connection");
                    return;
                }
            }
        }
    }
}

/// The client's HTTP/2 connection preface is 24 bytes; then SETTINGS follow.
const PREFACE_LEN: usize = 24;

pin_project_lite::pin_project! {
    /// A connection's I/O that notes when the client has sent a whole preface's worth
    /// of bytes. After that, reads pass through with one comparison.
    struct Preface<IO> {
        #[pin]
        io: IO,
        // Bytes still to see before the preface counts as sent.
        remaining: usize,
        seen: Arc<AtomicBool>,
    }
}

impl<IO> Preface<IO> {
    fn watch(io: IO) -> (Self, Arc<AtomicBool>) {
        let seen = Arc::new(AtomicBool::new(false));
        let watched = Self {
            io,
            remaining: PREFACE_LEN,
            seen: Arc::clone(&seen),
        };
        (watched, seen)
    }
}

impl<IO: AsyncRead> AsyncRead for Preface<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if *this.remaining > 0 {
            let read = buf.filled().len() - before;
            *this.remaining = this.remaining.saturating_sub(read);
            if *this.remaining == 0 {
                this.seen.store(true, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl<IO: AsyncWrite> AsyncWrite for Preface<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Open calls on one connection, to tell when it has been idle long enough.
#[derive(Debug, Default)]
struct Activity {
    open: AtomicUsize,
    /// Calls started so far: a call that comes and goes within the timeout resets it.
    started: AtomicU64,
    /// Woken when the last open call ends.
    quiet: Notify,
}

impl Activity {
    /// Counts a new call; returns the calls now open, this one included.
    fn begin(&self) -> usize {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn end(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.quiet.notify_one();
        }
    }

    /// Completes once no call has been open for `timeout`; never with `None`.
    async fn idle(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            if self.open.load(Ordering::Acquire) == 0 {
                let seen = self.started.load(Ordering::Relaxed);
                tokio::time::sleep(timeout).await;
                if self.open.load(Ordering::Acquire) == 0
                    && self.started.load(Ordering::Relaxed) == seen
                {
                    return;
                }
            } else {
                self.quiet.notified().await;
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;

    #[tokio::test]
    async fn a_refusing_listener_keeps_its_queue_and_lets_no_new_connection_in() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Completed by the kernel, not yet accepted: it waits in the accept queue.
        let mut queued = TcpStream::connect(addr).await.unwrap();
        queued.write_all(b"call").await.unwrap();
        refuse_new_handshakes(&listener);
        let late = tokio::spawn(TcpStream::connect(addr));

        // The queued connection is still there, with what its client sent.
        let (mut accepted, _) = listener.accept().await.unwrap();
        let mut buf = [0; 4];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"call");
        // The late attempt never completes its handshake, so nothing more is queued
        // (without the filter it would be there within microseconds).
        let more = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(more.is_err(), "a connection got through the filter");

        // Once the listener is closed, the late client is refused (its SYN is sent
        // again about a second later): it never had a connection that could be reset.
        drop(listener);
        let late = tokio::time::timeout(Duration::from_secs(10), late)
            .await
            .expect("the late connect resolves")
            .unwrap();
        let err = late.expect_err("the late connect must fail");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }
}
