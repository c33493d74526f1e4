//! gRPC status helpers shared by the server, the client and the examples: the canonical
//! names of codes, reading a code from trailers, and the statuses the server itself ends
//! calls with.

use http::HeaderMap;
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
    fn every_code_has_its_canonical_name() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
