//! Raw HTTP/2 calls (the `h2` crate) for what a normal gRPC client will not send:
//! invalid UTF-8, stalled bodies, odd headers. Each call reports what the client saw.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use http::{HeaderMap, Request};
use tokio::net::TcpStream;

/// One HTTP/2 connection driven in the background.
#[derive(Clone)]
pub struct RawConn {
    send: SendRequest<Bytes>,
}

/// What came back: the HTTP status and the gRPC status, from the headers
/// (trailers-only) or the trailers.
#[derive(Debug)]
pub struct RawReply {
    pub http: u16,
    pub grpc_status: Option<i32>,
    pub grpc_message: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A bare TCP connection to `addr`, with nothing sent yet.
pub async fn tcp(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// Connects over plaintext HTTP/2 (prior knowledge).
pub async fn connect(addr: SocketAddr) -> RawConn {
    let tcp = tcp(addr).await;
    let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    RawConn { send }
}

/// `message` with the gRPC length prefix (uncompressed).
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// A gRPC POST to `path` with `headers` added.
pub fn grpc_request(path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::post(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).expect("a valid request")
}

impl RawConn {
    /// Sends `request` with `body` and END_STREAM, and reads the whole reply.
    pub async fn call(&self, request: Request<()>, body: &[u8]) -> Result<RawReply, String> {
        self.call_until(request, body, Until::End).await
    }

    /// Like [`call`](Self::call), but stops reading at `until`.
    pub async fn call_until(
        &self,
        request: Request<()>,
        body: &[u8],
        until: Until,
    ) -> Result<RawReply, String> {
        let send = async {
            let mut send = self.send.clone().ready().await?;
            let (response, mut stream) = send.send_request(request, false)?;
            // The server may answer (and close the stream) before reading the body,
            // e.g. UNIMPLEMENTED; then the body cannot be sent, and the answer counts.
            let _ = stream.send_data(Bytes::copy_from_slice(body), true);
            Ok::<_, h2::Error>(response)
        };
        let response = send.await.map_err(|err| format!("send: {err}"))?;
        read_reply(response, until).await
    }

    /// A unary gRPC call of one message.
    pub async fn unary(&self, path: &str, message: &[u8]) -> Result<RawReply, String> {
        self.call(grpc_request(path, &[]), &grpc_frame(message))
            .await
    }

    /// Opens a call and sends `body` without END_STREAM: the call stays open, waiting.
    pub async fn stall(
        &self,
        request: Request<()>,
        body: &[u8],
    ) -> Result<(ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
        let mut send = self.send.clone().ready().await?;
        let (response, mut stream) = send.send_request(request, false)?;
        if !body.is_empty() {
            stream.send_data(Bytes::copy_from_slice(body), false)?;
        }
        Ok((response, stream))
    }
}

/// How much of a reply to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The whole reply, trailers included.
    End,
    /// The trailers, or the first whole gRPC message (for endless streams such as
    /// Watch); then the stream is reset.
    FirstMessage,
}

/// Reads a reply (bounded: 30 s); a timeout or transport error is an `Err`.
pub async fn read_reply(response: ResponseFuture, until: Until) -> Result<RawReply, String> {
    let read = async {
        let response = response.await?;
        let http = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
            if until == Until::FirstMessage && first_message_complete(&bytes) {
                return Ok(RawReply {
                    http,
                    grpc_status: None,
                    grpc_message: String::new(),
                    headers,
                    body: bytes,
                });
            }
        }
        let trailers = body.trailers().await?.unwrap_or_default();
        let status_from = |map: &HeaderMap| {
            map.get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        };
        let grpc_status = status_from(&trailers).or_else(|| status_from(&headers));
        let grpc_message = trailers
            .get("grpc-message")
            .or_else(|| headers.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        Ok::<_, h2::Error>(RawReply {
            http,
            grpc_status,
            grpc_message,
            headers,
            body: bytes,
        })
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(reply) => reply.map_err(|err| format!("transport error: {err}")),
        Err(_) => Err("no reply within 30 s".to_owned()),
    }
}

/// Whether `body` starts with a whole length-prefixed gRPC message.
fn first_message_complete(body: &[u8]) -> bool {
    body.len() >= 5
        && body.len() - 5 >= u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize
}

/// `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Hand-made HTTP/2 frames, for what even the `h2` crate refuses to send.
pub mod frames {
    /// The client connection preface and an empty SETTINGS frame.
    pub fn preface() -> Vec<u8> {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 0, 0, &[]));
        bytes
    }

    pub const HEADERS: u8 = 0x1;
    pub const CONTINUATION: u8 = 0x9;

    /// One frame.
    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut bytes = len.to_be_bytes()[1..].to_vec();
        bytes.push(kind);
        bytes.push(flags);
        bytes.extend_from_slice(&stream.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// An HPACK header block for a gRPC call to `path` plus `extra` headers, every field
    /// a literal without indexing (no Huffman coding).
    pub fn grpc_headers(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        let base = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        for (name, value) in base.iter().chain(extra) {
            block.push(0);
            string(&mut block, name);
            string(&mut block, value);
        }
        block
    }

    fn string(block: &mut Vec<u8>, text: &str) {
        integer(block, text.len(), 7);
        block.extend_from_slice(text.as_bytes());
    }

    /// An HPACK integer with an `n`-bit prefix (first byte's high bits left zero).
    fn integer(block: &mut Vec<u8>, mut value: usize, n: u32) {
        let max = (1usize << n) - 1;
        if value < max {
            block.push(value as u8);
            return;
        }
        block.push(max as u8);
        value -= max;
        while value >= 128 {
            block.push((value % 128 + 128) as u8);
            value /= 128;
        }
        block.push(value as u8);
    }
}

/// Reads from `tcp` until the server closes the connection (EOF or reset); `false` if it
/// is still open after `wait`.
pub async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let drain = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, drain).await.is_ok()
}
