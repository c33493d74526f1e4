//! Serving accepted connections: HTTP/2 or HTTP/1.1 on each one (hyper).
//!
//! [`serve_connections`] runs every connection an [`Acceptor`] hands over in a task of
//! its own, under the limits the [module doc](super) lists: the preface deadline, the
//! idle timeout, the header bound and a graceful shutdown. This file owns the HTTP
//! settings, telling HTTP/2 from HTTP/1.1 by the first bytes ([`sniff`]), the count of
//! calls open on each connection (idle tracking, write batching, and the
//! [`ConnectionInfo`] that load shedding and the access log read) and the preface watch.
//! Every request goes to the [`Front`].

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pilota::FastStr;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf},
    sync::Notify,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    Front,
    accept::{Accepted, Acceptor},
    batch::{Batched, Busy},
    coalesce::Coalesced,
};
use crate::{call::Handlers, config::Http2Settings};

/// Flow-control windows and buffers: volo-grpc's defaults.
const WINDOW: u32 = 1024 * 1024;
const MAX_SEND_BUF: usize = 400 * 1024;

/// What a request's connection knows, handed to the pipeline with each request.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    /// The calls open on the connection when the request arrived, itself included, so
    /// load shedding can give each connection only its share.
    pub(crate) open_calls: usize,
    /// The peer's address from the socket, formatted once per connection (`-` if
    /// unknown), for the access log.
    pub(crate) peer: FastStr,
    /// The peer's address, for the call's span.
    pub(crate) peer_addr: Option<std::net::SocketAddr>,
}

/// Serves every connection `incoming` hands over, until it has no more (its listener
/// is closed; see [`Acceptor::new`]).
///
/// Every request goes to `front`. Each connection runs in a task of `connections`;
/// cancelling `closing` makes them all shut down gracefully (GOAWAY, then finish their
/// open calls), including the ones that arrive after it.
pub(crate) async fn serve_connections<H: Handlers>(
    mut incoming: Acceptor,
    front: Arc<Front<H>>,
    settings: Http2Settings,
    connections: TaskTracker,
    closing: CancellationToken,
) {
    while let Some(accepted) = incoming.accept().await {
        connections.spawn(serve_connection(
            accepted,
            Arc::clone(&front),
            settings,
            closing.clone(),
        ));
    }
}

async fn serve_connection<H: Handlers>(
    accepted: Accepted,
    front: Arc<Front<H>>,
    settings: Http2Settings,
    closing: CancellationToken,
) {
    let Accepted { mut conn, _slot } = accepted;
    // The preface deadline: the first bytes, and (for HTTP/2) the whole preface. One
    // timer, for the sniffing and after it; later, the closing deadline.
    let preface_due = tokio::time::Instant::now() + settings.handshake_timeout;
    let deadline = tokio::time::sleep_until(preface_due);
    tokio::pin!(deadline);
    let sniffed = tokio::select! {
        sniffed = sniff(&mut conn) => sniffed,
        () = deadline.as_mut() => {
            tracing::debug!(
                "no preface (or HTTP/1.1 request) within the handshake timeout; dropping the connection"
            );
            return;
        }
    };
    let (first, version) = match sniffed {
        Ok(Sniffed::Http1(first)) => (first, Version::H1),
        Ok(Sniffed::Http2(first)) => (first, Version::H2),
        Ok(Sniffed::BadPreface) => {
            tracing::debug!("invalid HTTP/2 preface; GOAWAY(PROTOCOL_ERROR)");
            let _ = conn.write_all(&GOAWAY_PROTOCOL_ERROR).await;
            let _ = conn.shutdown().await;
            return;
        }
        Ok(Sniffed::Nothing) => return,
        Err(err) => {
            tracing::debug!(%err, "connection failed before its first request");
            return;
        }
    };
    let peer = conn
        .info
        .peer_addr
        .as_ref()
        .map_or(FastStr::from_static_str("-"), |addr| {
            FastStr::from_string(addr.to_string())
        });
    let peer_addr = match conn.info.peer_addr {
        Some(volo::net::Address::Ip(addr)) => Some(addr),
        _ => None,
    };
    let activity = Arc::new(Activity::default());
    let calls = Arc::clone(&activity);
    let hyper_service =
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let front = Arc::clone(&front);
            let conn = ConnectionInfo {
                open_calls: calls.begin(),
                peer: peer.clone(),
                peer_addr,
            };
            // The connection counts the request open until its response body is dropped
            // (hyper drops it once sent), or the request is dropped before there is one.
            let open = OpenCall(Arc::clone(&calls));
            let answer = async move {
                let mut resp = front.answer(req.map(volo_grpc::body::boxed), conn).await;
                // An HTTP/1.1 connection past its maximum age closes after this response.
                if open.0.close.load(Ordering::Relaxed) {
                    resp.headers_mut()
                        .insert(http::header::CONNECTION, CONNECTION_CLOSE);
                }
                Ok::<_, Infallible>(resp.map(|body| Coalesced::boxed(body, open)))
            };
            // Boxed once, here: hyper moves the request's future into the stream's task
            // several times on the way (a few kilobytes each time, measured as a tenth
            // of the server's CPU at 10 x 10 Hello calls); a box is moved as a pointer.
            Box::pin(answer)
        });
    // HTTP/2 (prior knowledge, or ALPN h2) and HTTP/1.1 (browsers on plain http://,
    // for gRPC-Web and the page) on the same port: told apart by the first bytes.
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.http1_header_read_timeout)
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
    let builder = match version {
        Version::H1 => builder.http1_only(),
        Version::H2 => builder.http2_only(),
    };
    let batched = Batched::new(conn, Arc::clone(&activity));
    let batched = match version {
        Version::H1 => batched,
        Version::H2 => batched.holding_the_opening(),
    };
    let (io, preface) = Preface::watch(batched, first);
    let connection = builder.serve_connection(TokioIo::new(io), hyper_service);
    tokio::pin!(connection);
    // Told to go away (and why), once; the maximum age, if any, with its jitter.
    let mut going_away: Option<GoingAway> = None;
    let age = settings.max_connection_age;
    let age = tokio::time::sleep_until(age.map_or(preface_due, |age| {
        tokio::time::Instant::now() + jittered(age, rand::random())
    }));
    tokio::pin!(age);
    let mut age_armed = settings.max_connection_age.is_some();
    // The preface deadline, then (once told to go away) the closing deadline, if any.
    // An HTTP/2 connection has sent its whole preface already (`sniff` read it).
    let mut deadline_for = match version {
        Version::H1 => Some(Deadline::Preface),
        Version::H2 => None,
    };
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            () = closing.cancelled(), if going_away.is_none() => {
                connection.as_mut().graceful_shutdown();
                going_away = Some(GoingAway::Shutdown);
            }
            () = activity.idle(settings.idle_timeout), if going_away.is_none() => {
                tracing::debug!("closing idle connection");
                connection.as_mut().graceful_shutdown();
                going_away = Some(GoingAway::Idle);
                // hyper waits for the peer to acknowledge; an idle peer need not.
                deadline.as_mut().reset(tokio::time::Instant::now() + settings.handshake_timeout);
                deadline_for = Some(Deadline::Close);
            }
            () = age.as_mut(), if age_armed && going_away.is_none() => {
                age_armed = false;
                metrics::counter!("basic_connections_aged_total").increment(1);
                match version {
                    // Keep-alive ends with the next response; the client opens another
                    // connection for the request after it.
                    Version::H1 => activity.close.store(true, Ordering::Relaxed),
                    Version::H2 => {
                        tracing::debug!("connection reached its maximum age; GOAWAY");
                        connection.as_mut().graceful_shutdown();
                        going_away = Some(GoingAway::Age);
                        if let Some(grace) = settings.max_connection_age_grace {
                            deadline.as_mut().reset(tokio::time::Instant::now() + grace);
                            deadline_for = Some(Deadline::Close);
                        }
                    }
                }
            }
            () = deadline.as_mut(), if deadline_for.is_some() => {
                match deadline_for.take() {
                    Some(Deadline::Close) => {
                        tracing::debug!(
                            open_calls = activity.open.load(Ordering::Relaxed),
                            reason = ?going_away,
                            "connection told to go away did not close in time; dropping it"
                        );
                        return;
                    }
                    Some(Deadline::Preface) if !preface.load(Ordering::Relaxed) => {
                        tracing::debug!("no preface (or HTTP/1.1 request) within the handshake timeout; dropping the connection");
                        return;
                    }
                    Some(Deadline::Preface) | None => {}
                }
            }
        }
    }
}

/// What the connection's deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// The preface (or first HTTP/1.1 request) must have come by then.
    Preface,
    /// A connection told to go away must have closed by then.
    Close,
}

/// Why a connection was told to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoingAway {
    /// The server is shutting down; its own grace period bounds the rest.
    Shutdown,
    /// No call for the idle timeout; the peer gets the handshake timeout to close.
    Idle,
    /// Past the maximum age; open calls get the grace period, if one is set.
    Age,
}

/// `age` scaled by a factor between 0.9 and 1.1 picked by `unit` (in `[0, 1)`), so that
/// connections opened together (a fleet after a restart) do not all go away together.
fn jittered(age: Duration, unit: f64) -> Duration {
    age.mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
}

/// `Connection: close`, on an HTTP/1.1 connection's last response.
const CONNECTION_CLOSE: http::HeaderValue = http::HeaderValue::from_static("close");

#[derive(Debug, Clone, Copy)]
enum Version {
    H1,
    H2,
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; PREFACE_LEN] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Its first line: a connection that starts with it speaks HTTP/2, or nothing.
const PREFACE_LINE: usize = 16;
/// GOAWAY, last stream 0, PROTOCOL_ERROR: the answer to an invalid preface.
const GOAWAY_PROTOCOL_ERROR: [u8; 17] = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// What a connection's first bytes say.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    /// Not the preface's first line: HTTP/1.1 (these bytes begin the request).
    Http1(Bytes),
    /// The whole preface (these bytes).
    Http2(Bytes),
    /// The preface's first line, then something else: a connection error.
    BadPreface,
    /// The peer closed before sending anything that could be answered.
    Nothing,
}

/// Reads the first bytes of a connection, as few as tell HTTP/2 from HTTP/1.1: hyper's
/// own detection wants all 24 bytes of the preface to call a connection HTTP/2, and
/// answers a broken one as HTTP/1.1, where RFC 9113 §3.4 asks for a connection error.
async fn sniff<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<Sniffed> {
    let mut buf = BytesMut::with_capacity(PREFACE_LEN);
    loop {
        let read = io.read_buf(&mut buf).await?;
        let line = buf.len().min(PREFACE_LINE);
        if buf[..line] != PREFACE[..line] {
            return Ok(Sniffed::Http1(buf.freeze()));
        }
        if buf.len() >= PREFACE_LEN {
            return Ok(if buf[..] == PREFACE[..] {
                Sniffed::Http2(buf.freeze())
            } else {
                Sniffed::BadPreface
            });
        }
        if read == 0 {
            // The peer closed while its bytes could still begin a preface.
            return Ok(Sniffed::Nothing);
        }
    }
}

/// The client's HTTP/2 connection preface is 24 bytes; then SETTINGS follow.
const PREFACE_LEN: usize = 24;

pin_project_lite::pin_project! {
    /// A connection's I/O that first replays the bytes [`sniff`] read, and notes when
    /// the client has sent a whole preface's worth of bytes. After that, reads pass
    /// through with one comparison.
    struct Preface<IO> {
        #[pin]
        io: IO,
        // Read by `sniff`, handed out first.
        first: Bytes,
        // Bytes still to see before the preface counts as sent.
        remaining: usize,
        seen: Arc<AtomicBool>,
    }
}

impl<IO> Preface<IO> {
    fn watch(io: IO, first: Bytes) -> (Self, Arc<AtomicBool>) {
        let seen = Arc::new(AtomicBool::new(false));
        let watched = Self {
            io,
            first,
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
        let polled = if this.first.is_empty() {
            this.io.poll_read(cx, buf)
        } else {
            let n = this.first.len().min(buf.remaining());
            buf.put_slice(&this.first.split_to(n));
            Poll::Ready(Ok(()))
        };
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
    /// HTTP/1.1 past its maximum age: the next response says `Connection: close`.
    close: AtomicBool,
}

/// The open calls, for write batching.
impl Busy for Arc<Activity> {
    fn open_calls(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn calls_begun(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// One open call of a connection's [`Activity`]; the call ends when this is dropped.
struct OpenCall(Arc<Activity>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.end();
    }
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

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncReadExt, task::JoinHandle, time::Instant};

    use super::*;

    #[test]
    fn the_maximum_age_is_jittered_by_ten_percent_either_way() {
        let age = Duration::from_secs(100);
        assert_eq!(jittered(age, 0.0), Duration::from_secs(90));
        assert_eq!(jittered(age, 0.5), Duration::from_secs(100));
        assert_eq!(jittered(age, 1.0), Duration::from_secs(110));
        let drawn: Vec<Duration> = (0..1000).map(|_| jittered(age, rand::random())).collect();
        let (min, max) = (drawn.iter().min().unwrap(), drawn.iter().max().unwrap());
        assert!(*min >= Duration::from_secs(90) && *max <= Duration::from_secs(110));
        // Spread over the range, not bunched: connections opened together part.
        assert!(*max - *min >= Duration::from_secs(15), "{min:?}..{max:?}");
    }

    /// The idle timeout in these tests; the clock is paused, so nothing really waits.
    const T: Duration = Duration::from_secs(10);

    /// Waits for `activity` to be idle in a task; the task gives the time that took.
    fn idle_after(activity: &Arc<Activity>, timeout: Option<Duration>) -> JoinHandle<Duration> {
        let activity = Arc::clone(activity);
        let start = Instant::now();
        tokio::spawn(async move {
            activity.idle(timeout).await;
            start.elapsed()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_timeout_when_no_call_comes() {
        let activity = Arc::new(Activity::default());
        let took = idle_after(&activity, Some(T)).await.unwrap();
        assert_eq!(took, T);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_comes_and_goes_postpones_idleness() {
        let activity = Arc::new(Activity::default());
        let idle = idle_after(&activity, Some(T));
        tokio::time::sleep(T / 4).await;
        assert_eq!(activity.begin(), 1);
        tokio::time::sleep(T / 4).await;
        activity.end();
        let ended = T / 2;
        let took = idle.await.unwrap();
        // Not idle when the first timeout ran out: a call came and went in it. A full
        // timeout after the call ended, and within two (the check's step).
        assert!(took >= ended + T, "idle after {took:?}");
        assert!(took <= ended + 2 * T, "idle after {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_call_keeps_the_connection_busy_until_it_ends() {
        let activity = Arc::new(Activity::default());
        let idle = idle_after(&activity, Some(T));
        tokio::time::sleep(T / 2).await;
        activity.begin();
        // Open for several timeouts: never idle meanwhile.
        tokio::time::sleep(3 * T).await;
        assert!(!idle.is_finished(), "idle while a call is open");
        activity.end();
        let ended = T / 2 + 3 * T;
        // The timeout counts from the end of the call.
        assert_eq!(idle.await.unwrap(), ended + T);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_open_from_the_start_holds_idleness_off_until_it_ends() {
        let activity = Arc::new(Activity::default());
        assert_eq!(activity.begin(), 1);
        assert_eq!(activity.begin(), 2);
        let idle = idle_after(&activity, Some(T));
        tokio::time::sleep(2 * T).await;
        activity.end();
        tokio::time::sleep(2 * T).await;
        assert!(!idle.is_finished(), "idle while a call is open");
        activity.end();
        assert_eq!(idle.await.unwrap(), 4 * T + T);
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_never_idle() {
        let activity = Arc::new(Activity::default());
        let never = tokio::time::timeout(1000 * T, activity.idle(None)).await;
        assert!(never.is_err(), "idle without a timeout");
    }

    #[tokio::test]
    async fn preface_counts_once_24_bytes_have_been_read() {
        let bytes = [7_u8; PREFACE_LEN + 8];
        let (mut io, seen) = Preface::watch(&bytes[..], Bytes::new());
        let mut buf = [0; PREFACE_LEN - 1];
        io.read_exact(&mut buf).await.unwrap();
        assert!(
            !seen.load(Ordering::Relaxed),
            "seen after {} bytes",
            buf.len()
        );
        let mut one = [0; 1];
        io.read_exact(&mut one).await.unwrap();
        assert!(
            seen.load(Ordering::Relaxed),
            "not seen after {PREFACE_LEN} bytes"
        );
        // What follows passes through unchanged.
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, [7; 8]);
        assert!(seen.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn preface_in_one_read_counts_too() {
        let (mut io, seen) = Preface::watch(
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04"[..],
            Bytes::new(),
        );
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), PREFACE_LEN + 4);
        assert!(seen.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn fewer_bytes_than_a_preface_never_count() {
        let (mut io, seen) = Preface::watch(&b"GET"[..], Bytes::new());
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET");
        assert!(!seen.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn replayed_bytes_come_first_and_count_toward_the_preface() {
        let (mut io, seen) = Preface::watch(
            &b"\r\nSM\r\n\r\n"[..],
            Bytes::from_static(b"PRI * HTTP/2.0\r\n"),
        );
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, PREFACE);
        assert!(seen.load(Ordering::Relaxed));
    }

    async fn sniffed(chunks: &[&[u8]]) -> Sniffed {
        let mut mock = chunked_reader(chunks);
        sniff(&mut mock).await.unwrap()
    }

    /// A reader that returns `chunks` one read at a time.
    fn chunked_reader(chunks: &[&[u8]]) -> impl AsyncRead + Unpin {
        let chunks: Vec<io::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        tokio_util::io::StreamReader::new(futures::stream::iter(chunks))
    }

    #[tokio::test]
    async fn the_first_bytes_tell_http2_from_http1() {
        assert_eq!(
            sniffed(&[b"GET / HTTP/1.1\r\n"]).await,
            Sniffed::Http1(Bytes::from_static(b"GET / HTTP/1.1\r\n"))
        );
        assert_eq!(
            sniffed(&[b"P", b"OST / HTTP/1.1\r\n"]).await,
            Sniffed::Http1(Bytes::from_static(b"POST / HTTP/1.1\r\n"))
        );
        assert_eq!(
            sniffed(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n"]).await,
            Sniffed::Http2(Bytes::from_static(PREFACE))
        );
        // The preface's first line and then anything else is a broken HTTP/2 preface.
        assert_eq!(
            sniffed(&[b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"]).await,
            Sniffed::BadPreface
        );
        assert_eq!(sniffed(&[b"PRI * HT"]).await, Sniffed::Nothing);
        assert_eq!(sniffed(&[]).await, Sniffed::Nothing);
    }
}
