//! Background: N simulated calls with cumulative progress snapshots, each a CloudEvent.
//!
//! The stream sends a first STATE_PROCESS event with no responses, one STATE_PROCESS
//! snapshot after completions, and a final STATE_COMPLETE (or
//! STATE_COMPLETE_WITH_ERROR) event with every response. Completions that arrive while
//! the client is not reading are folded into the next snapshot, so a slow reader gets
//! fewer, fuller snapshots and memory stays bounded by the final snapshot.
//!
//! Each response is encoded once, when it completes ([`SnapshotEncoder`]); a snapshot is
//! then a short header plus a copy of those bytes, not a re-encoding of every response.

use std::time::SystemTime;

use futures::{FutureExt, StreamExt};
use pilota::{
    Bytes,
    pb::{EncodeLengthContext, Message},
};
use volo_gen::{
    basic::service::v1::{
        BackgroundResponse, BackgroundResponseEvent, SomeServiceData, SomeServiceResponse, State,
    },
    google::protobuf::Timestamp,
};
use volo_grpc::Status;

use super::{BasicHandler, ReplyStream};
use crate::{
    cloudevent::{envelope, pack_encoded, timestamp},
    simulator::{Outcome, Run},
};

/// CloudEvent `source` of Background messages.
pub(crate) const SOURCE: &str = "urn:service:basic";
/// CloudEvent `type` of Background messages.
pub(crate) const TYPE: &str = "basic.service.v1.BackgroundResponseEvent";

/// Checks `processes` and starts the call's stream.
pub(crate) fn background(
    handler: &BasicHandler,
    processes: i64,
) -> Result<ReplyStream<BackgroundResponse>, Status> {
    let n = worker_count(processes, handler.max_processes)?;
    let run = handler.simulator.run(n);
    Ok(progress(run))
}

/// `processes` when positive, else 1; above `max` is refused.
fn worker_count(processes: i64, max: u32) -> Result<u32, Status> {
    if processes > i64::from(max) {
        return Err(Status::invalid_argument(format!(
            "processes is {processes}; the maximum is {max}"
        )));
    }
    Ok(u32::try_from(processes)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(1))
}

fn progress(mut run: Run) -> ReplyStream<BackgroundResponse> {
    let mut snapshot = SnapshotEncoder::new(timestamp(SystemTime::now()), run.remaining());
    Box::pin(async_stream::stream! {
        yield Ok(snapshot.message(State::STATE_PROCESS, None));
        while let Some(outcome) = run.next().await {
            snapshot.push(&outcome);
            // Fold in whatever else has completed meanwhile: one snapshot for all of them.
            while let Some(Some(outcome)) = run.next().now_or_never() {
                snapshot.push(&outcome);
            }
            yield Ok(snapshot.message(State::STATE_PROCESS, None));
        }
        let state = if snapshot.failures() > 0 {
            State::STATE_COMPLETE_WITH_ERROR
        } else {
            State::STATE_COMPLETE
        };
        yield Ok(snapshot.message(state, Some(timestamp(SystemTime::now()))));
    })
}

/// The wire form of a finished simulated call.
pub(crate) fn to_response(outcome: &Outcome) -> SomeServiceResponse {
    let mut buf = uuid::Uuid::encode_buffer();
    let id = outcome.id.hyphenated().encode_lower(&mut buf).to_owned();
    match &outcome.result {
        Ok(protocol) => SomeServiceResponse {
            id,
            name: format!("service-{}", outcome.index),
            version: "v1".to_owned(),
            data: Some(SomeServiceData {
                value: protocol.as_str().to_owned(),
                r#type: "protocol".to_owned(),
            }),
        },
        Err(err) => SomeServiceResponse {
            id,
            name: "background-error".to_owned(),
            version: "v1".to_owned(),
            data: Some(SomeServiceData {
                value: err.to_string(),
                r#type: "error".to_owned(),
            }),
        },
    }
}

/// Builds the cumulative `BackgroundResponseEvent` of one call incrementally.
///
/// Field 4 (`responses`) is last in field order, and a repeated field's encoding is the
/// concatenation of its elements, so the encoded responses are kept and appended once;
/// each snapshot is `header ++ responses`, byte for byte what encoding the whole message
/// would give.
#[derive(Debug)]
pub(crate) struct SnapshotEncoder {
    started_at: Timestamp,
    /// `responses` entries (tag, length, message) encoded so far, in completion order.
    responses: Vec<u8>,
    count: usize,
    failures: usize,
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
        }
    }

    /// Adds one finished call.
    pub(crate) fn push(&mut self, outcome: &Outcome) {
        let entry = BackgroundResponseEvent {
            responses: vec![to_response(outcome)],
            ..Default::default()
        };
        self.responses
            .extend_from_slice(&entry.encode_to_vec(&mut EncodeLengthContext::default()));
        self.count += 1;
        self.failures += usize::from(outcome.result.is_err());
    }

    /// Failed calls among them.
    pub(crate) fn failures(&self) -> usize {
        self.failures
    }

    /// The encoded event for the current snapshot.
    pub(crate) fn encode(&self, state: State, completed_at: Option<Timestamp>) -> Bytes {
        let header = BackgroundResponseEvent {
            state,
            started_at: Some(self.started_at.clone()),
            completed_at: completed_at.clone(),
            responses: Vec::new(),
        };
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
    use uuid::Uuid;

    use super::*;
    use crate::simulator::{CallError, Protocol};

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
