//! Response framing: messages that are ready together leave in one HTTP/2 DATA frame.
//!
//! volo-grpc yields each response message as its own body chunk, and hyper sends each
//! chunk as its own DATA frame (9 bytes of framing each). [`Coalesced`] polls the body
//! again right after a chunk: whatever else is ready at once (up to [`MAX_FRAME`]) is
//! joined to it. A lone message is never delayed or copied: when nothing else is ready,
//! it goes out as it came.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use volo_grpc::{Status, body::BoxBody};

/// Bytes joined into one chunk at most (HTTP/2's default largest frame is 16 KiB;
/// hyper splits larger chunks into frames of the size the peer allows).
const MAX_FRAME: usize = 16 * 1024;

pin_project_lite::pin_project! {
    /// A response body whose ready chunks are joined; see the module docs.
    pub struct Coalesced<G> {
        #[pin]
        inner: BoxBody,
        // What the inner body yielded after the chunks now being joined (trailers, an
        // error, or its end), handed out on the next poll.
        held: Option<Option<Result<Frame<Bytes>, Status>>>,
        // Dropped with the body (the connection counts the call open until then).
        guard: G,
    }
}

impl<G: Send + 'static> Coalesced<G> {
    /// Wraps `inner`; `guard` is dropped with the body.
    pub(crate) fn boxed(inner: BoxBody, guard: G) -> BoxBody {
        BoxBody::new(Coalesced {
            inner,
            held: None,
            guard,
        })
    }
}

impl<G> Body for Coalesced<G> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        if let Some(held) = this.held.take() {
            return Poll::Ready(held);
        }
        let first = match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            },
            other => return other,
        };
        let mut joined: Option<BytesMut> = None;
        let mut len = first.len();
        while len < MAX_FRAME {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        len += data.len();
                        let buf = joined.get_or_insert_with(|| {
                            let mut buf = BytesMut::with_capacity(MAX_FRAME.max(len));
                            buf.extend_from_slice(&first);
                            buf
                        });
                        buf.extend_from_slice(&data);
                    }
                    Err(trailers) => {
                        *this.held = Some(Some(Ok(trailers)));
                        break;
                    }
                },
                Poll::Ready(other) => {
                    *this.held = Some(other);
                    break;
                }
                // Nothing else ready: send what we have now. The inner body has
                // registered the waker for its next chunk.
                Poll::Pending => break,
            }
        }
        let data = joined.map_or(first, BytesMut::freeze);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.held {
            Some(None) => true,
            Some(Some(_)) => false,
            None => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.held {
            None => self.inner.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http_body_util::BodyExt;

    use super::*;

    fn body(frames: Vec<Result<Frame<Bytes>, Status>>) -> BoxBody {
        BoxBody::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn ready_chunks_are_joined_and_trailers_follow() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let mut coalesced = Coalesced::boxed(
            body(vec![
                Ok(Frame::data(Bytes::from_static(b"ab"))),
                Ok(Frame::data(Bytes::from_static(b"cd"))),
                Ok(Frame::data(Bytes::from_static(b"e"))),
                Ok(Frame::trailers(trailers)),
            ]),
            (),
        );
        let first = coalesced.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"abcde"));
        let second = coalesced.frame().await.unwrap().unwrap();
        assert!(second.is_trailers());
        assert!(coalesced.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_lone_chunk_passes_unchanged_and_an_error_is_kept() {
        let mut coalesced = Coalesced::boxed(
            body(vec![
                Ok(Frame::data(Bytes::from_static(b"only"))),
                Err(Status::internal("boom")),
            ]),
            (),
        );
        let first = coalesced.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"only"));
        let err = coalesced.frame().await.unwrap().unwrap_err();
        assert_eq!(err.message(), "boom");
    }

    #[tokio::test]
    async fn chunks_are_joined_up_to_the_frame_size() {
        let chunk = Bytes::from(vec![7u8; 6 * 1024]);
        let frames = (0..5).map(|_| Ok(Frame::data(chunk.clone()))).collect();
        let mut coalesced = Coalesced::boxed(body(frames), ());
        let mut sizes = Vec::new();
        while let Some(frame) = coalesced.frame().await {
            sizes.push(frame.unwrap().into_data().unwrap().len());
        }
        assert_eq!(sizes, [18 * 1024, 12 * 1024]);
    }
}
