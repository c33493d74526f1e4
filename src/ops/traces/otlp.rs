//! The OTLP trace exporter: spans straight to protobuf bytes, sent over HTTP/protobuf or
//! gRPC.
//!
//! The OpenTelemetry crates' exporter first turns every span into the generated OTLP
//! structures (a `String` per attribute key and value) and then encodes those; that cost
//! about 1 µs per span, more than the span itself. Here each span is written once, field
//! by field, into the request body ([`encode_request`], checked against the generated
//! OTLP types in the tests). The transport is hyper's client: HTTP/1.1 or h2c POST of the
//! body (`application/x-protobuf`) to the traces URL, or a unary gRPC call to
//! `TraceService/Export`. Configuration, as the OTLP exporter specification has it:
//! `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (`k=v,k=v`, percent-encoded),
//! `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (milliseconds per attempt, default 10 000) and
//! `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION` (`gzip` or `none`). A transient failure
//! (no connection, HTTP 429/502/503/504, gRPC UNAVAILABLE and its kin) is retried twice,
//! after 100 and 200 ms (with jitter).

use std::{borrow::Cow, future::Future, io::Write as _, time::Duration};

use bytes::{BufMut as _, Bytes};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry::{
    Array, KeyValue, Value,
    trace::{SpanKind, Status},
};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};

use super::Protocol;
use crate::error::ServerError;

/// The gRPC method of OTLP trace export.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Largest response body read (responses are tiny; a partial-success message at most).
const MAX_RESPONSE: usize = 64 * 1024;
const ATTEMPTS: u32 = 3;

/// Exports batches of spans to one OTLP endpoint.
#[derive(Debug)]
pub(super) struct OtlpExporter {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    protocol: Protocol,
    headers: HeaderMap,
    timeout: Duration,
    gzip: bool,
    /// The `Resource` message of every request, encoded once.
    resource: Vec<u8>,
}

impl OtlpExporter {
    /// An exporter to `endpoint` (the traces URL for HTTP, the base URL for gRPC),
    /// configured by the `OTEL_EXPORTER_OTLP_*` variables `env` reads.
    pub(super) fn new(
        protocol: Protocol,
        endpoint: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ServerError> {
        let target = match protocol {
            Protocol::HttpProtobuf => endpoint.to_owned(),
            Protocol::Grpc => format!("{}{GRPC_EXPORT}", endpoint.trim_end_matches('/')),
        };
        let uri: Uri = target
            .parse()
            .map_err(|err| ServerError::Traces(format!("the OTLP endpoint {target}: {err}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(ServerError::Traces(format!(
                    "the OTLP endpoint {target}: https is not supported; use a collector on the \
                     same host or network over http"
                )));
            }
            _ => {
                return Err(ServerError::Traces(format!(
                    "the OTLP endpoint {target}: it must start with http://"
                )));
            }
        }
        let either = |name: &str| {
            env(&format!("OTEL_EXPORTER_OTLP_TRACES_{name}"))
                .or_else(|| env(&format!("OTEL_EXPORTER_OTLP_{name}")))
        };
        let timeout = match either("TIMEOUT") {
            None => Duration::from_secs(10),
            Some(ms) => ms.trim().parse().map(Duration::from_millis).map_err(|_| {
                ServerError::Traces(format!(
                    "OTEL_EXPORTER_OTLP_TIMEOUT={ms}: not a number of milliseconds"
                ))
            })?,
        };
        let gzip = match either("COMPRESSION").as_deref().map(str::trim) {
            None | Some("none") => false,
            Some("gzip") => true,
            Some(other) => {
                return Err(ServerError::Traces(format!(
                    "OTEL_EXPORTER_OTLP_COMPRESSION={other} is not supported (gzip or none)"
                )));
            }
        };
        let mut headers = HeaderMap::new();
        for list in [
            env("OTEL_EXPORTER_OTLP_HEADERS"),
            env("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
        ]
        .into_iter()
        .flatten()
        {
            for (name, value) in parse_headers(&list)? {
                headers.insert(name, value);
            }
        }
        let mut builder = Client::builder(TokioExecutor::new());
        builder.http2_only(protocol == Protocol::Grpc);
        Ok(Self {
            client: builder.build_http(),
            uri,
            protocol,
            headers,
            timeout,
            gzip,
            resource: Vec::new(),
        })
    }

    /// One attempt: `Ok(())`, or the error and whether another attempt may succeed.
    async fn send(&self, body: Bytes) -> Result<(), (String, bool)> {
        let mut request = http::Request::post(self.uri.clone());
        if let Some(headers) = request.headers_mut() {
            headers.extend(self.headers.clone());
            match self.protocol {
                Protocol::HttpProtobuf => {
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-protobuf"),
                    );
                    if self.gzip {
                        headers.insert(
                            http::header::CONTENT_ENCODING,
                            HeaderValue::from_static("gzip"),
                        );
                    }
                }
                Protocol::Grpc => {
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/grpc"),
                    );
                    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
                    if self.gzip {
                        headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
                    }
                }
            }
        }
        let request = request
            .body(Full::new(body))
            .map_err(|err| (err.to_string(), false))?;
        let response = tokio::time::timeout(self.timeout, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| (format!("cannot reach the collector: {err}"), true))?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map_err(|err| (format!("reading the answer: {err}"), true))?;
            Ok::<_, (String, bool)>((head, body.trailers().cloned()))
        })
        .await
        .map_err(|_| (format!("no answer within {:?}", self.timeout), true))??;
        let (head, trailers) = response;
        match self.protocol {
            Protocol::HttpProtobuf => {
                if head.status.is_success() {
                    return Ok(());
                }
                let retry = matches!(head.status.as_u16(), 429 | 502 | 503 | 504);
                Err((
                    format!("the collector answered HTTP {}", head.status),
                    retry,
                ))
            }
            Protocol::Grpc => {
                let status = trailers
                    .as_ref()
                    .and_then(|t| t.get("grpc-status"))
                    .or_else(|| head.headers.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok());
                match status {
                    Some(0) if head.status.is_success() => Ok(()),
                    Some(code) => Err((
                        format!("the collector answered gRPC status {code}"),
                        matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15),
                    )),
                    None => Err((
                        format!(
                            "the collector answered HTTP {} without a gRPC status",
                            head.status
                        ),
                        head.status.is_server_error(),
                    )),
                }
            }
        }
    }

    /// The request body for `batch`, framed and compressed as the protocol wants.
    fn body(&self, batch: &[SpanData]) -> Result<Bytes, String> {
        let message = encode_request(&self.resource, batch);
        let message = if self.gzip {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(message.len() / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(&message)
                .and_then(|()| gz.finish())
                .map_err(|err| format!("gzip: {err}"))?
        } else {
            message
        };
        Ok(match self.protocol {
            Protocol::HttpProtobuf => Bytes::from(message),
            Protocol::Grpc => {
                let len = u32::try_from(message.len())
                    .map_err(|_| "the batch is too large for one message".to_owned())?;
                let mut framed = Vec::with_capacity(5 + message.len());
                framed.put_u8(u8::from(self.gzip));
                framed.put_u32(len);
                framed.extend_from_slice(&message);
                Bytes::from(framed)
            }
        })
    }
}

impl SpanExporter for OtlpExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let body = self.body(&batch);
        drop(batch);
        async move {
            let body = body.map_err(OTelSdkError::InternalFailure)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.send(body.clone()).await {
                    Ok(()) => return Ok(()),
                    Err((error, retry)) if retry && attempt < ATTEMPTS => {
                        tracing::debug!(%error, attempt, "traces: export failed; retrying");
                        let backoff = 100 * 2u64.pow(attempt - 1);
                        let jitter = rand::random_range(0..=backoff / 2);
                        tokio::time::sleep(Duration::from_millis(backoff + jitter)).await;
                    }
                    Err((error, _)) => {
                        tracing::warn!(%error, attempts = attempt, "traces: a batch of spans was not exported");
                        return Err(OTelSdkError::InternalFailure(error));
                    }
                }
            }
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut buf = Vec::new();
        for (key, value) in resource.iter() {
            Kv(key.as_str(), value).field(&mut buf, 1);
        }
        self.resource = buf;
    }
}

/// `k=v,k=v` with percent-encoded values (W3C baggage octets), as the OTLP exporter
/// specification defines `OTEL_EXPORTER_OTLP_HEADERS`.
fn parse_headers(list: &str) -> Result<Vec<(HeaderName, HeaderValue)>, ServerError> {
    let bad = |why: String| ServerError::Traces(format!("OTEL_EXPORTER_OTLP_HEADERS: {why}"));
    let mut out = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("`{pair}` is not name=value")))?;
        let name = HeaderName::from_bytes(percent_decode(name.trim()).as_bytes())
            .map_err(|_| bad(format!("`{name}` is not a header name")))?;
        let value = HeaderValue::from_str(&percent_decode(value.trim()))
            .map_err(|_| bad(format!("the value of `{name}` is not a header value")))?;
        out.push((name, value));
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

// ---- Protobuf, by hand: the few messages of an OTLP trace export. ----

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, u64::from(field << 3 | u32::from(wire)));
}

fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(buf, field, LEN);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn bytes_field_len(field: u32, len: usize) -> usize {
    key_len(field) + varint_len(len as u64) + len
}

/// A non-empty string field (proto3 leaves empty ones out).
fn str_field(buf: &mut Vec<u8>, field: u32, text: &str) {
    if !text.is_empty() {
        bytes_field(buf, field, text.as_bytes());
    }
}

fn str_field_len(field: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        bytes_field_len(field, text.len())
    }
}

fn varint_field(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, VARINT);
        varint(buf, value);
    }
}

fn varint_field_len(field: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(field) + varint_len(value)
    }
}

fn fixed64_field(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed64_field_len(field: u32, value: u64) -> usize {
    if value == 0 { 0 } else { key_len(field) + 8 }
}

/// A message that knows its encoded length.
trait Message {
    fn len(&self) -> usize;
    fn encode(&self, buf: &mut Vec<u8>);

    /// Writes the message as field `field` of its parent.
    fn field(&self, buf: &mut Vec<u8>, field: u32) {
        key(buf, field, LEN);
        varint(buf, self.len() as u64);
        self.encode(buf);
    }

    fn field_len(&self, field: u32) -> usize {
        bytes_field_len(field, self.len())
    }
}

/// `AnyValue`.
struct Any<'a>(&'a Value);

impl Message for Any<'_> {
    fn len(&self) -> usize {
        match self.0 {
            Value::String(s) => bytes_field_len(1, s.as_str().len()),
            Value::Bool(b) => key_len(2) + varint_len(u64::from(*b)),
            Value::I64(i) => key_len(3) + varint_len(*i as u64),
            Value::F64(_) => key_len(4) + 8,
            Value::Array(array) => bytes_field_len(5, array_len(array)),
            _ => 0,
        }
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        // Every variant is written even when zero: a oneof's presence is its value.
        match self.0 {
            Value::String(s) => bytes_field(buf, 1, s.as_str().as_bytes()),
            Value::Bool(b) => {
                key(buf, 2, VARINT);
                varint(buf, u64::from(*b));
            }
            Value::I64(i) => {
                key(buf, 3, VARINT);
                varint(buf, *i as u64);
            }
            Value::F64(f) => {
                key(buf, 4, FIXED64);
                buf.extend_from_slice(&f.to_le_bytes());
            }
            Value::Array(array) => {
                key(buf, 5, LEN);
                varint(buf, array_len(array) as u64);
                encode_array(buf, array);
            }
            _ => {}
        }
    }
}

/// `ArrayValue { repeated AnyValue values = 1; }`, from the elements' own values.
fn array_len(array: &Array) -> usize {
    let mut len = 0;
    for_each_value(array, |value| len += Any(&value).field_len(1));
    len
}

fn encode_array(buf: &mut Vec<u8>, array: &Array) {
    for_each_value(array, |value| Any(&value).field(buf, 1));
}

fn for_each_value(array: &Array, mut f: impl FnMut(Value)) {
    match array {
        Array::Bool(v) => v.iter().for_each(|b| f(Value::Bool(*b))),
        Array::I64(v) => v.iter().for_each(|i| f(Value::I64(*i))),
        Array::F64(v) => v.iter().for_each(|x| f(Value::F64(*x))),
        Array::String(v) => v.iter().for_each(|s| f(Value::String(s.clone()))),
        _ => {}
    }
}

/// `KeyValue`.
struct Kv<'a>(&'a str, &'a Value);

impl Message for Kv<'_> {
    fn len(&self) -> usize {
        str_field_len(1, self.0) + Any(self.1).field_len(2)
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        str_field(buf, 1, self.0);
        Any(self.1).field(buf, 2);
    }
}

fn attributes_len(field: u32, attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| Kv(kv.key.as_str(), &kv.value).field_len(field))
        .sum()
}

fn encode_attributes(buf: &mut Vec<u8>, field: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        Kv(kv.key.as_str(), &kv.value).field(buf, field);
    }
}

fn nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `Span.Event`.
struct Event<'a>(&'a opentelemetry::trace::Event);

impl Message for Event<'_> {
    fn len(&self) -> usize {
        fixed64_field_len(1, nanos(self.0.timestamp))
            + str_field_len(2, &self.0.name)
            + attributes_len(3, &self.0.attributes)
            + varint_field_len(4, u64::from(self.0.dropped_attributes_count))
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        fixed64_field(buf, 1, nanos(self.0.timestamp));
        str_field(buf, 2, &self.0.name);
        encode_attributes(buf, 3, &self.0.attributes);
        varint_field(buf, 4, u64::from(self.0.dropped_attributes_count));
    }
}

/// `Span.Link`.
struct Link<'a>(&'a opentelemetry::trace::Link);

impl Message for Link<'_> {
    fn len(&self) -> usize {
        let context = &self.0.span_context;
        bytes_field_len(1, 16)
            + bytes_field_len(2, 8)
            + str_field_len(3, &context.trace_state().header())
            + attributes_len(4, &self.0.attributes)
            + varint_field_len(5, u64::from(self.0.dropped_attributes_count))
            + key_len(6)
            + 4
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        let context = &self.0.span_context;
        bytes_field(buf, 1, &context.trace_id().to_bytes());
        bytes_field(buf, 2, &context.span_id().to_bytes());
        str_field(buf, 3, &context.trace_state().header());
        encode_attributes(buf, 4, &self.0.attributes);
        varint_field(buf, 5, u64::from(self.0.dropped_attributes_count));
        key(buf, 6, FIXED32);
        buf.extend_from_slice(
            &flags(context.trace_flags().to_u8(), context.is_remote()).to_le_bytes(),
        );
    }
}

/// The W3C trace flags and whether the context is remote, as OTLP's `flags` field has
/// them (bits 8 and 9 say that the remote bit is known, and its value).
fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

/// `Status`.
struct SpanStatus<'a>(&'a Status);

impl Message for SpanStatus<'_> {
    fn len(&self) -> usize {
        match self.0 {
            Status::Unset => 0,
            Status::Ok => varint_field_len(3, 1),
            Status::Error { description } => str_field_len(2, description) + varint_field_len(3, 2),
        }
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        match self.0 {
            Status::Unset => {}
            Status::Ok => varint_field(buf, 3, 1),
            Status::Error { description } => {
                str_field(buf, 2, description);
                varint_field(buf, 3, 2);
            }
        }
    }
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `Span`.
struct Span<'a> {
    span: &'a SpanData,
    /// The trace state, as its header (computed once for both passes).
    trace_state: String,
}

impl<'a> Span<'a> {
    fn new(span: &'a SpanData) -> Self {
        Self {
            span,
            trace_state: span.span_context.trace_state().header(),
        }
    }

    fn has_parent(&self) -> bool {
        self.span.parent_span_id != opentelemetry::trace::SpanId::INVALID
    }
}

impl Message for Span<'_> {
    fn len(&self) -> usize {
        let s = self.span;
        bytes_field_len(1, 16)
            + bytes_field_len(2, 8)
            + str_field_len(3, &self.trace_state)
            + if self.has_parent() {
                bytes_field_len(4, 8)
            } else {
                0
            }
            + str_field_len(5, &s.name)
            + varint_field_len(6, kind(&s.span_kind))
            + fixed64_field_len(7, nanos(s.start_time))
            + fixed64_field_len(8, nanos(s.end_time))
            + attributes_len(9, &s.attributes)
            + varint_field_len(10, u64::from(s.dropped_attributes_count))
            + s.events
                .events
                .iter()
                .map(|e| Event(e).field_len(11))
                .sum::<usize>()
            + varint_field_len(12, u64::from(s.events.dropped_count))
            + s.links
                .links
                .iter()
                .map(|l| Link(l).field_len(13))
                .sum::<usize>()
            + varint_field_len(14, u64::from(s.links.dropped_count))
            + SpanStatus(&s.status).field_len(15)
            + key_len(16)
            + 4
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        let s = self.span;
        let context = &s.span_context;
        bytes_field(buf, 1, &context.trace_id().to_bytes());
        bytes_field(buf, 2, &context.span_id().to_bytes());
        str_field(buf, 3, &self.trace_state);
        if self.has_parent() {
            bytes_field(buf, 4, &s.parent_span_id.to_bytes());
        }
        str_field(buf, 5, &s.name);
        varint_field(buf, 6, kind(&s.span_kind));
        fixed64_field(buf, 7, nanos(s.start_time));
        fixed64_field(buf, 8, nanos(s.end_time));
        encode_attributes(buf, 9, &s.attributes);
        varint_field(buf, 10, u64::from(s.dropped_attributes_count));
        for event in &s.events.events {
            Event(event).field(buf, 11);
        }
        varint_field(buf, 12, u64::from(s.events.dropped_count));
        for link in &s.links.links {
            Link(link).field(buf, 13);
        }
        varint_field(buf, 14, u64::from(s.links.dropped_count));
        // Written even when unset (empty), as the generated types write it.
        SpanStatus(&s.status).field(buf, 15);
        key(buf, 16, FIXED32);
        let span_flags = flags(context.trace_flags().to_u8(), s.parent_span_is_remote);
        buf.extend_from_slice(&span_flags.to_le_bytes());
    }
}

/// `InstrumentationScope`.
struct Scope<'a>(&'a opentelemetry::InstrumentationScope);

impl Message for Scope<'_> {
    fn len(&self) -> usize {
        str_field_len(1, self.0.name())
            + self.0.version().map_or(0, |v| str_field_len(2, v))
            + self
                .0
                .attributes()
                .map(|kv| Kv(kv.key.as_str(), &kv.value).field_len(3))
                .sum::<usize>()
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        str_field(buf, 1, self.0.name());
        if let Some(version) = self.0.version() {
            str_field(buf, 2, version);
        }
        for kv in self.0.attributes() {
            Kv(kv.key.as_str(), &kv.value).field(buf, 3);
        }
    }
}

/// An `ExportTraceServiceRequest` of `spans`, with `resource` (the encoded attributes of
/// the `Resource` message): one `ResourceSpans`, one `ScopeSpans` per instrumentation
/// scope, in the order the scopes first appear.
pub(super) fn encode_request(resource: &[u8], spans: &[SpanData]) -> Vec<u8> {
    // Each span's length is computed once, and each scope's.
    let encoded: Vec<(Span<'_>, usize)> = spans
        .iter()
        .map(|span| {
            let span = Span::new(span);
            let len = span.len();
            (span, len)
        })
        .collect();
    // The scopes, in order of appearance (one, in practice), with their lengths.
    let mut scopes: Vec<(&opentelemetry::InstrumentationScope, usize)> = Vec::new();
    for (span, len) in &encoded {
        let scope = &span.span.instrumentation_scope;
        let len = bytes_field_len(2, *len);
        match scopes.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, total)) => *total += len,
            None => scopes.push((scope, Scope(scope).field_len(1) + len)),
        }
    }
    let resource_spans_len = bytes_field_len(1, resource.len())
        + scopes
            .iter()
            .map(|(_, len)| bytes_field_len(2, *len))
            .sum::<usize>();
    let mut buf = Vec::with_capacity(bytes_field_len(1, resource_spans_len));
    key(&mut buf, 1, LEN);
    varint(&mut buf, resource_spans_len as u64);
    bytes_field(&mut buf, 1, resource);
    for (scope, len) in scopes {
        key(&mut buf, 2, LEN);
        varint(&mut buf, len as u64);
        Scope(scope).field(&mut buf, 1);
        for (span, len) in encoded
            .iter()
            .filter(|(s, _)| s.span.instrumentation_scope == *scope)
        {
            key(&mut buf, 2, LEN);
            varint(&mut buf, *len as u64);
            span.encode(&mut buf);
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use opentelemetry::{
        InstrumentationScope,
        trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_proto::{
        tonic::collector::trace::v1::ExportTraceServiceRequest,
        transform::{
            common::tonic::ResourceAttributesWithSchema,
            trace::tonic::group_spans_by_resource_and_scope,
        },
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn span(n: u64, parent: bool, status: Status) -> SpanData {
        let state = TraceState::from_key_value([("vendor", "a"), ("other", "b")]).unwrap();
        let context = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736 + u128::from(n)),
            SpanId::from(n + 1),
            TraceFlags::SAMPLED,
            false,
            state,
        );
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "message",
            start + Duration::from_micros(10),
            vec![KeyValue::new("message.id", 1_i64)],
            0,
        ));
        events.dropped_count = 3;
        let mut links = SpanLinks::default();
        links.links.push(opentelemetry::trace::Link::new(
            context.clone(),
            vec![KeyValue::new("k", "v")],
            1,
        ));
        SpanData {
            span_context: context.clone(),
            parent_span_id: if parent {
                SpanId::from(0x00f0_67aa_0ba9_02b7)
            } else {
                SpanId::INVALID
            },
            parent_span_is_remote: parent,
            span_kind: if parent {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            name: Cow::Borrowed("basic.v1.BasicService/Hello"),
            start_time: start,
            end_time: start + Duration::from_micros(250),
            attributes: vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("server.port", 50051_i64),
                KeyValue::new("negative", -3_i64),
                KeyValue::new("zero", 0_i64),
                KeyValue::new("flag", false),
                KeyValue::new("ratio", 0.25),
                KeyValue::new("empty", ""),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec!["a".into(), "b".into()])),
                ),
                KeyValue::new("numbers", Value::Array(Array::I64(vec![1, -1]))),
            ],
            dropped_attributes_count: 2,
            events,
            links,
            status,
            instrumentation_scope: InstrumentationScope::builder("basic-service")
                .with_version("0.1.0")
                .build(),
        }
    }

    #[test]
    fn spans_encode_exactly_as_the_generated_otlp_types_do() {
        let resource = Resource::builder_empty()
            .with_service_name("basic-service")
            .with_attribute(KeyValue::new("deployment.environment.name", "test"))
            .build();
        let spans = vec![
            span(0, true, Status::Unset),
            span(1, false, Status::error("INTERNAL")),
            span(2, true, Status::Ok),
        ];
        let mut exporter_resource = Vec::new();
        for (key, value) in resource.iter() {
            Kv(key.as_str(), value).field(&mut exporter_resource, 1);
        }
        let ours = encode_request(&exporter_resource, &spans);
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).expect("valid protobuf");
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        // Resource attributes come out in the resource's own (hash) order either way.
        assert_eq!(decoded.resource_spans.len(), 1);
        let (mut ours, mut theirs) = (
            decoded.resource_spans[0].clone(),
            expected.resource_spans[0].clone(),
        );
        for r in [&mut ours, &mut theirs] {
            if let Some(resource) = r.resource.as_mut() {
                resource.attributes.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        assert_eq!(ours, theirs);
        // And byte for byte, once the attribute order is the same.
        assert_eq!(
            ExportTraceServiceRequest {
                resource_spans: vec![ours]
            }
            .encode_to_vec(),
            ExportTraceServiceRequest {
                resource_spans: vec![theirs]
            }
            .encode_to_vec()
        );
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
        }
    }

    #[test]
    fn headers_are_name_value_pairs_with_percent_encoded_values() {
        let headers = parse_headers("api-key=s%3Dcret, x-team = core ,").unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].0, "api-key");
        assert_eq!(headers[0].1, "s=cret");
        assert_eq!(headers[1].1, "core");
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("bad name=x").is_err());
    }

    #[test]
    fn endpoints_and_settings_are_checked() {
        let none = |_: &str| None;
        assert!(
            OtlpExporter::new(Protocol::HttpProtobuf, "https://c:4318/v1/traces", &none).is_err()
        );
        assert!(OtlpExporter::new(Protocol::HttpProtobuf, "c:4318", &none).is_err());
        let grpc = OtlpExporter::new(Protocol::Grpc, "http://c:4317/", &none).unwrap();
        assert_eq!(grpc.uri.path(), GRPC_EXPORT);
        let timeout = |name: &str| (name == "OTEL_EXPORTER_OTLP_TIMEOUT").then(|| "250".to_owned());
        let http =
            OtlpExporter::new(Protocol::HttpProtobuf, "http://c:4318/v1/traces", &timeout).unwrap();
        assert_eq!(http.timeout, Duration::from_millis(250));
        let zstd =
            |name: &str| (name == "OTEL_EXPORTER_OTLP_COMPRESSION").then(|| "zstd".to_owned());
        assert!(OtlpExporter::new(Protocol::Grpc, "http://c:4317", &zstd).is_err());
    }
}
