//! Starting and stopping a test server.

use std::{net::SocketAddr, time::Duration};

use basic_service::{
    BasicServer, Config, ServerError, Simulator,
    client::{BasicServiceClient, ClientOptions, connect},
    simulator::SimConfig,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::basic::service::v1::{TalkRequest, TalkResponse};
use volo_gen::basic::v1::BasicService;

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

/// The reply side of an open Talk stream.
pub type Replies<'a> = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<TalkResponse, volo_grpc::Status>> + Send + 'a>,
>;

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
