//! Raw HTTP clients for what the generated volo client cannot do: gRPC-Web over
//! HTTP/1.1 and HTTP/2, plain HTTP requests, and HTTP/2 streams reset at will.

use std::net::SocketAddr;

use basic_service::cloudevent::{proto_data, unpack};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pilota::pb::{EncodeLengthContext, Message};
use tokio::net::TcpStream;
use volo_gen::basic::service::v1::{HelloResponse, HelloResponseEvent, TalkResponse};

/// One length-prefixed gRPC message.
pub fn frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec(&mut EncodeLengthContext::default());
    let mut out = vec![0];
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// The greeting in an encoded Hello reply.
pub fn greeting(message: &Bytes) -> String {
    let reply = HelloResponse::decode(message.clone()).unwrap();
    let event = reply.cloud_event.unwrap();
    unpack::<HelloResponseEvent>(proto_data(&event).unwrap())
        .unwrap()
        .greeting
        .to_string()
}

/// The answers in encoded Talk replies.
pub fn answers(messages: &[Bytes]) -> Vec<String> {
    messages
        .iter()
        .map(|m| TalkResponse::decode(m.clone()).unwrap().answer.to_string())
        .collect()
}

/// A gRPC-Web response body taken apart: its messages, and the trailers frame.
#[derive(Debug, Default)]
pub struct WebBody {
    pub messages: Vec<Bytes>,
    pub trailers: Option<HeaderMap>,
}

impl WebBody {
    /// Splits `body` into frames; a 0x80 frame holds the trailers as header lines.
    pub fn parse(mut body: Bytes) -> Self {
        let mut parsed = WebBody::default();
        while body.len() >= 5 {
            let flag = body[0];
            let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
            assert!(body.len() >= 5 + len, "truncated gRPC-Web frame");
            body.advance(5);
            let payload = body.split_to(len);
            if flag & 0x80 != 0 {
                let mut trailers = HeaderMap::new();
                for line in std::str::from_utf8(&payload).unwrap().split("\r\n") {
                    if let Some((k, v)) = line.split_once(':') {
                        trailers.insert(
                            http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                            v.trim().parse().unwrap(),
                        );
                    }
                }
                parsed.trailers = Some(trailers);
            } else {
                assert_eq!(flag, 0, "uncompressed messages expected");
                parsed.messages.push(payload);
            }
        }
        assert!(body.is_empty(), "trailing bytes after the frames");
        parsed
    }

    /// `grpc-status` of the trailers frame.
    pub fn status(&self) -> Option<&str> {
        self.trailers
            .as_ref()?
            .get("grpc-status")
            .map(|v| v.to_str().unwrap())
    }
}

/// Sends one request on a fresh HTTP/1.1 connection and reads the whole response.
pub async fn h1(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// Sends one request on a fresh HTTP/2 (prior knowledge) connection.
pub async fn h2c(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let mut resp = Response::from_parts(parts, collected.to_bytes());
    if let Some(trailers) = trailers {
        resp.extensions_mut().insert(Trailers(trailers));
    }
    resp
}

/// The HTTP/2 trailers of a response read by [`h2c`].
#[derive(Debug, Clone)]
pub struct Trailers(pub HeaderMap);

/// A request to `path` with `content_type` and `body`.
pub fn post(path: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(Full::new(body.into()))
        .unwrap()
}

/// A gRPC-Web (binary) request to `path` with `messages`.
pub fn grpc_web(path: &str, messages: &[Vec<u8>]) -> Request<Full<Bytes>> {
    let mut req = post(path, "application/grpc-web+proto", messages.concat());
    req.headers_mut()
        .insert("x-grpc-web", http::HeaderValue::from_static("1"));
    req
}

/// Reads a streamed body frame by frame until `enough` says the bytes so far suffice.
pub async fn read_until(
    body: &mut hyper::body::Incoming,
    mut enough: impl FnMut(&[u8]) -> bool,
) -> BytesMut {
    let mut buf = BytesMut::new();
    while !enough(&buf) {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            other => panic!("body ended early: {other:?}"),
        }
    }
    buf
}
