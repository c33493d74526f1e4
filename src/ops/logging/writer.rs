//! The log writer: a thread that takes formatted lines from a bounded queue and writes
//! them to stdout in batches, so no call waits on a `write`.
//!
//! tracing-appender's non-blocking writer (which this replaces) blocks its thread on
//! the queue, so every line that finds it idle wakes it: a `futex` call on the request
//! path, and a context switch, once per call at light load. Here the thread drains the
//! queue, writes what it found in one go, then sleeps for [`INTERVAL`] while lines keep
//! coming; pushing a line costs a copy and no system call. A thread that found nothing
//! sleeps until woken, and the first line after the quiet spell wakes it. A queue more
//! than half full wakes it early; a full one drops lines and counts them, rather than
//! making calls wait.

use std::{
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering, fence},
        mpsc,
    },
    thread::{self, Thread},
    time::Duration,
};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tracing_subscriber::fmt::MakeWriter;

/// How long the thread sleeps after writing, while lines keep coming: the most a line
/// waits in the queue then.
const INTERVAL: Duration = Duration::from_millis(10);

/// How long dropping the [`Guard`] waits for the queued lines to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The writing end, for tracing-subscriber: each event is one `write` of one line.
pub(crate) struct LogWriter {
    lines: Sender<Vec<u8>>,
    shared: Arc<Shared>,
    thread: Thread,
}

/// Flushes the queue when dropped (waiting at most a second).
pub struct Guard {
    shared: Arc<Shared>,
    thread: Thread,
    done: mpsc::Receiver<()>,
}

/// The count of lines dropped because the queue was full or stdout failed.
#[derive(Clone)]
pub struct Dropped(Arc<Shared>);

struct Shared {
    /// The thread found nothing to write and sleeps until woken.
    asleep: AtomicBool,
    /// A writer woke the thread early (queue over half full); reset by the thread.
    nudged: AtomicBool,
    closing: AtomicBool,
    dropped: AtomicU64,
}

/// Starts the writer thread on `out`; `capacity` is the number of lines it may hold.
pub(crate) fn spawn(
    out: impl Write + Send + 'static,
    capacity: usize,
) -> io::Result<(LogWriter, Guard, Dropped)> {
    let (lines, queue) = crossbeam_channel::bounded(capacity);
    let shared = Arc::new(Shared {
        asleep: AtomicBool::new(false),
        nudged: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    });
    let (done_tx, done) = mpsc::channel();
    let for_thread = Arc::clone(&shared);
    let handle = thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            run(&queue, &for_thread, out);
            let _ = done_tx.send(());
        })?;
    let thread = handle.thread().clone();
    let writer = LogWriter {
        lines,
        shared: Arc::clone(&shared),
        thread: thread.clone(),
    };
    let guard = Guard {
        shared: Arc::clone(&shared),
        thread,
        done,
    };
    Ok((writer, guard, Dropped(shared)))
}

fn run(queue: &Receiver<Vec<u8>>, shared: &Shared, mut out: impl Write) {
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        let (mut batch, mut failed) = (0, false);
        while let Ok(line) = queue.try_recv() {
            failed |= out.write_all(&line).is_err();
            batch += 1;
        }
        // `out` is buffered: a failed write may lose any line of the batch, so a failed
        // batch counts as dropped, whole.
        failed |= out.flush().is_err();
        if failed {
            shared.dropped.fetch_add(batch, Ordering::Relaxed);
        }
        shared.nudged.store(false, Ordering::Relaxed);
        if closing {
            return;
        }
        if batch > 0 {
            thread::park_timeout(INTERVAL);
            continue;
        }
        shared.asleep.store(true, Ordering::Relaxed);
        // Pairs with the fence in `LogWriter::push`: either the thread sees the line
        // just pushed, or the writer sees `asleep` and wakes it.
        fence(Ordering::SeqCst);
        if queue.is_empty() && !shared.closing.load(Ordering::Acquire) {
            thread::park();
        }
        shared.asleep.store(false, Ordering::Relaxed);
    }
}

impl LogWriter {
    fn push(&self, line: &[u8]) {
        match self.lines.try_send(line.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        fence(Ordering::SeqCst);
        if self.shared.asleep.load(Ordering::Relaxed) {
            if self.shared.asleep.swap(false, Ordering::Relaxed) {
                self.thread.unpark();
            }
        } else if self.lines.len() > self.lines.capacity().unwrap_or(0) / 2
            && !self.shared.nudged.swap(true, Ordering::Relaxed)
        {
            self.thread.unpark();
        }
    }
}

/// What tracing-subscriber writes one event through.
pub(crate) struct Line<'a>(&'a LogWriter);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

impl Dropped {
    pub fn lines(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.thread.unpark();
        let _ = self.done.recv_timeout(FLUSH_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Barrier, Mutex},
        time::Instant,
    };

    use super::*;

    /// Collects what the thread writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        /// Waits (at most 10 s, polling) until `want` has been written.
        fn wait_for(&self, want: &str) {
            let start = Instant::now();
            while !self.text().contains(want) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "never written: {want:?}; got {:?}",
                    self.text()
                );
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn line(writer: &LogWriter, text: &str) {
        writer.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_are_written_in_order_and_flushed_by_the_guard() {
        let sink = Sink::default();
        let (writer, guard, dropped) = spawn(sink.clone(), 1024).unwrap();
        let want: String = (0..500).map(|i| format!("line {i}\n")).collect();
        for i in 0..500 {
            line(&writer, &format!("line {i}\n"));
        }
        drop(guard);
        assert_eq!(sink.text(), want);
        assert_eq!(dropped.lines(), 0);
    }

    #[test]
    fn a_line_after_a_quiet_spell_wakes_the_thread() {
        let sink = Sink::default();
        let (writer, _guard, _) = spawn(sink.clone(), 16).unwrap();
        for round in 0..20 {
            let text = format!("round {round}\n");
            line(&writer, &text);
            // No later line comes to wake it: the thread must have been woken by this one.
            sink.wait_for(&text);
            // Long enough for the thread to find the queue empty and sleep.
            thread::sleep(INTERVAL * 3);
        }
    }

    /// Blocks its first write until the test lets it go.
    struct Stalled {
        gate: Arc<Barrier>,
        first: bool,
        sink: Sink,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.first {
                self.first = false;
                self.gate.wait();
            }
            self.sink.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Stdout closed under the writer: every write fails.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_that_cannot_be_written_are_counted_as_dropped() {
        let (writer, guard, dropped) = spawn(Broken, 16).unwrap();
        for i in 0..5 {
            line(&writer, &format!("{i}\n"));
        }
        drop(guard);
        assert_eq!(dropped.lines(), 5);
    }

    #[test]
    fn a_full_queue_drops_lines_and_counts_them() {
        let gate = Arc::new(Barrier::new(2));
        let sink = Sink::default();
        let out = Stalled {
            gate: Arc::clone(&gate),
            first: true,
            sink: sink.clone(),
        };
        let (writer, guard, dropped) = spawn(out, 4).unwrap();
        line(&writer, "first\n");
        // Wait until the thread has taken "first" and is stuck writing it.
        let start = Instant::now();
        while !writer.lines.is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10));
            thread::sleep(Duration::from_millis(1));
        }
        for i in 0..10 {
            line(&writer, &format!("{i}\n"));
        }
        assert_eq!(dropped.lines(), 6, "4 fit in the queue");
        gate.wait();
        drop(guard);
        assert_eq!(sink.text(), "first\n0\n1\n2\n3\n");
    }
}
