//! Requests to handler calls and replies to response bodies: the [`Calls`] that the
//! generated `serve_*` functions run each RPC through, one method per stream shape.
//!
//! - One request message (unary and server-streaming RPCs) is read by [`read_one`]: the
//!   body's bytes are gathered in a buffer of the size they need and the message decoded
//!   from it. (volo-grpc's `RecvStream` allocates 8 KiB per call for that, and its
//!   generated dispatch boxes a one-message stream around it.) A stream of requests is a
//!   volo-grpc `RecvStream`: the generated traits' signatures ask for one.
//! - Replies are encoded by [`Encoded`]: a stream's messages one after another into one
//!   buffer, sized by the first message and reused while they come in a burst (a stream
//!   that waits gives it back), as tonic does. volo-grpc encodes each message into a
//!   fresh 8 KiB buffer. Compressed replies (when the client accepts gzip or zstd) are
//!   volo-grpc's.
//!
//! The request body arrives checked and decompressed ([`super::request`]).

use std::{
    future::poll_fn,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::Stream;
use http_body::{Body, Frame, SizeHint};
use linkedbytes::Node;
use pilota::{LinkedBytes, pb::Message};
use volo_gen::rpc::{Calls, Replies};
use volo_grpc::{
    Code, RecvStream, Request, Response, Status,
    body::BoxBody,
    codec::{compression::ENCODING_HEADER, decode::Kind},
    metadata::MetadataMap,
};

use crate::ops::traces::Traced;

use super::{
    status,
    wire::{COMPRESSED, Encoding, PREFIX, UNCOMPRESSED, prefix},
};

/// One call's request, ready for its handler: metadata, extensions, the checked body,
/// the compression its replies get, and its span when the call is traced (handlers find
/// it in their request's extensions; each streamed reply adds an event to it).
pub(crate) struct Incoming {
    metadata: MetadataMap,
    extensions: http::Extensions,
    body: BoxBody,
    reply_encoding: Option<Encoding>,
    trace: Option<Traced>,
}

impl Incoming {
    pub(crate) fn new(
        headers: http::HeaderMap,
        extensions: http::Extensions,
        body: BoxBody,
        reply_encoding: Option<Encoding>,
        trace: Option<Traced>,
    ) -> Self {
        Self {
            metadata: MetadataMap::from_headers(headers),
            extensions,
            body,
            reply_encoding,
            trace,
        }
    }

    /// The request's extensions, with the call's span if it is traced.
    fn extensions(&mut self) -> http::Extensions {
        let mut extensions = std::mem::take(&mut self.extensions);
        if let Some(trace) = &self.trace {
            extensions.insert(trace.clone());
        }
        extensions
    }

    /// The response of a handler's `reply` (one message or a stream of them).
    fn respond<S, M>(reply: Response<S>, encoding: Option<Encoding>) -> Response<BoxBody>
    where
        S: Stream<Item = Result<M, Status>> + Send + Unpin + 'static,
        M: Message + Send + 'static,
    {
        let mut resp = reply.map(|replies| match encoding {
            None => Encoded::boxed(replies),
            // Compressed replies: volo-grpc's encoder (it owns the compressors).
            Some(encoding) => volo_grpc::body::boxed(volo_grpc::body::Body::new(
                volo_grpc::codec::encode::encode(replies, Some(encoding.volo())),
            )),
        });
        if let Some(encoding) = encoding {
            resp.metadata_mut().headers_mut().insert(
                ENCODING_HEADER,
                http::HeaderValue::from_static(encoding.name()),
            );
        }
        resp
    }
}

/// One reply as a stream (without a box).
fn one<M>(reply: M) -> futures::stream::Iter<std::option::IntoIter<Result<M, Status>>> {
    futures::stream::iter(Some(Ok(reply)))
}

impl Calls for Incoming {
    type Reply = Response<BoxBody>;

    async fn request<Req>(&mut self) -> Result<Request<Req>, Status>
    where
        Req: Message + Default + Send + 'static,
    {
        let metadata = std::mem::take(&mut self.metadata);
        let body = std::mem::take(&mut self.body);
        let (metadata, message) = read_one(metadata, body).await?;
        let extensions = self.extensions();
        Ok(Request::from_parts(metadata, extensions, message))
    }

    fn requests<Req>(&mut self) -> Request<RecvStream<Req>>
    where
        Req: Message + Default + Send + 'static,
    {
        let body = std::mem::take(&mut self.body);
        let requests = RecvStream::new(body, Kind::Request, None);
        let extensions = self.extensions();
        Request::from_parts(std::mem::take(&mut self.metadata), extensions, requests)
    }

    fn reply<Resp>(self, reply: Response<Resp>) -> Response<BoxBody>
    where
        Resp: Message + Send + 'static,
    {
        Self::respond(reply.map(one), self.reply_encoding)
    }

    fn replies<Resp>(self, replies: Response<Replies<Resp>>) -> Response<BoxBody>
    where
        Resp: Message + Send + 'static,
    {
        match self.trace {
            // Untraced (the usual case): the replies as they are, no wrapper per message.
            None => Self::respond(replies, self.reply_encoding),
            Some(trace) => {
                let replies = replies.map(|replies| Sent {
                    replies,
                    trace,
                    count: 0,
                });
                Self::respond(replies, self.reply_encoding)
            }
        }
    }

    fn unknown(self) -> Status {
        status::unknown_method("(a method index the table does not have)")
    }
}

/// A stream of replies that adds a `message` event to the call's span per reply.
struct Sent<S> {
    replies: S,
    trace: Traced,
    count: u64,
}

impl<S: Stream + Unpin> Stream for Sent<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let next = Pin::new(&mut self.replies).poll_next(cx);
        if let Poll::Ready(Some(_)) = &next {
            self.count += 1;
            self.trace.sent(self.count);
        }
        next
    }
}

/// The status of a unary call whose body held no message (volo-grpc's wording).
fn missing() -> Status {
    Status::new(Code::Internal, "Missing request message.")
}

/// Reads the one request message of a call, as volo-grpc's generated code does: the
/// first message is the request; the rest of the body is read too (later messages are
/// decoded and dropped) and request trailers, if any, join the metadata.
async fn read_one<M: Message + Default>(
    mut metadata: MetadataMap,
    body: BoxBody,
) -> Result<(MetadataMap, M), Status> {
    let mut messages = Messages {
        body,
        buf: BytesMut::new(),
        ended: false,
        trailers: None,
    };
    let message = messages.next::<M>().await?.ok_or_else(missing)?;
    while messages.next::<M>().await?.is_some() {}
    if let Some(trailers) = messages.trailers {
        metadata.merge(MetadataMap::from_headers(trailers));
    }
    Ok((metadata, message))
}

/// Uncompressed gRPC messages from a request body.
struct Messages {
    body: BoxBody,
    /// Bytes of messages not yet decoded; grows as data arrives (amortised), never
    /// ahead of it, so a length prefix alone allocates nothing.
    buf: BytesMut,
    ended: bool,
    trailers: Option<http::HeaderMap>,
}

impl Messages {
    /// The next message; `None` at the end of the body.
    async fn next<M: Message + Default>(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(message) = self.take()? {
                return M::decode(message)
                    .map(Some)
                    .map_err(|err| Status::new(Code::Internal, err.to_string()));
            }
            if self.ended {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Status::new(
                        Code::Internal,
                        "Unexpected EOF decoding stream.",
                    ))
                };
            }
            match poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        self.trailers = frame.into_trailers().ok();
                        self.ended = true;
                    }
                },
                // A request the client cancelled ends, as in volo-grpc's decoder.
                Some(Err(status)) if status.code() == Code::Cancelled => self.ended = true,
                Some(Err(status)) => return Err(status),
                None => self.ended = true,
            }
        }
    }

    /// The payload of the first message in `buf`, if it is all there.
    fn take(&mut self) -> Result<Option<Bytes>, Status> {
        let Some((flag, len)) = prefix(&self.buf) else {
            return Ok(None);
        };
        match flag {
            UNCOMPRESSED => {}
            COMPRESSED => {
                return Err(Status::new(
                    Code::Internal,
                    "protocol error: received message with compressed-flag but no \
                     grpc-encoding was specified",
                ));
            }
            flag => {
                return Err(Status::new(
                    Code::Internal,
                    format!(
                        "protocol error: received message with invalid compression flag: \
                         {flag} (valid flags are 0 and 1), while sending request"
                    ),
                ));
            }
        }
        if self.buf.len() - PREFIX < len {
            return Ok(None);
        }
        self.buf.advance(PREFIX);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// The body of a stream of replies: each message framed and encoded into one buffer
/// that the next message reuses, then OK trailers, or the stream's error status.
pub(crate) struct Encoded<S> {
    replies: S,
    /// Made for the first message, at its size; dropped while the stream waits.
    buf: Option<LinkedBytes>,
    /// Parts of a message still to send (messages with large zero-copy fields come in
    /// several parts).
    parts: std::collections::VecDeque<Bytes>,
    ended: bool,
}

impl<S, M> Encoded<S>
where
    S: Stream<Item = Result<M, Status>> + Send + Unpin + 'static,
    M: Message + Send + 'static,
{
    /// The body of `replies`.
    pub(crate) fn boxed(replies: S) -> BoxBody {
        BoxBody::new(Encoded {
            replies,
            buf: None,
            parts: std::collections::VecDeque::new(),
            ended: false,
        })
    }
}

impl<S> Encoded<S> {
    /// Frames `message` and returns its first part (the others wait in `parts`).
    fn encode<M: Message>(&mut self, message: &M) -> Result<Bytes, Status> {
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
        buf.bytes_mut().put_u8(UNCOMPRESSED);
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

impl<S, M> Body for Encoded<S>
where
    S: Stream<Item = Result<M, Status>> + Unpin,
    M: Message,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        // Every field is Unpin (the stream too, by the bound).
        let this = self.get_mut();
        if let Some(part) = this.parts.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(part))));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.replies).poll_next(cx) {
            Poll::Pending => {
                // A stream that waits (a conversation between two messages) gives its
                // buffer back: an idle stream holds no encoder memory. Replies that come
                // in a burst keep reusing it.
                this.buf = None;
                Poll::Pending
            }
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
    use volo_gen::basic::service::v1::{HelloRequest, TalkResponse};

    use volo_grpc::BoxStream;

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

    /// The frames of a request body.
    type Frames = Vec<Result<Frame<Bytes>, Status>>;

    /// A request body of these frames.
    fn request(frames: Frames) -> BoxBody {
        BoxBody::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )))
    }

    /// `payload` with its gRPC prefix (flag `flag`).
    fn framed(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn data(bytes: &[u8]) -> Result<Frame<Bytes>, Status> {
        Ok(Frame::data(Bytes::copy_from_slice(bytes)))
    }

    async fn hello(frames: Frames) -> Result<(MetadataMap, HelloRequest), Status> {
        read_one::<HelloRequest>(MetadataMap::new(), request(frames)).await
    }

    /// `HelloRequest { message: "Ada" }`.
    const ADA: &[u8] = b"\x0a\x03Ada";

    #[tokio::test]
    async fn a_unary_request_is_read_whole_or_in_pieces() {
        let (_, req) = hello(vec![data(&framed(0, ADA))]).await.unwrap();
        assert_eq!(req.message, "Ada");
        let one_byte_frames = framed(0, ADA).iter().map(|b| data(&[*b])).collect();
        let (_, req) = hello(one_byte_frames).await.unwrap();
        assert_eq!(req.message, "Ada");
    }

    #[tokio::test]
    async fn later_messages_are_read_and_dropped_and_trailers_kept() {
        let mut two = framed(0, ADA);
        two.extend_from_slice(&framed(0, b"\x0a\x03Bob"));
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-note", "kept".parse().unwrap());
        let (metadata, req) = hello(vec![data(&two), Ok(Frame::trailers(trailers))])
            .await
            .unwrap();
        assert_eq!(req.message, "Ada");
        assert_eq!(metadata.get("x-note").unwrap(), "kept");
        // A bad second message fails the call, as in volo-grpc.
        let mut bad = framed(0, ADA);
        bad.extend_from_slice(&framed(0, b"\x0a\x02\xff\xfe"));
        let err = hello(vec![data(&bad)]).await.unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }

    #[tokio::test]
    async fn malformed_unary_requests_get_volo_grpcs_statuses() {
        let cases: Vec<(Frames, &str)> = vec![
            (vec![], "Missing request message."),
            (
                vec![Err(Status::cancelled("reset"))],
                "Missing request message.",
            ),
            (
                vec![data(&framed(0, ADA)[..6])],
                "Unexpected EOF decoding stream.",
            ),
            (
                vec![data(&framed(1, ADA))],
                "compressed-flag but no grpc-encoding",
            ),
            (vec![data(&framed(7, ADA))], "invalid compression flag: 7"),
            (vec![data(&framed(0, b"\x0a\x02\xff\xfe"))], "UTF-8"),
        ];
        for (frames, why) in cases {
            let err = hello(frames).await.unwrap_err();
            assert_eq!(err.code(), Code::Internal, "{why}: {err:?}");
            assert!(err.message().contains(why), "{why}: {err:?}");
        }
        // A body error other than a cancel is the call's error.
        let err = hello(vec![Err(Status::deadline_exceeded("slow"))])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn a_length_prefix_alone_allocates_nothing_ahead_of_the_data() {
        // Announces 4 GiB - 1 and sends 3 bytes: the buffer holds what came, no more.
        let mut messages = Messages {
            body: request(vec![data(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])]),
            buf: BytesMut::new(),
            ended: false,
            trailers: None,
        };
        let err = messages.next::<HelloRequest>().await.unwrap_err();
        assert!(err.message().contains("Unexpected EOF"), "{err:?}");
        assert!(
            messages.buf.capacity() < 1024,
            "{}",
            messages.buf.capacity()
        );
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
