//! The RFC 3261 §17 timers as one enum, and the table that orders every armed timer of every
//! transaction by deadline.
//!
//! Each transaction owns at most two armed timers at once: one that retransmits (A, E, G, or
//! the 2xx retransmission of §13.3.1.4) and one that ends the transaction (B, D, F, H, I, J, K,
//! L, M or the Proceeding guard). Those are the two [`Slot`]s. The transaction remembers the
//! deadline it armed in each slot, so stopping a timer is an exact removal from the table, not a
//! stale entry left behind to be skipped later.

use std::collections::BTreeSet;
use std::time::Instant;

use super::TxId;

/// Every timer a transaction can arm. Names follow RFC 3261 Table 4 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Timer {
    /// INVITE client: retransmit the INVITE (UDP), interval doubling without cap.
    A,
    /// INVITE client: no response at all within 64·T1 → timeout.
    B,
    /// INVITE client: a provisional response arrived but no final within the Proceeding guard
    /// (our addition so that a lost final can never pin the transaction forever).
    C,
    /// INVITE client: absorb retransmitted non-2xx finals (32 s on UDP).
    D,
    /// Non-INVITE client: retransmit the request (UDP), doubling up to T2.
    E,
    /// Non-INVITE client: no final within 64·T1 → timeout.
    F,
    /// INVITE server: retransmit the non-2xx final (UDP), doubling up to T2.
    G,
    /// INVITE server: no ACK for the non-2xx final within 64·T1 → timeout.
    H,
    /// INVITE server: absorb ACK retransmissions for T4 after the ACK (UDP).
    I,
    /// Non-INVITE server: absorb request retransmissions for 64·T1 after the final (UDP).
    J,
    /// Non-INVITE client: absorb final retransmissions for T4 (UDP).
    K,
    /// INVITE server after a 2xx (RFC 6026 Accepted): 64·T1, which is also when an unACKed
    /// 2xx is given up (RFC 3261 §13.3.1.4).
    L,
    /// INVITE client after a 2xx (RFC 6026 Accepted): 64·T1 passing 2xx retransmissions up.
    M,
    /// INVITE server: retransmit the 2xx (UDP) on T1, 2·T1, … capped at T2 until ACKed.
    Retransmit2xx,
}

/// Which of a transaction's two timer slots a timer lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Retransmit = 0,
    Lifetime = 1,
}

impl Timer {
    pub(crate) fn slot(self) -> Slot {
        match self {
            Timer::A | Timer::E | Timer::G | Timer::Retransmit2xx => Slot::Retransmit,
            _ => Slot::Lifetime,
        }
    }
}

/// What a transaction remembers about its armed timers: per slot, which timer and when.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Armed([Option<(Instant, Timer)>; 2]);

/// Every armed timer of every transaction, ordered by deadline.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    entries: BTreeSet<(Instant, TxId, Timer)>,
}

impl TimerTable {
    /// Arm `timer` for `tx` at `at`, replacing whatever was armed in the same slot.
    pub(crate) fn set(&mut self, armed: &mut Armed, tx: TxId, timer: Timer, at: Instant) {
        let slot = timer.slot() as usize;
        if let Some((old_at, old_timer)) = armed.0[slot].take() {
            self.entries.remove(&(old_at, tx, old_timer));
        }
        armed.0[slot] = Some((at, timer));
        self.entries.insert((at, tx, timer));
    }

    /// Disarm whatever is in `slot`.
    pub(crate) fn stop(&mut self, armed: &mut Armed, tx: TxId, slot: Slot) {
        if let Some((at, timer)) = armed.0[slot as usize].take() {
            self.entries.remove(&(at, tx, timer));
        }
    }

    /// Disarm everything (the transaction is being destroyed).
    pub(crate) fn stop_all(&mut self, armed: &mut Armed, tx: TxId) {
        self.stop(armed, tx, Slot::Retransmit);
        self.stop(armed, tx, Slot::Lifetime);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.first().map(|(at, _, _)| *at)
    }

    /// Remove and return the earliest timer due at or before `now`. The caller must also clear
    /// the transaction's slot (see [`Armed::fired`]).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TxId, Timer)> {
        match self.entries.first() {
            Some(&(at, _, _)) if at <= now => self.entries.pop_first().map(|(_, tx, t)| (tx, t)),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Armed {
    /// Forget the timer that just fired from the table.
    pub(crate) fn fired(&mut self, timer: Timer) {
        let slot = timer.slot() as usize;
        if matches!(self.0[slot], Some((_, t)) if t == timer) {
            self.0[slot] = None;
        }
    }
}
