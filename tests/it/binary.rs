//! The server binary itself: flags, startup errors, accept errors, signals.

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use basic_service::client::{ClientOptions, connect};
use volo_gen::basic::service::v1::HelloRequest;

use crate::process::{BIN, Server};

async fn hello(addr: SocketAddr) -> Result<(), volo_grpc::Status> {
    let client = connect(&ClientOptions {
        timeout: Some(Duration::from_secs(5)),
        ..ClientOptions::new(addr)
    })
    .expect("client");
    client
        .hello(HelloRequest {
            message: "bin".into(),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn sigterm_stops_the_binary_with_exit_code_zero() {
    let server = Server::start(None, &[]);
    hello(server.addr).await.expect("serves");
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn running_out_of_file_descriptors_does_not_stop_the_server() {
    let server = Server::start(Some(64), &[]);
    hello(server.addr).await.expect("serves before");
    // Hold more connections than the server has descriptors: accept fails for a while.
    let mut held = Vec::new();
    for _ in 0..100 {
        if let Ok(conn) = tokio::net::TcpStream::connect(server.addr).await {
            held.push(conn);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    // Once descriptors are free again, the same server answers.
    let mut ok = false;
    for _ in 0..100 {
        if hello(server.addr).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the server recovered from accept errors");
    let saw_failure = server
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("accept failed"));
    assert!(saw_failure, "the descriptor limit was actually hit");
    assert!(server.stop().await.success());
}

#[test]
fn a_malformed_eliza_script_is_refused_with_line_and_column() {
    let path = std::env::temp_dir().join(format!("bad-{}.script", uuid::Uuid::new_v4()));
    std::fs::write(
        &path,
        "(HELLO)\nSTART\n(SORRY 0 ((0) (PLEASE DONT APOLOGIZE))\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "--eliza-script"])
        .arg(&path)
        .output()
        .expect("run binary");
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("line 3, column"), "{text}");
}

#[test]
fn bad_flag_values_are_refused_at_startup() {
    for (flags, needle) in [
        (&["--sim-failure-rate", "2"][..], "--sim-failure-rate"),
        (
            &["--sim-delay-min-ms", "10", "--sim-delay-max-ms", "1"][..],
            "--sim-delay-min-ms",
        ),
        (&["--addr", "nowhere"][..], "--addr"),
        (
            &[
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.key",
            ][..],
            "nonexistent",
        ),
    ] {
        let out = Command::new(BIN)
            .args(flags)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("BASIC_ADDR", "127.0.0.1:0")
            .output()
            .expect("run binary");
        assert!(!out.status.success(), "{flags:?} must fail");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(needle), "{flags:?}: {text}");
    }
}

#[tokio::test]
async fn a_flood_of_refused_calls_is_logged_at_a_bounded_rate_and_every_call_is_counted() {
    let server = Server::start(None, &["--auth-token", "s3cret"]);
    let log = std::sync::Arc::clone(&server.log);
    let anonymous = connect(&ClientOptions::new(server.addr)).expect("client");
    let request = || HelloRequest {
        message: "flood".into(),
    };
    const FLOOD: usize = 400;
    let started = Instant::now();
    let callers = (0..8).map(|_| {
        let anonymous = anonymous.clone();
        tokio::spawn(async move {
            for _ in 0..FLOOD / 8 {
                let status = anonymous.hello(request()).await.unwrap_err();
                assert_eq!(status.code(), volo_grpc::Code::Unauthenticated);
            }
        })
    });
    for caller in callers.collect::<Vec<_>>() {
        caller.await.unwrap();
    }
    let flood_secs = started.elapsed().as_secs() as usize;
    // A second later, the next refusal's line reports how many were held back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    anonymous.hello(request()).await.unwrap_err();
    // A call that succeeds is logged as always.
    let member = connect(&ClientOptions {
        token: Some("s3cret".into()),
        ..ClientOptions::new(server.addr)
    })
    .expect("client");
    member.hello(request()).await.expect("authorized hello");
    assert!(server.stop().await.success());
    // The last lines (the shutdown report among them) are drained from the pipe.
    for _ in 0..100 {
        if log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("server stopped"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = log.lock().unwrap();
    let access: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("\"target\":\"access\""))
        .collect();
    let refused: Vec<&&String> = access
        .iter()
        .filter(|l| l.contains("\"code\":\"UNAUTHENTICATED\""))
        .collect();
    let lines = refused
        .iter()
        .filter(|l| l.contains("\"message\":\"rpc\""))
        .count();
    let held_back: usize = refused
        .iter()
        .filter_map(|l| {
            let at = l.find("\"suppressed\":")? + "\"suppressed\":".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .sum();
    // At most 20 lines in each second the flood touched (and the one a second later),
    // not one line per call...
    assert!(
        lines <= 20 * (flood_secs + 2) + 1,
        "{lines} lines for {} refused calls in {flood_secs} s",
        FLOOD + 1
    );
    // ...and every refused call is either a line or counted in one.
    assert_eq!(lines + held_back, FLOOD + 1, "{refused:#?}");
    let ok: Vec<&&String> = access
        .iter()
        .filter(|l| l.contains("\"code\":\"OK\""))
        .collect();
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert!(!ok[0].contains("suppressed"), "{}", ok[0]);
}
