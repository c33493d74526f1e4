//! When Background sends its next progress snapshot: paced in time, within a byte budget.
//!
//! Every snapshot is cumulative (it carries every result so far), so sending one per
//! completion costs O(n²) bytes: 3 GB for n = 100 000. Two rules decide instead:
//!
//! - **Time**: at most one intermediate snapshot per [`Pacing::INTERVAL`] (200 ms), so a
//!   progress bar moves about five times a second while results keep completing.
//! - **Bytes**: a snapshot of `s` bytes may go only if everything sent before it is at
//!   most `(BUDGET - 1) × s`. Then after it the total is at most `BUDGET × s`, and `s` is
//!   at most the final snapshot's size (snapshots only grow), so all intermediate
//!   snapshots together stay within `BUDGET ×` the final one, and with the final within
//!   `BUDGET + 1` (19x) of it — for any n, any simulated delays and any reader speed. A
//!   reader slower than the pacing gets fewer snapshots still: nothing is produced while
//!   it is not reading.
//!
//! At the default delays (results spread over 2 s) the byte rule never binds: ten
//! snapshots growing linearly add up to about 5.5 final snapshots. With results spread
//! over much longer, it takes over after about `2 × BUDGET` snapshots, and each later
//! one waits until the snapshot has grown by `1 / (BUDGET - 1)` (about 6 %): a geometric
//! cadence that keeps the bar moving in steps of that size.
//!
//! The first (empty) snapshot and the final one are not paced; the caller sends them.
//! This module knows nothing about gRPC; it counts bytes and time.

use std::time::Duration;

use tokio::time::Instant;

/// The pacing state of one Background stream.
#[derive(Debug)]
pub(crate) struct Pacing {
    /// Bytes of every message sent so far.
    sent: u64,
    /// When the last message went.
    last: Instant,
}

/// What to do with a snapshot that has news in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send it now.
    Now,
    /// Send it at this instant if nothing else changes.
    At(Instant),
    /// Over the byte budget: wait until more results make it larger.
    Grow,
}

impl Pacing {
    /// Shortest gap between two intermediate snapshots.
    pub(crate) const INTERVAL: Duration = Duration::from_millis(200);
    /// Intermediate snapshots together stay within this many final snapshots.
    pub(crate) const BUDGET: u64 = 18;

    /// Pacing after a first message of `bytes` bytes sent at `now`.
    pub(crate) fn new(now: Instant, bytes: usize) -> Self {
        Self {
            sent: bytes as u64,
            last: now,
        }
    }

    /// When a snapshot of `bytes` bytes may go, asked at `now`.
    pub(crate) fn next(&self, now: Instant, bytes: usize) -> Next {
        let bytes = bytes as u64;
        if self.sent > (Self::BUDGET - 1).saturating_mul(bytes) {
            return Next::Grow;
        }
        let due = self.last + Self::INTERVAL;
        if now >= due { Next::Now } else { Next::At(due) }
    }

    /// Records a message of `bytes` bytes sent at `now`.
    pub(crate) fn sent(&mut self, now: Instant, bytes: usize) {
        self.sent = self.sent.saturating_add(bytes as u64);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_waits_for_the_interval() {
        let start = Instant::now();
        let pacing = Pacing::new(start, 100);
        assert_eq!(
            pacing.next(start, 1_000),
            Next::At(start + Pacing::INTERVAL)
        );
        assert_eq!(pacing.next(start + Pacing::INTERVAL, 1_000), Next::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn the_byte_budget_holds_a_snapshot_until_it_has_grown() {
        let start = Instant::now();
        let mut pacing = Pacing::new(start, 0);
        let later = start + Pacing::INTERVAL;
        pacing.sent(start, 17_000);
        // 17 000 sent: a 1 000-byte snapshot would make 18 000 = 18 × 1 000, allowed.
        assert_eq!(pacing.next(later, 1_000), Next::Now);
        pacing.sent(later, 1_000);
        // 18 000 sent: the next must be at least 18 000 / 17 bytes.
        let after = later + Pacing::INTERVAL;
        assert_eq!(pacing.next(after, 1_058), Next::Grow);
        assert_eq!(pacing.next(after, 1_059), Next::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn sent_bytes_stay_within_the_budget_for_any_growth() {
        // Whatever sizes are offered, every accepted snapshot keeps the total within
        // BUDGET × its own size, hence within BUDGET × the largest.
        let start = Instant::now();
        let mut pacing = Pacing::new(start, 50);
        let mut now = start;
        let mut total = 50u64;
        for size in (1..5_000usize).map(|i| 50 + i * 7) {
            now += Pacing::INTERVAL;
            if pacing.next(now, size) == Next::Now {
                pacing.sent(now, size);
                total += size as u64;
                assert!(total <= Pacing::BUDGET * size as u64, "{total} at {size}");
            }
        }
    }
}
