//! Starting and stopping a test server, and the calls and checks most tests share.

use std::{fmt::Debug, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use basic_service::{
    BasicHandler, BasicServer, Config, ReplyStream, ServerError, Simulator,
    client::{BasicServiceClient, ClientOptions, connect},
    simulator::SimConfig,
};
use futures::{Stream, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::{
    basic::{
        service::v1::{
            BackgroundRequest, BackgroundResponse, HelloRequest, HelloResponse, TalkRequest,
            TalkResponse,
        },
        v1::BasicService,
    },
    grpc::health::v1::{HealthCheckRequest, HealthClient, HealthClientBuilder},
};
use volo_grpc::{Code, RecvStream, Request, Response, Status};

/// Millisecond simulator delays and a seed, so tests run fast and reproducibly.
pub fn test_config() -> Config {
    let mut config = Config {
        sim: SimConfig {
            delay: Duration::from_millis(1)..=Duration::from_millis(5),
            failure_rate: 0.0,
            seed: Some(42),
        },
        ..Config::default()
    };
    config.shutdown.grace = Duration::from_secs(5);
    config
}

/// A running server; [`TestServer::stop`] shuts it down and checks it stopped cleanly.
pub struct TestServer {
    pub addr: SocketAddr,
    pub simulator: Simulator,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

/// Starts the production server with `config`.
pub async fn start(config: Config) -> TestServer {
    start_server(BasicServer::new(config).expect("valid test config")).await
}

/// Starts a prepared server (e.g. one whose service was wrapped).
pub async fn start_server<S>(server: BasicServer<S>) -> TestServer
where
    S: BasicService + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let simulator = server.simulator().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        simulator,
        stop: Some(stop),
        task,
    }
}

impl TestServer {
    pub fn client(&self) -> BasicServiceClient {
        connect(&ClientOptions::new(self.addr)).expect("plaintext client")
    }

    /// A `grpc.health.v1.Health` client for this server.
    pub fn health(&self) -> HealthClient {
        HealthClientBuilder::new("health")
            .address(self.addr)
            .build()
    }

    /// Begins shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits; the server must stop without error.
    pub async fn stop(mut self) {
        self.begin_stop();
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task did not panic");
        result.expect("server stopped cleanly");
    }

    /// Waits (bounded) until no simulated worker is alive; returns the last count seen.
    pub async fn workers_settle(&self) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let n = self.simulator.active_workers();
            if n == 0 || tokio::time::Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Awaits `fut`, failing the test instead of hanging if it takes over 30 s.
pub async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("did not finish within 30 s")
}

/// A config whose simulated calls outlast any test (60 to 120 s), for open streams.
pub fn slow_workers(mut config: Config) -> Config {
    config.sim.delay = Duration::from_secs(60)..=Duration::from_secs(120);
    config
}

/// The receiving side of an open server stream.
pub type Incoming<'a, T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'a>>;

/// The reply side of an open Talk stream.
pub type Replies<'a> = Incoming<'a, TalkResponse>;

/// Opens a Talk stream fed through a channel of `capacity` messages, so a test can
/// send one message at a time and wait for each reply.
pub async fn open_talk(
    client: &BasicServiceClient,
    capacity: usize,
) -> (mpsc::Sender<TalkRequest>, Replies<'_>) {
    let (tx, rx) = mpsc::channel(capacity);
    let replies = client
        .talk(ReceiverStream::new(rx))
        .await
        .expect("talk opens")
        .into_inner();
    (tx, Box::pin(replies))
}

/// A Talk message.
pub fn say(text: &str) -> TalkRequest {
    TalkRequest {
        message: text.to_owned(),
    }
}

/// A Hello request.
pub fn hello_request(text: &str) -> HelloRequest {
    HelloRequest {
        message: text.to_owned(),
    }
}

/// A health check (or watch) request for `service` ("" is the whole server).
pub fn health_of(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

/// Opens a Background stream of `processes` workers and reads its first message, sent
/// once every worker runs; returns the open stream and that message.
pub async fn background_started(
    client: &BasicServiceClient,
    processes: i64,
) -> (Incoming<'_, BackgroundResponse>, BackgroundResponse) {
    let stream = client
        .background(BackgroundRequest { processes })
        .await
        .expect("background opens")
        .into_inner();
    let mut stream: Incoming<'_, _> = Box::pin(stream);
    let first = next_ok(&mut stream).await;
    (stream, first)
}

/// Sends `text` on an open Talk stream and returns the reply, which must be OK.
pub async fn exchange(
    tx: &mpsc::Sender<TalkRequest>,
    replies: &mut Replies<'_>,
    text: &str,
) -> TalkResponse {
    tx.send(say(text)).await.expect("the stream is open");
    next_ok(replies).await
}

/// Sends `messages` on one Talk stream, half-closes, and collects every reply.
pub async fn talk_all(
    client: &BasicServiceClient,
    messages: impl IntoIterator<Item = TalkRequest>,
) -> Vec<Result<TalkResponse, Status>> {
    let replies = client
        .talk(futures::stream::iter(
            messages.into_iter().collect::<Vec<_>>(),
        ))
        .await
        .expect("talk opens")
        .into_inner();
    within(replies.collect()).await
}

/// Reads the next item of a stream: it must come within 30 s and be a message.
pub async fn next_ok<T, S>(stream: &mut S) -> T
where
    T: Debug,
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    within(stream.next())
        .await
        .expect("a message")
        .expect("the message is OK")
}

/// Reads the next item of a stream: it must come within 30 s and end the stream with `code`.
pub async fn expect_end<T, S>(stream: &mut S, code: Code) -> Status
where
    T: Debug,
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    let status = within(stream.next())
        .await
        .expect("a final item")
        .expect_err("the stream ends with an error");
    assert_eq!(status.code(), code, "{status:?}");
    status
}

/// Asserts a status's code, and that its message contains `text`.
pub fn assert_status(status: &Status, code: Code, text: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(text),
        "{:?} does not contain {text:?}",
        status.message()
    );
}

/// The Prometheus text served at `/metrics` on `addr`, with the HTTP status line.
pub async fn scrape_metrics(addr: SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    within(tcp.read_to_string(&mut text)).await.unwrap();
    text
}

/// What a [`Hooked`] handler shows its hook.
pub enum Seen<'a> {
    /// A Hello request, before the handler runs.
    Hello(&'a HelloRequest),
    /// A Talk reply, as the client is about to get it.
    TalkReply(&'a TalkResponse),
}

/// The real handler, calling `hook` on every Hello request and Talk reply (to count
/// calls or inject a panic); everything else passes straight through.
pub struct Hooked<F> {
    handler: BasicHandler,
    hook: Arc<F>,
}

impl<F> Hooked<F> {
    /// Wraps `handler` with `hook`.
    pub fn new(handler: BasicHandler, hook: F) -> Self {
        Self {
            handler,
            hook: Arc::new(hook),
        }
    }
}

impl<F: Fn(Seen) + Send + Sync + 'static> BasicService for Hooked<F> {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        (self.hook)(Seen::Hello(req.get_ref()));
        self.handler.hello(req).await
    }

    async fn talk(
        &self,
        req: Request<RecvStream<TalkRequest>>,
    ) -> Result<Response<ReplyStream<TalkResponse>>, Status> {
        let replies = self.handler.talk(req).await?.into_inner();
        let hook = Arc::clone(&self.hook);
        let hooked = replies.inspect(move |reply| {
            if let Ok(reply) = reply {
                hook(Seen::TalkReply(reply));
            }
        });
        Ok(Response::new(Box::pin(hooked)))
    }

    async fn background(
        &self,
        req: Request<BackgroundRequest>,
    ) -> Result<Response<ReplyStream<BackgroundResponse>>, Status> {
        self.handler.background(req).await
    }
}
