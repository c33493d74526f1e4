//! The HTTP front: the web page, gRPC-Web on HTTP/1.1 and HTTP/2, CORS, HTTP 415,
//! `grpc-accept-encoding`, malformed `grpc-timeout`, and ALPN for browsers over TLS.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use basic_service::{
    Config,
    cloudevent::{proto_data, unpack},
    config::{AllowedOrigins, TlsFiles},
};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use pilota::pb::Message;
use volo_gen::basic::service::v1::{
    BackgroundRequest, BackgroundResponse, BackgroundResponseEvent, HelloRequest, State,
    TalkRequest,
};

use crate::{
    common::{slow_workers, start, test_config, within},
    wire::{self, WebBody, answers, frame, greeting, grpc_web, h1, h2c, post},
};

const HELLO: &str = "/basic.v1.BasicService/Hello";

fn hello(name: &str) -> Vec<u8> {
    frame(&HelloRequest {
        message: name.to_owned(),
    })
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

/// `req` with the header `name: value` added.
fn with_header(
    mut req: Request<Full<Bytes>>,
    name: &'static str,
    value: &str,
) -> Request<Full<Bytes>> {
    req.headers_mut().insert(name, value.parse().unwrap());
    req
}

#[tokio::test]
async fn the_page_and_its_files_are_served_on_http1_and_h2c() {
    let server = start(test_config()).await;
    let page = within(h1(server.addr, get("/"))).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = std::str::from_utf8(page.body()).unwrap();
    assert!(html.contains(r#"id="talk-log""#), "{html}");
    let script = within(h2c(server.addr, get("/app.js"))).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        std::str::from_utf8(script.body())
            .unwrap()
            .contains("application/connect+json")
    );
    let missing = within(h1(server.addr, get("/nothing-here"))).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn requests_that_are_not_grpc_get_415() {
    let server = start(test_config()).await;
    for content_type in ["text/plain", "application/xml", "application/grpc+xml"] {
        let req = || post(HELLO, content_type, hello("Ada"));
        for resp in [
            within(h1(server.addr, req())).await,
            within(h2c(server.addr, req())).await,
        ] {
            assert_eq!(
                resp.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type}"
            );
            assert!(resp.headers().get("grpc-status").is_none());
        }
    }
    let no_type = Request::post(HELLO)
        .body(Full::new(Bytes::from(hello("Ada"))))
        .unwrap();
    assert_eq!(
        within(h2c(server.addr, no_type)).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_hello_over_http1_and_h2c() {
    let server = start(test_config()).await;
    for resp in [
        within(h1(server.addr, grpc_web(HELLO, &[hello("Ada")]))).await,
        within(h2c(server.addr, grpc_web(HELLO, &[hello("Grace")]))).await,
    ] {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/grpc-web+proto");
        assert_eq!(resp.headers()["grpc-accept-encoding"], "gzip,zstd");
        assert!(resp.headers().get("x-request-id").is_some());
        let body = WebBody::parse(resp.body().clone());
        assert_eq!(body.status(), Some("0"), "{body:?}");
        assert_eq!(body.messages.len(), 1);
        let greeting = greeting(&body.messages[0]);
        assert!(
            greeting == "Hello, Ada" || greeting == "Hello, Grace",
            "{greeting}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_text_is_base64_both_ways() {
    let server = start(test_config()).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let req = post(HELLO, "application/grpc-web-text", b64.encode(hello("Ada")));
    let req = with_header(req, "accept", "application/grpc-web-text");
    let resp = within(h2c(server.addr, req)).await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/grpc-web-text+proto"
    );
    // Each chunk is its own padded base64 segment, so decode quantum by quantum.
    let decoded: Vec<u8> = resp
        .body()
        .chunks(4)
        .flat_map(|quantum| b64.decode(quantum).unwrap())
        .collect();
    let body = WebBody::parse(Bytes::from(decoded));
    assert_eq!(body.status(), Some("0"));
    assert_eq!(greeting(&body.messages[0]), "Hello, Ada");
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_talk_answers_each_message_of_one_request_body() {
    let server = start(test_config()).await;
    let lines = [
        "Men are all alike.",
        "They're always bugging us about something or other.",
        "bye",
        "anyone there?",
    ];
    let messages: Vec<_> = lines
        .iter()
        .map(|m| {
            frame(&TalkRequest {
                message: (*m).into(),
            })
        })
        .collect();
    let resp = within(h1(
        server.addr,
        grpc_web("/basic.v1.BasicService/Talk", &messages),
    ))
    .await;
    let body = WebBody::parse(resp.body().clone());
    assert_eq!(body.status(), Some("0"));
    // Nothing after the farewell: the conversation ended there.
    assert_eq!(
        answers(&body.messages),
        [
            "In what way?",
            "Can you think of a specific example?",
            "Goodbye. It was nice talking to you."
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_background_streams_each_snapshot_as_it_comes() {
    // Workers that outlast the test: the first snapshot can only arrive live.
    let server = start(slow_workers(test_config())).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = grpc_web(
        "/basic.v1.BasicService/Background",
        &[frame(&BackgroundRequest { processes: 5 })],
    );
    let resp = within(sender.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = within(wire::read_until(&mut body, |buf| {
        buf.len() >= 5
            && buf.len() >= 5 + u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize
    }))
    .await;
    let message = WebBody::parse(first.freeze()).messages.remove(0);
    let event = BackgroundResponse::decode(message)
        .unwrap()
        .cloud_event
        .unwrap();
    let snapshot = unpack::<BackgroundResponseEvent>(proto_data(&event).unwrap()).unwrap();
    assert_eq!(snapshot.state, State::STATE_PROCESS);
    assert!(snapshot.responses.is_empty());
    assert_eq!(server.simulator.active_workers(), 5);
    // A browser that cancels closes the connection: the workers stop.
    drop(body);
    drop(sender);
    conn.abort();
    assert_eq!(server.workers_settle().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_errors_come_trailers_only() {
    let mut config = test_config();
    config.limits.max_processes = 3;
    let server = start(config).await;
    let resp = within(h1(
        server.addr,
        grpc_web(
            "/basic.v1.BasicService/Background",
            &[frame(&BackgroundRequest { processes: 4 })],
        ),
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["grpc-status"], "3");
    assert!(
        resp.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .contains("maximum")
    );
    server.stop().await;
}

fn preflight(origin: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(HELLO)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,grpc-timeout",
        )
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn cors_lets_listed_origins_call_and_read_the_status() {
    let mut config = test_config();
    config.access.cors_allowed_origins = AllowedOrigins::parse(&["http://localhost:5173"]).unwrap();
    let server = start(config).await;
    let allowed = within(h1(server.addr, preflight("http://localhost:5173"))).await;
    assert!(allowed.status().is_success(), "{allowed:?}");
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-grpc-web")
    );

    let other = within(h1(server.addr, preflight("http://evil.example"))).await;
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let call = with_header(
        grpc_web(HELLO, &[hello("Ada")]),
        "origin",
        "http://localhost:5173",
    );
    let resp = within(h1(server.addr, call)).await;
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    for name in ["grpc-status", "grpc-message", "x-request-id"] {
        assert!(exposed.contains(name), "{name} not in {exposed}");
    }
    assert_eq!(WebBody::parse(resp.body().clone()).status(), Some("0"));

    // Connect from the same page: the origin may call and read the reply.
    let call = with_header(
        post(HELLO, "application/json", r#"{"message":"Ada"}"#),
        "origin",
        "http://localhost:5173",
    );
    let resp = within(h1(server.addr, call)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let call = with_header(
        post(HELLO, "application/json", r#"{"message":"Ada"}"#),
        "origin",
        "http://evil.example",
    );
    let resp = within(h1(server.addr, call)).await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test]
async fn by_default_no_foreign_origin_may_call() {
    let server = start(test_config()).await;
    let resp = within(h1(server.addr, preflight("http://localhost:5173"))).await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

fn grpc(path: &str, body: Vec<u8>, headers: &[(&'static str, &str)]) -> Request<Full<Bytes>> {
    let req = post(path, "application/grpc", body);
    headers
        .iter()
        .fold(req, |req, (name, value)| with_header(req, name, value))
}

/// The gRPC status of a plain gRPC response: trailers, or the headers if trailers-only.
fn status_of(resp: &http::Response<Bytes>) -> (String, String) {
    let headers = resp
        .extensions()
        .get::<wire::Trailers>()
        .map(|t| &t.0)
        .filter(|t| t.contains_key("grpc-status"))
        .unwrap_or(resp.headers());
    let get = |name| {
        headers
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (get("grpc-status"), get("grpc-message"))
}

#[tokio::test]
async fn every_grpc_response_says_which_encodings_it_accepts() {
    let server = start(test_config()).await;
    let ok = within(h2c(server.addr, grpc(HELLO, hello("Ada"), &[]))).await;
    assert_eq!(status_of(&ok).0, "0");
    assert_eq!(ok.headers()["grpc-accept-encoding"], "gzip,zstd");
    for path in [HELLO, "/grpc.health.v1.Health/Check"] {
        let refused = within(h2c(
            server.addr,
            grpc(path, hello("Ada"), &[("grpc-encoding", "snappy")]),
        ))
        .await;
        let (code, message) = status_of(&refused);
        assert_eq!(code, "12", "{path}: {message}");
        assert_eq!(refused.headers()["grpc-accept-encoding"], "gzip,zstd");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_grpc_timeout_is_refused() {
    let server = start(test_config()).await;
    for bad in ["5s", "1.5S", "123456789S", "S"] {
        let resp = within(h2c(
            server.addr,
            grpc(HELLO, hello("Ada"), &[("grpc-timeout", bad)]),
        ))
        .await;
        let (code, message) = status_of(&resp);
        assert_eq!(code, "13", "{bad}");
        assert!(
            message.contains("malformed%20grpc-timeout"),
            "{bad}: {message}"
        );
    }
    let fine = within(h2c(
        server.addr,
        grpc(HELLO, hello("Ada"), &[("grpc-timeout", "5S")]),
    ))
    .await;
    assert_eq!(status_of(&fine).0, "0");
    server.stop().await;
}

#[tokio::test]
async fn tls_offers_http1_to_browsers_and_h2_to_grpc_clients() {
    let dir = std::env::temp_dir().join(format!("basic-service-alpn-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let server = start(Config {
        tls: Some(TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: None,
        }),
        ..test_config()
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    for (alpn, expect) in [(&b"http/1.1"[..], &b"http/1.1"[..]), (b"h2", b"h2")] {
        let mut client =
            rustls::ClientConfig::builder_with_provider(basic_service::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
        client.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let tls = within(
            tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect("localhost".try_into().unwrap(), tcp),
        )
        .await
        .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(expect));
        if alpn == b"http/1.1" {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
            let resp = within(sender.send_request(req)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(std::str::from_utf8(&body).unwrap().contains("hello-send"));
        }
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn http1_connections_idle_too_long_are_closed() {
    let mut config = test_config();
    config.http2.idle_timeout = Some(Duration::from_millis(200));
    let server = start(config).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let resp = within(sender.send_request(get("/"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    // Kept alive after the request, then closed by the server once idle.
    within(conn).await.unwrap().unwrap();
    server.stop().await;
}
