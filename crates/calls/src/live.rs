//! Live figures for the workspace and the admin API.
//!
//! - [`LiveEvent`]s: what changed, as outputs of call control ([`crate::Output::Live`], in the
//!   same drain as the SIP that caused them): an operator's state ([`OperatorLive`], after
//!   every input that changed it, as the ACD's `take_changed` tells), an offer ringing an
//!   operator's phone and how it ended ([`OfferLive`], the ringing one in the same drain as
//!   our INVITE), a caller joining or leaving a queue ([`QueueLive`]). Times are the driver's
//!   civil time for the input.
//! - [`ActivityBoard`] (in `Stats::activity`): what each operator is doing in the ACD right
//!   now — ringing, on a call or in wrap-up — for `GET /api/v1/operators` (`activity`). The
//!   core updates it after every input with the operators the ACD changed
//!   ([`ActivityBoard::update`], from `Core::drain`). Operators who are idle, paused or
//!   logged out are not on the board: the admin API's own table already says which of those
//!   they are.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use acd::{Acd, OperatorId, OperatorState, PauseReason};
use chrono::{DateTime, Utc};

/// A change for the workspace's live pages, an output of call control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    Operator(OperatorLive),
    Offer(OfferLive),
    Queue(QueueLive),
    /// The configuration was reloaded: operators' names and skills and queues' titles as
    /// they are now (every operator's state follows in the same drain).
    Roster {
        roster: Roster,
        at: DateTime<Utc>,
    },
}

/// What the live pages name: operators (display names, skill queues) and queues (titles), as
/// the configuration says ([`crate::Settings::roster`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    pub operators: Vec<RosterOperator>,
    pub queues: Vec<RosterQueue>,
}

/// An operator as the live pages name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterOperator {
    pub login: String,
    pub name: String,
    /// The queues of their skills.
    pub skills: Vec<String>,
}

/// A queue as the live pages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterQueue {
    pub name: String,
    /// What the queue is for (`title` in the queues file).
    pub title: String,
}

impl LiveEvent {
    /// When it happened (the driver's civil time of the input that caused it).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            LiveEvent::Operator(o) => o.since,
            LiveEvent::Offer(o) => o.at,
            LiveEvent::Queue(q) => q.at,
            LiveEvent::Roster { at, .. } => *at,
        }
    }
}

/// An operator's state as the workspace shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorPhase {
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    WrapUp,
    Paused,
}

impl OperatorPhase {
    /// The state id of the live events (`logged_out`, `available`, `ringing`, `on_call`,
    /// `wrap_up`, `paused`).
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorPhase::LoggedOut => "logged_out",
            OperatorPhase::Available => "available",
            OperatorPhase::Ringing => "ringing",
            OperatorPhase::OnCall => "on_call",
            OperatorPhase::WrapUp => "wrap_up",
            OperatorPhase::Paused => "paused",
        }
    }

    /// The phase of an ACD state, and the pause's reason (`no_answer` for the automatic pause
    /// after missed offers).
    pub fn of(state: &OperatorState) -> (OperatorPhase, Option<&str>) {
        match state {
            OperatorState::LoggedOut => (OperatorPhase::LoggedOut, None),
            OperatorState::Available => (OperatorPhase::Available, None),
            OperatorState::Paused(PauseReason::Requested(r)) => {
                (OperatorPhase::Paused, Some(r.as_str()))
            }
            OperatorState::Paused(PauseReason::NoAnswer(_)) => {
                (OperatorPhase::Paused, Some("no_answer"))
            }
            other => match Activity::of(other) {
                Some(Activity::Ringing) => (OperatorPhase::Ringing, None),
                Some(Activity::OnCall) => (OperatorPhase::OnCall, None),
                _ => (OperatorPhase::WrapUp, None),
            },
        }
    }
}

/// An operator's state changed (or is first seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorLive {
    /// The operator's login.
    pub id: String,
    pub state: OperatorPhase,
    /// Since when the operator is in this state and reason.
    pub since: DateTime<Utc>,
    /// The pause's reason.
    pub reason: Option<String>,
    /// The queues the operator is logged in to.
    pub queues: Vec<String>,
}

/// Where an offer to an operator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferPhase {
    /// Our INVITE went to the operator's phone(s).
    Ringing,
    /// The operator answered.
    Answered,
    /// The answered call ended (either side hung up, or the caller was transferred on).
    Ended,
    /// It stopped ringing without an answer (the caller left, no answer, busy, withdrawn).
    Cancelled,
}

impl OfferPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferPhase::Ringing => "ringing",
            OfferPhase::Answered => "answered",
            OfferPhase::Ended => "ended",
            OfferPhase::Cancelled => "cancelled",
        }
    }
}

/// A caller offered to an operator (a queue's offer or a transfer to them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferLive {
    pub operator: String,
    pub appeal: String,
    /// The Call-ID of our INVITE to the operator's phone.
    pub call: String,
    /// The queue the caller waited in (none for a transfer from outside a queue).
    pub queue: Option<String>,
    /// The caller's number.
    pub caller: String,
    /// The caller's steps through the voice menu (as the appeal's `ivr_path`).
    pub path: Vec<String>,
    /// How long the caller waited in the queue until the offer rang.
    pub waited: Duration,
    pub phase: OfferPhase,
    pub at: DateTime<Utc>,
}

/// Why a caller left a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueExit {
    /// An operator answered.
    Answered,
    /// Hung up (or was hung up) while waiting.
    Abandoned,
    /// Moved to another queue (overflow, a new queue node, a transfer).
    Moved,
    /// Left for a message or a callback.
    Overflowed,
    Callback,
}

impl QueueExit {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueExit::Answered => "answered",
            QueueExit::Abandoned => "abandoned",
            QueueExit::Moved => "moved",
            QueueExit::Overflowed => "overflowed",
            QueueExit::Callback => "callback",
        }
    }
}

/// A caller joined or left a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLive {
    pub queue: String,
    pub appeal: String,
    /// The caller's Call-ID.
    pub call: String,
    pub change: QueueChange,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueChange {
    /// The caller waits in the queue from `since` (the civil time of the join).
    Joined {
        since: DateTime<Utc>,
        path: Vec<String>,
        caller: String,
    },
    /// The caller left after waiting `waited`.
    Left { exit: QueueExit, waited: Duration },
}

/// An operator's part in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Offered a caller; the phone rings.
    Ringing,
    /// Talking to a caller.
    OnCall,
    /// After a call, before the next one may be offered.
    WrapUp,
}

impl Activity {
    /// The name the admin API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Ringing => "ringing",
            Activity::OnCall => "on_call",
            Activity::WrapUp => "wrap_up",
        }
    }

    fn of(state: &OperatorState) -> Option<Activity> {
        match state {
            OperatorState::Ringing { .. } | OperatorState::Direct { answered: false } => {
                Some(Activity::Ringing)
            }
            OperatorState::OnCall { .. } | OperatorState::Direct { answered: true } => {
                Some(Activity::OnCall)
            }
            OperatorState::WrapUp { .. } => Some(Activity::WrapUp),
            OperatorState::LoggedOut | OperatorState::Available | OperatorState::Paused(_) => None,
        }
    }
}

/// The operators with an [`Activity`], by login, as of the core's last input.
#[derive(Debug, Default)]
pub struct ActivityBoard {
    busy: Mutex<BTreeMap<String, Activity>>,
}

impl ActivityBoard {
    /// Takes what `acd` says now of the operators `changed` (the ACD's
    /// [`Acd::take_changed`]); the lock is not taken when none changed.
    pub fn update<'a>(&self, acd: &Acd, changed: impl IntoIterator<Item = &'a OperatorId>) {
        let mut changed = changed.into_iter().peekable();
        if changed.peek().is_none() {
            return;
        }
        let Ok(mut board) = self.busy.lock() else {
            return;
        };
        for id in changed {
            let activity = acd
                .operator_status(id)
                .and_then(|status| Activity::of(&status.state));
            match activity {
                Some(a) => {
                    board.insert(id.as_str().to_owned(), a);
                }
                None => {
                    board.remove(id.as_str());
                }
            }
        }
    }

    /// The operator's activity, `None` when idle, paused or logged out.
    pub fn of(&self, operator: &str) -> Option<Activity> {
        self.busy.lock().ok()?.get(operator).copied()
    }

    /// Every operator with an activity, in login order.
    pub fn snapshot(&self) -> Vec<(String, Activity)> {
        self.busy
            .lock()
            .map(|b| b.iter().map(|(id, a)| (id.clone(), *a)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acd::{AcdConfig, CallerId, OperatorConfig, QueueConfig, QueueId};
    use std::time::{Duration, Instant};

    fn acd() -> Acd {
        let mut cfg = AcdConfig::default();
        let mut q = QueueConfig::new("benefits");
        q.wrap_up = Duration::from_secs(5);
        cfg.queues.push(q);
        cfg.operators
            .push(OperatorConfig::new("op1", [("benefits", 1)]));
        cfg.operators
            .push(OperatorConfig::new("op2", [("benefits", 1)]));
        Acd::new(cfg).unwrap()
    }

    #[test]
    fn the_board_follows_an_operator_through_a_call() {
        let t0 = Instant::now();
        let mut acd = acd();
        let board = ActivityBoard::default();
        for op in ["op1", "op2"] {
            acd.set_registered(t0, &op.into(), true).unwrap();
            acd.login(t0, &op.into()).unwrap();
        }
        let changed = acd.take_changed();
        board.update(&acd, &changed);
        assert!(
            board.snapshot().is_empty(),
            "idle operators are not on the board"
        );

        acd.caller_joined(t0, CallerId(1), &QueueId::from("benefits"), 0, None)
            .unwrap();
        let offered = loop {
            match acd.poll_action() {
                Some(acd::Action::Offer { operators, .. }) => break operators,
                Some(_) => continue,
                None => panic!("no offer"),
            }
        };
        let op = offered[0].clone();
        let other = if op.as_str() == "op1" { "op2" } else { "op1" };
        let changed = acd.take_changed();
        board.update(&acd, &changed);
        assert_eq!(board.of(op.as_str()), Some(Activity::Ringing));
        assert_eq!(board.of(other), None);

        acd.offer_answered(t0 + Duration::from_secs(1), CallerId(1), &op)
            .unwrap();
        let changed = acd.take_changed();
        board.update(&acd, &changed);
        assert_eq!(board.of(op.as_str()), Some(Activity::OnCall));
        assert_eq!(board.snapshot().len(), 1);

        acd.call_ended(t0 + Duration::from_secs(4), &op).unwrap();
        let changed = acd.take_changed();
        board.update(&acd, &changed);
        assert_eq!(board.of(op.as_str()), Some(Activity::WrapUp));

        acd.handle_timeout(t0 + Duration::from_secs(10));
        let changed = acd.take_changed();
        board.update(&acd, &changed);
        assert_eq!(board.of(op.as_str()), None, "wrap-up over: idle again");
        assert_eq!(Activity::OnCall.as_str(), "on_call");
    }
}
