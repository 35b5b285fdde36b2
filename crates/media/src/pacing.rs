//! Drift-free pacing: the n-th frame is due at `start + n · ptime`.
//!
//! The due instant is always computed from the start instant and the slot number, never from
//! the instant the previous frame was actually sent, so a late wake-up delays one packet but
//! never shifts the whole stream: after a 10-minute prompt the last packet is still due exactly
//! 30 000 · 20 ms after the first.

use std::time::{Duration, Instant};

/// How late the pacer may fall before it gives up on the missed slots instead of sending them
/// in a burst (which would overflow the far end's jitter buffer).
pub const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// A slot clock for one outgoing stream.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    ptime_nanos: u64,
    slot: u64,
}

impl Pacer {
    /// A pacer whose slot 0 is due at `start`.
    pub fn new(start: Instant, ptime: Duration) -> Self {
        let ptime_nanos = u64::try_from(ptime.as_nanos()).unwrap_or(u64::MAX).max(1);
        Pacer {
            start,
            ptime_nanos,
            slot: 0,
        }
    }

    /// The frame duration.
    pub fn ptime(&self) -> Duration {
        Duration::from_nanos(self.ptime_nanos)
    }

    /// The number of the next slot (how many slots have been consumed so far).
    pub fn slot(&self) -> u64 {
        self.slot
    }

    /// The instant slot `n` is due.
    pub fn slot_at(&self, n: u64) -> Instant {
        self.start + Duration::from_nanos(self.ptime_nanos.saturating_mul(n))
    }

    /// The instant the next slot is due.
    pub fn next_at(&self) -> Instant {
        self.slot_at(self.slot)
    }

    /// Whether the next slot is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_at()
    }

    /// Consumes the next slot.
    pub fn advance(&mut self) {
        self.slot += 1;
    }

    /// When `now` is more than [`MAX_CATCH_UP`] past the next slot, skips forward to the last
    /// slot due at `now` and returns how many slots were skipped (0 when not that late).
    pub fn skip_if_far_behind(&mut self, now: Instant) -> u64 {
        let due = self.next_at();
        if now <= due || now - due <= MAX_CATCH_UP {
            return 0;
        }
        let elapsed = u64::try_from((now - self.start).as_nanos()).unwrap_or(u64::MAX);
        let last_due = elapsed / self.ptime_nanos;
        let skipped = last_due.saturating_sub(self.slot);
        self.slot = last_due.max(self.slot);
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_start_plus_n_ptime() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Duration::from_millis(20));
        assert!(p.is_due(t0));
        p.advance();
        assert!(!p.is_due(t0 + Duration::from_millis(19)));
        assert!(p.is_due(t0 + Duration::from_millis(20)));
        assert_eq!(p.slot_at(30_000), t0 + Duration::from_secs(600));
    }

    #[test]
    fn far_behind_skips_to_the_current_slot() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Duration::from_millis(20));
        assert_eq!(p.skip_if_far_behind(t0 + Duration::from_millis(150)), 0);
        assert_eq!(p.skip_if_far_behind(t0 + Duration::from_millis(1010)), 50);
        assert_eq!(p.slot(), 50);
        assert_eq!(p.next_at(), t0 + Duration::from_millis(1000));
    }
}
