use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use basic_service::{
    BasicHandler, BasicServer,
    client::{ClientOptions, connect},
    handlers::ReplyStream,
};
use volo_gen::basic::{
    service::v1::{
        BackgroundRequest, BackgroundResponse, HelloRequest, HelloResponse, TalkRequest,
        TalkResponse,
    },
    v1::BasicService,
};
use volo_grpc::{RecvStream, Request, Response, Status};

use crate::common::{start_server, test_config};

/// The real handler, counting the Hello calls that reach this replica.
struct Counting(BasicHandler, Arc<AtomicUsize>);

impl BasicService for Counting {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.hello(req).await
    }

    async fn talk(
        &self,
        req: Request<RecvStream<TalkRequest>>,
    ) -> Result<Response<ReplyStream<TalkResponse>>, Status> {
        self.0.talk(req).await
    }

    async fn background(
        &self,
        req: Request<BackgroundRequest>,
    ) -> Result<Response<ReplyStream<BackgroundResponse>>, Status> {
        self.0.background(req).await
    }
}

#[tokio::test]
async fn a_client_with_three_addresses_reaches_all_three_replicas() {
    let mut servers = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..3 {
        let count = Arc::new(AtomicUsize::new(0));
        counters.push(Arc::clone(&count));
        let server = BasicServer::new(test_config())
            .unwrap()
            .map_service(move |h| Counting(h, count));
        servers.push(start_server(server).await);
    }
    let client = connect(&ClientOptions {
        addrs: servers.iter().map(|s| s.addr).collect(),
        ..ClientOptions::default()
    })
    .unwrap();
    for _ in 0..90 {
        client
            .hello(HelloRequest {
                message: "lb".into(),
            })
            .await
            .unwrap();
    }
    let counts: Vec<usize> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 90);
    // Random balancing: each replica gets some; 0 of 90 has probability ~1e-16.
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    for server in servers {
        server.stop().await;
    }
}
