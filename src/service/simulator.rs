//! The service simulator behind Background: N simulated service calls run concurrently.
//!
//! Each call ("worker") draws a random delay and outcome (a protocol, or a simulated
//! failure) when the run starts. [`Simulator::run`] returns them as a [`Run`] stream
//! that yields each outcome when its delay has passed, in completion order: the run
//! keeps its calls sorted by completion time and one timer sleeps until the next. That
//! is the same as N concurrent sleeps, at a fraction of the cost: no timer or task per
//! call, about 64 bytes per call, and start-up and completion costs linear in n (plus
//! one O(n log n) sort). Dropping the stream (client gone, deadline, shutdown) stops
//! every call at once; no task is spawned and nothing outlives the caller.
//! [`Simulator::active_workers`] counts calls not yet finished across all runs, which is
//! how tests prove that cancellation stops work.
//!
//! This module knows nothing about gRPC; the Background handler turns outcomes into
//! messages.

use std::{
    future::Future,
    ops::RangeInclusive,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use tokio::time::{Instant, Sleep};
use uuid::Uuid;

/// How simulated calls behave.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Each call sleeps a delay drawn uniformly from this range.
    pub delay: RangeInclusive<Duration>,
    /// Probability (0.0 to 1.0) that a call fails.
    pub failure_rate: f64,
    /// Seed for reproducible runs; `None` draws from the OS.
    pub seed: Option<u64>,
}

impl SimConfig {
    /// The shortest delay by default (`--sim-delay-min-ms`).
    pub const DELAY_MIN: Duration = Duration::from_millis(1000);
    /// The longest delay by default (`--sim-delay-max-ms`).
    pub const DELAY_MAX: Duration = Duration::from_millis(3000);
    /// The failure rate by default (`--sim-failure-rate`).
    pub const FAILURE_RATE: f64 = 0.0;
}

/// The defaults of the `--sim-*` flags.
impl Default for SimConfig {
    fn default() -> Self {
        Self {
            delay: Self::DELAY_MIN..=Self::DELAY_MAX,
            failure_rate: Self::FAILURE_RATE,
            seed: None,
        }
    }
}

/// The protocol a successful simulated call reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rest,
    Grpc,
    Rpc,
    Ws,
    Mqtt,
    Amqp,
    Graphql,
    Sql,
    File,
}

impl Protocol {
    /// Every protocol, in the reference service's order.
    pub const ALL: [Protocol; 9] = [
        Protocol::Rest,
        Protocol::Grpc,
        Protocol::Rpc,
        Protocol::Ws,
        Protocol::Mqtt,
        Protocol::Amqp,
        Protocol::Graphql,
        Protocol::Sql,
        Protocol::File,
    ];

    /// The wire name (`rest`, `grpc`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
            Protocol::Rpc => "rpc",
            Protocol::Ws => "ws",
            Protocol::Mqtt => "mqtt",
            Protocol::Amqp => "amqp",
            Protocol::Graphql => "graphql",
            Protocol::Sql => "sql",
            Protocol::File => "file",
        }
    }
}

/// Why a simulated call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The failure rate picked this call to fail.
    #[error("service-{index}: simulated failure after {elapsed_ms} ms")]
    Simulated { index: u32, elapsed_ms: u64 },
}

/// The result of one simulated call.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// A fresh UUID v4 for this call.
    pub id: Uuid,
    /// 1-based position of the call in its run (`service-<index>`).
    pub index: u32,
    /// The protocol the call reported, or why it failed.
    pub result: Result<Protocol, CallError>,
}

/// Runs simulated calls; cheap to clone (one `Arc`), shared by every Background call.
#[derive(Debug, Clone)]
pub struct Simulator {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: SimConfig,
    /// Workers alive right now, across all runs.
    active: Arc<AtomicUsize>,
    /// Runs started so far; mixed into the seed so each run differs but stays reproducible.
    runs: AtomicU64,
}

impl Simulator {
    /// A simulator with the given behaviour.
    pub fn new(config: SimConfig) -> Self {
        Self {
            inner: Arc::new(Shared {
                config,
                active: Arc::new(AtomicUsize::new(0)),
                runs: AtomicU64::new(0),
            }),
        }
    }

    /// Workers alive right now, across all runs (0 when no call is in progress).
    pub fn active_workers(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Starts `n` concurrent simulated calls; they run while the returned stream is polled
    /// and stop when it is dropped.
    pub fn run(&self, n: u32) -> Run {
        let config = &self.inner.config;
        let run_no = self.inner.runs.fetch_add(1, Ordering::Relaxed);
        let mut rng = match config.seed {
            // A fixed mix of seed and run number: run k of a seeded server is always the same.
            Some(seed) => {
                SmallRng::seed_from_u64(seed ^ run_no.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            }
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        let (min, max) = (nanos(*config.delay.start()), nanos(*config.delay.end()));
        let start = Instant::now();
        let mut calls: Vec<(Instant, Outcome)> = (1..=n)
            .map(|index| {
                let delay = Duration::from_nanos(rng.random_range(min..=max));
                let fails = rng.random_bool(config.failure_rate);
                let protocol = Protocol::ALL[rng.random_range(0..Protocol::ALL.len())];
                let id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
                let result = if fails {
                    Err(CallError::Simulated {
                        index,
                        elapsed_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    })
                } else {
                    Ok(protocol)
                };
                (start + delay, Outcome { id, index, result })
            })
            .collect();
        // Latest first, so the next to finish is popped from the end.
        calls.sort_unstable_by_key(|(at, _)| std::cmp::Reverse(*at));
        Run::new(calls, start, Arc::clone(&self.inner.active))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The calls of one run, yielded in completion order; dropping it stops them all.
pub struct Run {
    /// Calls not finished yet with when they finish, latest first.
    calls: Vec<(Instant, Outcome)>,
    /// Sleeps until the next call's completion time.
    timer: Pin<Box<Sleep>>,
    /// The simulator-wide count of live workers: +n at start, -1 per completion, and
    /// the rest when the run is dropped.
    active: Arc<AtomicUsize>,
    /// The same count, exported as a metric.
    gauge: metrics::Gauge,
}

/// Gauge `basic_background_workers_active`, looked up once per run (a no-op until a
/// metrics recorder exists).
fn workers_gauge() -> metrics::Gauge {
    metrics::gauge!("basic_background_workers_active")
}

impl Run {
    fn new(calls: Vec<(Instant, Outcome)>, start: Instant, active: Arc<AtomicUsize>) -> Self {
        active.fetch_add(calls.len(), Ordering::Relaxed);
        let gauge = workers_gauge();
        gauge.increment(calls.len() as f64);
        Self {
            calls,
            timer: Box::pin(tokio::time::sleep_until(start)),
            active,
            gauge,
        }
    }

    /// Calls not finished yet.
    pub fn remaining(&self) -> usize {
        self.calls.len()
    }
}

impl Stream for Run {
    type Item = Outcome;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        let this = &mut *self;
        let Some(&(at, _)) = this.calls.last() else {
            return Poll::Ready(None);
        };
        // One unit of the task's budget per call, so that many calls due at once (zero
        // delays, or a reader that fell behind) still let other tasks run.
        let coop = futures::ready!(tokio::task::coop::poll_proceed(cx));
        // A call already due goes at once: the timer ticks in whole milliseconds, and
        // calls that came due since it fired need no new wait.
        if at > Instant::now() {
            if at != this.timer.deadline() {
                this.timer.as_mut().reset(at);
            }
            futures::ready!(this.timer.as_mut().poll(cx));
        }
        let Some((_, outcome)) = this.calls.pop() else {
            return Poll::Ready(None);
        };
        coop.made_progress();
        this.active.fetch_sub(1, Ordering::Relaxed);
        this.gauge.decrement(1.0);
        Poll::Ready(Some(outcome))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.calls.len(), Some(self.calls.len()))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Calls not finished yet stop here (cancellation, deadline, shutdown).
        let left = self.calls.len();
        self.active.fetch_sub(left, Ordering::Relaxed);
        self.gauge.decrement(left as f64);
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn config(seed: u64, failure_rate: f64) -> SimConfig {
        SimConfig {
            delay: Duration::from_millis(10)..=Duration::from_millis(50),
            failure_rate,
            seed: Some(seed),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_call_completes_once_in_delay_order() {
        let sim = Simulator::new(config(1, 0.0));
        let outcomes: Vec<Outcome> = sim.run(50).collect().await;
        let mut indexes: Vec<u32> = outcomes.iter().map(|o| o.index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (1..=50).collect::<Vec<_>>());
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        assert!(outcomes.iter().all(|o| o.id.get_version_num() == 4));
        assert_eq!(sim.active_workers(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_run_concurrently_not_one_after_another() {
        let sim = Simulator::new(config(2, 0.0));
        let start = tokio::time::Instant::now();
        let n = sim.run(200).count().await;
        assert_eq!(n, 200);
        // Sequential sleeps would take at least 200 * 10 ms.
        assert!(start.elapsed() <= Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_with_no_delay_complete_without_waiting_for_a_timer_tick() {
        let sim = Simulator::new(SimConfig {
            delay: Duration::ZERO..=Duration::ZERO,
            ..config(5, 0.0)
        });
        // Mid-millisecond, where a timer would wait for the next whole one.
        tokio::time::advance(Duration::from_micros(500)).await;
        let start = tokio::time::Instant::now();
        assert_eq!(sim.run(1_000).count().await, 1_000);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn same_seed_gives_the_same_runs() {
        let a: Vec<Outcome> = Simulator::new(config(7, 0.3)).run(20).collect().await;
        let b: Vec<Outcome> = Simulator::new(config(7, 0.3)).run(20).collect().await;
        assert_eq!(a, b);
        let c: Vec<Outcome> = Simulator::new(config(8, 0.3)).run(20).collect().await;
        assert_ne!(a, c);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_one_fails_every_call_and_zero_none() {
        let all: Vec<Outcome> = Simulator::new(config(3, 1.0)).run(10).collect().await;
        assert!(all.iter().all(|o| o.result.is_err()));
        let none: Vec<Outcome> = Simulator::new(config(3, 0.0)).run(10).collect().await;
        assert!(none.iter().all(|o| o.result.is_ok()));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_a_run_stops_its_workers() {
        let sim = Simulator::new(config(4, 0.0));
        let mut run = sim.run(100);
        assert_eq!(sim.active_workers(), 100);
        let first = run.next().await;
        assert!(first.is_some());
        assert_eq!(sim.active_workers(), 99);
        drop(run);
        assert_eq!(sim.active_workers(), 0);
    }

    #[test]
    fn failure_text_names_the_call() {
        let err = CallError::Simulated {
            index: 7,
            elapsed_ms: 12,
        };
        assert_eq!(err.to_string(), "service-7: simulated failure after 12 ms");
    }
}
