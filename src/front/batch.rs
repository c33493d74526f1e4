//! Write batching: a busy connection's writes wait one turn of the scheduler, so the
//! replies that finish in that turn leave together.
//!
//! hyper runs each HTTP/2 stream in a task of its own, and the connection's task
//! writes whatever frames are ready each time it runs. tokio runs a task woken by the
//! running one next, so under load a finishing stream wakes the connection, the
//! connection writes that stream's reply alone, and the next stream's reply waits for
//! the next `writev`: about one system call per two Hello calls at 10 connections x 10
//! streams, and the kernel's send path was a third of the server's time.
//!
//! [`Batched`] turns a write away once, waking its own task, while other calls on the
//! connection are still open ([`Busy::open_calls`]). A task that wakes itself goes to
//! the back of tokio's run queue, so the streams already queued add their frames first
//! and one write carries them all (Netty's flush consolidation, the same idea). The
//! next write goes through, so no write waits more than one turn; a connection with no
//! other open call writes at once, so a lone call never waits.
//!
//! A new HTTP/2 connection opens with three writes otherwise: the server's SETTINGS as
//! soon as the connection starts, the acknowledgement of the client's SETTINGS (with
//! the connection's window update) once they are read, and the first reply. Each is a
//! system call and a TCP segment the client acknowledges. So the connection's opening
//! is held ([`Batched::holding_the_opening`]): its writes are kept until the first call
//! has been answered, and leave in one write, as a call on an open connection does.
//! The hold is short: the client sends its SETTINGS right after its preface, and the
//! opening leaves after a few turns of the connection's task even if no call comes or
//! the first one (a stream) stays open.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Tells how many calls are open on the connection, and how many have begun: while
/// others are open, more output may be ready soon.
pub(crate) trait Busy {
    fn open_calls(&self) -> usize;
    fn calls_begun(&self) -> u64;
}

pin_project_lite::pin_project! {
    /// A connection's I/O whose writes wait one scheduler turn while the connection is
    /// busy; reads pass through.
    pub struct Batched<IO, B> {
        #[pin]
        io: IO,
        busy: B,
        // A write was just turned away: the next one goes through.
        deferred: bool,
        opening: Opening,
    }
}

/// Flushes (about two per turn of the connection's task) an opening waits at most.
const OPENING_FLUSHES: u8 = 6;
/// Bytes an opening holds at most: a larger first reply goes out as it comes.
const OPENING_BYTES: usize = 16 * 1024;

/// The connection's first writes, held to leave together.
#[derive(Debug)]
enum Opening {
    /// Nothing written yet: the first write will be held.
    Hold,
    /// Held bytes, and the flushes asked for since.
    Held { bytes: BytesMut, flushes: u8 },
    /// Being written, before anything else.
    Sending(BytesMut),
    /// Nothing held: writes pass through.
    Done,
}

impl<IO, B: Busy> Batched<IO, B> {
    pub(crate) fn new(io: IO, busy: B) -> Self {
        Self {
            io,
            busy,
            deferred: false,
            opening: Opening::Done,
        }
    }

    /// Holds the connection's opening writes until its first call is answered (see the
    /// module doc), for HTTP/2, whose server speaks first.
    pub(crate) fn holding_the_opening(mut self) -> Self {
        self.opening = Opening::Hold;
        self
    }

    /// Whether to turn this write away (once) so that more can join it.
    ///
    /// A write waits for other calls' replies while two or more calls are open: one may
    /// be the stream whose message is being written, another may add its reply. (A
    /// unary call whose reply is being written has ended: hyper dropped its body once
    /// sent.) A lone call, unary or stream, never waits: measured, waiting while only
    /// one call was open gained nothing at 10 x 10 Hello calls.
    fn defer(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let this = self.project();
        if *this.deferred || this.busy.open_calls() <= 1 {
            *this.deferred = false;
            return false;
        }
        *this.deferred = true;
        // Running tasks that wake themselves are queued behind the tasks already ready.
        cx.waker().wake_by_ref();
        true
    }

    /// Whether a held opening has waited enough: a call has been answered (one has
    /// begun, and fewer are open), or the connection has asked for enough flushes.
    fn opening_due(&self, flushes: u8) -> bool {
        let open = self.busy.open_calls() as u64;
        flushes >= OPENING_FLUSHES || self.busy.calls_begun() > open
    }
}

impl<IO: AsyncWrite, B> Batched<IO, B> {
    /// Writes what the opening still has to send, if anything, before anything else.
    fn send_opening(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let Opening::Sending(bytes) = this.opening else {
            return Poll::Ready(Ok(()));
        };
        while bytes.has_remaining() {
            let n = ready!(this.io.as_mut().poll_write(cx, bytes.chunk()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            bytes.advance(n);
        }
        *this.opening = Opening::Done;
        Poll::Ready(Ok(()))
    }

    /// Stops holding: what was held is sent first, from now on.
    fn release_opening(self: Pin<&mut Self>) {
        let opening = self.project().opening;
        match opening {
            Opening::Hold => *opening = Opening::Done,
            Opening::Held { bytes, .. } => *opening = Opening::Sending(std::mem::take(bytes)),
            Opening::Sending(_) | Opening::Done => {}
        }
    }
}

impl<IO: AsyncRead, B> AsyncRead for Batched<IO, B> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite, B: Busy> AsyncWrite for Batched<IO, B> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let opening = self.as_mut().project().opening;
        match opening {
            Opening::Done => {}
            Opening::Hold => {
                *opening = Opening::Held {
                    bytes: BytesMut::from(buf),
                    flushes: 0,
                };
                return Poll::Ready(Ok(buf.len()));
            }
            Opening::Held { bytes, .. } => {
                bytes.extend_from_slice(buf);
                if bytes.len() > OPENING_BYTES {
                    self.as_mut().release_opening();
                    // Taken: what is left goes out before any other write, and on flush.
                    if let Poll::Ready(Err(err)) = self.send_opening(cx) {
                        return Poll::Ready(Err(err));
                    }
                }
                return Poll::Ready(Ok(buf.len()));
            }
            Opening::Sending(_) => ready!(self.as_mut().send_opening(cx))?,
        }
        if self.as_mut().defer(cx) {
            return Poll::Pending;
        }
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !matches!(self.as_mut().project().opening, Opening::Done) {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            return self.poll_write(cx, first);
        }
        if self.as_mut().defer(cx) {
            return Poll::Pending;
        }
        self.project().io.poll_write_vectored(cx, bufs)
    }

    /// Reported false, whatever the socket can do. h2 copies a DATA frame's payload into
    /// its write buffer only up to 256 bytes when the I/O is vectored (1 KiB when it is
    /// not); a larger payload is chained to the buffer and must be written before the
    /// next frame is encoded, so every reply over 256 bytes (a Hello in JSON is about
    /// 350) took a `writev` of its own, whatever the batching. Replies up to 1 KiB now
    /// join the others; larger ones cost one more `write` each.
    fn is_write_vectored(&self) -> bool {
        false
    }

    /// h2 flushes at the end of every turn of the connection's task (and its SETTINGS
    /// before it reads the client's preface). A held opening stays held until it is due,
    /// the task waking itself meanwhile so that it comes due without the client.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Opening::Held { flushes, .. } = self.as_mut().project().opening {
            *flushes += 1;
            let flushes = *flushes;
            if !self.opening_due(flushes) {
                cx.waker().wake_by_ref();
                return Poll::Ready(Ok(()));
            }
            self.as_mut().release_opening();
        }
        ready!(self.as_mut().send_opening(cx))?;
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.as_mut().release_opening();
        ready!(self.as_mut().send_opening(cx))?;
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::poll_fn,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::Wake,
    };

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// The calls open on a test connection, and begun.
    #[derive(Clone, Default)]
    struct Open(Arc<(AtomicUsize, AtomicUsize)>);

    impl Open {
        fn set(&self, n: usize) {
            self.0.0.store(n, Ordering::Relaxed);
        }

        fn begin(&self) {
            self.0.1.fetch_add(1, Ordering::Relaxed);
            self.0.0.fetch_add(1, Ordering::Relaxed);
        }

        fn end(&self) {
            self.0.0.fetch_sub(1, Ordering::Relaxed);
        }
    }

    impl Busy for Open {
        fn open_calls(&self) -> usize {
            self.0.0.load(Ordering::Relaxed)
        }

        fn calls_begun(&self) -> u64 {
            self.0.1.load(Ordering::Relaxed) as u64
        }
    }

    /// A socket that records each write, accepts at most `max_write` bytes per write,
    /// and never has anything to read.
    struct Recorder {
        writes: Vec<Vec<u8>>,
        max_write: usize,
    }

    impl Recorder {
        fn new() -> Self {
            Self {
                writes: Vec::new(),
                max_write: usize::MAX,
            }
        }

        fn sent(&self) -> Vec<u8> {
            self.writes.concat()
        }
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max_write);
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl CountWakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// Polls `f` once by hand, with a waker that counts its wakes.
    fn once<IO, T>(
        io: &mut Batched<IO, Open>,
        wakes: &Arc<CountWakes>,
        f: impl FnOnce(Pin<&mut Batched<IO, Open>>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T>
    where
        IO: Unpin,
    {
        let waker = Arc::clone(wakes).into();
        let mut cx = Context::from_waker(&waker);
        f(Pin::new(io), &mut cx)
    }

    fn write<IO: AsyncWrite + Unpin>(
        io: &mut Batched<IO, Open>,
        wakes: &Arc<CountWakes>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        once(io, wakes, |io, cx| io.poll_write(cx, bytes))
    }

    fn flush<IO: AsyncWrite + Unpin>(
        io: &mut Batched<IO, Open>,
        wakes: &Arc<CountWakes>,
    ) -> Poll<io::Result<()>> {
        once(io, wakes, |io, cx| io.poll_flush(cx))
    }

    fn wrote(polled: Poll<io::Result<usize>>) -> usize {
        match polled {
            Poll::Ready(Ok(n)) => n,
            other => panic!("write not done: {other:?}"),
        }
    }

    #[test]
    fn a_connection_with_at_most_one_open_call_writes_at_once() {
        let open = Open::default();
        let mut io = Batched::new(Recorder::new(), open.clone());
        let wakes = Arc::new(CountWakes::default());
        for calls in [0, 1, 0] {
            open.set(calls);
            assert_eq!(wrote(write(&mut io, &wakes, b"abc")), 3);
        }
        assert_eq!(io.io.writes.len(), 3);
        assert_eq!(wakes.count(), 0);
    }

    #[test]
    fn with_two_open_calls_each_write_waits_one_turn_and_wakes_its_task() {
        let open = Open::default();
        open.set(2);
        let mut io = Batched::new(Recorder::new(), open);
        let wakes = Arc::new(CountWakes::default());
        for round in 1..=3 {
            assert!(write(&mut io, &wakes, b"ab").is_pending());
            assert_eq!(wakes.count(), round, "no wake: would hang");
            assert_eq!(wrote(write(&mut io, &wakes, b"ab")), 2);
        }
        assert_eq!(io.io.sent(), b"ababab");
    }

    fn flushed(polled: Poll<io::Result<()>>) {
        assert!(matches!(polled, Poll::Ready(Ok(()))), "{polled:?}");
    }

    #[test]
    fn the_opening_leaves_in_one_write_with_the_first_reply() {
        let open = Open::default();
        let mut io = Batched::new(Recorder::new(), open.clone()).holding_the_opening();
        let wakes = Arc::new(CountWakes::default());
        // The server's SETTINGS: taken and flushed, yet not sent.
        assert_eq!(wrote(write(&mut io, &wakes, b"SETTINGS;")), 9);
        flushed(flush(&mut io, &wakes));
        // The acknowledgement of the client's; then the first call begins.
        assert_eq!(wrote(write(&mut io, &wakes, b"ACK;")), 4);
        flushed(flush(&mut io, &wakes));
        open.begin();
        flushed(flush(&mut io, &wakes));
        assert!(io.io.writes.is_empty(), "sent early: {:?}", io.io.writes);
        assert_eq!(wakes.count(), 3, "each held flush wakes the task");
        // Its reply, and it ends: all in one write.
        assert_eq!(wrote(write(&mut io, &wakes, b"reply;")), 6);
        open.end();
        flushed(flush(&mut io, &wakes));
        assert_eq!(io.io.writes, [b"SETTINGS;ACK;reply;".to_vec()]);
        // Then writes pass through, and a lone call writes at once.
        open.begin();
        assert_eq!(wrote(write(&mut io, &wakes, b"next")), 4);
        assert_eq!(io.io.writes.len(), 2);
        assert_eq!(wakes.count(), 3);
    }

    #[test]
    fn an_opening_without_an_answered_call_leaves_after_a_few_flushes() {
        let open = Open::default();
        let mut io = Batched::new(Recorder::new(), open.clone()).holding_the_opening();
        let wakes = Arc::new(CountWakes::default());
        wrote(write(&mut io, &wakes, b"SETTINGS;"));
        // A stream call stays open: its first message does not wait for its end.
        open.begin();
        wrote(write(&mut io, &wakes, b"message;"));
        for n in 1..OPENING_FLUSHES {
            flushed(flush(&mut io, &wakes));
            assert_eq!(wakes.count(), usize::from(n), "no wake: could wait forever");
        }
        assert!(io.io.writes.is_empty());
        flushed(flush(&mut io, &wakes));
        assert_eq!(io.io.writes, [b"SETTINGS;message;".to_vec()]);
    }

    #[test]
    fn a_large_first_reply_is_not_held() {
        let mut io = Batched::new(Recorder::new(), Open::default()).holding_the_opening();
        let wakes = Arc::new(CountWakes::default());
        wrote(write(&mut io, &wakes, b"SETTINGS;"));
        let large = vec![7; OPENING_BYTES];
        assert_eq!(wrote(write(&mut io, &wakes, &large)), large.len());
        assert_eq!(io.io.writes.len(), 1);
        assert_eq!(io.io.sent(), [&b"SETTINGS;"[..], &large].concat());
    }

    #[test]
    fn a_short_socket_gets_every_byte_in_order() {
        let open = Open::default();
        let mut io = Batched::new(Recorder::new(), open.clone()).holding_the_opening();
        io.io.max_write = 3;
        let wakes = Arc::new(CountWakes::default());
        wrote(write(&mut io, &wakes, b"SETTINGS;"));
        open.begin();
        wrote(write(&mut io, &wakes, b"reply;"));
        open.end();
        flushed(flush(&mut io, &wakes));
        assert_eq!(io.io.sent(), b"SETTINGS;reply;");
        assert!(io.io.writes.iter().all(|w| w.len() <= 3));
        // What follows comes after.
        let n = wrote(write(&mut io, &wakes, b"next"));
        assert_eq!(
            io.io.sent(),
            [&b"SETTINGS;reply;"[..], &b"next"[..n]].concat()
        );
    }

    #[test]
    fn shutdown_sends_a_held_opening() {
        let mut io = Batched::new(Recorder::new(), Open::default()).holding_the_opening();
        let wakes = Arc::new(CountWakes::default());
        wrote(write(&mut io, &wakes, b"GOAWAY"));
        assert!(matches!(
            once(&mut io, &wakes, |io, cx| io.poll_shutdown(cx)),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.io.sent(), b"GOAWAY");
    }

    /// The clock is paused: it moves only when every task waits, so a write that waited
    /// without waking its task would show as time passed (up to the timeout's 10 s).
    #[tokio::test(start_paused = true)]
    async fn waiting_writes_complete_under_a_runtime_without_waiting_for_time() {
        let open = Open::default();
        open.set(2);
        let mut io = Batched::new(Vec::new(), open);
        let start = tokio::time::Instant::now();
        let limit = std::time::Duration::from_secs(10);
        let wrote = tokio::time::timeout(limit, io.write_all(b"hello")).await;
        wrote.unwrap().unwrap();
        let bufs = [io::IoSlice::new(b", "), io::IoSlice::new(b"world")];
        let mut pinned = Pin::new(&mut io);
        let vectored = poll_fn(|cx| pinned.as_mut().poll_write_vectored(cx, &bufs));
        let n = tokio::time::timeout(limit, vectored)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            start.elapsed(),
            std::time::Duration::ZERO,
            "a write waited for time"
        );
        assert!(n > 0);
        assert!(io.io.starts_with(b"hello, "), "{:?}", io.io);
    }
}
