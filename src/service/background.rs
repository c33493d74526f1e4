//! Background: N simulated calls with cumulative progress snapshots, each a CloudEvent.
//!
//! The stream sends a first STATE_PROCESS event with no responses at once, then
//! STATE_PROCESS snapshots as results complete, and always a final STATE_COMPLETE (or
//! STATE_COMPLETE_WITH_ERROR) event with every response. Every snapshot is cumulative,
//! so a client that keeps only the latest message has everything. [`Pacing`] decides
//! when an intermediate snapshot goes: about five a second while results complete, and
//! never more bytes in all than 19 final snapshots. Results that complete meanwhile, or
//! while the client is not reading, are folded into the next snapshot.
//!
//! Each response is encoded once, when it completes ([`SnapshotEncoder`]); a snapshot is
//! then a short header plus a copy of those bytes, not a re-encoding of every response.

use std::{
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use futures::{FutureExt, StreamExt};
use opentelemetry::KeyValue;
use pilota::{
    Bytes, LinkedBytes,
    pb::{EncodeLengthContext, Message},
};
use tokio::time::Instant;
use volo_gen::{
    basic::service::v1::{
        BackgroundResponse, BackgroundResponseEvent, SomeServiceData, SomeServiceResponse, State,
    },
    google::protobuf::Timestamp,
};
use volo_grpc::Status;

use super::{
    BasicHandler, ReplyStream,
    pacing::{Next, Pacing},
};
use crate::{
    call::status,
    cloudevent::{envelope, pack_encoded, timestamp},
    ops::traces::{Children, Traced},
    simulator::{Outcome, Run},
};

/// CloudEvent `source` of Background messages.
pub(crate) const SOURCE: &str = "urn:service:basic";
/// CloudEvent `type` of Background messages.
pub(crate) const TYPE: &str = "basic.service.v1.BackgroundResponseEvent";

/// Checks `processes` and starts the call's stream; when the call is traced, each
/// simulated call becomes a child span of it (up to a bound, see [`Children`]).
pub(crate) fn background(
    handler: &BasicHandler,
    processes: i64,
    trace: Option<&Traced>,
) -> Result<ReplyStream<BackgroundResponse>, Status> {
    let n = worker_count(processes, handler.max_processes)?;
    let run = handler.simulator.run(n);
    Ok(progress(run, Children::of(trace)))
}

/// `processes` when positive, else 1; above `max` is refused.
fn worker_count(processes: i64, max: u32) -> Result<u32, Status> {
    if processes > i64::from(max) {
        return Err(status::bad_request(
            "processes",
            format!("processes is {processes}; the maximum is {max}"),
        ));
    }
    Ok(u32::try_from(processes)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(1))
}

fn progress(mut run: Run, mut children: Option<Children>) -> ReplyStream<BackgroundResponse> {
    let mut snapshot = SnapshotEncoder::new(timestamp(SystemTime::now()), run.remaining());
    Box::pin(async_stream::stream! {
        let first = snapshot.message(State::STATE_PROCESS, None);
        // What a message adds to its snapshot: the CloudEvent around it (within a few
        // bytes of varint growth, which the budget's margin covers).
        let envelope = wire_len(&first).saturating_sub(snapshot.len());
        let mut pacing = Pacing::new(Instant::now(), wire_len(&first));
        yield Ok(first);

        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed = false;
        let mut news = false;
        loop {
            tokio::select! {
                biased;
                outcome = run.next() => match outcome {
                    Some(outcome) => {
                        snapshot.push(&outcome);
                        trace_call(&mut children, &outcome);
                        // Fold in whatever else has completed meanwhile.
                        while let Some(Some(outcome)) = run.next().now_or_never() {
                            snapshot.push(&outcome);
                            trace_call(&mut children, &outcome);
                        }
                        news = true;
                    }
                    None => break,
                },
                () = &mut timer, if armed => armed = false,
            }
            if !news {
                continue;
            }
            let now = Instant::now();
            match pacing.next(now, snapshot.len() + envelope) {
                Next::Now => {
                    let message = snapshot.message(State::STATE_PROCESS, None);
                    pacing.sent(now, wire_len(&message));
                    news = false;
                    armed = false;
                    yield Ok(message);
                }
                Next::At(due) => {
                    if !armed {
                        timer.as_mut().reset(due);
                        armed = true;
                    }
                }
                // Only more results can make it go; they wake the loop.
                Next::Grow => armed = false,
            }
        }
        let state = if snapshot.failures() > 0 {
            State::STATE_COMPLETE_WITH_ERROR
        } else {
            State::STATE_COMPLETE
        };
        yield Ok(snapshot.message(state, Some(timestamp(SystemTime::now()))));
    })
}

/// The child span of a finished simulated call: CLIENT, the protocol it reported, or
/// status ERROR with why it failed.
fn trace_call(children: &mut Option<Children>, outcome: &Outcome) {
    let Some(children) = children else {
        return;
    };
    let index = i64::from(outcome.index);
    match &outcome.result {
        Ok(protocol) => children.record(
            "simulated call",
            || {
                vec![
                    KeyValue::new("basic.simulated.index", index),
                    KeyValue::new("basic.simulated.protocol", protocol.as_str()),
                ]
            },
            None,
        ),
        Err(err) => children.record(
            "simulated call",
            || {
                vec![
                    KeyValue::new("basic.simulated.index", index),
                    KeyValue::new("error.type", "simulated_failure"),
                ]
            },
            Some(err.to_string()),
        ),
    }
}

/// Bytes `message` takes on the wire: its encoding and the 5-byte gRPC prefix.
pub(crate) fn wire_len(message: &BackgroundResponse) -> usize {
    5 + message.encoded_len(&mut EncodeLengthContext::default())
}

/// The wire form of a finished simulated call.
#[cfg(test)]
pub(crate) fn to_response(outcome: &Outcome) -> SomeServiceResponse {
    let mut response = SomeServiceResponse::default();
    fill_response(outcome, &mut response);
    response
}

/// Writes the wire form of a finished simulated call into `response`, reusing its
/// strings' buffers.
fn fill_response(outcome: &Outcome, response: &mut SomeServiceResponse) {
    fn set(field: &mut String, value: &str) {
        field.clear();
        field.push_str(value);
    }
    let mut id = uuid::Uuid::encode_buffer();
    set(
        &mut response.id,
        outcome.id.hyphenated().encode_lower(&mut id),
    );
    set(&mut response.version, "v1");
    let data = response.data.get_or_insert_with(SomeServiceData::default);
    match &outcome.result {
        Ok(protocol) => {
            set(&mut response.name, "service-");
            response
                .name
                .push_str(itoa::Buffer::new().format(outcome.index));
            set(&mut data.value, protocol.as_str());
            set(&mut data.r#type, "protocol");
        }
        Err(err) => {
            set(&mut response.name, "background-error");
            data.value.clear();
            // Writing to a String cannot fail.
            let _ = write!(data.value, "{err}");
            set(&mut data.r#type, "error");
        }
    }
}

/// Builds the cumulative `BackgroundResponseEvent` of one call incrementally.
///
/// Field 4 (`responses`) is last in field order, and a repeated field's encoding is the
/// concatenation of its elements, so the encoded responses are kept and appended once;
/// each snapshot is `header ++ responses`, byte for byte what encoding the whole message
/// would give.
pub(crate) struct SnapshotEncoder {
    started_at: Timestamp,
    /// `responses` entries (tag, length, message) encoded so far, in completion order.
    responses: Vec<u8>,
    count: usize,
    failures: usize,
    /// An event holding just the call being added, and the buffer it is encoded into:
    /// both reused, so adding a call allocates nothing once their buffers have grown.
    entry: BackgroundResponseEvent,
    scratch: LinkedBytes,
}

impl SnapshotEncoder {
    /// An empty snapshot of a call started at `started_at`, expecting about `n` responses.
    pub(crate) fn new(started_at: Timestamp, n: usize) -> Self {
        Self {
            started_at,
            // ~70 bytes per encoded response; capped so a huge n does not reserve up front.
            responses: Vec::with_capacity(n.min(1024) * 72),
            count: 0,
            failures: 0,
            entry: BackgroundResponseEvent {
                responses: vec![SomeServiceResponse::default()],
                ..Default::default()
            },
            scratch: LinkedBytes::with_capacity(128),
        }
    }

    /// Adds one finished call.
    pub(crate) fn push(&mut self, outcome: &Outcome) {
        if let Some(response) = self.entry.responses.first_mut() {
            fill_response(outcome, response);
        }
        self.scratch.bytes_mut().clear();
        self.entry.encode_raw(&mut self.scratch);
        if self.scratch.iter_list().next().is_none() {
            self.responses.extend_from_slice(self.scratch.bytes());
        } else {
            // Large fields are linked rather than copied (never the case for these
            // short strings): take them all, and start the next call afresh.
            let whole = std::mem::replace(&mut self.scratch, LinkedBytes::with_capacity(128));
            self.responses.extend_from_slice(&whole.concat());
        }
        self.count += 1;
        self.failures += usize::from(outcome.result.is_err());
    }

    /// Failed calls among them.
    pub(crate) fn failures(&self) -> usize {
        self.failures
    }

    /// Length of the encoded event for the current snapshot (without `completed_at`).
    pub(crate) fn len(&self) -> usize {
        self.header(State::STATE_PROCESS, None)
            .encoded_len(&mut EncodeLengthContext::default())
            + self.responses.len()
    }

    fn header(&self, state: State, completed_at: Option<Timestamp>) -> BackgroundResponseEvent {
        BackgroundResponseEvent {
            state,
            started_at: Some(self.started_at.clone()),
            completed_at,
            responses: Vec::new(),
        }
    }

    /// The encoded event for the current snapshot.
    pub(crate) fn encode(&self, state: State, completed_at: Option<Timestamp>) -> Bytes {
        let header = self.header(state, completed_at);
        let mut ctx = EncodeLengthContext::default();
        let mut bytes = Vec::with_capacity(header.encoded_len(&mut ctx) + self.responses.len());
        bytes.extend_from_slice(&header.encode_to_vec(&mut ctx));
        bytes.extend_from_slice(&self.responses);
        Bytes::from(bytes)
    }

    /// The current snapshot as a Background message.
    pub(crate) fn message(
        &self,
        state: State,
        completed_at: Option<Timestamp>,
    ) -> BackgroundResponse {
        let payload = pack_encoded::<BackgroundResponseEvent>(self.encode(state, completed_at));
        BackgroundResponse {
            cloud_event: Some(envelope(
                SOURCE,
                TYPE,
                payload,
                timestamp(SystemTime::now()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;

    use uuid::Uuid;

    use super::*;
    use crate::{
        cloudevent::{proto_data, unpack},
        simulator::{CallError, Protocol, SimConfig, Simulator},
    };

    /// One message as a reader saw it: when, how many results, bytes on the wire.
    #[derive(Debug)]
    struct Seen {
        at: Duration,
        results: usize,
        bytes: usize,
        state: State,
    }

    fn simulator(delay: RangeInclusive<Duration>, seed: u64) -> Simulator {
        Simulator::new(SimConfig {
            delay,
            failure_rate: 0.01,
            seed: Some(seed),
        })
    }

    /// Reads a whole Background stream of `n` calls, pausing `reader` after each message.
    async fn read_all(sim: &Simulator, n: u32, reader: Duration) -> Vec<Seen> {
        let start = Instant::now();
        let mut stream = progress(sim.run(n), None);
        let mut seen = Vec::new();
        let mut previous = Vec::new();
        while let Some(message) = stream.next().await {
            let message = message.unwrap();
            let event: BackgroundResponseEvent =
                unpack(proto_data(message.cloud_event.as_ref().unwrap()).unwrap()).unwrap();
            // Cumulative: every snapshot starts with the previous one's results.
            assert_eq!(&event.responses[..previous.len()], &previous[..]);
            seen.push(Seen {
                at: start.elapsed(),
                results: event.responses.len(),
                bytes: wire_len(&message),
                state: event.state,
            });
            previous = event.responses;
            tokio::time::sleep(reader).await;
        }
        seen
    }

    fn check_bound(seen: &[Seen], n: u32) {
        let last = seen.last().unwrap();
        assert_eq!(last.results, n as usize);
        assert_ne!(last.state, State::STATE_PROCESS);
        let total: usize = seen.iter().map(|s| s.bytes).sum();
        assert!(
            total <= 20 * last.bytes,
            "n={n}: {total} bytes in {} messages, final {} ({:.1}x)",
            seen.len(),
            last.bytes,
            total as f64 / last.bytes as f64
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_snapshot_is_empty_and_immediate_and_the_last_complete() {
        for n in [1, 2, 50] {
            let seen = read_all(&simulator(DEFAULT_DELAY, 1), n, Duration::ZERO).await;
            assert_eq!((seen[0].results, seen[0].at), (0, Duration::ZERO));
            assert_eq!(seen[0].state, State::STATE_PROCESS);
            check_bound(&seen, n);
        }
    }

    const DEFAULT_DELAY: RangeInclusive<Duration> = SimConfig::DELAY_MIN..=SimConfig::DELAY_MAX;

    #[tokio::test(start_paused = true)]
    async fn snapshots_come_five_a_second_while_results_complete() {
        let seen = read_all(&simulator(DEFAULT_DELAY, 2), 5_000, Duration::ZERO).await;
        let (last, middle) = seen[1..].split_last().unwrap();
        // Results complete from 1 s to 3 s: about ten snapshots, none more than 200 ms
        // (and a completion) apart, none closer.
        assert!((9..=12).contains(&middle.len()), "{seen:?}");
        for pair in middle.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Pacing::INTERVAL && gap <= Pacing::INTERVAL + Duration::from_millis(5),
                "{seen:?}"
            );
        }
        assert!(middle[0].at <= SimConfig::DELAY_MIN + Duration::from_millis(5));
        assert!(last.at <= SimConfig::DELAY_MAX + Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn wire_bytes_stay_within_20x_the_final_snapshot() {
        let long = Duration::ZERO..=Duration::from_secs(120);
        for (delay, n) in [
            (DEFAULT_DELAY, 10),
            (DEFAULT_DELAY, 1_000),
            (DEFAULT_DELAY, 20_000),
            (long.clone(), 10),
            (long.clone(), 1_000),
            (long, 20_000),
        ] {
            for reader in [0, 30, 400, 5_000].map(Duration::from_millis) {
                let seen = read_all(&simulator(delay.clone(), 3), n, reader).await;
                check_bound(&seen, n);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn results_spread_over_minutes_still_show_progress() {
        // The byte budget binds here; snapshots then come as the results grow by ~6 %.
        let long = Duration::ZERO..=Duration::from_secs(600);
        let seen = read_all(&simulator(long, 4), 10_000, Duration::ZERO).await;
        check_bound(&seen, 10_000);
        let gaps: Vec<usize> = seen
            .windows(2)
            .map(|w| w[1].results - w[0].results)
            .collect();
        // Never a jump of more than a tenth of the work between two snapshots.
        assert!(gaps.iter().all(|g| *g <= 1_000), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_stream_stops_every_worker() {
        let sim = simulator(DEFAULT_DELAY, 5);
        let mut stream = progress(sim.run(1_000), None);
        stream.next().await.unwrap().unwrap();
        stream.next().await.unwrap().unwrap();
        assert!(sim.active_workers() > 0);
        drop(stream);
        assert_eq!(sim.active_workers(), 0);
    }

    fn outcome(index: u32, result: Result<Protocol, CallError>) -> Outcome {
        Outcome {
            id: Uuid::new_v4(),
            index,
            result,
        }
    }

    #[test]
    fn processes_zero_or_negative_means_one() {
        assert_eq!(worker_count(0, 10).unwrap(), 1);
        assert_eq!(worker_count(-5, 10).unwrap(), 1);
        assert_eq!(worker_count(10, 10).unwrap(), 10);
    }

    #[test]
    fn processes_above_the_maximum_is_invalid_argument() {
        let status = worker_count(11, 10).unwrap_err();
        assert_eq!(status.code(), volo_grpc::Code::InvalidArgument);
        assert!(
            status.message().contains("maximum is 10"),
            "{}",
            status.message()
        );
        assert!(worker_count(i64::MAX, 10).is_err());
    }

    #[test]
    fn incremental_encoding_equals_encoding_the_whole_message() {
        let started_at = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        let outcomes = [
            outcome(2, Ok(Protocol::Grpc)),
            outcome(
                1,
                Err(CallError::Simulated {
                    index: 1,
                    elapsed_ms: 3,
                }),
            ),
            outcome(3, Ok(Protocol::Mqtt)),
        ];
        let mut encoder = SnapshotEncoder::new(started_at.clone(), outcomes.len());
        for o in &outcomes {
            encoder.push(o);
        }
        let completed_at = Some(Timestamp {
            seconds: 1_700_000_003,
            nanos: 0,
        });
        let whole = BackgroundResponseEvent {
            state: State::STATE_COMPLETE_WITH_ERROR,
            started_at: Some(started_at),
            completed_at: completed_at.clone(),
            responses: outcomes.iter().map(to_response).collect(),
        };
        assert_eq!(
            encoder
                .encode(State::STATE_COMPLETE_WITH_ERROR, completed_at)
                .as_ref(),
            whole
                .encode_to_vec(&mut EncodeLengthContext::default())
                .as_slice()
        );
        assert_eq!(encoder.count, 3);
        assert_eq!(encoder.failures(), 1);
    }

    #[test]
    fn failures_become_background_error_responses() {
        let r = to_response(&outcome(
            4,
            Err(CallError::Simulated {
                index: 4,
                elapsed_ms: 9,
            }),
        ));
        assert_eq!(r.name, "background-error");
        assert_eq!(r.version, "v1");
        let data = r.data.unwrap();
        assert_eq!(data.r#type, "error");
        assert_eq!(data.value, "service-4: simulated failure after 9 ms");
    }
}
