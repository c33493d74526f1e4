//! Deadlines: the caller's `grpc-timeout` bounds the whole call, streams included.
//!
//! volo's client timeout only covers the response headers, and the server has no
//! deadline for a stream's body. The pipeline ([`super::Pipeline::call`]) bounds both
//! with the deadline read here: the handler call, and the response body, which it ends with
//! DEADLINE_EXCEEDED trailers when time is up. Ending the body drops the stream, which
//! stops the work behind it (Background's workers, a Talk conversation). A client whose
//! own timer reset the stream first is still logged DEADLINE_EXCEEDED ([`slack`]).
//!
//! A malformed `grpc-timeout` is refused with INTERNAL "malformed grpc-timeout: ...",
//! as grpc-go does, rather than ignored (which would run the call with no deadline).

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;
use volo_grpc::Status;

use super::wire::TIMEOUT;

/// The deadline of a call that arrived at `now`, and how early a client's own timer may
/// fire before it ([`slack`]); `None` without `grpc-timeout` (or one too far away to
/// represent, up to 10^8 hours).
pub(crate) fn of(headers: &HeaderMap, now: Instant) -> Result<Option<(Instant, Duration)>, Status> {
    let Some(value) = headers.get(&TIMEOUT) else {
        return Ok(None);
    };
    let timeout = value
        .to_str()
        .map_err(|_| BadTimeout::NotAscii)
        .and_then(parse_grpc_timeout)
        .map_err(|err| Status::internal(format!("malformed grpc-timeout: {err}")))?;
    Ok(now
        .checked_add(timeout)
        .map(|deadline| (deadline, slack(timeout))))
}

/// A client's deadline timer starts before ours (its clock runs from before the headers
/// were sent), so its reset arrives at about our deadline, sometimes a little before.
/// A reset this close to the deadline is the deadline's doing: 20 ms, or a tenth of the
/// timeout if larger.
pub(crate) fn slack(timeout: Duration) -> Duration {
    (timeout / 10).max(Duration::from_millis(20))
}

/// Why a `grpc-timeout` value is malformed (the wording follows grpc-go's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadTimeout {
    #[error("timeout string is too short: {0:?}")]
    TooShort(String),
    #[error("timeout string is too long: {0:?}")]
    TooLong(String),
    #[error("timeout unit is not recognized: {0:?}")]
    Unit(String),
    #[error("timeout value is not a number: {0:?}")]
    Digits(String),
    #[error("timeout value is not ASCII")]
    NotAscii,
}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (H M S m u n).
pub(crate) fn parse_grpc_timeout(value: &str) -> Result<Duration, BadTimeout> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, _)) => value.split_at(i),
        None => ("", ""),
    };
    if digits.is_empty() {
        return Err(BadTimeout::TooShort(value.to_owned()));
    }
    if digits.len() > 8 {
        return Err(BadTimeout::TooLong(value.to_owned()));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadTimeout::Digits(value.to_owned()));
    }
    // At most 8 digits: fits in a u64, and no unit below can overflow it.
    let n: u64 = digits
        .parse()
        .map_err(|_| BadTimeout::Digits(value.to_owned()))?;
    Ok(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(BadTimeout::Unit(value.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_grpc_timeout("2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Ok(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Ok(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn malformed_values_are_errors_that_say_why() {
        for (bad, why) in [
            ("", "too short"),
            ("S", "too short"),
            ("123456789S", "too long"),
            ("5s", "unit"),
            ("5", "too short"),
            ("55", "unit"),
            ("-5S", "not a number"),
            ("5 S", "not a number"),
            ("1.5S", "not a number"),
            ("é", "too short"),
            ("1é", "unit"),
        ] {
            let err = parse_grpc_timeout(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
    }
}
