//! Talk: one ELIZA conversation per bidirectional stream.
//!
//! The reply stream reads the next request only when the previous reply has been taken,
//! so replies go out in order, one per request, as soon as each is ready. No task is
//! spawned: the conversation lives inside the response stream and ends with it.

use futures::StreamExt;
use volo_gen::basic::service::v1::{TalkRequest, TalkResponse};
use volo_grpc::RecvStream;

use super::{BasicHandler, ReplyStream};
use crate::{call::status, eliza::Eliza};

/// The reply stream of one conversation.
pub(crate) fn talk(
    handler: &BasicHandler,
    mut requests: RecvStream<TalkRequest>,
) -> ReplyStream<TalkResponse> {
    let mut eliza = Eliza::new(handler.script.clone());
    let limit = handler.max_talk_message_bytes;
    Box::pin(async_stream::stream! {
        // Counts this conversation until the stream ends or is dropped.
        let _active = ConversationGauge::open();
        loop {
            let request = match requests.next().await {
                // Client half-close: the conversation ends with OK.
                None => break,
                Some(Err(status)) => {
                    yield Err(status);
                    break;
                }
                Some(Ok(request)) => request,
            };
            if request.message.len() > limit {
                yield Err(status::bad_request("message", format!(
                    "message is {} bytes; the limit is {limit} bytes",
                    request.message.len()
                )));
                break;
            }
            let reply = eliza.reply(&request.message);
            yield Ok(TalkResponse { answer: reply.text });
            if reply.goodbye {
                break;
            }
        }
    })
}

/// Keeps `basic_talk_conversations_active` up to date for one conversation.
struct ConversationGauge;

impl ConversationGauge {
    fn open() -> Self {
        metrics::gauge!("basic_talk_conversations_active").increment(1.0);
        Self
    }
}

impl Drop for ConversationGauge {
    fn drop(&mut self) {
        metrics::gauge!("basic_talk_conversations_active").decrement(1.0);
    }
}
