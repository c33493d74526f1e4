//! How the binary logs: `tracing` events to stdout, as text lines or JSON.
//!
//! Lines are formatted on the calling thread and written by a thread of their own
//! (`writer.rs`: bounded, lossy, counting what it drops, batching its writes and never
//! woken per line), so a call never waits on a `write` to stdout. The access log writes
//! one line per call, so the text format is written here ([`TextLine`]) rather than by
//! tracing-subscriber's general one: the same layout (`<time> <LEVEL> <target>:
//! <message> <field>=<value> ...`), without colours (off a terminal tracing-subscriber
//! writes none either), with the time's date and clock formatted once per second,
//! strings written as they are and integers without the `fmt` machinery. Events inside
//! spans (none on the request path) keep tracing-subscriber's format. JSON lines are
//! tracing-subscriber's.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    io::IsTerminal,
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter,
    field::Visit,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

use crate::config::LogFormat;

mod writer;

pub use writer::{Dropped, Guard};

/// Lines the log writer may hold while stdout is slow; beyond, new lines are dropped
/// (and counted) rather than making calls wait.
const LOG_BUFFER_LINES: usize = 64 * 1024;

/// Logs to stdout; `RUST_LOG` filters (default `info`). Panics are logged too: the
/// panic hook is the one place they are (the call pipeline answers a panicking call
/// INTERNAL without logging it again). Returns the writer's guard (dropping it flushes)
/// and its count of dropped lines; fails if the writer thread cannot be started.
pub fn init(format: LogFormat) -> std::io::Result<(Guard, Dropped)> {
    let (writer, guard, dropped) = writer::spawn(stdout_batched(), LOG_BUFFER_LINES)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // Colours on a terminal: tracing-subscriber's own format, for people.
        LogFormat::Text if std::io::stdout().is_terminal() => builder.init(),
        LogFormat::Text => builder.event_format(TextLine::default()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    std::panic::set_hook(Box::new(|info| tracing::error!(%info, "panic")));
    Ok((guard, dropped))
}

/// Stdout for the writer thread: a duplicate of fd 1 behind a buffer, so the lines
/// that wait together go out in one `write` (the thread flushes after each batch).
/// `std::io::stdout()` is line-buffered: one `write` per line. Falls back to it if fd 1
/// cannot be duplicated.
fn stdout_batched() -> Box<dyn std::io::Write + Send> {
    use std::os::fd::AsFd;
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::fs::File::from(fd),
        )),
        Err(_) => Box::new(std::io::stdout()),
    }
}

/// The text line format; see the module docs.
#[derive(Default)]
pub struct TextLine {
    /// For events inside spans.
    full: tracing_subscriber::fmt::format::Format,
}

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if ctx.lookup_current().is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        write_time(&mut writer, SystemTime::now())?;
        let meta = event.metadata();
        write!(writer, " {:>5} ", meta.level().as_str())?;
        writer.write_str(meta.target())?;
        writer.write_str(":")?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes an event's fields: the message, then ` name=value` for each other field.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.writer.write_char(' ')?;
            if field.name() != "message" {
                self.writer.write_str(field.name())?;
                self.writer.write_char('=')?;
            }
            value(self.writer)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| w.write_str(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }
}

thread_local! {
    /// The last second formatted on this thread, and its text (`2026-11-30T05:38:16`).
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Writes `now` as RFC 3339 in UTC with microseconds, like tracing-subscriber's
/// default (`2026-11-30T05:38:16.671322Z`); the date and clock are formatted once a
/// second per thread.
fn write_time(writer: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            text.clear();
            write_date_time(text, secs)?;
            *cached = secs;
        }
        writer.write_str(text)
    })?;
    let micros = since_epoch.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros);
    writer.write_char('.')?;
    for _ in digits.len()..6 {
        writer.write_char('0')?;
    }
    writer.write_str(digits)?;
    writer.write_char('Z')
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the Unix epoch, in UTC (proleptic Gregorian).
fn write_date_time(out: &mut String, secs: u64) -> fmt::Result {
    let time = i64::try_from(secs)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .ok_or(fmt::Error)?;
    write!(out, "{}", time.format("%Y-%m-%dT%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_796_016_296, "2026-11-30T05:24:56"),
            (4_107_542_399, "2100-02-28T23:59:59"),
        ] {
            let mut out = String::new();
            write_date_time(&mut out, secs).unwrap();
            assert_eq!(out, text, "{secs}");
        }
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(format: impl FnOnce(Sink) -> Box<dyn Subscriber + Send + Sync>) -> String {
        let sink = Sink::default();
        let subscriber = format(sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "access", method = "/basic.v1.BasicService/Hello", peer = "127.0.0.1:1", code = "OK", duration_us = 57_u64, "rpc");
            tracing::warn!(count = -3_i64, done = true, reason = ?Some(1), "a \"quoted\" {}", "message");
        });
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_look_like_tracing_subscribers_own() {
        let ours = lines(|sink| {
            Box::new(
                tracing_subscriber::fmt()
                    .with_writer(sink)
                    .event_format(TextLine::default())
                    .finish(),
            )
        });
        let theirs = lines(|sink| {
            Box::new(
                tracing_subscriber::fmt()
                    .with_writer(sink)
                    .with_ansi(false)
                    .finish(),
            )
        });
        // Times differ; the rest of each line is the same, but for strings, which
        // tracing-subscriber quotes as Debug and we write as they are.
        let strip = |text: &str| -> Vec<String> {
            text.lines()
                .map(|line| line.split_once(' ').unwrap().1.replace('"', ""))
                .collect()
        };
        assert_eq!(strip(&ours), strip(&theirs), "\n{ours}\n{theirs}");
        assert!(ours.contains(" INFO access: rpc method=/basic.v1.BasicService/Hello peer=127.0.0.1:1 code=OK duration_us=57\n"), "{ours}");
        let time = ours.split(' ').next().unwrap();
        assert_eq!(time.len(), "2026-11-30T05:38:16.671322Z".len(), "{time}");
        assert!(time.ends_with('Z'));
    }

    #[test]
    fn microseconds_are_zero_padded() {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt().with_writer(sink.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut out = String::new();
            let mut writer = Writer::new(&mut out);
            write_time(&mut writer, UNIX_EPOCH + Duration::from_micros(1_500_042)).unwrap();
            assert_eq!(out, "1970-01-01T00:00:01.500042Z");
            let mut out = String::new();
            let mut writer = Writer::new(&mut out);
            write_time(&mut writer, UNIX_EPOCH + Duration::from_micros(7)).unwrap();
            assert_eq!(out, "1970-01-01T00:00:00.000007Z");
        });
    }
}
