//! What each operator is doing in the ACD right now — ringing, on a call or in wrap-up — for
//! the admin API (`GET /api/v1/operators` shows it as `activity`).
//!
//! The core publishes after every input it handled ([`ActivityBoard::publish`], from
//! `Core::drain`), so the board is never older than the last SIP message, timer or admin
//! command. Operators who are idle, paused or logged out are not on the board: the admin
//! API's own table already says which of those they are.

use std::sync::Mutex;

use acd::{Acd, OperatorState};

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
    busy: Mutex<Vec<(String, Activity)>>,
}

impl ActivityBoard {
    /// Replaces the board with what `acd` says now (in the ACD's operator order); the lock is
    /// taken only to compare, and the board rewritten only when something changed.
    pub fn publish(&self, acd: &Acd) {
        let now: Vec<(&str, Activity)> = acd
            .operators()
            .filter_map(|id| {
                let status = acd.operator_status(id)?;
                Some((id.as_str(), Activity::of(&status.state)?))
            })
            .collect();
        let Ok(mut board) = self.busy.lock() else {
            return;
        };
        let same = board.len() == now.len()
            && board
                .iter()
                .zip(&now)
                .all(|((a, x), (b, y))| a == b && x == y);
        if !same {
            *board = now.into_iter().map(|(id, a)| (id.to_owned(), a)).collect();
        }
    }

    /// The operator's activity, `None` when idle, paused or logged out.
    pub fn of(&self, operator: &str) -> Option<Activity> {
        self.busy
            .lock()
            .ok()?
            .iter()
            .find(|(id, _)| id == operator)
            .map(|(_, a)| *a)
    }

    /// Every operator with an activity, by login.
    pub fn snapshot(&self) -> Vec<(String, Activity)> {
        self.busy.lock().map(|b| b.clone()).unwrap_or_default()
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
        board.publish(&acd);
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
        board.publish(&acd);
        assert_eq!(board.of(op.as_str()), Some(Activity::Ringing));
        assert_eq!(board.of(other), None);

        acd.offer_answered(t0 + Duration::from_secs(1), CallerId(1), &op)
            .unwrap();
        board.publish(&acd);
        assert_eq!(board.of(op.as_str()), Some(Activity::OnCall));
        assert_eq!(board.snapshot().len(), 1);

        acd.call_ended(t0 + Duration::from_secs(4), &op).unwrap();
        board.publish(&acd);
        assert_eq!(board.of(op.as_str()), Some(Activity::WrapUp));

        acd.handle_timeout(t0 + Duration::from_secs(10));
        board.publish(&acd);
        assert_eq!(board.of(op.as_str()), None, "wrap-up over: idle again");
        assert_eq!(Activity::OnCall.as_str(), "on_call");
    }
}
