//! The cost of a whole Background call in-process, at n = 10 000, 100 000 and 1 000 000:
//! drawing the calls, completing them, encoding and pacing the snapshots.
//!
//! The clock is paused, so the default 1–3 s delays pass as soon as the runtime is idle
//! and the figure is the CPU work alone. Criterion reports it per simulated call
//! (`thrpt`); a path that is linear in n shows the same throughput at every n.
//!
//! Run with `cargo bench --bench background`.

use std::hint::black_box;

use basic_service::{BasicServer, Config};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use pilota::pb::{EncodeLengthContext, Message};
use volo_gen::basic::{service::v1::BackgroundRequest, v1::BasicService};
use volo_grpc::Request;

/// Runs one Background call of `processes` to its end; the bytes of its messages.
async fn call(server: &BasicServer, processes: i64) -> usize {
    let mut replies = server
        .handler()
        .background(Request::new(BackgroundRequest { processes }))
        .await
        .expect("background starts")
        .into_inner();
    let mut bytes = 0;
    while let Some(reply) = replies.next().await {
        bytes += reply
            .expect("background message")
            .encoded_len(&mut EncodeLengthContext::default());
    }
    bytes
}

fn background(c: &mut Criterion) {
    let mut config = Config::default();
    config.limits.max_processes = 1_000_000;
    let server = BasicServer::new(config).expect("server");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("background/call");
    group.sample_size(10);
    for n in [10_000u32, 100_000, 1_000_000] {
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(format!("n={n}"), |b| {
            b.iter(|| black_box(runtime.block_on(call(&server, i64::from(n)))))
        });
    }
    group.finish();
}

criterion_group!(benches, background);
criterion_main!(benches);
