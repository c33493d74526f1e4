//! Accepting connections: plaintext or TLS, with handshakes off the accept path.
//!
//! [`Acceptor::new`] starts the task that accepts TCP connections under the connection
//! cap, retries a failed `accept` after a pause and runs each TLS handshake in a task of
//! its own with a timeout; ready connections come out of [`Acceptor::accept`] for
//! [`super::serve_connections`]. At shutdown the task closes the listener without
//! resetting the connections the kernel had already accepted for it
//! ([`close_listener`]). The rustls configuration is built by [`crate::tls`].

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::ServerConfig;
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use volo::net::{
    Address,
    conn::{Conn, ConnInfo, ConnStream},
};

/// Connections ready to serve: accepted, and TLS-established when TLS is on.
#[derive(Debug)]
pub(crate) struct Acceptor {
    ready: mpsc::Receiver<Accepted>,
}

/// An accepted connection and its place under the connection cap.
pub(crate) struct Accepted {
    pub(super) conn: Conn,
    /// Released when the connection is dropped (`None`: handed over while the listener
    /// closed, beyond the cap).
    pub(super) _slot: Option<OwnedSemaphorePermit>,
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
    pub(crate) fn new(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        handshake_timeout: Duration,
        max_connections: usize,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
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
        (Self { ready }, task)
    }

    /// The next ready connection; `None` once the listener is closed and every TLS
    /// handshake under way then has ended.
    pub(crate) async fn accept(&mut self) -> Option<Accepted> {
        self.ready.recv().await
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io;

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
