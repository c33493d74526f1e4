use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use basic_service::{
    BasicServer,
    client::{ClientOptions, connect},
};

use crate::common::{Hooked, Seen, hello_request, start_server, test_config};

#[tokio::test]
async fn a_client_with_three_addresses_reaches_all_three_replicas() {
    let mut servers = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..3 {
        let count = Arc::new(AtomicUsize::new(0));
        counters.push(Arc::clone(&count));
        // The real handler, counting the Hello calls that reach this replica.
        let counting = move |seen: Seen| {
            if let Seen::Hello(_) = seen {
                count.fetch_add(1, Ordering::Relaxed);
            }
        };
        let server = BasicServer::new(test_config())
            .unwrap()
            .map_service(|h| Hooked::new(h, counting));
        servers.push(start_server(server).await);
    }
    let client = connect(&ClientOptions {
        addrs: servers.iter().map(|s| s.addr).collect(),
        ..ClientOptions::default()
    })
    .unwrap();
    for _ in 0..90 {
        client.hello(hello_request("lb")).await.unwrap();
    }
    let counts: Vec<usize> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 90);
    // Random balancing: each replica gets some; 0 of 90 has probability ~1e-16.
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    for server in servers {
        server.stop().await;
    }
}
