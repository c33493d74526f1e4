//! Request ids: honour the caller's `x-request-id`, else make one; echo it in the reply.
//!
//! The id is put in the request's extensions as [`RequestId`] for later layers (the
//! access log) and returned in the response metadata, on errors too.

use pilota::FastStr;
use volo_grpc::{
    Request, Response, Status,
    body::BoxBody,
    context::ServerContext,
    metadata::{Ascii, MetadataValue},
};

use super::GrpcService;

/// The metadata key carrying the id, both ways.
pub const HEADER: &str = "x-request-id";

/// Longest caller-supplied id we keep; longer ones are replaced by a fresh id.
const MAX_LEN: usize = 128;

/// The request id of the current call, as stored in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub FastStr);

super::plain_layer! {
    /// Adds [`RequestId`] handling to every call.
    RequestIdLayer => RequestIdService
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for RequestIdService<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        mut req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        let id = req
            .metadata()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_acceptable(v))
            .map(FastStr::new)
            .unwrap_or_else(crate::cloudevent::new_id);
        // Checked above (or a UUID), so it is a valid header value.
        let value = id.parse::<MetadataValue<Ascii>>().ok();
        req.extensions_mut().insert(RequestId(id));
        let mut result = self.inner.call(cx, req).await;
        if let Some(value) = value {
            let metadata = match &mut result {
                Ok(resp) => resp.metadata_mut(),
                Err(status) => status.metadata_mut(),
            };
            metadata.insert(HEADER, value);
        }
        result
    }
}

/// A caller's id is kept if it is short printable ASCII (no spaces), so logs stay sane.
fn is_acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::is_acceptable;

    #[test]
    fn printable_short_ids_are_kept_others_replaced() {
        assert!(is_acceptable("req-42"));
        assert!(is_acceptable("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("has space"));
        assert!(!is_acceptable(&"x".repeat(129)));
    }
}
