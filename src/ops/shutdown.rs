//! Shutdown, in one place: the phases a stopping server goes through, and the signal
//! that ends the streams still open at the end.
//!
//! When the shutdown future given to [`crate::BasicServer::serve`] completes:
//!
//! 1. **Drain** (`--shutdown-drain-secs`, default 0): health reports NOT_SERVING while
//!    the server still serves, new calls included, so balancers move traffic away.
//! 2. **Stop accepting**: the listener refuses new connections, hands over the ones the
//!    kernel had already accepted, then closes ([`crate::front`]).
//! 3. **Go away**: every connection gets HTTP/2 GOAWAY (no new calls; open ones may
//!    finish), and each closes once its calls are done. This lasts at most the grace
//!    period (`--shutdown-grace-secs`).
//! 4. **End streams**: streams still open get UNAVAILABLE trailers ([`StreamsEnd`],
//!    watched by the call pipeline's response wrapper, so handlers carry no shutdown
//!    code), and are given [`FINAL_FLUSH`] to write them. Then `serve` returns, whatever is left.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, futures::OwnedNotified},
    task::JoinHandle,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::health::HealthReporter;

/// How long streams get to write their final status after being told to end.
pub(crate) const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// The signal that ends open streams (phase 4). Cheap to clone and to check.
///
/// Checking is one atomic load (a `CancellationToken` takes a lock even to be read),
/// so the call pipeline can look at every poll of every response body; a body that
/// waits registers to be woken once, the first time it waits.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamsEnd(Arc<Signal>);

#[derive(Debug, Default)]
struct Signal {
    ended: AtomicBool,
    notify: Arc<Notify>,
}

impl StreamsEnd {
    /// Whether open streams must end now.
    pub(crate) fn has_come(&self) -> bool {
        self.0.ended.load(Ordering::Acquire)
    }

    /// Completes when streams must end. Poll it once to register, then check
    /// [`has_come`](Self::has_come) so a signal given in between is not missed.
    pub(crate) fn wait(&self) -> OwnedNotified {
        Arc::clone(&self.0.notify).notified_owned()
    }

    /// Ends every open stream.
    pub(crate) fn give(&self) {
        self.0.ended.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }
}

/// The handles of a running server that shutdown acts on, one per phase.
#[derive(Debug)]
pub(crate) struct Shutdown {
    /// Phase 1: reports NOT_SERVING.
    pub health: HealthReporter,
    /// Phase 1: how long to keep serving while reporting NOT_SERVING.
    pub drain: Duration,
    /// Phase 2: cancelled to make the listener stop accepting.
    pub stop_accepting: CancellationToken,
    /// Phase 2: the accept loop, which ends once the listener is closed.
    pub accepting: JoinHandle<()>,
    /// Phase 3: cancelled to send GOAWAY on every connection.
    pub go_away: CancellationToken,
    /// Phase 3: the connection tasks (and the loop that starts them).
    pub connections: TaskTracker,
    /// Phase 3: how long open calls get to finish.
    pub grace: Duration,
    /// Phase 4: ends the streams still open.
    pub streams_end: StreamsEnd,
}

impl Shutdown {
    /// Runs the phases in order; returns once every connection is closed, or when the
    /// last phase's time is up.
    pub(crate) async fn run(self) {
        self.health.set_not_serving();
        if !self.drain.is_zero() {
            tracing::info!(
                drain_secs = self.drain.as_secs_f64(),
                "shutting down: reporting NOT_SERVING before closing connections"
            );
            tokio::time::sleep(self.drain).await;
        }
        tracing::info!(
            grace_secs = self.grace.as_secs_f64(),
            "shutting down: letting open calls finish"
        );
        self.stop_accepting.cancel();
        // A panic in the accept loop is a bug, logged.
        if let Err(err) = self.accepting.await {
            tracing::error!(%err, "accept loop failed");
        }
        self.go_away.cancel();
        self.connections.close();
        if tokio::time::timeout(self.grace, self.connections.wait())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!("grace period over: ending open streams with UNAVAILABLE");
        self.streams_end.give();
        if tokio::time::timeout(FINAL_FLUSH, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time; stopping anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::pin, task::Poll};

    use super::*;

    #[tokio::test]
    async fn a_waiting_stream_is_woken_when_streams_end() {
        let end = StreamsEnd::default();
        let mut wait = pin!(end.wait());
        // Registered, not yet ended.
        let polled = futures::poll!(wait.as_mut());
        assert!(polled.is_pending() && !end.has_come());
        end.clone().give();
        assert!(end.has_come());
        assert_eq!(futures::poll!(wait.as_mut()), Poll::Ready(()));
        // A wait made after the signal is not woken, which is why callers check
        // `has_come` after registering.
        let mut late = pin!(end.wait());
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(late.as_mut().poll(cx)))
                .await
                .is_pending()
        );
    }
}
