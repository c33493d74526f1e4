//! gRPC status helpers shared by the server, the client and the examples: the canonical
//! names of codes, reading a code from trailers, and the statuses the server itself ends
//! calls with.
//!
//! Some errors carry rich details (`google.rpc.Status` in `grpc-status-details-bin`, the
//! `details` of a Connect error), from `idl/google/rpc/`: a bad request names the field
//! and its limit ([`bad_request`], `google.rpc.BadRequest`), a shed call says when to
//! retry ([`retry_later`], `google.rpc.RetryInfo`).

use std::time::Duration;

use http::HeaderMap;
use pilota::{
    FastStr,
    pb::{EncodeLengthContext, Message},
};
use volo_gen::google::{
    protobuf::{self, Any},
    rpc::{self, BadRequest, RetryInfo, bad_request::FieldViolation},
};
use volo_grpc::{Code, Status};

/// The canonical upper-case name of a gRPC code, as other gRPC stacks log it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The gRPC code in `headers` (`grpc-status`), UNKNOWN if absent or malformed.
pub fn code_of(headers: &HeaderMap) -> Code {
    headers
        .get(&super::wire::STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
        .unwrap_or(Code::Unknown)
}

/// The trailers of a call that ended OK: `grpc-status: 0`, and nothing to encode.
pub fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(super::wire::STATUS, http::HeaderValue::from_static("0"));
    trailers
}

/// A call to a method this server does not have.
pub fn unknown_method(path: &str) -> Status {
    Status::unimplemented(format!("unknown method {path}"))
}

/// Open streams end with this when the server stops before they finish.
pub fn shutting_down() -> Status {
    Status::unavailable("server is shutting down; retry the call")
}

/// A call whose deadline (`grpc-timeout`) has passed.
pub fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("deadline exceeded")
}

/// INVALID_ARGUMENT for the request field `field`, whose value `description` says is
/// wrong (and the limit it broke), with a `google.rpc.BadRequest` naming both.
pub fn bad_request(field: &'static str, description: String) -> Status {
    let detail = BadRequest {
        field_violations: vec![FieldViolation {
            field: FastStr::from_static_str(field),
            description: FastStr::new(&description),
            ..Default::default()
        }],
    };
    with_detail(
        Code::InvalidArgument,
        description,
        "type.googleapis.com/google.rpc.BadRequest",
        &detail,
    )
}

/// RESOURCE_EXHAUSTED for a call refused for load, with a `google.rpc.RetryInfo` saying to
/// retry after `delay`.
pub fn retry_later(message: String, delay: Duration) -> Status {
    let detail = RetryInfo {
        retry_delay: Some(protobuf::Duration {
            seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
        }),
    };
    with_detail(
        Code::ResourceExhausted,
        message,
        "type.googleapis.com/google.rpc.RetryInfo",
        &detail,
    )
}

/// A status whose details are a `google.rpc.Status` of the same code and message, with
/// `detail` (of type `type_url`) as its one detail.
fn with_detail<M: Message>(
    code: Code,
    message: String,
    type_url: &'static str,
    detail: &M,
) -> Status {
    let details = rpc::Status {
        code: i32::from(code),
        message: FastStr::new(&message),
        details: vec![Any {
            type_url: FastStr::from_static_str(type_url),
            value: detail
                .encode_to_vec(&mut EncodeLengthContext::default())
                .into(),
        }],
    };
    let encoded = details.encode_to_vec(&mut EncodeLengthContext::default());
    Status::with_details(code, message, encoded.into())
}

/// The details of `status` (a `google.rpc.Status`), each as its type's full name and
/// its encoded value; empty if it has none or they do not decode.
pub fn details_of(status: &Status) -> Vec<(FastStr, pilota::Bytes)> {
    if status.details().is_empty() {
        return Vec::new();
    }
    match rpc::Status::decode(pilota::Bytes::copy_from_slice(status.details())) {
        Ok(decoded) => decoded
            .details
            .into_iter()
            .map(|any| {
                let name = match any.type_url.rsplit_once('/') {
                    Some((_, name)) => FastStr::new(name),
                    None => any.type_url,
                };
                (name, any.value)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A handler panicked; what happened is logged, not sent.
pub fn internal() -> Status {
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_trailers() {
        let mut trailers = HeaderMap::new();
        assert_eq!(code_of(&trailers), Code::Unknown);
        trailers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(code_of(&trailers), Code::NotFound);
        trailers.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(code_of(&trailers), Code::Unknown);
    }

    #[test]
    fn ok_trailers_are_what_an_ok_status_makes() {
        assert_eq!(
            ok_trailers(),
            Status::new(Code::Ok, "").to_header_map().unwrap()
        );
    }

    #[test]
    fn a_bad_request_names_its_field_in_its_details() {
        let status = bad_request("processes", "processes is 9; the maximum is 5".into());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "processes is 9; the maximum is 5");
        let decoded = rpc::Status::decode(pilota::Bytes::copy_from_slice(status.details()))
            .expect("a google.rpc.Status");
        assert_eq!(decoded.code, 3);
        assert_eq!(decoded.message, status.message());
        let details = details_of(&status);
        assert_eq!(details.len(), 1);
        assert_eq!(details[0].0, "google.rpc.BadRequest");
        let detail = BadRequest::decode(details[0].1.clone()).expect("a BadRequest");
        assert_eq!(detail.field_violations[0].field, "processes");
        assert_eq!(
            detail.field_violations[0].description,
            "processes is 9; the maximum is 5"
        );
    }

    #[test]
    fn a_shed_call_says_when_to_retry() {
        let status = retry_later("busy".into(), Duration::from_millis(1500));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = details_of(&status);
        assert_eq!(details[0].0, "google.rpc.RetryInfo");
        let detail = RetryInfo::decode(details[0].1.clone()).expect("a RetryInfo");
        let delay = detail.retry_delay.expect("a delay");
        assert_eq!((delay.seconds, delay.nanos), (1, 500_000_000));
        assert!(details_of(&Status::internal("x")).is_empty());
    }

    #[test]
    fn every_code_has_its_canonical_name() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
