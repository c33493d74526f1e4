//! Asks a server's `grpc.health.v1.Health/Check` for its serving status, optionally
//! waiting until it is SERVING (what `deploy/nginx/rollout.sh` does after starting a
//! replica).
//!
//! ```text
//! cargo run --release                                   # the server, in another terminal
//! cargo run --example health                            # SERVING (exit 0)
//! cargo run --example health -- --wait-secs 30 --service basic.v1.BasicService
//! ```
//!
//! Exit code 0 when SERVING, 1 otherwise (NOT_SERVING, unreachable, or still not
//! SERVING when the wait is over). Plaintext only.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use basic_service::client::{describe, parse_addrs};
use clap::Parser;
use volo_gen::grpc::health::v1::{
    HealthCheckRequest, HealthClientBuilder, health_check_response::ServingStatus,
};

/// Checks grpc.health.v1.Health.
#[derive(Parser)]
struct Cli {
    /// Server address.
    #[arg(long, env = "BASIC_ADDR", default_value = basic_service::config::DEFAULT_ADDR)]
    addr: String,
    /// The service to ask about ("" is the whole server).
    #[arg(long, default_value = "")]
    service: String,
    /// Keep asking (every 100 ms) until SERVING, for up to this many seconds.
    #[arg(long, default_value_t = 0)]
    wait_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let addr = match parse_addrs(&cli.addr) {
        Ok(addrs) => addrs[0],
        Err(err) => {
            eprintln!("health: {err}");
            return ExitCode::FAILURE;
        }
    };
    let health = HealthClientBuilder::new("health")
        .address(addr)
        .rpc_timeout(Some(Duration::from_secs(2)))
        .build();
    let deadline = Instant::now() + Duration::from_secs(cli.wait_secs);
    loop {
        let answer = health
            .check(HealthCheckRequest {
                service: cli.service.clone().into(),
            })
            .await;
        let line = match &answer {
            Ok(reply) => reply.get_ref().status.to_string(),
            Err(status) => describe(status),
        };
        let serving =
            matches!(&answer, Ok(reply) if reply.get_ref().status == ServingStatus::SERVING);
        if serving || Instant::now() >= deadline {
            println!("{line}");
            return if serving {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
