//! JSON: the proto3 canonical JSON mapping for every message of every RPC.
//!
//! The mapping is prost-reflect's (`DynamicMessage` with serde), driven by the descriptors
//! the server already serves by reflection ([`Schema`]): lowerCamelCase names out, both
//! spellings in, `Any` with `@type` resolved from those descriptors, `Timestamp` as RFC
//! 3339, enums by name, 64-bit integers as strings, unknown fields refused. Protobuf stays
//! pilota's: a JSON call's request messages become protobuf before the codec reads them
//! ([`JsonIn`], after the request body's size limit and decompression), and its replies
//! become JSON after the codec wrote them ([`JsonOut`]).
//!
//! Hostile JSON: the message is already within the size limit when it is parsed; nesting
//! deeper than [`MAX_DEPTH`] and a key given twice in one object are refused, as are
//! invalid UTF-8 and numbers out of their field's range (serde_json, prost-reflect). Every
//! refusal is INVALID_ARGUMENT naming the message type.

use std::{
    borrow::Cow,
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use volo_grpc::{Status, body::BoxBody};

use super::{
    Route,
    wire::{self, PREFIX, UNCOMPRESSED},
};

mod tables;

use tables::{Read, Tables};

/// The deepest nesting of objects and arrays a JSON message may have.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why the descriptors cannot serve JSON (a build defect, found at start-up).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("JSON codec: the descriptors do not form a pool: {0}")]
    Pool(#[from] prost_reflect::DescriptorError),
    #[error("JSON codec: no descriptor for the RPC {0}")]
    Missing(&'static str),
}

/// The message types of every route, for JSON; built once at start-up.
#[derive(Debug)]
pub(crate) struct Schema {
    /// By route id.
    methods: Box<[Method]>,
}

/// The request and reply types of one RPC.
#[derive(Debug, Clone)]
pub(crate) struct Method {
    pub(crate) input: Request,
    pub(crate) output: Reply,
    /// `idempotency_level = NO_SIDE_EFFECTS` in its `.proto` (Connect may GET it).
    pub(crate) no_side_effects: bool,
}

impl Schema {
    /// The schema of every route, from `files` (serialized `FileDescriptorProto`s: the
    /// ones reflection serves, imports included).
    pub(crate) fn new<'a>(files: impl IntoIterator<Item = &'a Bytes>) -> Result<Self, SchemaError> {
        let pool = pool(files)?;
        let tables = Arc::new(Tables::new(&pool));
        let methods = Route::all()
            .iter()
            .map(|route| {
                let method = pool
                    .get_service_by_name(route.service.name)
                    .and_then(|s| s.methods().find(|m| m.name() == route.method.name))
                    .ok_or(SchemaError::Missing(route.path()))?;
                let no_side_effects = method
                    .options()
                    .get_field_by_name("idempotency_level")
                    .and_then(|v| v.as_enum_number())
                    == Some(1);
                let (input, output) = (method.input(), method.output());
                Ok(Method {
                    input: Request {
                        index: tables.index_of(&input),
                        desc: input,
                        tables: Arc::clone(&tables),
                    },
                    output: Reply {
                        index: tables.index_of(&output),
                        desc: output,
                        tables: Arc::clone(&tables),
                    },
                    no_side_effects,
                })
            })
            .collect::<Result<_, SchemaError>>()?;
        Ok(Self { methods })
    }

    /// The types of `route`'s RPC.
    pub(crate) fn method(&self, route: Route) -> Option<&Method> {
        self.methods.get(route.id)
    }
}

/// The descriptor pool of `files` (serialized `FileDescriptorProto`s).
fn pool<'a>(
    files: impl IntoIterator<Item = &'a Bytes>,
) -> Result<DescriptorPool, prost_reflect::DescriptorError> {
    // A `FileDescriptorSet` is its files as field 1, one after another.
    let mut set = BytesMut::new();
    for file in files {
        set.put_u8(0x0a);
        prost::encoding::encode_varint(file.len() as u64, &mut set);
        set.extend_from_slice(file);
    }
    DescriptorPool::decode(set.freeze())
}

/// A request type: its descriptor, and its place in the tables.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    desc: MessageDescriptor,
    index: Option<usize>,
    tables: Arc<Tables>,
}

impl Request {
    /// Appends the protobuf encoding of the JSON request `json` to `out`, framed (prefix
    /// and message): read straight into protobuf ([`Tables::read`]), or by prost-reflect
    /// where that does not cover it.
    pub(crate) fn to_proto(&self, json: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
        wire::framed(out, UNCOMPRESSED, |out| {
            let start = out.len();
            let direct = match self.index {
                Some(index) => self.tables.read(index, json, out),
                None => Err(Read::Unsupported),
            };
            match direct {
                Ok(()) => Ok(()),
                Err(Read::Invalid(reason)) => Err(invalid(&self.desc, &reason)),
                Err(Read::Unsupported) => {
                    out.truncate(start);
                    reflected_proto(&self.desc, json, out)
                }
            }
        })
    }
}

/// INVALID_ARGUMENT for JSON that is not a `desc`, and why.
fn invalid(desc: &MessageDescriptor, reason: &dyn fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid JSON for {}: {reason}", desc.full_name()))
}

/// prost-reflect's protobuf of the JSON `json`, appended to `out`: checked for nesting
/// and repeated keys, read into a dynamic message, encoded.
fn reflected_proto(desc: &MessageDescriptor, json: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
    let mut de = serde_json::Deserializer::from_slice(json);
    Checked { depth: 0 }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|err| invalid(desc, &err))?;
    let mut de = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize(desc.clone(), &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|err| invalid(desc, &err))?;
    message
        .encode(out)
        .map_err(|err| Status::internal(format!("cannot encode {}: {err}", desc.full_name())))
}

/// A reply type: its descriptor, and its place in the direct tables's index.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    desc: MessageDescriptor,
    index: Option<usize>,
    tables: Arc<Tables>,
}

impl Reply {
    /// Appends the JSON of the protobuf reply `proto` to `out`: written straight from
    /// the bytes ([`Tables`]), or by prost-reflect where that does not cover it.
    pub(crate) fn to_json(&self, proto: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
        let start = out.len();
        if let Some(index) = self.index {
            if self.tables.write(index, proto, out).is_some() {
                return Ok(());
            }
        }
        out.truncate(start);
        reflected_json(&self.desc, proto, out)
    }
}

/// prost-reflect's JSON of `proto`: decoded into a dynamic message, then serialized.
fn reflected_json(desc: &MessageDescriptor, proto: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
    let message = DynamicMessage::decode(desc.clone(), proto)
        .map_err(|err| Status::internal(format!("cannot decode {}: {err}", desc.full_name())))?;
    let mut ser = serde_json::Serializer::new(out);
    message
        .serialize_with_options(&mut ser, &SerializeOptions::new())
        .map_err(|err| {
            Status::internal(format!("cannot write {} as JSON: {err}", desc.full_name()))
        })
}

/// A pass over a JSON value that refuses nesting deeper than [`MAX_DEPTH`] and a key
/// given twice in one object (prost-reflect would keep the last).
struct Checked {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl Checked {
    fn deeper<E: serde::de::Error>(&self) -> Result<Checked, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Checked {
            depth: self.depth + 1,
        })
    }
}

/// A key as it was in the text (borrowed when it has no escapes).
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq
            .next_element_seed(Checked { depth: inner.depth })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        let mut keys: Vec<Key<'de>> = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if keys.iter().any(|k| k.0 == key.0) {
                return Err(A::Error::custom(format_args!("duplicate key {:?}", key.0)));
            }
            map.next_value_seed(Checked { depth: inner.depth })?;
            keys.push(key);
        }
        Ok(())
    }
}

/// The request body of a JSON call: each JSON message (whole and decompressed, from the
/// request body's checks) becomes its protobuf encoding.
pub(crate) struct JsonIn {
    inner: BoxBody,
    request: Request,
}

impl JsonIn {
    pub(crate) fn boxed(inner: BoxBody, request: Request) -> BoxBody {
        BoxBody::new(JsonIn { inner, request })
    }
}

impl Body for JsonIn {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        // Whole messages only (the request body's checks hand nothing else on).
        let mut out = Vec::with_capacity(data.len());
        let mut rest = &data[..];
        while !rest.is_empty() {
            let Some((flag, len)) =
                wire::prefix(rest).filter(|&(_, len)| rest.len() >= PREFIX + len)
            else {
                return Poll::Ready(Some(Err(Status::internal(
                    "request body ended inside a message (truncated frame)",
                ))));
            };
            if flag != UNCOMPRESSED {
                return Poll::Ready(Some(Err(Status::internal(format!(
                    "message flag {flag:#04x} without a known compression"
                )))));
            }
            if let Err(status) = this.request.to_proto(&rest[PREFIX..PREFIX + len], &mut out) {
                return Poll::Ready(Some(Err(status)));
            }
            rest = &rest[PREFIX + len..];
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The response body of a JSON call: each protobuf reply (uncompressed: JSON calls get
/// no compressed replies) becomes its JSON; trailers and errors pass unchanged.
pub(crate) struct JsonOut {
    inner: BoxBody,
    reply: Reply,
    /// Bytes of a reply not yet complete.
    pending: BytesMut,
}

impl JsonOut {
    pub(crate) fn boxed(inner: BoxBody, reply: Reply) -> BoxBody {
        BoxBody::new(JsonOut {
            inner,
            reply,
            pending: BytesMut::new(),
        })
    }

    /// The JSON frames of the whole replies at the front of `bytes`, and how many bytes
    /// those replies took.
    fn convert(&self, bytes: &[u8]) -> Result<(Vec<u8>, usize), Status> {
        // Room for the usual JSON of these bytes, so that it is not grown step by step.
        let mut out = Vec::with_capacity(bytes.len() * 2 + 64);
        let mut used = 0;
        while let Some((_, len)) = wire::prefix(&bytes[used..]) {
            let Some(message) = bytes.get(used + PREFIX..used + PREFIX + len) else {
                break;
            };
            wire::framed(&mut out, UNCOMPRESSED, |out| {
                self.reply.to_json(message, out)
            })?;
            used += PREFIX + len;
        }
        Ok((out, used))
    }

    /// The JSON frames of the whole replies so far, `data` being the latest chunk.
    fn drain(&mut self, data: Bytes) -> Result<Option<Bytes>, Status> {
        let (out, used) = if self.pending.is_empty() {
            // The usual case: the chunk is whole replies, converted where they are.
            let (out, used) = self.convert(&data)?;
            self.pending.extend_from_slice(&data[used..]);
            (out, 0)
        } else {
            self.pending.extend_from_slice(&data);
            self.convert(&self.pending)?
        };
        let _ = self.pending.split_to(used);
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }
}

impl Body for JsonOut {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                other => return other,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            match this.drain(data) {
                Ok(Some(json)) => return Poll::Ready(Some(Ok(Frame::data(json)))),
                Ok(None) => continue,
                Err(status) => return Poll::Ready(Some(Err(status))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::reflection::Reflection;

    fn schema() -> Schema {
        let reflection = Reflection::for_basic_server().expect("reflection");
        Schema::new(reflection.files()).expect("a schema")
    }

    fn method(path: &str) -> Method {
        let schema = schema();
        schema
            .method(Route::of_path(path).expect("a route"))
            .expect("a method")
            .clone()
    }

    fn proto(request: &Request, json: &str) -> Result<Vec<u8>, Status> {
        let mut out = Vec::new();
        request.to_proto(json.as_bytes(), &mut out)?;
        Ok(out[PREFIX..].to_vec())
    }

    #[test]
    fn only_hello_has_no_side_effects() {
        let schema = schema();
        for route in Route::all() {
            let method = schema.method(*route).expect("every route has types");
            assert_eq!(
                method.no_side_effects,
                route.path() == "/basic.v1.BasicService/Hello",
                "{}",
                route.path()
            );
        }
    }

    #[test]
    fn both_spellings_are_read_and_camel_case_is_written() {
        let background = method("/basic.v1.BasicService/Background");
        assert_eq!(
            proto(&background.input, r#"{"processes": 3}"#).unwrap(),
            [0x08, 3]
        );
        assert_eq!(
            proto(&background.input, r#"{"processes": "3"}"#).unwrap(),
            [0x08, 3]
        );
        let talk = method("/basic.v1.BasicService/Talk");
        let mut json = Vec::new();
        talk.output
            .to_json(&[0x0a, 2, b'A', b'd'], &mut json)
            .unwrap();
        assert_eq!(json, br#"{"answer":"Ad"}"#);
    }

    /// The JSON of `message` (of type `name`) from both writers, which must agree.
    fn both_ways<M: pilota::pb::Message>(name: &str, message: &M) -> serde_json::Value {
        let reflection = Reflection::for_basic_server().expect("reflection");
        let pool = pool(reflection.files()).unwrap();
        let tables = Tables::new(&pool);
        let desc = pool.get_message_by_name(name).expect(name);
        let bytes = message.encode_to_vec(&mut Default::default());
        let mut fast = Vec::new();
        let index = tables.index_of(&desc).expect("indexed");
        tables
            .write(index, &bytes, &mut fast)
            .expect("the direct tables covers it");
        let mut reflected = Vec::new();
        reflected_json(&desc, &bytes, &mut reflected).unwrap();
        let fast: serde_json::Value = serde_json::from_slice(&fast)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&fast)));
        let reflected: serde_json::Value = serde_json::from_slice(&reflected).unwrap();
        assert_eq!(fast, reflected);
        fast
    }

    #[test]
    fn the_direct_writer_writes_what_prost_reflect_writes() {
        use std::time::{Duration, UNIX_EPOCH};

        use volo_gen::{
            basic::service::v1::{
                BackgroundResponse, BackgroundResponseEvent, HelloResponse, HelloResponseEvent,
                SomeServiceData, SomeServiceResponse, State,
            },
            grpc::health::v1::{
                HealthCheckResponse, HealthListResponse, health_check_response::ServingStatus,
            },
        };

        use crate::cloudevent::{envelope, pack, timestamp};

        let hello = HelloResponse {
            cloud_event: Some(envelope(
                "basic.v1.BasicService/Hello",
                "basic.service.v1.HelloResponse",
                pack(&HelloResponseEvent {
                    greeting: "Hello, \"Ada\" \u{1F600}\n\u{7}".into(),
                }),
                timestamp(UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000)),
            )),
        };
        let json = both_ways("basic.service.v1.HelloResponse", &hello);
        assert_eq!(
            json["cloudEvent"]["attributes"]["time"]["ceTimestamp"],
            "2023-11-14T22:13:20.123Z"
        );
        for (nanos, state, n) in [
            (0, State::STATE_PROCESS, 0),
            (1, State::STATE_COMPLETE, 3),
            (1_500, State::STATE_COMPLETE_WITH_ERROR, 2),
            (999_999_999, State::STATE_UNSPECIFIED, 1),
        ] {
            let responses = (0..n)
                .map(|i| SomeServiceResponse {
                    id: format!("id-{i}"),
                    name: String::new(),
                    version: "v1".into(),
                    data: (i != 1).then(|| SomeServiceData {
                        value: if i == 0 { "http".into() } else { String::new() },
                        r#type: "error".into(),
                    }),
                })
                .collect();
            let event = BackgroundResponseEvent {
                state,
                started_at: Some(timestamp(UNIX_EPOCH + Duration::new(5, nanos))),
                completed_at: (n > 1).then(|| timestamp(UNIX_EPOCH)),
                responses,
            };
            let reply = BackgroundResponse {
                cloud_event: Some(envelope(
                    "urn:service:basic",
                    "basic.service.v1.BackgroundResponseEvent",
                    pack(&event),
                    timestamp(UNIX_EPOCH + Duration::new(86_400 * 365 * 300, nanos)),
                )),
            };
            both_ways("basic.service.v1.BackgroundResponse", &reply);
            both_ways("basic.service.v1.BackgroundResponseEvent", &event);
        }
        let mut statuses = pilota::AHashMap::default();
        statuses.insert(
            "basic.v1.BasicService".into(),
            HealthCheckResponse {
                status: ServingStatus::SERVING,
            },
        );
        statuses.insert(
            "".into(),
            HealthCheckResponse {
                status: ServingStatus::UNKNOWN,
            },
        );
        let json = both_ways(
            "grpc.health.v1.HealthListResponse",
            &HealthListResponse { statuses },
        );
        assert_eq!(json["statuses"][""], serde_json::json!({}));
        let json = both_ways(
            "grpc.health.v1.HealthCheckResponse",
            &HealthCheckResponse {
                status: ServingStatus::NOT_SERVING,
            },
        );
        assert_eq!(json, serde_json::json!({"status": "NOT_SERVING"}));
        let json = both_ways(
            "basic.service.v1.BackgroundRequest",
            &volo_gen::basic::service::v1::BackgroundRequest { processes: -5 },
        );
        assert_eq!(json, serde_json::json!({"processes": "-5"}));
    }

    #[test]
    fn the_direct_reader_reads_what_prost_reflect_reads() {
        let reflection = Reflection::for_basic_server().expect("reflection");
        let pool = pool(reflection.files()).unwrap();
        let tables = Arc::new(Tables::new(&pool));
        let request = |name: &str| {
            let desc = pool.get_message_by_name(name).expect(name);
            Request {
                index: tables.index_of(&desc),
                desc,
                tables: Arc::clone(&tables),
            }
        };
        let read = [
            ("basic.service.v1.HelloRequest", r#"{"message":"Ada"}"#),
            (
                "basic.service.v1.HelloRequest",
                r#"{"message":"\u00e9\n\"x\" \ud83d\ude00"}"#,
            ),
            ("basic.service.v1.HelloRequest", r#"{"message":null}"#),
            ("basic.service.v1.HelloRequest", r#"{}"#),
            ("basic.service.v1.BackgroundRequest", r#"{"processes":3}"#),
            (
                "basic.service.v1.BackgroundRequest",
                r#"{"processes":"-9223372036854775808"}"#,
            ),
            ("basic.service.v1.BackgroundRequest", r#"{"processes":1e2}"#),
            ("basic.service.v1.BackgroundRequest", r#"{"processes":0}"#),
            (
                "grpc.health.v1.HealthCheckResponse",
                r#"{"status":"SERVING"}"#,
            ),
            ("grpc.health.v1.HealthCheckResponse", r#"{"status":2}"#),
            (
                "basic.service.v1.SomeServiceResponse",
                r#"{"id":"1","data":{"value":"v","type":"t"},"version":""}"#,
            ),
            (
                "basic.service.v1.SomeServiceResponses",
                r#"{"responses":[{"id":"a"},{},{"name":"c"}]}"#,
            ),
        ];
        for (name, json) in read {
            let request = request(name);
            let index = request.index.expect("indexed");
            let mut direct = Vec::new();
            tables
                .read(index, json.as_bytes(), &mut direct)
                .unwrap_or_else(|err| panic!("{name} {json}: {err:?}"));
            let mut reflected = Vec::new();
            reflected_proto(&request.desc, json.as_bytes(), &mut reflected).unwrap();
            // The same message (as its canonical JSON: explicit defaults are the same).
            let canonical = |bytes: &[u8]| {
                let mut json = Vec::new();
                reflected_json(&request.desc, bytes, &mut json).unwrap();
                serde_json::from_slice::<serde_json::Value>(&json).unwrap()
            };
            assert_eq!(canonical(&direct), canonical(&reflected), "{name} {json}");
        }
        // Timestamps are left to prost-reflect, which reads them.
        let event = request("basic.service.v1.BackgroundResponseEvent");
        let json = br#"{"state":"STATE_COMPLETE","startedAt":"2026-01-02T03:04:05.5Z"}"#;
        assert!(matches!(
            tables.read(event.index.unwrap(), json, &mut Vec::new()),
            Err(Read::Unsupported)
        ));
        let mut out = Vec::new();
        event.to_proto(json, &mut out).unwrap();
        // Refused alike: not integers, out of range, unknown names, wrong types.
        for (name, json) in [
            ("basic.service.v1.BackgroundRequest", r#"{"processes":1.5}"#),
            (
                "basic.service.v1.BackgroundRequest",
                r#"{"processes":"abc"}"#,
            ),
            (
                "basic.service.v1.BackgroundRequest",
                r#"{"processes":99999999999999999999}"#,
            ),
            (
                "basic.service.v1.BackgroundRequest",
                r#"{"processes":true}"#,
            ),
            ("basic.service.v1.BackgroundRequest", r#"{"processes":[1]}"#),
            ("grpc.health.v1.HealthCheckResponse", r#"{"status":"NOPE"}"#),
            ("basic.service.v1.HelloRequest", r#"{"message":1}"#),
            ("basic.service.v1.HelloRequest", r#"{"message":{}}"#),
            ("basic.service.v1.HelloRequest", r#"[]"#),
            ("basic.service.v1.HelloRequest", r#"null"#),
        ] {
            let request = request(name);
            assert!(
                matches!(
                    tables.read(request.index.unwrap(), json.as_bytes(), &mut Vec::new()),
                    Err(Read::Invalid(_))
                ),
                "{name} {json}"
            );
            assert!(
                reflected_proto(&request.desc, json.as_bytes(), &mut Vec::new()).is_err(),
                "{name} {json}"
            );
        }
    }

    #[test]
    fn what_the_direct_writer_does_not_cover_falls_back() {
        let talk = method("/basic.v1.BasicService/Talk");
        // `answer` twice: prost-reflect keeps the last.
        let bytes = [0x0a, 1, b'a', 0x0a, 1, b'b'];
        let reply = &talk.output;
        let index = reply.index.expect("indexed");
        assert!(reply.tables.write(index, &bytes, &mut Vec::new()).is_none());
        let mut out = Vec::new();
        reply.to_json(&bytes, &mut out).unwrap();
        assert_eq!(out, br#"{"answer":"b"}"#);
    }

    #[test]
    fn hostile_json_is_invalid_argument() {
        let hello = method("/basic.v1.BasicService/Hello");
        let background = method("/basic.v1.BasicService/Background");
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let cases: Vec<(&Request, Vec<u8>, &str)> = vec![
            (
                &hello.input,
                br#"{"message":"a","message":"b"}"#.to_vec(),
                "duplicate key",
            ),
            (&hello.input, br#"{"nope":1}"#.to_vec(), "nope"),
            (&hello.input, b"{\"message\":\"\xff\"}".to_vec(), "invalid"),
            (&hello.input, br#"{"message":"a""#.to_vec(), "EOF"),
            (&hello.input, br#"{"message":"a"} x"#.to_vec(), "trailing"),
            (
                &hello.input,
                deep.clone().into_bytes(),
                "expected a JSON object",
            ),
            (
                &background.input,
                br#"{"processes":1e400}"#.to_vec(),
                "number",
            ),
            (
                &background.input,
                br#"{"processes":"99999999999999999999"}"#.to_vec(),
                "",
            ),
        ];
        for (request, json, needle) in cases {
            let mut out = b"kept".to_vec();
            let err = request.to_proto(&json, &mut out).unwrap_err();
            assert_eq!(out, b"kept", "nothing is left of a refused message");
            assert_eq!(err.code(), volo_grpc::Code::InvalidArgument, "{json:?}");
            assert!(
                err.message().contains(needle) && err.message().contains(request.desc.full_name()),
                "{}",
                err.message()
            );
        }
        // The same refusals from prost-reflect's path, which checks nesting itself.
        for (json, needle) in [
            (
                br#"{"message":"a","message":"b"}"#.to_vec(),
                "duplicate key",
            ),
            (br#"{"nope":1}"#.to_vec(), "nope"),
            (deep.into_bytes(), "nested deeper"),
        ] {
            let err = reflected_proto(&hello.input.desc, &json, &mut Vec::new()).unwrap_err();
            assert!(err.message().contains(needle), "{}", err.message());
        }
    }
}
