//! What call control writes down about each call, as outputs: [`AppealEvent`]s, and the
//! appeal ids it mints itself ([`AppealIds`]).
//!
//! The core never asks anyone for an appeal id: a call that reaches a line gets one at once
//! from [`AppealIds`], and every event of that call names it. The driver hands the events, in
//! the order they come out, to the appeal writer (the daemon's appends a line to the spool).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::io::DtmfVia;
use crate::log::{
    CallEnded, CallbackAttempt, CallbackOutcome, IvrStep, TransferKind, TransferRecord,
};

/// Appeal ids, minted without a clock or OS randomness of their own: UUIDv7 (RFC 9562 §5.7)
/// from the civil time the driver gave the core, a 12-bit counter and 62 bits from a
/// generator seeded at construction.
///
/// Why they stay unique:
/// - within one core, the counter orders ids of the same millisecond, and the millisecond
///   never goes back (a clock stepped back keeps the last one; 4096 ids in one millisecond
///   borrow the next);
/// - across restarts and across two daemons, the driver seeds each core from the OS's
///   randomness at start, so two cores share neither their 62 random bits per id nor (after
///   a restart) usually the millisecond: a collision needs the same millisecond, counter and
///   62 random bits;
/// - a harness gives a fixed seed and a virtual clock, and gets the same ids every run.
#[derive(Debug)]
pub struct AppealIds {
    rng: StdRng,
    /// The millisecond of the last id, and the counter within it.
    last: Option<(u64, u16)>,
}

/// The largest value of the 12-bit counter (`rand_a`).
const COUNTER_MAX: u16 = 0x0fff;

impl AppealIds {
    /// Ids drawn from `seed` (the daemon takes it from the OS's randomness at each start).
    pub fn new(seed: [u8; 32]) -> AppealIds {
        AppealIds {
            rng: StdRng::from_seed(seed),
            last: None,
        }
    }

    /// A new id for a call that arrived at `unix_ms` (milliseconds since the Unix epoch).
    pub fn mint(&mut self, unix_ms: u64) -> String {
        let (ms, counter) = match self.last {
            Some((last, n)) if unix_ms <= last => {
                if n < COUNTER_MAX {
                    (last, n + 1)
                } else {
                    (last + 1, 0)
                }
            }
            _ => (unix_ms, 0),
        };
        self.last = Some((ms, counter));
        let mut bytes = [0u8; 10];
        self.rng.fill_bytes(&mut bytes[2..]);
        bytes[..2].copy_from_slice(&counter.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(ms, &bytes)
            .into_uuid()
            .to_string()
    }
}

/// One thing written down about a call: the appeal it belongs to and what happened, drained
/// as [`crate::Output::Appeal`]. Per call they come out in the order they happened: first
/// [`AppealRecord::Arrived`], last [`AppealRecord::Ended`] (callbacks of a booking call
/// follow later, under the booking's appeal).
#[derive(Debug, Clone, PartialEq)]
pub struct AppealEvent {
    /// The appeal's id ([`AppealIds`]).
    pub appeal: String,
    pub record: AppealRecord,
}

/// What happened (see [`AppealEvent`]).
#[derive(Debug, Clone, PartialEq)]
pub enum AppealRecord {
    /// A call reached a line: the appeal is created (before the call is answered).
    Arrived {
        call_id: String,
        line: String,
        caller: String,
    },
    /// The call ended.
    Ended(CallEnded),
    /// The caller pressed `digit` (`0`–`9`, `*`, `#`, `A`–`D`): only digits the line's DTMF
    /// mode takes, each once.
    Digit { digit: char, via: DtmfVia },
    /// The call's voice menu took a step (path, category, variables, where it ended).
    IvrStep(IvrStep),
    /// An operator answered the waiting caller after `waited` in the queue; they are bridged.
    OperatorAnswered { operator: String, waited: Duration },
    /// A transfer of the caller (an operator's REFER, the transfer command, or a menu's
    /// transfer node) reached its target (`status` 200) or failed with `status`.
    Transferred {
        /// The operator who asked for it (`None`: the voice menu).
        operator: Option<String>,
        /// The queue name, the number or the operator.
        target: String,
        kind: TransferKind,
        status: u16,
        /// How long the caller talked to that operator before the transfer.
        operator_talked: Option<Duration>,
    },
    /// The operator of a booked callback is on the line and its number is being dialled:
    /// attempt `attempt` (1 for the first). The appeal is the booking call's.
    CallbackDialling { operator: String, attempt: u32 },
    /// One attempt to call a booked callback's number ended.
    CallbackAttempt {
        number: String,
        operator: String,
        attempt: u32,
        result: CallbackOutcome,
    },
    /// The ACD gave a booked callback up after `attempts` attempts.
    CallbackFailed { attempts: u32 },
    /// A callback's talk ended: the caller talked to `operator` for `talked`.
    CallbackTalked { operator: String, talked: Duration },
}

impl AppealRecord {
    /// The transfer as the borrowed record a writer takes.
    pub fn transfer(&self) -> Option<TransferRecord<'_>> {
        match self {
            AppealRecord::Transferred {
                operator,
                target,
                kind,
                status,
                operator_talked,
            } => Some(TransferRecord {
                operator: operator.as_deref(),
                target,
                kind: *kind,
                status: *status,
                operator_talked: *operator_talked,
            }),
            _ => None,
        }
    }

    /// The callback attempt as the borrowed record a writer takes.
    pub fn callback_attempt(&self) -> Option<CallbackAttempt<'_>> {
        match self {
            AppealRecord::CallbackAttempt {
                number,
                operator,
                attempt,
                result,
            } => Some(CallbackAttempt {
                number,
                operator,
                attempt: *attempt,
                result: *result,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_ordered_and_unique() {
        let mut ids = AppealIds::new([1; 32]);
        let t = 1_760_000_000_000;
        let minted: Vec<String> = [t, t, t, t - 5, t + 1]
            .into_iter()
            .map(|ms| ids.mint(ms))
            .collect();
        for id in &minted {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
        }
        let mut sorted = minted.clone();
        sorted.sort();
        assert_eq!(sorted, minted, "ids sort in the order they were minted");
        sorted.dedup();
        assert_eq!(sorted.len(), minted.len());
        // the clock stepped back: the millisecond stays
        let ms = |id: &str| {
            uuid::Uuid::parse_str(id)
                .ok()
                .and_then(|u| u.get_timestamp())
                .map(|ts| ts.to_unix())
        };
        assert_eq!(ms(&minted[3]), ms(&minted[0]));
    }

    #[test]
    fn a_full_counter_borrows_the_next_millisecond() {
        let mut ids = AppealIds::new([2; 32]);
        let t = 1_760_000_000_000;
        let all: Vec<String> = (0..=u32::from(COUNTER_MAX) + 1)
            .map(|_| ids.mint(t))
            .collect();
        let last = uuid::Uuid::parse_str(&all[all.len() - 1]).expect("a UUID");
        let (secs, nanos) = last.get_timestamp().expect("v7").to_unix();
        assert_eq!(secs * 1000 + u64::from(nanos / 1_000_000), t + 1);
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, all);
    }

    #[test]
    fn two_seeds_never_share_an_id_in_the_same_millisecond() {
        let t = 1_760_000_000_000;
        let (mut a, mut b) = (AppealIds::new([3; 32]), AppealIds::new([4; 32]));
        let ours: Vec<String> = (0..100).map(|_| a.mint(t)).collect();
        let theirs: Vec<String> = (0..100).map(|_| b.mint(t)).collect();
        assert!(ours.iter().all(|id| !theirs.contains(id)));
        // and a restart with the same seed would repeat them: the daemon never reuses one
        assert_eq!(AppealIds::new([3; 32]).mint(t), ours[0]);
    }
}
