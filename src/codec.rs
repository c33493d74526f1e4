//! From request bodies to handler calls and from replies to response bodies, for
//! `basic.v1.BasicService`: volo-grpc's `CodecService`, with a cheaper reply encoder.
//!
//! volo-grpc encodes every reply message into a fresh 8 KiB buffer (with a list and a
//! vector of its own, three allocations) inside an `async_stream`, so each Talk reply
//! and each Hello costs a page of memory that lives until hyper has sent it. Here a
//! response stream encodes its messages one after another into one buffer ([`Encoded`]),
//! sized by the first message and reused, as tonic does. Decoding, the generated
//! dispatch to the handlers, and compressed replies (when the client accepts gzip or
//! zstd) stay volo-grpc's. Health and reflection keep volo-grpc's `CodecService`: they
//! are not on the hot path.

use std::{
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use crate::status;
use bytes::{BufMut, Bytes};
use http_body::{Body, Frame, SizeHint};
use linkedbytes::Node;
use pilota::{LinkedBytes, pb::Message};
use volo::context::Context as _;
use volo_gen::basic::v1::BasicServiceResponseSend;
use volo_grpc::{
    BoxStream, RecvEntryMessage, Request, Response, SendEntryMessage, Status,
    body::BoxBody,
    codec::{
        compression::{CompressionEncoding, ENCODING_HEADER},
        decode::Kind,
    },
    context::ServerContext,
};

/// The gRPC length prefix: 1 flag byte (0: not compressed) and a 4-byte length.
const PREFIX: usize = 5;

/// Replies that can become a response body.
pub trait Replies {
    /// The body of these replies, compressed with `compression` if set.
    fn into_reply_body(self, compression: Option<CompressionEncoding>) -> BoxBody;
}

impl Replies for BasicServiceResponseSend {
    fn into_reply_body(self, compression: Option<CompressionEncoding>) -> BoxBody {
        if compression.is_some() {
            // Compressed replies: volo-grpc's encoder (it owns the compressors).
            return volo_grpc::body::boxed(volo_grpc::body::Body::new(self.into_body(compression)));
        }
        match self {
            Self::Hello(replies) => Encoded::boxed(replies),
            Self::Talk(replies) => Encoded::boxed(replies),
            Self::Background(replies) => Encoded::boxed(replies),
        }
    }
}

/// Decodes requests for the generated service `S` and encodes its replies; see the
/// module docs. `T` and `U` are the generated request and reply enums.
pub struct Codec<S, T, U> {
    inner: S,
    /// What replies may be compressed with (the client's `grpc-accept-encoding` picks).
    send: Option<Vec<CompressionEncoding>>,
    /// What requests may be compressed with (`grpc-encoding`).
    accept: Option<Vec<CompressionEncoding>>,
    _messages: PhantomData<fn(T, U)>,
}

impl<S, T, U> Codec<S, T, U> {
    /// Codes for `inner`, with the compressions it may send and accept.
    pub fn new(inner: S, send: Vec<CompressionEncoding>, accept: Vec<CompressionEncoding>) -> Self {
        Self {
            inner,
            send: Some(send),
            accept: Some(accept),
            _messages: PhantomData,
        }
    }
}

impl<S, T, U> motore::Service<ServerContext, Request<BoxBody>> for Codec<S, T, U>
where
    S: motore::Service<ServerContext, Request<T>, Response = Response<U>> + Sync,
    S::Error: Into<Status>,
    T: RecvEntryMessage,
    U: Replies,
{
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        let (metadata, extensions, body) = req.into_parts();
        let send = CompressionEncoding::from_accept_encoding_header(metadata.headers(), &self.send);
        let accept = CompressionEncoding::from_encoding_header(metadata.headers(), &self.accept)?;
        let message = T::from_body(
            Some(cx.rpc_info().method().as_str()),
            body,
            Kind::Request,
            accept,
        )?;
        let resp = self
            .inner
            .call(cx, Request::from_parts(metadata, extensions, message))
            .await
            .map_err(Into::into)?;
        let mut resp = resp.map(|replies| replies.into_reply_body(send));
        if let Some(encoding) = send {
            resp.metadata_mut()
                .headers_mut()
                .insert(ENCODING_HEADER, encoding.into_header_value());
        }
        Ok(resp)
    }
}

/// The body of a stream of replies: each message framed and encoded into one buffer
/// that the next message reuses, then OK trailers, or the stream's error status.
pub struct Encoded<M> {
    replies: BoxStream<'static, Result<M, Status>>,
    /// Made for the first message, at its size.
    buf: Option<LinkedBytes>,
    /// Parts of a message still to send (messages with large zero-copy fields come in
    /// several parts).
    parts: std::collections::VecDeque<Bytes>,
    ended: bool,
}

impl<M: Message + Send + 'static> Encoded<M> {
    /// The body of `replies`.
    pub fn boxed(replies: BoxStream<'static, Result<M, Status>>) -> BoxBody {
        BoxBody::new(Encoded {
            replies,
            buf: None,
            parts: std::collections::VecDeque::new(),
            ended: false,
        })
    }
}

impl<M: Message> Encoded<M> {
    /// Frames `message` and returns its first part (the others wait in `parts`).
    fn encode(&mut self, message: &M) -> Result<Bytes, Status> {
        let mut ctx = pilota::pb::EncodeLengthContext::default();
        let len = message.encoded_len(&mut ctx);
        let Ok(prefix_len) = u32::try_from(len) else {
            return Err(Status::resource_exhausted(format!(
                "reply of {len} bytes is too large to send"
            )));
        };
        let copied = PREFIX + len - ctx.zero_copy_len;
        let buf = self
            .buf
            .get_or_insert_with(|| LinkedBytes::with_capacity(copied));
        buf.reserve(copied);
        buf.bytes_mut().put_u8(0);
        buf.bytes_mut().put_u32(prefix_len);
        message
            .encode(buf)
            .map_err(|err| Status::internal(format!("cannot encode the reply: {err}")))?;
        if buf.iter_list().next().is_none() {
            // The usual case: the whole message is in the buffer; split it off.
            return Ok(buf.bytes_mut().split().freeze());
        }
        // Zero-copy parts (large `bytes` fields) sit in the list; take them all, and
        // start the next message in a fresh buffer.
        let whole = std::mem::replace(buf, LinkedBytes::with_capacity(copied));
        self.parts.extend(whole.into_iter_list().filter_map(|node| {
            let bytes = match node {
                Node::Bytes(bytes) => bytes,
                Node::BytesMut(bytes) => bytes.freeze(),
                Node::FastStr(text) => text.into_bytes(),
            };
            (!bytes.is_empty()).then_some(bytes)
        }));
        Ok(self.parts.pop_front().unwrap_or_default())
    }

    /// The trailers that end the body with `status` (`None`: OK).
    fn end(&mut self, status: Option<&Status>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.ended = true;
        self.buf = None;
        Poll::Ready(Some(match status {
            None => Ok(Frame::trailers(status::ok_trailers())),
            Some(status) => status.to_header_map().map(Frame::trailers),
        }))
    }
}

impl<M: Message> Body for Encoded<M> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        // Every field is Unpin (the stream is boxed).
        let this = self.get_mut();
        if let Some(part) = this.parts.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(part))));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        match this.replies.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(message))) => match this.encode(&message) {
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(status) => this.end(Some(&status)),
            },
            Poll::Ready(Some(Err(status))) => this.end(Some(&status)),
            Poll::Ready(None) => this.end(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use volo_gen::basic::service::v1::TalkResponse;

    use volo_grpc::Code;

    use super::*;
    use crate::status::code_of;

    fn talk(
        answers: &[&str],
        end: Option<Status>,
    ) -> BoxStream<'static, Result<TalkResponse, Status>> {
        let mut items: Vec<Result<TalkResponse, Status>> = answers
            .iter()
            .map(|a| {
                Ok(TalkResponse {
                    answer: (*a).to_owned(),
                })
            })
            .collect();
        items.extend(end.map(Err));
        Box::pin(futures::stream::iter(items))
    }

    /// The body's data (all messages, framed) and its trailers' code.
    async fn collect(body: BoxBody) -> (Vec<u8>, Code) {
        let collected = body.collect().await.unwrap();
        let code = collected.trailers().map(code_of).unwrap();
        (collected.to_bytes().to_vec(), code)
    }

    /// What volo-grpc's own encoder makes of the same replies.
    async fn volo(replies: BoxStream<'static, Result<TalkResponse, Status>>) -> (Vec<u8>, Code) {
        let body = volo_grpc::body::boxed(volo_grpc::body::Body::new(
            volo_grpc::codec::encode::encode(replies, None),
        ));
        collect(body).await
    }

    #[tokio::test]
    async fn replies_are_framed_as_volo_frames_them() {
        let answers = ["How do you do.", "", &"x".repeat(20_000), "Please go on."];
        let ours = collect(Encoded::boxed(talk(&answers, None))).await;
        assert_eq!(ours, volo(talk(&answers, None)).await);
        assert_eq!(ours.1, Code::Ok);
        assert_eq!(&ours.0[..5], &[0, 0, 0, 0, 16]);
    }

    #[tokio::test]
    async fn an_error_ends_the_body_with_its_status() {
        let end = || Some(Status::invalid_argument("too long"));
        let ours = collect(Encoded::boxed(talk(&["Hello."], end()))).await;
        assert_eq!(ours, volo(talk(&["Hello."], end())).await);
        assert_eq!(ours.1, Code::InvalidArgument);
    }

    #[tokio::test]
    async fn large_zero_copy_fields_are_sent_in_parts_without_loss() {
        use volo_gen::cloudevents::v1::{CloudEvent, cloud_event::Data};
        let event = |n: u8| CloudEvent {
            id: format!("event-{n}"),
            data: Some(Data::BinaryData(Bytes::from(vec![n; 64 * 1024]))),
            ..CloudEvent::default()
        };
        let events = || -> BoxStream<'static, Result<CloudEvent, Status>> {
            Box::pin(futures::stream::iter([Ok(event(1)), Ok(event(2))]))
        };
        let ours = collect(Encoded::boxed(events())).await;
        let volo = collect(volo_grpc::body::boxed(volo_grpc::body::Body::new(
            volo_grpc::codec::encode::encode(events(), None),
        )))
        .await;
        assert_eq!(ours.1, Code::Ok);
        assert!(ours.0.len() > 2 * 64 * 1024);
        assert_eq!(ours, volo);
    }
}
