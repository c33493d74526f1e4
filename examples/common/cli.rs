//! What the command-line examples share: how `main` reports an error, and how a call
//! that the server refused reads.

use std::{future::Future, process::ExitCode};

use basic_service::client::describe;
use volo_grpc::Status;

/// Awaits the example's `run`; on an error prints `name: cause chain` and exits with 1.
pub async fn exit_code(name: &str, run: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A call that failed before any reply, as `CODE: message (address)`.
pub fn call_failed(status: &Status, addr: &str) -> anyhow::Error {
    anyhow::anyhow!("{} ({addr})", describe(status))
}
