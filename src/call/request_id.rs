//! Request ids: honour the caller's `x-request-id`, else make one; echo it in the reply.
//!
//! The pipeline takes the id when a call starts, writes it in the access log line and
//! returns it in the response headers, on errors too.

use http::{HeaderMap, HeaderValue};
use pilota::FastStr;

use super::wire::REQUEST_ID;

/// Longest caller-supplied id we keep; longer ones are replaced by a fresh id.
const MAX_LEN: usize = 128;

/// A call's request id, and the same as a metadata value to echo. The value is marked
/// sensitive, which tells HPACK not to index it: every call has its own id, and indexing
/// each would churn the connection's header table (and cost a search of it per call).
pub(crate) struct RequestId {
    pub(crate) id: FastStr,
    pub(crate) value: HeaderValue,
}

impl RequestId {
    /// The caller's id from `headers` if acceptable, else a fresh UUID.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        if let Some(value) = headers
            .get(&REQUEST_ID)
            .filter(|v| is_acceptable(v.as_bytes()))
        {
            // Checked printable ASCII, so it is also a valid string.
            if let Ok(text) = value.to_str() {
                let mut value = value.clone();
                value.set_sensitive(true);
                return Self {
                    id: FastStr::new(text),
                    value,
                };
            }
        }
        let mut buf = uuid::Uuid::encode_buffer();
        let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        // A UUID is always a valid metadata value.
        let mut value = text
            .parse()
            .unwrap_or_else(|_| HeaderValue::from_static("-"));
        value.set_sensitive(true);
        Self {
            id: FastStr::new(&*text),
            value,
        }
    }
}

/// A caller's id is kept if it is short printable ASCII (no spaces), so logs stay sane.
fn is_acceptable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_short_ids_are_kept_others_replaced() {
        assert!(is_acceptable(b"req-42"));
        assert!(is_acceptable(b"0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"has space"));
        assert!(!is_acceptable("x".repeat(129).as_bytes()));
    }

    #[test]
    fn a_callers_id_is_echoed_else_a_fresh_one_is_made() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-42"));
        let kept = RequestId::of(&headers);
        assert_eq!(kept.id, "req-42");
        assert_eq!(kept.value, "req-42");
        assert!(kept.value.is_sensitive());
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        let fresh = RequestId::of(&headers);
        assert_eq!(fresh.id.len(), 36);
        assert_eq!(fresh.value.to_str().unwrap(), fresh.id.as_str());
        assert!(fresh.value.is_sensitive());
    }
}
