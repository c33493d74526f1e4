//! The request body of a call, checked message by message as it streams in.
//!
//! - **Size**: volo-grpc's decoder trusts the 5-byte length prefix (up to 4 GiB) and
//!   decompresses without bound. [`Limited`] reads the gRPC framing itself: a prefix
//!   announcing more than the limit ends the call with RESOURCE_EXHAUSTED before the
//!   message is read, and nothing is reserved ahead of the bytes that arrive.
//! - **Compression**: compressed messages are decompressed here, the output capped at the
//!   limit (gzip and zstd bombs), and handed on uncompressed, so nothing is decompressed
//!   twice. Bodies made of whole uncompressed messages pass through without a copy.
//! - **Waits** ([`Waits`]): a unary call's request message, or a client stream's next
//!   message, must arrive in time, or the call ends with DEADLINE_EXCEEDED. A client that
//!   opens calls and never sends their messages cannot hold in-flight capacity forever.
//! - **Abandonment**: an error from the transport (the client reset the stream, the
//!   connection broke) marks the call abandoned, so it is recorded CANCELLED whatever its
//!   handler then does.

use std::{
    future::Future,
    io::Read,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use volo_grpc::{Status, body::BoxBody};

use super::{
    Call,
    wire::{self, COMPRESSED, Encoding, PREFIX, UNCOMPRESSED},
};

/// How long the server waits for a request message; `None`: as long as it takes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Waits {
    /// For the one request message of a unary-request call (Hello, Background, ...).
    pub(crate) request: Option<Duration>,
    /// For each next message of a client stream (Talk, reflection).
    pub(crate) stream_idle: Option<Duration>,
}

/// A request body whose gRPC messages are checked (and decompressed) on the way in.
pub(crate) struct Limited {
    inner: BoxBody,
    max: usize,
    encoding: Option<Encoding>,
    /// Bytes of a message not yet complete.
    pending: BytesMut,
    /// Set after an error: nothing more is read.
    done: bool,
    /// The bound on waiting for a message, if any.
    wait: Option<Wait>,
    /// Told when the transport fails (`None` in unit tests).
    call: Option<Arc<Call>>,
}

impl Limited {
    /// `inner`, checked for `call`: messages of at most `max` bytes (decompressed from
    /// `encoding`), each arriving within `wait`.
    pub(crate) fn boxed(
        inner: BoxBody,
        max: usize,
        encoding: Option<Encoding>,
        wait: Option<Wait>,
        call: Arc<Call>,
    ) -> BoxBody {
        BoxBody::new(Limited {
            inner,
            max,
            encoding,
            pending: BytesMut::new(),
            done: false,
            wait,
            call: Some(call),
        })
    }
}

/// What the server is waiting for, for the error message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaitFor {
    Request,
    NextMessage,
}

/// A bound on the time the server waits for a message. The timer starts when a read
/// finds nothing to deliver and stops when a whole message is delivered; it is
/// allocated the first time a read has to wait, so a call whose message arrives with
/// its headers never allocates one.
pub(crate) struct Wait {
    after: Duration,
    what: WaitFor,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl Wait {
    pub(crate) fn new(after: Duration, what: WaitFor) -> Self {
        Self {
            after,
            what,
            timer: None,
            waiting: false,
        }
    }

    /// Called when the body has nothing yet: starts the timer if it is not running, and
    /// gives the error once it has run out.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        // The clock is read only when a wait starts, not on every poll while waiting.
        let timer = match &mut self.timer {
            Some(timer) => {
                if !self.waiting {
                    timer.as_mut().reset(Instant::now() + self.after);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep(self.after))),
        };
        self.waiting = true;
        timer.as_mut().poll(cx).is_ready().then(|| {
            let secs = self.after.as_secs_f64();
            Status::deadline_exceeded(match self.what {
                WaitFor::Request => format!("request message not received within {secs} s"),
                WaitFor::NextMessage => format!("no message on this stream for {secs} s"),
            })
        })
    }

    /// A whole message was delivered: the next wait starts afresh.
    fn delivered(&mut self) {
        self.waiting = false;
    }
}

fn too_large(what: &str, len: usize, max: usize) -> Status {
    Status::resource_exhausted(format!(
        "{what} message of {len} bytes exceeds the limit of {max} bytes"
    ))
}

impl Limited {
    /// Whether `chunk` is whole, uncompressed, in-limit messages (the common case).
    fn whole_plain_messages(&self, chunk: &[u8]) -> bool {
        let mut rest = chunk;
        while !rest.is_empty() {
            let Some((UNCOMPRESSED, len)) = wire::prefix(rest) else {
                return false;
            };
            if len > self.max || rest.len() - PREFIX < len {
                return false;
            }
            rest = &rest[PREFIX + len..];
        }
        true
    }

    /// Takes the complete messages out of `pending`, checked and decompressed.
    fn drain_complete(&mut self) -> Result<Option<Bytes>, Status> {
        let mut out = BytesMut::new();
        while let Some((flag, len)) = wire::prefix(&self.pending) {
            if len > self.max {
                return Err(too_large("request", len, self.max));
            }
            if self.pending.len() < PREFIX + len {
                // Wait for the rest. No reserving ahead: a 5-byte prefix must not make
                // us allocate `max` bytes; the buffer grows with the data that arrives.
                break;
            }
            let mut message = self.pending.split_to(PREFIX + len);
            match (flag, self.encoding) {
                (COMPRESSED, Some(encoding)) => {
                    message.advance(PREFIX);
                    let plain = decompress(encoding, &message, self.max)?;
                    out.put_u8(UNCOMPRESSED);
                    out.put_u32(u32::try_from(plain.len()).unwrap_or(u32::MAX));
                    out.extend_from_slice(&plain);
                }
                // Uncompressed, or a flag volo will judge itself.
                _ => out.extend_from_slice(&message),
            }
        }
        Ok((!out.is_empty()).then(|| out.freeze()))
    }
}

impl Limited {
    /// The body ended (`trailers` or nothing follows): an unfinished message is an error,
    /// not a clean end, or the call would see fewer messages than were sent.
    fn end_of_body(
        &mut self,
        trailers: Option<Frame<Bytes>>,
    ) -> Option<Result<Frame<Bytes>, Status>> {
        if self.pending.is_empty() {
            return trailers.map(Ok);
        }
        self.done = true;
        self.pending = BytesMut::new();
        Some(Err(Status::internal(
            "request body ended inside a message (truncated gRPC frame)",
        )))
    }
}

/// Decompresses `input`, refusing output beyond `max` bytes.
fn decompress(encoding: Encoding, input: &[u8], max: usize) -> Result<Vec<u8>, Status> {
    let mut plain = Vec::new();
    // One byte over the limit is enough to know it is too large.
    let limit = max as u64 + 1;
    let read = match encoding {
        Encoding::Gzip => flate2::read::GzDecoder::new(input)
            .take(limit)
            .read_to_end(&mut plain),
        Encoding::Zstd => zstd::stream::read::Decoder::new(input)
            .and_then(|d| d.take(limit).read_to_end(&mut plain)),
    };
    read.map_err(|err| Status::internal(format!("cannot decompress request message: {err}")))?;
    if plain.len() > max {
        return Err(too_large("decompressed request", plain.len(), max));
    }
    Ok(plain)
}

impl Body for Limited {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if let Some(status) = this.wait.as_mut().and_then(|w| w.poll_expired(cx)) {
                        this.done = true;
                        this.pending = BytesMut::new();
                        return Poll::Ready(Some(Err(status)));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(status))) => {
                    // From the transport: the client reset the call, or the
                    // connection broke.
                    if let Some(call) = &this.call {
                        call.abandon();
                    }
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(None) => return Poll::Ready(this.end_of_body(None)),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(trailers) => return Poll::Ready(this.end_of_body(Some(trailers))),
            };
            if this.pending.is_empty() && this.whole_plain_messages(&data) {
                if let Some(wait) = &mut this.wait {
                    wait.delivered();
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            this.pending.extend_from_slice(&data);
            match this.drain_complete() {
                Ok(Some(messages)) => {
                    if let Some(wait) = &mut this.wait {
                        wait.delivered();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(messages))));
                }
                Ok(None) => continue, // need more bytes
                Err(status) => {
                    this.done = true;
                    this.pending = BytesMut::new();
                    return Poll::Ready(Some(Err(status)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.pending.is_empty() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http_body_util::BodyExt;

    use super::*;

    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    async fn run(
        chunks: Vec<Vec<u8>>,
        max: usize,
        encoding: Option<Encoding>,
    ) -> Result<Vec<u8>, Status> {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Status>(Frame::data(Bytes::from(c)))),
        );
        let body = Limited {
            inner: BoxBody::new(http_body_util::StreamBody::new(stream)),
            max,
            encoding,
            pending: BytesMut::new(),
            done: false,
            wait: None,
            call: None,
        };
        let collected = body.collect().await?;
        Ok(collected.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn messages_within_the_limit_pass_unchanged_even_split_across_chunks() {
        let bytes = [frame(0, b"hello"), frame(0, b"")].concat();
        let (a, b) = bytes.split_at(3);
        assert_eq!(
            run(vec![a.to_vec(), b.to_vec()], 5, None).await.unwrap(),
            bytes
        );
        assert_eq!(run(vec![bytes.clone()], 5, None).await.unwrap(), bytes);
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_the_payload_arrives() {
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&(1u32 << 31).to_be_bytes());
        let status = run(vec![prefix], 1024, None).await.unwrap_err();
        assert_eq!(status.code(), volo_grpc::Code::ResourceExhausted);
        assert!(
            status.message().contains("limit of 1024 bytes"),
            "{}",
            status.message()
        );
    }

    #[tokio::test]
    async fn a_body_ending_inside_a_message_is_an_error() {
        let bytes = frame(0, b"hello");
        let status = run(vec![bytes[..7].to_vec()], 64, None).await.unwrap_err();
        assert_eq!(status.code(), volo_grpc::Code::Internal);
        assert!(
            status.message().contains("truncated"),
            "{}",
            status.message()
        );
    }

    #[tokio::test]
    async fn compressed_messages_are_handed_on_decompressed() {
        let body = run(vec![frame(1, &gzip(b"abcabc"))], 64, Some(Encoding::Gzip))
            .await
            .unwrap();
        assert_eq!(body, frame(0, b"abcabc"));
    }

    #[tokio::test]
    async fn a_gzip_bomb_is_refused_after_decompression() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 4096);
        let status = run(vec![frame(1, &bomb)], 4096, Some(Encoding::Gzip))
            .await
            .unwrap_err();
        assert_eq!(status.code(), volo_grpc::Code::ResourceExhausted);
        assert!(
            status.message().contains("decompressed"),
            "{}",
            status.message()
        );
    }

    #[tokio::test]
    async fn a_transport_error_in_the_request_marks_the_call_abandoned() {
        let call = Call::for_test();
        let inner = BoxBody::new(http_body_util::StreamBody::new(futures::stream::iter([
            Ok::<_, Status>(Frame::data(Bytes::from(frame(0, b"x")))),
            Err(Status::cancelled("stream reset")),
        ])));
        let mut body = Limited::boxed(inner, 64, None, None, Arc::clone(&call));
        assert!(body.frame().await.unwrap().is_ok());
        assert!(!call.is_abandoned());
        assert!(body.frame().await.unwrap().is_err());
        assert!(call.is_abandoned());
    }
}
