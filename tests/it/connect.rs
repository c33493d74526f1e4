//! Connect and JSON on the same port: Connect unary (POST and GET) and streams, in
//! protobuf and JSON, over HTTP/1.1 and HTTP/2; gRPC and gRPC-Web with the JSON codec;
//! errors with their HTTP statuses and rich details; compression, timeouts, the layers
//! (auth, load shedding, metrics); and hostile JSON and envelopes.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use pilota::pb::Message;
use proptest::{
    prelude::*,
    test_runner::{Config as PropConfig, TestRunner},
};
use serde_json::Value;
use volo_gen::{
    basic::service::v1::{BackgroundRequest, HelloRequest},
    google::rpc::{BadRequest, RetryInfo},
};

use crate::{
    common::{scrape_metrics, slow_workers, start, test_config, within},
    hostile::mutations,
    raw,
    wire::{Trailers, WebBody, greeting, h1, h2c, post},
};

const HELLO: &str = "/basic.v1.BasicService/Hello";
const TALK: &str = "/basic.v1.BasicService/Talk";
const BACKGROUND: &str = "/basic.v1.BasicService/Background";

/// The body of a JSON response.
fn json(resp: &Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body())
        .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", resp.body()))
}

/// The greeting in a Hello reply in JSON.
fn json_greeting(reply: &Value) -> &str {
    let data = &reply["cloudEvent"]["protoData"];
    assert_eq!(
        data["@type"], "type.googleapis.com/basic.service.v1.HelloResponseEvent",
        "{reply}"
    );
    data["greeting"].as_str().expect("a greeting")
}

/// One Connect (or gRPC) envelope: flag, length, payload.
fn envelope(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The envelopes of a stream's body, as (flag, payload).
fn envelopes(mut body: &[u8]) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "a truncated envelope: {body:?}");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert!(body.len() >= 5 + len, "a truncated envelope: {body:?}");
        out.push((body[0], Bytes::copy_from_slice(&body[5..5 + len])));
        body = &body[5 + len..];
    }
    out
}

/// The end-of-stream message of a Connect stream's body, checked to be last and alone.
fn end_of_stream(body: &[u8]) -> (Vec<(u8, Bytes)>, Value) {
    let mut all = envelopes(body);
    let (flag, end) = all.pop().expect("an end-of-stream message");
    assert_eq!(flag, 2, "the last message ends the stream");
    assert!(all.iter().all(|(flag, _)| flag & 2 == 0), "exactly one end");
    (all, serde_json::from_slice(&end).expect("JSON end"))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn with(mut req: Request<Full<Bytes>>, name: &'static str, value: &str) -> Request<Full<Bytes>> {
    req.headers_mut().insert(name, value.parse().unwrap());
    req
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

/// Both HTTP versions, on fresh connections.
async fn both(
    addr: std::net::SocketAddr,
    req: impl Fn() -> Request<Full<Bytes>>,
) -> [Response<Bytes>; 2] {
    [
        within(h1(addr, req())).await,
        within(h2c(addr, req())).await,
    ]
}

#[tokio::test]
async fn unary_json_and_proto_over_http1_and_http2() {
    let server = start(test_config()).await;
    for resp in both(server.addr, || {
        post(HELLO, "application/json", r#"{"message":"Ada"}"#)
    })
    .await
    {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert!(resp.headers().get("x-request-id").is_some());
        assert!(
            resp.headers()
                .keys()
                .all(|k| !k.as_str().starts_with("grpc-"))
        );
        let reply = json(&resp);
        assert_eq!(json_greeting(&reply), "Hello, Ada");
        assert_eq!(reply["cloudEvent"]["specVersion"], "1.0");
        let time = reply["cloudEvent"]["attributes"]["time"]["ceTimestamp"]
            .as_str()
            .expect("an RFC 3339 time");
        assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    }
    let request = HelloRequest {
        message: "Grace".into(),
    }
    .encode_to_vec(&mut Default::default());
    for resp in both(server.addr, || {
        post(HELLO, "application/proto", request.clone())
    })
    .await
    {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/proto");
        assert_eq!(
            resp.headers()["content-length"],
            resp.body().len().to_string()
        );
        assert_eq!(greeting(resp.body()), "Hello, Grace");
    }
    // The snake_case spelling is read too; a charset parameter is fine.
    let resp = within(h1(
        server.addr,
        post(
            HELLO,
            "application/json; charset=utf-8",
            r#"{"message":"Bo"}"#,
        ),
    ))
    .await;
    assert_eq!(json_greeting(&json(&resp)), "Hello, Bo");
    server.stop().await;
}

#[tokio::test]
async fn hello_by_get_in_json_proto_base64_and_gzip() {
    let server = start(test_config()).await;
    let uri = format!(
        "{HELLO}?connect=v1&encoding=json&message={}",
        "%7B%22message%22%3A%22Ada%22%7D"
    );
    for resp in both(server.addr, || get(&uri)).await {
        assert_eq!(resp.status(), StatusCode::OK, "{resp:?}");
        assert_eq!(json_greeting(&json(&resp)), "Hello, Ada");
    }
    let proto = HelloRequest {
        message: "Grace".into(),
    }
    .encode_to_vec(&mut Default::default());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let uri = format!(
        "{HELLO}?encoding=proto&base64=1&message={}",
        b64.encode(&proto)
    );
    let resp = within(h1(server.addr, get(&uri))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(greeting(resp.body()), "Hello, Grace");
    let uri = format!(
        "{HELLO}?encoding=json&base64=1&compression=gzip&message={}",
        b64.encode(gzip(br#"{"message":"Zip"}"#))
    );
    let resp = within(h1(server.addr, get(&uri))).await;
    assert_eq!(resp.status(), StatusCode::OK, "{resp:?}");
    assert_eq!(json_greeting(&json(&resp)), "Hello, Zip");

    // Another method: 405, POST allowed. No encoding: 415. Bad base64: 400.
    let resp = within(h1(server.addr, get(&format!("{BACKGROUND}?encoding=json")))).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = within(h1(server.addr, get(&format!("{HELLO}?message=%7B%7D")))).await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = within(h1(
        server.addr,
        get(&format!("{HELLO}?encoding=proto&base64=1&message=*!")),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(&resp)["code"], "invalid_argument");
    server.stop().await;
}

#[tokio::test]
async fn background_streams_live_over_http1_and_ends_with_one_end_of_stream() {
    let server = start(test_config()).await;
    let body = envelope(0, br#"{"processes":5}"#);
    for resp in both(server.addr, || {
        post(BACKGROUND, "application/connect+json", body.clone())
    })
    .await
    {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/connect+json");
        let (messages, end) = end_of_stream(resp.body());
        assert_eq!(end, serde_json::json!({}));
        assert!(messages.len() >= 2, "{messages:?}");
        let last: Value = serde_json::from_slice(&messages.last().unwrap().1).unwrap();
        let data = &last["cloudEvent"]["protoData"];
        assert_eq!(data["state"], "STATE_COMPLETE");
        assert_eq!(data["responses"].as_array().unwrap().len(), 5);
    }
    let proto = envelope(
        0,
        &BackgroundRequest { processes: 3 }.encode_to_vec(&mut Default::default()),
    );
    let resp = within(h2c(
        server.addr,
        post(BACKGROUND, "application/connect+proto", proto),
    ))
    .await;
    assert_eq!(resp.headers()["content-type"], "application/connect+proto");
    let (messages, end) = end_of_stream(resp.body());
    assert_eq!(end, serde_json::json!({}));
    assert!(messages.len() >= 2);
    server.stop().await;
}

#[tokio::test]
async fn talk_is_a_connect_stream_over_http2() {
    let server = start(test_config()).await;
    let body = [
        envelope(0, br#"{"message":"Men are all alike."}"#),
        envelope(0, br#"{"message":"bye"}"#),
    ]
    .concat();
    let resp = within(h2c(
        server.addr,
        post(TALK, "application/connect+json", body),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (messages, end) = end_of_stream(resp.body());
    assert_eq!(end, serde_json::json!({}));
    let answers: Vec<Value> = messages
        .iter()
        .map(|(_, m)| serde_json::from_slice(m).unwrap())
        .collect();
    assert_eq!(answers[0]["answer"], "In what way?");
    assert!(answers[1]["answer"].as_str().unwrap().contains("Goodbye"));
    server.stop().await;
}

/// A request message of `path` in `json` or protobuf.
fn request_message(path: &str, json: bool) -> Vec<u8> {
    match (path, json) {
        (HELLO, true) => br#"{"message":"Ada"}"#.to_vec(),
        (HELLO, false) => HelloRequest {
            message: "Ada".into(),
        }
        .encode_to_vec(&mut Default::default()),
        (BACKGROUND, true) => br#"{"processes":3}"#.to_vec(),
        (BACKGROUND, false) => {
            BackgroundRequest { processes: 3 }.encode_to_vec(&mut Default::default())
        }
        (_, true) => br#"{"message":"Men are all alike."}"#.to_vec(),
        (_, false) => volo_gen::basic::service::v1::TalkRequest {
            message: "Men are all alike.".into(),
        }
        .encode_to_vec(&mut Default::default()),
    }
}

/// What a reply of `path` says, from its JSON or protobuf.
fn reply_text(path: &str, json: bool, message: &Bytes) -> String {
    if json {
        let value: Value = serde_json::from_slice(message).unwrap();
        return match path {
            HELLO => json_greeting(&value).to_owned(),
            BACKGROUND => value["cloudEvent"]["protoData"]["state"]
                .as_str()
                .unwrap()
                .to_owned(),
            _ => value["answer"].as_str().unwrap().to_owned(),
        };
    }
    match path {
        HELLO => greeting(message),
        BACKGROUND => {
            let reply =
                volo_gen::basic::service::v1::BackgroundResponse::decode(message.clone()).unwrap();
            let event: volo_gen::basic::service::v1::BackgroundResponseEvent =
                basic_service::cloudevent::unpack(
                    basic_service::cloudevent::proto_data(&reply.cloud_event.unwrap()).unwrap(),
                )
                .unwrap();
            assert_eq!(
                event.state,
                volo_gen::basic::service::v1::State::STATE_COMPLETE
            );
            "STATE_COMPLETE".to_owned()
        }
        _ => crate::wire::answers(std::slice::from_ref(message))[0].clone(),
    }
}

#[tokio::test]
async fn every_protocol_codec_and_shape_on_both_http_versions() {
    let server = start(test_config()).await;
    for path in [HELLO, BACKGROUND, TALK] {
        for json in [false, true] {
            let body = envelope(0, &request_message(path, json));
            let codec = if json { "json" } else { "proto" };
            let mut cases = vec![
                (format!("application/grpc+{codec}"), "grpc", true),
                (format!("application/grpc-web+{codec}"), "grpc-web", false),
                (format!("application/connect+{codec}"), "connect", false),
            ];
            if path == HELLO {
                cases.pop();
                cases.push((format!("application/{codec}"), "connect-unary", false));
            }
            for (content_type, protocol, h2_only) in cases {
                let versions: &[bool] = if h2_only || path == TALK {
                    &[true]
                } else {
                    &[false, true]
                };
                for &h2 in versions {
                    let req = post(
                        path,
                        &content_type,
                        if protocol == "connect-unary" {
                            request_message(path, json)
                        } else {
                            body.clone()
                        },
                    );
                    let resp = if h2 {
                        within(h2c(server.addr, req)).await
                    } else {
                        within(h1(server.addr, req)).await
                    };
                    let what = format!("{path} {content_type} h2={h2}");
                    assert_eq!(resp.status(), StatusCode::OK, "{what}");
                    let messages: Vec<Bytes> = match protocol {
                        "connect-unary" => vec![resp.body().clone()],
                        "connect" => {
                            let (messages, end) = end_of_stream(resp.body());
                            assert_eq!(end, serde_json::json!({}), "{what}");
                            messages.into_iter().map(|(_, m)| m).collect()
                        }
                        "grpc-web" => {
                            let web = WebBody::parse(resp.body().clone());
                            assert_eq!(web.status(), Some("0"), "{what}");
                            web.messages
                        }
                        _ => {
                            let trailers =
                                &resp.extensions().get::<Trailers>().expect("trailers").0;
                            assert_eq!(trailers["grpc-status"], "0", "{what}");
                            envelopes(resp.body()).into_iter().map(|(_, m)| m).collect()
                        }
                    };
                    let last = reply_text(path, json, messages.last().expect("a reply"));
                    let expected = match path {
                        HELLO => "Hello, Ada",
                        BACKGROUND => "STATE_COMPLETE",
                        _ => "In what way?",
                    };
                    assert_eq!(last, expected, "{what}");
                }
            }
        }
    }
    // Health over Connect, in JSON.
    let resp = within(h1(
        server.addr,
        post(
            "/grpc.health.v1.Health/Check",
            "application/json",
            r#"{"service":"basic.v1.BasicService"}"#,
        ),
    ))
    .await;
    assert_eq!(json(&resp), serde_json::json!({"status": "SERVING"}));
    server.stop().await;
}

#[tokio::test]
async fn errors_have_their_http_status_code_message_and_details() {
    let server = start(test_config()).await;
    // A stream's error is in its end-of-stream message, with HTTP 200.
    let body = envelope(0, br#"{"processes":5000}"#);
    let resp = within(h1(
        server.addr,
        post(BACKGROUND, "application/connect+json", body),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (messages, end) = end_of_stream(resp.body());
    assert!(messages.is_empty());
    let error = &end["error"];
    assert_eq!(error["code"], "invalid_argument");
    assert_eq!(error["message"], "processes is 5000; the maximum is 1000");
    assert_eq!(error["details"][0]["type"], "google.rpc.BadRequest");
    let value = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(error["details"][0]["value"].as_str().unwrap())
        .unwrap();
    let detail = BadRequest::decode(Bytes::from(value)).unwrap();
    assert_eq!(detail.field_violations[0].field, "processes");
    assert!(detail.field_violations[0].description.contains("1000"));

    // Unary errors: the JSON error with the code's HTTP status.
    for (body, needle) in [
        (r#"{"message":"a","message":"b"}"#, "duplicate key"),
        (r#"{"nope":1}"#, "nope"),
        (r#"{"message":"#, "EOF"),
        (r#"{"message":1}"#, "HelloRequest"),
    ] {
        let resp = within(h1(server.addr, post(HELLO, "application/json", body))).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let error = json(&resp);
        assert_eq!(error["code"], "invalid_argument", "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{error}"
        );
    }
    let resp = within(h1(
        server.addr,
        post(
            HELLO,
            "application/json",
            b"{\"message\":\"\xff\"}".to_vec(),
        ),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Protobuf with a string that is not UTF-8: INTERNAL, as on the gRPC path.
    let resp = within(h1(
        server.addr,
        post(HELLO, "application/proto", vec![0x0a, 0x02, 0xff, 0xfe]),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let error = json(&resp);
    assert_eq!(error["code"], "internal");
    assert!(
        error["message"].as_str().unwrap().contains("UTF-8"),
        "{error}"
    );

    // Not a call: unknown method 404; shapes and codecs that do not fit 415.
    let resp = within(h1(
        server.addr,
        post("/basic.v1.BasicService/Nope", "application/json", "{}"),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    for (path, content_type) in [
        (TALK, "application/json"),
        (BACKGROUND, "application/proto"),
        (HELLO, "application/connect+json"),
        (BACKGROUND, "application/connect+xml"),
        (HELLO, "application/xml"),
    ] {
        let resp = within(h1(server.addr, post(path, content_type, "{}"))).await;
        assert_eq!(
            resp.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path} {content_type}"
        );
    }
    // A version other than 1 is refused; 1 and none are fine.
    let req = with(
        post(HELLO, "application/json", "{}"),
        "connect-protocol-version",
        "2",
    );
    assert_eq!(
        within(h1(server.addr, req)).await.status(),
        StatusCode::BAD_REQUEST
    );
    let req = with(
        post(HELLO, "application/json", "{}"),
        "connect-protocol-version",
        "1",
    );
    assert_eq!(within(h1(server.addr, req)).await.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn timeouts_are_enforced_and_malformed_ones_refused() {
    let server = start(slow_workers(test_config())).await;
    let req = with(
        post(
            BACKGROUND,
            "application/connect+json",
            envelope(0, br#"{"processes":2}"#),
        ),
        "connect-timeout-ms",
        "200",
    );
    let resp = within(h2c(server.addr, req)).await;
    let (_, end) = end_of_stream(resp.body());
    assert_eq!(end["error"]["code"], "deadline_exceeded", "{end}");
    for bad in ["x", "-1", "12345678901", "1.5"] {
        let req = with(
            post(HELLO, "application/json", "{}"),
            "connect-timeout-ms",
            bad,
        );
        let resp = within(h1(server.addr, req)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json(&resp)["code"], "invalid_argument");
    }
    let req = with(
        post(HELLO, "application/json", "{}"),
        "connect-timeout-ms",
        "5000",
    );
    assert_eq!(within(h1(server.addr, req)).await.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn compression_both_ways_and_unknown_encodings_named() {
    let server = start(test_config()).await;
    // Unary JSON, gzip in: the reply is JSON.
    let req = with(
        post(HELLO, "application/json", gzip(br#"{"message":"Gz"}"#)),
        "content-encoding",
        "gzip",
    );
    let resp = within(h1(server.addr, req)).await;
    assert_eq!(resp.status(), StatusCode::OK, "{resp:?}");
    assert_eq!(json_greeting(&json(&resp)), "Hello, Gz");
    // Unary protobuf, gzip in: gzip out, said in content-encoding.
    let proto = HelloRequest {
        message: "Pz".into(),
    }
    .encode_to_vec(&mut Default::default());
    let req = with(
        with(
            post(HELLO, "application/proto", gzip(&proto)),
            "content-encoding",
            "gzip",
        ),
        "accept-encoding",
        "gzip",
    );
    let resp = within(h2c(server.addr, req)).await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(greeting(&Bytes::from(gunzip(resp.body()))), "Hello, Pz");
    // An empty body is never decompressed.
    let req = with(
        post(HELLO, "application/proto", Bytes::new()),
        "content-encoding",
        "gzip",
    );
    let resp = within(h1(server.addr, req)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(greeting(resp.body()), "Hello, ");
    // Unknown: UNIMPLEMENTED naming what the server has.
    let req = with(
        post(HELLO, "application/json", "{}"),
        "content-encoding",
        "br",
    );
    let resp = within(h1(server.addr, req)).await;
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    let error = json(&resp);
    assert_eq!(error["code"], "unimplemented");
    assert!(
        error["message"].as_str().unwrap().contains("gzip,zstd"),
        "{error}"
    );
    // A stream: a compressed request message, replies compressed the same way.
    let req = with(
        with(
            post(
                BACKGROUND,
                "application/connect+proto",
                envelope(1, &gzip(b"\x08\x02")),
            ),
            "connect-content-encoding",
            "gzip",
        ),
        "connect-accept-encoding",
        "gzip, zstd",
    );
    let resp = within(h2c(server.addr, req)).await;
    assert_eq!(resp.headers()["connect-content-encoding"], "gzip");
    let (messages, end) = end_of_stream(resp.body());
    assert_eq!(end, serde_json::json!({}));
    assert!(messages.iter().all(|(flag, _)| *flag == 1));
    server.stop().await;
}

#[tokio::test]
async fn grpc_and_grpc_web_speak_json_too() {
    let server = start(test_config()).await;
    let body = envelope(0, br#"{"message":"Ada"}"#);
    let resp = within(h2c(
        server.addr,
        post(HELLO, "application/grpc+json", body.clone()),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/grpc+json");
    let trailers = &resp.extensions().get::<Trailers>().expect("trailers").0;
    assert_eq!(trailers["grpc-status"], "0");
    let messages = envelopes(resp.body());
    assert_eq!(messages.len(), 1);
    let reply: Value = serde_json::from_slice(&messages[0].1).unwrap();
    assert_eq!(json_greeting(&reply), "Hello, Ada");

    for resp in both(server.addr, || {
        post(HELLO, "application/grpc-web+json", body.clone())
    })
    .await
    {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/grpc-web+json");
        let web = WebBody::parse(resp.body().clone());
        assert_eq!(web.status(), Some("0"), "{web:?}");
        let reply: Value = serde_json::from_slice(&web.messages[0]).unwrap();
        assert_eq!(json_greeting(&reply), "Hello, Ada");
    }
    // Bad JSON over gRPC: INVALID_ARGUMENT, as on Connect.
    let resp = within(h2c(
        server.addr,
        post(HELLO, "application/grpc+json", envelope(0, b"{\"x\":1}")),
    ))
    .await;
    // (Refused before any reply: the status is in the headers.)
    assert_eq!(resp.headers()["grpc-status"], "3");
    server.stop().await;
}

#[tokio::test]
async fn grpc_and_grpc_web_errors_carry_rich_details() {
    let server = start(test_config()).await;
    let request = BackgroundRequest { processes: 5000 }.encode_to_vec(&mut Default::default());
    let conn = raw::connect(server.addr).await;
    let reply = conn.unary(BACKGROUND, &request).await.unwrap();
    assert_eq!(reply.grpc_status, Some(3));
    let web = within(h1(
        server.addr,
        post(
            BACKGROUND,
            "application/grpc-web+proto",
            envelope(0, &request),
        ),
    ))
    .await;
    for headers in [&reply.headers, web.headers()] {
        let status = volo_grpc::Status::from_header_map(headers).expect("a status");
        assert_eq!(status.code(), volo_grpc::Code::InvalidArgument);
        let details = basic_service::status::details_of(&status);
        assert_eq!(details[0].0, "google.rpc.BadRequest");
        let detail = BadRequest::decode(details[0].1.clone()).unwrap();
        assert_eq!(detail.field_violations[0].field, "processes");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_layers_apply_auth_shedding_metrics_and_limits() {
    // Auth: no token, 401; with it, 200.
    let mut config = test_config();
    config.access.auth_token = Some("s3cret".into());
    let server = start(config).await;
    let resp = within(h1(server.addr, post(HELLO, "application/json", "{}"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(&resp)["code"], "unauthenticated");
    let req = with(
        post(HELLO, "application/json", "{}"),
        "authorization",
        "Bearer s3cret",
    );
    assert_eq!(within(h1(server.addr, req)).await.status(), StatusCode::OK);
    server.stop().await;

    // Shedding: 429 with RetryInfo; the message size limit applies to JSON.
    let mut config = slow_workers(test_config());
    config.limits.max_in_flight = 1;
    config.limits.max_message_bytes = 64;
    let server = start(config).await;
    let conn = raw::connect(server.addr).await;
    let (_held, _stream) = conn
        .stall(
            raw::grpc_request(BACKGROUND, &[]),
            &raw::grpc_frame(b"\x08\x01"),
        )
        .await
        .unwrap();
    let mut shed = None;
    for _ in 0..200 {
        let resp = within(h1(server.addr, post(HELLO, "application/json", "{}"))).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            shed = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let error = json(&shed.expect("a shed call"));
    assert_eq!(error["code"], "resource_exhausted");
    assert_eq!(error["details"][0]["type"], "google.rpc.RetryInfo");
    let value = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(error["details"][0]["value"].as_str().unwrap())
        .unwrap();
    let retry = RetryInfo::decode(Bytes::from(value)).unwrap();
    assert!(retry.retry_delay.is_some());
    server.stop().await;

    let mut config = test_config();
    config.limits.max_message_bytes = 64;
    let server = start(config).await;
    let big = format!(r#"{{"message":"{}"}}"#, "a".repeat(100));
    let resp = within(h1(
        server.addr,
        post(HELLO, "application/json", big.clone()),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        json(&resp)["message"]
            .as_str()
            .unwrap()
            .contains("limit of 64")
    );
    let resp = within(h2c(
        server.addr,
        post(
            BACKGROUND,
            "application/connect+json",
            envelope(0, big.as_bytes()),
        ),
    ))
    .await;
    let (_, end) = end_of_stream(resp.body());
    assert_eq!(end["error"]["code"], "resource_exhausted");
    // A GET's message is held to the same limit.
    let uri = format!(
        "{HELLO}?encoding=json&base64=1&message={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&big)
    );
    let resp = within(h1(server.addr, get(&uri))).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json(&resp)["code"], "resource_exhausted");
    server.stop().await;
}

#[tokio::test]
async fn metrics_say_the_protocol() {
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let server = basic_service::BasicServer::new(test_config())
        .unwrap()
        .metrics_listener(metrics);
    let server = crate::common::start_server(server).await;
    within(h1(server.addr, post(HELLO, "application/json", "{}"))).await;
    within(h2c(
        server.addr,
        post(HELLO, "application/grpc-web+json", envelope(0, b"{}")),
    ))
    .await;
    within(h2c(
        server.addr,
        post(HELLO, "application/grpc+json", envelope(0, b"{}")),
    ))
    .await;
    let text = scrape_metrics(metrics_addr).await;
    for protocol in ["connect", "grpc-web", "grpc"] {
        let line =
            format!(r#"basic_rpc_total{{method="{HELLO}",protocol="{protocol}",code="OK"}} "#);
        assert!(text.contains(&line), "{line} not in {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn hostile_envelopes_get_a_clean_error() {
    let server = start(test_config()).await;
    // Declared longer than the body: the body ends inside a message.
    let mut truncated = envelope(0, br#"{"processes":2}"#);
    truncated[4] += 10;
    // A declared length over the limit: refused before it is read.
    let huge = [0u8, 0x7f, 0xff, 0xff, 0xff].to_vec();
    // A client may not send the end-of-stream flag, nor an unknown one.
    for body in [
        truncated,
        huge,
        envelope(2, b"{}"),
        envelope(0x80, b"{}"),
        vec![0, 0],
    ] {
        let resp = within(h2c(
            server.addr,
            post(BACKGROUND, "application/connect+json", body.clone()),
        ))
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let (_, end) = end_of_stream(resp.body());
        let code = end["error"]["code"].as_str().unwrap_or("none").to_owned();
        assert!(
            [
                "invalid_argument",
                "internal",
                "resource_exhausted",
                "unknown"
            ]
            .contains(&code.as_str()),
            "{body:?}: {end}"
        );
    }
    // A declared content-length over the limit is refused before the body is read.
    let resp = within(h1(
        server.addr,
        post(HELLO, "application/json", "x".repeat(5 << 20)),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    server.stop().await;
}

/// The HTTP statuses a Connect error may have.
const CONNECT_STATUSES: &[u16] = &[
    200, 400, 401, 403, 404, 409, 415, 429, 499, 500, 501, 503, 504,
];

/// Random and mutated JSON for every RPC, over Connect (unary and streams) and gRPC with
/// JSON: always a clean answer, never a crash, and the server serves afterwards.
#[test]
fn random_and_mutated_json_gets_a_clean_answer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (server, conn) = runtime.block_on(async {
        let mut config = test_config();
        config.limits.max_processes = 64;
        let server = start(config).await;
        let conn = raw::connect(server.addr).await;
        (server, conn)
    });
    const VALID: &[(&str, &str, &[u8])] = &[
        (HELLO, "application/json", br#"{"message":"Ada"}"#),
        (
            BACKGROUND,
            "application/connect+json",
            br#"{"processes":2}"#,
        ),
        (
            TALK,
            "application/connect+json",
            br#"{"message":"I am sad."}"#,
        ),
        (HELLO, "application/grpc+json", br#"{"message":"Ada"}"#),
        (
            "/grpc.health.v1.Health/Check",
            "application/json",
            br#"{"service":""}"#,
        ),
    ];
    let alphabet = prop_oneof![
        Just(b'{'),
        Just(b'}'),
        Just(b'['),
        Just(b'"'),
        Just(b':'),
        Just(b','),
        Just(b'\\'),
        any::<u8>()
    ];
    let case = (0..VALID.len()).prop_flat_map(move |i| {
        (
            Just(i),
            mutations(VALID[i].2.to_vec(), alphabet.clone(), 1..5),
        )
    });
    let mut runner = TestRunner::new(PropConfig {
        cases: 300,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let result = runner.run(&case, |(i, bytes)| {
        let (path, content_type, _) = VALID[i];
        let request = Request::post(format!("http://127.0.0.1{path}"))
            .header("content-type", content_type)
            .header("te", "trailers")
            .body(())
            .unwrap();
        let body = if content_type.starts_with("application/json") {
            bytes.clone()
        } else {
            envelope(0, &bytes)
        };
        let reply = runtime
            .block_on(conn.call(request, &body))
            .map_err(|err| TestCaseError::fail(format!("{path} {bytes:?}: {err}")))?;
        prop_assert!(
            CONNECT_STATUSES.contains(&reply.http),
            "{path} {bytes:?}: {reply:?}"
        );
        if content_type == "application/grpc+json" {
            prop_assert!(reply.grpc_status.is_some_and(|c| (0..=16).contains(&c)));
        } else if reply.http != 200 {
            let error: Value = serde_json::from_slice(&reply.body)
                .map_err(|err| TestCaseError::fail(format!("{err}: {reply:?}")))?;
            prop_assert!(error["code"].is_string(), "{error}");
        }
        Ok(())
    });
    runtime.block_on(async {
        let resp = within(h1(server.addr, post(HELLO, "application/json", "{}"))).await;
        assert_eq!(resp.status(), StatusCode::OK);
        server.stop().await;
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
