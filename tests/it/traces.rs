//! OpenTelemetry traces: the binary, configured by the standard `OTEL_*` variables,
//! exports to a real OTLP receiver (gRPC and HTTP/protobuf) that the test runs on
//! loopback: ids and parents, names, attributes, statuses, stream spans, sampling,
//! export off, a collector that is down, and the flush at shutdown.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use basic_service::client::{ClientOptions, connect};
use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind, status::StatusCode as SpanStatus},
};
use prost::Message as _;
use volo_gen::{
    basic::service::v1::{BackgroundRequest, HelloRequest},
    grpc::health::v1::{HealthCheckRequest, HealthClientBuilder},
};
use volo_grpc::Code;

use crate::{
    common::{next_ok, say},
    process::Server,
    wire::{WebBody, frame, grpc_web, h1},
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str, sampled: bool) -> String {
    format!(
        "00-{trace_id}-{PARENT_ID}-{}",
        if sampled { "01" } else { "00" }
    )
}

/// A span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
    /// The path it came on (`/v1/traces` or the gRPC method).
    path: String,
}

/// An OTLP trace receiver on loopback: HTTP/protobuf (`/v1/traces`) and gRPC
/// (`TraceService/Export`) on one port, HTTP/1.1 and HTTP/2.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
}

const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type ReplyBody =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let sink = Arc::clone(&sink);
                    async move { Ok::<_, Infallible>(receive(req, &sink).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (at most 15 s) until the spans received satisfy `done`.
    async fn wait_for(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..750 {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("spans never arrived; got {:#?}", self.spans());
    }

    /// Waits for the span named `name` of trace `trace_id` (hex).
    async fn span(&self, trace_id: &str, name: &str) -> Received {
        let spans = self
            .wait_for(|spans| {
                spans
                    .iter()
                    .any(|r| hex(&r.span.trace_id) == trace_id && r.span.name == name)
            })
            .await;
        spans
            .into_iter()
            .find(|r| hex(&r.span.trace_id) == trace_id && r.span.name == name)
            .unwrap()
    }
}

async fn receive(req: Request<Incoming>, sink: &Mutex<Vec<Received>>) -> Response<ReplyBody> {
    let path = req.uri().path().to_owned();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return reply(StatusCode::BAD_REQUEST, "text/plain", vec![]);
    };
    let (message, grpc) = match path.as_str() {
        "/v1/traces" => (body, false),
        GRPC_EXPORT if body.len() >= 5 && body[0] == 0 => (body.slice(5..), true),
        _ => return reply(StatusCode::NOT_FOUND, "text/plain", vec![]),
    };
    let Ok(request) = ExportTraceServiceRequest::decode(message) else {
        return reply(StatusCode::BAD_REQUEST, "text/plain", vec![]);
    };
    {
        let mut spans = sink.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                        path: path.clone(),
                    });
                }
            }
        }
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    if !grpc {
        return reply(
            StatusCode::OK,
            "application/x-protobuf",
            vec![Frame::data(answer.into())],
        );
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(answer.len() as u32).to_be_bytes());
    framed.extend_from_slice(&answer);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    reply(
        StatusCode::OK,
        "application/grpc",
        vec![Frame::data(framed.into()), Frame::trailers(trailers)],
    )
}

fn reply(status: StatusCode, content_type: &str, frames: Vec<Frame<Bytes>>) -> Response<ReplyBody> {
    let body = StreamBody::new(futures::stream::iter(
        frames.into_iter().map(Ok).collect::<Vec<_>>(),
    ));
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        .unwrap()
}

/// Whether the span's status is unset (absent, or present with code UNSET).
fn status_unset(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_none_or(|s| s.code == SpanStatus::Unset as i32)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attr(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attributes, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// The binary exporting to `receiver` over `protocol`, exporting batches every 100 ms.
fn traced_server(receiver: &Receiver, protocol: &str, extra: &[&str]) -> Server {
    let endpoint = receiver.endpoint();
    Server::start_with_env(
        None,
        extra,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", "basic-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
}

fn client(addr: SocketAddr) -> volo_gen::basic::v1::BasicServiceClient {
    connect(&ClientOptions {
        timeout: Some(Duration::from_secs(10)),
        ..ClientOptions::new(addr)
    })
    .expect("client")
}

/// `message` as a request whose caller's sampled span is in trace `trace`.
fn sampled<T>(message: T, trace: &str) -> volo_grpc::Request<T> {
    let mut req = volo_grpc::Request::new(message);
    req.metadata_mut()
        .insert("traceparent", traceparent(trace, true).parse().unwrap());
    req
}

/// A Hello carrying `traceparent` (and `tracestate`, if given).
fn hello(traceparent: &str, tracestate: Option<&str>) -> volo_grpc::Request<HelloRequest> {
    let mut req = volo_grpc::Request::new(HelloRequest {
        message: "trace".into(),
    });
    req.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    if let Some(state) = tracestate {
        req.metadata_mut()
            .insert("tracestate", state.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn a_call_is_a_server_span_child_of_the_callers_over_grpc_export() {
    let receiver = Receiver::start().await;
    let server = traced_server(&receiver, "grpc", &[]);
    client(server.addr)
        .hello(hello(
            &traceparent(TRACE_ID, true),
            Some("vendor=a,other=b"),
        ))
        .await
        .expect("hello");
    let got = receiver.span(TRACE_ID, "basic.v1.BasicService/Hello").await;
    let span = &got.span;
    assert_eq!(got.path, GRPC_EXPORT);
    assert_eq!(got.service, "basic-test");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    // The caller's tracestate entries, in order.
    assert_eq!(span.trace_state, "vendor=a,other=b");
    let a = &span.attributes;
    assert_eq!(string_attr(a, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        string_attr(a, "rpc.service").as_deref(),
        Some("basic.v1.BasicService")
    );
    assert_eq!(string_attr(a, "rpc.method").as_deref(), Some("Hello"));
    assert_eq!(int_attr(a, "rpc.grpc.status_code"), Some(0));
    assert_eq!(
        string_attr(a, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        int_attr(a, "server.port"),
        Some(i64::from(server.addr.port()))
    );
    assert_eq!(
        string_attr(a, "network.peer.address").as_deref(),
        Some("127.0.0.1")
    );
    assert!(int_attr(a, "network.peer.port").is_some_and(|p| p > 0));
    // OK is not an error: the status stays unset.
    assert!(status_unset(span), "{:?}", span.status);
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);

    // The access log line carries the same ids.
    let line = server
        .wait_for_line(&format!("\"trace_id\":\"{TRACE_ID}\""))
        .await
        .expect("an access line with the trace id");
    assert!(
        line.contains(&format!("\"span_id\":\"{}\"", hex(&span.span_id))),
        "{line}"
    );
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn streams_are_one_span_each_over_http_protobuf_export() {
    let receiver = Receiver::start().await;
    let server = traced_server(
        &receiver,
        "http/protobuf",
        &[
            "--sim-delay-min-ms",
            "200",
            "--sim-delay-max-ms",
            "300",
            "--sim-failure-rate",
            "0",
        ],
    );
    let client = client(server.addr);

    // Background: the span lasts until the last message; each simulated call is a child.
    let trace = "11111111111111111111111111111111";
    let req = sampled(BackgroundRequest { processes: 5 }, trace);
    let mut stream = Box::pin(
        client
            .background(req)
            .await
            .expect("background")
            .into_inner(),
    );
    let mut messages = 0;
    while let Some(message) = stream.next().await {
        message.expect("a message");
        messages += 1;
    }
    let call = receiver
        .span(trace, "basic.v1.BasicService/Background")
        .await;
    assert_eq!(call.path, "/v1/traces");
    let span = &call.span;
    let lasted = span.end_time_unix_nano - span.start_time_unix_nano;
    assert!(lasted >= 200_000_000, "the span lasted {lasted} ns");
    // One `message` event per message sent.
    let sent = span.events.iter().filter(|e| e.name == "message").count();
    assert_eq!(sent, messages, "{:?}", span.events);
    let spans = receiver
        .wait_for(|spans| {
            spans
                .iter()
                .filter(|r| r.span.parent_span_id == span.span_id)
                .count()
                == 5
        })
        .await;
    for child in spans
        .iter()
        .filter(|r| r.span.parent_span_id == span.span_id)
    {
        assert_eq!(child.span.name, "simulated call");
        assert_eq!(child.span.kind, SpanKind::Client as i32);
        assert_eq!(hex(&child.span.trace_id), trace);
        assert!(string_attr(&child.span.attributes, "basic.simulated.protocol").is_some());
        assert!(child.span.end_time_unix_nano <= span.end_time_unix_nano);
    }

    // Talk: one event per turn, no message text.
    let trace = "22222222222222222222222222222222";
    let (tx, rx) = async_channel(8);
    let req = sampled(rx, trace);
    let mut answers = Box::pin(client.talk(req).await.expect("talk").into_inner());
    for text in ["Men are all alike.", "They're always bugging us.", "bye"] {
        tx.send(say(text)).await.unwrap();
        let _ = next_ok(&mut answers).await;
    }
    drop(tx);
    while let Some(answer) = answers.next().await {
        answer.expect("an answer");
    }
    let talk = receiver.span(trace, "basic.v1.BasicService/Talk").await;
    let events: Vec<_> = talk
        .span
        .events
        .iter()
        .filter(|e| e.name == "message")
        .collect();
    assert_eq!(events.len(), 3, "{:?}", talk.span.events);
    for (n, event) in events.iter().enumerate() {
        assert_eq!(
            int_attr(&event.attributes, "message.id"),
            Some(n as i64 + 1)
        );
        assert_eq!(
            string_attr(&event.attributes, "message.type").as_deref(),
            Some("SENT")
        );
        assert_eq!(event.attributes.len(), 2, "no text: {:?}", event.attributes);
    }
    assert!(server.stop().await.success());
}

/// A bounded channel whose receiver is a request stream for the volo client.
fn async_channel<T: Send + 'static>(
    size: usize,
) -> (
    tokio::sync::mpsc::Sender<T>,
    tokio_stream::wrappers::ReceiverStream<T>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(size);
    (tx, tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[tokio::test]
async fn statuses_follow_the_grpc_server_conventions_and_a_cancelled_call_ends_its_span() {
    let receiver = Receiver::start().await;
    let server = traced_server(&receiver, "grpc", &["--max-processes", "10"]);
    let client = client(server.addr);

    // INVALID_ARGUMENT: a client's error, not the server's.
    let trace = "33333333333333333333333333333333";
    let req = sampled(BackgroundRequest { processes: 11 }, trace);
    let status = client.background(req).await.err().expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let span = receiver
        .span(trace, "basic.v1.BasicService/Background")
        .await
        .span;
    assert_eq!(int_attr(&span.attributes, "rpc.grpc.status_code"), Some(3));
    assert!(status_unset(&span), "{:?}", span.status);

    // UNIMPLEMENTED (an unknown method, over raw HTTP/2): ERROR.
    let trace = "44444444444444444444444444444444";
    let conn = crate::raw::connect(server.addr).await;
    let tp = traceparent(trace, true);
    conn.call(
        crate::raw::grpc_request("/basic.v1.BasicService/Nope", &[("traceparent", &tp)]),
        &crate::raw::grpc_frame(&[]),
    )
    .await
    .expect("a reply");
    let span = receiver.span(trace, "_OTHER").await.span;
    assert_eq!(int_attr(&span.attributes, "rpc.grpc.status_code"), Some(12));
    assert_eq!(
        string_attr(&span.attributes, "rpc.method").as_deref(),
        Some("_OTHER")
    );
    let status = span.status.expect("a status");
    assert_eq!(status.code, SpanStatus::Error as i32);

    // A Talk stream the client drops: CANCELLED, and the span still ends.
    let trace = "55555555555555555555555555555555";
    let (tx, rx) = async_channel(8);
    let req = sampled(rx, trace);
    let mut answers = Box::pin(client.talk(req).await.expect("talk").into_inner());
    tx.send(say("Hello")).await.unwrap();
    let _ = next_ok(&mut answers).await;
    drop(answers);
    drop(tx);
    let span = receiver
        .span(trace, "basic.v1.BasicService/Talk")
        .await
        .span;
    assert_eq!(int_attr(&span.attributes, "rpc.grpc.status_code"), Some(1));
    assert!(status_unset(&span), "{:?}", span.status);
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn an_unsampled_parent_exports_nothing_and_no_parent_starts_a_trace() {
    let receiver = Receiver::start().await;
    let server = traced_server(&receiver, "grpc", &[]);
    let client = client(server.addr);
    let unsampled = "66666666666666666666666666666666";
    client
        .hello(hello(&traceparent(unsampled, false), None))
        .await
        .expect("hello");
    // A call without a traceparent: a new trace, no parent.
    client
        .hello(HelloRequest {
            message: "root".into(),
        })
        .await
        .expect("hello");
    let spans = receiver
        .wait_for(|spans| spans.iter().any(|r| r.span.parent_span_id.is_empty()))
        .await;
    let root = spans
        .iter()
        .find(|r| r.span.parent_span_id.is_empty())
        .unwrap();
    assert_eq!(root.span.trace_id.len(), 16);
    assert_ne!(hex(&root.span.trace_id), unsampled);
    // Both calls ended before the root's batch went out; the unsampled one was not in it.
    assert!(
        spans.iter().all(|r| hex(&r.span.trace_id) != unsampled),
        "{spans:#?}"
    );
    // Its log line still joins the caller's trace.
    let line = server
        .wait_for_line(&format!("\"trace_id\":\"{unsampled}\""))
        .await;
    assert!(line.is_some());
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn health_and_reflection_are_traced_only_when_asked() {
    for (flag, traced) in [(None, false), (Some("--trace-health-and-reflection"), true)] {
        let receiver = Receiver::start().await;
        let extra: Vec<&str> = flag.into_iter().collect();
        let server = traced_server(&receiver, "grpc", &extra);
        let health = HealthClientBuilder::new("health")
            .address(volo::net::Address::from(server.addr))
            .build();
        let trace = "77777777777777777777777777777777";
        let req = sampled(HealthCheckRequest::default(), trace);
        health.check(req).await.expect("check");
        // A traced call after it: once its span is in, the health span would be too.
        let marker = "88888888888888888888888888888888";
        client(server.addr)
            .hello(hello(&traceparent(marker, true), None))
            .await
            .expect("hello");
        let spans = receiver
            .wait_for(|spans| spans.iter().any(|r| hex(&r.span.trace_id) == marker))
            .await;
        let health_span = spans.iter().find(|r| hex(&r.span.trace_id) == trace);
        assert_eq!(health_span.is_some(), traced, "{flag:?}: {spans:#?}");
        if let Some(span) = health_span {
            assert_eq!(span.span.name, "grpc.health.v1.Health/Check");
        }
        assert!(server.stop().await.success());
    }
}

#[tokio::test]
async fn grpc_web_calls_carry_the_callers_trace_too() {
    let receiver = Receiver::start().await;
    let server = traced_server(&receiver, "http/protobuf", &[]);
    let trace = "99999999999999999999999999999999";
    let mut req = grpc_web(
        "/basic.v1.BasicService/Hello",
        &[frame(&HelloRequest {
            message: "web".into(),
        })],
    );
    req.headers_mut()
        .insert("traceparent", traceparent(trace, true).parse().unwrap());
    let resp = h1(server.addr, req).await;
    assert_eq!(WebBody::parse(resp.body().clone()).status(), Some("0"));
    let span = receiver
        .span(trace, "basic.v1.BasicService/Hello")
        .await
        .span;
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn with_export_off_the_log_still_joins_the_callers_trace() {
    let server = Server::start(None, &[]);
    server
        .wait_for_line("traces: not exported")
        .await
        .expect("the start-up line says where spans go");
    client(server.addr)
        .hello(hello(&traceparent(TRACE_ID, true), None))
        .await
        .expect("hello");
    let line = server
        .wait_for_line(&format!("\"trace_id\":\"{TRACE_ID}\""))
        .await
        .expect("an access line with the caller's trace id");
    let at = line.find("\"span_id\":\"").expect("a span id") + 11;
    let span_id = &line[at..at + 16];
    assert!(span_id.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    assert_ne!(span_id, PARENT_ID);
    // No traceparent: no ids.
    client(server.addr)
        .hello(HelloRequest {
            message: "plain".into(),
        })
        .await
        .expect("hello");
    let lines = server.lines();
    let plain: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"target\":\"access\"") && !l.contains(TRACE_ID))
        .collect();
    assert!(plain.iter().all(|l| !l.contains("trace_id")), "{plain:?}");
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn a_collector_that_is_down_costs_calls_nothing_and_does_not_hold_the_exit() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for protocol in ["grpc", "http/protobuf"] {
        let endpoint = format!("http://{closed}");
        let server = Server::start_with_env(
            None,
            &["--shutdown-grace-secs", "2"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ],
        );
        let line = server
            .wait_for_line("traces: exporting spans")
            .await
            .expect("the start-up line");
        assert!(line.contains(&closed.to_string()), "{line}");
        let client = client(server.addr);
        for _ in 0..200 {
            client
                .hello(hello(&traceparent(TRACE_ID, true), None))
                .await
                .expect("every call succeeds");
        }
        // The exit is bounded by the grace period, not the collector.
        let stopped = tokio::time::timeout(Duration::from_secs(20), server.stop()).await;
        assert!(stopped.expect("exits").success(), "{protocol}");
    }
}

#[tokio::test]
async fn shutdown_flushes_the_spans_still_queued() {
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    // Batches would go out only every minute: the spans are still queued at SIGTERM.
    let server = Server::start_with_env(
        None,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ],
    );
    let client = client(server.addr);
    for _ in 0..5 {
        client
            .hello(hello(&traceparent(TRACE_ID, true), None))
            .await
            .expect("hello");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.spans().is_empty());
    assert!(server.stop().await.success());
    let spans = receiver.spans();
    assert_eq!(spans.len(), 5, "{spans:#?}");
    // Named after the binary unless OTEL_SERVICE_NAME says otherwise.
    assert!(spans.iter().all(|r| r.service == "basic-service"));
}
