//! OpenTelemetry traces: W3C trace context in, one SERVER span per call, OTLP out.
//!
//! **Configuration** is the OpenTelemetry SDK's own, from the standard variables. Export
//! is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set (and `OTEL_SDK_DISABLED` is not `true`, `OTEL_TRACES_EXPORTER` not `none`). The
//! resource, the sampler (default `parentbased_always_on`) and the batch processor
//! (`OTEL_BSP_*`) are read by the SDK; the exporter's headers, timeout and compression by
//! [`otlp`], our OTLP exporter; the endpoint, the protocol (`grpc` or `http/protobuf`,
//! the default) and `OTEL_PROPAGATORS` (default `tracecontext,baggage`) here.
//!
//! **Per call** ([`Traces::start`]): the caller's `traceparent`/`tracestate` (from the
//! request headers, so on every protocol) become the parent of the call's span, named
//! after its route (`basic.v1.BasicService/Hello`) with the attributes the gRPC
//! instrumentations emit. The call's end-of-call observer ends it ([`CallTrace::end`])
//! with the gRPC code: a stream's span lasts until its last message. Streamed replies add
//! a `message` event each (one per Talk turn); Background adds a child span per simulated
//! call, at most [`MAX_CHILD_SPANS`] per call ([`Children`]). Health and reflection are
//! traced only when asked. With export off, a call whose caller sent a `traceparent` still
//! gets a span id, so its log line carries ids that join the caller's trace.
//!
//! **Export never waits on the request path**: an ended span goes to the SDK's batch
//! processor (its own thread) through a bounded queue ([`Bounded`]); when
//! `OTEL_BSP_MAX_QUEUE_SIZE` spans are waiting for export, further spans are dropped and
//! counted (`basic_trace_spans_dropped_total`, and a line at exit). The exports run on the
//! server's runtime, each bounded by `OTEL_BSP_EXPORT_TIMEOUT` ([`OnRuntime`]), so a slow
//! or dead collector costs calls nothing; at shutdown [`Flush`] gives the queue what is
//! left of the grace period.

use std::{
    borrow::Cow,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use opentelemetry::{
    Context, KeyValue, StringValue,
    propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator},
    trace::{
        Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _,
        TracerProvider as _,
    },
};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span as SdkSpan,
        SpanData, SpanExporter, SpanProcessor,
    },
};
use volo_grpc::Code;

use crate::{call::Route, error::ServerError};

mod otlp;

use otlp::OtlpExporter;

/// Child spans one call may add (Background's simulated calls); the rest are counted on
/// the call's span, so one large call cannot flood the exporter's queue.
pub(crate) const MAX_CHILD_SPANS: u32 = 100;

/// What the server traces, beyond the OpenTelemetry variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// Read the `OTEL_*` variables (the binary does; a `Config` built in code does not,
    /// so tests and embedders opt in).
    pub otel_env: bool,
    /// Trace health checks and reflection calls too.
    pub health_and_reflection: bool,
}

/// The server's tracing: how it reads trace context and where its spans go.
pub(crate) struct Traces {
    /// `None`: spans are not exported (ids are still read, for the logs).
    export: Option<Export>,
    propagator: TextMapCompositePropagator,
    /// Whether `traceparent` is read at all (`tracecontext` is a propagator).
    tracecontext: bool,
    health_and_reflection: bool,
    /// The listening address (`server.address`, `server.port`).
    server_address: StringValue,
    server_port: i64,
}

struct Export {
    tracer: Arc<SdkTracer>,
}

impl Traces {
    /// Tracing as `config` and the environment say, for a server listening on `listen`.
    /// Must run on the server's runtime (the exporter runs its exports there).
    pub(crate) fn new(
        config: &TraceConfig,
        listen: SocketAddr,
    ) -> Result<(Self, Flush), ServerError> {
        let env = |name: &str| {
            config
                .otel_env
                .then(|| std::env::var(name).ok())
                .flatten()
                .filter(|value| !value.trim().is_empty())
        };
        let (propagator, tracecontext) = propagators(env("OTEL_PROPAGATORS").as_deref());
        let (export, flush) = match Destination::of(&env)? {
            None => (None, Flush(None)),
            Some(destination) => {
                let (provider, queue) = provider(&destination, &env)?;
                tracing::info!(
                    endpoint = %destination.endpoint,
                    protocol = destination.protocol.name(),
                    "traces: exporting spans over OTLP"
                );
                let tracer = provider.tracer_with_scope(
                    opentelemetry::InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
                        .with_version(env!("CARGO_PKG_VERSION"))
                        .build(),
                );
                (
                    Some(Export {
                        tracer: Arc::new(tracer),
                    }),
                    Flush(Some((provider, queue))),
                )
            }
        };
        if export.is_none() {
            tracing::info!("traces: not exported (set OTEL_EXPORTER_OTLP_ENDPOINT to export them)");
        }
        let traces = Self {
            export,
            propagator,
            tracecontext,
            health_and_reflection: config.health_and_reflection,
            // Reference-counted: each span clones it.
            server_address: StringValue::from(Arc::<str>::from(listen.ip().to_string())),
            server_port: i64::from(listen.port()),
        };
        Ok((traces, flush))
    }

    /// The trace of a call to `route` (`None`: no such RPC) from `peer` (`peer_text`:
    /// the same, formatted), arriving now with `headers`.
    pub(crate) fn start(
        &self,
        headers: &http::HeaderMap,
        route: Option<Route>,
        peer: Option<SocketAddr>,
        peer_text: &str,
    ) -> CallTrace {
        if let Some(route) = route
            && !self.health_and_reflection
            && !route.is_of(&volo_gen::basic::v1::BASIC_SERVICE_RPCS)
        {
            return CallTrace::Off;
        }
        match &self.export {
            None => self.ids_only(headers),
            Some(export) => self.span(export, headers, route, peer, peer_text),
        }
    }

    /// The exported span of a call (out of line: the pipeline's hot path stays small
    /// when traces are off).
    #[inline(never)]
    fn span(
        &self,
        export: &Export,
        headers: &http::HeaderMap,
        route: Option<Route>,
        peer: Option<SocketAddr>,
        peer_text: &str,
    ) -> CallTrace {
        // Most calls carry no trace context: skip the propagators' lookups then.
        let parent = if headers.contains_key(TRACEPARENT) || headers.contains_key(BAGGAGE) {
            self.propagator.extract(&Headers(headers))
        } else {
            Context::new()
        };
        let (name, service, method) = match route {
            Some(route) => (
                // The path without its leading slash: `basic.v1.BasicService/Hello`.
                Cow::Borrowed(route.path().trim_start_matches('/')),
                Some(route.service.name),
                route.method.name,
            ),
            None => (Cow::Borrowed(OTHER), None, OTHER),
        };
        // The attributes are set once the sampler has decided (its decision does not
        // depend on them): a call it drops costs no attribute. The Vec has room for all,
        // the status code the end adds included.
        let started = SystemTime::now();
        let mut span = export
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(Vec::with_capacity(9))
            .start_with_context(&*export.tracer, &parent);
        if span.is_recording() {
            span.set_attribute(KeyValue::new("rpc.system", "grpc"));
            if let Some(service) = service {
                span.set_attribute(KeyValue::new("rpc.service", service));
            }
            span.set_attribute(KeyValue::new("rpc.method", method));
            span.set_attribute(KeyValue::new("server.address", self.server_address.clone()));
            span.set_attribute(KeyValue::new("server.port", self.server_port));
            if let Some(peer) = peer {
                span.set_attribute(KeyValue::new(
                    "network.peer.address",
                    ip_of(peer_text, peer),
                ));
                span.set_attribute(KeyValue::new("network.peer.port", i64::from(peer.port())));
            }
        }
        CallTrace::Span(Traced(Arc::new(CallSpan {
            started,
            context: span.span_context().clone(),
            span: Mutex::new(span),
            tracer: Arc::clone(&export.tracer),
        })))
    }

    /// With export off: the caller's trace id and a span id of our own, when the caller
    /// sent a valid `traceparent`, so the call's log line joins its trace.
    fn ids_only(&self, headers: &http::HeaderMap) -> CallTrace {
        if !self.tracecontext || !headers.contains_key(TRACEPARENT) {
            return CallTrace::Off;
        }
        Self::caller_ids(headers)
    }

    #[inline(never)]
    fn caller_ids(headers: &http::HeaderMap) -> CallTrace {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let parent = parent.span().span_context().clone();
        if !parent.is_valid() {
            return CallTrace::Off;
        }
        CallTrace::Ids {
            trace_id: parent.trace_id(),
            span_id: SpanId::from(rand::random::<u64>().max(1)),
        }
    }
}

/// The method name of a call to an unknown path (the semantic conventions' `_OTHER`).
const OTHER: &str = "_OTHER";
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const BAGGAGE: http::HeaderName = http::HeaderName::from_static("baggage");

/// The IP part of the peer's address, from its text (formatted once per connection)
/// rather than formatted again per call.
fn ip_of(text: &str, addr: SocketAddr) -> String {
    match text.rsplit_once(':') {
        Some((ip, _)) if !ip.is_empty() => {
            ip.trim_start_matches('[').trim_end_matches(']').to_owned()
        }
        _ => addr.ip().to_string(),
    }
}

/// The trace of one call.
#[derive(Debug)]
pub(crate) enum CallTrace {
    /// Not traced.
    Off,
    /// Not exported, but the caller sent a trace context: the ids its log line carries.
    Ids { trace_id: TraceId, span_id: SpanId },
    /// The call's span (recording, or not when the sampler said so).
    Span(Traced),
}

impl CallTrace {
    /// The trace and span ids for the log line.
    pub(crate) fn ids(&self) -> Option<Ids> {
        let (trace_id, span_id) = match self {
            CallTrace::Off => return None,
            CallTrace::Ids { trace_id, span_id } => (*trace_id, *span_id),
            CallTrace::Span(traced) => (traced.0.context.trace_id(), traced.0.context.span_id()),
        };
        Some(Ids::new(trace_id, span_id))
    }

    /// The span, for what the call adds to it (`None` when nothing would be recorded).
    pub(crate) fn recording(&self) -> Option<&Traced> {
        match self {
            CallTrace::Span(traced) if traced.is_recording() => Some(traced),
            _ => None,
        }
    }

    /// Ends the span, `elapsed` after the call arrived (by the monotonic clock: one
    /// clock read less, and immune to wall-clock steps), with the call's final `code`:
    /// `rpc.grpc.status_code`, and status ERROR for the codes the gRPC conventions
    /// count as server errors.
    pub(crate) fn end(&self, code: Code, elapsed: Duration) {
        if let Some(traced) = self.recording() {
            Self::end_span(traced, code, elapsed);
        }
    }

    #[inline(never)]
    fn end_span(traced: &Traced, code: Code, elapsed: Duration) {
        traced.with_span(|span| {
            span.set_attribute(KeyValue::new(
                "rpc.grpc.status_code",
                i64::from(i32::from(code)),
            ));
            if is_server_error(code) {
                span.set_status(Status::error(crate::call::status::code_name(code)));
            }
            span.end_with_timestamp(traced.0.started + elapsed);
        });
    }
}

/// A call's trace and span ids as lowercase hex, as the W3C and OTLP write them.
pub(crate) struct Ids {
    hex: [u8; 48],
}

impl Ids {
    fn new(trace_id: TraceId, span_id: SpanId) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 48];
        let bytes = trace_id.to_bytes().into_iter().chain(span_id.to_bytes());
        for (pair, byte) in hex.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        Self { hex }
    }

    /// 32 hex digits.
    pub(crate) fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.hex[..32]).unwrap_or_default()
    }

    /// 16 hex digits.
    pub(crate) fn span_id(&self) -> &str {
        std::str::from_utf8(&self.hex[32..]).unwrap_or_default()
    }
}

/// The codes the gRPC semantic conventions mark as errors on a server span.
pub(crate) fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// A call's span; the handlers of streaming RPCs find it in their request's extensions
/// when the call is traced. Cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub(crate) struct Traced(Arc<CallSpan>);

#[derive(Debug)]
struct CallSpan {
    /// When the call arrived, by the wall clock.
    started: SystemTime,
    /// The span's ids (for children and logs, without the lock).
    context: SpanContext,
    /// Locked only to add to the span: its messages' events and its end.
    span: Mutex<SdkSpan>,
    tracer: Arc<SdkTracer>,
}

impl Traced {
    fn is_recording(&self) -> bool {
        self.0.context.is_sampled()
    }

    /// Runs `f` on the span (nothing if a panic poisoned its lock).
    fn with_span(&self, f: impl FnOnce(&mut SdkSpan)) {
        if let Ok(mut span) = self.0.span.lock() {
            f(&mut span);
        }
    }

    /// Adds the `message` event of the `id`-th streamed reply (1-based).
    pub(crate) fn sent(&self, id: u64) {
        self.with_span(|span| {
            span.add_event(
                "message",
                vec![
                    KeyValue::new("message.type", "SENT"),
                    KeyValue::new("message.id", i64::try_from(id).unwrap_or(i64::MAX)),
                ],
            );
        });
    }
}

/// The child spans of one call, at most [`MAX_CHILD_SPANS`]; the rest are counted.
pub(crate) struct Children {
    traced: Traced,
    /// The call's span as the parent of its children.
    parent: Context,
    started: SystemTime,
    recorded: u32,
    untraced: u64,
}

impl Children {
    /// Children of the call `traced` (if it is recorded) that all start now.
    pub(crate) fn of(traced: Option<&Traced>) -> Option<Self> {
        let traced = traced.filter(|t| t.is_recording())?;
        Some(Self {
            traced: traced.clone(),
            parent: Context::new().with_remote_span_context(traced.0.context.clone()),
            started: SystemTime::now(),
            recorded: 0,
            untraced: 0,
        })
    }

    /// A CLIENT span from the start until now, named `name`, with `attributes`;
    /// `error` gives it status ERROR with that description.
    pub(crate) fn record(
        &mut self,
        name: &'static str,
        attributes: impl FnOnce() -> Vec<KeyValue>,
        error: Option<String>,
    ) {
        if self.recorded >= MAX_CHILD_SPANS {
            self.untraced += 1;
            return;
        }
        self.recorded += 1;
        let tracer = &self.traced.0.tracer;
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(self.started)
            .with_attributes(attributes())
            .start_with_context(&**tracer, &self.parent);
        if let Some(error) = error {
            span.set_status(Status::error(error));
        }
        span.end();
    }
}

impl Drop for Children {
    /// Counts on the call's span the children that were not recorded.
    fn drop(&mut self) {
        if self.untraced > 0 {
            let untraced = i64::try_from(self.untraced).unwrap_or(i64::MAX);
            self.traced.with_span(|span| {
                span.set_attribute(KeyValue::new("basic.untraced_children", untraced));
            });
        }
    }
}

/// Request headers, as the propagators read them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The propagators `OTEL_PROPAGATORS` names (default `tracecontext,baggage`), and
/// whether `tracecontext` is one of them. Unknown names are logged and skipped.
fn propagators(value: Option<&str>) -> (TextMapCompositePropagator, bool) {
    let mut list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    let mut tracecontext = false;
    for name in value
        .unwrap_or("tracecontext,baggage")
        .split(',')
        .map(str::trim)
    {
        match name.to_ascii_lowercase().as_str() {
            "tracecontext" if !tracecontext => {
                tracecontext = true;
                list.push(Box::new(TraceContextPropagator::new()));
            }
            "baggage" => list.push(Box::new(BaggagePropagator::new())),
            "none" | "" | "tracecontext" => {}
            other => tracing::warn!(
                propagator = other,
                "OTEL_PROPAGATORS: unsupported propagator ignored (supported: tracecontext, baggage, none)"
            ),
        }
    }
    (TextMapCompositePropagator::new(list), tracecontext)
}

/// Where spans go, from the `OTEL_*` variables; `None`: nowhere.
struct Destination {
    protocol: Protocol,
    /// As the exporter resolves it (for the start-up line).
    endpoint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

impl Destination {
    fn of(env: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ServerError> {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match env("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(ServerError::Traces(format!(
                    "OTEL_TRACES_EXPORTER={other} is not supported (otlp or none)"
                )));
            }
        }
        let traces_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        if traces_endpoint.is_none() && endpoint.is_none() {
            return Ok(None);
        }
        let protocol = match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err(ServerError::Traces(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported (grpc or http/protobuf)"
                )));
            }
        };
        let endpoint = match (traces_endpoint, endpoint, protocol) {
            (Some(url), _, _) => url,
            (None, Some(base), Protocol::Grpc) => base,
            (None, Some(base), Protocol::HttpProtobuf) => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, None, _) => return Ok(None),
        };
        Ok(Some(Self { protocol, endpoint }))
    }
}

/// The tracer provider: the OTLP exporter (on the runtime), behind the SDK's batch
/// processor, behind the bounded queue.
fn provider(
    destination: &Destination,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(SdkTracerProvider, Arc<Queue>), ServerError> {
    let exporter = OtlpExporter::new(destination.protocol, &destination.endpoint, env)?;
    let max_queue = number(env, "OTEL_BSP_MAX_QUEUE_SIZE")
        .unwrap_or(2048)
        .max(1);
    let export_timeout = number(env, "OTEL_BSP_EXPORT_TIMEOUT")
        .map_or(Duration::from_secs(30), |ms| {
            Duration::from_millis(ms as u64)
        });
    let queue = Arc::new(Queue {
        waiting: AtomicUsize::new(0),
        max: max_queue,
        dropped: AtomicU64::new(0),
    });
    let exporter = OnRuntime {
        exporter: Arc::new(exporter),
        runtime: tokio::runtime::Handle::current(),
        timeout: export_timeout,
        queue: Arc::clone(&queue),
    };
    // The SDK reads OTEL_BSP_* (queue size, delay, batch size, timeout) itself.
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().build())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Bounded {
            inner: batch,
            queue: Arc::clone(&queue),
        })
        .with_resource(resource())
        .build();
    Ok((provider, queue))
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, the SDK's own
/// attributes), named `basic-service` unless the variables name it.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(env!("CARGO_PKG_NAME"))
            .build()
    }
}

/// The variable `name` as a number, through the same `env` as every other setting.
fn number(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<usize> {
    env(name)?.trim().parse().ok()
}

/// Spans waiting for export: entered when a span ends, left when its export is done.
#[derive(Debug)]
struct Queue {
    waiting: AtomicUsize,
    max: usize,
    dropped: AtomicU64,
}

impl Queue {
    /// Takes a place for one span, or counts it dropped.
    fn enter(&self) -> bool {
        if self.waiting.fetch_add(1, Ordering::AcqRel) < self.max {
            return true;
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("basic_trace_spans_dropped_total").increment(1);
        false
    }
}

/// The places of an export's spans, given back when it is done (or dropped).
struct Leave(Arc<Queue>, usize);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// The SDK's batch processor behind a queue bound that counts what it drops: at most
/// `max` spans wait for export (queued or in an export), so the processor's own queue
/// of that size never overflows silently.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queue: Arc<Queue>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Unsampled spans are not exported (the processor skips them): no place.
        if span.span_context.is_sampled() && self.queue.enter() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Runs the exporter's exports as tasks on the server's runtime (the batch processor
/// waits for them on its own thread), each bounded by the export timeout.
#[derive(Debug)]
struct OnRuntime {
    exporter: Arc<OtlpExporter>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    queue: Arc<Queue>,
}

impl SpanExporter for OnRuntime {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let leave = Leave(Arc::clone(&self.queue), batch.len());
        let exporter = Arc::clone(&self.exporter);
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let _leave = leave;
            tokio::time::timeout(timeout, exporter.export(batch))
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
        });
        async move {
            task.await
                .unwrap_or_else(|err| Err(OTelSdkError::InternalFailure(err.to_string())))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called when the provider is built, before any export holds the exporter.
        if let Some(exporter) = Arc::get_mut(&mut self.exporter) {
            exporter.set_resource(resource);
        }
    }
}

/// Flushes the spans still queued at shutdown.
pub(crate) struct Flush(Option<(SdkTracerProvider, Arc<Queue>)>);

impl Flush {
    /// Exports what is queued, giving up after `within` (a dead collector cannot hold
    /// the exit), and reports the spans dropped over the server's life.
    pub(crate) async fn run(self, within: Duration) {
        let Some((provider, queue)) = self.0 else {
            return;
        };
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(within)).await;
        match flushed {
            Ok(Ok(())) => tracing::debug!("traces: flushed"),
            Ok(Err(err)) => tracing::warn!(%err, "traces: not all spans were exported"),
            Err(err) => tracing::warn!(%err, "traces: the flush failed"),
        }
        let dropped = queue.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "traces: spans dropped because the export queue was full"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_hex_as_opentelemetry_writes_them() {
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let ids = Ids::new(trace_id, span_id);
        assert_eq!(ids.trace_id(), trace_id.to_string());
        assert_eq!(ids.span_id(), span_id.to_string());
        assert_eq!(ids.span_id(), "00f067aa0ba902b7");
    }

    #[test]
    fn the_peer_ip_comes_from_its_text() {
        let v4: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(ip_of("127.0.0.1:4000", v4), "127.0.0.1");
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(ip_of("[::1]:4000", v6), "::1");
        assert_eq!(ip_of("-", v6), "::1");
    }

    #[test]
    fn server_errors_are_the_conventions_list() {
        let errors: Vec<Code> = (0..=16)
            .map(Code::from)
            .filter(|&code| is_server_error(code))
            .collect();
        assert_eq!(
            errors,
            [
                Code::Unknown,
                Code::DeadlineExceeded,
                Code::Unimplemented,
                Code::Internal,
                Code::Unavailable,
                Code::DataLoss
            ]
        );
    }

    fn destination(vars: &[(&str, &str)]) -> Result<Option<Destination>, ServerError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Destination::of(&|name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn export_is_off_without_an_endpoint_or_when_disabled() {
        assert!(destination(&[]).unwrap().is_none());
        assert!(
            destination(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
                .unwrap()
                .is_none()
        );
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(destination(&[endpoint]).unwrap().is_some());
        assert!(
            destination(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])
                .unwrap()
                .is_none()
        );
        assert!(
            destination(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])
                .unwrap()
                .is_none()
        );
        assert!(destination(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]).is_err());
        assert!(destination(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).is_err());
    }

    #[test]
    fn the_endpoint_is_resolved_as_the_exporter_resolves_it() {
        let http = destination(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        assert_eq!(http.endpoint, "http://c:4318/v1/traces");
        let grpc = destination(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (grpc.protocol, grpc.endpoint.as_str()),
            (Protocol::Grpc, "http://c:4317")
        );
        // The per-signal variables win, and the traces endpoint is used as given.
        let traces = destination(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9999/custom"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(traces.protocol, Protocol::HttpProtobuf);
        assert_eq!(traces.endpoint, "http://t:9999/custom");
    }

    #[test]
    fn propagators_default_to_tracecontext_and_baggage() {
        let (composite, tracecontext) = propagators(None);
        assert!(tracecontext);
        let fields: Vec<&str> = composite.fields().collect();
        assert!(fields.contains(&"traceparent") && fields.contains(&"baggage"));
        let (_, tracecontext) = propagators(Some("baggage"));
        assert!(!tracecontext);
        let (composite, tracecontext) = propagators(Some("none"));
        assert!(!tracecontext && composite.fields().next().is_none());
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_an_export_gives_places_back() {
        let queue = Arc::new(Queue {
            waiting: AtomicUsize::new(0),
            max: 2,
            dropped: AtomicU64::new(0),
        });
        assert!(queue.enter() && queue.enter());
        assert!(!queue.enter());
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 1);
        drop(Leave(Arc::clone(&queue), 2));
        assert!(queue.enter());
        assert_eq!(queue.waiting.load(Ordering::Relaxed), 1);
    }
}
