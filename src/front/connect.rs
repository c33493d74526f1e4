//! The Connect protocol (connectrpc.com/docs/protocol), translated to gRPC and back.
//!
//! Every RPC the route table has (reflection excepted) answers Connect on the same port,
//! over HTTP/1.1 and HTTP/2, in protobuf or JSON:
//!
//! - **unary** (`POST`, `application/proto` or `application/json`): the body is the bare
//!   message, compressed as `content-encoding` says. It becomes one gRPC message
//!   ([`Enveloped`]); the reply goes back bare, with its metadata as headers and its
//!   trailers as `trailer-` headers; an error is a JSON body with the HTTP status of its
//!   code ([`error_response`]);
//! - **GET** for an RPC marked `idempotency_level = NO_SIDE_EFFECTS` in `idl/`: the message
//!   is in the query (`encoding`, `message`, `base64=1`, `compression`); other RPCs get
//!   405;
//! - **streams** (`application/connect+proto`, `+json`): the messages are framed as in
//!   gRPC (`connect-content-encoding` in place of `grpc-encoding`) and pass both ways
//!   unchanged; the trailers become the end-of-stream message, a JSON object with the
//!   error (if any) and the trailing metadata ([`EndStream`]).
//!
//! `connect-timeout-ms` becomes `grpc-timeout`, so that the pipeline, its limits, its
//! logs and its metrics (protocol `connect`) see a gRPC call like any other and give the
//! same codes and messages for the same input.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Map, Value, json};
use volo_grpc::{Code, Status, body::BoxBody};

use super::ConnectionInfo;
use crate::call::{
    Codec, Handlers, Pipeline, Protocol, Route, Wire,
    status::{code_name, details_of},
    wire::{self, COMPRESSED, PREFIX, UNCOMPRESSED},
};

/// The shape of a Connect request, from its method and content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `POST` of one bare message.
    Unary(Codec),
    /// `GET` with the message in the query.
    Get,
    /// `POST` of framed messages, answered with framed messages.
    Stream(Codec),
}

impl Shape {
    /// The Connect shape of a `POST` with `content_type`, if it is a Connect one with a
    /// codec the server has.
    pub(crate) fn of_post(content_type: &[u8]) -> Option<Shape> {
        let essence = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or(content_type)
            .trim_ascii();
        match essence {
            b"application/proto" => Some(Shape::Unary(Codec::Proto)),
            b"application/json" => Some(Shape::Unary(Codec::Json)),
            b"application/connect+proto" => Some(Shape::Stream(Codec::Proto)),
            b"application/connect+json" => Some(Shape::Stream(Codec::Json)),
            _ => None,
        }
    }
}

/// `connect-protocol-version`: 1, when a client sends it.
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("connect-protocol-version");
/// `connect-timeout-ms`: the caller's deadline.
const TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
/// The compression of a stream's messages.
const STREAM_ENCODING: HeaderName = HeaderName::from_static("connect-content-encoding");
/// The compressions a stream's client takes.
const STREAM_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("connect-accept-encoding");
/// gRPC's status message and details, which are not metadata.
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");
/// The end-of-stream message's flag.
const END_STREAM: u8 = 0x02;

/// Answers the Connect request `req` (of `shape`) from `conn` through `pipeline`.
pub(crate) async fn answer<H: Handlers>(
    pipeline: &Pipeline<H>,
    req: Request<BoxBody>,
    conn: ConnectionInfo,
    shape: Shape,
) -> Response<BoxBody> {
    let (mut head, body) = req.into_parts();
    let route = Route::of_path(head.uri.path());
    let (codec, body) = match prepare(pipeline, route, &mut head, body, shape) {
        Ok(prepared) => prepared,
        Err(refusal) => return refusal,
    };
    let mut wire = Wire::new(Protocol::Connect, codec);
    wire.compressed_replies = accepts_request_encoding(&head.headers, shape);
    let req = Request::from_parts(head, body);
    let resp = pipeline.call(req, conn, wire).await;
    match shape {
        Shape::Stream(_) => stream_response(resp, codec),
        _ => unary_response(resp, codec).await,
    }
}

/// Whether the client takes replies compressed as its request was (`grpc-encoding` by
/// now): `accept-encoding` (unary) or `connect-accept-encoding` (streams) lists it.
fn accepts_request_encoding(headers: &HeaderMap, shape: Shape) -> bool {
    let Some(encoding) = headers.get(&wire::ENCODING) else {
        return false;
    };
    let accept = match shape {
        Shape::Stream(_) => headers.get(&STREAM_ACCEPT_ENCODING),
        _ => headers.get(header::ACCEPT_ENCODING),
    };
    accept.is_some_and(|accept| {
        accept
            .as_bytes()
            .split(|&b| b == b',')
            .map(|name| {
                name.split(|&b| b == b';')
                    .next()
                    .unwrap_or(name)
                    .trim_ascii()
            })
            .any(|name| name == encoding.as_bytes())
    })
}

/// Turns the Connect request `head` and `body` into a gRPC one; the codec of its
/// messages, or the answer that refuses it.
fn prepare<H>(
    pipeline: &Pipeline<H>,
    route: Option<Route>,
    head: &mut http::request::Parts,
    body: BoxBody,
    shape: Shape,
) -> Result<(Codec, BoxBody), Response<BoxBody>> {
    let Some(route) = route else {
        return Err(refuse(StatusCode::NOT_FOUND, "unknown method\n"));
    };
    let streams = route.method.client_streaming || route.method.server_streaming;
    let method = pipeline.json.method(route);
    match shape {
        Shape::Get if !method.is_some_and(|m| m.no_side_effects) => {
            let mut resp = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "this method has side effects: use POST\n",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Err(resp);
        }
        Shape::Unary(_) | Shape::Get if streams => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "this method streams: use application/connect+proto or application/connect+json\n",
            ));
        }
        Shape::Stream(_) if !streams => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "this method is unary: use application/proto or application/json\n",
            ));
        }
        _ => {}
    }
    let headers = &mut head.headers;
    if let Some(version) = headers.get(&PROTOCOL_VERSION) {
        if version.as_bytes() != b"1" {
            return Err(error_response(
                &Status::invalid_argument(format!(
                    "connect-protocol-version must be 1, not {:?}",
                    String::from_utf8_lossy(version.as_bytes())
                )),
                HeaderMap::new(),
            ));
        }
    }
    if let Some(timeout) = headers.remove(&TIMEOUT_MS) {
        let grpc = grpc_timeout(timeout.as_bytes()).ok_or_else(|| {
            error_response(
                &Status::invalid_argument(format!(
                    "malformed connect-timeout-ms: {:?}",
                    String::from_utf8_lossy(timeout.as_bytes())
                )),
                HeaderMap::new(),
            )
        })?;
        headers.insert(wire::TIMEOUT, grpc);
    }
    // (The pipeline reads neither the content type nor the length of the request.)
    let max = pipeline.max_message_bytes;
    match shape {
        Shape::Stream(codec) => {
            if let Some(encoding) = headers.remove(&STREAM_ENCODING) {
                headers.insert(wire::ENCODING, encoding);
            }
            Ok((codec, body))
        }
        Shape::Get => {
            let query = Query::parse(head.uri.query().unwrap_or(""))
                .map_err(|status| error_response(&status, HeaderMap::new()))?;
            let codec = query.codec.ok_or_else(|| {
                refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a Connect GET needs encoding=json or encoding=proto\n",
                )
            })?;
            let headers = &mut head.headers;
            let compressed = query.compression.is_some() && !query.message.is_empty();
            if let Some(compression) = query.compression {
                headers.insert(wire::ENCODING, compression);
            }
            let flag = if compressed { COMPRESSED } else { UNCOMPRESSED };
            let mut framed = Vec::with_capacity(PREFIX + query.message.len());
            framed.extend_from_slice(&wire::frame_prefix(flag, query.message.len()));
            framed.extend_from_slice(&query.message);
            let body = Full::new(Bytes::from(framed)).map_err(|never| match never {});
            Ok((codec, BoxBody::new(body)))
        }
        Shape::Unary(codec) => {
            let declared = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let mut compressed = false;
            if let Some(encoding) = headers.remove(header::CONTENT_ENCODING) {
                compressed = encoding.as_bytes() != b"identity";
                if compressed {
                    headers.insert(wire::ENCODING, encoding);
                }
            }
            Ok((codec, Enveloped::boxed(body, compressed, max, declared)))
        }
    }
}

/// `grpc-timeout` for a `connect-timeout-ms` value (1 to 10 digits), in the finest unit
/// that fits gRPC's 8 digits.
fn grpc_timeout(ms: &[u8]) -> Option<HeaderValue> {
    if ms.is_empty() || ms.len() > 10 || !ms.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms: u64 = std::str::from_utf8(ms).ok()?.parse().ok()?;
    let value = if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", ms.div_ceil(1000))
    };
    HeaderValue::from_str(&value).ok()
}

/// The query of a Connect GET.
#[derive(Debug, Default)]
struct Query {
    codec: Option<Codec>,
    message: Vec<u8>,
    compression: Option<HeaderValue>,
}

impl Query {
    /// Reads `connect`, `encoding`, `message`, `base64` and `compression`; other keys
    /// are ignored.
    fn parse(query: &str) -> Result<Query, Status> {
        let mut out = Query::default();
        let mut base64 = false;
        let mut message = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode_component(value);
            match key {
                "connect" if value != b"v1" => {
                    return Err(Status::invalid_argument(
                        "connect must be v1 in a Connect GET",
                    ));
                }
                "encoding" => {
                    out.codec = match &value[..] {
                        b"json" => Some(Codec::Json),
                        b"proto" => Some(Codec::Proto),
                        _ => None,
                    }
                }
                "message" => message = value,
                "base64" => base64 = value == b"1",
                "compression" if value != b"identity" => {
                    out.compression = HeaderValue::from_bytes(&value).ok();
                }
                _ => {}
            }
        }
        out.message = if base64 {
            let trimmed = message
                .iter()
                .rposition(|&b| b != b'=')
                .map_or(&message[..0], |end| &message[..=end]);
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(trimmed)
                .map_err(|err| {
                    Status::invalid_argument(format!("message is not URL-safe base64: {err}"))
                })?
        } else {
            message
        };
        Ok(out)
    }
}

/// A query component, percent-decoded (`+` is a space).
fn decode_component(value: &str) -> Vec<u8> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

/// A unary request body (one bare message) as one gRPC message: the prefix and the
/// message together, once the body has ended. A body longer than `max` (declared or
/// read) is announced with its length and not read further, so the request body's
/// checks refuse it as they refuse any oversized message.
struct Enveloped {
    inner: BoxBody,
    flag: u8,
    max: usize,
    buf: BytesMut,
    done: bool,
}

impl Enveloped {
    fn boxed(inner: BoxBody, compressed: bool, max: usize, declared: Option<usize>) -> BoxBody {
        let flag = if compressed { COMPRESSED } else { UNCOMPRESSED };
        let mut buf = BytesMut::new();
        match declared {
            Some(len) if len > max => {
                let prefix = Bytes::copy_from_slice(&wire::frame_prefix(flag, len));
                return BoxBody::new(Full::new(prefix).map_err(|never| match never {}));
            }
            Some(len) => buf.reserve(PREFIX + len),
            None => {}
        }
        buf.put_bytes(0, PREFIX);
        BoxBody::new(Enveloped {
            inner,
            flag,
            max,
            buf,
            done: false,
        })
    }

    /// The message so far, prefixed: `len` announced (the whole message, or more than
    /// the limit).
    fn finish(&mut self, len: usize) -> Bytes {
        self.done = true;
        let mut buf = std::mem::take(&mut self.buf);
        // An empty body is an empty message, never decompressed.
        let flag = if len == 0 { UNCOMPRESSED } else { self.flag };
        buf[..PREFIX].copy_from_slice(&wire::frame_prefix(flag, len));
        if len > self.max {
            buf.truncate(PREFIX);
        }
        buf.freeze()
    }
}

impl Body for Enveloped {
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
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.buf.extend_from_slice(&data);
                        let len = this.buf.len() - PREFIX;
                        if len > this.max {
                            return Poll::Ready(Some(Ok(Frame::data(this.finish(len)))));
                        }
                    }
                }
                Some(Err(status)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(status)));
                }
                None => {
                    let len = this.buf.len() - PREFIX;
                    return Poll::Ready(Some(Ok(Frame::data(this.finish(len)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The Connect answer to a unary call, from the pipeline's gRPC response.
async fn unary_response(resp: Response<BoxBody>, codec: Codec) -> Response<BoxBody> {
    let (parts, mut body) = resp.into_parts();
    let mut headers = parts.headers;
    if headers.contains_key(&wire::STATUS) {
        // Trailers-only: the call ended before any reply.
        let status = status_of(&headers);
        return error_response(&status, metadata(headers, None));
    }
    // The reply (one chunk, usually: kept as it is), then the trailers.
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        match frame.map(Frame::into_data) {
            Ok(Ok(chunk)) => match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                held => {
                    if let Some(held) = held {
                        joined.extend_from_slice(&held);
                    }
                    joined.extend_from_slice(&chunk);
                }
            },
            Ok(Err(frame)) => {
                if let Ok(sent) = frame.into_trailers() {
                    trailers = sent;
                }
            }
            Err(status) => return error_response(&status, metadata(headers, None)),
        }
    }
    let encoding = headers.remove(&wire::ENCODING);
    let ok = trailers.get(&wire::STATUS).is_some_and(|code| code == "0");
    if !ok {
        let status = status_of(&trailers);
        return error_response(&status, metadata(headers, Some(&trailers)));
    }
    let mut headers = metadata(headers, Some(&trailers));
    let data = first.unwrap_or_else(|| joined.freeze());
    let Some((flag, len)) = wire::prefix(&data).filter(|&(_, len)| data.len() == PREFIX + len)
    else {
        return error_response(
            &Status::internal("a unary call must answer exactly one message"),
            headers,
        );
    };
    headers.insert(header::CONTENT_TYPE, unary_content_type(codec));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if flag == COMPRESSED {
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, encoding);
        }
    }
    let mut resp = Response::new(BoxBody::new(
        Full::new(data.slice(PREFIX..)).map_err(|never| match never {}),
    ));
    *resp.headers_mut() = headers;
    resp
}

fn unary_content_type(codec: Codec) -> HeaderValue {
    match codec {
        Codec::Proto => HeaderValue::from_static("application/proto"),
        Codec::Json => HeaderValue::from_static("application/json"),
    }
}

/// The Connect answer to a streaming call: the pipeline's messages as they come, then
/// the end-of-stream message.
fn stream_response(resp: Response<BoxBody>, codec: Codec) -> Response<BoxBody> {
    let (parts, body) = resp.into_parts();
    let early = parts
        .headers
        .contains_key(&wire::STATUS)
        .then(|| status_of(&parts.headers));
    let mut headers = parts.headers;
    let encoding = headers.remove(&wire::ENCODING);
    let mut headers = metadata(headers, None);
    if let Some(encoding) = encoding {
        headers.insert(STREAM_ENCODING, encoding);
    }
    headers.insert(
        header::CONTENT_TYPE,
        match codec {
            Codec::Proto => HeaderValue::from_static("application/connect+proto"),
            Codec::Json => HeaderValue::from_static("application/connect+json"),
        },
    );
    let mut resp = Response::new(BoxBody::new(EndStream {
        inner: body,
        early,
        done: false,
    }));
    *resp.headers_mut() = headers;
    resp
}

/// A stream's body: the messages unchanged, then the trailers (or an error) as the
/// end-of-stream message.
struct EndStream {
    inner: BoxBody,
    /// The status of a trailers-only response: the stream is just its end.
    early: Option<Status>,
    done: bool,
}

impl Body for EndStream {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(status) = this.early.take() {
            this.done = true;
            return Poll::Ready(Some(Ok(Frame::data(end_of_stream(&status, None)))));
        }
        let end = match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_trailers() {
                Ok(trailers) => end_of_stream(&status_of(&trailers), Some(&trailers)),
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            },
            Some(Err(status)) => end_of_stream(&status, None),
            None => end_of_stream(&Status::internal("the stream ended without a status"), None),
        };
        this.done = true;
        Poll::Ready(Some(Ok(Frame::data(end))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The end-of-stream message: `{}`, or the error and the trailing metadata.
fn end_of_stream(status: &Status, trailers: Option<&HeaderMap>) -> Bytes {
    let mut end = Map::new();
    if status.code() != Code::Ok {
        end.insert("error".into(), error_json(status));
    }
    let mut meta = Map::new();
    for (name, value) in trailers.into_iter().flatten() {
        if is_grpc_header(name) {
            continue;
        }
        let values = meta
            .entry(name.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let (Value::Array(values), Ok(value)) = (values, value.to_str()) {
            values.push(Value::String(value.to_owned()));
        }
    }
    if !meta.is_empty() {
        end.insert("metadata".into(), Value::Object(meta));
    }
    let mut out = Vec::new();
    let written = wire::framed(&mut out, END_STREAM, |out| {
        serde_json::to_writer(out, &Value::Object(end))
    });
    if written.is_err() {
        out = [&wire::frame_prefix(END_STREAM, 2)[..], b"{}"].concat();
    }
    Bytes::from(out)
}

/// The status in `headers` (trailers, or a trailers-only response's headers).
fn status_of(headers: &HeaderMap) -> Status {
    Status::from_header_map(headers)
        .unwrap_or_else(|| Status::internal("the call ended without a status"))
}

/// Whether `name` is gRPC's own (`grpc-status`, `grpc-encoding`, ...), not metadata.
fn is_grpc_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("grpc-")
}

/// The response metadata of a unary call: the response's `headers` but gRPC's own, and
/// its `trailers` as `trailer-` headers.
fn metadata(mut headers: HeaderMap, trailers: Option<&HeaderMap>) -> HeaderMap {
    // (The pipeline sends no `grpc-accept-encoding` on Connect calls, and the status
    // is in the headers only when it ended the call before any reply.)
    if headers.contains_key(&wire::STATUS) {
        for name in [&wire::STATUS, &GRPC_MESSAGE, &GRPC_STATUS_DETAILS] {
            headers.remove(name);
        }
    }
    for (name, value) in trailers.into_iter().flatten() {
        if is_grpc_header(name) {
            continue;
        }
        if let Ok(prefixed) = HeaderName::from_bytes(format!("trailer-{name}").as_bytes()) {
            headers.append(prefixed, value.clone());
        }
    }
    headers
}

/// A Connect error: its JSON body with the HTTP status of its code, and `headers`.
pub(crate) fn error_response(status: &Status, headers: HeaderMap) -> Response<BoxBody> {
    let body = serde_json::to_vec(&error_json(status)).unwrap_or_default();
    let mut resp = Response::new(BoxBody::new(
        Full::new(Bytes::from(body)).map_err(|never| match never {}),
    ));
    *resp.status_mut() = http_status(status.code());
    *resp.headers_mut() = headers;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error as Connect writes it: `code`, `message`, `details` (type and base64 value).
fn error_json(status: &Status) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), Value::from(connect_code(status.code())));
    if !status.message().is_empty() {
        error.insert("message".into(), Value::from(status.message()));
    }
    let details: Vec<Value> = details_of(status)
        .into_iter()
        .map(|(name, value)| {
            json!({
                "type": name.as_str(),
                "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&value),
            })
        })
        .collect();
    if !details.is_empty() {
        error.insert("details".into(), Value::Array(details));
    }
    Value::Object(error)
}

/// A code's Connect name: gRPC's in lower case, but `canceled`.
fn connect_code(code: Code) -> String {
    match code {
        Code::Cancelled => "canceled".to_owned(),
        code => code_name(code).to_ascii_lowercase(),
    }
}

/// The HTTP status of a Connect error with `code`.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal before any call: plain text with `status`.
fn refuse(status: StatusCode, text: &'static str) -> Response<BoxBody> {
    super::page::text(status, text)
}

/// Whether a `GET` of `path` is a Connect call (the path names an RPC).
pub(crate) fn is_get(method: &Method, path: &str) -> bool {
    method == Method::GET && Route::of_path(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_give_shapes() {
        for (ct, shape) in [
            ("application/proto", Some(Shape::Unary(Codec::Proto))),
            ("application/json", Some(Shape::Unary(Codec::Json))),
            (
                "application/json; charset=utf-8",
                Some(Shape::Unary(Codec::Json)),
            ),
            (
                "application/connect+proto",
                Some(Shape::Stream(Codec::Proto)),
            ),
            ("application/connect+json", Some(Shape::Stream(Codec::Json))),
            ("application/connect+xml", None),
            ("application/xml", None),
            ("text/plain", None),
        ] {
            assert_eq!(Shape::of_post(ct.as_bytes()), shape, "{ct}");
        }
    }

    #[test]
    fn connect_timeouts_become_grpc_timeouts() {
        assert_eq!(grpc_timeout(b"1500").unwrap(), "1500m");
        assert_eq!(grpc_timeout(b"99999999").unwrap(), "99999999m");
        assert_eq!(grpc_timeout(b"9999999999").unwrap(), "10000000S");
        for bad in [&b""[..], b"-1", b"1.5", b"12345678901", b" 1"] {
            assert!(grpc_timeout(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn every_code_has_its_connect_name_and_http_status() {
        assert_eq!(connect_code(Code::Cancelled), "canceled");
        assert_eq!(connect_code(Code::InvalidArgument), "invalid_argument");
        for (code, http) in [
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn get_queries_are_read() {
        let q =
            Query::parse("connect=v1&encoding=json&message=%7B%22name%22%3A%22Ada%22%7D").unwrap();
        assert_eq!(q.codec, Some(Codec::Json));
        assert_eq!(q.message, br#"{"name":"Ada"}"#);
        let q = Query::parse("encoding=proto&base64=1&message=CgNBZGE").unwrap();
        assert_eq!(q.message, b"\x0a\x03Ada");
        let q = Query::parse("encoding=proto&base64=1&message=CgNBZGE%3D").unwrap();
        assert_eq!(q.message, b"\x0a\x03Ada");
        assert_eq!(
            Query::parse("encoding=proto&base64=1&message=***")
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
        assert!(Query::parse("connect=v2&encoding=json").is_err());
        assert_eq!(Query::parse("encoding=xml").unwrap().codec, None);
    }

    #[test]
    fn end_of_stream_carries_the_error_and_the_metadata() {
        let ok = end_of_stream(&Status::new(Code::Ok, ""), None);
        assert_eq!(&ok[..], b"\x02\x00\x00\x00\x02{}");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("3"));
        trailers.insert("x-extra", HeaderValue::from_static("v"));
        let status = crate::call::status::bad_request("processes", "too many".into());
        let end = end_of_stream(&status, Some(&trailers));
        let json: Value = serde_json::from_slice(&end[PREFIX..]).unwrap();
        assert_eq!(json["error"]["code"], "invalid_argument");
        assert_eq!(json["error"]["message"], "too many");
        assert_eq!(json["error"]["details"][0]["type"], "google.rpc.BadRequest");
        assert_eq!(json["metadata"]["x-extra"][0], "v");
        assert!(json["metadata"].get("grpc-status").is_none());
    }
}
