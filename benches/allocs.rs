//! Heap allocations the server makes per call: Hello, a Talk message, a Background call.
//!
//! The server runs in this process on its own runtime, whose threads are the only ones
//! counted; the client runs on another runtime, so its allocations are not. Each
//! figure is the average over many calls after a warm-up (connection set-up, metric
//! handles and other first-use costs are left out). A per-call allocation that can be
//! avoided shows up here as a whole number that does not go down.
//!
//! Run with `cargo bench --bench allocs` (release build, default server settings, the
//! access log switched off as there is no subscriber: `RUST_LOG` has no effect here).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use basic_service::{
    BasicServer, Config,
    client::{BasicServiceClient, ClientOptions, connect},
};
use futures::StreamExt;
use tokio::{net::TcpListener, runtime::Runtime, sync::oneshot};
use volo_gen::basic::service::v1::{BackgroundRequest, HelloRequest, TalkRequest};

/// The system allocator, counting what threads marked [`COUNTED`] allocate.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the server runtime's threads. Const-initialised with no destructor, so
    /// reading it never allocates (which would recurse into the allocator).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting only touches atomics and a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's `layout` is passed on as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator (i.e. from `System`).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes counted so far.
fn counted() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

/// Runs `round` (which makes `units` calls or messages) twice: once to warm up, once
/// measured; prints the server's allocations per unit.
async fn measure<F, Fut>(what: &str, units: u64, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    round().await;
    // Let the server finish with the warm-up (streams end, log lines are written).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (allocations, bytes) = counted();
    round().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (after, after_bytes) = counted();
    println!(
        "{what:32} {:>7.1} allocations, {:>8.0} bytes per unit",
        (after - allocations) as f64 / units as f64,
        (after_bytes - bytes) as f64 / units as f64
    );
}

async fn hello(client: &BasicServiceClient, calls: u64) {
    for _ in 0..calls {
        let request = HelloRequest {
            message: "Ada".to_owned(),
        };
        client.hello(request).await.expect("hello");
    }
}

async fn talk(client: &BasicServiceClient, calls: u64, messages: u64) {
    for _ in 0..calls {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut replies = client.talk(requests).await.expect("talk").into_inner();
        for _ in 0..messages {
            let request = TalkRequest {
                message: "I am unhappy".to_owned(),
            };
            tx.send(request).await.expect("send");
            replies.next().await.expect("a reply").expect("ok");
        }
        drop(tx);
        while replies.next().await.is_some() {}
    }
}

async fn background(client: &BasicServiceClient, calls: u64, processes: i64) {
    for _ in 0..calls {
        let mut stream = client
            .background(BackgroundRequest { processes })
            .await
            .expect("background")
            .into_inner();
        while let Some(message) = stream.next().await {
            message.expect("ok");
        }
    }
}

fn main() {
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| COUNTED.set(true))
        .enable_all()
        .build()
        .expect("server runtime");
    let client_runtime = Runtime::new().expect("client runtime");

    let mut config = Config::default();
    config.sim.delay = Duration::ZERO..=Duration::ZERO;
    let server = BasicServer::new(config).expect("default config");
    let listener = server_runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = server_runtime.spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));

    client_runtime.block_on(async {
        let client = connect(&ClientOptions {
            addrs: vec![addr],
            ..ClientOptions::default()
        })
        .expect("client");
        const CALLS: u64 = 2000;
        measure("Hello (per call)", CALLS, || hello(&client, CALLS)).await;
        measure(
            "Talk, 100 messages a call (per message)",
            CALLS * 10,
            || talk(&client, CALLS / 10, 100),
        )
        .await;
        measure("Talk call set-up and end (per call)", CALLS, || {
            talk(&client, CALLS, 0)
        })
        .await;
        measure("Background, 10 workers (per call)", CALLS / 10, || {
            background(&client, CALLS / 10, 10)
        })
        .await;
    });
    let _ = stop.send(());
    let _ = server_runtime.block_on(serving);
}
