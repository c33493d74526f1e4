//! Hello: a greeting wrapped in a CloudEvent.

use std::time::SystemTime;

use volo_gen::basic::service::v1::{HelloResponse, HelloResponseEvent};

use crate::cloudevent::{envelope, pack, timestamp};

/// CloudEvent `source` of Hello replies.
pub(crate) const SOURCE: &str = "basic.v1.BasicService/Hello";
/// CloudEvent `type` of Hello replies.
pub(crate) const TYPE: &str = "basic.service.v1.HelloResponse";

/// `Hello, <message>` in a CloudEvent (any message is fine, the empty one too).
pub(crate) fn hello(message: &str) -> HelloResponse {
    let mut greeting = String::with_capacity(7 + message.len());
    greeting.push_str("Hello, ");
    greeting.push_str(message);
    let payload = pack(&HelloResponseEvent { greeting });
    HelloResponse {
        cloud_event: Some(envelope(
            SOURCE,
            TYPE,
            payload,
            timestamp(SystemTime::now()),
        )),
    }
}
