//! The access log: one `tracing` event per RPC, when its final status is known.
//!
//! Fields: method, peer, request id, gRPC code, duration, and the call's `trace_id` and
//! `span_id` when it has a trace ([`crate::ops::traces`]). The call pipeline writes the
//! line when the call ends ([`crate::call`]): for streams, when the response body ends
//! (or is dropped), so the duration and code cover the whole stream. Events use the
//! target `access`, so `RUST_LOG=info,access=off` silences them on their own.
//!
//! Lines of calls that did not end OK are rate-limited per code: at most
//! [`LINES_PER_SECOND`] a second each, so a flood of refused calls (a stall or auth
//! flood writes one per call) cannot fill a disk. The lines held back are counted; the
//! next line of that code that goes out carries `suppressed` (how many were held back
//! before it), and [`flush_suppressed`] reports what is left at shutdown. OK lines are
//! never held back, and metrics count every call either way.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use volo_grpc::Code;

use crate::{call::status::code_name, ops::traces::Ids};

/// Lines per second per code for calls that did not end OK.
pub(crate) const LINES_PER_SECOND: u32 = 20;

/// Writes the line of a call to `method` from `peer` that ended with `code` after
/// `elapsed` (nothing if the `access` target is off).
pub(crate) fn write(
    method: &str,
    peer: &str,
    request_id: &str,
    code: Code,
    elapsed: Duration,
    trace: Option<Ids>,
) {
    if !tracing::enabled!(target: "access", tracing::Level::WARN) {
        return;
    }
    // The call's trace and span ids, when it has them (`None` records no field).
    let trace_id = trace.as_ref().map(Ids::trace_id);
    let span_id = trace.as_ref().map(Ids::span_id);
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let code_name = code_name(code);
    if code == Code::Ok {
        // Strings and an integer, not `%display` values: no `fmt` work per field.
        tracing::info!(target: "access", method, peer, request_id, code = code_name, duration_us = micros, trace_id, span_id, "rpc");
        return;
    }
    let Some(suppressed) = limiter(code).admit(seconds()) else {
        return;
    };
    // Only on the line after some were held back (`None` records no field).
    let suppressed = (suppressed > 0).then_some(suppressed);
    if matches!(
        code,
        Code::Cancelled | Code::InvalidArgument | Code::NotFound
    ) {
        tracing::info!(target: "access", method, peer, request_id, code = code_name, duration_us = micros, suppressed, trace_id, span_id, "rpc");
    } else {
        tracing::warn!(target: "access", method, peer, request_id, code = code_name, duration_us = micros, suppressed, trace_id, span_id, "rpc");
    }
}

/// Logs, per code, the lines held back since the last one that went out (at shutdown).
pub(crate) fn flush_suppressed() {
    for (index, limiter) in LIMITERS.iter().enumerate() {
        let suppressed = limiter.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            let code = code_name(Code::from(index as i32));
            tracing::warn!(target: "access", code, suppressed, "access lines held back by the rate limit");
        }
    }
}

/// One per gRPC code (0 to 16).
static LIMITERS: [Limiter; 17] = [const { Limiter::new() }; 17];

fn limiter(code: Code) -> &'static Limiter {
    let index = usize::try_from(i32::from(code)).unwrap_or(0);
    LIMITERS.get(index).unwrap_or(&LIMITERS[0])
}

/// Whole seconds since the first line that asked.
fn seconds() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// A fixed one-second window: the first [`LINES_PER_SECOND`] lines in it go out.
#[derive(Debug)]
struct Limiter {
    /// The second the window is for.
    window: AtomicU64,
    /// Lines asked for in it.
    lines: AtomicU32,
    /// Lines held back since the last one that went out.
    suppressed: AtomicU64,
}

impl Limiter {
    const fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            lines: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back before this one)` if a line may go out in second `now`.
    fn admit(&self, now: u64) -> Option<u64> {
        let window = self.window.load(Ordering::Relaxed);
        if window != now
            && self
                .window
                .compare_exchange(window, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.lines.store(0, Ordering::Relaxed);
        }
        if self.lines.fetch_add(1, Ordering::Relaxed) < LINES_PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("basic_access_log_suppressed_total").increment(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_every_line_is_accounted_for() {
        let limiter = Limiter::new();
        let mut written = 0;
        let mut reported = 0;
        for second in 5..8 {
            for _ in 0..1000 {
                if let Some(suppressed) = limiter.admit(second) {
                    written += 1;
                    reported += suppressed;
                }
            }
        }
        assert_eq!(written, 3 * u64::from(LINES_PER_SECOND));
        // The first line of seconds 6 and 7 reported what the second before held back.
        let held = limiter.suppressed.load(Ordering::Relaxed);
        assert_eq!(written + reported + held, 3000);
        assert_eq!(held, 1000 - u64::from(LINES_PER_SECOND));
    }

    #[test]
    fn below_the_rate_nothing_is_held_back() {
        let limiter = Limiter::new();
        for second in 0..100 {
            for _ in 0..LINES_PER_SECOND {
                assert_eq!(limiter.admit(second), Some(0));
            }
        }
    }
}
