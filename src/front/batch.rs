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
//! connection are still open ([`Busy::more_coming`]). A task that wakes itself goes to
//! the back of tokio's run queue, so the streams already queued add their frames first
//! and one write carries them all (Netty's flush consolidation, the same idea). The
//! next write goes through, so no write waits more than one turn; a connection with no
//! other open call writes at once, so a lone call never waits.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Tells whether more output may be ready soon (another call is open).
pub(crate) trait Busy {
    fn more_coming(&self) -> bool;
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
    }
}

impl<IO, B: Busy> Batched<IO, B> {
    pub(crate) fn new(io: IO, busy: B) -> Self {
        Self {
            io,
            busy,
            deferred: false,
        }
    }

    /// Whether to turn this write away (once) so that more can join it.
    fn defer(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let this = self.project();
        if *this.deferred || !this.busy.more_coming() {
            *this.deferred = false;
            return false;
        }
        *this.deferred = true;
        // Running tasks that wake themselves are queued behind the tasks already ready.
        cx.waker().wake_by_ref();
        true
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::poll_fn,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        },
        task::Wake,
    };

    use tokio::io::AsyncWriteExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Flag(Arc<AtomicBool>);

    impl Busy for Flag {
        fn more_coming(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls one write by hand, with a waker that counts its wakes.
    fn poll_write_once(
        io: &mut Batched<Vec<u8>, Flag>,
        wakes: &Arc<CountWakes>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let waker = Arc::clone(wakes).into();
        let mut cx = Context::from_waker(&waker);
        Pin::new(io).poll_write(&mut cx, bytes)
    }

    #[test]
    fn an_idle_connection_writes_at_once() {
        let mut io = Batched::new(Vec::new(), Flag::default());
        let wakes = Arc::new(CountWakes::default());
        for _ in 0..3 {
            assert!(matches!(
                poll_write_once(&mut io, &wakes, b"abc"),
                Poll::Ready(Ok(3))
            ));
        }
        assert_eq!(io.io, b"abcabcabc");
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_busy_connection_waits_one_turn_per_write_and_wakes_itself() {
        let busy = Flag::default();
        busy.0.store(true, Ordering::Relaxed);
        let mut io = Batched::new(Vec::new(), busy);
        let wakes = Arc::new(CountWakes::default());
        for round in 1..=3 {
            assert!(poll_write_once(&mut io, &wakes, b"ab").is_pending());
            assert_eq!(
                wakes.0.load(Ordering::Relaxed),
                round,
                "no wake: would hang"
            );
            assert!(matches!(
                poll_write_once(&mut io, &wakes, b"ab"),
                Poll::Ready(Ok(2))
            ));
        }
        assert_eq!(io.io, b"ababab");
    }

    /// The clock is paused: it moves only when every task waits, so a write that waited
    /// without waking its task would show as time passed (up to the timeout's 10 s).
    #[tokio::test(start_paused = true)]
    async fn waiting_writes_complete_under_a_runtime_without_waiting_for_time() {
        let busy = Flag::default();
        busy.0.store(true, Ordering::Relaxed);
        let mut io = Batched::new(Vec::new(), busy);
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
